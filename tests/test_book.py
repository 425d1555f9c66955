"""The book (``saa_lib.workbook.book``, ``make book``): the executed series rendered by Sphinx + MyST-NB, read as HTML and in a
real browser.

Which run it renders: under ``make test``, the notebooks as nbval executed them (``SAA_EXECUTED``: written by
``notebooks/conftest.py``), so the series is not executed twice; run alone, the series executed here with papermill
at ``n_images=1``. Checks: a page for every notebook and docs page, every local link and image resolves, no asset
from the network, no error output, the random-weight warning wherever the run used random weights, cells tagged
``remove-cell`` / ``remove-input`` / ``remove-output`` removed, a failing notebook fails the build, and in Chromium:
every figure loads and MathJax renders the maths. Screenshots go to ``results/book-screenshots/`` (printed; replaced
by each run).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from saa_lib.workbook.book import WIDGET_NOTE, sphinx_build
from saa_lib.workbook import BANNER, NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]
#: the series as nbval executed it (make test), rendered instead of executing it again
EXECUTED = os.environ.get("SAA_EXECUTED")
#: the stage cache of the caller (read before conftest gives each test its own SAA_HOME)
SERIES_HOME = os.environ.get("SAA_HOME")
#: images per category when the series is executed here (the notebooks' default is 2)
N_IMAGES = 1
VIEWPORT = {"width": 1280, "height": 900}
#: where the browser test leaves its screenshots (results/ is not tracked)
SCREENSHOTS = ROOT / "results" / "book-screenshots"


# ------------------------------------------------------------------------------------------------- the build
def run_book(tmp: Path, *args: str, home: str | None = None) -> subprocess.CompletedProcess:
    """``python -m saa_lib.workbook.book ARGS`` in ``tmp`` (temporary Jupyter / matplotlib dirs; ``SAA_HOME``: ``home``)."""
    env = {**os.environ, "SAA_HOME": home or str(tmp / "saa"), "MPLCONFIGDIR": str(tmp / "mpl"),
           "IPYTHONDIR": str(tmp / "ipython"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return subprocess.run([sys.executable, "-m", "saa_lib.workbook.book", "--no-progress", *args], env=env, cwd=tmp,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def book(tmp_path_factory, browser_report) -> Path:
    """The built book's folder (``html/``, ``executed/``, ``run.json``)."""
    tmp = tmp_path_factory.mktemp("book")
    out = tmp / "book"
    if EXECUTED:
        missing = [n for n in NOTEBOOKS if not (Path(EXECUTED) / f"{n}.ipynb").is_file()]
        assert not missing, f"nbval did not run {missing} to the end (no executed copy in {EXECUTED})"
        source, args = "nbval's run of the series", ["--executed", EXECUTED]
    else:
        source, args = f"the series executed here at n_images={N_IMAGES}", ["--n-images", str(N_IMAGES)]
    t0 = time.perf_counter()
    proc = run_book(tmp, "--out", str(out), *args, home=SERIES_HOME)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, f"the book did not build:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert f"book: {out / 'html' / 'index.html'}" in proc.stdout  # says where the book is
    run = json.loads((out / "run.json").read_text())
    browser_report.append(f"book: built from {source} in {seconds:.0f} s (executing {run['seconds']['execute']:.0f} s,"
                          f" rendering {run['seconds']['render']:.0f} s): {out / 'html'}")
    print(browser_report[-1])
    return out


