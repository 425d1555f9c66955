"""Orchestration: run variants over a dataset's categories, collect maps, compute metrics, write tables.

Torch computation lives in the stage modules; this module only loops, with progress bars, and writes files.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import metrics as M
from .config import SAAConfig
from .pipeline import ImageResult, SAAPipeline, resize_masks
from .prompts.language import CategoryPrompts, category_prompts


@dataclass
class CategoryRun:
    """Everything one variant produced on one category. maps / masks: (N, R, R); labels: (N,) int."""

    variant: str
    category: str
    maps: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    names: list[str]
    results: list[ImageResult] = field(repr=False, default_factory=list)
    metrics: dict = field(default_factory=dict)


def prompts_for(dataset, category: str, extra=(), behaviour: str = "code") -> CategoryPrompts:
    """Prompts of a dataset's category: its own table first, then every other table, then ``extra``."""
    return category_prompts(category, getattr(dataset, "table", None), extra=extra, behaviour=behaviour)


def run_category(pipeline: SAAPipeline, samples, prompts: CategoryPrompts, configs: list[SAAConfig],
                 progress: bool = True, desc: str = "", region_metrics: bool = False) -> list[CategoryRun]:
    """All ``configs`` on ``samples`` of one category, from one pass of the expensive stages per image.

    ``region_metrics`` also computes AUPRO and region F1 (slow on smooth maps; the official ``--cal-pro``)."""
    samples = [s for s in samples if s.label in (0, 1)]
    if not samples:
        raise ValueError(f"category {prompts.category!r}: no labelled test images")
    r = configs[0].eval_resolution
    per_variant: list[list[ImageResult]] = [[] for _ in configs]
    masks, labels, names = [], [], []
    for s in tqdm(samples, desc=desc or prompts.category, disable=not progress, leave=False, unit="img"):
        image = s.load_image()
        for out, res in zip(per_variant, pipeline.run_variants(image, prompts, configs)):
            out.append(res)
        masks.append(resize_masks(s.load_mask()[None], r)[0])
        labels.append(int(s.label))
        names.append(str(s.image_path))
    masks_a, labels_a = np.stack(masks), np.array(labels)
    runs = []
    for cfg, results in zip(configs, per_variant):
        maps = np.stack([x.anomaly_map for x in results]).astype(np.float32)
        run = CategoryRun(cfg.variant, prompts.category, maps, masks_a, labels_a, names, results)
        run.metrics = M.category_metrics(maps, masks_a, labels_a, region_metrics=region_metrics)
        runs.append(run)
    return runs


def save_maps(run: CategoryRun, out_dir: Path) -> Path:
    """Write every scored map (``.npy`` at the evaluation resolution) + masks/labels, to recompute metrics anywhere."""
    d = Path(out_dir) / "maps" / run.variant / run.category
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "maps.npy", run.maps)
    np.save(d / "masks.npy", run.masks)
    np.save(d / "labels.npy", run.labels)
    (d / "images.json").write_text(json.dumps(run.names, indent=1))
    return d


def write_metrics_csv(runs: list[CategoryRun], path: Path) -> Path:
    """One row per (variant, category), metrics in percent."""
    keys = list(M.METRIC_NAMES)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["variant", "category", "n_images", *keys])
        for r in runs:
            w.writerow([r.variant, r.category, len(r.labels), *(f"{100 * r.metrics[k]:.2f}" for k in keys)])
    # nan (not computed / undefined) is written as "nan"
    return path


def evaluate(dataset, pipeline: SAAPipeline, configs: list[SAAConfig], categories=None, extra_prompts=(),
             out_dir: str | Path | None = None, save_all_maps: bool = False, progress: bool = True,
             max_images: int | None = None, region_metrics: bool = False) -> list[CategoryRun]:
    """Run ``configs`` over ``categories`` of ``dataset`` (an :class:`saa_lib.data.AnomalyDataset`).

    With ``out_dir``: writes ``metrics.csv`` and (``save_all_maps``) every map. Returns the runs.
    """
    categories = list(categories or dataset.categories)
    runs: list[CategoryRun] = []
    t0 = time.perf_counter()
    for cat in tqdm(categories, desc="categories", disable=not progress or len(categories) < 2):
        prompts = prompts_for(dataset, cat, extra_prompts, configs[0].behaviour)
        samples = dataset.samples(cat)
        if max_images:
            samples = balanced_subset(samples, max_images)
        runs += run_category(pipeline, samples, prompts, configs, progress, desc=cat, region_metrics=region_metrics)
    if out_dir is not None:
        out = Path(out_dir)
        write_metrics_csv(runs, out / "metrics.csv")
        if save_all_maps:
            for r in runs:
                save_maps(r, out)
        (out / "run.json").write_text(json.dumps({
            "seconds": round(time.perf_counter() - t0, 2), "categories": categories,
            "variants": [c.variant for c in configs], "configs": [c.to_dict() for c in configs],
            "models": pipeline.models.describe(), "meaningful": pipeline.models.meaningful,
            "cache": pipeline.cache.stats()}, indent=1, default=str))
    return runs


def balanced_subset(samples: list, n: int) -> list:
    """At most ``n`` samples, alternating anomalous and normal ones so both classes stay represented."""
    bad = [s for s in samples if s.label == 1]
    good = [s for s in samples if s.label == 0]
    out = []
    while len(out) < n and (bad or good):
        for pool in (bad, good):
            if pool and len(out) < n:
                out.append(pool.pop(0))
    return out
