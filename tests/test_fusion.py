import numpy as np
import pytest

from saa_lib.fusion import fuse_regions, image_score


def test_fusion_of_hand_made_masks_gives_the_hand_computed_map():
    m = np.zeros((2, 3, 3), bool)
    m[0, 0, :2] = True
    m[1, 0, 1:] = True
    s = np.array([0.4, 0.8])
    paper = fuse_regions(m, s, offset=0)
    expected = np.array([[0.4, 0.6, 0.8], [0, 0, 0], [0, 0, 0]], np.float32)
    np.testing.assert_allclose(paper, expected, atol=1e-7)
    code = fuse_regions(m, s, offset=1)
    np.testing.assert_allclose(code[0], [0.4 / 2, 1.2 / 3, 0.8 / 2], atol=1e-7)
    assert image_score(paper) == pytest.approx(0.8)


def test_no_region_gives_an_all_zero_map():
    out = fuse_regions(np.zeros((0, 5, 7), bool), np.zeros(0))
    assert out.shape == (5, 7) and not out.any()


def test_fusion_rejects_mismatched_inputs():
    with pytest.raises(ValueError):
        fuse_regions(np.zeros((2, 3, 3), bool), np.zeros(3))


def test_chunked_fusion_equals_the_one_shot_formula_and_accepts_packed_masks():
    from saa_lib.masks import PackedMasks

    rng = np.random.default_rng(0)
    masks = rng.random((37, 20, 30)) < 0.3
    scores = rng.random(37)
    m = masks.astype(np.float64)
    for offset in (0.0, 1.0):
        den = m.sum(0) + offset
        want = np.divide(np.tensordot(scores, m, axes=(0, 0)), den, out=np.zeros((20, 30)), where=den > 0)
        for chunk in (1, 5, 64):
            np.testing.assert_allclose(fuse_regions(masks, scores, offset, chunk=chunk), want, rtol=1e-6)
        np.testing.assert_array_equal(fuse_regions(PackedMasks.from_dense(masks), scores, offset),
                                      fuse_regions(masks, scores, offset))


def test_official_fusion_adds_in_the_given_order_then_resizes_with_cv2():
    import cv2

    from saa_lib.fusion import official_fuse
    from saa_lib.masks import PackedMasks

    masks = np.zeros((2, 6, 8), bool)
    masks[0, :3] = True
    masks[1, 2:] = True
    scores = np.array([0.5, 2.0], np.float32)
    want = np.zeros((6, 8))
    want[:2] = 0.5 / 2
    want[2] = 2.5 / 3
    want[3:] = 2.0 / 2
    np.testing.assert_array_equal(official_fuse(masks, scores, 1.0), want)
    np.testing.assert_array_equal(official_fuse(PackedMasks.from_dense(masks), scores, 1.0, 4),
                                  cv2.resize(want, (4, 4)))
    assert not official_fuse(np.zeros((0, 6, 8), bool), np.zeros(0), 1.0, 4).any()
