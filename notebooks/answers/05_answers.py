"""Answers to the exercises of notebook 05 (confidence prompts P^C), as code that runs.

Each answer is a function of the notebook's context (what the notebook passes to ``check``: the known case ``case``
and its configuration ``config``) that returns what the exercise asks for; ``WRONG`` holds a plausible wrong answer
to each, which its check must refuse with a hint (``tests/test_exercises.py`` runs both).
"""
import numpy as np

from saa_lib.scoring import score
from saa_lib.workbook import known_case as kc


def top_k(**context):
    """05.1: the paper's top-K. Rank the candidates still alive by score, highest first; a stable sort of ``-scores``
    keeps equal scores in index order, so the lower index wins a tie. Keep the first ``k``."""
    def keep(scores, k, candidates):
        scores, candidates = np.asarray(scores, float), np.asarray(candidates, bool)
        alive = np.flatnonzero(candidates)
        order = alive[np.argsort(-scores[alive], kind="stable")]
        out = np.zeros(len(scores), bool)
        out[order[:k]] = True
        return out
    return keep


def smallest_k(case, config, **context):
    """05.2: **K = 7.** With P^S off the ranking is the raw confidence. After P^L and P^P have removed the two
    whole-washer boxes, the candidates still alive are the six intact patches (0.36, 0.35, ..., 0.31), the hole
    (0.30) and, in the code behaviour, the background patch (0.29, its box is on no object box test). The hole is
    seventh, so it survives only from K = 7, and then six false regions come with it (max-F1-pixel 0.26 instead of
    1.0). With P^S on, the hole is ranked first and any K >= 1 keeps it: a top-K cut is only as good as the ranking it
    cuts, which is why SAA+ applies P^S before P^C."""
    off = config.with_(use_saliency=False)
    return next(k for k in range(1, 50)
                if "true defect" in kc.fused_names(case, score(case.stages, case.prompts, off.with_(top_k=k))))


def ties(**context):
    """05.3: scores (0.3, 0.5, 0.5, 0.2, 0.5), k = 2. The paper keeps the two highest, the lower index winning the
    tie: **{1, 2}**. The official code's ``scores.argsort()[-k:]`` sorts ascending — for so few values numpy's default
    sort keeps equal values in index order: (3, 0, 1, 2, 4) — and keeps the last two: **{2, 4}**. On ties the official
    code keeps the later candidates (a later prompt, or a later query of the same prompt), and it fuses the kept
    regions in that ascending order. It matters only on exact ties of the rescored confidences, which are rare with
    trained weights, but it is why the `code` behaviour reproduces the official map bit for bit and `paper` does not."""
    return ({2, 4}, {1, 2})


ANSWERS = {"05.1": top_k, "05.2": smallest_k, "05.3": ties}
WRONG = {
    "05.1": lambda **context: lambda scores, k, candidates: np.isin(np.arange(len(scores)),
                                                                   np.argsort(scores)[-k:]),  # ignores candidates
    "05.2": lambda **context: 6,
    "05.3": lambda **context: ({1, 2}, {1, 2}),
}
