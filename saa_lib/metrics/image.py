"""Image-level AUROC and max-F1: an image's score is the max of its category-normalised map."""
from __future__ import annotations

import numpy as np

from .checks import as_maps, check_finite_range, normalize, validate_labels
from .pixel import auroc_sorted, max_f1_sorted, split_sorted


def image_scores(arr: np.ndarray, mn, mx) -> np.ndarray:
    """(N,) max of each category-normalised map (normalising the maxima gives the same numbers)."""
    return normalize(arr.reshape(arr.shape[0], -1).max(axis=1), mn, mx)


def _validate_image(maps, labels) -> tuple[np.ndarray, np.ndarray]:
    arr = as_maps(maps)
    mn, mx = check_finite_range(arr, "maps")
    y = validate_labels(labels, arr.shape[0])
    return image_scores(arr, mn, mx), y


def image_auroc(maps, labels) -> float:
    """Image-level AUROC; score = max of the category-normalised map. maps (N, H, W), labels (N,) bool or 0/1.

    nan when all labels are equal.
    """
    scores, y = _validate_image(maps, labels)
    return auroc_sorted(*split_sorted(scores, y))


def image_max_f1(maps, labels) -> float:
    """Image-level max-F1; score = max of the category-normalised map. maps (N, H, W), labels (N,) bool or 0/1.

    nan when all labels are equal.
    """
    scores, y = _validate_image(maps, labels)
    return max_f1_sorted(*split_sorted(scores, y))
