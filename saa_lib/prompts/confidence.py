"""P^C, confidence prompts: keep the K most confident regions.

:func:`top_k_keep` breaks ties by the lower index; :func:`official_top_k` is the official code's rule
(``scores.argsort()[-k:]`` with numpy's default sort over the surviving candidates, which also fixes the fusion order).
"""
from __future__ import annotations

import numpy as np


def top_k_keep(scores: np.ndarray, k: int, candidates: np.ndarray | None = None) -> np.ndarray:
    """(M,) bool: the ``k`` highest ``scores`` among ``candidates`` (all when None); ties broken by lower index."""
    scores = np.asarray(scores, dtype=np.float64)
    cand = np.ones(len(scores), bool) if candidates is None else np.asarray(candidates, bool)
    keep = np.zeros(len(scores), bool)
    idx = np.flatnonzero(cand)
    if k <= 0 or idx.size == 0:
        return keep
    order = idx[np.argsort(-scores[idx], kind="stable")]
    keep[order[:k]] = True
    return keep


def official_top_k(scores: np.ndarray, k: int, candidates: np.ndarray | None = None) -> np.ndarray:
    """Indices (into ``scores``) of the regions the official code keeps, in its order: ``argsort()[-k:]`` (numpy's
    default quicksort, ascending) over the surviving candidates' scores, in candidate order. As in the official code,
    ``k = 0`` keeps every candidate (``[-0:]`` is the whole array)."""
    scores = np.asarray(scores)
    idx = np.flatnonzero(np.ones(len(scores), bool) if candidates is None else np.asarray(candidates, bool))
    return idx[scores[idx].argsort()[-int(k):]]
