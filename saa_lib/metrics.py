"""Evaluation of anomaly maps with the SAA+ protocol (max-F1, AUROC, AUPRO, region F1).

Every metric works on the maps of ONE category: ``maps`` is an (N, H, W) float array of anomaly maps, ``masks`` the
(N, H, W) bool (or 0/1) ground truth, ``labels`` the (N,) bool image labels. As in the official evaluation, all maps
of a category are first min-max normalised together (:func:`normalize_category`: one min, one max per category);
an image's score is the max of its normalised map.

Conventions (values are fractions in [0, 1]; multiply by 100 for the percent of the paper's tables):

* Undefined values are ``nan``, never a number: max-F1 (``pixel_max_f1``, ``image_max_f1``) and the rank metrics
  (``pixel_auroc``, ``image_auroc``) when only one class is present (nothing to find, or nothing but positives, where
  any threshold gives the trivial F1 of 1); ``region_f1`` without a ground-truth region; ``aupro`` without a
  ground-truth region or without a normal pixel. (The official code reports 0.0 for an F1 with nothing to find,
  which would then enter a mean.) :func:`undefined_reasons` says why a value is undefined; tables show ``n/a``.

Max-F1 is exact: it is the maximum of F1 = 2PR / (P + R) over every threshold that
``sklearn.metrics.precision_recall_curve`` returns (every distinct score, ties handled the same way), computed with
sorts and counts instead of scikit-learn. From :data:`POOLED_MIN_PIXELS` pixels on, :func:`pixel_max_f1` switches to a
histogram over ``bins`` equal bins of the normalised scores, filled image by image (memory independent of N). Its
value is exactly the F1 of a real threshold, hence never above the exact max-F1, and a certified upper bound comes
with it (``return_bound=True``); with 2**16 bins the gap is far below 1e-3 for maps whose values are not crowded into
a few bins.

AUPRO and region F1 use the official 200 thresholds ``t_k = max - k * (max - min) / 200`` (k = 0..199, prediction
``score > t_k``) and 8-connected regions (``scipy.ndimage.label`` with a 3x3 structure, as ``skimage.measure.label(...,
connectivity=2)``). ``protocol`` picks between

* ``"standard"`` (default): the definitions as written: AUPRO integrates the mean-PRO vs FPR curve (closed by the
  "everything predicted" point (1, 1), linearly interpolated at the limit) from 0 to ``fpr_limit`` and divides by
  ``fpr_limit``; region F1 matches a predicted region to a ground-truth region by their own IoU, recall counts matched
  ground-truth regions, precision matched predicted regions.
* ``"code"``: the official ``utils/metrics.py`` literally: AUPRO keeps the points with FPR <= limit, min-max rescales
  their FPRs (so it divides by the largest FPR reached, not by the limit) and measures each region's overlap on its
  hole-filled shape; region F1 computes the IoU of the whole binary prediction and the whole mask inside the union
  bounding box of the two regions, and recall = matched predicted regions / ground-truth regions. Fragments of one
  defect inside its box all match, so this recall (and the region F1) can exceed 1; the official numbers carry that.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np
from scipy import ndimage

__all__ = [
    "DEFAULT_BINS",
    "METRIC_NAMES",
    "POOLED_MIN_PIXELS",
    "PROTOCOLS",
    "aupro",
    "category_metrics",
    "image_auroc",
    "image_max_f1",
    "normalize_category",
    "pixel_auroc",
    "pixel_max_f1",
    "pixel_max_f1_streaming",
    "region_f1",
    "undefined_reasons",
]

Protocol = Literal["standard", "code"]
PROTOCOLS = ("standard", "code")

#: ``pixel_max_f1(pooled=None)`` uses the exact computation below this many pixels, the histogram at or above.
POOLED_MIN_PIXELS = 32_000_000
#: Number of equal bins of the normalised scores in pooled mode.
DEFAULT_BINS = 1 << 16
#: Keys of :func:`category_metrics`, in order.
METRIC_NAMES = ("pixel_max_f1", "pixel_auroc", "aupro", "image_auroc", "image_max_f1", "region_f1")

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_CHUNK_PIXELS = 1 << 22  # pixels normalised at a time in pooled mode (bounds the temporaries)


# ----------------------------------------------------------------------------------------------------------------------
# validation and normalisation
# ----------------------------------------------------------------------------------------------------------------------
def _float_dtype(dtype: np.dtype) -> np.dtype:
    """float32 stays float32, float64 stays float64, smaller ints/float16 -> float32, larger ints -> float64."""
    return np.result_type(dtype, np.float32)


def _check_finite_range(arr: np.ndarray, name: str, where: str = "image {}") -> tuple[float, float]:
    """Min and max of ``arr`` (N, ...); ValueError naming the first item (``where`` formatted with its index)
    holding NaN or inf."""
    mn, mx = arr.min(), arr.max()
    if np.isfinite(mn) and np.isfinite(mx):
        return mn, mx
    problem, bad = "non-finite values", 0
    for i in range(arr.shape[0]):
        if np.isnan(arr[i]).any():
            problem, bad = "NaN", i
            break
        if np.isinf(arr[i]).any():
            problem, bad = "inf", i
            break
    raise ValueError(
        f"{name} contain {problem} ({where.format(bad)}); anomaly maps must be finite: fix the map producer or clean "
        f"the maps first (e.g. np.nan_to_num)"
    )


def _as_maps(maps, name: str = "maps") -> np.ndarray:
    arr = np.asarray(maps)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool):
        raise ValueError(f"{name} must be a real numeric (N, H, W) array, got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must be an (N, H, W) array of one category's maps, got shape {arr.shape}; "
            f"stack per-image (H, W) maps with np.stack"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one non-empty map")
    return arr


def _as_binary(values, shape: tuple[int, ...], name: str, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} ({what}), got {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be bool or 0/1 numbers, got dtype {arr.dtype}")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must be binary (bool or 0/1); binarise it first, e.g. {name} > 0")
    return arr.astype(bool)


def _validate(maps, masks) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(maps (N, H, W), masks (N, H, W) bool, min, max) after the checks."""
    arr = _as_maps(maps)
    mn, mx = _check_finite_range(arr, "maps")
    m = _as_binary(masks, arr.shape, "masks", "same as maps: (N, H, W)")
    return arr, m, mn, mx


