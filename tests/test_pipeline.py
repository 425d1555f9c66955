"""End-to-end behaviour of the SAA / SAA+ pipeline on tiny (random-weight) models and hand-built stage outputs."""
from dataclasses import replace

import numpy as np
import torch
import pytest

from saa_lib.cache import StageCache
from saa_lib.config import ABLATION_VARIANTS, variant_config
from saa_lib.data import generate_synthetic, open_dataset
from saa_lib.generator import Detections
from saa_lib.pipeline import SAAPipeline, StageOutputs
from saa_lib.prompts.language import category_prompts
from saa_lib.prompts.saliency import instance_objects, saliency_key
from saa_lib.scoring import score


@pytest.fixture(scope="module")
def tiny():
    from saa_lib.weights.zoo import load_models

    with pytest.warns(UserWarning, match="not meaningful"):
        return load_models("tiny", seed=0)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = generate_synthetic(tmp_path_factory.mktemp("syn") / "synthetic", seed=3, n_good=1, n_defect=2)
    return open_dataset("synthetic", root)


@pytest.fixture(scope="module")
def washer(synthetic):
    s = next(s for s in synthetic.samples("washer") if s.label == 1)
    return s.load_image()


PROMPTS = category_prompts("washer", "synthetic")


def test_saa_and_saa_plus_end_to_end(tiny, washer, tmp_path):
    pipe = SAAPipeline(tiny, StageCache(tmp_path))
    saa, plus = pipe.run_variants(washer, PROMPTS, [variant_config("saa"), variant_config("saa_plus")])
    for res in (saa, plus):
        assert res.anomaly_map.shape == (400, 400) and np.isfinite(res.anomaly_map).all()
        assert res.image_score == pytest.approx(float(res.anomaly_map.max()))
    agnostic = {e.caption + "." for e in PROMPTS.entries if e.kind == "agnostic"}
    # SAA: class-agnostic prompts only, nothing removed by a hybrid prompt
    assert {r.prompt for r in saa.regions} <= agnostic
    assert not {r.removed_by for r in saa.regions} - {None, "threshold"}
    # SAA+: also the expert prompts, and at most K regions survive P^C
    assert {r.prompt for r in plus.regions} - agnostic
    kept = [r for r in plus.regions if r.removed_by is None]
    assert len(kept) <= PROMPTS.top_k
    assert all(r.mask_area >= 0 for r in plus.regions)


def test_tiny_models_are_seeded(tiny, washer):
    from saa_lib.weights.zoo import load_models

    with pytest.warns(UserWarning):
        again = load_models("tiny", seed=0)
    cfg = variant_config("saa_plus")
    a = SAAPipeline(tiny).run(washer, PROMPTS, cfg).anomaly_map
    b = SAAPipeline(again).run(washer, PROMPTS, cfg).anomaly_map
    np.testing.assert_array_equal(a, b)


def test_ablation_from_one_pass_equals_independent_runs(tiny, washer, tmp_path):
    configs = [variant_config(v) for v in ABLATION_VARIANTS] + [variant_config("saa")]
    cache = StageCache(tmp_path)
    together = SAAPipeline(tiny, cache).run_variants(washer, PROMPTS, configs)
    misses = dict(cache.misses)
    for cfg, res in zip(configs, together):
        alone = SAAPipeline(tiny, cache).run(washer, PROMPTS, cfg)
        np.testing.assert_array_equal(res.anomaly_map, alone.anomaly_map, err_msg=cfg.variant)
    # the single pass computed everything every variant needs: no detector or saliency stage ran again (a variant run
    # alone with P^P may segment fewer candidates in code behaviour: boxes P^P cannot keep are not segmented)
    assert {k: cache.misses[k] for k in ("generator", "saliency")} == {k: misses[k] for k in ("generator", "saliency")}
    paper = [c.with_(behaviour="paper") for c in configs]
    misses = dict(cache.misses)
    SAAPipeline(tiny, cache).run_variants(washer, category_prompts("washer", "synthetic", behaviour="paper"), paper)
    misses = dict(cache.misses)
    for cfg in paper:
        SAAPipeline(tiny, cache).run(washer, category_prompts("washer", "synthetic", behaviour="paper"), cfg)
    assert cache.misses == misses  # paper behaviour: every stage of every variant came from the single pass


