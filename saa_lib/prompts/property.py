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


def property_keep_stats(iou: np.ndarray, areas: np.ndarray, object_area: int, min_iou: float,
                        max_area_ratio: float) -> np.ndarray:
    """Paper P^P from per-mask statistics (:class:`saa_lib.masks.PackedMasks` ``iou`` / ``areas``): keep a mask iff
    ``iou`` (M,) with the object mask >= ``min_iou`` and 0 < ``areas`` (M,) <= ``max_area_ratio`` * ``object_area``
    (pixels). (M,) bool."""
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


# ----------------------------------------------------------------------------------- the rule on a stage's outputs
def object_count(prompts, config) -> int:
    """How many objects an image of the category holds: ``config.object_count``, else the category's table."""
    return config.object_count if config.object_count is not None else prompts.count


def found_objects(st, prompts, config) -> tuple[np.ndarray, int]:
    """(keep (K,) bool over ``st.object_detections``, object count): the object boxes a variant counts, those above
    the box threshold and no larger than one object's share of the image. ``st``: stage outputs
    (:class:`saa_lib.pipeline.StageOutputs`); official stages compare raw float32 areas, 0 < area < 1 / count (also
    for one object)."""
    count = object_count(prompts, config)
    obj = st.object_detections
    if st.official:
        return (obj.scores > config.box_threshold) & official_object_keep(obj.official_areas(), count), count
    return (obj.scores > config.box_threshold) & object_boxes_keep(obj.boxes, st.image_hw, count), count


def max_area_ratio(prompts, config) -> float:
    """theta_area: ``config.max_area_ratio``, else the category's table."""
    return config.max_area_ratio if config.max_area_ratio is not None else prompts.max_area_ratio


def area_limit(object_detections, prompts, config):
    """Code behaviour: the largest raw box area P^P can keep under ``config`` for any box threshold (the object area
    taken over every object box above the generator's floor), or None when ``config`` keeps any area (P^P off)."""
    if not config.use_property:
        return None
    areas = object_detections.official_areas()
    ref = official_object_area(areas[official_object_keep(areas, object_count(prompts, config))])
    return np.float32(ref * max_area_ratio(prompts, config))


def check_area_limit(st, prompts, config) -> None:
    """Raise when ``config`` could keep boxes that the stages ``st`` dropped before SAM (``st.area_limit``)."""
    if st.area_limit is None:
        return
    limit = area_limit(st.object_detections, prompts, config)
    if limit is None or limit > st.area_limit:
        raise ValueError(f"variant {config.variant!r} can keep boxes the stages dropped before SAM (area limit "
                         f"{st.area_limit:g}); compute the stages for it: stages(..., prune=False)")


def property_keep(st, prompts, config, official: bool) -> np.ndarray:
    """(M,) bool: the candidates of ``st`` that P^P keeps under ``config``. ``official``: raw float32 box areas
    against the largest found object's (:func:`official_property_keep`); code behaviour otherwise: clipped box areas
    (:func:`property_keep_boxes`); paper: mask IoU with the found objects' union mask and mask area
    (:func:`property_keep_stats`; the whole image when no object was found)."""
    ratio = max_area_ratio(prompts, config)
    obj_keep, _ = found_objects(st, prompts, config)
    det = st.detections
    if official:
        ref = official_object_area(st.object_detections.official_areas()[obj_keep])
        return official_property_keep(det.official_areas(), ref, ratio)
    if config.behaviour == "code":
        ref = object_reference_area(st.object_detections.boxes[obj_keep], st.image_hw)
        return property_keep_boxes(det.boxes, st.image_hw, ref, ratio)
    r = config.eval_resolution
    masks, om = st.packed_masks(), st.object_masks
    obj_mask = om[obj_keep].any(0) if om is not None and obj_keep.any() else np.ones((r, r), bool)
    return property_keep_stats(masks.iou(obj_mask), masks.areas(), int(obj_mask.sum()), config.min_iou, ratio)
