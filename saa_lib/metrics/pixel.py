"""Pixel-level max-F1 and AUROC of one category: exact from sorted scores, or pooled in a histogram image by
image (memory independent of the number of images)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from .checks import as_binary, check_bins, check_finite_range, float_dtype, normalize, validate


#: ``pixel_max_f1(pooled=None)`` uses the exact computation below this many pixels, the histogram at or above.
POOLED_MIN_PIXELS = 32_000_000


#: Number of equal bins of the normalised scores in pooled mode.
DEFAULT_BINS = 1 << 16


_CHUNK_PIXELS = 1 << 22  # pixels normalised at a time in pooled mode (bounds the temporaries)


def split_sorted(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted scores of the positives and of the negatives ((P,), (M,))."""
    flat = scores.reshape(-1)
    y = positive.reshape(-1)
    pos = flat[y]
    neg = flat[~y]
    pos.sort()
    neg.sort()
    return pos, neg


def max_f1_sorted(pos: np.ndarray, neg: np.ndarray) -> float:
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


def auroc_sorted(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + 0.5 P(equal) (what roc_auc_score's trapezoids give)."""
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    below = np.searchsorted(neg, pos, side="left")
    upto = np.searchsorted(neg, pos, side="right")
    twice_u = 2 * int(below.sum(dtype=np.int64)) + int((upto - below).sum(dtype=np.int64))
    return twice_u / (2.0 * pos.size * neg.size)


def _accumulate_histogram(hist: np.ndarray, values: np.ndarray, positive: np.ndarray, mn, mx, bins: int) -> None:
    """Add the (…) map ``values`` / bool ``positive`` to ``hist`` (2 * bins,): index 2*bin + is_positive."""
    dt = float_dtype(values.dtype)
    flat = values.reshape(-1)
    y = positive.reshape(-1)
    mn_t, mx_t = dt.type(mn), dt.type(mx)
    for start in range(0, flat.size, _CHUNK_PIXELS):
        chunk = flat[start:start + _CHUNK_PIXELS].astype(dt, copy=True)
        if mx_t == mn_t:
            chunk[...] = 0
        else:  # the very operations of normalize, so values (and ties) are bit-identical to the exact path
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
        return float("nan"), float("nan")  # one class only (see max_f1_sorted)
    # "score >= lowest score present in bins >= b" is a real threshold: its F1 is attained
    value = float(np.max(2.0 * tp_ge / (tp_ge + fp_ge + n_pos)))
    # a threshold inside bin b has tp <= tp_ge[b] and fp >= fp_ge[b + 1]
    fp_gt = np.append(fp_ge[1:], 0.0)
    has_pos = h_pos > 0
    upper = float(np.max(2.0 * tp_ge[has_pos] / (tp_ge[has_pos] + fp_gt[has_pos] + n_pos)))
    return value, max(value, upper)


def pooled_from_array(arr: np.ndarray, masks: np.ndarray, mn, mx, bins: int) -> tuple[float, float]:
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
    bins = check_bins(bins)

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
            lo, hi = check_finite_range(values[None], "maps", where=f"pair {i}")
            mask = as_binary(mask, values.shape, f"mask of pair {i}", "same as its map: (H, W)")
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
    arr, m, mn, mx = validate(maps, masks)
    bins = check_bins(bins)
    use_pooled = arr.size >= POOLED_MIN_PIXELS if pooled is None else bool(pooled)
    if use_pooled:
        return pooled_from_array(arr, m, mn, mx, bins)[0]
    pos, neg = split_sorted(normalize(arr, mn, mx), m)
    return max_f1_sorted(pos, neg)


def pixel_auroc(maps, masks) -> float:
    """Pixel-level AUROC of one category (pooled pixels of the normalised maps); nan with one class only.

    maps (N, H, W) float, masks (N, H, W) bool or 0/1. Ties count one half, as ``roc_auc_score``.
    """
    arr, m, mn, mx = validate(maps, masks)
    pos, neg = split_sorted(normalize(arr, mn, mx), m)
    return auroc_sorted(pos, neg)