class Page(HTMLParser):
    """What the checks read from one HTML page: its links and asset references, its ids, its text, and the classes
    and text of every MyST-NB output block."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str]] = []  # (tag, url)
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.outputs: list[tuple[list[str], list[str]]] = []  # (classes, text pieces) of each output block
        self._divs: list[int | None] = []  # for each open <div>: the index of the output block it opens, or None
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key) and tag in ("a", "img", "link", "script", "source", "iframe", "video", "audio"):
                self.refs.append((tag, a[key]))
        if tag == "div":
            classes = (a.get("class") or "").split()
            self._divs.append(len(self.outputs) if "output" in classes else None)
            if "output" in classes:
                self.outputs.append((classes, []))

    def handle_endtag(self, tag):
        if tag == "div" and self._divs:
            self._divs.pop()

    def handle_data(self, data):
        self.text.append(data)
        for i in self._divs:
            if i is not None:
                self.outputs[i][1].append(data)

    def page_text(self) -> str:
        return "".join(self.text)

    def output_texts(self) -> list[tuple[list[str], str]]:
        return [(classes, "".join(pieces)) for classes, pieces in self.outputs]


def pages(html: Path) -> dict[Path, Page]:
    """Every page of the book (``_static/`` holds the theme's template snippets, which are not pages)."""
    return {p: Page(p) for p in sorted(html.rglob("*.html")) if "_static" not in p.relative_to(html).parts}


@pytest.fixture(scope="module")
def parsed(book) -> dict[Path, Page]:
    return pages(book / "html")


def notebook_title(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "markdown")
    return first.source.split("\n")[0].lstrip("# ").strip()


# ------------------------------------------------------------------------------------------------- the pages
def test_every_notebook_and_docs_page_is_in_the_book(book, parsed):
    html = book / "html"
    index = parsed[html / "index.html"]
    nav = {unquote(urlsplit(url).path) for tag, url in index.refs if tag == "a"}
    for name in NOTEBOOKS:
        page = html / "notebooks" / f"{name}.html"
        assert page.is_file(), f"no page for notebook {name}"
        assert f"notebooks/{name}.html" in nav, f"the landing page does not list {name}"
        title = notebook_title(ROOT / "notebooks" / f"{name}.ipynb")
        # the page's title: the notebook's own (maths as MathJax source)
        assert re.sub(r"\$([^$]*)\$", r"\\(\1\\)", title) in parsed[page].page_text(), name
    docs = ["ARCHITECTURE", "this_build"] + [f"docs/{p.stem}" for p in sorted((ROOT / "docs").glob("*.md"))]
    for doc in docs:
        assert (html / f"{doc}.html").is_file(), f"no page for {doc}"
        assert f"{doc}.html" in nav, f"{doc}.md is not in the book's navigation: add it to book/index.md's toctree"
    text = index.page_text()
    assert "How to run it" in text and "make book" in text


def test_local_links_and_images_resolve_and_nothing_comes_from_the_network(book, parsed):
    html = book / "html"
    broken, remote = [], []
    for path, page in parsed.items():
        for tag, url in page.refs:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") or url.startswith("//"):
                if tag != "a":  # a link to another site is fine; an asset the page needs is not
                    remote.append(f"{path.relative_to(html)}: <{tag}> {url}")
                continue
            if parts.scheme in ("mailto", "data", "javascript"):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.exists():
                broken.append(f"{path.relative_to(html)}: <{tag}> {url}")
            elif parts.fragment and target.suffix == ".html" and target in parsed \
                    and unquote(parts.fragment) not in parsed[target].ids:
                broken.append(f"{path.relative_to(html)}: <{tag}> {url} (no such anchor)")
    assert not broken, "broken local references:\n" + "\n".join(broken[:20])
    assert not remote, "assets from the network:\n" + "\n".join(remote[:20])
    images = [url for page in parsed.values() for tag, url in page.refs if tag == "img"]
    assert len(images) >= 2 * len(NOTEBOOKS), f"only {len(images)} figures in the book"
    assert (html / "_static" / "mathjax" / "MathJax.js").is_file()


def test_no_page_shows_an_error(parsed):
    failed = []
    for path, page in parsed.items():
        for classes, text in page.output_texts():
            if "traceback" in classes or "error" in classes:
                failed.append(f"{path.name}: error output {text[:200]!r}")
            elif "stderr" in classes and re.search(r"Traceback|^\w*(Error|Exception)\b", text, re.MULTILINE):
                failed.append(f"{path.name}: stderr {text[:200]!r}")
        if "Traceback (most recent call last)" in page.page_text():
            failed.append(f"{path.name}: a traceback")
    assert not failed, "\n".join(failed)


def test_random_weight_warning_wherever_the_run_used_random_weights(book, parsed):
    warned = 0
    for name in NOTEBOOKS:
        nb = nbformat.read(book / "executed" / f"{name}.ipynb", as_version=4)
        printed = any(BANNER.upper() in o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        page = parsed[book / "html" / "notebooks" / f"{name}.html"]
        text = page.page_text()
        if printed:  # the warning under the title, before any output, and the set-up output's banner itself
            warned += 1
            assert BANNER in text and text.index(BANNER) < text.index(BANNER.upper()), name
            assert any(BANNER.upper() in t for _, t in page.output_texts()), name
        else:
            assert BANNER not in text, f"{name}: warned although no output was made with random weights"
    assert warned >= len(NOTEBOOKS) - 1, "the book's run uses tiny models: nearly every page must warn"


def test_no_widget_or_progress_bar_left(book, parsed):
    for name in NOTEBOOKS:
        page = parsed[book / "html" / "notebooks" / f"{name}.html"]
        text = "".join(t for _, t in page.output_texts())
        assert not re.search(r"\d+%\|", text), f"{name}: a progress bar is shown"
        assert "VBox(" not in text and "HBox(" not in text, f"{name}: a widget's text form is shown"
    explorer = parsed[book / "html" / "notebooks" / "06_saa_plus.html"].page_text()
    assert WIDGET_NOTE.strip("*").split("(")[0] in explorer


def test_cells_tagged_for_removal_are_removed(book, parsed):
    """In the series' own pages (whichever cells are tagged) and on a small notebook built with the book's conf."""
    for name in NOTEBOOKS:
        nb = nbformat.read(book / "executed" / f"{name}.ipynb", as_version=4)
        page = parsed[book / "html" / "notebooks" / f"{name}.html"]
        code = page.page_text()
        for cell in nb.cells:
            tags = set(cell.metadata.get("tags", []))
            line = next((ln.strip() for ln in cell.source.splitlines() if len(ln.strip()) > 20), "")
            if line and tags & {"remove-cell", "remove-input"}:
                assert line not in code, f"{name}: a cell tagged {sorted(tags)} is shown"


def test_a_failing_notebook_fails_the_build(tmp_path):
    """Executed with papermill: 00 runs, 01 cannot load the official models (no weights here) and fails; the
    build stops with a message naming it and leaves no book."""
    proc = run_book(tmp_path, "--out", str(tmp_path / "book"), "--models", "official",
                    "--notebooks", "00_setup_and_data,01_baseline_saa")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("book: notebooks failed") and "01_baseline_saa" in last and "00_setup" not in last, last
    assert not (tmp_path / "book").exists()


def test_an_error_output_fails_the_build(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    cell = nbformat.v4.new_code_cell("1 / 0", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                                           traceback=[])]
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), cell]),
                   executed / "00_setup_and_data.ipynb")
    (executed / "report.json").write_text(json.dumps(
        {"parameters": {"models": "tiny", "dataset": "synthetic"},
         "notebooks": [{"notebook": "00_setup_and_data", "seconds": 1.0, "error": ""}]}))
    proc = run_book(tmp_path, "--out", str(tmp_path / "book"), "--executed", str(executed))
    assert proc.returncode == 1
    assert "00_setup_and_data.ipynb: the executed notebook shows errors (cell 1: ZeroDivisionError" in proc.stderr
    assert not (tmp_path / "book").exists()


