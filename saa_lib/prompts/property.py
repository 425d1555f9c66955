"""P^P, property prompts: candidates must lie on the inspected object and be small relative to it.

Two behaviours (see ``SAAConfig.behaviour``):

* ``paper``: on SAM masks, keep a candidate iff IoU(candidate, object) >= theta_IoU and
  area(candidate) <= theta_area * area(object).
* ``code`` (official implementation): on GroundingDINO boxes, keep a box iff 0 < area(box) < theta_area * area of the
  largest object box (areas normalised by the image area); no IoU test. Object boxes themselves must be smaller than
  1 / count of the image. The official code computes these areas as w * h of the model's raw (unclipped) normalised
  boxes, in float32 (:func:`official_object_keep`, :func:`official_property_keep`); :func:`box_areas` works on clipped
  pixel boxes.
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


def official_object_keep(areas: np.ndarray, count: int) -> np.ndarray:
    """(M,) bool, official object filter on raw float32 box areas (``Detections.official_areas``):
    0 < area < 1 / count, compared in float32."""
    a = np.asarray(areas, np.float32)
    return (a > np.float32(0.0)) & (a < np.float32(1.0 / count))


def official_object_area(areas: np.ndarray):
    """The official reference area: the largest kept object box's raw area (float32), or 1 when none was kept."""
    a = np.asarray(areas, np.float32)
    return a.max() if a.size else 1


def official_property_keep(areas: np.ndarray, object_area, max_area_ratio: float) -> np.ndarray:
    """(M,) bool, official P^P on raw float32 box areas: 0 < area < object_area * max_area_ratio, where the product
    is taken in float32 when ``object_area`` is a float32 (an object was found), as the official code does."""
    a = np.asarray(areas, np.float32)
    limit = np.float32(object_area * max_area_ratio)
    return (a > np.float32(0.0)) & (a < limit)
