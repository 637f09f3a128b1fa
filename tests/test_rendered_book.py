"""The book as a reader sees it: the HTML that `make book` renders (without executing the
chapters), read as text, and each chapter opened in a real browser (Debian's Chromium,
headless) at desktop and phone widths.

The HTML is the one `make test` renders in its book check (``_build/check/html``); when it
is missing or older than the sources it is rendered here the same way.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "check" / "html"
CHAPTERS = sorted(p.stem for p in (ROOT / "chapters").glob("*.md"))
SOURCES = ["_config.yml", "_toc.yml", "book", "chapters", "metabook"]


def newest_source() -> float:
    times = []
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        times += [p.stat().st_mtime for p in files if "__pycache__" not in p.parts]
    return max(times)


@pytest.fixture(scope="session")
def html() -> Path:
    """The rendered book, rendered again if any source is newer."""
    index = HTML / "index.html"
    if not index.exists() or index.stat().st_mtime < newest_source():
        bin_dir = Path(sys.executable).parent
        subprocess.run([bin_dir / "jupyter-book", "config", "sphinx", "."], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT / "book" / "_ext")}
        command = [bin_dir / "sphinx-build", "-b", "html", "-q", "-c", ".", "-D",
                   "nb_execution_mode=off", ".", str(HTML)]  # fmt: skip
        try:
            subprocess.run(command, cwd=ROOT, env=env, check=True)
        finally:
            (ROOT / "conf.py").unlink(missing_ok=True)
    return HTML


def page(html: Path, chapter: str) -> str:
    return (html / "chapters" / f"{chapter}.html").read_text(encoding="utf-8")


def body_text(source: str) -> str:
    """The visible text of a page's article: no scripts, no code, no tags."""
    article = source[source.find("<article") : source.find("</article>")]
    article = re.sub(r"<(script|style|pre|code)\b.*?</\1>", " ", article, flags=re.S)
    article = re.sub(r'<span class="math[^"]*">.*?</span>', " ", article, flags=re.S)
    article = re.sub(r'<div class="math[^"]*">.*?</div>', " ", article, flags=re.S)
    return re.sub(r"<[^>]+>", " ", article)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_chapter_page_reads_as_it_should(html, chapter):
    source = page(html, chapter)
    assert len(source.encode()) < 1_000_000, "a chapter page should stay under 1 MB of HTML"
    assert "stderr" not in source, "an stderr output box was rendered"
    assert not re.search(r"\d+%\|", source), "a progress bar was rendered"
    # every Markdown results table is an HTML table, not a paragraph of | characters
    assert not re.search(r"<p>\s*\|[^<]*\|", source)
    for image in re.findall(r"<img\b[^>]*>", source):
        alt = re.search(r'alt="([^"]*)"', image)
        assert alt and alt.group(1).strip(), f"an image without alt text: {image[:120]}"
        src = re.search(r'src="([^"]+)"', image).group(1)
        if not src.startswith(("http", "data:")):
            assert (html / "chapters" / src).resolve().exists(), src
    text = body_text(source)
    for raw in ("{cite}", "{cite:t}", "{numref}", "{ref}", "{eq}", "??"):
        assert raw not in text, f"unrendered {raw} in the text"
    assert "$" not in text, "unrendered $ math in the text"


def test_results_tables_are_tables(html):
    """The results tables of the metric, model-based and applications chapters."""
    counts = {c: page(html, c).count("<table") for c in CHAPTERS}
    assert counts["04_metric_learning"] >= 4 and counts["06_applications"] >= 5, counts
    assert counts["05_model_based"] >= 1, counts


def test_the_bibliography_links_every_entry_and_labels_it_as_the_text_cites(html):
    source = (html / "book" / "bibliography.html").read_text(encoding="utf-8")
    entries = re.findall(r'<div class="citation"[^>]*>.*?</div>', source, flags=re.S)
    assert len(entries) >= 29
    for entry in entries:
        label = re.sub(r"<[^>]+>", "", re.search(r'class="label">(.*?)</span>\s*<', entry,
                                                 flags=re.S).group(1))  # fmt: skip
        assert re.fullmatch(r"\[[^\]]+, \d{4}[a-z]?\]", label.strip()), label
        assert re.search(r'href="https?://', entry), f"no link in {label}"
    assert "Jürgen Schmidhuber" in source and "Temčinas" in source  # diacritics render


def test_the_site_serves_mathjax_itself_and_has_a_favicon(html):
    source = page(html, "03_maml_reptile")
    src = re.search(r'<script[^>]*src="([^"]*mathjax[^"]*)"', source).group(1)
    assert not src.startswith("http"), "MathJax must be served with the site (offline copy)"
    assert (html / "chapters" / src.split("?")[0]).resolve().exists()
    assert 'rel="icon"' in source and "favicon.svg" in source
    assert source.count("const THEBE_JS_URL") <= 1


# -- in a real browser ------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        message = "Debian's chromium and chromium-driver are needed: apt-get install "
        message += "chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(flag)  # fmt: skip
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(html):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


PROBE = """
const done = arguments[arguments.length - 1];
const loaded = new Promise(resolve => {
  if (document.readyState === 'complete') resolve(); else addEventListener('load', resolve);
});
const typeset = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)
    ? MathJax.startup.promise : Promise.resolve();
const timeout = new Promise(resolve => setTimeout(resolve, 20000));
loaded.then(() => Promise.race([typeset(), timeout])).then(() => {
  const article = document.querySelector('article') || document.body;
  const pres = [...document.querySelectorAll('div.cell_input pre, div.highlight pre')];
  done({
    height: document.documentElement.scrollHeight,
    math: document.querySelectorAll('mjx-container').length,
    raw: (article.innerText.match(/\\\\\\(|\\\\\\[/g) || []).length,
    overflowing: pres.filter(p => p.scrollWidth > p.clientWidth + 1).length,
  });
});
"""


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_chapter_in_a_browser_at_desktop_and_phone_widths(browser, site, chapter):
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    browser.set_script_timeout(60)
    for name, width, height in (("desktop", 1280, 900), ("phone", 390, 844)):
        browser.set_window_size(width, height)
        browser.get(f"{site}/chapters/{chapter}.html")
        seen = browser.execute_async_script(PROBE)
        browser.save_screenshot(str(shots / f"{chapter}-{name}.png"))
        assert seen["math"] > 0, f"{name}: MathJax typeset nothing"
        assert seen["raw"] == 0, f"{name}: raw \\( or \\[ left in the page"
        assert seen["height"] < 150_000, f"{name}: the page is {seen['height']} px tall"
        if name == "desktop":
            assert seen["overflowing"] == 0, "code that scrolls sideways at 1280 px"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
