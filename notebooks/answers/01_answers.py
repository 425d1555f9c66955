"""Answers to the exercises of notebook 01 (baseline SAA), as code that runs.

Each answer is a function of the notebook's context (``case``, the hand-built known case) that returns what the
exercise asks for; ``WRONG`` holds a plausible wrong answer to each, which its check must refuse with a hint
(``tests/test_exercises.py`` runs both).
"""
import numpy as np

from saa_lib import workbook
from saa_lib.scoring import score


def fusion(**context):
    """01.1: the paper's fusion. Sum the score-weighted masks and the masks over the regions, divide where a region
    covers the pixel."""
    def fuse(masks, scores):
        masks = np.asarray(masks, dtype=float)
        num = np.tensordot(np.asarray(scores, dtype=float), masks, axes=1)
        den = masks.sum(0)
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return fuse


def _saa(case, **overrides):
    return workbook.make_config("saa", case.config.behaviour, case.config.saliency.backbone, **overrides)


def fusion_offset(case, **context):
    """01.2: SAA keeps the two whole-washer boxes (0.45 and 0.40), whose masks cover the same pixels. A washer pixel
    is covered by both: with δ = 0 it gets (0.45 + 0.40) / 2 = 0.425, the mean confidence; with δ = 1 it gets
    0.85 / 3 ≈ 0.283. A pixel covered by one region of confidence c gets c (δ = 0) or c / 2 (δ = 1); n overlapping
    regions of confidence c give c and c n / (n + 1): the offset rewards pixels on which several regions agree, and so
    also changes the ranking of pixels inside one image wherever regions overlap (a pixel under one region of 0.45
    beats one under 0.45 and 0.40 with δ = 0: 0.45 > 0.425, and loses with δ = 1: 0.225 < 0.283). The image score is the
    map's maximum, so it follows."""
    return tuple(score(case.stages, case.prompts, _saa(case, fusion_offset=d)).image_score for d in (0.0, 1.0))


def box_threshold(case, **context):
    """01.3: θ_box = 0.42 removes the whole-washer box of confidence 0.40 (a box must be *above* θ_box); the one of
    0.45 stays and covers every washer pixel alone: A = 0.45 / (δ + 1), i.e. 0.225 with the code's δ = 1 and 0.45 with
    the paper's δ = 0. Raising θ_box only ever removes regions; with a trained detector the weak boxes it removes
    are mostly on normal images, which is why a higher threshold can separate normal from anomalous images better
    at the image level while losing faint defects at the pixel level."""
    return score(case.stages, case.prompts, _saa(case, box_threshold=0.42)).image_score


ANSWERS = {"01.1": fusion, "01.2": fusion_offset, "01.3": box_threshold}
WRONG = {
    "01.1": lambda **context: lambda masks, scores: (np.asarray(masks) * np.asarray(scores)[:, None, None]).mean(0),
    "01.2": lambda case, **context: (0.45, 0.45 / 2),  # the larger confidence alone, as if one region covered it
    "01.3": lambda case, **context: score(case.stages, case.prompts, _saa(case)).image_score,  # θ_box unchanged
}
