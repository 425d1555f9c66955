"""Fusion: regions and their scores -> one anomaly map and an image score."""
from __future__ import annotations

import numpy as np


def fuse_regions(masks, scores: np.ndarray, offset: float = 0.0, chunk: int = 16) -> np.ndarray:
    """Anomaly map A = sum_r mask_r * s_r / (offset + sum_r mask_r); 0 where no region covers a pixel.

    ``masks``: (M, H, W) bool, an array or a stack whose slices are bool arrays (:class:`saa_lib.masks.PackedMasks`);
    ``scores``: (M,). ``offset`` is 0 in the paper, 1 in the official code. The sums run ``chunk`` masks at a time
    (memory ``chunk * H * W`` doubles however many regions are fused). Returns (H, W) float32.
    """
    if not hasattr(masks, "shape"):
        masks = np.asarray(masks, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(masks.shape) != 3 or masks.shape[0] != len(scores):
        raise ValueError(f"masks must be (M, H, W) with M = len(scores); got {masks.shape} and {scores.shape}")
    h, w = masks.shape[1:]
    num = np.zeros(h * w)
    den = np.full(h * w, float(offset))
    for start in range(0, len(scores), chunk):
        m = np.asarray(masks[start:start + chunk], dtype=bool).reshape(-1, h * w).astype(np.float64)
        num += scores[start:start + chunk] @ m
        den += m.sum(0)
    out = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return out.reshape(h, w).astype(np.float32)


def official_fuse(masks, scores, offset: float = 1.0, out_size: int | None = None) -> np.ndarray:
    """The official fusion: ``A = sum_r mask_r * s_r / (offset + sum_r mask_r)`` accumulated in float64 one mask at a
    time, in the order given (the official top-K order), divided where the denominator is > 0, then ``cv2.resize``'d
    (bilinear) to ``out_size`` x ``out_size`` (None: kept at the masks' resolution). ``masks``: (M, H, W) bool stack
    (dense or :class:`saa_lib.masks.PackedMasks`); ``scores``: (M,) in their own dtype (float32 scores are added as
    float32 values, as in the official code). No region: an all-zero map. Returns float64."""
    import cv2

    h, w = masks.shape[1:]
    num = np.zeros((h, w))
    den = np.full((h, w), float(offset))
    for i in range(len(scores)):
        m = np.asarray(masks[i:i + 1], dtype=bool)[0]
        np.add(num, scores[i], out=num, where=m)
        den += m  # + 1.0 inside the mask, + 0.0 (no change) outside
    np.divide(num, den, out=num, where=den > 0)
    if out_size is None:
        return num
    return cv2.resize(num, (int(out_size), int(out_size)))


def image_score(anomaly_map: np.ndarray) -> float:
    """Image-level anomaly score: the maximum of the map."""
    return float(np.max(anomaly_map)) if np.size(anomaly_map) else 0.0


def resize_map(amap: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(h, w) float anomaly map -> (H, W) float32, bilinear (e.g. back to the image's own size for display)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(amap, dtype=np.float32))[None, None]
    return F.interpolate(t, size=tuple(hw), mode="bilinear", align_corners=False)[0, 0].numpy()
