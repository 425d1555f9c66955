"""PackedMasks answers on packed bits what the dense reference functions answer on bool stacks."""
import numpy as np
import pytest

from saa_lib.masks import PackedMasks, resize_masks
from saa_lib.prompts.property import property_keep_stats


# ----- dense references: the plain numpy definitions the packed statistics must reproduce
def mask_iou(masks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    inter = (masks & reference).reshape(len(masks), -1).sum(1)
    union = (masks | reference).reshape(len(masks), -1).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def mean_in_masks(masks: np.ndarray, values: np.ndarray) -> np.ndarray:
    m = masks.reshape(len(masks), -1)
    area = m.sum(1)
    return np.where(area > 0, (m @ values.reshape(-1).astype(np.float64)) / np.maximum(area, 1), 0.0)


def property_keep_masks(masks, object_mask, min_iou, max_area_ratio) -> np.ndarray:
    areas = masks.reshape(len(masks), -1).sum(1)
    return (mask_iou(masks, object_mask) >= min_iou) & (areas > 0) & (areas <= max_area_ratio * object_mask.sum())


def _random_masks(m=37, h=23, w=45, seed=0):  # w not a multiple of 8: the padding bits must not count
    rng = np.random.default_rng(seed)
    masks = rng.random((m, h, w)) < rng.random((m, 1, 1))
    masks[0] = False  # an empty mask
    masks[1] = True  # a full one
    return masks


def test_roundtrip_indexing_and_shape():
    masks = _random_masks()
    pm = PackedMasks.from_dense(masks)
    assert pm.shape == masks.shape and len(pm) == len(masks)
    np.testing.assert_array_equal(np.asarray(pm), masks)
    idx = np.array([5, 1, 30])
    np.testing.assert_array_equal(pm[idx], masks[idx])
    np.testing.assert_array_equal(pm[masks.any((1, 2))], masks[masks.any((1, 2))])
    np.testing.assert_array_equal(pm[3], masks[3])
    np.testing.assert_array_equal(pm.select(idx)[:], masks[idx])
    assert pm[np.zeros(0, int)].shape == (0, 23, 45)


def test_statistics_agree_with_the_dense_reference():
    masks = _random_masks()
    pm = PackedMasks.from_dense(masks)
    ref = np.random.default_rng(1).random((23, 45)) < 0.4
    values = np.random.default_rng(2).random((23, 45)).astype(np.float32)
    np.testing.assert_array_equal(pm.areas(), masks.reshape(len(masks), -1).sum(1))
    np.testing.assert_allclose(pm.iou(ref), mask_iou(masks, ref), rtol=0, atol=1e-15)
    np.testing.assert_allclose(pm.means(values, chunk=5), mean_in_masks(masks, values), rtol=1e-12)
    assert pm.means(values)[0] == 0.0  # empty mask
    keep = property_keep_stats(pm.iou(ref), pm.areas(), int(ref.sum()), 0.05, 1.5)
    np.testing.assert_array_equal(keep, property_keep_masks(masks, ref, 0.05, 1.5))


def test_concat_and_bad_shapes():
    masks = _random_masks()
    a, b = PackedMasks.from_dense(masks[:10]), PackedMasks.from_dense(masks[10:])
    np.testing.assert_array_equal(PackedMasks.concat([a, b], (23, 45))[:], masks)
    assert PackedMasks.concat([], (23, 45)).shape == (0, 23, 45)
    with pytest.raises(ValueError, match="does not match"):
        a.iou(np.zeros((23, 44), bool))
    with pytest.raises(ValueError, match="ceil"):
        PackedMasks(a.bits, 60)


def test_resize_masks_nearest():
    m = np.zeros((1, 4, 4), bool)
    m[0, :2, :2] = True
    out = resize_masks(m, 8)
    assert out.shape == (1, 8, 8) and out[0, :4, :4].all() and not out[0, 4:].any() and not out[0, :, 4:].any()


def test_resize_masks_agrees_with_float_nearest_interpolation():
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(3)
    for shape, size in (((5, 37, 53), 400), ((3, 1024, 683), 400), ((2, 400, 400), 256)):
        m = rng.random(shape) < 0.4
        ref = F.interpolate(torch.from_numpy(m).float()[:, None], size=(size, size), mode="nearest")[:, 0] > 0.5
        np.testing.assert_array_equal(resize_masks(m, size), ref.numpy())
    # 0/255 masks read from files count as True where non-zero
    m = rng.random((1, 9, 9)) < 0.5
    np.testing.assert_array_equal(resize_masks(m.astype(np.uint8) * 255, 18), resize_masks(m, 18))


def test_an_empty_stack_has_empty_statistics():
    pm = PackedMasks.concat([], (23, 45))
    assert pm.areas().shape == (0,) and pm.iou(np.ones((23, 45), bool)).shape == (0,)
    assert pm.means(np.ones((23, 45))).shape == (0,) and pm[:].shape == (0, 23, 45)


def test_official_means_are_numpys_mean_in_the_maps_dtype():
    rng = np.random.default_rng(3)
    masks = rng.random((4, 9, 13)) < 0.4
    masks[2] = False
    values = rng.random((9, 13)).astype(np.float32)
    got = PackedMasks.from_dense(masks).official_means(values)
    assert got.dtype == np.float32 and np.isnan(got[2])
    for i in (0, 1, 3):
        assert got[i] == values[masks[i]].mean()  # bit for bit
    assert PackedMasks.from_dense(masks).official_means(values.astype(np.float64)).dtype == np.float64
