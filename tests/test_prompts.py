"""Hybrid prompts on hand-built cases: each filter does what the paper says, and fails loudly on bad input."""
import numpy as np
import pytest
import torch

from saa_lib.config import SaliencyConfig
from saa_lib.prompts.confidence import top_k_keep
from saa_lib.prompts.language import UnknownCategoryError, category_prompts, language_keep
from saa_lib.tables import known_categories
from saa_lib.masks import PackedMasks
from saa_lib.prompts.property import (box_areas, object_boxes_keep, object_reference_area, property_keep_boxes,
                                      property_keep_stats)
from saa_lib.prompts.saliency import box_cells, knn_saliency, multi_instance_saliency, rescore, saliency_map


# ----- P^L -------------------------------------------------------------------------------------------------------------
def test_tables_cover_the_paper_categories():
    cats = known_categories()
    assert len(cats["mvtec"]) == 15 and len(cats["visa"]) == 12
    assert "ksdd2" in cats["ksdd2"] and "mtd" in cats["mtd"]


def test_expert_prompts_from_the_tables():
    p = category_prompts("pcb4", "visa")
    assert p.object_word == "pcb" and p.top_k == 7 and p.max_area_ratio == pytest.approx(0.3)
    # the official templates take the category key (general_prompts.build_general_prompts(category))
    assert [e.caption for e in p.entries if e.kind == "agnostic"] == ["defect on pcb4", "damage on pcb4", "flaw on pcb4"]
    assert sum(e.kind == "expert" for e in p.entries) == 6
    paper = category_prompts("pcb4", "visa", behaviour="paper")
    assert [e.caption for e in paper.entries if e.kind == "agnostic"] == ["anomaly", "defect"]


def test_language_switch_selects_class_agnostic_entries_only():
    p = category_prompts("carpet", "mvtec")
    assert {p.entries[i].kind for i in p.select(False)} == {"agnostic"}
    assert len(p.select(True)) == len(p.entries) == 3 + 3


def test_unknown_category_needs_prompts_and_lists_known_ones():
    with pytest.raises(UnknownCategoryError) as err:
        category_prompts("teacup")
    assert "--prompt" in str(err.value) and "bottle" in str(err.value)
    p = category_prompts("teacup", extra=["chipped rim", "  "])
    assert p.object_word == "teacup" and p.entries[-1].caption == "chipped rim" and p.top_k == 5


def test_folder_category_found_in_any_table():
    assert category_prompts("magnetic_tile").table == "mtd"  # the MTD release's own name for its category
    assert category_prompts("teapot", extra=["crack"]).table is None
    assert category_prompts("screw").table == "mvtec"
    assert category_prompts("capsules").table == "visa"


def test_boxes_naming_the_object_are_dropped():
    keep = language_keep(["black hole", "screw", "defect on screw", "scratch"], ["screw"] * 4)
    assert keep.tolist() == [True, False, False, True]


# ----- P^P -------------------------------------------------------------------------------------------------------------
HW = (100, 200)


def test_box_areas_are_image_fractions():
    np.testing.assert_allclose(box_areas(np.array([[0, 0, 200, 100], [10, 10, 30, 20]]), HW), [1.0, 200 / 20000])


def test_area_filter_removes_a_box_covering_the_whole_object():
    obj = np.array([[50, 20, 150, 80]])  # object: 100x60 px
    ref = object_reference_area(obj, HW)
    cands = np.array([[50, 20, 150, 80],   # the whole object
                      [60, 30, 70, 40],    # a small defect on it
                      [0, 0, 0, 10]])      # degenerate
    assert property_keep_boxes(cands, HW, ref, 0.5).tolist() == [False, True, False]


def test_object_boxes_limited_by_count():
    boxes = np.array([[0, 0, 200, 100], [0, 0, 50, 50]])
    assert object_boxes_keep(boxes, HW, count=4).tolist() == [False, True]
    assert object_boxes_keep(boxes, HW, count=1).tolist() == [True, True]
    assert object_reference_area(np.zeros((0, 4)), HW) == 1.0