def _validate_labels(labels, n: int) -> np.ndarray:
    return _as_binary(labels, (n,), "labels", "(N,) one label per map")


def _normalize(arr: np.ndarray, mn, mx) -> np.ndarray:
    """(x - mn) / (mx - mn) in the maps' float dtype (new array); all zeros when mx == mn."""
    dt = _float_dtype(arr.dtype)
    out = arr.astype(dt, copy=True)
    mn, mx = dt.type(mn), dt.type(mx)
    if mx == mn:
        out[...] = 0
        return out
    out -= mn
    out /= mx - mn
    return out


def normalize_category(maps) -> np.ndarray:
    """Min-max normalise the (N, H, W) maps of one category together -> (N, H, W) float in [0, 1].

    One min and one max for the whole category: ``(maps - min) / (max - min)``, computed in the maps' float dtype
    (float32 stays float32). Constant maps give all zeros. NaN/inf -> ValueError.
    """
    arr = _as_maps(maps)
    mn, mx = _check_finite_range(arr, "maps")
    return _normalize(arr, mn, mx)


# ----------------------------------------------------------------------------------------------------------------------
# exact max-F1 / AUROC from sorted scores
# ----------------------------------------------------------------------------------------------------------------------
def _split_sorted(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted scores of the positives and of the negatives ((P,), (M,))."""
    flat = scores.reshape(-1)
    y = positive.reshape(-1)
    pos = flat[y]
    neg = flat[~y]
    pos.sort()
    neg.sort()
    return pos, neg


def _max_f1_sorted(pos: np.ndarray, neg: np.ndarray) -> float:
    """Max F1 over scikit-learn's precision-recall thresholds (every distinct score).

    Between two distinct positive scores lowering the threshold only adds false positives, so the maximum is reached
    at a distinct positive score v, where tp = #pos >= v and fp = #neg >= v; F1 = 2 tp / (tp + fp + P).
    """
    n_pos = pos.size
    if n_pos == 0 or neg.size == 0:
        return float("nan")  # one class only: nothing to find, or the trivial F1 of 1
    first = np.flatnonzero(np.concatenate(([True], pos[1:] != pos[:-1])))  # first index of each distinct value
    tp = (n_pos - first).astype(np.float64)
    fp = (neg.size - np.searchsorted(neg, pos[first], side="left")).astype(np.float64)
    return float(np.max(2.0 * tp / (tp + fp + n_pos)))


def _auroc_sorted(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + 0.5 P(equal) (what roc_auc_score's trapezoids give)."""
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    below = np.searchsorted(neg, pos, side="left")
    upto = np.searchsorted(neg, pos, side="right")
    twice_u = 2 * int(below.sum(dtype=np.int64)) + int((upto - below).sum(dtype=np.int64))
    return twice_u / (2.0 * pos.size * neg.size)


# ----------------------------------------------------------------------------------------------------------------------
# pooled (histogram) max-F1
# ----------------------------------------------------------------------------------------------------------------------
def _check_bins(bins) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    return int(bins)


def _accumulate_histogram(hist: np.ndarray, values: np.ndarray, positive: np.ndarray, mn, mx, bins: int) -> None:
    """Add the (…) map ``values`` / bool ``positive`` to ``hist`` (2 * bins,): index 2*bin + is_positive."""
    dt = _float_dtype(values.dtype)
    flat = values.reshape(-1)
    y = positive.reshape(-1)
    mn_t, mx_t = dt.type(mn), dt.type(mx)
    for start in range(0, flat.size, _CHUNK_PIXELS):
        chunk = flat[start:start + _CHUNK_PIXELS].astype(dt, copy=True)
        if mx_t == mn_t:
            chunk[...] = 0
        else:  # the very operations of _normalize, so values (and ties) are bit-identical to the exact path
            chunk -= mn_t
            chunk /= mx_t - mn_t
        chunk *= bins
        idx = chunk.astype(np.int64)
        np.minimum(idx, bins - 1, out=idx)
        idx *= 2
        idx += y[start:start + _CHUNK_PIXELS]
        hist += np.bincount(idx, minlength=2 * bins)


def _max_f1_histogram(hist: np.ndarray) -> tuple[float, float]:
    """(max F1 over bin edges, upper bound of the exact max F1) from the (2 * bins,) histogram."""
    h_pos = hist[1::2].astype(np.float64)
    h_neg = hist[0::2].astype(np.float64)
    tp_ge = np.cumsum(h_pos[::-1])[::-1]  # positives in bins >= b
    fp_ge = np.cumsum(h_neg[::-1])[::-1]
    n_pos = tp_ge[0]
    if n_pos == 0 or fp_ge[0] == 0:
        return float("nan"), float("nan")  # one class only (see _max_f1_sorted)
    # "score >= lowest score present in bins >= b" is a real threshold: its F1 is attained
    value = float(np.max(2.0 * tp_ge / (tp_ge + fp_ge + n_pos)))
    # a threshold inside bin b has tp <= tp_ge[b] and fp >= fp_ge[b + 1]
    fp_gt = np.append(fp_ge[1:], 0.0)
    has_pos = h_pos > 0
    upper = float(np.max(2.0 * tp_ge[has_pos] / (tp_ge[has_pos] + fp_gt[has_pos] + n_pos)))
    return value, max(value, upper)


def _pooled_from_array(arr: np.ndarray, masks: np.ndarray, mn, mx, bins: int) -> tuple[float, float]:
    hist = np.zeros(2 * bins, dtype=np.int64)
    for i in range(arr.shape[0]):
        _accumulate_histogram(hist, arr[i], masks[i], mn, mx, bins)
    return _max_f1_histogram(hist)


def pixel_max_f1_streaming(
    pairs: Iterable | Callable[[], Iterable],
    bins: int = DEFAULT_BINS,
    value_range: tuple[float, float] | None = None,
    return_bound: bool = False,
) -> float | tuple[float, float]:
    """Pooled pixel max-F1 of one category read image by image; memory does not grow with the number of images.

    ``pairs`` yields ``(map, mask)``: map (H, W) float, mask (H, W) bool or 0/1 (H, W may change between pairs). It is
    a re-iterable (list, custom iterable) or a zero-argument callable returning a fresh iterable. Without
    ``value_range`` a first pass finds the category min/max (so a generator is produced twice); with
    ``value_range=(min, max)`` one pass suffices and a one-shot iterator is accepted (maps must lie inside it).

    Returns the max F1 over the edges of ``bins`` equal bins of the normalised scores: the F1 of an actual threshold,
    so never above the exact max-F1. With ``return_bound=True`` returns ``(value, upper)`` where the exact max-F1 lies
    in [value, upper]. 0.0 when there is no positive pixel.
    """
    bins = _check_bins(bins)

    def fresh() -> Iterable:
        return pairs() if callable(pairs) else pairs

    def checked(it: Iterable):
        for i, pair in enumerate(it):
            try:
                values, mask = pair
            except (TypeError, ValueError):
                raise ValueError(f"pairs must yield (map, mask) tuples; item {i} is {type(pair).__name__}") from None
            values = np.asarray(values)
            if values.ndim != 2 or values.size == 0:
                raise ValueError(f"pair {i}: map must be a non-empty (H, W) array, got shape {values.shape}")
            if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
                    or values.dtype == bool):
                raise ValueError(f"pair {i}: map must be real numbers, got dtype {values.dtype}")
            lo, hi = _check_finite_range(values[None], "maps", where=f"pair {i}")
            mask = _as_binary(mask, values.shape, f"mask of pair {i}", "same as its map: (H, W)")
            yield i, values, mask, lo, hi

    if value_range is None:
        if not callable(pairs) and iter(pairs) is pairs:
            raise ValueError(
                "pairs is a one-shot iterator but the category min/max is unknown: pass value_range=(min, max), "
                "a list, or a callable returning a fresh iterator"
            )
        mn, mx, seen = np.inf, -np.inf, 0
        for _, _, _, lo, hi in checked(fresh()):
            mn, mx, seen = min(mn, lo), max(mx, hi), seen + 1
        if seen == 0:
            raise ValueError("pairs yielded no (map, mask) pair")
    else:
        try:
            mn, mx = (float(v) for v in value_range)
        except (TypeError, ValueError):
            raise ValueError(f"value_range must be (min, max), got {value_range!r}") from None
        if not (np.isfinite(mn) and np.isfinite(mx) and mn <= mx):
            raise ValueError(f"value_range must be finite with min <= max, got {value_range!r}")

    hist = np.zeros(2 * bins, dtype=np.int64)
    seen = 0
    for i, values, mask, lo, hi in checked(fresh()):
        if lo < mn or hi > mx:
            raise ValueError(
                f"pair {i}: map values [{lo}, {hi}] fall outside the category range [{mn}, {mx}]; widen value_range "
                f"or let the function compute it (value_range=None with a re-iterable pairs)"
            )
        _accumulate_histogram(hist, values, mask, mn, mx, bins)
        seen += 1
    if seen == 0:
        raise ValueError("pairs yielded no (map, mask) pair")
    value, upper = _max_f1_histogram(hist)
    return (value, upper) if return_bound else value


