"""Checkers of notebook 05 (confidence prompts P^C)."""
from __future__ import annotations

import numpy as np

from ...prompts.confidence import official_top_k, top_k_keep
from ..exercises import agrees_with, exercise, smallest_on_grid
from .cases import keeps_hole

#: the scores of exercise 05.3 (three ties at the top) and its K
TIE_SCORES, TIE_K = (0.3, 0.5, 0.5, 0.2, 0.5), 2


def _top_k_cases(seed: int = 5):
    """Random (scores (M,), k, candidates (M,) bool) inputs: ties, dead candidates, K above the number alive."""
    rng = np.random.default_rng(seed)
    cases = []
    for m, k in ((6, 1), (9, 3), (12, 5), (7, 10), (15, 4)):
        scores = np.round(rng.random(m), 1)  # one decimal: ties
        alive = rng.random(m) < 0.7
        alive[0] = True
        cases.append((scores, k, alive))
    return cases


@exercise("05.1", "top-K from scratch: the K highest scores among the candidates still alive, ties to the lower index",
          "rank only the candidates still alive (candidates == True), highest score first; on equal scores the lower "
          "index wins (a stable sort of -scores does that); return a bool mask of len(scores) with at most k True")
def top_k_from_scratch(top_k) -> bool | str:
    cases = _top_k_cases()
    for scores, k, alive in cases:
        got = top_k(scores, k, alive)
        if got is None:
            return "your function returns nothing yet: finish it and return the mask"
        got = np.asarray(got)
        if got.shape != scores.shape or got.dtype != bool:
            return (f"return a bool mask with one entry per candidate (shape {scores.shape}), not "
                    f"{got.dtype} of shape {got.shape} (indices are what the official code keeps, see 05.3)")
        if (got & ~alive).any():
            return ("your mask keeps a candidate that an earlier prompt already removed: rank only where candidates "
                    "is True")
    return agrees_with(top_k, top_k_keep, cases)


@exercise("05.2", "the smallest K that keeps the hole in the known case with P^S off",
          "with P^S off the ranking is the raw confidence: in the fate table, count the candidates still alive after "
          "P^L and P^P that are more confident than the true defect")
def smallest_k_without_saliency(answer, case, config) -> bool | str:
    try:
        k = int(answer)
    except (TypeError, ValueError):
        return "answer with a whole number K"
    if k != answer or k < 1:
        return "K is a whole number of regions, at least 1"
    off = config.with_(use_saliency=False)
    return smallest_on_grid(k, 1, lambda n: keeps_hole(case, off.with_(top_k=n)),
                            "too small: with this K the hole is still cut away",
                            "too large: a smaller K already keeps the hole", lowest=1)


@exercise("05.3", "which indices the official code's argsort()[-k:] keeps on ties, and which the paper's rule keeps",
          "write both as sets of indices. The paper's rule: highest first, the lower index wins a tie. The official "
          "code: argsort() sorts ascending (a stable sort on so few values) and [-k:] takes the last k, so on a tie "
          "the higher index comes later")
def ties_official_and_paper(answer) -> bool | str:
    try:
        official, paper = (set(int(i) for i in part) for part in answer)
    except (TypeError, ValueError):
        return "answer with a pair of sets of indices: (official, paper)"
    scores = np.array(TIE_SCORES)
    want_official = set(official_top_k(scores, TIE_K).tolist())
    want_paper = set(np.flatnonzero(top_k_keep(scores, TIE_K)).tolist())
    if len(official) != TIE_K or len(paper) != TIE_K:
        return f"each rule keeps exactly k = {TIE_K} regions"
    if paper != want_paper:
        return "the paper's set is not right: highest scores first, and on a tie the lower index wins"
    if official != want_official:
        return ("the official set is not right: argsort() is ascending, [-k:] keeps the LAST k entries of that order, "
                "and equal scores keep their index order")
    return True
