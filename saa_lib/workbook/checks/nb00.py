"""Checkers of the two notebooks numbered 00: the course map (00.1, 00.2: the metrics) and set-up and data (00.3,
00.4: what the data set's defects mean for the metrics)."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ... import metrics
from ..course import metrics_example
from ..exercises import close_each, close_to, exercise


@exercise("00.1", "per-image normalisation: pixel max-F1 and image AUROC of the metrics example with each map min-max "
          "scaled on its own",
          "scale each map by its own minimum and maximum, stack them, then call metrics.pixel_max_f1(maps, masks) and "
          "metrics.image_auroc(maps, labels) on the result")
def per_image_normalisation(answer) -> bool | str:
    ex = metrics_example()
    lo = ex.maps.min(axis=(1, 2), keepdims=True)
    hi = ex.maps.max(axis=(1, 2), keepdims=True)
    own = (ex.maps - lo) / (hi - lo)
    expected = {"pixel max-F1": metrics.pixel_max_f1(own, ex.masks), "image AUROC": metrics.image_auroc(own, ex.labels)}
    verdict = close_each(answer, expected, 0.005)
    if isinstance(verdict, str) and "image AUROC is too high" in verdict:
        return verdict + ": after scaling each map on its own, what is the highest score of every image?"
    return verdict


def _random_scores(seed: int, n: int = 300, ties: bool = False):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.2
    scores = rng.random(n) + 0.4 * labels  # defect pixels score higher on average
    return (np.round(scores, 1) if ties else scores), labels


@exercise("00.2", "max-F1 from scratch: the largest F1 over every threshold of the scores",
          "for each distinct score t, flag the pixels with score >= t: tp = flagged defect pixels, fp = flagged normal "
          "pixels, F1 = 2 tp / (2 tp + fp + fn); return the largest")
def max_f1_from_scratch(max_f1) -> bool | str:
    def reference(scores, labels):
        return metrics.pixel_max_f1(np.asarray(scores)[None, None, :], np.asarray(labels)[None, None, :])

    for i, ties in enumerate((False, False, True)):
        scores, labels = _random_scores(i, ties=ties)
        got = max_f1(scores.copy(), labels.copy())
        if got is None:
            return "your function returns nothing yet: finish it and return the result"
        verdict = close_to(got, reference(scores, labels), 1e-9, what="your max-F1")
        if verdict is not True:
            if ties:
                return (f"right without ties, but on scores with ties {verdict}: a threshold t flags every score "
                        ">= t, so tied scores are flagged together; try only the distinct scores as thresholds")
            return f"on random scores {verdict}"
    return True


def _defect_areas(data, category: str) -> dict:
    """{defect type: [fraction of the image each anomalous test image's mask covers]}."""
    areas = defaultdict(list)
    for s in data.samples(category):
        if s.label == 1:
            areas[s.defect_type].append(float(s.load_mask().mean()))
    return areas


@exercise("00.3", "the defect type of a category with the smallest mean defective area",
          "for each anomalous test image, mask.mean() is the share of the image its defect covers; average it per "
          "defect type and take the smallest")
def smallest_defect_type(answer, data, category: str) -> bool | str:
    areas = _defect_areas(data, category)
    if answer not in areas:
        return f"name one of the defect types of {category!r}: {', '.join(sorted(areas))}"
    means = {t: np.mean(v) for t, v in areas.items()}
    if means[answer] > min(means.values()):
        return f"another defect type of {category!r} covers less of the image on average"
    return True


@exercise("00.4", "the max-F1 of a map that knows nothing (every pixel scored alike) on a category's test images",
          "a map that scores every pixel alike has a single threshold, which flags every pixel of every test image "
          "(normal ones included): what are its recall and its precision, and what F1 do they give?")
def chance_max_f1(answer, data, category: str) -> bool | str:
    defect = total = 0
    for s in data.samples(category):
        mask = s.load_mask()
        defect, total = defect + int(mask.sum()), total + mask.size
    p = defect / total
    verdict = close_to(answer, 2 * p / (1 + p), 0.01 * 2 * p / (1 + p), what="your max-F1")
    if verdict == "your max-F1 is too low" and close_to(answer, p, 0.01 * p) is True:
        return "that is the share of defect pixels p (the precision); the F1 combines it with a recall of 1"
    return verdict
