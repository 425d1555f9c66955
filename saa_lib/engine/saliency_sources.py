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

from .. import metrics as M
from ..cache import StageCache
from ..config import SAAConfig, variant_config
from ..peers.config import with_peers
from ..pipeline import SAAPipeline
from ..prompts.language import category_prompts
from .evaluate import balanced_subset, labelled, reference_samples, run_category


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
    images per category (anomalous and normal alternating); they are also the whole batch of the batch source."""
    rows = []
    for cat in categories or dataset.categories:
        samples = labelled(dataset.samples(cat), cat)
        samples = balanced_subset(samples, max_images) if max_images else samples
        prompts = category_prompts(cat, getattr(dataset, "table", None))
        for name, cfg in configs.items():
            pipe = SAAPipeline(models, StageCache(enabled=False))
            t0 = time.perf_counter()
            (run,) = run_category(pipe, samples, prompts, [cfg], progress=progress,
                                  references=reference_samples(dataset, cat, [cfg]))
            dt = (time.perf_counter() - t0) / len(samples)
            rows.append(SourceRow(cat, name, M.pixel_auroc(run.maps, run.masks), M.pixel_max_f1(run.maps, run.masks),
                                  M.aupro(run.maps, run.masks), dt, run.maps, run.masks,
                                  tuple(x.defect_type for x in samples)))
    return rows


def _pct(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.2f}"


def sources_table(rows: list[SourceRow], baseline: str = "image-paper") -> str:
    """Markdown: one line per (category, source), then the mean over categories of each source with its difference
    to ``baseline`` (pixel AUROC in points of AUROC x 100, max-F1 in points)."""
    lines = ["| category | source | pixel AUROC | max-F1 | AUPRO@0.3 | s / image |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.category} | {r.name} | {_pct(r.pixel_auroc)} | {_pct(r.pixel_max_f1)} | {_pct(r.aupro)} "
                     f"| {r.seconds_per_image:.2f} |")
    means = source_means(rows)
    base = means.get(baseline)
    lines += ["", f"| mean over categories | pixel AUROC | max-F1 | AUPRO@0.3 | s / image | Δ AUROC vs {baseline} "
                  f"| Δ max-F1 (points) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in means.items():
        d_auc = "n/a" if base is None else f"{m['pixel_auroc'] - base['pixel_auroc']:+.4f}"
        d_f1 = "n/a" if base is None else f"{100 * (m['pixel_max_f1'] - base['pixel_max_f1']):+.2f}"
        lines.append(f"| {name} | {_pct(m['pixel_auroc'])} | {_pct(m['pixel_max_f1'])} | {_pct(m['aupro'])} "
                     f"| {m['seconds_per_image']:.2f} | {d_auc} | {d_f1} |")
    return "\n".join(lines)


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


def defect_type_table(rows: list[SourceRow]) -> str:
    """Markdown: per category and defect type, the share of the category's anomalous pixels and each source's pixel
    AUROC on that type (:func:`defect_type_auroc`)."""
    names = list(dict.fromkeys(r.name for r in rows))
    lines = ["| category | defect type | share of defect pixels | " + " | ".join(names) + " |",
             "|---|---|---:|" + "---:|" * len(names)]
    for cat in dict.fromkeys(r.category for r in rows):
        per = {r.name: defect_type_auroc(r) for r in rows if r.category == cat}
        for t, (_, share) in per[next(iter(per))].items():
            cells = " | ".join(_pct(per[n][t][0]) if n in per else "n/a" for n in names)
            lines.append(f"| {cat} | {t} | {_pct(share)} | {cells} |")
    return "\n".join(lines)
