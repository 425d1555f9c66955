"""Reports: the tables in the layout of the paper as DataFrames (Table 1, methods x categories, or its transpose;
Table 2, the ablation), shown in a notebook (:func:`show`) or written as markdown (:func:`write_report`), and
:func:`run_report`, which executes the notebook series with papermill (executed notebooks, their HTML and figures) as a
report."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import frames
from ..tables import load_tables
from ..safeio import write_text

VARIANT_LABELS = {
    "saa": "SAA",
    "saa_plus": "SAA+",
    "saa_plus-no_language": "SAA+ w/o P^L",
    "saa_plus-no_property": "SAA+ w/o P^P",
    "saa_plus-no_saliency": "SAA+ w/o P^S",
    "saa_plus-no_confidence": "SAA+ w/o P^C",
    "saliency_only": "P^S map only",
}
#: how a metric key is named in table headers
METRIC_LABELS = {"pixel_max_f1": "max-F1-pixel", "pixel_auroc": "pixel AUROC", "aupro": "AUPRO@0.3",
                 "image_auroc": "image AUROC", "image_max_f1": "image max-F1", "region_f1": "region F1"}
_PAPER_KEYS = {"saa": ("table1", "SAA"), "saa_plus": ("table1", "SAA_plus"),
               "saa_plus-no_language": ("table2_ablation", "no_language"),
               "saa_plus-no_property": ("table2_ablation", "no_property"),
               "saa_plus-no_saliency": ("table2_ablation", "no_saliency"),
               "saa_plus-no_confidence": ("table2_ablation", "no_confidence")}


def paper_value(variant: str, dataset: str) -> float | None:
    """The paper's max-F1-pixel (percent) for a variant on ``mvtec`` / ``visa``, if it reports one."""
    if variant not in _PAPER_KEYS or dataset not in ("mvtec", "visa"):
        return None
    table, key = _PAPER_KEYS[variant]
    return load_tables()["results_paper"][table][key][dataset]


def header(models_line: str, meaningful: bool, dataset: str, extra: str = "") -> str:
    """The lines every report starts with: which models made it, and a warning when they are not meaningful."""
    lines = [f"Models: {models_line}", f"Dataset: {dataset}"]
    if not meaningful:
        lines.append("**NOT MEANINGFUL: made with random-weight (tiny / random) models. These numbers test the "
                     "machinery only; they say nothing about SAA+.**")
    if extra:
        lines.append(extra)
    return "\n\n".join(lines) + "\n\n"


