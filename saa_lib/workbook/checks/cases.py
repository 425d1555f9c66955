"""What several checkers share: the hand-built known case under either behaviour (built once per backbone), its
max-F1-pixel and what each configuration fuses. Registers no exercise."""
from __future__ import annotations

from ...metrics import pixel_max_f1
from ...scoring import score
from .. import known_case as kc
from ..series import make_config

_CASES: dict = {}


def known_case_of(backbone, behaviour: str = "code", seed: int = 0):
    """The washer with one hole (:func:`saa_lib.workbook.known_case.known_case`) under ``behaviour``, its saliency
    computed with ``backbone`` (a :class:`saa_lib.models.backbone.SaliencyBackbone`); built once per backbone."""
    key = (id(backbone), behaviour, seed)
    if key not in _CASES:
        _CASES[key] = (backbone, kc.known_case(backbone, base_config(backbone, behaviour), category="washer",
                                               defect="hole", seed=seed))
    return _CASES[key][1]


def base_config(backbone, behaviour: str = "code", variant: str = "saa_plus"):
    """The configuration of ``variant`` the known case is scored with (P^S on ``backbone``)."""
    return make_config(variant, behaviour, backbone.name)


def case_f1(case, config) -> float:
    """max-F1-pixel of the known case's map under ``config``."""
    res = score(case.stages, case.prompts, config)
    return pixel_max_f1(res.anomaly_map[None], case.mask[None])


def keeps_hole(case, config) -> bool:
    """Whether ``config`` fuses the true defect of the known case into its map."""
    return "true defect" in kc.fused_names(case, score(case.stages, case.prompts, config))


def fates(case, config) -> dict[int, str]:
    """``{candidate index: "kept" or the prompt that removed it}`` of the known case under ``config``."""
    res = score(case.stages, case.prompts, config)
    return {i: r.removed_by or "kept" for i, r in kc.candidate_regions(case, res).items()}
