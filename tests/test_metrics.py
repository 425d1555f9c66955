"""saa_lib.metrics: agreement with scikit-learn, brute-force references, hand-computed cases, pooled mode, checks."""
from __future__ import annotations

import math
import warnings
import zlib

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import precision_recall_curve, roc_auc_score

from saa_lib import metrics as M

EIGHT = np.ones((3, 3), dtype=bool)


# ----------------------------------------------------------------------------------------------------------------------
# references (scikit-learn, and slow loops written straight from the protocol's definitions)
# ----------------------------------------------------------------------------------------------------------------------
def sk_max_f1(y, scores) -> float:
    """The official computation: precision_recall_curve, F1 = 2PR / (P + R) (0 where P + R = 0), max; nan with one
    class only (the official code's 0.0 / trivial 1.0 there are undefined values, see the module doc)."""
    y = np.ravel(y).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, _ = precision_recall_curve(np.ravel(y), np.ravel(scores))
    a, b = 2 * p * r, p + r
    return float(np.divide(a, b, out=np.zeros_like(a), where=b != 0).max())


def official_thresholds(norm: np.ndarray, k: int) -> list:
    mx, mn = norm.max(), norm.min()
    delta = (mx - mn) / k
    return [mx - step * delta for step in range(k)]


def ref_aupro(maps, masks, limit, k, protocol) -> float:
    norm = M.normalize_category(maps)
    masks = np.asarray(masks, bool)
    neg = ~masks
    fprs, pros = [], []
    for t in official_thresholds(norm, k):
        pred = norm > t
        overlaps = []
        for i in range(len(norm)):
            lab, n = ndimage.label(masks[i], structure=EIGHT)
            for r in range(1, n + 1):
                region = lab == r
                if protocol == "code":
                    sl = ndimage.find_objects(lab)[r - 1]
                    shape = ndimage.binary_fill_holes(region[sl])
                    overlaps.append((pred[i][sl] & shape).sum() / region.sum())
                else:
                    overlaps.append((pred[i] & region).sum() / region.sum())
        pros.append(np.mean(overlaps))
        fprs.append((pred & neg).sum() / neg.sum())
    fprs, pros = np.array(fprs), np.array(pros)
    if protocol == "code":
        keep = fprs <= limit
        x = fprs[keep]
        x = (x - x.min()) / (x.max() - x.min())
        return float(np.trapezoid(pros[keep], x))
    x = np.concatenate(([0.0], fprs, [1.0]))
    y = np.concatenate(([0.0], pros, [1.0]))
    area = 0.0
    for x0, x1, y0, y1 in zip(x[:-1], x[1:], y[:-1], y[1:]):  # each segment clipped to [0, limit]
        if x0 >= limit or x1 == x0:
            continue
        b = min(x1, limit)
        yb = y0 + (y1 - y0) * (b - x0) / (x1 - x0)
        area += (b - x0) * (y0 + yb) / 2
    return area / limit


def ref_region_f1(maps, masks, iou, k, protocol) -> float:
    norm = M.normalize_category(maps)
    masks = np.asarray(masks, bool)
    best = 0.0
    for t in official_thresholds(norm, k):
        n_pred = tp_pred = tp_gt = n_gt = 0
        for i in range(len(norm)):
            pred = norm[i] > t
            plab, np_ = ndimage.label(pred, structure=EIGHT)
            glab, ng = ndimage.label(masks[i], structure=EIGHT)
            n_pred += np_
            n_gt += ng
            pboxes, gboxes = ndimage.find_objects(plab), ndimage.find_objects(glab)
            table = np.zeros((max(np_, 1), max(ng, 1)))
            for p in range(1, np_ + 1):
                for g in range(1, ng + 1):
                    if protocol == "code":
                        a, b = pboxes[p - 1], gboxes[g - 1]
                        box = (slice(min(a[0].start, b[0].start), max(a[0].stop, b[0].stop)),
                               slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop)))
                        inter = np.float32((pred[box] & masks[i][box]).sum())
                        union = np.float32((pred[box] | masks[i][box]).sum())
                        table[p - 1, g - 1] = inter / union
                    else:
                        pr, gr = plab == p, glab == g
                        table[p - 1, g - 1] = (pr & gr).sum() / (pr | gr).sum()
            if np_ and ng:
                ok = table >= iou
                tp_pred += ok.any(axis=1).sum()
                tp_gt += ok.any(axis=0).sum()
        if n_gt == 0 or n_pred == 0:
            continue
        recall = (tp_pred if protocol == "code" else tp_gt) / n_gt
        precision = tp_pred / n_pred
        if recall > 0 and precision > 0:
            best = max(best, 2 * recall * precision / (recall + precision))
    return best