def test_batched_captions_reproduce_one_forward_per_caption(tiny, washer):
    from saa_lib.generator import Generator

    gen = Generator(tiny.gdino, tiny.gdino_min_size, tiny.gdino_max_size)
    caps = ["defect on washer", "flaw on washer", "scratch. hole. stain. missing part."]
    batched = gen.detect(washer, caps)
    for e, c in enumerate(caps):
        one, part = gen.detect(washer, [c]), batched.only(e)
        assert len(one) == len(part)
        np.testing.assert_allclose(one.scores, part.scores, atol=1e-4)
        np.testing.assert_allclose(one.boxes, part.boxes, atol=1e-2)


def test_batched_captions_run_the_image_backbone_once(tiny, washer):
    from saa_lib.generator import Generator

    gen = Generator(tiny.gdino, tiny.gdino_min_size, tiny.gdino_max_size)
    keys = list(tiny.gdino.state_dict())
    calls = []
    hook = tiny.gdino.backbone[0].register_forward_hook(lambda mod, inp, out: calls.append(inp[0].tensors.shape[0]))
    try:
        gen.detect(washer, ["defect on washer", "flaw on washer", "scratch. hole.", "defect."])  # 3 caption groups
        gen.detect(washer[::-1].copy(), ["defect on washer"])
    finally:
        hook.remove()
    assert calls == [1, 1]  # one Swin pass per image, whatever the number of captions and caption groups
    assert "forward" not in tiny.gdino.backbone.__dict__ and list(tiny.gdino.state_dict()) == keys


def test_stage_cache_reruns_only_what_changed(tiny, washer, tmp_path):
    cache = StageCache(tmp_path)
    pipe = SAAPipeline(tiny, cache)
    cfg = variant_config("saa_plus")
    first = pipe.run(washer, PROMPTS, cfg)
    misses = dict(cache.misses)
    again = SAAPipeline(tiny, cache).run(washer, PROMPTS, cfg)
    np.testing.assert_array_equal(first.anomaly_map, again.anomaly_map)
    assert cache.misses == misses  # nothing recomputed
    # a changed threshold, K or a prompt switched off touches no expensive stage
    for change in (dict(box_threshold=0.3), dict(top_k=1), dict(use_saliency=False), dict(text_threshold=0.5)):
        SAAPipeline(tiny, cache).run(washer, PROMPTS, cfg.with_(**change))
        assert cache.misses == misses, change
    # a different saliency setting re-runs the saliency stage only
    SAAPipeline(tiny, cache).run(washer, PROMPTS, cfg.with_(saliency={"neighbours": 50}))
    assert cache.misses["saliency"] == misses["saliency"] + 1
    assert cache.misses["generator"] == misses["generator"] and cache.misses["refiner"] == misses["refiner"]


def test_corrupt_cache_entry_is_recomputed(tiny, washer, tmp_path):
    cache = StageCache(tmp_path)
    cfg = variant_config("saa_plus")
    ref = SAAPipeline(tiny, cache).run(washer, PROMPTS, cfg).anomaly_map
    for f in tmp_path.rglob("*.npz"):
        f.write_bytes(b"not a zip")
    out = SAAPipeline(tiny, cache).run(washer, PROMPTS, cfg).anomaly_map
    np.testing.assert_array_equal(ref, out)


def test_no_box_gives_an_all_zero_map(tiny, washer):
    res = SAAPipeline(tiny).run(washer, PROMPTS, variant_config("saa_plus", box_threshold=1.0))
    assert not res.anomaly_map.any() and res.image_score == 0.0


def test_tiny_image_is_refused(tiny):
    with pytest.raises(ValueError, match="at least 32"):
        SAAPipeline(tiny).run(np.zeros((20, 64, 3), np.uint8), PROMPTS, variant_config("saa"))


