"""Checkers of notebook 09 (batch zero-shot and few-shot P^S) and of its capstone."""
from __future__ import annotations

import math

import numpy as np
import torch

from ...peers.sources import fewshot_scores, smallest_mean
from ..exercises import agrees_with, exercise

#: (other images N - 1, rho) pairs whose rho * (N - 1) has no rounding trap (0.3 * 10 is 3.0000000000000004)
BATCH_SIZES = ((12, 0.1), (7, 0.3), (9, 0.5), (5, 1.0), (8, 0.25), (3, 0.1), (1, 0.3))


def _distance_cases(seed: int = 9):
    """Random (distances (Q, N - 1), rho) inputs."""
    rng = np.random.default_rng(seed)
    return [(rng.random((20, n)).astype(np.float32), rho) for n, rho in BATCH_SIZES]


def _feature_cases(seed: int = 10):
    """Random (query (Q, D), [reference (R_j, D)]) unit vectors; in one case the query's own patches are in the bank."""
    rng = np.random.default_rng(seed)

    def unit(n, d=8):
        v = rng.standard_normal((n, d)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    q = unit(30)
    return [(q, [unit(25)]), (q, [unit(12), unit(40), unit(7)]), (q, [unit(20), q[:10]])]


@exercise("09.1", "mutual (batch) scoring from scratch: the mean of the smallest ceil(ρ (N - 1)) distances of each "
          "patch to the other images",
          "sort each row (one patch: its distance to each other image), keep the first m = ceil(rho * n) of the n "
          "columns (at least 1) and average them; rows stay rows (axis 1)")
def batch_from_scratch(batch_score) -> bool | str:
    return agrees_with(batch_score, lambda d, rho: smallest_mean(torch.from_numpy(d), rho).numpy(), _distance_cases())


@exercise("09.2", "few-shot saliency from scratch: each patch's distance 1 - cos to its nearest patch in any reference",
          "the features are unit vectors, so cos is a dot product: query @ reference.T gives every similarity; take "
          "the largest over every reference's patches (the nearest), then 1 - that")
def fewshot_from_scratch(fewshot) -> bool | str:
    def library(query, references):
        return fewshot_scores(torch.from_numpy(query), [torch.from_numpy(r) for r in references]).numpy()

    return agrees_with(fewshot, library, _feature_cases(), rtol=1e-4, atol=1e-5)


@exercise("09.3", "how many other test images must show the same defect before mutual scoring scores it as normal",
          "a defect patch has a close match only in the images that show the same defect; its score is the mean of "
          "its m smallest distances: when all m come from such images, the score is that of a normal patch")
def recurring_defect(missed_from) -> bool | str:
    for n_other, rho in BATCH_SIZES:
        n_images = n_other + 1
        got = missed_from(n_images, rho)
        if got is None:
            return "your function returns nothing yet: return a number of images"
        if got != max(1, math.ceil(rho * n_other - 1e-9)):
            return (f"not right for N = {n_images} test images and ρ = {rho:g}: how many distances does each patch "
                    "average, and out of how many other images?")
    return True


@exercise("09.4", "the capstone's property table: θ_area and K justified by the category's defect statistics",
          "θ_area must let the category's defects through (at least 95 % of them: compare it with the q95 of the area "
          "ratios for your behaviour) and still remove a region the size of the whole object (< 1); K must keep every "
          "defect of at least 95 % of the anomalous images (the q95 of the defects per image) and stay at most 10; "
          "the prompts are defect words only: a prompt that names the object has its boxes dropped by P^L")
def capstone_table(answer, stats, behaviour: str = "code") -> bool | str:
    if not isinstance(answer, dict) or not {"prompts", "max_area_ratio", "top_k"} <= set(answer):
        return "answer with a dict holding 'prompts' (a list of defect words), 'max_area_ratio' and 'top_k'"
    prompts = answer["prompts"]
    if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        return "'prompts' is a list of defect words or short phrases, e.g. ['scratch', 'dent']"
    word = str(answer.get("object", stats.category)).replace("_", " ").lower()
    if any(w in p.lower().split() for p in prompts for w in word.split()):
        return f"a prompt names the object ({word!r}): P^L drops every box whose phrase names it"
    try:
        theta, k = float(answer["max_area_ratio"]), answer["top_k"]
    except (TypeError, ValueError):
        return "'max_area_ratio' is a number between 0 and 1"
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= 10:
        return "'top_k' is a whole number from 1 to 10"
    if not theta < 1.0:
        return "θ_area of 1 or more keeps a region that covers the whole object: P^P would remove nothing"
    if not theta >= stats.quantile("area", 0.95, behaviour):
        return f"θ_area is too small: it removes more than 5 % of this category's real defects ({behaviour} behaviour)"
    if not k >= stats.quantile("count", 0.95):
        return "K is too small: more than 5 % of the anomalous images hold more defects than K keeps"
    return True
