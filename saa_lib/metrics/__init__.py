"""Evaluation of anomaly maps with the SAA+ protocol (max-F1, AUROC, AUPRO, region F1).

Every metric works on the maps of ONE category: ``maps`` is an (N, H, W) float array of anomaly maps, ``masks`` the
(N, H, W) bool (or 0/1) ground truth, ``labels`` the (N,) bool image labels. As in the official evaluation, all maps
of a category are first min-max normalised together (:func:`normalize_category`: one min, one max per category);
an image's score is the max of its normalised map.

Conventions (values are fractions in [0, 1]; multiply by 100 for the percent of the paper's tables):

* Undefined values are ``nan``, never a number: max-F1 (``pixel_max_f1``, ``image_max_f1``) and the rank metrics
  (``pixel_auroc``, ``image_auroc``) when only one class is present (nothing to find, or nothing but positives, where
  any threshold gives the trivial F1 of 1); ``region_f1`` without a ground-truth region; ``aupro`` without a
  ground-truth region or without a normal pixel. (The official code reports 0.0 for an F1 with nothing to find,
  which would then enter a mean.) :func:`undefined_reasons` says why a value is undefined; tables show ``n/a``.

Max-F1 is exact: it is the maximum of F1 = 2PR / (P + R) over every threshold that
``sklearn.metrics.precision_recall_curve`` returns (every distinct score, ties handled the same way), computed with
sorts and counts instead of scikit-learn. From :data:`POOLED_MIN_PIXELS` pixels on, :func:`pixel_max_f1` switches to a
histogram over ``bins`` equal bins of the normalised scores, filled image by image (memory independent of N). Its
value is exactly the F1 of a real threshold, hence never above the exact max-F1, and a certified upper bound comes
with it (``return_bound=True``); with 2**16 bins the gap is far below 1e-3 for maps whose values are not crowded into
a few bins.

AUPRO and region F1 use the official 200 thresholds ``t_k = max - k * (max - min) / 200`` (k = 0..199, prediction
``score > t_k``) and 8-connected regions (``scipy.ndimage.label`` with a 3x3 structure, as ``skimage.measure.label(...,
connectivity=2)``). ``protocol`` picks between

* ``"standard"`` (default): the definitions as written: AUPRO integrates the mean-PRO vs FPR curve (closed by the
  "everything predicted" point (1, 1), linearly interpolated at the limit) from 0 to ``fpr_limit`` and divides by
  ``fpr_limit``; region F1 matches a predicted region to a ground-truth region by their own IoU, recall counts matched
  ground-truth regions, precision matched predicted regions.
* ``"code"``: the official ``utils/metrics.py`` literally: AUPRO keeps the points with FPR <= limit, min-max rescales
  their FPRs (so it divides by the largest FPR reached, not by the limit) and measures each region's overlap on its
  hole-filled shape; region F1 computes the IoU of the whole binary prediction and the whole mask inside the union
  bounding box of the two regions, and recall = matched predicted regions / ground-truth regions. Fragments of one
  defect inside its box all match, so this recall (and the region F1) can exceed 1; the official numbers carry that.
"""
from .category import METRIC_NAMES, category_metrics, undefined_reasons
from .checks import PROTOCOLS, normalize_category
from .image import image_auroc, image_max_f1
from .pixel import DEFAULT_BINS, POOLED_MIN_PIXELS, pixel_auroc, pixel_max_f1, pixel_max_f1_streaming
from .region import aupro, pro_curve, region_f1

__all__ = ["DEFAULT_BINS", "METRIC_NAMES", "POOLED_MIN_PIXELS", "PROTOCOLS", "aupro", "category_metrics", "image_auroc",
           "image_max_f1", "normalize_category", "pixel_auroc", "pixel_max_f1", "pixel_max_f1_streaming", "pro_curve",
           "region_f1", "undefined_reasons"]
