"""Checkers of notebook 06 (SAA+ and the explorer), on the known case (real saliency features, hand-built
candidates: meaningful whatever the detector weights)."""
from __future__ import annotations

from ..exercises import exercise, smallest_on_grid
from .cases import base_config, fates, keeps_hole, known_case_of

STEP_BOX, STEP_IOU = 0.01, 0.001


def _on_grid(answer, step: float) -> float | str:
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return "answer with a number"
    if abs(value / step - round(value / step)) > 1e-6:
        return f"give the value on the grid of the question (a multiple of {step:g})"
    return round(value / step) * step


@exercise("06.1", "the lowest θ_box (a multiple of 0.01) at which the hole leaves the known case's map (code "
          "behaviour)",
          "a box passes when its confidence is above θ_box (strictly, compared in float32, the precision of the "
          "stored confidences); read the true defect's confidence in the fate table")
def box_threshold_drops_the_hole(answer, backbone) -> bool | str:
    value = _on_grid(answer, STEP_BOX)
    if isinstance(value, str):
        return value
    case, cfg = known_case_of(backbone, "code"), base_config(backbone, "code")
    return smallest_on_grid(value, STEP_BOX, lambda t: not keeps_hole(case, cfg.with_(box_threshold=t)),
                            "too low: at this θ_box the hole is still in the map",
                            "too high: the hole has already left the map one step lower")


@exercise("06.2", "the candidates P^P removes in paper behaviour (indices into case.names)",
          "in paper behaviour P^P reads the SAM masks: a region must overlap the object's mask (IoU >= θ_IoU) and be "
          "at most θ_area of its area. The paper's prompts hold no object word, so P^L cannot remove a box phrased "
          "'anomaly', whatever it covers")
def property_in_paper_behaviour(answer, backbone) -> bool | str:
    try:
        chosen = {int(i) for i in answer}
    except (TypeError, ValueError):
        return "answer with a set of candidate indices (positions in case.names)"
    case = known_case_of(backbone, "paper")
    removed = {i for i, fate in fates(case, base_config(backbone, "paper")).items() if fate == "property"}
    if chosen - set(range(len(case.names))):
        return f"indices run from 0 to {len(case.names) - 1}"
    if chosen == removed:
        return True
    missing, extra = removed - chosen, chosen - removed
    if extra and not missing:
        return "you listed a candidate that P^P keeps (or that another prompt removes)"
    if missing and not extra:
        return "P^P removes more than these: think of the candidates that do not lie on the object"
    return "some of your candidates are not removed by P^P, and some it removes are missing"


@exercise("06.3", "the smallest θ_IoU (a multiple of 0.001) at which P^P removes the hole (paper behaviour)",
          "IoU with the object's mask: for a region inside the object it is the region's area / the object's area; a "
          "region is kept when its IoU >= θ_IoU. Sweep θ_IoU in the explorer (paper behaviour) or with "
          "config.with_(min_iou=...)")
def iou_threshold_drops_the_hole(answer, backbone) -> bool | str:
    value = _on_grid(answer, STEP_IOU)
    if isinstance(value, str):
        return value
    case, cfg = known_case_of(backbone, "paper"), base_config(backbone, "paper")
    return smallest_on_grid(value, STEP_IOU, lambda t: fates(case, cfg.with_(min_iou=t))[0] == "property",
                            "too low: at this θ_IoU P^P still keeps the hole",
                            "too high: one step lower P^P already removes the hole")