# ----- scoring on hand-built stage outputs (no model) ------------------------------------------------------------------
def _stages(behaviour="code"):
    """Three candidates on a 400x400 grid: a small spot on the object, a box covering the whole object, one off it."""
    r = 400
    hw = (400, 400)
    boxes = np.array([[100, 100, 120, 120], [50, 50, 350, 350], [360, 0, 399, 30]], np.float32)
    masks = np.zeros((3, r, r), bool)
    for m, (x0, y0, x1, y1) in zip(masks, boxes.astype(int)):
        m[y0:y1, x0:x1] = True
    prompts = category_prompts("washer", "synthetic", behaviour=behaviour)
    tokens = [["[CLS]", "scratch", ".", "[SEP]"]]
    conf = np.array([[0, 0.5, 0, 0], [0, 0.6, 0, 0], [0, 0.4, 0, 0]], np.float32)
    det = Detections(boxes=boxes, scores=conf.max(1), entry=np.zeros(3, np.int32), token_conf=conf,
                     captions=["scratch."], tokens=tokens, image_hw=hw)
    obj_box = np.array([[50, 50, 350, 350]], np.float32)
    obj = Detections(boxes=obj_box, scores=np.array([0.9], np.float32), entry=np.zeros(1, np.int32),
                     token_conf=np.array([[0, 0.9, 0, 0]], np.float32), captions=["washer."],
                     tokens=[["[CLS]", "washer", ".", "[SEP]"]], image_hw=hw)
    obj_mask = np.zeros((1, r, r), bool)
    obj_mask[0, 50:350, 50:350] = True
    sal = np.zeros((r, r), np.float32)
    sal[100:120, 100:120] = 0.5
    expert = next(i for i, e in enumerate(prompts.entries) if e.kind == "expert")
    st = StageOutputs(image_hw=hw, entry_ids=(expert,), detections=det, masks=masks, object_detections=obj,
                      object_masks=obj_mask)
    return prompts, _with_map(st, prompts, sal)


def _with_map(st, prompts, sal, behaviours=("code", "paper")):
    """``st`` holding the hand-made map ``sal`` for the saliency settings of every variant these tests score."""
    for b in behaviours:
        for v in ("saa_plus", "saliency_only"):
            st = st.with_saliency(saliency_key(st, prompts, variant_config(v, b)), sal)
    return st


@pytest.mark.parametrize("behaviour", ["code", "paper"])
def test_property_prompt_removes_whole_object_and_off_object_regions(behaviour):
    prompts, st = _stages(behaviour)
    cfg = variant_config("saa_plus", behaviour, max_area_ratio=0.5, min_iou=1e-3)
    fates = [r.removed_by for r in score(st, prompts, cfg).regions]
    assert fates[0] is None and fates[1] == "property"
    # the off-object box is small enough for the code's box filter, but the paper's IoU test removes it
    assert fates[2] == (None if behaviour == "code" else "property")


def test_code_and_paper_behaviour_differ_as_documented():
    prompts, st = _stages()
    code = score(st, prompts, variant_config("saa_plus", "code", max_area_ratio=0.5))
    paper = score(st, prompts, variant_config("saa_plus", "paper", max_area_ratio=0.5))
    # rescoring exp(3 s) vs exp(s); fusion / (1 + sum) vs / sum
    assert code.regions[0].score == pytest.approx(0.5 * np.exp(3 * 0.5))
    assert paper.regions[0].score == pytest.approx(0.5 * np.exp(0.5))
    assert code.anomaly_map[110, 110] == pytest.approx(0.5 * np.exp(1.5) / 2, rel=1e-5)
    assert paper.anomaly_map[110, 110] == pytest.approx(0.5 * np.exp(0.5), rel=1e-5)


def test_confidence_prompt_keeps_the_top_k():
    prompts, st = _stages()
    res = score(st, prompts, variant_config("saa_plus-no_property", top_k=1))
    assert [r.removed_by for r in res.regions] == [None, "confidence", "confidence"]