def test_iou_filter_removes_a_region_off_the_object():
    obj = np.zeros((20, 20), bool)
    obj[5:15, 5:15] = True
    on = np.zeros_like(obj)
    on[6:9, 6:9] = True
    off = np.zeros_like(obj)
    off[0:3, 16:20] = True
    whole = obj.copy()
    masks = np.stack([on, off, whole])
    pm = PackedMasks.from_dense(masks)
    np.testing.assert_allclose(pm.iou(obj), [9 / 100, 0, 1])
    assert property_keep_stats(pm.iou(obj), pm.areas(), int(obj.sum()), min_iou=0.05,
                               max_area_ratio=0.5).tolist() == [True, False, False]


# ----- P^C -------------------------------------------------------------------------------------------------------------
def test_top_k_keeps_the_k_best_among_candidates():
    s = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
    assert top_k_keep(s, 2).tolist() == [False, True, False, True, False]
    cand = np.array([True, False, True, True, True])
    assert top_k_keep(s, 2, cand).tolist() == [False, False, True, True, False]
    assert top_k_keep(s, 10).all() and not top_k_keep(s, 0).any()
    assert top_k_keep(np.array([0.5, 0.5, 0.5]), 2).tolist() == [True, True, False]


# ----- P^S -------------------------------------------------------------------------------------------------------------
def test_knn_saliency_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=1)
    cos = f @ f.T
    d = 1 - cos
    k = 20
    dn = d.clone()
    dn.fill_diagonal_(float("inf"))
    nearest = dn.sort(1).values[:, :k].mean(1)
    farthest = (0.5 * d).sort(1, descending=True).values[:, :k].mean(1)
    torch.testing.assert_close(knn_saliency(f, k, "nearest", chunk_size=64), nearest, atol=1e-5, rtol=0)
    torch.testing.assert_close(knn_saliency(f, k, "farthest", chunk_size=37), farthest, atol=1e-5, rtol=0)


def test_planted_outlier_has_the_highest_saliency():
    f = torch.zeros(100, 4)
    f[:, 0] = 1
    f[:, 1] = torch.linspace(0, 0.1, 100)
    f[42] = torch.tensor([0.0, 0.0, 1.0, 0.0])
    f = torch.nn.functional.normalize(f, dim=1)
    for agg in ("nearest", "farthest"):
        s = knn_saliency(f, 10, agg)
        assert int(s.argmax()) == 42


class _PatchBackbone(torch.nn.Module):
    """Identity-like 'backbone': three pooled copies of the input (strides 4, 8, 16)."""
    mean, std, name = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "pool"

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return [torch.nn.functional.avg_pool2d(x, s) * self.w for s in (4, 8, 16)]


def test_saliency_map_peaks_on_a_planted_patch():
    img = np.full((128, 96, 3), 120, np.uint8)
    img[64:80, 40:56] = (250, 10, 10)
    s = saliency_map(img, _PatchBackbone(), SaliencyConfig(input_size=64, neighbours=50), out_hw=(128, 96))
    assert s.shape == (128, 96)
    inside = s[66:78, 42:54].mean()
    assert inside > 5 * s[:40].mean()


def test_rescore_multiplies_by_exp_of_mean_saliency():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2] = True
    masks[1, 2:] = True
    sal = np.zeros((4, 4))
    sal[:2] = 0.5
    means = PackedMasks.from_dense(masks).means(sal)
    np.testing.assert_allclose(means, [0.5, 0.0])
    np.testing.assert_allclose(rescore(np.array([0.2, 0.4]), means, gain=3), [0.2 * np.exp(1.5), 0.4])


def test_box_cells_cover_the_touched_grid_cells():
    cells = box_cells(np.array([[0, 0, 40, 20], [50, 90, 100, 100]]), (100, 100), (10, 10))
    assert cells[0].sum() == 2 * 4 and cells[0][:2, :4].all()
    assert cells[1][9, 5:].all() and cells[1].sum() == 5


