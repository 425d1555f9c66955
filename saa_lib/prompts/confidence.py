"""P^C, confidence prompts: keep the K most confident regions."""
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