def blob_category(seed: int, n: int = 3, size: int = 24, noise: float = 0.35):
    """Smooth maps (N, size, size) float64 that partly find blob-shaped masks (N, size, size) bool."""
    rng = np.random.default_rng(seed)
    masks = ndimage.gaussian_filter(rng.standard_normal((n, size, size)), (0, 2, 2)) > 0.25
    masks[0] = False  # one normal image
    maps = ndimage.gaussian_filter(masks.astype(float), (0, 1, 1)) + noise * ndimage.gaussian_filter(
        rng.standard_normal((n, size, size)), (0, 1.5, 1.5))
    return maps, masks


# ----------------------------------------------------------------------------------------------------------------------
# normalisation
# ----------------------------------------------------------------------------------------------------------------------
def test_normalize_category_uses_one_min_and_max_for_the_category():
    maps = np.stack([np.linspace(0, 1, 12).reshape(3, 4), np.linspace(-1, 3, 12).reshape(3, 4)])
    out = M.normalize_category(maps)
    np.testing.assert_allclose(out, (maps + 1) / 4)
    assert out.min() == 0.0 and out.max() == 1.0
    assert out[0].max() == pytest.approx(0.5)  # the first map is not stretched on its own


def test_normalize_category_dtypes_and_constant_maps():
    f32 = np.random.default_rng(0).random((2, 5, 5), dtype=np.float32) * 7 + 3
    out = M.normalize_category(f32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, (f32 - f32.min()) / (f32.max() - f32.min()))
    ints = M.normalize_category(np.arange(8, dtype=np.int64).reshape(2, 2, 2))
    assert ints.dtype == np.float64 and ints.max() == 1.0
    const = M.normalize_category(np.full((3, 4, 4), 2.5))
    assert const.shape == (3, 4, 4) and not const.any()


# ----------------------------------------------------------------------------------------------------------------------
# pixel max-F1 / AUROC against scikit-learn
# ----------------------------------------------------------------------------------------------------------------------
def _case(name: str):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    shape = (4, 13, 11)
    maps = rng.random(shape)
    masks = rng.random(shape) < 0.15
    if name == "heavy_ties":
        maps = np.round(maps, 1)
    elif name == "quantised_uint8":
        maps = rng.integers(0, 4, shape).astype(np.uint8)
    elif name == "float32":
        maps = maps.astype(np.float32) ** 3
    elif name == "informative":
        maps = maps + 0.6 * masks
    elif name == "constant_maps":
        maps = np.full(shape, 0.7)
    elif name == "all_normal":
        masks = np.zeros(shape, bool)
    elif name == "all_anomalous":
        masks = np.ones(shape, bool)
    elif name == "single_positive":
        masks = np.zeros(shape, bool)
        masks[2, 5, 7] = True
    elif name == "one_pixel_maps":
        maps, masks = rng.random((9, 1, 1)), rng.random((9, 1, 1)) < 0.4
    elif name == "int_masks_ties_across_classes":
        maps = rng.integers(0, 3, shape).astype(float)
        masks = (rng.random(shape) < 0.5).astype(np.int64)
    return maps, masks


CASES = ["random", "heavy_ties", "quantised_uint8", "float32", "informative", "constant_maps", "all_normal",
         "all_anomalous", "single_positive", "one_pixel_maps", "int_masks_ties_across_classes"]


