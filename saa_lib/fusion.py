"""Fusion: regions and their scores -> one anomaly map and an image score."""
from __future__ import annotations

import numpy as np


def fuse_regions(masks: np.ndarray, scores: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """Anomaly map A = sum_r mask_r * s_r / (offset + sum_r mask_r); 0 where no region covers a pixel.

    ``masks``: (M, H, W) bool; ``scores``: (M,). ``offset`` is 0 in the paper, 1 in the official code.
    Returns (H, W) float32.
    """
    masks = np.asarray(masks, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if masks.ndim != 3 or len(masks) != len(scores):
        raise ValueError(f"masks must be (M, H, W) with M = len(scores); got {masks.shape} and {scores.shape}")
    m = masks.astype(np.float64)
    num = np.tensordot(scores, m, axes=(0, 0))
    den = m.sum(0) + offset
    out = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return out.astype(np.float32)


def image_score(anomaly_map: np.ndarray) -> float:
    """Image-level anomaly score: the maximum of the map."""
    return float(np.max(anomaly_map)) if np.size(anomaly_map) else 0.0
