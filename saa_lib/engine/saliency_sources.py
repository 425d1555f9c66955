"""The P^S map alone from each saliency source (single image, batch, few-shot), measured per category.

Used by ``benchmarks/saliency_real_features.py`` and the notebook ``09_beyond_saa``: every row is the
``saliency_only`` variant with one :class:`~saa_lib.config.SaliencyConfig` source, scored on the labelled test images
of a category with a fresh, cache-less pipeline (so the time per image is what computing the maps costs, feature
extraction of the other images included).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import frames
from .. import metrics as M
from ..cache import StageCache
from ..config import SAAConfig, variant_config
from ..peers.config import with_peers
from ..pipeline import SAAPipeline
from ..prompts.language import category_prompts
from .evaluate import plan_categories, run_category


#: the simple batch / few-shot forms (plain nearest-patch distance): the baseline the tuned defaults must beat
SIMPLE_FORM = dict(source_size=256, pool=1, peer_quantile=None, deep_weight=0.0, smooth_sigma=0.0, with_image=False,
                   augment_references=False, batch_rotations=1)


def source_configs(backbone: str = "tf_efficientnet_lite0", shots=(1, 2), behaviours=("paper", "code"),
                   **saliency) -> dict[str, SAAConfig]:
    """Named ``saliency_only`` configs: ``image-<behaviour>``, ``batch-<behaviour>``, ``fewshot<k>-<behaviour>``.

    ``saliency``: extra :class:`~saa_lib.peers.PeerConfig` fields for the batch / few-shot rows (e.g. ``with_image=False``)."""
    out = {}
    for b in behaviours:
        base = variant_config("saliency_only", b).with_(saliency={"backbone": backbone})
        out[f"image-{b}"] = base.with_(variant=f"image-{b}")
        out[f"batch-{b}"] = with_peers(base.with_(variant=f"batch-{b}"), source="batch", **saliency)
        for k in shots:
            out[f"fewshot{k}-{b}"] = with_peers(base.with_(variant=f"fewshot{k}-{b}"), source="fewshot", shots=k,
                                                **saliency)
    return out


@dataclass
class SourceRow:
    """One source on one category: metrics in [0, 1] (nan when undefined), seconds per image, the maps (N, R, R)."""

    category: str
    name: str
    pixel_auroc: float
    pixel_max_f1: float
    aupro: float
    seconds_per_image: float
    maps: np.ndarray
    masks: np.ndarray
    #: each map's defect type (``"good"`` for normal images), in the order of ``maps``
    defect_types: tuple[str, ...] = ()


def compare_sources(models, dataset, configs: dict[str, SAAConfig], categories=None, max_images: int | None = None,
                    progress: bool = False) -> list[SourceRow]:
    """Every config of ``configs`` on every category of ``dataset`` (an :class:`~saa_lib.data.AnomalyDataset`):
    pixel AUROC, max-F1 and AUPRO@0.3 of the maps, and the time per image. ``max_images``: at most that many test
    images per category (anomalous and normal alternating); they are also the whole batch of the batch source. Every
    category (images, masks, few-shot references) is checked before the first map is computed
    (:func:`~saa_lib.engine.evaluate.plan_categories`)."""
    plans = plan_categories(dataset, list(configs.values()), categories, max_images=max_images)
    rows = []
    for plan in plans:
        cat, samples = plan.category, plan.samples
        prompts = category_prompts(cat, getattr(dataset, "table", None))
        for name, cfg in configs.items():
            pipe = SAAPipeline(models, StageCache(enabled=False))
            t0 = time.perf_counter()
            (run,) = run_category(pipe, samples, prompts, [cfg], progress=progress, references=plan.references)
            dt = (time.perf_counter() - t0) / len(samples)
            rows.append(SourceRow(cat, name, M.pixel_auroc(run.maps, run.masks), M.pixel_max_f1(run.maps, run.masks),
                                  M.aupro(run.maps, run.masks), dt, run.maps, run.masks,
                                  tuple(x.defect_type for x in samples)))
    return rows


def sources_table(rows: list[SourceRow]) -> pd.DataFrame:
    """One row per (category, source): pixel AUROC, max-F1 and AUPRO@0.3 in percent (NaN where undefined) and the
    seconds per image."""
    return frames.table([[r.category, r.name, 100 * r.pixel_auroc, 100 * r.pixel_max_f1, 100 * r.aupro,
                          r.seconds_per_image] for r in rows],
                        ["category", "source", "pixel AUROC", "max-F1", "AUPRO@0.3", "s / image"])


def source_means_table(rows: list[SourceRow], baseline: str = "image-paper") -> pd.DataFrame:
    """Index ``source``: the mean over categories of each metric (percent) and of the seconds per image, and the
    difference to ``baseline``: pixel AUROC as a fraction, max-F1 in points (NaN when ``baseline`` is not among the
    rows)."""
    means = source_means(rows)
    base = means.get(baseline)
    d_auc, d_f1 = f"Δ AUROC vs {baseline}", "Δ max-F1 (points)"
    out = [[name, 100 * m["pixel_auroc"], 100 * m["pixel_max_f1"], 100 * m["aupro"], m["seconds_per_image"],
            np.nan if base is None else m["pixel_auroc"] - base["pixel_auroc"],
            np.nan if base is None else 100 * (m["pixel_max_f1"] - base["pixel_max_f1"])] for name, m in means.items()]
    return frames.table(out, ["source", "pixel AUROC", "max-F1", "AUPRO@0.3", "s / image", d_auc, d_f1],
                        index="source", formats={d_auc: "+.4f", d_f1: "+.2f"})


def source_means(rows: list[SourceRow]) -> dict[str, dict]:
    """{source name: mean over categories of each metric and of the seconds per image}, in first-seen order."""
    names = list(dict.fromkeys(r.name for r in rows))
    keys = ("pixel_auroc", "pixel_max_f1", "aupro", "seconds_per_image")
    return {n: {k: float(np.mean([getattr(r, k) for r in rows if r.name == n])) for k in keys} for n in names}


def defect_type_auroc(row: SourceRow) -> dict[str, tuple[float, float]]:
    """{defect type: (pixel AUROC of that type's images together with the category's normal images, the type's share
    of the category's anomalous pixels)} of one row, types sorted by name: where a category's pooled AUROC comes
    from. AUROC is nan where the type's images hold no anomalous pixel."""
    types = np.asarray(row.defect_types)
    if len(types) != len(row.maps):
        raise ValueError(f"{row.category} / {row.name}: {len(types)} defect types for {len(row.maps)} maps")
    good, total = types == "good", float(row.masks.sum())
    out = {}
    for t in sorted(set(types) - {"good"}):
        is_t = types == t
        pick = is_t | good
        share = float(row.masks[is_t].sum()) / total if total else float("nan")
        out[t] = (M.pixel_auroc(row.maps[pick], row.masks[pick]), share)
    return out


def defect_type_table(rows: list[SourceRow]) -> pd.DataFrame:
    """Per category and defect type: the share of the category's anomalous pixels (percent) and each source's pixel
    AUROC on that type (:func:`defect_type_auroc`, percent; NaN where undefined or the source has no row there)."""
    names = list(dict.fromkeys(r.name for r in rows))
    out = []
    for cat in dict.fromkeys(r.category for r in rows):
        per = {r.name: defect_type_auroc(r) for r in rows if r.category == cat}
        for t, (_, share) in per[next(iter(per))].items():
            out.append([cat, t, 100 * share, *(100 * per[n][t][0] if n in per else np.nan for n in names)])
    return frames.table(out, ["category", "defect type", "share of defect pixels", *names])