def test_language_prompt_drops_boxes_named_after_the_object():
    prompts, st = _stages()
    st.detections.token_conf[1] = [0, 0, 0, 0]
    st.detections.tokens[0] = ["[CLS]", "washer", ".", "[SEP]"]
    res = score(st, prompts, variant_config("saa_plus-no_property"))
    assert all(r.removed_by == "language" for r in res.regions if r.confidence > 0.1 and r.phrase == "washer")


def test_saliency_only_returns_the_saliency_map():
    prompts, st = _stages()
    cfg = variant_config("saliency_only")
    res = score(st, prompts, cfg)
    np.testing.assert_array_equal(res.anomaly_map, st.saliency_for(saliency_key(st, prompts, cfg)))


@pytest.mark.parametrize("behaviour", ["code", "paper"])
def test_packed_and_dense_masks_score_the_same(behaviour):
    from saa_lib.masks import PackedMasks

    prompts, dense = _stages(behaviour)
    packed = replace(dense, masks=PackedMasks.from_dense(np.asarray(dense.masks)))
    cfg = variant_config("saa_plus", behaviour, max_area_ratio=0.5)
    a, b = score(dense, prompts, cfg), score(packed, prompts, cfg)
    np.testing.assert_array_equal(a.anomaly_map, b.anomaly_map)
    assert a.regions == b.regions


def test_region_saliency_follows_the_saliency_map():
    prompts, st = _stages()
    key = saliency_key(st, prompts, variant_config("saa_plus"))
    first = st.region_saliency(key).copy()
    assert first[0] == pytest.approx(0.5) and first[2] == 0
    st = st.with_saliency(key, np.full_like(st.saliency_for(key), 0.25))  # a new map: the old means must not be served
    np.testing.assert_allclose(st.region_saliency(key), [0.25, 0.25, 0.25])
    with pytest.raises(ValueError, match="no P\\^S map"):  # and a map computed for other settings is never used
        score(st, prompts, variant_config("saa_plus").with_(saliency={"neighbours": 7}))


def test_rescoring_from_the_cache_matches_a_fresh_run(tiny, washer, tmp_path):
    cfg = variant_config("saa_plus", "paper")
    changed = cfg.with_(box_threshold=cfg.box_threshold + 0.05, top_k=3)
    cached = SAAPipeline(tiny, StageCache(tmp_path))
    cached.run(washer, PROMPTS, cfg)
    again = cached.run(washer, PROMPTS, changed)
    assert cached.cache.hits.get("region_saliency", 0) > 0
    fresh = SAAPipeline(tiny).run(washer, PROMPTS, changed)
    np.testing.assert_array_equal(again.anomaly_map, fresh.anomaly_map)
    assert again.regions == fresh.regions


def test_multi_instance_saliency_only_for_several_found_objects():
    prompts = category_prompts("candle", "visa")  # 4 candles per image
    assert prompts.count == 4
    hw = (400, 400)
    boxes = np.array([[10, 10, 150, 150], [200, 10, 340, 150], [10, 200, 399, 399]], np.float32)
    obj = Detections(boxes=boxes, scores=np.array([0.9, 0.8, 0.9], np.float32), entry=np.zeros(3, np.int32),
                     token_conf=np.zeros((3, 4), np.float32), captions=["candle."],
                     tokens=[["[CLS]", "candle", ".", "[SEP]"]], image_hw=hw)
    st = StageOutputs(image_hw=hw, entry_ids=(), detections=Detections.empty([], [], hw),
                      masks=np.zeros((0, 400, 400), bool), object_detections=obj)
    code = variant_config("saa_plus", "code")
    got = instance_objects(st, prompts, code).boxes
    np.testing.assert_array_equal(got, boxes[:2])  # the third box is larger than 1/4 of the image
    assert instance_objects(st, prompts, variant_config("saa_plus", "paper")) is None
    assert instance_objects(st, prompts, code.with_(box_threshold=0.85)) is None  # one box left
    assert instance_objects(st, category_prompts("washer", "synthetic"), code) is None


