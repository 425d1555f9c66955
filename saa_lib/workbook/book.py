"""The book: the notebook series executed once with papermill (:func:`saa_lib.workbook.report.run_report`), then
rendered as a static HTML site by Sphinx + MyST-NB from the executed copies, without executing them again.

:func:`build` (``python -m saa_lib.workbook.book``, ``make book``) writes ``<out>/`` as a unit: ``html/index.html``
(the book), ``executed/`` (the executed notebooks, as :func:`saa_lib.workbook.report.run_report` writes them) and
``run.json``. The Sphinx source is assembled in a scratch folder from ``book/`` (``conf.py``, the landing page,
``_static/``), the executed notebooks, ``ARCHITECTURE.md``, ``docs/*.md`` and the project's files these pages link
to; MathJax is copied from the ``jupyter-server-mathjax`` package, so the book needs no network to build or to read.
A notebook that fails, or an error output in an executed notebook, fails the build with a message naming it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

#: the page Sphinx writes for the landing page, relative to ``<out>``
INDEX = Path("html") / "index.html"
#: outputs of interactive widgets (no state is stored by papermill): progress bars are dropped, any other widget is
#: replaced by :data:`WIDGET_NOTE`
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PROGRESS_BAR = re.compile(r"\d+%\|")  # the text form of a tqdm bar: "stage outputs:   0%|          | 0/4 [...]"
WIDGET_NOTE = ("*An interactive widget is here when the notebook runs in Jupyter (`make lab`); "
               "a static page cannot run it.*")


class BookError(RuntimeError):
    """The book cannot be built; the message names the notebook, file or setting and what to do."""


# --------------------------------------------------------------------------------------------------- locations
def book_sources() -> Path:
    """``<project>/book``: the Sphinx configuration and the pages written by hand."""
    from .series import project_root

    root = project_root()
    if root is None or not (root / "book" / "conf.py").is_file():
        raise BookError("the book is built from the source tree (book/ beside saa_lib/); run from a clone of the "
                        "project, installed with `pip install -e .`")
    return root / "book"


def mathjax_static() -> Path:
    """The MathJax 2 distribution shipped by the ``jupyter-server-mathjax`` package (``MathJax.js`` inside)."""
    try:
        import jupyter_server_mathjax
    except ImportError as err:
        raise BookError("jupyter-server-mathjax is not installed (it serves MathJax to the book offline): "
                        "pip install -r requirements.txt") from err
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (static / "MathJax.js").is_file():
        raise BookError(f"{static}: no MathJax.js in the jupyter-server-mathjax package; reinstall it")
    return static


# ------------------------------------------------------------------------------------------ executed notebooks
def error_outputs(nb) -> list[str]:
    """One line per output of ``nb`` that shows a failure: an error output, or a traceback printed to stderr."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue', '')}".splitlines()[0])
            elif out.get("name") == "stderr" and "Traceback (most recent call last)" in out.get("text", ""):
                found.append(f"cell {i}: a traceback on stderr")
    return found


