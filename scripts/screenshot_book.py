#!/usr/bin/env python
"""Check the built book in a real headless browser and keep screenshots of it.

    .venv/bin/python scripts/screenshot_book.py            # after `make book`
    .venv/bin/python scripts/screenshot_book.py --browser google-chrome --out shots/

Serves ``_build/html`` over a local http.server, loads the index, notebook and book pages in headless
Chromium (Debian: ``apt-get install -y chromium``), and for each page

- saves a full-width screenshot (``<out>/<page>.png``; default out: ``_build/screenshots``),
- checks that a notebook page has at least one figure (an image under ``_images/``), that the browser
  requested every local image of the page and that the server answered 200 for each, and that
  no page asset was missing (no 404),
- checks that the screenshot is not blank,
- checks that nothing in the page's article is clipped at that width: the page is loaded once
  more with a small script (injected by the local server) that lists every element whose
  content is wider than its box (a table or output that needs a horizontal scroll bar, or is
  cut off) and every element that reaches past the article's right edge (code cells' inputs
  excepted: source lines may scroll).

Exits non-zero with a message naming the page and the problem if a check fails.
"""

from __future__ import annotations

import argparse
import functools
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


# Run in the page after load: what is wider than its box, or than the article.
OVERFLOW_SCRIPT = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const article = document.querySelector("article") || document.querySelector("main");
  const right = article.getBoundingClientRect().right + 2;
  const found = [], reported = [];
  for (const el of article.querySelectorAll("*")) {
    const style = getComputedStyle(el);
    if (style.display === "none" || el.closest(".cell_input, details:not([open])")
        || reported.some(r => r.contains(el))) continue;
    const wide = el.scrollWidth > el.clientWidth + 2 && el.clientWidth > 0
                 && ["auto", "scroll", "hidden"].includes(style.overflowX);
    const past = el.getBoundingClientRect().right > right && el.getBoundingClientRect().width > 0;
    if (wide || past) {
      reported.push(el);
      found.push(`${el.tagName.toLowerCase()}.${(el.className || "").toString().split(" ")[0]}`
                 + ` (${wide ? el.scrollWidth + " px of content in " + el.clientWidth
                           : "reaches " + Math.round(el.getBoundingClientRect().right) + " px"})`
                 + `: ${(el.innerText || "").trim().slice(0, 60).replace(/\\s+/g, " ")}`);
    }
  }
  document.body.setAttribute("data-klom-overflow", JSON.stringify(found));
}, 500));
</script>"""


class LoggingHandler(SimpleHTTPRequestHandler):
    """Serves files and records (path, status) of every request; with ``?overflow`` in the
    URL, an HTML page comes with :data:`OVERFLOW_SCRIPT` before ``</body>``."""

    log: list = []

    def do_GET(self):
        url = urlparse(self.path)
        if url.query != "overflow" or not url.path.endswith(".html"):
            return super().do_GET()
        path = Path(self.translate_path(url.path))
        body = path.read_text(encoding="utf-8").replace("</body>", OVERFLOW_SCRIPT + "</body>")
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code="-", size="-"):
        self.log.append((unquote(urlparse(self.path).path), int(code) if str(code).isdigit() else code))

    def log_message(self, format, *args):  # keep the console quiet
        pass


class ImageSources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            src = dict(attrs).get("src")
            if src:
                self.sources.append(src)


def local_images(page: Path, page_url: str) -> list[str]:
    """URL paths of the images of a page that are served from the site itself."""
    parser = ImageSources()
    parser.feed(page.read_text(encoding="utf-8"))
    out = []
    for src in parser.sources:
        url = urlparse(urljoin(page_url, src))
        if url.scheme in ("http", "https") and url.netloc == urlparse(page_url).netloc:
            out.append(unquote(url.path))
    return out


def find_browser(name: str | None) -> str:
    for candidate in ([name] if name else BROWSERS):
        path = shutil.which(candidate)
        if path:
            return path
    raise SystemExit(
        f"no headless browser found (tried {name or ', '.join(BROWSERS)}); on Debian: "
        f"apt-get install -y chromium"
    )


def blank(png: Path) -> bool:
    """True if the screenshot has (almost) a single colour."""
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    return float(img[..., :3].std()) < 0.01


def screenshot(browser: str, url: str, png: Path, width: int, height: int, timeout: int) -> None:
    with tempfile.TemporaryDirectory(prefix="klom-chromium-") as profile:
        cmd = [browser, *CHROME_FLAGS, f"--user-data-dir={profile}",
               f"--window-size={width},{height}", "--virtual-time-budget=5000",
               f"--screenshot={png}", url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not png.exists():
        raise RuntimeError(
            f"{browser} failed on {url} (exit status {proc.returncode}):\n{proc.stderr[-2000:]}"
        )


def overflowing(browser: str, url: str, width: int, height: int, timeout: int) -> list[str]:
    """What the page at ``url`` clips at ``width`` (see :data:`OVERFLOW_SCRIPT`)."""
    import json

    with tempfile.TemporaryDirectory(prefix="klom-chromium-") as profile:
        cmd = [browser, *CHROME_FLAGS, f"--user-data-dir={profile}",
               f"--window-size={width},{height}", "--virtual-time-budget=5000", "--dump-dom",
               url + "?overflow"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    found = re.search(r'data-klom-overflow="([^"]*)"', proc.stdout)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"{browser} --dump-dom failed on {url} (exit status "
                           f"{proc.returncode}):\n{proc.stderr[-2000:]}")
    import html

    return json.loads(html.unescape(found.group(1)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", default=str(HTML), help="the built site (default: _build/html)")
    parser.add_argument("--out", default=str(ROOT / "_build" / "screenshots"),
                        help="where to write the PNGs (default: _build/screenshots)")
    parser.add_argument("--pages", nargs="*", default=None,
                        help="pages to check, relative to the site (default: index.html and every "
                        "notebooks/*.html)")
    parser.add_argument("--browser", default=None, help=f"browser binary (default: first of {BROWSERS})")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2400)
    parser.add_argument("--timeout", type=int, default=120, help="seconds per page")
    parser.add_argument("--allow-clipped", action="store_true",
                        help="do not check that nothing in the article is clipped at --width")
    parser.add_argument("--allow-no-figures", action="store_true",
                        help="do not require at least one figure (an image under _images/) per page")
    args = parser.parse_args(argv)

    site, out = Path(args.html).resolve(), Path(args.out).resolve()
    if not (site / "index.html").exists():
        print(f"{site}/index.html does not exist: build the book first (make book)", file=sys.stderr)
        return 1
    pages = args.pages or ["index.html"] + sorted(
        str(p.relative_to(site)) for folder in ("notebooks", "book")
        for p in (site / folder).glob("*.html"))
    browser = find_browser(args.browser)
    out.mkdir(parents=True, exist_ok=True)

    handler = functools.partial(LoggingHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    failures = []
    try:
        for page in pages:
            url = urljoin(base, page)
            png = out / (re.sub(r"[^A-Za-z0-9_.-]+", "_", page.removesuffix(".html")) + ".png")
            png.unlink(missing_ok=True)
            LoggingHandler.log.clear()
            try:
                screenshot(browser, url, png, args.width, args.height, args.timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                failures.append(f"{page}: {err}")
                continue
            served = {}
            for path, code in LoggingHandler.log:
                served.setdefault(path, set()).add(code)
            # index.html is a redirect page: follow it to the page actually shown.
            html_file = site / page
            shown = [p for p in served if p.endswith(".html") and p != "/" + page]
            if page == "index.html" and shown:
                html_file = site / shown[-1].lstrip("/")
            images = local_images(html_file, urljoin(base, str(html_file.relative_to(site))))
            not_loaded = [i for i in images if 200 not in served.get(i, set())]
            # Browsers ask for /favicon.ico on their own; the book does not promise one.
            missing = sorted(p for p, codes in served.items() if 404 in codes and p != "/favicon.ico")
            problems = []
            figures = [i for i in images if "/_images/" in i]
            if not figures and not args.allow_no_figures and page.startswith("notebooks/"):
                problems.append("no figure (no image under _images/) on the page")
            if not_loaded:
                problems.append(f"images not loaded by the browser: {not_loaded}")
            if missing:
                problems.append(f"requests answered 404: {missing}")
            if blank(png):
                problems.append("the screenshot is blank")
            if not args.allow_clipped:
                try:
                    clipped = overflowing(browser, urljoin(base, str(html_file.relative_to(site))),
                                          args.width, args.height, args.timeout)
                except (RuntimeError, subprocess.TimeoutExpired) as err:
                    clipped = [f"could not check: {err}"]
                problems += [f"clipped at {args.width} px: {c}" for c in clipped]
            status = "OK" if not problems else "FAILED"
            shown_as = f" (shows {html_file.relative_to(site)})" if html_file != site / page else ""
            print(f"{status:6s} {page}{shown_as}: {len(images) - len(not_loaded)} of "
                  f"{len(images)} local image(s) loaded ({len(figures)} figure(s)), "
                  f"{len(served)} files served -> "
                  f"{png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
            failures += [f"{page}: {p}" for p in problems]
    finally:
        server.shutdown()
    if failures:
        print("\n".join(["", "screenshot check FAILED:"] + failures), file=sys.stderr)
        return 1
    print(f"screenshot check passed: {len(pages)} page(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