@pytest.mark.parametrize("behaviour", ["code", "paper"])
def test_an_image_without_candidates_scores_an_empty_map(behaviour):
    prompts, st = _stages(behaviour)
    hw = st.image_hw
    st = replace(st, detections=Detections.empty(st.detections.captions, st.detections.tokens, hw),
                 masks=np.zeros((0, 400, 400), bool), saliency_maps={})
    st = _with_map(st, prompts, np.zeros((400, 400), np.float32))
    res = score(st, prompts, variant_config("saa_plus", behaviour))
    assert res.regions == [] and res.image_score == 0.0 and not res.anomaly_map.any()


# ----- code behaviour: the official code's steps ------------------------------------------------------------------------
def _official_stages(scale=2):
    """The hand-built case at ``scale`` x the resolution, as code-behaviour stages (masks at the image's size)."""
    prompts, st = _stages("code")
    r = 400 * scale
    hw = (r, r)
    det, obj = st.detections, st.object_detections
    det = replace(det, boxes=det.boxes * scale, image_hw=hw)
    obj = replace(obj, boxes=obj.boxes * scale, image_hw=hw)
    masks = np.asarray(st.masks).repeat(scale, 1).repeat(scale, 2)
    sal = st.saliency_for(saliency_key(st, prompts, variant_config("saa_plus", "code")))
    sal = sal.repeat(scale, 0).repeat(scale, 1)
    official = StageOutputs(image_hw=hw, entry_ids=st.entry_ids, detections=det, masks=masks, object_detections=obj,
                            official=True)
    return prompts, _with_map(official, prompts, sal, behaviours=("code",))


def test_official_scoring_fuses_at_full_resolution_then_resizes_with_cv2():
    import cv2

    prompts, st = _official_stages()
    pipe = SAAPipeline.__new__(SAAPipeline)
    pipe.generator = None
    res = pipe.score(st, prompts, variant_config("saa_plus", "code", max_area_ratio=0.5))
    assert [r.removed_by for r in res.regions] == [None, "property", None]
    s0 = float(np.float32(0.5)) * np.exp(3.0 * np.float32(0.5))  # numpy scalar types, as the official code
    assert isinstance(s0, np.float32) and res.regions[0].score == float(s0)
    full = np.zeros((800, 800))
    full[200:240, 200:240] = float(s0) / 2  # weights start at 1
    full[0:60, 720:798] = 0.4 / 2
    np.testing.assert_allclose(res.anomaly_map, cv2.resize(full, (400, 400)), atol=1e-7)


def test_official_top_k_ties_keep_the_argsort_tail():
    prompts, st = _official_stages(1)
    st = replace(st, detections=replace(st.detections, scores=np.full_like(st.detections.scores, 0.5)))
    st = st.with_saliency(next(iter(st.saliency_maps)), np.zeros_like(st.saliency))
    pipe = SAAPipeline.__new__(SAAPipeline)
    pipe.generator = None
    res = pipe.score(st, prompts, variant_config("saa_plus-no_property", "code", top_k=2))
    # argsort of three equal scores is [0, 1, 2]: the tail keeps 1 and 2 (a stable descending cut keeps 0 and 1)
    assert [r.removed_by for r in res.regions] == ["confidence", None, None]


def test_official_gdino_input_uses_the_transforms_integer_sizes():
    from saa_lib.generator import official_gdino_input, resize_for_gdino

    img = np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8)
    x = official_gdino_input(img)
    assert x.shape == (3, 800, 1066)  # int(800 * 400 / 300) = 1066; rounding would give 1067
    assert resize_for_gdino(img).shape == (3, 800, 1067)
    import groundingdino.datasets.transforms as T
    from PIL import Image

    ref = T.Compose([T.RandomResize([800], max_size=1333), T.ToTensor(),
                     T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])(Image.fromarray(img), None)[0]
    assert torch.equal(x, ref)


