// Injected by tools/docs_check.py into a copy of the built site (never into
// the published one). After the page's own scripts ran, it measures what a
// reader would see and writes the findings as JSON into <pre id="docs-check">,
// which the checker reads from Chromium's --dump-dom.
(function () {
  function describe(element) {
    var text = (element.textContent || "").trim().replace(/\s+/g, " ");
    var tag = element.tagName.toLowerCase();
    if (element.id) tag += "#" + element.id;
    return tag + ' "' + text.slice(0, 60) + '"';
  }

  function scrollsHorizontally(element) {
    var overflow = getComputedStyle(element).overflowX;
    return overflow === "auto" || overflow === "scroll";
  }

  // True when an ancestor below `stop` lets the reader scroll to `element`.
  function insideScroller(element, stop) {
    for (var node = element.parentElement; node && node !== stop; node = node.parentElement) {
      if (scrollsHorizontally(node)) return true;
    }
    return false;
  }

  function probe() {
    var defects = [];
    // The text column; on phones code blocks bleed into its margins by design.
    var content = document.querySelector(".md-content") || document.body;
    var box = content.getBoundingClientRect();

    // Anything sticking out of the text column is cut off (the theme clips
    // it) unless it sits in a box that scrolls.
    content.querySelectorAll("*").forEach(function (element) {
      var rect = element.getBoundingClientRect();
      if (rect.width === 0 || rect.right <= box.right + 2) return;
      if (insideScroller(element, content) || scrollsHorizontally(element)) return;
      if (element.closest(".katex-display, .doc-signature")) return;  // reported below
      // Report the outermost element only.
      var parent = element.parentElement;
      if (parent && parent !== content && parent.getBoundingClientRect().right > box.right + 2
          && !scrollsHorizontally(parent)) return;
      defects.push("wider than the text column by " + Math.round(rect.right - box.right) +
                   " px and not scrollable: " + describe(element));
    });

    content.querySelectorAll("table").forEach(function (table) {
      if (!table.closest(".md-typeset__scrollwrap")) {
        defects.push("table without a scroll wrapper: " + describe(table));
      }
      var head = table.querySelector("thead");
      if (head && head.offsetHeight > 0 &&
          Array.prototype.every.call(head.querySelectorAll("th"), function (th) {
            return th.textContent.trim() === "";
          })) {
        defects.push("empty table header bar shown: " + describe(table));
      }
    });

    document.querySelectorAll("img").forEach(function (image) {
      if (!image.complete || image.naturalWidth === 0) {
        defects.push("image did not load: " + image.getAttribute("src"));
      }
    });

    var math = document.querySelectorAll(".arithmatex");
    math.forEach(function (element) {
      if (!element.querySelector(".katex")) {
        defects.push("math not rendered: " + describe(element));
      }
    });
    document.querySelectorAll(".katex-error").forEach(function (element) {
      defects.push("KaTeX could not parse: " + (element.getAttribute("title") || describe(element)));
    });
    if (math.length && !document.fonts.check("16px KaTeX_Main")) {
      defects.push("KaTeX fonts not loaded (math falls back to other fonts)");
    }
    // A formula wider than the column must scroll, not be cut.
    document.querySelectorAll(".katex-display").forEach(function (element) {
      var rect = element.getBoundingClientRect();
      if (rect.right > box.right + 2 && !insideScroller(element, content)) {
        defects.push("display math cut at the right edge: " + describe(element));
      }
    });

    // API signatures: formatted over several lines, each fitting the column
    // on a desktop (on a phone they scroll like every code block).
    var desktop = window.innerWidth >= 960;
    document.querySelectorAll(desktop ? ".doc-signature" : "none").forEach(function (signature) {
      // material scrolls the <code> inside the <pre>; check every level.
      var boxes = [signature].concat(Array.prototype.slice.call(
        signature.querySelectorAll("pre, code")));
      if (boxes.some(function (element) {
        return element.scrollWidth > element.clientWidth + 2;
      })) {
        defects.push("signature needs horizontal scrolling: " + describe(signature));
      }
    });

    // Tables: on a desktop the whole table fits the text column (a table
    // that scrolls there hides its right columns until one scrolls); on a
    // phone wide tables scroll inside their wrapper.
    content.querySelectorAll(desktop ? ".md-typeset__scrollwrap" : "none").forEach(function (wrap) {
      var scroller = wrap.querySelector(".md-typeset__table") || wrap;
      [wrap, scroller].forEach(function (element) {
        if (element.scrollWidth > element.clientWidth + 2 && scrollsHorizontally(element)) {
          defects.push("table needs horizontal scrolling on a desktop (" +
                       (element.scrollWidth - element.clientWidth) + " px hidden): " +
                       describe(element.querySelector("table") || element));
        }
      });
    });

    var report = document.createElement("pre");
    report.id = "docs-check";
    report.style.display = "none";
    report.textContent = JSON.stringify({
      defects: defects,
      height: Math.ceil(document.documentElement.scrollHeight),
      math: math.length,
      tables: content.querySelectorAll("table").length,
      images: document.querySelectorAll("img").length
    });
    document.body.appendChild(report);
  }

  window.addEventListener("load", function () {
    // Let material's own scripts (table wrappers, math) run first.
    setTimeout(function () {
      (document.fonts ? document.fonts.ready : Promise.resolve()).then(probe);
    }, 500);
  });
})();
