"""What the course map (notebook 00_course_map) draws and computes: the pipeline picture, and the metrics primer's
hand-built category of three 8 x 8 anomaly maps, small enough to compute every metric by hand, with its figure.

Nothing here loads a model or touches the network at import time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MetricsExample:
    """One category of ``names`` images: ``maps`` (N, 8, 8) float anomaly scores, ``masks`` (N, 8, 8) bool ground
    truth, ``labels`` (N,) bool (anomalous or not)."""

    names: tuple[str, ...]
    maps: np.ndarray
    masks: np.ndarray
    labels: np.ndarray


def metrics_example() -> MetricsExample:
    """Three images of 8 x 8 pixels with a few distinct scores:

    - ``small defect``: a 2 x 2 defect scored 0.9, two normal pixels at 0.5, the rest 0.1;
    - ``large defect``: a 3 x 4 defect whose top 8 pixels score 0.6 and bottom 4 score 0.3, the row below it (normal)
      0.3 as well, the rest 0.1;
    - ``normal``: 0.2 everywhere but one pixel of 0.4.
    """
    maps = np.full((3, 8, 8), 0.1)
    masks = np.zeros((3, 8, 8), bool)
    masks[0, 1:3, 1:3] = True
    maps[0, 1:3, 1:3] = 0.9
    maps[0, 5, 5:7] = 0.5
    masks[1, 3:6, 2:6] = True
    maps[1, 3:5, 2:6] = 0.6
    maps[1, 5:7, 2:6] = 0.3
    maps[2] = 0.2
    maps[2, 6, 1] = 0.4
    return MetricsExample(("small defect", "large defect", "normal"), maps, masks, np.array([True, True, False]))


@dataclass(frozen=True)
class ThresholdCounts:
    """Pixels flagged at one threshold of the category-normalised scores (``score >= threshold``), pooled over the
    images: true and false positives, false negatives, and the precision, recall and F1 they give (nan: 0 / 0)."""

    threshold: float
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else float("nan")


def at_threshold(maps, masks, threshold: float) -> ThresholdCounts:
    """The counts at ``threshold`` (in [0, 1]) after the category-wide min-max normalisation every metric applies
    (:func:`saa_lib.metrics.normalize_category`). maps (N, H, W) float, masks (N, H, W) bool."""
    from ..metrics import normalize_category

    flagged = normalize_category(maps) >= threshold
    truth = np.asarray(masks, bool)
    return ThresholdCounts(float(threshold), int((flagged & truth).sum()), int((flagged & ~truth).sum()),
                           int((~flagged & truth).sum()))


def threshold_table(maps, masks):
    """A DataFrame with one row per distinct category-normalised score ``t`` of ``maps`` (N, H, W), highest first: the
    raw score it corresponds to (pixels flagged from there up), and :func:`at_threshold`'s TP, FP, FN, precision,
    recall and F1 at ``t`` (NaN, shown ``n/a``, for 0 / 0). masks (N, H, W) bool."""
    from ..frames import table
    from ..metrics import normalize_category

    raw = np.asarray(maps, np.float64)
    lo, hi = float(raw.min()), float(raw.max())
    rows = []
    for t in np.unique(normalize_category(maps))[::-1]:
        c = at_threshold(maps, masks, t)
        rows.append([float(t), f"≥ {lo + (hi - lo) * float(t):.1f}", c.tp, c.fp, c.fn, c.precision, c.recall, c.f1])
    return table(rows, ["threshold t", "flags raw scores", "TP", "FP", "FN", "precision", "recall", "F1"],
                 formats={k: ".3f" for k in ("threshold t", "precision", "recall", "F1")})


# ------------------------------------------------------------------------------------------------------- figures
#: colours of the pipeline picture (Okabe-Ito): the expensive stages, the cheap scoring, what passes between them
STAGE, SCORING, DATA = ("#DCEBF7", "#0072B2"), ("#FBE3D6", "#D55E00"), ("#FFFFFF", "#777777")


def _node(ax, xy, text: str, colours, width: float, height: float, size: int = 8):
    from matplotlib.patches import FancyBboxPatch

    (x, y), (face, edge) = xy, colours
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.03,rounding_size=0.12", facecolor=face, edgecolor=edge, lw=1.3))
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def _arrow(ax, start, end, label: str = ""):
    ax.annotate("", end, start, arrowprops=dict(arrowstyle="-|>", color="#444444", lw=1.1, shrinkA=0, shrinkB=0))
    if label:
        ax.text((start[0] + end[0]) / 2 + 0.08, (start[1] + end[1]) / 2, label, fontsize=7, color="#444444",
                ha="left", va="center")


def pipeline_diagram(path=None):
    """SAA+ in one picture: the three networks (run once per image, cached) on the left, the four hybrid prompts and
    the fusion (re-run in milliseconds for every setting) on the right; each box names the notebook that teaches it."""
    import matplotlib.pyplot as plt  # imported on first use, as in viz

    from .viz import finish

    fig, ax = plt.subplots(figsize=(11, 6.4))
    ax.set_xlim(0, 11)
    ax.set_ylim(-0.15, 6.35)
    ax.axis("off")
    for x0, x1, colours, title in ((0.05, 7.55, STAGE, "expensive stages: three networks, run once per image, cached"),
                                   (7.75, 10.95, SCORING, "cheap scoring: milliseconds, no network")):
        ax.add_patch(plt.Rectangle((x0, -0.1), x1 - x0, 6.4, facecolor=colours[0], alpha=0.35, edgecolor="none"))
        ax.text((x0 + x1) / 2, 6.12, title, ha="center", fontsize=9, color=colours[1], weight="bold")
    w = 2.5
    _node(ax, (1.0, 2.7), "image\n(H, W, 3) uint8", DATA, 1.5, 0.8)
    _node(ax, (3.6, 5.3), "text prompts: class-agnostic\n+ expert ($\\mathcal{P}^L$) + object word", DATA, 2.9, 0.75)
    _node(ax, (3.6, 4.0), "GroundingDINO\ntext → boxes   (01)", STAGE, w, 0.8)
    _node(ax, (3.6, 2.7), "SAM\nbox → mask   (01)", STAGE, w, 0.8)
    _node(ax, (3.6, 1.2), "saliency backbone\nImageNet features   (04)", STAGE, w, 0.8)
    candidates = "candidates $i$:\nbox $b_i$, confidence $c_i$,\nphrase $p_i$, mask $m_i$;\nobject boxes (masks)"
    _node(ax, (6.25, 3.35), candidates, DATA, 2.2, 1.5)
    _node(ax, (6.25, 1.2), "saliency map $s(x)$", DATA, 2.2, 0.7)
    for y in (4.0, 2.7, 1.2):
        _arrow(ax, (1.75, 2.7), (3.6 - w / 2, y))
    _arrow(ax, (3.6, 4.92), (3.6, 4.4))
    _arrow(ax, (3.6, 3.6), (3.6, 3.1), "boxes")
    _arrow(ax, (3.6 + w / 2, 4.0), (5.15, 3.75))
    _arrow(ax, (3.6 + w / 2, 2.7), (5.15, 2.95))
    _arrow(ax, (3.6 + w / 2, 1.2), (5.15, 1.2))
    chain = ["$c_i > \\theta_{box}$   (01)", "$\\mathcal{P}^L$: phrase names the object?   (02)",
             "$\\mathcal{P}^P$: on the object, area $\\leq \\theta_{area}$   (03)",
             "$\\mathcal{P}^S$: $c'_i = c_i \\exp(\\gamma\\, \\bar{s}(m_i))$   (04)",
             "$\\mathcal{P}^C$: keep the top $K$ of $c'_i$   (05)",
             "fusion: $A = \\sum c'_i m_i \\,/\\, (\\delta + \\sum m_i)$   (01)"]
    ys = [5.45, 4.6, 3.75, 2.9, 2.05, 1.2]
    for y, text in zip(ys, chain):
        _node(ax, (9.35, y), text, SCORING, 3.0, 0.6)
    for y0, y1 in zip(ys, ys[1:]):
        _arrow(ax, (9.35, y0 - 0.3), (9.35, y1 + 0.3))
    _node(ax, (9.35, 0.3), "anomaly map $A$ (R × R),\nimage score $\\max_x A(x)$", DATA, 3.0, 0.6)
    _arrow(ax, (9.35, ys[-1] - 0.3), (9.35, 0.6))
    _arrow(ax, (7.35, 3.6), (7.85, ys[0]))
    _arrow(ax, (7.35, 1.2), (7.85, ys[3]))
    fig.tight_layout()
    return finish(fig, "", path, tight=False)


def _outline(ax, mask: np.ndarray) -> None:
    """Draw the pixel edges around ``mask`` (H, W) bool in magenta on ``ax`` (an imshow of the same grid)."""
    padded = np.pad(np.asarray(mask, bool), 1)
    for r, c in zip(*np.nonzero(mask)):
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            if padded[r + 1 + dr, c + 1 + dc]:
                continue  # an inner edge
            if dr:
                ax.plot([c - 0.5, c + 0.5], [r + dr / 2] * 2, color="#CC00CC", lw=2)
            else:
                ax.plot([c + dc / 2] * 2, [r - 0.5, r + 0.5], color="#CC00CC", lw=2)


def metrics_figure(example: MetricsExample | None = None, fpr_limit: float = 0.3, path=None):
    """The metrics primer in one figure: the maps of ``example`` (default :func:`metrics_example`) with their
    scores written in each pixel and the ground truth outlined, then the pooled pixel precision-recall curve with its
    max-F1 point, the pixel ROC curve and the PRO curve with the area AUPRO takes (up to ``fpr_limit``)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    from .. import metrics
    import matplotlib.pyplot as plt

    from .viz import CMAP, finish

    ex = example or metrics_example()
    n = len(ex.maps)
    fig, axes = plt.subplots(2, max(n, 3), figsize=(3.3 * max(n, 3), 6.9))
    top = float(ex.maps.max())
    for ax, name, amap, mask in zip(axes[0], ex.names, ex.maps, ex.masks):
        ax.imshow(amap, cmap=CMAP, vmin=0, vmax=top)
        for (r, c), v in np.ndenumerate(amap):
            ax.text(c, r, f"{v:.1f}", ha="center", va="center", fontsize=6.5,
                    color="black" if v > 0.55 * top else "white")
        _outline(ax, mask)
        ax.set_title(f"{name}: image score {amap.max():.1f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    norm = metrics.normalize_category(ex.maps).ravel()
    truth = ex.masks.ravel()
    p, r, _ = precision_recall_curve(truth, norm)
    f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    best = int(np.argmax(f1))
    ax = axes[1, 0]
    for level in (0.2, 0.4, 0.6, 0.8):  # iso-F1 lines: where 2PR / (P + R) = level
        rr = np.linspace(level / (2 - level) + 1e-3, 1, 100)
        ax.plot(rr, level * rr / (2 * rr - level), color="#BBBBBB", lw=0.8, ls="--",
                label="F1 = 0.2 … 0.8" if level == 0.2 else None)
    ax.plot(r, p, "-o", ms=3, color="#0072B2", label="one point per threshold")
    ax.plot(r[best], p[best], "*", ms=13, color="#D55E00",
            label=f"max-F1 {metrics.pixel_max_f1(ex.maps, ex.masks):.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.05), title="pixel precision-recall")
    fpr, tpr, _ = roc_curve(truth, norm)
    ax = axes[1, 1]
    ax.fill_between(fpr, tpr, step="post", alpha=0.25, color="#0072B2")
    ax.step(fpr, tpr, where="post", color="#0072B2",
            label=f"pixel AUROC {metrics.pixel_auroc(ex.maps, ex.masks):.3f}\n"
                  f"(image AUROC {metrics.image_auroc(ex.maps, ex.labels):.3f})")
    ax.plot([0, 1], [0, 1], color="#BBBBBB", lw=0.8, ls="--")
    ax.set(xlabel="false positive rate (normal pixels)", ylabel="true positive rate (defect pixels)",
           title="pixel ROC", xlim=(0, 1), ylim=(0, 1.02))
    pro_fpr, pro = metrics.pro_curve(ex.maps, ex.masks)
    ax = axes[1, 2]
    inside = pro_fpr <= fpr_limit
    ax.fill_between(np.append(pro_fpr[inside], fpr_limit),
                    np.append(pro[inside], np.interp(fpr_limit, pro_fpr, pro)), alpha=0.25, color="#009E73")
    ax.plot(pro_fpr, pro, color="#009E73",
            label=f"AUPRO (FPR ≤ {fpr_limit:g}) {metrics.aupro(ex.maps, ex.masks, fpr_limit=fpr_limit):.3f}")
    ax.axvline(fpr_limit, color="#777777", lw=0.8, ls=":")
    ax.set(xlabel="false positive rate (normal pixels)", ylabel="mean overlap per defect region (PRO)",
           title="per-region overlap", xlim=(0, 1), ylim=(0, 1.02))
    for ax, where in zip(axes[1, :3], ("lower left", "lower right", "lower right")):
        ax.legend(fontsize=8, loc=where)
        ax.title.set_fontsize(9)
    for ax in axes[1, 3:]:
        ax.axis("off")
    fig.tight_layout()
    return finish(fig, "", path, tight=False)