def test_multi_instance_saliency_flags_what_the_other_objects_lack():
    img = np.full((96, 160, 3), 20, np.uint8)
    boxes = np.array([[8, 24, 48, 72], [60, 24, 100, 72], [112, 24, 152, 72]], np.float32)
    for x0, y0, x1, y1 in boxes.astype(int):
        img[y0 + 4:y1 - 4, x0 + 4:x1 - 4] = (150, 150, 150)
    img[40:52, 72:84] = (250, 10, 10)  # a defect on the middle object only
    cfg = SaliencyConfig(multi_instance=True, multi_instance_size=160)
    s = multi_instance_saliency(img, _PatchBackbone(), boxes, cfg)
    assert s.shape == (96, 160)
    defect = s[42:50, 74:82].mean()
    assert defect > 0.05 and defect > 10 * s[40:52, 20:36].mean() and defect > 10 * s[40:52, 124:140].mean()
    assert s[:12].max() == 0 and s[-12:].max() == 0  # outside every object box
    with pytest.raises(ValueError, match="at least two"):
        multi_instance_saliency(img, _PatchBackbone(), boxes[:1], cfg)


# ----- code behaviour: the official code's own semantics, on hand-built cases ------------------------------------------
def test_official_top_k_is_argsort_tail_over_the_survivors():
    from saa_lib.prompts.confidence import official_top_k

    s = np.array([0.5, 0.5, 0.5, 0.2], np.float32)
    # argsort() ascending is [3, 0, 1, 2]; the last two are 1 and 2 (a stable descending cut would keep 0 and 1)
    assert official_top_k(s, 2).tolist() == [1, 2]
    assert top_k_keep(s, 2).tolist() == [True, True, False, False]
    cand = np.array([True, False, True, True])
    assert official_top_k(s, 2, cand).tolist() == [0, 2]  # ranks [0.5, 0.5, 0.2]: argsort [2, 0, 1] -> rows 0, 2
    assert official_top_k(s, 0).tolist() == [3, 0, 1, 2]  # [-0:] keeps everything, in argsort order


def test_official_areas_use_the_raw_unclipped_boxes():
    from saa_lib.generator import Detections
    from saa_lib.prompts.property import official_object_area, official_object_keep, official_property_keep

    raw = np.array([[0.95, 0.5, 0.2, 0.5], [0.5, 0.5, 0.2, 0.4]], np.float32)  # the first reaches past the right edge
    hw = (100, 200)
    clipped = np.array([[170, 25, 200, 75], [80, 30, 120, 70]], np.float32)
    det = Detections(boxes=clipped, scores=np.array([0.5, 0.5], np.float32), entry=np.zeros(2, np.int32),
                     token_conf=np.zeros((2, 1), np.float32), captions=["a."], tokens=[["a"]], image_hw=hw, cxcywh=raw)
    areas = det.official_areas()
    assert areas.dtype == np.float32
    assert areas.tolist() == [np.float32(0.2) * np.float32(0.5), np.float32(0.2) * np.float32(0.4)]
    np.testing.assert_allclose(box_areas(det.boxes, hw), [0.075, 0.08])  # what clipping would give
    np.testing.assert_allclose(det.official_pixel_boxes(), [[170, 25, 210, 75], [80, 30, 120, 70]], atol=1e-4)
    # object boxes: 0 < area < 1 / count (strict, also for one object); P^P against ratio x the largest object box
    assert official_object_keep(np.array([0.5, 1.0, 0.0], np.float32), 1).tolist() == [True, False, False]
    ref = official_object_area(np.array([0.25, 0.5], np.float32))
    assert ref == np.float32(0.5) and official_object_area(np.zeros(0, np.float32)) == 1
    assert official_property_keep(areas, ref, 0.2).tolist() == [False, True]  # 0.1 is not < 0.5 * 0.2 in float32
    assert official_property_keep(areas, ref, 0.21).tolist() == [True, True]


def test_language_filter_substring_semantics():
    phrases = ["defect on screw", "screws", "scr", "[CLS] metal _ nut [SEP]"]
    assert language_keep(phrases, ["screw"] * 4, substring=True).tolist() == [False, False, True, True]
    assert language_keep(phrases[:3], ["screw"] * 3).tolist() == [False, True, True]  # word sets keep "screws"
    assert not language_keep(["metal _ nut"], ["metal _ nut"], substring=True)[0]


