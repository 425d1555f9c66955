"""Checkers of notebook 01 (baseline SAA)."""
from __future__ import annotations

import numpy as np

from ...fusion import fuse_regions
from ..exercises import agrees_with, exercise


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