def pixel_max_f1(maps, masks, pooled: bool | None = None, bins: int = DEFAULT_BINS) -> float:
    """Pixel-level max-F1 of one category in [0, 1] (nan when no pixel, or every pixel, is anomalous).

    maps (N, H, W) float, masks (N, H, W) bool or 0/1. Maps are normalised together (:func:`normalize_category`),
    all pixels pooled, and F1 = 2PR / (P + R) maximised over every precision-recall threshold (exact). ``pooled=None``
    picks the histogram mode (``bins`` bins, processed image by image) from :data:`POOLED_MIN_PIXELS` pixels on;
    ``True`` / ``False`` force it.
    """
    arr, m, mn, mx = _validate(maps, masks)
    bins = _check_bins(bins)
    use_pooled = arr.size >= POOLED_MIN_PIXELS if pooled is None else bool(pooled)
    if use_pooled:
        return _pooled_from_array(arr, m, mn, mx, bins)[0]
    pos, neg = _split_sorted(_normalize(arr, mn, mx), m)
    return _max_f1_sorted(pos, neg)


def pixel_auroc(maps, masks) -> float:
    """Pixel-level AUROC of one category (pooled pixels of the normalised maps); nan with one class only.

    maps (N, H, W) float, masks (N, H, W) bool or 0/1. Ties count one half, as ``roc_auc_score``.
    """
    arr, m, mn, mx = _validate(maps, masks)
    pos, neg = _split_sorted(_normalize(arr, mn, mx), m)
    return _auroc_sorted(pos, neg)


