"""Input checks and the category-wide min-max normalisation shared by every metric."""
from __future__ import annotations

from typing import Literal

import numpy as np


Protocol = Literal["standard", "code"]


PROTOCOLS = ("standard", "code")


def float_dtype(dtype: np.dtype) -> np.dtype:
    """float32 stays float32, float64 stays float64, smaller ints/float16 -> float32, larger ints -> float64."""
    return np.result_type(dtype, np.float32)


def check_finite_range(arr: np.ndarray, name: str, where: str = "image {}") -> tuple[float, float]:
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


def as_maps(maps, name: str = "maps") -> np.ndarray:
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


def as_binary(values, shape: tuple[int, ...], name: str, what: str) -> np.ndarray:
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


def validate(maps, masks) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(maps (N, H, W), masks (N, H, W) bool, min, max) after the checks."""
    arr = as_maps(maps)
    mn, mx = check_finite_range(arr, "maps")
    m = as_binary(masks, arr.shape, "masks", "same as maps: (N, H, W)")
    return arr, m, mn, mx


def validate_labels(labels, n: int) -> np.ndarray:
    return as_binary(labels, (n,), "labels", "(N,) one label per map")


def normalize(arr: np.ndarray, mn, mx) -> np.ndarray:
    """(x - mn) / (mx - mn) in the maps' float dtype (new array); all zeros when mx == mn."""
    dt = float_dtype(arr.dtype)
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
    arr = as_maps(maps)
    mn, mx = check_finite_range(arr, "maps")
    return normalize(arr, mn, mx)


def check_bins(bins) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    return int(bins)


def check_protocol(protocol) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return protocol


def check_num_thresholds(num_thresholds) -> int:
    if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, np.integer)) or num_thresholds < 1:
        raise ValueError(f"num_thresholds must be an integer >= 1, got {num_thresholds!r}")
    if num_thresholds > 65534:
        raise ValueError(f"num_thresholds must be at most 65534, got {num_thresholds}")
    return int(num_thresholds)


def check_fraction(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}") from None
    if not (0.0 < v <= 1.0):
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return v
