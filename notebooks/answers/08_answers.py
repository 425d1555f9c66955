"""Answers to the exercises of notebook 08 (results), as code that runs.

Each answer is a function of the notebook's context (``runs``: the SAA / SAA+ runs of Table 1; ``real_runs``: the
P^S-alone runs of section 4) that returns what the exercise asks for; ``WRONG`` holds a plausible wrong answer to
each, which its check must refuse with a hint (``tests/test_exercises.py`` runs both).
"""
import numpy as np
from sklearn.metrics import roc_auc_score


def max_f1(**context):
    """08.1: pool the pixels, sort the scores descending and count true and false positives cumulatively; a threshold
    flags every pixel scoring at least it, so F1 = 2 TP / (2 TP + FP + FN) is evaluated at the last position of each
    run of equal scores only. Min-max normalising the maps of a category first (the official protocol) changes no
    order, hence no F1. Max-F1 leads the paper's tables because it is not inflated by the millions of easy normal
    pixels: a map that ranks the defect above 99 % of the normal pixels still has a low precision when the remaining
    1 % is larger than the defect."""
    def f1(maps, masks):
        s = np.asarray(maps, float).ravel()
        y = np.asarray(masks, bool).ravel()
        order = np.argsort(-s, kind="stable")
        s, y = s[order], y[order]
        tp, fp = np.cumsum(y), np.cumsum(~y)
        last = np.r_[s[1:] != s[:-1], True]  # the last pixel of each run of equal scores
        tp, fp = tp[last], fp[last]
        return float(np.max(2 * tp / (tp + fp + y.sum())))
    return f1


def chance_level(runs, **context):
    """08.2: at recall 1 every pixel is flagged, so precision is the share of defect pixels of the category, all its
    images pooled (normal ones included): well under 1 % on the synthetic set and about 0.1 % on the magnetic tiles.
    Every PR curve ends there, whatever the method — the end point says something about the category, not the method,
    and a curve that stays near that level everywhere is no better than chance. Chance is close to 0, not 0.5: this is
    why max-F1-pixel separates methods on small defects where pixel AUROC does not."""
    out = {}
    for r in runs:
        out.setdefault(r.category, float(np.asarray(r.masks, bool).mean()))
    return out


def image_auroc(real_runs, **context):
    """08.3: an image's score is the maximum of its map (after the category's min-max normalisation in the official
    code, which changes no order); image AUROC is the AUROC of those scores against the image labels. With a handful
    of images it takes only a few values (one anomalous and one normal image: 0, 50 or 100 %) and it is undefined when
    a category has one class only."""
    out = {}
    for r in real_runs:
        scores = r.maps.reshape(len(r.maps), -1).max(1)
        out[r.category] = (float(roc_auc_score(r.labels, scores)) if len(set(r.labels.tolist())) == 2
                           else float("nan"))
    return out


ANSWERS = {"08.1": max_f1, "08.2": chance_level, "08.3": image_auroc}
WRONG = {
    "08.1": lambda **context: lambda maps, masks: max(  # F1 at every sorted position: ties split
        2 * tp / (tp + fp + np.asarray(masks, bool).sum()) for tp, fp in zip(
            np.cumsum(np.asarray(masks, bool).ravel()[np.argsort(-np.asarray(maps, float).ravel())]),
            np.cumsum(~np.asarray(masks, bool).ravel()[np.argsort(-np.asarray(maps, float).ravel())]))),
    "08.2": lambda runs, **context: {r.category: float(np.mean([m.mean() for m in r.masks if m.any()]))
                                     for r in runs},  # defective images only
    "08.3": lambda real_runs, **context: {r.category: float(roc_auc_score(r.masks.ravel(), r.maps.ravel()))
                                          for r in real_runs},  # the pixel AUROC, not the image AUROC
}
