"""The notebooks' own tables as DataFrames (shown with :func:`saa_lib.workbook.report.show`: HTML, undefined values
``n/a``): the weights and the data of notebook 00, the prompt tables of 02-05, the code vs paper settings of 06 and
the ablation switches of 07. The report tables (Table 1, Table 2) are in :mod:`saa_lib.workbook.report`, the known
case's in :mod:`saa_lib.workbook.known_case`, the saliency sources' in :mod:`saa_lib.engine.saliency_sources`.

Nothing here loads a model or touches the network at import time.
"""
from __future__ import annotations

import pandas as pd

from ..frames import table


def _unique(prompts) -> list:
    """One :class:`~saa_lib.prompts.language.CategoryPrompts` per category, first seen first."""
    return list({pr.category: pr for pr in prompts}.values())


def weights_table() -> pd.DataFrame:
    """Every file of the checkpoint registry: its file name, size in MB, whether it is here (``yes``, ``no``, or
    ``embedded``: written from values in the code) and what it is."""
    from ..weights.registry import CHECKPOINTS, missing_weights

    missing = {name for name, _, _ in missing_weights()}
    rows = [[ck.filename, ck.size_bytes / 1e6, "embedded" if ck.embedded else ("no" if ck.name in missing else "yes"),
             ck.description.split(";")[0]] for ck in CHECKPOINTS.values()]
    return table(rows, ["file", "size (MB)", "present", "what"], formats={"size (MB)": ",.1f"})


def dataset_table(dataset) -> pd.DataFrame:
    """Per category of ``dataset``: its normal and anomalous test images, its defect types and its normal training
    images (0 where the data set has no train split)."""
    rows = []
    for cat in dataset.categories:
        test = dataset.samples(cat)
        train = dataset.samples(cat, "train") if "train" in dataset.splits else []
        rows.append([cat, sum(s.label == 0 for s in test), sum(s.label == 1 for s in test),
                     ", ".join(sorted({s.defect_type for s in test if s.label == 1})), len(train)])
    return table(rows, ["category", "test normal", "test anomalous", "defect types", "train normal"],
                 index="category")


def prompt_entries_table(prompts) -> pd.DataFrame:
    """One row per prompt entry (one GroundingDINO forward) of each category's prompts in ``prompts``: category,
    object word, kind (agnostic, expert, user) and caption."""
    rows = [[pr.category, pr.object_word, e.kind, e.caption] for pr in _unique(prompts) for e in pr.entries]
    return table(rows, ["category", "object word", "kind", "caption (one forward each)"])


def category_settings_table(prompts) -> pd.DataFrame:
    """Per category of ``prompts``: its object word, the objects per image (``count``), P^P's largest area ratio
    θ_area and P^C's K, from the category's tables."""
    rows = [[pr.category, pr.object_word, pr.count, pr.max_area_ratio, pr.top_k] for pr in _unique(prompts)]
    return table(rows, ["category", "object word", "count", "max area ratio θ_area", "K (P^C)"], index="category",
                 formats={"max area ratio θ_area": "g"})


def regions_table(regions, n: int = 8) -> pd.DataFrame:
    """The ``n`` most confident of ``regions`` (:class:`~saa_lib.records.Region`): the caption that found it, its
    phrase, its confidence and its fate (``kept`` or the prompt that removed it)."""
    best = sorted(regions, key=lambda r: -r.confidence)[:n]
    rows = [[r.prompt, r.phrase or "(none)", r.confidence, r.removed_by or "kept"] for r in best]
    return table(rows, ["caption", "phrase", "confidence", "fate"], formats={"confidence": ".3f"})


def saliency_forms_table(maps: dict, forms=("paper", "code")) -> pd.DataFrame:
    """Pixel AUROC and max-F1-pixel (percent) of P^S maps alone, per category and form: ``maps[category]`` holds
    ``"masks"`` (N, R, R) and one (N, R, R) stack of maps per form; the maps of a category are normalised together."""
    from .. import metrics

    rows = [[cat, len(v["masks"]), *(100 * f(v[k], v["masks"]) for f in (metrics.pixel_auroc, metrics.pixel_max_f1)
                                     for k in forms)] for cat, v in maps.items()]
    cols = [f"{name} {k}" for name in ("pixel AUROC", "max-F1-pixel") for k in forms]
    return table(rows, ["category", "images", *cols], index="category", formats={c: ".1f" for c in cols})


def behaviour_settings_table(prompts, code_config, paper_config) -> pd.DataFrame:
    """The settings on which the paper and the official code differ most visibly, for the category of ``prompts``:
    its class-agnostic prompts, P^P's test, P^S's neighbours and rescoring gain γ, the fusion offset δ."""
    from ..prompts.language import category_prompts

    agnostic = {cfg.behaviour: ", ".join(e.caption for e in category_prompts(
        prompts.category, prompts.table, behaviour=cfg.behaviour).entries if e.kind == "agnostic")
        for cfg in (paper_config, code_config)}
    p, c = paper_config, code_config
    rows = [[f"class-agnostic prompts ({prompts.category})", agnostic[p.behaviour], agnostic[c.behaviour]],
            ["P^P", f"SAM masks: IoU with the object ≥ {p.min_iou:g} and area ratio", "boxes: area ratio only"],
            ["P^S neighbours", f"{p.saliency.aggregate} N, 1 − cos", f"{c.saliency.aggregate} N, ½ (1 − cos)"],
            ["P^S with several objects per image (count > 1)", "whole image", "each object against the other objects"],
            ["P^S rescoring gain γ", f"{p.gain:g}", f"{c.gain:g}"],
            ["fusion offset δ", f"{p.offset:g}", f"{c.offset:g}"]]
    return table(rows, ["setting", "paper", "official code"], index="setting")


def variant_switches_table(configs) -> pd.DataFrame:
    """One row per config: its variant name, its label in the tables and which of P^L, P^P, P^S, P^C it uses
    (``x`` on, ``–`` off)."""
    from .report import VARIANT_LABELS
    from .series import PROMPTS

    rows = [[c.variant, VARIANT_LABELS.get(c.variant, c.variant),
             *("x" if getattr(c, f"use_{p}") else "–" for p in PROMPTS)] for c in configs]
    return table(rows, ["variant", "label", "P^L", "P^P", "P^S", "P^C"], index="variant")
