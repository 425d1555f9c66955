"""Checkers of notebook 01 (baseline SAA)."""
from __future__ import annotations

import numpy as np

from ...fusion import fuse_regions
from ..exercises import agrees_with, close_each, close_to, exercise


def _fusion_cases(seed: int = 0, n: int = 4):
    """Random (masks (M, H, W) bool, scores (M,)) inputs, one of them with an empty mask and an uncovered pixel."""
    rng = np.random.default_rng(seed)
    cases = []
    for m in (1, 3, 5, 8)[:n]:
        masks = rng.random((m, 12, 10)) < 0.3
        masks[:, 0, 0] = False  # a pixel no region covers
        cases.append((masks, rng.random(m)))
    return cases


@exercise("01.1", "fusion from scratch: A = sum(mask * score) / sum(mask), 0 where no region covers a pixel",
          "sum the score-weighted masks and the masks over the regions (axis 0), then divide where the mask sum is "
          "above zero; leave the uncovered pixels at 0")
def fusion_from_scratch(fuse) -> bool | str:
    return agrees_with(fuse, lambda masks, scores: fuse_regions(masks, scores, offset=0.0), _fusion_cases())


def _saa(case, **overrides):
    """The baseline SAA in the known case's behaviour and saliency settings, with ``overrides``."""
    from ..series import make_config

    return make_config("saa", case.config.behaviour, case.config.saliency.backbone, **overrides)


@exercise("01.2", "fusion offset: the anomaly score of a washer pixel under SAA on the known case with the paper's "
          "δ = 0 and the official code's δ = 1",
          "count the regions SAA keeps that cover a washer pixel and their confidences; then put them in A(x) = "
          "Σ c_i m_i(x) / (δ + Σ m_i(x)) once with δ = 0 and once with δ = 1")
def fusion_offset(answer, case) -> bool | str:
    from ...scoring import score

    expected = {f"value with δ = {d}": score(case.stages, case.prompts, _saa(case, fusion_offset=float(d)))
                .image_score for d in (0, 1)}
    return close_each(answer, expected, 0.002)


@exercise("01.3", "box threshold: the image score of SAA on the known case at θ_box = 0.42 (this behaviour's δ)",
          "θ_box removes every box whose confidence is not above it: which of the two whole-washer boxes stays, and "
          "how many regions then cover a washer pixel?")
def box_threshold(answer, case) -> bool | str:
    from ...scoring import score

    base = _saa(case)
    expected = score(case.stages, case.prompts, base.with_(box_threshold=0.42)).image_score
    verdict = close_to(answer, expected, 0.002, what="your image score")
    if verdict is not True and close_to(answer, score(case.stages, case.prompts, base).image_score, 0.002) is True:
        return "that is the image score at the default θ_box: one of the two boxes is not above 0.42"
    return verdict