def test_removal_tags_on_a_small_notebook(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "book", src, ignore=shutil.ignore_patterns("*.md"))
    # each cell's input holds its marker in lower case, its output in upper case
    cells = [nbformat.v4.new_markdown_cell("# Tags")]
    for tag in ("shown", "remove-cell", "remove-input", "remove-output"):
        cell = nbformat.v4.new_code_cell(f"print('{tag}'.upper())", metadata={"tags": [tag]}, execution_count=1)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=tag.upper() + "\n")]
        cells.append(cell)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), src / "index.ipynb")
    sphinx_build(src, tmp_path / "html", tmp_path / "doctrees")
    text = Page(tmp_path / "html" / "index.html").page_text()
    assert "shown" in text and "SHOWN" in text
    assert "remove-cell" not in text and "REMOVE-CELL" not in text
    assert "remove-input" not in text and "REMOVE-INPUT" in text
    assert "remove-output" in text and "REMOVE-OUTPUT" not in text


# ------------------------------------------------------------------------------------------------- in Chromium
#: MathJax (2) has typeset the page: its queue is empty, its web fonts are loaded and every maths element of Sphinx's
#: (``.math.notranslate``) holds MathJax's output (span.MathJax)
MATHS_RENDERED = """() => window.MathJax && MathJax.isReady && MathJax.Hub.queue.pending === 0
    && MathJax.Hub.queue.running === 0 && document.fonts.status === 'loaded'
    && Array.from(document.querySelectorAll('.math.notranslate')).every(e => e.querySelector('.MathJax'))"""
