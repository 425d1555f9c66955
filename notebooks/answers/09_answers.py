"""Answers to the exercises of notebook 09 (batch zero-shot and few-shot P^S) and its capstone, as code that runs.

Each answer is a function of the notebook's context (``stats``: the capstone category's defect statistics,
``behaviour``) that returns what the exercise asks for; ``WRONG`` holds a plausible wrong answer to each, which its
check must refuse with a hint (``tests/test_exercises.py`` runs both).
"""
import math

import numpy as np


def batch_score(**context):
    """09.1: each row is one patch's distance to each of the N - 1 other images; keep the m = ceil(ρ (N - 1)) smallest
    (at least one) and average them. With ρ = 1 every other image votes, so one image in which a normal patch has no
    close match (a screw lying at an unusual angle) raises that patch's score; with a small ρ a normal patch needs a
    match in only a few images. The price of a small ρ is exercise 09.3."""
    def score(distances, rho):
        d = np.sort(np.asarray(distances, float), axis=1)
        m = max(1, math.ceil(rho * d.shape[1] - 1e-9))
        return d[:, :m].mean(1)
    return score


def fewshot(**context):
    """09.2: the features are unit vectors, so cos is a dot product; the nearest reference patch is the largest
    similarity over every reference. A reference compared with itself scores 0 everywhere (each patch is its own
    nearest neighbour), but the same reference turned by 90° does not: convolutional features are not rotation
    invariant, so with one reference of a product that lies at any angle (a screw) every patch at an angle the
    reference does not show becomes 'anomalous'. That is why few-shot compares with 12 rotations x 2 mirrors of each
    reference (24 times the features and the search), and why it runs on a smaller input than batch."""
    def distances(query, references):
        best = np.max([np.max(np.asarray(query) @ np.asarray(r).T, axis=1) for r in references], axis=0)
        return np.clip(1.0 - best, 0.0, None)
    return distances


def recurring(**context):
    """09.3: each patch averages its m = ceil(ρ (N - 1)) smallest distances to the N - 1 other images (at least 1).
    A defect patch has a close match only in the images that show the same defect; once m of them do, all m smallest
    distances come from them and the patch scores like a normal one. With ρ = 0.1 and 13 test images, m = 2: a defect
    type that recurs in two other images of the batch is missed. ρ is the share of the batch a defect may recur in
    before it is missed — and one minus it is the share of the images that may disagree with a normal patch."""
    return lambda n_images, rho: max(1, math.ceil(rho * (n_images - 1) - 1e-9))


def capstone(stats, behaviour="code", **context):
    """09.4: one justified property table. θ_area: the q95 of the category's defect-to-object area ratios (box areas
    in code behaviour, mask areas in paper) with a margin, so that nearly every real defect passes P^P while a region
    the size of the object (ratio 1) does not; K: the q95 of the defects per anomalous image (the tables' usual 5 is
    more than a category with one defect per image needs: every extra region fused is a likely false positive). The
    prompts name defects, never the object (P^L would drop their boxes)."""
    theta = min(0.95, max(0.05, 1.25 * stats.quantile("area", 0.95, behaviour)))
    k = int(max(1, math.ceil(stats.quantile("count", 0.95))))
    return {"prompts": ["scratch", "hole", "stain", "missing part"], "max_area_ratio": round(theta, 3), "top_k": k}


ANSWERS = {"09.1": batch_score, "09.2": fewshot, "09.3": recurring, "09.4": capstone}
WRONG = {
    "09.1": lambda **context: lambda distances, rho: np.asarray(distances, float).mean(1),  # every image votes
    "09.2": lambda **context: lambda query, references: np.mean(
        [1.0 - np.max(np.asarray(query) @ np.asarray(r).T, axis=1) for r in references], axis=0),  # mean over refs
    "09.3": lambda **context: lambda n_images, rho: math.floor(rho * n_images),
    "09.4": lambda stats, behaviour="code", **context: {"prompts": ["scratch"], "max_area_ratio": 1.0, "top_k": 5},
}
