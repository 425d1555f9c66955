"""Answers to the exercises of the two notebooks numbered 00 (the course map: 00.1, 00.2; set-up and data: 00.3,
00.4), as code that runs.

Each answer is a function of the notebook's context (``data`` and ``category`` in set-up and data) that returns what
the exercise asks for; ``WRONG`` holds a plausible wrong answer to each, which its check must refuse with a hint
(``tests/test_exercises.py`` runs both).
"""
import numpy as np

from saa_lib import metrics
from saa_lib.workbook.course import metrics_example


def per_image_normalisation(**context):
    """00.1: with each map scaled by its own minimum and maximum, every image's highest score becomes 1: the normal
    image's single 0.4 pixel now scores as high as the small defect's 0.9. Image AUROC compares image scores that all
    tie, so it falls to 0.5 (chance), and the pooled pixel max-F1 falls too (0.857 -> 0.828: the normal image's spot
    is flagged with the defects). Category-wide normalisation keeps the order of the raw scores across images, which
    is what image-level detection and one threshold for a whole category need."""
    ex = metrics_example()
    own = np.stack([(m - m.min()) / (m.max() - m.min()) for m in ex.maps])
    return metrics.pixel_max_f1(own, ex.masks), metrics.image_auroc(own, ex.labels)


def max_f1(**context):
    """00.2: sort the scores from high to low; lowering the threshold to each distinct score flags every pixel at or
    above it. tp counts the flagged defect pixels, fp the flagged normal ones, fn = P - tp the defect pixels missed;
    F1 = 2 tp / (2 tp + fp + fn). Tied scores are flagged together, so F1 is taken only where the next score differs
    (the last of each run of ties)."""
    def max_f1(scores, labels):
        order = np.argsort(-np.asarray(scores, float), kind="stable")
        s, y = np.asarray(scores, float)[order], np.asarray(labels, bool)[order]
        tp, fp = np.cumsum(y), np.cumsum(~y)
        last = np.append(s[1:] != s[:-1], True)  # the end of each run of equal scores
        f1 = 2 * tp / (2 * tp + fp + (y.sum() - tp))
        return float(f1[last].max())
    return max_f1


def smallest_defect_type(data, category, **context):
    """00.3: the share of the image a defect covers is ``mask.mean()``; averaged per defect type. On the real MTD
    samples (``../shared/data/samples/mtd``) the blowholes are the smallest (0.07 % of the image, against 0.20 % for
    breaks, 0.21 % for cracks, 6.5 % for uneven and 11.8 % for fray). A small defect makes max-F1 hard: precision is
    measured against very few defect pixels, so a false-positive area as small as the defect already halves it, while
    AUROC ranks each defect pixel against all normal pixels and forgives a few thousand of them."""
    areas = {}
    for s in data.samples(category):
        if s.label == 1:
            areas.setdefault(s.defect_type, []).append(s.load_mask().mean())
    return min(areas, key=lambda t: np.mean(areas[t]))


def chance_max_f1(data, category, **context):
    """00.4: a map that scores every pixel alike has one threshold, which flags everything: recall 1 and precision
    p, the share of defect pixels over all test images (normal images included), so F1 = 2p / (1 + p). That is the
    floor any max-F1 of the category must be read against: with 1 % defect pixels a map that knows nothing already
    scores about 2 % max-F1, and pixel AUROC 50 %."""
    masks = [s.load_mask() for s in data.samples(category)]
    p = sum(int(m.sum()) for m in masks) / sum(m.size for m in masks)
    return 2 * p / (1 + p)


def _largest_defect_type(data, category, **context):
    areas = {}
    for s in data.samples(category):
        if s.label == 1:
            areas.setdefault(s.defect_type, []).append(s.load_mask().mean())
    return max(areas, key=lambda t: np.mean(areas[t]))


def _defect_share(data, category, **context):
    masks = [s.load_mask() for s in data.samples(category)]
    return sum(int(m.sum()) for m in masks) / sum(m.size for m in masks)


ANSWERS = {"00.1": per_image_normalisation, "00.2": max_f1, "00.3": smallest_defect_type, "00.4": chance_max_f1}
WRONG = {
    # category-wide normalisation (what the metrics do by themselves), not each map on its own
    "00.1": lambda **context: (metrics.pixel_max_f1(metrics_example().maps, metrics_example().masks),
                               metrics.image_auroc(metrics_example().maps, metrics_example().labels)),
    # F1 at one fixed threshold instead of the best one
    "00.2": lambda **context: lambda scores, labels: float(
        2 * np.sum((np.asarray(scores) >= 0.5) & labels)
        / (np.sum(np.asarray(scores) >= 0.5) + np.sum(labels))),
    "00.3": _largest_defect_type,
    "00.4": _defect_share,  # the precision p, not the F1
}
