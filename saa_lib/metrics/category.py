"""Every metric of one category at once, and why a metric is undefined for a ground truth."""
from __future__ import annotations

import numpy as np

from .checks import (Protocol, check_bins, check_fraction, check_num_thresholds, check_protocol, normalize, validate,
                     validate_labels)
from .image import image_scores
from .pixel import DEFAULT_BINS, POOLED_MIN_PIXELS, auroc_sorted, max_f1_sorted, pooled_from_array, split_sorted
from .region import aupro_from_levels, region_f1_from_levels, threshold_levels


#: Keys of :func:`category_metrics`, in order.
METRIC_NAMES = ("pixel_max_f1", "pixel_auroc", "aupro", "image_auroc", "image_max_f1", "region_f1")


def category_metrics(
    maps,
    masks,
    labels=None,
    *,
    pooled: bool | None = None,
    bins: int = DEFAULT_BINS,
    fpr_limit: float = 0.3,
    num_thresholds: int = 200,
    iou: float = 0.6,
    protocol: Protocol = "standard",
    region_metrics: bool = True,
) -> dict[str, float]:
    """All metrics of one category as fractions (not percent), in [0, 1] but for ``protocol="code"`` region F1; keys
    :data:`METRIC_NAMES`.

    maps (N, H, W) float, masks (N, H, W) bool or 0/1, labels (N,) bool or 0/1 (default: ``masks.any((1, 2))``).
    Undefined values are nan (see the module doc and :func:`undefined_reasons`). ``pooled`` / ``bins`` concern pixel max-F1 only; the other arguments are those of the single metrics.
    ``region_metrics=False`` skips the slow region-level metrics (AUPRO, region F1 -> nan), as the official evaluation
    does without ``--cal-pro``.
    """
    arr, m, mn, mx = validate(maps, masks)
    y = m.reshape(m.shape[0], -1).any(axis=1) if labels is None else validate_labels(labels, arr.shape[0])
    bins = check_bins(bins)
    fpr_limit = check_fraction(fpr_limit, "fpr_limit")
    iou = check_fraction(iou, "iou")
    k = check_num_thresholds(num_thresholds)
    protocol = check_protocol(protocol)

    use_pooled = arr.size >= POOLED_MIN_PIXELS if pooled is None else bool(pooled)
    pooled_f1 = pooled_from_array(arr, m, mn, mx, bins)[0] if use_pooled else None
    norm = normalize(arr, mn, mx)
    pos, neg = split_sorted(norm, m)
    out = {"pixel_max_f1": pooled_f1 if use_pooled else max_f1_sorted(pos, neg)}
    out["pixel_auroc"] = auroc_sorted(pos, neg)
    del pos, neg
    levels = threshold_levels(norm, k) if region_metrics else None
    out["aupro"] = aupro_from_levels(levels, m, k, fpr_limit, protocol) if region_metrics else np.nan
    image_pos, image_neg = split_sorted(image_scores(arr, mn, mx), y)
    out["image_auroc"] = auroc_sorted(image_pos, image_neg)
    out["image_max_f1"] = max_f1_sorted(image_pos, image_neg)
    out["region_f1"] = region_f1_from_levels(levels, m, k, iou, protocol) if region_metrics else np.nan
    return {name: float(out[name]) for name in METRIC_NAMES}


def undefined_reasons(masks, labels=None, region_metrics: bool = True) -> dict[str, str]:
    """``{metric: reason}`` for each metric of :func:`category_metrics` that is undefined (nan) for this ground truth.

    masks (N, H, W) bool or 0/1, labels (N,) bool or 0/1 (default: ``masks.any((1, 2))``). Metrics not computed
    (``region_metrics=False``) are listed as such. The reasons are short phrases for tables and warnings.
    """
    m = np.asarray(masks).astype(bool)
    y = m.reshape(m.shape[0], -1).any(axis=1) if labels is None else np.asarray(labels).astype(bool)
    n_pos = int(m.sum())
    out: dict[str, str] = {}
    pixel = "no anomalous pixel in the ground truth" if n_pos == 0 else (
        "every pixel is anomalous" if n_pos == m.size else None)
    if pixel:
        out["pixel_max_f1"] = out["pixel_auroc"] = pixel
    image = "no anomalous image" if not y.any() else ("no normal image" if y.all() else None)
    if image:
        out["image_max_f1"] = out["image_auroc"] = image
    if not region_metrics:
        out["aupro"] = out["region_f1"] = "not computed (--cal-pro)"
    elif n_pos == 0:
        out["aupro"] = out["region_f1"] = "no anomalous pixel in the ground truth"
    elif n_pos == m.size:
        out["aupro"] = "every pixel is anomalous"
    return out
