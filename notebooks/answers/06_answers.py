"""Answers to the exercises of notebook 06 (SAA+ and the explorer), as code that runs.

Each answer is a function of the notebook's context (``backbone``: the real saliency backbone the known case is
built with) that returns what the exercise asks for; ``WRONG`` holds a plausible wrong answer to each, which its
check must refuse with a hint (``tests/test_exercises.py`` runs both).
"""
from functools import lru_cache

from saa_lib import workbook
from saa_lib.scoring import score
from saa_lib.workbook import known_case as kc


@lru_cache(maxsize=4)
def _case(backbone, behaviour):
    cfg = workbook.make_config("saa_plus", behaviour, backbone.name)
    return kc.known_case(backbone, cfg, category="washer", defect="hole", seed=0), cfg


def box_threshold(backbone, **context):
    """06.1: **θ_box = 0.30.** A box passes when c_i > θ_box, compared in float32 (the precision of the stored
    confidences), so at 0.30 the hole (0.30) is removed by the threshold and the next patches of intact metal in the
    rescored ranking take its place among the K kept: the map's maximum moves onto intact metal. From 0.36 on only the
    two whole-washer boxes (0.45, 0.40) pass, and P^L / P^P remove them: the map is empty. On a synthetic image with
    the tiny random-weight detector the confidences are saturated near 1 (they mean nothing): θ_box = 0.9 removes some
    candidates but not the K fused ones, so the map does not change."""
    case, cfg = _case(backbone, "code")
    return next(t / 100 for t in range(1, 100) if "true defect" not in kc.fused_names(
        case, score(case.stages, case.prompts, cfg.with_(box_threshold=t / 100))))


def property_paper(backbone, **context):
    """06.2: **{1, 2, 9}**: both whole-washer boxes and the background patch. In paper behaviour the class-agnostic
    prompts are 'anomaly' and 'defect', with no object word, so P^L cannot remove a whole-object box phrased
    'anomaly': P^P does (its area is the object's, above θ_area). The background patch lies off the washer: its IoU
    with the object's SAM mask is 0 < θ_IoU. In code behaviour P^P tests box areas only (no IoU), so the background
    patch passes it, and the box phrased after the object ('washer') is removed earlier, by P^L."""
    case, cfg = _case(backbone, "paper")
    res = score(case.stages, case.prompts, cfg)
    return {i for i, r in kc.candidate_regions(case, res).items() if r.removed_by == "property"}


def iou_threshold(backbone, **context):
    """06.3: **θ_IoU = 0.012.** For a region inside the object, its IoU with the object's mask is its area divided by
    the object's: the hole covers about 1.2 % of the washer, so from θ_IoU = 0.012 on P^P removes it (and from 0.011
    the smallest patch of intact metal). The paper's θ_IoU (1e-3) is a sanity check — the region touches the object —
    not a size test; a larger θ_IoU removes exactly the small regions a defect usually is. Size is θ_area's job."""
    case, cfg = _case(backbone, "paper")
    for t in range(1, 1000):
        res = score(case.stages, case.prompts, cfg.with_(min_iou=t / 1000))
        if kc.candidate_regions(case, res)[0].removed_by == "property":
            return t / 1000


ANSWERS = {"06.1": box_threshold, "06.2": property_paper, "06.3": iou_threshold}
WRONG = {"06.1": lambda **context: 0.31, "06.2": lambda **context: {2}, "06.3": lambda **context: 0.001}
