"""Answers to the exercises of notebook 01 (baseline SAA), as code that runs.

Each answer is a function of the notebook's context (``wb``, the record ``workbook.setup`` returns) that returns what
the exercise asks for; ``WRONG`` holds a plausible wrong answer to each, which its check must refuse with a hint
(``tests/test_exercises.py`` runs both).
"""
import numpy as np


def fusion(**context):
    """01.1: the paper's fusion. Sum the score-weighted masks and the masks over the regions, divide where a region
    covers the pixel."""
    def fuse(masks, scores):
        masks = np.asarray(masks, dtype=float)
        num = np.tensordot(np.asarray(scores, dtype=float), masks, axes=1)
        den = masks.sum(0)
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return fuse


ANSWERS = {"01.1": fusion}
WRONG = {"01.1": lambda **context: lambda masks, scores: (np.asarray(masks) * np.asarray(scores)[:, None, None]).mean(0)}
