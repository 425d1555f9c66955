"""P^P, property prompts: candidates must lie on the inspected object and be small relative to it.

Two behaviours (see ``SAAConfig.behaviour``):

* ``paper``: on SAM masks, keep a candidate iff IoU(candidate, object) >= theta_IoU and
  area(candidate) <= theta_area * area(object).
* ``code`` (official implementation): on GroundingDINO boxes, keep a box iff 0 < area(box) < theta_area * area of the
  largest object box (areas normalised by the image area); no IoU test. Object boxes themselves must be smaller than
  1 / count of the image.
"""
from __future__ import annotations

import numpy as np


def box_areas(boxes: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(M,) box areas as fractions of the image area. ``boxes``: (M, 4) xyxy pixels."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    h, w = image_hw
    wh = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
    return wh[:, 0] * wh[:, 1] / float(h * w)


def object_boxes_keep(boxes: np.ndarray, image_hw: tuple[int, int], count: int) -> np.ndarray:
    """(M,) bool: object boxes no larger than one object's share of the image (area < 1 / count)."""
    a = box_areas(boxes, image_hw)
    return (a > 0) & (a < 1.0 / max(count, 1)) if count > 1 else (a > 0)


def object_reference_area(object_boxes: np.ndarray, image_hw: tuple[int, int]) -> float:
    """Normalised area of the largest object box; 1 (the whole image) when no object was found."""
    a = box_areas(object_boxes, image_hw)
    return float(a.max()) if a.size else 1.0


def property_keep_boxes(boxes: np.ndarray, image_hw: tuple[int, int], object_area: float,
                        max_area_ratio: float) -> np.ndarray:
    """Official-code P^P. (M,) bool: 0 < box area < ``max_area_ratio`` * ``object_area`` (normalised areas)."""
    a = box_areas(boxes, image_hw)
    return (a > 0) & (a < max_area_ratio * object_area)


def mask_iou(masks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(M,) IoU of each mask in ``masks`` (M, H, W) bool with ``reference`` (H, W) bool (0 where both are empty)."""
    masks = np.asarray(masks, dtype=bool)
    ref = np.asarray(reference, dtype=bool)
    inter = (masks & ref).reshape(len(masks), -1).sum(1)
    union = (masks | ref).reshape(len(masks), -1).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def property_keep_masks(masks: np.ndarray, object_mask: np.ndarray, min_iou: float,
                        max_area_ratio: float) -> np.ndarray:
    """Paper P^P. (M,) bool: IoU(mask, object) >= ``min_iou`` and area(mask) <= ``max_area_ratio`` * area(object).

    ``masks``: (M, H, W) bool; ``object_mask``: (H, W) bool (all True when no object was found).
    """
    masks = np.asarray(masks, dtype=bool)
    return property_keep_stats(mask_iou(masks, object_mask), masks.reshape(len(masks), -1).sum(1),
                               int(np.asarray(object_mask, bool).sum()), min_iou, max_area_ratio)


def property_keep_stats(iou: np.ndarray, areas: np.ndarray, object_area: int, min_iou: float,
                        max_area_ratio: float) -> np.ndarray:
    """Paper P^P from per-mask statistics: ``iou`` (M,) with the object mask, ``areas`` (M,) and ``object_area`` in
    pixels. (M,) bool, as :func:`property_keep_masks`."""
    areas = np.asarray(areas)
    return (np.asarray(iou) >= min_iou) & (areas > 0) & (areas <= max_area_ratio * max(int(object_area), 1))