def stream_texts(nb):
    """The text of every stream output (stdout, stderr) of ``nb``, in order."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                yield out.get("text", "")


def random_weight_models(nb) -> str | None:
    """The models line of the random-weight banner (:func:`saa_lib.workbook.banner`) if an output of ``nb`` prints
    it, else None: whether the run used random weights is read from the executed notebook itself."""
    from .series import BANNER

    for text in stream_texts(nb):
        if BANNER.upper() in text:
            found = re.search(r"^!!\s+models:\s*(.+)$", text, re.MULTILINE)
            return found.group(1).strip() if found else "random weights"
    return None


def banner_admonition(models_line: str) -> str:
    """The warning shown at the top of a page whose outputs were made (partly) with random-weight models."""
    from .series import BANNER

    return (f"```{{admonition}} {BANNER}\n:class: warning\n\nThis page was executed with random-weight models. "
            "Every map, score and table they made is noise: it tests the machinery only and says nothing about "
            "SAA+. Run the series with `models=\"official\"` and the official weights for real outputs.\n\n"
            f"Models: {models_line}.\n```")


def prepare_notebook(nb) -> list[str]:
    """Make an executed notebook ready for the book, in place; return what was changed (one line each).

    - when it printed the random-weight banner, a warning admonition goes right under its title;
    - widget outputs (their state is not stored): progress bars are dropped, other widgets become
      :data:`WIDGET_NOTE`.
    """
    changes = []
    models_line = random_weight_models(nb)
    if models_line:
        first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
        lines = (first.source if first is not None else "").split("\n")
        if first is None or not lines[0].startswith("# "):
            raise BookError("the notebook does not start with a markdown cell holding its '# ' title; the "
                            "random-weight warning goes under the title")
        first.source = "\n".join([lines[0], "", banner_admonition(models_line), *lines[1:]])
        changes.append("random-weight warning added")
    for cell in nb.cells:
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_MIME in data and PROGRESS_BAR.search(str(data.get("text/plain", ""))):
                changes.append("progress bar dropped")
                continue
            if WIDGET_MIME in data:
                out["data"] = {"text/markdown": WIDGET_NOTE}
                changes.append("widget replaced by a note")
            kept.append(out)
        if cell.cell_type == "code":
            cell.outputs = kept
    nb.metadata.pop("widgets", None)
    return changes


# ------------------------------------------------------------------------------------------------------ stages
def execute_series(executed: Path, models: str, n_images: int | None, notebooks, progress: bool) -> dict:
    """Run the series (or the ``notebooks`` named) with papermill into ``executed/``
    (:func:`saa_lib.workbook.report.run_report`); return its record. Raises :class:`BookError` naming every notebook that
    failed."""
    from .report import run_report

    try:
        rc = run_report(models=models, out=executed, max_images=n_images, notebooks=notebooks, progress=progress,
                        labels={"models": "--models", "n_images": "--n-images"})
    except RuntimeError as err:  # no kernel: it did not start or stopped answering
        raise BookError(f"the notebooks could not be executed: {err}") from err
    record = read_record(executed)
    if rc != 0:
        raise BookError("a notebook failed, the book is not built (see the lines above)")
    return record


def read_record(executed: Path) -> dict:
    """The record of an executed series (``report.json``: parameters, and each notebook's name, seconds and error),
    checked: raises :class:`BookError` when a notebook failed or its executed copy is missing."""
    try:
        record = json.loads((executed / "report.json").read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise BookError(f"{executed}: no report.json; pass the executed/ folder of an earlier book, `saa report` "
                        "output, or the folder nbval wrote (SAA_EXECUTED)") from err
    failed = [f"{s['notebook']} ({s['error']})" for s in record["notebooks"] if s["error"]]
    failed += [f"{s['notebook']} (no executed copy)" for s in record["notebooks"]
               if not s["error"] and not (executed / f"{s['notebook']}.ipynb").is_file()]
    if failed or not record["notebooks"]:
        raise BookError(f"notebooks failed, the book is not built: {'; '.join(failed) or 'none was executed'}")
    return record


def assemble(src: Path, executed: Path, record: dict) -> list[str]:
    """Write the Sphinx source folder ``src/``; return one line per notebook saying what was prepared."""
    import nbformat

    from ..safeio import write_text
    from .series import SAMPLES_MISSING, project_root

    root = project_root()
    shutil.copytree(book_sources(), src, ignore=shutil.ignore_patterns("__pycache__", "_build"))
    shutil.copytree(mathjax_static(), src / "_static" / "mathjax")
    shutil.copy2(root / "ARCHITECTURE.md", src / "ARCHITECTURE.md")
    (src / "docs").mkdir()
    for page in sorted((root / "docs").glob("*.md")):
        shutil.copy2(page, src / "docs" / page.name)
    lines, samples_found = [], True
    for name in [s["notebook"] for s in record["notebooks"]]:
        path = executed / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        samples_found = samples_found and not any(SAMPLES_MISSING in t for t in stream_texts(nb))
        errors = error_outputs(nb)
        if errors:
            raise BookError(f"{path}: the executed notebook shows errors ({'; '.join(errors)}); fix the notebook "
                            "before building the book")
        changes = prepare_notebook(nb)
        write_text(src / "notebooks" / f"{name}.ipynb", nbformat.writes(nb))
        lines.append(f"{name}: " + (", ".join(dict.fromkeys(changes)) or "as executed"))
    write_text(src / "this_build.md", this_build_page(record, samples_found))
    for rel in copy_linked_files(src, root):
        lines.append(f"linked from a page: {rel}")
    return lines


#: the target of a Markdown link or image: ``[text](target)``, ``![alt](target "title")``
LINK_TARGET = re.compile(r"\]\(\s*<?([^)\s>]+)")


def copy_linked_files(src: Path, root: Path) -> list[str]:
    """Copy into ``src`` every file of the project that a page of ``src`` links to (``../benchmarks/x/README.md``,
    ``../figures/x.png``, ``../saa_lib/config.py``) and that is not in ``src`` yet, at the same relative path, so the
    link works in the book: a Markdown file becomes a page outside the navigation (and its own links are followed),
    any other file is offered as a download. Returns the copied paths, relative to the project."""
    from ..safeio import write_text

    copied, queue = [], sorted(src.rglob("*.md")) + sorted(src.rglob("*.ipynb"))
    while queue:
        page = queue.pop(0)
        for target in LINK_TARGET.findall(page.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if not path or re.match(r"^[a-z][a-z0-9+.-]*:", path) or path.startswith("/"):
                continue  # an anchor on the page, a URL, an absolute path
            file = (root / page.parent.relative_to(src) / path).resolve()
            try:
                rel = file.relative_to(root.resolve())
            except ValueError:
                continue  # outside the project
            if not file.is_file() or (src / rel).exists() or rel.parts[0] in (".git", ".venv", "data", "results"):
                continue
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            if file.suffix == ".md":  # a page outside the navigation: front matter `orphan: true`
                text = file.read_text(encoding="utf-8")
                text = ("---\norphan: true\n" + text[4:]) if text.startswith("---\n") else \
                    ("---\norphan: true\n---\n" + text)
                write_text(src / rel, text)
                queue.append(src / rel)
            else:
                shutil.copy2(file, src / rel)
            copied.append(rel.as_posix())
    return copied


def this_build_page(record: dict, samples: bool) -> str:
    """The page that says how the book's outputs were made: parameters, whether the real samples were found (as the
    executed notebooks say), time per notebook."""
    from .series import BANNER, choose_saliency_backbone, is_meaningful, resolve_models

    from ..frames import markdown, table

    params = record["parameters"]
    models = params.get("models", "auto")
    kind = resolve_models(models, choose_saliency_backbone("auto"))  # "auto" looks in the weights folder once
    shown = models if kind == models else f"{models}` → `{kind}"
    settings = table([["models", f"`{shown}`" + ("" if is_meaningful(kind) else f" ({BANNER})")],
                      ["data set", f"`{params['dataset']}`" + (f" (`{params['root']}`)" if params.get("root") else "")],
                      ["images per category (`n_images`)", str(params.get("n_images", "the notebooks’ default"))],
                      ["real MVTec AD / MTD samples",
                       "found (`SAA_SAMPLES` or `../shared/data/samples`) and used by the notebooks that read them"
                       if samples else "not found: the notebooks used the synthetic set instead"]],
                     ["parameter", "value"])
    times = table([[f"[{s['notebook']}](notebooks/{s['notebook']}.ipynb)", s["seconds"]] for s in record["notebooks"]],
                  ["notebook", "seconds"], formats={"seconds": ".1f"})
    lines = ["# This build", "",
             f"The notebooks were executed once ({record.get('executed_by', 'papermill')}), then rendered without being "
             f"executed again; the book was built on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
             markdown(settings), markdown(times)]
    return "\n".join(lines)


def sphinx_build(src: Path, html: Path, doctrees: Path, quiet: bool = True) -> None:
    """Sphinx (HTML builder) on ``src`` into ``html``; raises :class:`BookError` when it fails."""
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-d", str(doctrees), str(src), str(html)]
    if quiet:
        cmd.insert(3, "-q")
    proc = subprocess.run(cmd, stdout=None if not quiet else subprocess.DEVNULL)
    if proc.returncode != 0:
        raise BookError(f"sphinx-build failed (exit {proc.returncode}) on {src}: see the messages above")


def build(out="results/book", models: str = "auto", n_images: int | None = None, executed=None, notebooks=None,
          progress: bool = True) -> Path:
    """Execute the series (or the ``notebooks`` named; or take the executed notebooks in ``executed``) and build the
    book into ``out/``, replacing an earlier book there only when the new one is complete. Returns the path of
    ``index.html``."""
    from ..safeio import ResultFolder, write_text

    started = time.perf_counter()
    with ResultFolder(out) as folder:
        staging = folder.path
        if executed is None:
            record = execute_series(staging / "executed", models, n_images, notebooks, progress)
        else:
            record = read_record(Path(executed).expanduser().absolute())
            shutil.copytree(Path(executed).expanduser().absolute(), staging / "executed")
        executed_s = time.perf_counter() - started
        for line in assemble(staging / "src", staging / "executed", record):
            print(f"book: {line}")
        t0 = time.perf_counter()
        sphinx_build(staging / "src", staging / "html", staging / "doctrees")
        for scratch in ("src", "doctrees", "jupyter_execute"):  # Sphinx's input and intermediate files
            shutil.rmtree(staging / scratch, ignore_errors=True)
        render_s = time.perf_counter() - t0
        write_text(staging / "run.json", json.dumps(
            {"command": "book", "parameters": record["parameters"], "notebooks": record["notebooks"],
             "seconds": {"execute": round(executed_s, 1), "render": round(render_s, 1)}}, indent=1))
    index = Path(folder.out) / INDEX
    print(f"book: executed in {executed_s:.0f} s, rendered in {render_s:.0f} s")
    print(f"book: {index}")
    return index


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m saa_lib.workbook.book", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/book", help="the book's folder (replaced as a whole when complete)")
    p.add_argument("--models", default="auto",
                   help="the notebooks' `models` parameter (default: auto, the official models when their weights "
                        "are in the weights folder, else the tiny ones)")
    p.add_argument("--n-images", type=int, default=None, help="the notebooks' `n_images` (default: theirs)")
    p.add_argument("--notebooks", default=None, help="comma-separated notebook names (default: the whole series)")
    p.add_argument("--executed", default=None,
                   help="render these executed notebooks (an earlier book's executed/ folder) instead of running")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.n_images is not None and args.n_images < 1:
        p.error(f"--n-images must be at least 1, got {args.n_images}")
    try:
        notebooks = [n.strip() for n in args.notebooks.split(",") if n.strip()] if args.notebooks else None
        build(args.out, args.models, args.n_images, args.executed, notebooks, progress=not args.no_progress)
    except BookError as err:
        print(f"book: {err}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as err:
        print(f"book: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
