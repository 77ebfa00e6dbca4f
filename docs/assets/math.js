// Renders the math that pymdownx.arithmatex (generic mode) leaves in the page:
// <span class="arithmatex">\(...\)</span> inline, <div class="arithmatex">\[...\]</div>
// display. KaTeX is vendored in assets/katex. A formula KaTeX cannot parse is
// shown as red source text (class katex-error), which tools/docs_check.py reports.
function renderMath() {
  document.querySelectorAll(".arithmatex").forEach(function (element) {
    if (element.querySelector(".katex")) return;  // already rendered
    var source = element.textContent.trim();
    var display = element.tagName === "DIV";
    source = source.replace(/^\\[(\[]/, "").replace(/\\[)\]]$/, "");
    katex.render(source, element, {displayMode: display, throwOnError: false});
  });
}
if (typeof document$ !== "undefined") {
  document$.subscribe(renderMath);  // mkdocs-material, also after instant navigation
} else {
  document.addEventListener("DOMContentLoaded", renderMath);
}