# ----------------------------------------------------------------------------------------------------------------------
# image level
# ----------------------------------------------------------------------------------------------------------------------
def _image_scores(arr: np.ndarray, mn, mx) -> np.ndarray:
    """(N,) max of each category-normalised map (normalising the maxima gives the same numbers)."""
    return _normalize(arr.reshape(arr.shape[0], -1).max(axis=1), mn, mx)


def _validate_image(maps, labels) -> tuple[np.ndarray, np.ndarray]:
    arr = _as_maps(maps)
    mn, mx = _check_finite_range(arr, "maps")
    y = _validate_labels(labels, arr.shape[0])
    return _image_scores(arr, mn, mx), y


def image_auroc(maps, labels) -> float:
    """Image-level AUROC; score = max of the category-normalised map. maps (N, H, W), labels (N,) bool or 0/1.

    nan when all labels are equal.
    """
    scores, y = _validate_image(maps, labels)
    return _auroc_sorted(*_split_sorted(scores, y))


def image_max_f1(maps, labels) -> float:
    """Image-level max-F1; score = max of the category-normalised map. maps (N, H, W), labels (N,) bool or 0/1.

    nan when all labels are equal.
    """
    scores, y = _validate_image(maps, labels)
    return _max_f1_sorted(*_split_sorted(scores, y))