@pytest.mark.parametrize("name", CASES)
def test_pixel_max_f1_and_auroc_match_sklearn(name):
    maps, masks = _case(name)
    scores = M.normalize_category(maps).ravel()
    y = np.asarray(masks, bool).ravel()
    assert M.pixel_max_f1(maps, masks, pooled=False) == pytest.approx(sk_max_f1(y, scores), abs=1e-9, nan_ok=True)
    auroc = M.pixel_auroc(maps, masks)
    if y.all() or not y.any():
        assert math.isnan(auroc)
    else:
        assert auroc == pytest.approx(roc_auc_score(y, scores), abs=1e-9)


def test_pixel_max_f1_many_random_small_categories_match_sklearn():
    rng = np.random.default_rng(7)
    for trial in range(60):
        shape = tuple(int(v) for v in rng.integers(1, 9, 3))
        maps = rng.random(shape)
        if trial % 3 == 0:
            maps = np.round(maps * rng.integers(1, 6)) / 5
        masks = rng.random(shape) < rng.random()
        scores = M.normalize_category(maps).ravel()
        assert M.pixel_max_f1(maps, masks) == pytest.approx(sk_max_f1(masks.ravel(), scores), abs=1e-9, nan_ok=True)
        if 0 < masks.sum() < masks.size:
            assert M.pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(masks.ravel(), scores), abs=1e-9)


def test_documented_edge_values():
    maps = np.random.default_rng(1).random((2, 6, 6))
    # one class only: undefined (nothing to find / the trivial F1 of 1), in the exact and the pooled mode
    for pooled in (False, True):
        assert math.isnan(M.pixel_max_f1(maps, np.zeros((2, 6, 6), bool), pooled=pooled))
        assert math.isnan(M.pixel_max_f1(maps, np.ones((2, 6, 6), bool), pooled=pooled))
    perfect = np.zeros((2, 6, 6), bool)
    perfect[1, 2:4, 2:4] = True
    assert M.pixel_max_f1(perfect.astype(float), perfect) == 1.0
    assert M.pixel_auroc(perfect.astype(float), perfect) == 1.0
    assert M.pixel_auroc(-perfect.astype(float), perfect) == 0.0


def test_metrics_are_invariant_to_an_affine_transform_of_all_maps():
    maps, masks = blob_category(3, n=4)
    moved = 3.7 * maps - 2.1
    for fn in (M.pixel_max_f1, M.pixel_auroc, M.aupro, M.region_f1):
        assert fn(moved, masks) == pytest.approx(fn(maps, masks), abs=1e-12), fn.__name__
    labels = masks.any((1, 2))
    for fn in (M.image_auroc, M.image_max_f1):
        assert fn(moved, labels) == pytest.approx(fn(maps, labels), abs=1e-12), fn.__name__


