"""Check a built docs site in headless Chromium; screenshot every page.

    python tools/docs_check.py SITE_DIR OUT_DIR [--chromium PATH]

For every page of the built site (each index.html) at a desktop and a phone
width, Chromium loads the page from a local HTTP server, with
tools/docs_probe.js added to a copy of it. The probe reports what a reader
would see go wrong: content wider than the text column that does not scroll
(a cut table), a table without material's scroll wrapper, an empty header bar,
an image that did not load, math that KaTeX did not render, API signatures
that need horizontal scrolling on a desktop, tables that do (their right
columns hidden until one scrolls). Then a full-page screenshot of each page goes
to OUT_DIR/<width>/<page>.png, for a person to look at. Exits 1 if any page
has a defect, listing them; 0 otherwise. Needs only the standard library and
Chromium (Debian: apt-get install chromium).
"""

import argparse
import concurrent.futures
import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     "docs_probe.js")
WIDTHS = {"desktop": 1280, "phone": 412}
MAX_SCREENSHOT_HEIGHT = 40000  # longer pages are cut (and say so)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--force-device-scale-factor=1",
                  "--disable-dev-shm-usage", "--no-first-run",
                  "--virtual-time-budget=8000"]


def find_pages(site):
    """Paths (relative to `site`, '/'-separated) of the site's HTML pages."""
    pages = []
    for folder, _, files in os.walk(site):
        for name in files:
            if name == "index.html" or (name.endswith(".html")
                                        and name != "404.html"):
                path = os.path.relpath(os.path.join(folder, name), site)
                pages.append(path.replace(os.sep, "/"))
    return sorted(pages)


def add_probe(site_copy, pages):
    """Insert the probe script at the end of each page's body."""
    shutil.copy(PROBE, os.path.join(site_copy, "docs_probe.js"))
    for page in pages:
        path = os.path.join(site_copy, page)
        with open(path, encoding="utf-8") as file:
            text = file.read()
        text = text.replace(
            "</body>", '<script src="/docs_probe.js"></script></body>', 1)
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)


def serve(folder):
    """Serve `folder` over HTTP on a free local port; return the base URL."""
    handler = functools.partial(_QuietHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    missing = []  # URLs that answered 404 (e.g. a font or an image)

    def log_message(self, *args):
        pass

    def send_error(self, code, *args, **kwargs):
        if code == 404:
            _QuietHandler.missing.append(self.path)
        super().send_error(code, *args, **kwargs)


def chromium(binary, width, height, url, *extra):
    """Run headless Chromium on `url`; return (stdout, stderr)."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--window-size={width},{height}", *extra, url],
            capture_output=True, text=True, timeout=120, check=False)
    return result.stdout, result.stderr


def check_page(binary, base_url, page, width, screenshot):
    """Probe one page at one width and screenshot it; return the report."""
    url = base_url + page
    dom, log = chromium(binary, width, 900, url, "--dump-dom")
    found = re.search(r'<pre id="docs-check"[^>]*>(.*?)</pre>', dom, re.S)
    if not found:
        return {"defects": ["the probe did not report (page failed to load "
                            "or a script error stopped it)"], "height": 900}
    report = json.loads(html.unescape(found.group(1)))
    report["defects"] += [
        "JavaScript error: " + line.strip() for line in log.splitlines()
        if "Uncaught" in line]
    height = min(report["height"], MAX_SCREENSHOT_HEIGHT)
    # Phones overlay their scroll bars; desktops show them (as a cue that a
    # wide table scrolls), so they stay in the desktop screenshots.
    overlay = ["--hide-scrollbars"] if width < 600 else []
    chromium(binary, width, height, url, f"--screenshot={screenshot}",
             *overlay)
    if not os.path.exists(screenshot):
        report["defects"].append("no screenshot was written")
    report["screenshot"] = screenshot
    report["cut"] = report["height"] > MAX_SCREENSHOT_HEIGHT
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", help="the built site (mkdocs build -d SITE)")
    parser.add_argument("out", help="folder for screenshots and report.json")
    parser.add_argument("--chromium", default=shutil.which("chromium")
                        or shutil.which("chromium-browser")
                        or shutil.which("google-chrome"),
                        help="browser binary (default: chromium on PATH)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="pages checked at once (default: %(default)s)")
    parser.add_argument("--only", metavar="TEXT", help="check only the "
                        "pages whose path contains TEXT (e.g. algorithms)")
    args = parser.parse_args(argv)
    if not args.chromium:
        parser.error("no Chromium found: apt-get install chromium, or pass "
                     "--chromium PATH")
    pages = [page for page in find_pages(args.site)
             if not args.only or args.only in page]
    if not pages:
        parser.error(f"no HTML pages under {args.site}")
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as copy:
        site_copy = os.path.join(copy, "site")
        shutil.copytree(args.site, site_copy)
        add_probe(site_copy, find_pages(site_copy))
        base_url, server = serve(site_copy)
        jobs = {}
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            for label, width in WIDTHS.items():
                os.makedirs(os.path.join(args.out, label), exist_ok=True)
                for page in pages:
                    name = page.replace("/index.html", "").replace(
                        "index.html", "index").replace("/", "_") + ".png"
                    shot = os.path.join(args.out, label, name)
                    jobs[(page, label)] = pool.submit(
                        check_page, args.chromium, base_url, page, width, shot)
        server.shutdown()
    reports = {f"{page} @ {label}": job.result()
               for (page, label), job in jobs.items()}
    missing = sorted(set(_QuietHandler.missing) - {"/favicon.ico"})
    with open(os.path.join(args.out, "report.json"), "w") as file:
        json.dump({"pages": reports, "missing": missing}, file, indent=1)
    failures = 0
    for key, report in reports.items():
        note = " (screenshot cut at %d px)" % MAX_SCREENSHOT_HEIGHT \
            if report.get("cut") else ""
        print(f"{key}: {len(report['defects'])} defects, "
              f"{report.get('tables', 0)} tables, {report.get('math', 0)} "
              f"formulas, {report.get('images', 0)} images{note}")
        for defect in report["defects"]:
            print(f"    {defect}")
            failures += 1
    for path in missing:
        print(f"missing file requested by a page: {path}")
        failures += 1
    print(f"screenshots: {os.path.abspath(args.out)}/{{{','.join(WIDTHS)}}}/")
    if failures:
        print(f"FAILED: {failures} defects")
        return 1
    print(f"OK: {len(pages)} pages at {len(WIDTHS)} widths")
    return 0


if __name__ == "__main__":
    sys.exit(main())
