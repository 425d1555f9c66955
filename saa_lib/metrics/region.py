"""Region-level metrics on the official 200 thresholds: AUPRO (per-region overlap against the false positive rate)
and region F1 (predicted and ground-truth regions matched by IoU)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .checks import Protocol, check_fraction, check_num_thresholds, check_protocol, normalize, validate


_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def threshold_levels(norm: np.ndarray, num_thresholds: int) -> np.ndarray:
    """(N, H, W) uint8/uint16 level of each pixel = number of official thresholds strictly below its score.

    Thresholds ``t_k = max - k * (max - min) / K`` (k = 0..K-1) in the maps' dtype; a pixel is predicted at threshold
    k iff ``score > t_k`` iff ``level > K - 1 - k``. Equals ``np.searchsorted(ascending thresholds, score, "left")``;
    computed from the arithmetic guess and corrected against the actual thresholds (several times faster).
    """
    dt = norm.dtype
    k = num_thresholds
    mx, mn = norm.max(), norm.min()
    delta = (mx - mn) / dt.type(k)
    thresholds = mx - np.arange(k, dtype=dt) * delta  # descending
    ascending = np.ascontiguousarray(thresholds[::-1])
    out = np.empty(norm.shape, dtype=np.uint8 if k < 255 else np.uint16)
    if delta == 0:  # constant maps: every threshold equals the max, nothing is ever predicted
        out[...] = 0
        return out
    padded = np.concatenate(([-np.inf], ascending, [np.inf])).astype(dt)  # correct L: padded[L] < s <= padded[L + 1]
    for i in range(norm.shape[0]):
        s = norm[i]
        guess = np.floor((mx - s) / delta)
        np.subtract(k - 1, guess, out=guess)
        np.clip(guess, 0, k, out=guess)
        lev = guess.astype(np.int32)
        for _ in range(8):
            too_high = padded[lev] >= s
            too_low = padded[lev + 1] < s
            if not (too_high.any() or too_low.any()):
                break
            lev -= too_high
            lev += too_low
        else:  # pragma: no cover - the guess is off by at most a step or two
            lev = np.searchsorted(ascending, s, side="left")
        out[i] = lev
    return out


def _predicted_from_levels(counts_by_level: np.ndarray) -> np.ndarray:
    """(..., K + 1) counts per level -> (..., K) counts with level > j for the ascending threshold index j."""
    suffix = np.cumsum(counts_by_level[..., ::-1], axis=-1)[..., ::-1]
    return suffix[..., 1:]


def _gt_regions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    return ndimage.label(mask, structure=_EIGHT_CONNECTED)


def _pro_fpr_curve(levels: np.ndarray, masks: np.ndarray, k: int, protocol: str):
    """(fpr (K,), pro (K,)) for the descending thresholds t_0 > t_1 > ...; None when undefined."""
    n_neg = 0
    neg_counts = np.zeros(k + 1, dtype=np.int64)
    pro_sum = np.zeros(k, dtype=np.float64)
    n_regions = 0
    for lev, mask in zip(levels, masks):
        neg_counts += np.bincount(lev[~mask], minlength=k + 1)
        n_neg += int(mask.size - np.count_nonzero(mask))
        if not mask.any():
            continue
        regions, n = _gt_regions(mask)
        areas = np.bincount(regions.reshape(-1), minlength=n + 1)[1:].astype(np.float64)
        if protocol == "code":  # overlap measured on each region's hole-filled shape (skimage's filled_image)
            counts = np.zeros((n, k + 1), dtype=np.int64)
            for r, sl in enumerate(ndimage.find_objects(regions)):
                filled = ndimage.binary_fill_holes(regions[sl] == r + 1)
                counts[r] = np.bincount(lev[sl][filled], minlength=k + 1)
        else:
            inside = regions > 0
            flat_index = (regions[inside].astype(np.int64) - 1) * (k + 1) + lev[inside]
            counts = np.bincount(flat_index, minlength=n * (k + 1)).reshape(n, k + 1)
        overlap = _predicted_from_levels(counts) / areas[:, None]  # (n, K) ascending j
        pro_sum += overlap.sum(axis=0)
        n_regions += n
    if n_regions == 0 or n_neg == 0:
        return None
    fpr = (_predicted_from_levels(neg_counts) / n_neg)[::-1]
    pro = (pro_sum / n_regions)[::-1]
    return fpr, pro


def _integrate_to_limit(fpr: np.ndarray, pro: np.ndarray, limit: float) -> float:
    """Trapezoid area of the (non-decreasing fpr) curve from fpr 0 to ``limit``, interpolating at the limit."""
    keep = int(np.searchsorted(fpr, limit, side="right"))
    x, y = fpr[:keep], pro[:keep]
    if keep < fpr.size:
        x0, y0, x1, y1 = fpr[keep - 1], pro[keep - 1], fpr[keep], pro[keep]
        x = np.append(x, limit)
        y = np.append(y, y0 + (y1 - y0) * (limit - x0) / (x1 - x0))
    return float(np.trapezoid(y, x))


def aupro_from_levels(levels, masks, k: int, fpr_limit: float, protocol: str) -> float:
    curve = _pro_fpr_curve(levels, masks, k, protocol)
    if curve is None:
        return float("nan")
    fpr, pro = curve
    if protocol == "code":
        keep = fpr <= fpr_limit
        x, y = fpr[keep], pro[keep]
        if x.size < 2 or x.max() == x.min():
            return float("nan")  # the official rescaling divides by zero here
        x = (x - x.min()) / (x.max() - x.min())
        return float(np.trapezoid(y, x))
    # standard: the curve starts at (0, ~0) (t_0 = max predicts nothing) and ends with everything predicted (1, 1)
    fpr = np.concatenate(([0.0], fpr, [1.0]))
    pro = np.concatenate(([0.0], pro, [1.0]))
    return _integrate_to_limit(fpr, pro, fpr_limit) / fpr_limit


def pro_curve(maps, masks, num_thresholds: int = 200) -> tuple[np.ndarray, np.ndarray] | None:
    """The curve :func:`aupro` integrates (standard protocol): (fpr, pro), each (K + 2,), FPR non-decreasing from
    (0, 0) (nothing predicted) to (1, 1) (everything predicted), one point per official threshold between them.
    maps (N, H, W) float, masks (N, H, W) bool or 0/1; None without ground-truth regions or normal pixels."""
    arr, m, mn, mx = validate(maps, masks)
    k = check_num_thresholds(num_thresholds)
    curve = _pro_fpr_curve(threshold_levels(normalize(arr, mn, mx), k), m, k, "standard")
    if curve is None:
        return None
    fpr, pro = curve
    return np.concatenate(([0.0], fpr, [1.0])), np.concatenate(([0.0], pro, [1.0]))


def aupro(maps, masks, fpr_limit: float = 0.3, num_thresholds: int = 200, protocol: Protocol = "standard") -> float:
    """Area under the per-region-overlap (PRO) vs false-positive-rate curve up to ``fpr_limit``, in [0, 1].

    maps (N, H, W) float, masks (N, H, W) bool or 0/1. At each of the ``num_thresholds`` official thresholds the PRO
    is the mean, over all 8-connected ground-truth regions of the category, of the fraction of the region predicted;
    the FPR is the fraction of normal pixels predicted. ``protocol`` (see the module doc) decides how the curve is
    cut and rescaled. nan without ground-truth regions or without normal pixels.
    """
    arr, m, mn, mx = validate(maps, masks)
    fpr_limit = check_fraction(fpr_limit, "fpr_limit")
    k = check_num_thresholds(num_thresholds)
    protocol = check_protocol(protocol)
    return aupro_from_levels(threshold_levels(normalize(arr, mn, mx), k), m, k, fpr_limit, protocol)


def _boxes(labelled: np.ndarray) -> np.ndarray:
    """(R, 4) int [row0, row1, col0, col1) of the regions 1..R of a label map."""
    objs = ndimage.find_objects(labelled)
    return np.array([[s[0].start, s[0].stop, s[1].start, s[1].stop] for s in objs], dtype=np.int64).reshape(-1, 4)


def _box_sums(table: np.ndarray, r0, r1, c0, c1) -> np.ndarray:
    """Sums over boxes [r0, r1) x [c0, c1) from a zero-padded summed-area table (H + 1, W + 1)."""
    return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]


def _summed_area(binary: np.ndarray) -> np.ndarray:
    """(H + 1, W + 1) int32 zero-padded summed-area table of a (H, W) bool map."""
    table = np.zeros((binary.shape[0] + 1, binary.shape[1] + 1), dtype=np.int32)
    inner = table[1:, 1:]
    np.cumsum(binary, axis=0, dtype=np.int32, out=inner)
    np.cumsum(inner, axis=1, out=inner)
    return table


class _GroundTruth:
    """Ground-truth regions of one (H, W) mask, with what the region matching needs."""

    def __init__(self, mask: np.ndarray, protocol: str):
        self.regions, self.n = ndimage.label(mask, structure=_EIGHT_CONNECTED)
        self.areas = np.bincount(self.regions.reshape(-1), minlength=self.n + 1)[1:]
        flat = self.regions.reshape(-1)
        self.pixels = np.flatnonzero(flat)  # flat indices of ground-truth pixels
        self.pixel_region = flat[self.pixels].astype(np.int64)
        if protocol == "code" and self.n:
            self.boxes = _boxes(self.regions)
            self.table = _summed_area(mask)
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            self.hull = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)  # box of all ground-truth pixels


def _match_regions(pred: np.ndarray, gt: _GroundTruth, iou: float, protocol: str) -> tuple[int, int, int]:
    """(predicted regions, matched predicted regions, matched ground-truth regions) for one binary (H, W) map."""
    pred_regions, n_pred = ndimage.label(pred, structure=_EIGHT_CONNECTED)
    if n_pred == 0 or gt.n == 0:
        return n_pred, 0, 0
    if protocol == "code":
        # IoU of the whole prediction and the whole mask inside the union box of the two regions
        pb = _boxes(pred_regions)
        r0 = np.minimum(pb[:, None, 0], gt.boxes[None, :, 0])
        r1 = np.maximum(pb[:, None, 1], gt.boxes[None, :, 1])
        c0 = np.minimum(pb[:, None, 2], gt.boxes[None, :, 2])
        c1 = np.maximum(pb[:, None, 3], gt.boxes[None, :, 3])
        h0, h1, w0, w1 = gt.hull  # prediction AND mask lives inside the hull: its table covers the hull only
        inter_table = _summed_area(pred[h0:h1, w0:w1] & (gt.regions[h0:h1, w0:w1] > 0))
        inter = _box_sums(inter_table, np.clip(r0, h0, h1) - h0, np.clip(r1, h0, h1) - h0,
                          np.clip(c0, w0, w1) - w0, np.clip(c1, w0, w1) - w0)
        union = _box_sums(_summed_area(pred), r0, r1, c0, c1) + _box_sums(gt.table, r0, r1, c0, c1) - inter
        ratio = inter.astype(np.float32) / union.astype(np.float32)
        matched = np.maximum(ratio.max(axis=1), 0.0) >= iou
        return n_pred, int(matched.sum()), 0
    pred_areas = np.bincount(pred_regions.reshape(-1), minlength=n_pred + 1)[1:]
    labels_on_gt = pred_regions.reshape(-1)[gt.pixels].astype(np.int64)
    on = labels_on_gt > 0
    index = (labels_on_gt[on] - 1) * gt.n + (gt.pixel_region[on] - 1)
    inter = np.bincount(index, minlength=n_pred * gt.n).reshape(n_pred, gt.n)
    ratio = inter / (pred_areas[:, None] + gt.areas[None, :] - inter)
    ok = ratio >= iou
    return n_pred, int(ok.any(axis=1).sum()), int(ok.any(axis=0).sum())


def region_f1_from_levels(levels, masks, k: int, iou: float, protocol: str) -> float:
    # difference arrays over the ascending threshold index j (0..K-1)
    n_pred = np.zeros(k + 1, dtype=np.int64)
    tp_pred = np.zeros(k + 1, dtype=np.int64)
    tp_gt = np.zeros(k + 1, dtype=np.int64)
    n_gt_total = 0
    for lev, mask in zip(levels, masks):
        present = np.flatnonzero(np.bincount(lev.reshape(-1), minlength=k + 1))
        present = present[present > 0]
        if present.size == 0:
            n_gt_total += _gt_regions(mask)[1]
            continue
        # crop to the box holding every predicted pixel and every ground-truth pixel (results are unchanged)
        rows = np.flatnonzero((lev > 0).any(axis=1) | mask.any(axis=1))
        cols = np.flatnonzero((lev > 0).any(axis=0) | mask.any(axis=0))
        crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        lev_c = lev[crop]
        gt = _GroundTruth(mask[crop], protocol)
        n_gt_total += gt.n
        previous = 0
        for level in present:  # the binary map {level >= l} holds for j in [previous level, l - 1]
            counts = _match_regions(lev_c >= level, gt, iou, protocol)
            for acc, c in zip((n_pred, tp_pred, tp_gt), counts):
                acc[previous] += c
                acc[level] -= c
            previous = level
    if n_gt_total == 0:
        return float("nan")  # no ground-truth region: nothing to find
    n_pred, tp_pred, tp_gt = (np.cumsum(a)[:k].astype(np.float64) for a in (n_pred, tp_pred, tp_gt))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, tp_pred / n_pred, 0.0)
        recall = (tp_pred if protocol == "code" else tp_gt) / n_gt_total
        f1 = np.where((precision > 0) & (recall > 0), 2 * precision * recall / (precision + recall), 0.0)
    return float(f1.max())


def region_f1(maps, masks, iou: float = 0.6, num_thresholds: int = 200, protocol: Protocol = "standard") -> float:
    """Region-level max-F1 in [0, 1] (nan without ground-truth regions).

    maps (N, H, W) float, masks (N, H, W) bool or 0/1. At each official threshold the 8-connected predicted regions
    are matched to the 8-connected ground-truth regions: a predicted region is a true positive if its IoU with some
    ground-truth region is >= ``iou``; precision is over predicted regions, recall over ground-truth regions; the
    best F1 over the thresholds is returned. ``protocol="code"`` reproduces the official IoU and recall (module doc);
    its value can exceed 1 when several predicted fragments match one ground-truth region.
    """
    arr, m, mn, mx = validate(maps, masks)
    iou = check_fraction(iou, "iou")
    k = check_num_thresholds(num_thresholds)
    protocol = check_protocol(protocol)
    return region_f1_from_levels(threshold_levels(normalize(arr, mn, mx), k), m, k, iou, protocol)