# ----------------------------------------------------------------------------------------------------------------------
# image level
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("quantised", [False, True])
def test_image_metrics_match_sklearn_on_map_maxima(quantised):
    rng = np.random.default_rng(11)
    maps = rng.random((30, 8, 8)) * 5 - 1
    if quantised:
        maps = np.round(maps)
    labels = rng.random(30) < 0.4
    scores = M.normalize_category(maps).reshape(30, -1).max(axis=1)
    assert M.image_auroc(maps, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert M.image_max_f1(maps, labels) == pytest.approx(sk_max_f1(labels, scores), abs=1e-9, nan_ok=True)


def test_image_metrics_one_class():
    maps = np.random.default_rng(2).random((5, 4, 4))
    assert math.isnan(M.image_auroc(maps, np.zeros(5, bool)))
    assert math.isnan(M.image_auroc(maps, np.ones(5, bool)))
    assert math.isnan(M.image_max_f1(maps, np.zeros(5, bool)))
    assert math.isnan(M.image_max_f1(maps, np.ones(5, int)))


# ----------------------------------------------------------------------------------------------------------------------
# AUPRO
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["standard", "code"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aupro_matches_brute_force_reference(protocol, seed):
    maps, masks = blob_category(seed)
    if seed == 2:
        maps = np.round(M.normalize_category(maps) * 40) / 40  # values that sit exactly on thresholds
    masks[-1, 3:9, 3:9] = True
    masks[-1, 5:7, 5:7] = False  # a region with a hole (the official code fills it)
    got = M.aupro(maps, masks, fpr_limit=0.3, num_thresholds=40, protocol=protocol)
    want = ref_aupro(maps, masks, 0.3, 40, protocol)
    assert 0.0 < want and got == pytest.approx(want, abs=1e-9)


def _hand_pro_case():
    """10x10 image: a 2x2 defect scored [1, 1, 0.5, 0]; 24 of the 96 normal pixels at 0.75, the rest 0."""
    maps = np.zeros((1, 10, 10))
    masks = np.zeros((1, 10, 10), bool)
    masks[0, :2, :2] = True
    maps[0, 0, :2] = 1.0
    maps[0, 1, 0] = 0.5
    maps[0, 4:7, :8] = 0.75
    return maps, masks


def test_aupro_hand_computed_curve():
    maps, masks = _hand_pro_case()
    # curve: (0, 0) -> (0, 0.5) -> (0.25, 0.5) -> (0.25, 0.75) -> everything predicted (1, 1)
    pro_at_limit = 0.75 + 0.25 * (0.3 - 0.25) / 0.75
    standard = (0.25 * 0.5 + 0.05 * (0.75 + pro_at_limit) / 2) / 0.3
    assert M.aupro(maps, masks) == pytest.approx(standard, abs=1e-12)
    # the official code rescales the kept FPRs [0, 0.25] to [0, 1]: area of a flat 0.5
    assert M.aupro(maps, masks, protocol="code") == pytest.approx(0.5, abs=1e-12)


def test_pro_curve_is_the_curve_aupro_integrates():
    maps, masks = _hand_pro_case()
    fpr, pro = M.pro_curve(maps, masks)
    assert (fpr[0], pro[0], fpr[-1], pro[-1]) == (0.0, 0.0, 1.0, 1.0) and np.all(np.diff(fpr) >= 0)
    assert {(round(f, 12), round(p, 12)) for f, p in zip(fpr, pro)} == {(0, 0), (0, 0.5), (0.25, 0.5), (0.25, 0.75),
                                                                       (1, 1)}
    rng = np.random.default_rng(3)
    maps, masks = rng.random((3, 12, 12)), rng.random((3, 12, 12)) < 0.2
    fpr, pro = M.pro_curve(maps, masks, num_thresholds=50)
    keep = fpr <= 0.3
    x, y = np.append(fpr[keep], 0.3), np.append(pro[keep], np.interp(0.3, fpr, pro))
    assert np.trapezoid(y, x) / 0.3 == pytest.approx(M.aupro(maps, masks, num_thresholds=50), abs=1e-9)
    assert M.pro_curve(maps, np.zeros_like(masks)) is None


def test_aupro_perfect_and_disjoint_predictions():
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 1:3, 1:3] = True
    masks[1, 6:9, 2:4] = True
    masks[1, 0, 9] = True
    assert M.aupro(masks.astype(float), masks) == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(M.aupro(masks.astype(float), masks, protocol="code"))  # every kept FPR is 0: 0 / 0

    one = np.zeros((1, 10, 10), bool)
    one[0, :2, :2] = True  # 4 defect pixels, 96 normal
    far = np.zeros((1, 10, 10))
    far[0, 5:10, 2:10] = 1.0  # 40 normal pixels: FPR 0.417 > 0.3 before any defect pixel is found
    assert M.aupro(far, one) == 0.0
    near = np.zeros((1, 10, 10))
    near[0, 6:9, 4:8] = 1.0  # 12 normal pixels: FPR 0.125, then the straight line to (1, 1)
    f = 12 / 96
    assert M.aupro(near, one) == pytest.approx(0.5 * (0.3 - f) ** 2 / (1 - f) / 0.3, abs=1e-12)


def test_aupro_code_protocol_counts_the_hole_of_a_region():
    masks = np.zeros((1, 12, 12), bool)
    masks[0, 2:7, 2:7] = True
    masks[0, 3:6, 3:6] = False  # a 16-pixel ring around a 9-pixel hole
    maps = np.zeros((1, 12, 12))
    maps[0, 2:7, 2:7] = 1.0  # ring and hole predicted
    f = 9 / 128
    assert M.aupro(maps, masks) == pytest.approx((0.5 * f + (0.3 - f)) / 0.3, abs=1e-12)
    # official: overlap = filled shape (25 pixels) / area (16); kept points (0, 0) then FPR 9/128 rescaled to 1
    assert M.aupro(maps, masks, protocol="code") == pytest.approx(0.5 * 25 / 16, abs=1e-12)


# ----------------------------------------------------------------------------------------------------------------------
# region F1
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["standard", "code"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_region_f1_matches_brute_force_reference(protocol, seed):
    maps, masks = blob_category(seed, noise=0.15 + 0.1 * seed)
    if seed == 3:
        maps = np.round(M.normalize_category(maps) * 30) / 30
    for iou in (0.6, 0.3):
        got = M.region_f1(maps, masks, iou=iou, num_thresholds=30, protocol=protocol)
        want = ref_region_f1(maps, masks, iou, 30, protocol)
        assert got == pytest.approx(want, abs=1e-12)
    assert want > 0  # the comparison is not 0 == 0


def _regions_case():
    masks = np.zeros((3, 12, 12), bool)
    masks[0, 1:4, 1:4] = True
    masks[0, 7:10, 6:11] = True
    masks[1, 5:8, 5:7] = True
    return masks  # image 2 is normal


@pytest.mark.parametrize("protocol", ["standard", "code"])
def test_region_f1_hand_cases(protocol):
    masks = _regions_case()
    assert M.region_f1(masks.astype(float), masks, protocol=protocol) == 1.0
    disjoint = np.roll(masks, 6, axis=2) & ~masks
    assert M.region_f1(disjoint.astype(float), masks, protocol=protocol) == 0.0
    # region A found exactly, B missed, one false region C: TP 1 of 2 predicted, 1 of 3 ground-truth regions
    pred = np.zeros_like(masks)
    pred[0, 1:4, 1:4] = True
    pred[2, 5:7, 5:7] = True
    assert M.region_f1(pred.astype(float), masks, protocol=protocol) == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert M.region_f1(np.zeros(masks.shape), masks, protocol=protocol) == 0.0
    assert math.isnan(M.region_f1(masks.astype(float), np.zeros_like(masks), protocol=protocol))


@pytest.mark.parametrize("protocol", ["standard", "code"])
def test_region_f1_iou_boundary(protocol):
    masks = np.zeros((1, 5, 12), bool)
    masks[0, 2, 1:11] = True  # a 10-pixel segment
    six, five = np.zeros((1, 5, 12)), np.zeros((1, 5, 12))
    six[0, 2, 1:7] = 1.0  # IoU 6 / 10 = 0.6
    five[0, 2, 1:6] = 1.0  # IoU 0.5
    assert M.region_f1(six, masks, protocol=protocol) == 1.0
    assert M.region_f1(five, masks, protocol=protocol) == 0.0
    assert M.region_f1(five, masks, iou=0.5, protocol=protocol) == 1.0


def test_region_f1_code_protocol_measures_iou_inside_the_union_box():
    masks = np.zeros((1, 10, 10), bool)
    masks[0, 1:7, 1] = True  # an L: column of 6 ...
    masks[0, 6, 2:7] = True  # ... and a row of 5 (11 pixels, box rows 1-6, cols 1-6)
    maps = masks.astype(float)
    maps[0, 1:5, 3:7] = 1.0  # a separate 16-pixel region inside the L's box
    # own IoU: L found exactly (1 of 2 predicted regions, 1 of 1 ground-truth region) -> F1 2/3
    assert M.region_f1(maps, masks) == pytest.approx(2 / 3)
    # official: both IoUs are computed over the L's box: 11 / (11 + 16) < 0.6, nothing matches
    assert M.region_f1(maps, masks, protocol="code") == 0.0


# ----------------------------------------------------------------------------------------------------------------------
# pooled (histogram) max-F1
# ----------------------------------------------------------------------------------------------------------------------
def _large_category(seed=5, n=48, size=250):
    """~3 M pixels of smooth maps with blob defects (float32)."""
    rng = np.random.default_rng(seed)
    small = rng.standard_normal((n, size // 5, size // 5)).astype(np.float32)
    masks = np.repeat(np.repeat(ndimage.gaussian_filter(small, (0, 1.5, 1.5)) > 0.35, 5, 1), 5, 2)
    maps = 0.8 * ndimage.gaussian_filter(masks.astype(np.float32), (0, 3, 3))
    maps += 0.3 * rng.random(masks.shape, dtype=np.float32)
    return maps, masks


def test_pooled_max_f1_is_within_1e3_of_exact_and_bracketed():
    maps, masks = _large_category()
    assert maps.size >= 3_000_000
    exact = M.pixel_max_f1(maps, masks, pooled=False)
    pooled = M.pixel_max_f1(maps, masks, pooled=True)
    value, upper = M.pixel_max_f1_streaming(list(zip(maps, masks)), return_bound=True)
    assert value == pooled
    assert abs(exact - pooled) <= 1e-3
    assert pooled <= exact + 1e-12 and exact <= upper + 1e-12
    assert 0.3 < exact < 0.99


@pytest.mark.parametrize("bins", [2, 7, 64, 1000])
def test_pooled_bounds_hold_for_coarse_bins(bins):
    rng = np.random.default_rng(bins)
    for _ in range(5):
        maps = rng.random((3, 20, 20)) ** 3
        masks = rng.random((3, 20, 20)) < maps
        exact = M.pixel_max_f1(maps, masks, pooled=False)
        value, upper = M.pixel_max_f1_streaming(list(zip(maps, masks)), bins=bins, return_bound=True)
        assert value <= exact + 1e-12 <= upper + 2e-12
        assert sk_max_f1(masks, M.normalize_category(maps)) == pytest.approx(exact, abs=1e-12)


def test_streaming_inputs():
    maps, masks = _large_category(n=6, size=100)
    ref = M.pixel_max_f1(maps, masks, pooled=True)
    assert M.pixel_max_f1_streaming(lambda: zip(maps, masks)) == ref
    assert M.pixel_max_f1_streaming(iter(list(zip(maps, masks))), value_range=(maps.min(), maps.max())) == ref
    # a wider known range changes the bins, not the meaning
    wide = M.pixel_max_f1_streaming(zip(maps, masks), value_range=(-1.0, 2.0))
    assert abs(wide - M.pixel_max_f1(maps, masks, pooled=False)) < 1e-3
    with pytest.raises(ValueError, match="one-shot iterator"):
        M.pixel_max_f1_streaming(zip(maps, masks))
    with pytest.raises(ValueError, match="outside the category range"):
        M.pixel_max_f1_streaming(zip(maps, masks), value_range=(0.0, 0.5))
    bad = maps[:2].copy()
    bad[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN \(pair 1\)"):
        M.pixel_max_f1_streaming(list(zip(bad, masks[:2])))
    with pytest.raises(ValueError, match="no \\(map, mask\\) pair"):
        M.pixel_max_f1_streaming([])


def test_pooled_none_switches_at_the_pixel_threshold(monkeypatch):
    rng = np.random.default_rng(3)
    maps, masks = rng.random((4, 16, 16)), rng.random((4, 16, 16)) < 0.3
    exact = M.pixel_max_f1(maps, masks, pooled=False)
    coarse = M.pixel_max_f1(maps, masks, pooled=True, bins=3)
    assert coarse != exact
    monkeypatch.setattr(M.pixel, "POOLED_MIN_PIXELS", maps.size)
    assert M.pixel_max_f1(maps, masks, bins=3) == coarse
    monkeypatch.setattr(M.pixel, "POOLED_MIN_PIXELS", maps.size + 1)
    assert M.pixel_max_f1(maps, masks, bins=3) == exact


# ----------------------------------------------------------------------------------------------------------------------
# category_metrics
# ----------------------------------------------------------------------------------------------------------------------
def test_category_metrics_equals_the_single_metrics():
    maps, masks = blob_category(4, n=5)
    out = M.category_metrics(maps, masks)
    assert tuple(out) == M.METRIC_NAMES
    labels = masks.any((1, 2))
    assert out == {
        "pixel_max_f1": M.pixel_max_f1(maps, masks),
        "pixel_auroc": M.pixel_auroc(maps, masks),
        "aupro": M.aupro(maps, masks),
        "image_auroc": M.image_auroc(maps, labels),
        "image_max_f1": M.image_max_f1(maps, labels),
        "region_f1": M.region_f1(maps, masks),
    }
    assert all(0.0 <= v <= 1.0 for v in out.values())
    flipped = ~labels
    other = M.category_metrics(maps, masks, labels=flipped.astype(int), protocol="code")
    assert other["image_auroc"] == pytest.approx(1 - out["image_auroc"])
    assert other["aupro"] == M.aupro(maps, masks, protocol="code")


def test_category_metrics_on_an_all_normal_category():
    maps = np.random.default_rng(0).random((3, 8, 8))
    out = M.category_metrics(maps, np.zeros((3, 8, 8), bool))
    assert all(math.isnan(v) for v in out.values())  # every metric is undefined without an anomaly
    why = M.undefined_reasons(np.zeros((3, 8, 8), bool))
    assert set(why) == set(M.METRIC_NAMES) and why["image_max_f1"] == "no anomalous image"


def test_category_metrics_on_an_only_anomalous_category():
    maps = np.random.default_rng(0).random((3, 8, 8))
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:5, 2:5] = True
    out = M.category_metrics(maps, masks)
    assert math.isnan(out["image_max_f1"]) and math.isnan(out["image_auroc"])  # not 1.0: no normal image
    assert 0 < out["pixel_max_f1"] <= 1 and 0 <= out["pixel_auroc"] <= 1 and 0 <= out["region_f1"] <= 1
    assert M.undefined_reasons(masks) == {"image_max_f1": "no normal image", "image_auroc": "no normal image"}


# ----------------------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------------------
def test_input_validation_errors():
    maps = np.random.default_rng(0).random((2, 5, 5))
    masks = maps > 0.5
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        M.pixel_max_f1(maps[0], masks[0])
    with pytest.raises(ValueError, match="masks must have shape"):
        M.pixel_max_f1(maps, masks[:, :4])
    with pytest.raises(ValueError, match="empty"):
        M.normalize_category(np.zeros((0, 4, 4)))
    with pytest.raises(ValueError, match="numeric"):
        M.pixel_auroc(maps.astype(complex), masks)
    with pytest.raises(ValueError, match="binary"):
        M.aupro(maps, masks * 0.5)
    with pytest.raises(ValueError, match="labels must have shape"):
        M.image_auroc(maps, np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="labels must have shape"):
        M.category_metrics(maps, masks, labels=np.array([0, 1, 1]))
    for bad, word in ((np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")):
        broken = maps.copy()
        broken[1, 2, 2] = bad
        for fn in (M.pixel_max_f1, M.pixel_auroc, M.aupro, M.region_f1, M.category_metrics):
            with pytest.raises(ValueError, match=rf"{word} \(image 1\)"):
                fn(broken, masks)
        with pytest.raises(ValueError, match=word):
            M.normalize_category(broken)
    with pytest.raises(ValueError, match="bins"):
        M.pixel_max_f1(maps, masks, pooled=True, bins=1)
    with pytest.raises(ValueError, match="fpr_limit"):
        M.aupro(maps, masks, fpr_limit=0.0)
    with pytest.raises(ValueError, match="iou"):
        M.region_f1(maps, masks, iou=1.5)
    with pytest.raises(ValueError, match="num_thresholds"):
        M.region_f1(maps, masks, num_thresholds=0)
    with pytest.raises(ValueError, match="protocol"):
        M.aupro(maps, masks, protocol="paper")


def test_region_f1_code_protocol_counts_every_fragment_of_a_defect():
    masks = np.zeros((1, 9, 10), bool)
    masks[0, 2:6, 2:8] = True  # one 24-pixel defect
    maps = masks.astype(float)
    maps[0, :, 4] = 0.0  # predicted as two fragments (8 and 12 pixels) split by an unpredicted column
    assert M.region_f1(maps, masks) == 0.0  # own IoUs 8/24 and 12/24 < 0.6
    # official: both fragments score 20/24 over the defect's box -> recall 2/1, precision 2/2, F1 4/3
    assert M.region_f1(maps, masks, protocol="code") == pytest.approx(4 / 3)
