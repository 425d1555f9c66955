"""Checkers of notebook 03 (property prompts P^P)."""
from __future__ import annotations

import numpy as np

from ...masks import PackedMasks
from ...prompts.property import box_areas, property_keep, property_keep_stats
from ..exercises import agrees_with, close_to, exercise, same_set


def _property_cases(n_cases: int = 4, size: int = 32):
    """(masks (M, size, size) bool, object mask (size, size) bool, θ_IoU, θ_area): an object disc, candidates on it,
    beside it, as large as it, and one empty mask."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:size, :size]
    cases = []
    for i in range(n_cases):
        obj = (yy - 15) ** 2 + (xx - 15) ** 2 <= rng.integers(6, 12) ** 2
        masks = []
        for _ in range(10):
            cy, cx, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(1, 9))]
            masks.append((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
        masks += [obj.copy(), obj & (xx < 15), np.zeros_like(obj)]
        cases.append((np.stack(masks), obj, float([1e-3, 0.05, 0.0, 0.2][i]), float([0.5, 0.2, 0.9, 1.0][i])))
    return cases


def library_property_filter(masks, object_mask, min_iou, max_area_ratio):
    """The library's paper P^P (:func:`saa_lib.prompts.property.property_keep_stats` on the masks' IoU with the object
    mask and their areas). (M,) bool."""
    packed = PackedMasks.from_dense(np.asarray(masks, bool))
    return property_keep_stats(packed.iou(object_mask), packed.areas(), int(np.sum(object_mask)), min_iou,
                               max_area_ratio)


@exercise("03.1", "P^P from scratch (paper form): keep a mask when its IoU with the object mask is at least θ_IoU and "
          "its area is above 0 and at most θ_area times the object's",
          "IoU = |m ∧ object| / |m ∨ object| (sum over the last two axes); area = |m|; keep where IoU >= θ_IoU and "
          "0 < area <= θ_area * |object|")
def property_from_scratch(keep) -> bool | str:
    return agrees_with(lambda *case: np.asarray(keep(*case), bool), library_property_filter, _property_cases())


def property_fates(case, behaviour: str) -> np.ndarray:
    """(M,) bool: the known case's candidates P^P keeps in ``behaviour``'s form (code: boxes; paper: masks)."""
    config = case.config.with_(behaviour=behaviour)
    return property_keep(case.stages, case.prompts, config, official=False)


@exercise("03.2", "boxes or masks: the known case's candidate that the paper's P^P removes and the official code's "
          "keeps",
          "the paper's rule also asks for an overlap with the object (IoU >= θ_IoU); the code's rule compares box "
          "areas only. Which candidate is small but not on the washer?")
def iou_test(answer, case) -> bool | str:
    paper, code = property_fates(case, "paper"), property_fates(case, "code")
    expected = [name for name, p, c in zip(case.names, paper, code) if c and not p]
    if not isinstance(answer, str) and not hasattr(answer, "__iter__"):
        return "hand in the candidate's name as written in the fate table"
    return same_set(answer, expected, "candidates")


def hole_area_ratio(case) -> float:
    """The known case's hole against the washer, in the case's P^P form: box areas (code) or mask areas (paper)."""
    st = case.stages
    if case.config.behaviour == "code":
        return float(box_areas(st.detections.boxes[:1], st.image_hw)[0]
                     / box_areas(st.object_detections.boxes, st.image_hw).max())
    objects = np.asarray(st.object_masks, bool)
    return float(st.packed_masks().areas()[0] / objects.reshape(-1, *objects.shape[-2:]).any(0).sum())


@exercise("03.3", "the smallest θ_area that keeps the hole: its area as a fraction of the washer's, in this "
          "behaviour's form of P^P",
          "P^P keeps the hole while its area stays below θ_area times the washer's: divide the hole's area by the "
          "washer's (code form: the areas of their boxes; paper form: of their masks)")
def area_ratio(answer, case) -> bool | str:
    verdict = close_to(answer, hole_area_ratio(case), 0.05 * hole_area_ratio(case), what="your θ_area")
    if verdict == "your θ_area is too high":
        return verdict + ": the table's value keeps the hole, but is it the smallest that does?"
    return verdict
