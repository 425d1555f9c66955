"""Answers to the exercises of notebook 03 (property prompts P^P), as code that runs.

Each answer is a function of the notebook's context (``case``, the hand-built known case) that returns what the
exercise asks for; ``WRONG`` holds a plausible wrong answer to each, which its check must refuse with a hint
(``tests/test_exercises.py`` runs both).
"""
import numpy as np

from saa_lib.prompts.property import box_areas
from saa_lib.scoring import score


def property_filter(**context):
    """03.1: the paper's P^P on masks. IoU with the object mask and area, both from sums over the pixel axes; a mask
    must overlap the object (IoU >= θ_IoU) and be non-empty and at most θ_area times the object's area."""
    def keep(masks, object_mask, min_iou, max_area_ratio):
        masks, obj = np.asarray(masks, bool), np.asarray(object_mask, bool)
        inter = (masks & obj).sum(axis=(1, 2))
        union = (masks | obj).sum(axis=(1, 2))
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        area = masks.sum(axis=(1, 2))
        return (iou >= min_iou) & (area > 0) & (area <= max_area_ratio * obj.sum())
    return keep


def iou_test(case, **context):
    """03.2: the background patch. In the paper's form P^P requires a region's SAM mask to overlap the object mask
    (IoU >= θ_IoU = 0.001): the patch lies off the washer, its IoU is 0, and P^P removes it. The official code
    compares box areas only (area < θ_area x the object box's): the patch is small, so it passes — the code's test has
    no notion of *where* a box is (in code behaviour the patch then competes in P^C). Scoring the known case with
    ``case_on.with_(behaviour="paper")`` shows it in the fate table."""
    paper = score(case.stages, case.prompts, case.config.with_(behaviour="paper", use_confidence=False)).regions
    code = score(case.stages, case.prompts, case.config.with_(behaviour="code", use_confidence=False)).regions
    return [n for n, p, c in zip(case.names, paper, code) if p.removed_by == "property" and c.removed_by != "property"]


def area_ratio(case, **context):
    """03.3: P^P keeps the hole while its area is below θ_area times the washer's, so the smallest θ_area that keeps
    it is the ratio of the two areas: in the code's form the box areas (the hole's box is about 0.95 % of the washer's
    box: θ_area must stay above ≈ 0.0096), in the paper's the mask areas (≈ 0.012: the washer's mask is a ring, a
    smaller share of its box than the round hole's mask is of its own). At the other end, the whole-washer boxes have
    ratio 1 and go for every θ_area up to 1 (code: strictly below). Any value between works on this image; the table's 0.5 sits far from both
    ends. What limits θ_area in practice is the *largest* real defect of the category (a missing part, a long scratch)
    — it must stay below θ_area x object — while whole-object answers must stay above. The patches of intact metal are
    as small as the hole: no area threshold separates them; that is the job of P^S."""
    st = case.stages
    if case.config.behaviour == "code":
        return float(box_areas(st.detections.boxes[:1], st.image_hw)[0]
                     / box_areas(st.object_detections.boxes, st.image_hw).max())
    objects = np.asarray(st.object_masks, bool)
    return float(st.packed_masks().areas()[0] / objects.reshape(-1, *objects.shape[-2:]).any(0).sum())


ANSWERS = {"03.1": property_filter, "03.2": iou_test, "03.3": area_ratio}
WRONG = {
    # the area test alone: the code's rule, applied to masks
    "03.1": lambda **context: lambda masks, object_mask, min_iou, max_area_ratio: (
        (np.asarray(masks).sum(axis=(1, 2)) > 0)
        & (np.asarray(masks).sum(axis=(1, 2)) <= max_area_ratio * np.asarray(object_mask).sum())),
    "03.2": lambda case, **context: case.names[2],  # the whole washer: removed in both forms
    "03.3": lambda case, **context: case.prompts.max_area_ratio,  # the table's value keeps it, but is not the smallest
}
