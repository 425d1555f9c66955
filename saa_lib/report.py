"""Markdown tables in the layout of the paper: Table 1 (methods x categories) and Table 2 (ablation)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .prompts.language import load_tables
from .safeio import write_text

VARIANT_LABELS = {
    "saa": "SAA",
    "saa_plus": "SAA+",
    "saa_plus-no_language": "SAA+ w/o P^L",
    "saa_plus-no_property": "SAA+ w/o P^P",
    "saa_plus-no_saliency": "SAA+ w/o P^S",
    "saa_plus-no_confidence": "SAA+ w/o P^C",
    "saliency_only": "P^S map only",
}
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


def fmt(value: float) -> str:
    """A percentage with two decimals; ``n/a`` for an undefined (nan) value."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


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


def _notes_block(runs, metric: str) -> str:
    notes = undefined_notes(runs, metric)
    if not notes:
        return ""
    return ("\nn/a = undefined, left out of the means: " + "; ".join(notes) + ".\n")


def metric_table(runs, metric: str = "pixel_max_f1", dataset: str = "") -> str:
    """Table 1 layout: one row per variant, one column per category, then the mean (percent).

    An undefined value (nan) is shown as ``n/a``, left out of the mean, and its reason is given under the table. A
    last column gives the paper's number for the dataset where there is one.
    """
    variants = list(dict.fromkeys(r.variant for r in runs))
    cats = list(dict.fromkeys(r.category for r in runs))
    val = {(r.variant, r.category): 100 * r.metrics[metric] for r in runs}
    paper = [paper_value(v, dataset) for v in variants]
    show_paper = any(p is not None for p in paper)
    cols = ["method", *cats, "mean"] + (["paper (mean)"] if show_paper else [])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"]
    for v, p in zip(variants, paper):
        vals = [val.get((v, c), np.nan) for c in cats]
        row = [VARIANT_LABELS.get(v, v), *(fmt(x) for x in vals), fmt(defined_mean(vals))]
        if show_paper:
            row.append("-" if p is None else f"{p:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n" + _notes_block(runs, metric)


def ablation_table(runs, metric: str = "pixel_max_f1", dataset: str = "") -> str:
    """Table 2 layout: one row per ablated prompt, the mean over categories and its change against full SAA+.

    Undefined values (nan) are left out of the means (``n/a`` when none is defined)."""
    variants = list(dict.fromkeys(r.variant for r in runs))
    mean = {v: 100 * defined_mean([r.metrics[metric] for r in runs if r.variant == v]) for v in variants}
    full = mean.get("saa_plus")
    lines = ["| variant | mean max-F1-pixel | Δ vs SAA+ | paper |", "|---|---:|---:|---:|"]
    for v in variants:
        delta = "" if full is None or v == "saa_plus" else (
            f"{mean[v] - full:+.2f}" if np.isfinite(mean[v] - full) else "n/a")
        p = paper_value(v, dataset)
        lines.append(f"| {VARIANT_LABELS.get(v, v)} | {fmt(mean[v])} | {delta} | {'-' if p is None else f'{p:.2f}'} |")
    return "\n".join(lines) + "\n" + _notes_block(runs, metric)


def write_report(path: Path, title: str, head: str, sections: dict[str, str]) -> Path:
    """A markdown file, written atomically: title, header, then ``{section title: markdown}``."""
    body = [f"# {title}\n", head] + [f"## {k}\n\n{v}" for k, v in sections.items()]
    return write_text(path, "\n".join(body))