#: the article's text outside code, scripts and MathJax's hidden copies: where raw LaTeX would show
PROSE = """() => { const a = document.querySelector('article').cloneNode(true);
    a.querySelectorAll('pre, code, script, .MJX_Assistive_MathML').forEach(e => e.remove());
    return a.textContent; }"""


def test_book_in_a_real_browser(book, browser_report):
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -r requirements.txt)")
    from test_browser import chromium_path  # the system Chromium, or SAA_CHROMIUM

    if chromium_path() is None:
        pytest.skip("Chromium not found: install it (Debian: apt-get install chromium) or set SAA_CHROMIUM=PATH")
    from playwright.sync_api import sync_playwright

    html = book / "html"
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    network = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=args)
        page = browser.new_page(viewport=VIEWPORT)
        page.on("request", lambda r: network.append(r.url) if urlsplit(r.url).scheme in ("http", "https") else None)
        try:
            for shot, rel in (("index", "index.html"), ("06_saa_plus", "notebooks/06_saa_plus.html")):
                page.goto((html / rel).as_uri())
                page.wait_for_load_state("load")
                page.wait_for_function(MATHS_RENDERED, timeout=60000)
                rendered = page.evaluate("document.querySelectorAll('.math.notranslate .MathJax').length")
                assert rendered > 0, f"{rel}: MathJax rendered nothing"
                prose = page.evaluate(PROSE)
                assert "\\mathcal" not in prose and "\\(" not in prose, f"{rel}: raw LaTeX is shown"
                page.screenshot(path=SCREENSHOTS / f"{shot}.png")
                images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), "
                                       "i.complete && i.naturalWidth > 0])")
                assert all(ok for _, ok in images), f"{rel}: figures not loaded: {[s for s, ok in images if not ok]}"
                if rel.startswith("notebooks/"):
                    assert len(images) >= 3, f"{rel}: {len(images)} figures"
                    assert page.locator(".admonition.warning", has_text=BANNER).count() == 1
                    page.locator("div.cell_output img").first.scroll_into_view_if_needed()
                    page.screenshot(path=SCREENSHOTS / f"{shot}_figure.png")
                    page.screenshot(path=SCREENSHOTS / f"{shot}_full.png", full_page=True)
        finally:
            browser.close()
    assert not network, f"the book fetched from the network: {network[:5]}"
    browser_report.append(f"book in Chromium: figures and maths rendered; screenshots in {SCREENSHOTS}")
    print(browser_report[-1])
