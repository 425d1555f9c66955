"""P^C, confidence prompts: keep the K most confident regions (K from the config or the category's table).

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


def resolve_top_k(config, prompts) -> int | None:
    """K of a variant: ``config.top_k``, else the category's value from the tables; None when P^C is off."""
    if not config.use_confidence:
        return None
    return config.top_k if config.top_k is not None else prompts.top_k


def fused_regions(values, alive: np.ndarray, k: int | None, official: bool) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the regions fused, in fusion order; their weights) among the ``alive`` candidates, scored
    ``values`` (M,), keeping the top ``k`` (None: all). Paper rule (:func:`top_k_keep`): index order. ``official``:
    the surviving scores stacked into one array as the official code does (their numpy types decide its dtype) and
    ranked by :func:`official_top_k`, which also fixes the fusion order."""
    if not official:
        keep = alive if k is None else alive & top_k_keep(values, k, alive)
        fused = np.flatnonzero(keep)
        return fused, values[fused]
    survivors = np.flatnonzero(alive)
    ranked = np.stack([values[i] for i in survivors]) if survivors.size else np.zeros(0)  # the official array
    order = np.arange(len(ranked)) if k is None else official_top_k(ranked, k)  # k = 0 keeps all
    return survivors[order], ranked[order]