def test_code_prompts_take_the_category_key_and_the_object_word_with_its_comma():
    p = category_prompts("metal_nut", "mvtec", behaviour="code")
    assert p.object_caption == "metal_nut,"
    agn = [e for e in p.entries if e.kind == "agnostic"]
    assert [e.caption for e in agn] == ["defect on metal_nut", "damage on metal_nut", "flaw on metal_nut"]
    assert {e.object_phrase for e in agn} == {"metal_nut"}
    assert category_prompts("screw", "mvtec").object_caption == "screw,"
    assert category_prompts("chewinggum", "visa").object_caption == "chewinggum"  # its sentence has no comma there
    assert category_prompts("pcb1", "visa").object_caption == "printed_circuit_board,"
    assert category_prompts("macaroni1", "visa").entries[0].caption == "defect on macaroni1"
    paper = category_prompts("screw", "mvtec", behaviour="paper")
    assert paper.object_caption == paper.object_word == "screw"


def test_official_grid_is_the_mean_of_the_400_largest_distances():
    from saa_lib.prompts.saliency import official_grid

    g = torch.Generator().manual_seed(1)
    f = torch.nn.functional.normalize(torch.randn(1, 8, 12, 10, generator=g), dim=1)
    flat = f[0].reshape(8, -1).double().numpy()
    d = 0.5 * (1 - flat.T @ flat)  # the pixel itself (distance 0) is one of the candidates
    want = -np.sort(-d, axis=1)[:, :50].mean(1).reshape(12, 10)
    got = official_grid(f, 50)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_official_features_resize_square_with_cv2_and_upsample_nearest():
    import cv2

    from saa_lib.prompts.saliency import official_features

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (50, 70, 3), np.uint8)
    f = official_features(_PatchBackbone(), img, 64)
    assert f.shape == (1, 9, 16, 16)
    x = torch.from_numpy(cv2.resize(img, (64, 64)).astype(np.float32)).permute(2, 0, 1)[None]  # mean 0, std 255
    x = x / 255.0
    maps = [torch.nn.functional.avg_pool2d(x, s) for s in (4, 8, 16)]
    want = torch.cat([maps[0], maps[1].repeat_interleave(2, 2).repeat_interleave(2, 3),
                      maps[2].repeat_interleave(4, 2).repeat_interleave(4, 3)], 1)
    torch.testing.assert_close(f, torch.nn.functional.normalize(want, dim=1), atol=1e-6, rtol=0)


def test_official_multi_instance_grid_compares_each_object_with_the_others():
    from saa_lib.prompts.saliency import official_multi_instance_grid

    f = torch.zeros(1, 2, 4, 6)
    f[0, 0] = 1.0  # every position looks alike ...
    f[0, :, 1, 1] = torch.tensor([0.0, 1.0])  # ... except one position of object 0
    masks = [np.zeros((8, 12), bool) for _ in range(3)]
    masks[0][:, :4] = True  # object 0: grid columns 0-1
    masks[1][:, 4:8] = True  # object 1: columns 2-3
    masks[2][:, 8:] = True  # object 2: columns 4-5
    grid = official_multi_instance_grid(f, masks)
    assert grid.dtype == np.float64 and grid.shape == (4, 6)
    assert grid[1, 1] == pytest.approx(0.5)  # cosine 0 to everything on the others: 0.5 * (1 - 0)
    grid[1, 1] = 0
    assert np.abs(grid).max() == 0  # alike positions match perfectly
    assert official_multi_instance_grid(f, masks[:1]) is None  # the official code fails with one object
    assert official_multi_instance_grid(f, [masks[0], np.zeros((8, 12), bool)]) is None


def test_the_official_filter_never_matches_a_category_key_written_with_an_underscore():
    """BERT's tokenizer splits ``metal_nut`` at the underscore and decodes it as ``metal _ nut``, so the official
    substring filter (filter phrase: the key as written) drops no box of the class-agnostic prompts of MVTec AD's
    metal_nut (notebook 02's side box; docs/behaviours.md)."""
    from saa_lib.models.text import bert_base_with_tiny_vocab_dir, load_tokenizer

    tokenizer = load_tokenizer(bert_base_with_tiny_vocab_dir())
    agnostic = [e for e in category_prompts("metal_nut", "mvtec", behaviour="code").entries if e.kind == "agnostic"]
    for entry in agnostic:
        phrase = tokenizer.decode(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(entry.caption)))
        assert phrase.endswith("metal _ nut") and entry.object_phrase == "metal_nut"
        assert language_keep([phrase], [entry.object_phrase], substring=True)[0]
        assert not language_keep([phrase], ["metal nut"])[0]  # the paper's word rule drops it