def test_code_behaviour_gives_sam_and_the_saliency_backbone_the_bgr_image(tiny, washer, monkeypatch):
    import saa_lib.pipeline as pl

    seen = {"sam": [], "saliency": []}
    pipe = SAAPipeline(tiny)
    real_set, real_feats = pipe.refiner.predictor.set_image, pl.official_features
    monkeypatch.setattr(pipe.refiner.predictor, "set_image", lambda im, *a, **k: (seen["sam"].append(im.copy()),
                                                                                   real_set(im, *a, **k))[1])
    monkeypatch.setattr(pl, "official_features", lambda bb, im, *a: (seen["saliency"].append(im.copy()),
                                                                     real_feats(bb, im, *a))[1])
    st = pipe.stages(washer, PROMPTS, variant_config("saa_plus", "code"))
    bgr = washer[..., ::-1]
    assert seen["sam"] and all(np.array_equal(im, bgr) for im in seen["sam"])
    assert seen["saliency"] and all(np.array_equal(im, bgr) for im in seen["saliency"])
    assert st.official and st.masks.shape[1:] == washer.shape[:2] and st.saliency.shape == washer.shape[:2]
    seen["sam"].clear()
    pipe.refiner.forget_image()
    pipe.stages(washer, PROMPTS, variant_config("saa_plus", "paper"))
    assert seen["sam"] and all(np.array_equal(im, washer) for im in seen["sam"])


def test_packed_chunked_decoding_equals_one_call(tiny, washer):
    from saa_lib.refiner import Refiner

    ref = Refiner(tiny.sam)
    boxes = np.array([[10, 10, 60, 60], [-5, 20, 90, 70], [30, 0, 127, 127]], np.float32)
    one = ref.segment(washer, boxes)
    packed = ref.segment_packed(washer, boxes, budget=washer.shape[0] * washer.shape[1] * 8)  # one box a chunk
    np.testing.assert_array_equal(packed[:], one)


def test_code_stages_segment_only_what_the_property_prompt_can_keep(tiny, washer):
    pipe = SAAPipeline(tiny)
    cfg = variant_config("saa_plus")
    pruned = pipe.stages(washer, PROMPTS, cfg, prune=True)
    full = pipe.stages(washer, PROMPTS, cfg, prune=True, also_for=[variant_config("saa_plus-no_property")])
    assert pipe.stages(washer, PROMPTS, cfg).area_limit is None  # stages serve any variant unless asked to prune
    assert pruned.area_limit is not None and full.area_limit is None
    assert (pruned.detections.official_areas() < pruned.area_limit).all()
    assert len(pruned.detections) <= len(full.detections)
    a, b = pipe.score(pruned, PROMPTS, cfg), pipe.score(full, PROMPTS, cfg)
    np.testing.assert_array_equal(a.anomaly_map, b.anomaly_map)
    assert [r for r in a.regions if r.removed_by is None] == [r for r in b.regions if r.removed_by is None]
    with pytest.raises(ValueError, match="dropped before SAM"):
        pipe.score(pruned, PROMPTS, variant_config("saa_plus-no_property"))


def test_the_image_is_hashed_once_per_image(tiny, washer, monkeypatch):
    """Every cache key of an image's stages derives from one digest (StageKeys): run_variants hashes the pixels once,
    for code and paper stages alike, and SAM never re-hashes them."""
    import saa_lib.pipeline as pl
    import saa_lib.refiner as rf

    calls = []
    real = pl.image_digest
    monkeypatch.setattr(pl, "image_digest", lambda im: calls.append("pipeline") or real(im))
    monkeypatch.setattr(rf, "image_digest", lambda im: calls.append("refiner") or real(im))
    SAAPipeline(tiny).run_variants(washer, PROMPTS, [variant_config("saa_plus", "code"),
                                                     variant_config("saa_plus", "paper")])
    assert calls == ["pipeline"]


def test_stages_are_scored_only_with_the_prompts_they_were_computed_for():
    from saa_lib.prompts.language import prompts_identity

    prompts, st = _stages("code")
    st = replace(st, prompts=prompts_identity(prompts))
    cfg = variant_config("saa_plus", "code", max_area_ratio=0.5)
    assert [r.removed_by for r in score(st, prompts, cfg).regions][:2] == [None, "property"]
    for other in (category_prompts("washer", "synthetic", extra=("dent",)), category_prompts("screw", "mvtec")):
        with pytest.raises(ValueError, match="other prompts"):
            score(st, other, cfg)
