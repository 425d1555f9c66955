"""The known case does what notebooks 01 and 02 say it does, in both behaviours: the baseline SAA fuses the two
whole-washer boxes and never asks the prompt that finds the hole; with P^L no kept box is named after the object, and
without it no expert prompt is asked. (These were nbval output checks inside the notebooks.)"""
from __future__ import annotations

import pytest

from saa_lib import workbook
from saa_lib.models.backbone import load_saliency_backbone
from saa_lib.scoring import score
from saa_lib.workbook import known_case as kc


@pytest.fixture(scope="module")
def lite0():
    return load_saliency_backbone("tf_efficientnet_lite0")


@pytest.mark.parametrize("behaviour", ["code", "paper"])
def test_the_baseline_fuses_the_whole_washer_and_never_asks_for_the_hole(lite0, behaviour):
    config = workbook.make_config("saa", behaviour, "tf_efficientnet_lite0")
    case = kc.known_case(lite0, config)
    result = score(case.stages, case.prompts, config)
    assert kc.fused_names(case, result) == case.names[1:3]  # the two whole-washer boxes, nothing else
    assert len(result.regions) == case.kinds.count("agnostic")  # the prompt that finds the hole is never asked
    assert case.config == config


@pytest.mark.parametrize("behaviour", ["code", "paper"])
def test_language_prompts_keep_no_box_named_after_the_object(lite0, behaviour):
    on = workbook.make_config("saa_plus", behaviour, "tf_efficientnet_lite0")
    case = kc.known_case(lite0, on)
    with_l = score(case.stages, case.prompts, on)
    without = score(case.stages, case.prompts, workbook.switched_off(on, "language"))
    kept = [r for r in with_l.regions if r.removed_by is None]
    assert kept and all(case.prompts.object_word not in r.phrase.split() for r in kept)
    assert len(without.regions) < len(with_l.regions)  # without P^L no expert prompt is asked
    assert "true defect" in kc.fused_names(case, with_l)
