"""Checkers of notebook 08 (results): the metrics, computed on given maps and masks (so they are right or wrong
whatever the weights that made the maps)."""
from __future__ import annotations

import numpy as np

from ...metrics import image_auroc, pixel_max_f1
from ..exercises import agrees_with, exercise


def _metric_cases(seed: int = 8):
    """Random (maps (N, H, W) float64, masks (N, H, W) bool) of one category: continuous scores, scores with ties,
    a normal image among defective ones."""
    rng = np.random.default_rng(seed)
    cases = []
    for n, ties in ((1, False), (3, False), (4, True), (2, True)):
        maps = rng.random((n, 9, 11))
        masks = np.zeros(maps.shape, bool)
        masks[:, 2:6, 3:7] = rng.random((n, 4, 4)) < 0.8
        if n > 2:
            masks[-1] = False  # a normal image
        maps += 0.4 * masks  # defects score higher on average
        cases.append((np.round(maps, 1) if ties else maps, masks))
    return cases


def _per_category(runs, value) -> dict:
    """``{category: value(run)}`` from the first run of each category (the ground truth is the same for every
    variant of a category)."""
    out = {}
    for r in runs:
        out.setdefault(r.category, value(r))
    return out


def _compare(answer, expected: dict, what: str, tol: float = 1e-6) -> bool | str:
    if not isinstance(answer, dict):
        return f"answer with a dict {{category: {what}}}"
    if set(answer) != set(expected):
        return f"give one value per category of the runs: {', '.join(sorted(expected))}"
    for cat, want in expected.items():
        try:
            got = float(answer[cat])
        except (TypeError, ValueError):
            return f"{cat}: {what} should be a number"
        if np.isnan(want) and np.isnan(got):
            continue
        if np.isnan(want) or np.isnan(got) or abs(got - want) > tol * max(1.0, abs(want)):
            return f"{cat}: your {what} is " + ("undefined but it can be computed" if np.isnan(got) else
                                                "defined only with both classes" if np.isnan(want) else
                                                f"too {'high' if got > want else 'low'}")
    return True


@exercise("08.1", "max-F1-pixel from scratch: the best F1 over all thresholds, every pixel of the category pooled",
          "pool every pixel of every image (normal ones too); a threshold t flags every pixel with score >= t, so "
          "pixels with equal scores are flagged together: evaluate F1 = 2 TP / (2 TP + FP + FN) only at the distinct "
          "scores (sort descending, count cumulatively, keep the last position of each run of equal scores)")
def max_f1_from_scratch(max_f1) -> bool | str:
    def library(maps, masks):
        return pixel_max_f1(maps, masks, pooled=False)

    cases = _metric_cases()
    distinct = [c for c in cases if len(np.unique(c[0])) == c[0].size]
    verdict = agrees_with(max_f1, library, distinct, rtol=1e-6, atol=1e-9)
    if verdict is not True:
        return verdict
    if agrees_with(max_f1, library, cases, rtol=1e-6, atol=1e-9) is not True:
        return ("right on distinct scores, not on ties: a threshold flags every pixel with a score >= t, so evaluate "
                "F1 only where the next score is lower (the last position of each run of equal scores)")
    return True


@exercise("08.2", "where every pixel PR curve ends: the precision of flagging every pixel, per category",
          "at recall 1 every pixel is flagged: precision = defect pixels / all pixels of the category, counted over "
          "all its images, normal ones included (run.masks holds the ground truth of every image)")
def where_pr_curves_end(answer, runs) -> bool | str:
    return _compare(answer, _per_category(runs, lambda r: float(np.asarray(r.masks, bool).mean())), "precision")


@exercise("08.3", "image AUROC from the maps: each image's score is the maximum of its map",
          "score each image by the max of its map (run.maps[i].max()), then the AUROC of those scores against "
          "run.labels (sklearn.metrics.roc_auc_score); undefined (nan) when a category has one class only")
def image_auroc_from_maps(answer, real_runs) -> bool | str:
    return _compare(answer, _per_category(real_runs, lambda r: image_auroc(r.maps, r.labels)), "image AUROC", 1e-9)