def defined_mean(values) -> float:
    """Mean of the finite values; nan when there is none (no numpy warning)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def undefined_notes(runs, metric: str) -> list[str]:
    """``"<category>: <reason>"`` for each category whose ``metric`` is undefined, once per category."""
    notes: dict[str, str] = {}
    for r in runs:
        if not np.isfinite(r.metrics[metric]):
            notes.setdefault(r.category, getattr(r, "undefined", {}).get(metric, "undefined"))
    return [f"{c}: {why}" for c, why in notes.items()]


def _notes(runs, metric: str) -> str:
    notes = undefined_notes(runs, metric)
    return "n/a = undefined, left out of the means: " + "; ".join(notes) + "." if notes else ""


NOT_APPLICABLE = frames.NOT_APPLICABLE


def metric_table(runs, metric: str = "pixel_max_f1", dataset: str = "", transpose: bool = False) -> pd.DataFrame:
    """``metric`` in percent, one value per (variant, category), with the mean over categories, as a DataFrame.

    Table 1 layout: index ``method`` (one row per variant, labelled as in :data:`VARIANT_LABELS`), one column per
    category, then ``mean``, and ``paper (mean)`` with the paper's number for ``dataset`` when it reports one for
    any of the variants (``-`` where it reports none). ``transpose=True``: index ``category`` (one row per category),
    a column ``n`` (its number of images), one column per variant, then the rows ``mean`` and ``paper (mean)``. An
    undefined value is NaN (shown ``n/a``), left out of the mean, and its reason is in ``attrs["notes"]``.
    """
    variants = list(dict.fromkeys(r.variant for r in runs))
    cats = list(dict.fromkeys(r.category for r in runs))
    val = {(r.variant, r.category): 100 * r.metrics[metric] for r in runs}
    cells = {v: [val.get((v, c), np.nan) for c in cats] for v in variants}
    means = {v: defined_mean(cells[v]) for v in variants}
    paper = {v: paper_value(v, dataset) for v in variants}
    show_paper = any(p is not None for p in paper.values())
    paper_cell = {v: NOT_APPLICABLE if p is None else float(p) for v, p in paper.items()}
    labels = [VARIANT_LABELS.get(v, v) for v in variants]
    notes = _notes(runs, metric)
    if transpose:
        n = {r.category: len(r.labels) for r in runs}
        rows = [[c, n[c], *(cells[v][j] for v in variants)] for j, c in enumerate(cats)]
        rows.append(["mean", NOT_APPLICABLE, *(means[v] for v in variants)])
        if show_paper:
            rows.append(["paper (mean)", NOT_APPLICABLE, *(paper_cell[v] for v in variants)])
        return frames.table(rows, ["category", "n", *labels], index="category", formats={"n": "d"}, notes=notes)
    cols = ["method", *cats, "mean"] + (["paper (mean)"] if show_paper else [])
    rows = [[label, *cells[v], means[v]] + ([paper_cell[v]] if show_paper else []) for v, label in zip(variants, labels)]
    return frames.table(rows, cols, index="method", notes=notes)


def ablation_table(runs, metric: str = "pixel_max_f1", dataset: str = "") -> pd.DataFrame:
    """Table 2 layout as a DataFrame: index ``variant`` (one row per variant), the mean of ``metric`` over categories
    in percent, its change against full SAA+ (``Δ vs SAA+``, when ``saa_plus`` is among the runs; ``-`` on the SAA+
    row itself) and the paper's number (``-`` where it reports none). Undefined values are left out of the means (NaN,
    shown ``n/a``, when none is defined)."""
    variants = list(dict.fromkeys(r.variant for r in runs))
    mean = {v: 100 * defined_mean([r.metrics[metric] for r in runs if r.variant == v]) for v in variants}
    full = mean.get("saa_plus")
    name = f"mean {METRIC_LABELS.get(metric, metric)}"
    cols = ["variant", name] + ([] if full is None else ["Δ vs SAA+"]) + ["paper"]
    rows = []
    for v in variants:
        p = paper_value(v, dataset) if metric == "pixel_max_f1" else None
        delta = NOT_APPLICABLE if v == "saa_plus" else None if full is None else mean[v] - full
        rows.append([VARIANT_LABELS.get(v, v), mean[v]] + ([] if full is None else [delta])
                    + [NOT_APPLICABLE if p is None else float(p)])
    return frames.table(rows, cols, index="variant", formats={"Δ vs SAA+": "+.2f"}, notes=_notes(runs, metric))


def write_report(path: Path, title: str, head: str, sections: dict) -> Path:
    """A markdown file, written atomically: title, header, then ``{section title: DataFrame or markdown text}`` (a
    DataFrame by :func:`saa_lib.frames.markdown`)."""
    body = [f"# {title}\n", head] + [f"## {k}\n\n{as_markdown(v)}" for k, v in sections.items()]
    return write_text(path, "\n".join(body))


def as_markdown(table) -> str:
    """A DataFrame as markdown (:func:`saa_lib.frames.markdown`); text as it is."""
    return frames.markdown(table) if isinstance(table, pd.DataFrame) else str(table)


def show(tables, head: str = "") -> None:
    """Display in a notebook: ``head`` (markdown), then ``tables`` — one DataFrame, or ``{title: DataFrame}`` each
    under its title — as HTML with undefined values ``n/a`` (:func:`saa_lib.frames.styled`)."""
    from IPython.display import Markdown, display

    if head:
        display(Markdown(head))
    if isinstance(tables, pd.DataFrame):
        tables = {"": tables}
    for title, df in tables.items():
        if title:
            display(Markdown(f"**{title}**"))
        display(frames.styled(df) if isinstance(df, pd.DataFrame) else Markdown(str(df)))


# ---------------------------------------------------------------------------------------------- the series as a report
def _kernel_env(root: Path | None) -> None:
    """Settings the kernels inherit: inline figures (whatever ``MPLBACKEND`` the caller has), offline hubs, and the
    package importable."""
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures go into the notebooks
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    if root is not None:
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if str(root) not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([str(root), *paths])


def run_report(dataset: str = "synthetic", root=None, categories=None, models: str = "auto",
               out="results/report", device: str = "auto", max_images: int | None = None,
               notebooks=None, kernel_name: str = "python3", progress: bool = True, labels: dict | None = None) -> int:
    """Execute the notebook series into ``out/``; return 0 when every notebook ran, 1 otherwise.

    Writes ``out/NN_name.ipynb`` (executed), ``out/NN_name.html`` (nbconvert), the figures the notebooks save into
    ``out/figures/`` and ``out/index.md`` (status and time of each notebook). ``categories``: list or comma-separated
    string; ``max_images``: images per category (the notebooks' ``n_images``). Every value is checked before any
    notebook runs (:func:`saa_lib.workbook.parameters.check_parameters`, a ``ParameterError`` naming it, by its name in
    ``labels`` when given, e.g. ``{"n_images": "--max-images"}``). A notebook that fails is still exported (up to the
    failing cell) and named in the index; the others run on. ``models``: the notebooks' ``models`` parameter
    (``auto``: the official models when their weights are in the weights folder, else the tiny ones).
    """
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter
    from tqdm.auto import tqdm

    from .parameters import check_parameters
    from .series import BANNER, NOTEBOOKS, choose_saliency_backbone, is_meaningful, notebooks_dir, project_root, \
        resolve_models

    checked = dict(dataset=dataset, root=root, categories=categories, models=models, device=device, out_dir=out)
    check_parameters(**checked, **({} if max_images is None else {"n_images": max_images}), labels=labels)
    nb_dir = notebooks_dir()
    names = list(notebooks or NOTEBOOKS)
    unknown = [n for n in names if not (nb_dir / f"{n}.ipynb").is_file()]
    if unknown:
        raise FileNotFoundError(f"no notebook {unknown} in {nb_dir}; the series is {', '.join(NOTEBOOKS)}")
    if isinstance(categories, str):
        categories = [c.strip() for c in categories.split(",") if c.strip()] or None
    out = Path(out).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    params = {"dataset": dataset, "root": None if root is None else str(Path(root).expanduser().absolute()),
              "categories": list(categories) if categories else None, "models": models, "device": device,
              "out_dir": str(out)}
    if max_images is not None:
        params["n_images"] = int(max_images)
    _kernel_env(project_root())
    exporter = HTMLExporter()
    status = []
    bar = tqdm(names, desc="notebooks", unit="nb", disable=not progress, file=sys.stderr)
    for name in bar:
        bar.set_postfix_str(name)
        dst = out / f"{name}.ipynb"
        t0 = time.perf_counter()
        error = ""
        try:
            pm.execute_notebook(str(nb_dir / f"{name}.ipynb"), str(dst), parameters=params, kernel_name=kernel_name,
                                cwd=str(nb_dir), progress_bar=False, log_output=False)
        except pm.PapermillExecutionError as err:
            error = f"{err.ename}: {err.evalue}".splitlines()[0]
        seconds = time.perf_counter() - t0
        if dst.exists():
            body, _ = exporter.from_notebook_node(nbformat.read(dst, as_version=4))
            write_text(out / f"{name}.html", body)
        status.append({"notebook": name, "seconds": round(seconds, 1), "error": error})
    figures = sorted(p.name for p in (out / "figures").glob("*.png")) if (out / "figures").is_dir() else []
    notebooks_table = frames.table(
        [[f"[{s['notebook']}]({s['notebook']}.html)", s["seconds"], "failed: " + s["error"] if s["error"] else "ok"]
         for s in status], ["notebook", "seconds", "status"], formats={"seconds": ".1f"})
    lines = ["# SAA+ workbook report", "", f"Dataset: {dataset}" + (f" ({params['root']})" if root else ""),
             f"Categories: {', '.join(categories) if categories else 'all'}", f"Models: {models}"
             + (f" ({resolve_models(models, choose_saliency_backbone('auto'))})" if models == "auto" else "")
             + ("" if is_meaningful(models) else f" — **{BANNER}**"), "", frames.markdown(notebooks_table),
             f"Figures ({len(figures)}): see `figures/`.", ""]
    write_text(out / "index.md", "\n".join(lines))
    write_text(out / "report.json",
               json.dumps({"parameters": params, "notebooks": status, "figures": figures}, indent=1))
    failed = [s for s in status if s["error"]]
    for s in failed:
        print(f"saa report: {s['notebook']} failed: {s['error']}", file=sys.stderr)
    print(f"wrote {len(status)} notebooks + HTML, {len(figures)} figures and {out / 'index.md'}")
    return 1 if failed else 0