# ----------------------------------------------------------------------------------------------------------------------
# threshold levels shared by AUPRO and region F1
# ----------------------------------------------------------------------------------------------------------------------
def _check_protocol(protocol) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return protocol


def _check_num_thresholds(num_thresholds) -> int:
    if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, np.integer)) or num_thresholds < 1:
        raise ValueError(f"num_thresholds must be an integer >= 1, got {num_thresholds!r}")
    if num_thresholds > 65534:
        raise ValueError(f"num_thresholds must be at most 65534, got {num_thresholds}")
    return int(num_thresholds)


def _levels(norm: np.ndarray, num_thresholds: int) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------------------------------------
# AUPRO
# ----------------------------------------------------------------------------------------------------------------------
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


def _aupro_from_levels(levels, masks, k: int, fpr_limit: float, protocol: str) -> float:
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


def _check_fraction(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}") from None
    if not (0.0 < v <= 1.0):
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return v


def aupro(maps, masks, fpr_limit: float = 0.3, num_thresholds: int = 200, protocol: Protocol = "standard") -> float:
    """Area under the per-region-overlap (PRO) vs false-positive-rate curve up to ``fpr_limit``, in [0, 1].

    maps (N, H, W) float, masks (N, H, W) bool or 0/1. At each of the ``num_thresholds`` official thresholds the PRO
    is the mean, over all 8-connected ground-truth regions of the category, of the fraction of the region predicted;
    the FPR is the fraction of normal pixels predicted. ``protocol`` (see the module doc) decides how the curve is
    cut and rescaled. nan without ground-truth regions or without normal pixels.
    """
    arr, m, mn, mx = _validate(maps, masks)
    fpr_limit = _check_fraction(fpr_limit, "fpr_limit")
    k = _check_num_thresholds(num_thresholds)
    protocol = _check_protocol(protocol)
    return _aupro_from_levels(_levels(_normalize(arr, mn, mx), k), m, k, fpr_limit, protocol)


# ----------------------------------------------------------------------------------------------------------------------
# region F1
# ----------------------------------------------------------------------------------------------------------------------
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


def _region_f1_from_levels(levels, masks, k: int, iou: float, protocol: str) -> float:
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
    arr, m, mn, mx = _validate(maps, masks)
    iou = _check_fraction(iou, "iou")
    k = _check_num_thresholds(num_thresholds)
    protocol = _check_protocol(protocol)
    return _region_f1_from_levels(_levels(_normalize(arr, mn, mx), k), m, k, iou, protocol)


# ----------------------------------------------------------------------------------------------------------------------
# everything at once
# ----------------------------------------------------------------------------------------------------------------------
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
    arr, m, mn, mx = _validate(maps, masks)
    y = m.reshape(m.shape[0], -1).any(axis=1) if labels is None else _validate_labels(labels, arr.shape[0])
    bins = _check_bins(bins)
    fpr_limit = _check_fraction(fpr_limit, "fpr_limit")
    iou = _check_fraction(iou, "iou")
    k = _check_num_thresholds(num_thresholds)
    protocol = _check_protocol(protocol)

    use_pooled = arr.size >= POOLED_MIN_PIXELS if pooled is None else bool(pooled)
    pooled_f1 = _pooled_from_array(arr, m, mn, mx, bins)[0] if use_pooled else None
    norm = _normalize(arr, mn, mx)
    pos, neg = _split_sorted(norm, m)
    out = {"pixel_max_f1": pooled_f1 if use_pooled else _max_f1_sorted(pos, neg)}
    out["pixel_auroc"] = _auroc_sorted(pos, neg)
    del pos, neg
    levels = _levels(norm, k) if region_metrics else None
    out["aupro"] = _aupro_from_levels(levels, m, k, fpr_limit, protocol) if region_metrics else np.nan
    image_pos, image_neg = _split_sorted(_image_scores(arr, mn, mx), y)
    out["image_auroc"] = _auroc_sorted(image_pos, image_neg)
    out["image_max_f1"] = _max_f1_sorted(image_pos, image_neg)
    out["region_f1"] = _region_f1_from_levels(levels, m, k, iou, protocol) if region_metrics else np.nan
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
