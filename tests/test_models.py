"""Model builders and checkpoint loaders of saa_lib.weights.zoo / saa_lib.models, on files written in the official formats."""
from __future__ import annotations

import inspect
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from saa_lib.weights import download as dl
from saa_lib.weights import zoo
from saa_lib.weights.download import MissingFileError
from saa_lib.models import gdino as G
from saa_lib.models import sam as S
from saa_lib.models import backbone as SAL
from saa_lib.models import text as T
from saa_lib.models.common import file_fingerprint

from conftest import SAMPLES, SAMPLES_MISSING  # noqa: E402  ($SAA_SAMPLES, else ../shared/data/samples)


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    """An empty cache for the whole module."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("saa")
        mp.setenv("SAA_HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def text_dir(home):
    return T.tiny_text_encoder_dir()


@pytest.fixture(scope="module")
def gdino0(text_dir):
    """The tiny GroundingDINO, seed 0, built once."""
    return G.build_gdino(text_dir, tiny=True, seed=0)


@pytest.fixture(scope="module")
def image():
    """(1, 3, 224, 288) float, fixed."""
    return torch.randn(1, 3, 224, 288, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def gdino_scratch(text_dir):
    """A tiny detector that tests load (partial or broken) files into."""
    return G.build_gdino(text_dir, tiny=True, seed=9)


def _gdino_out(model, image, caption="defect on screw."):
    with torch.no_grad():
        return model(image, captions=[caption])


@pytest.fixture(scope="module")
def gdino0_out(gdino0, image):
    return _gdino_out(gdino0, image)


@pytest.fixture(scope="module")
def gdino_file(gdino0, tmp_path_factory):
    """The tiny seed-0 detector saved as the official release does: {"model": state_dict}, DataParallel prefixes."""
    path = tmp_path_factory.mktemp("gdino") / "groundingdino_tiny.pth"
    torch.save({"model": {"module." + k: v for k, v in gdino0.state_dict().items()}}, path)
    return path


# ---------------------------------------------------------------- text encoder
def test_tiny_vocab_tokenises_any_lowercase_word(text_dir):
    tok = T.load_tokenizer(text_dir)
    assert tok.tokenize("defect on screw.") == ["defect", "on", "s", "##c", "##r", "##e", "##w", "."]
    assert tok.tokenize("Black HOLE") == ["black", "hole"]  # lower-cased, whole words of the vocabulary
    for word in ("zipper", "macaroni", "pcb4", "x"):
        pieces = tok.tokenize(word)
        assert "[UNK]" not in pieces
        assert "".join(p.removeprefix("##") for p in pieces) == word
    ids = tok.convert_tokens_to_ids(["[CLS]", "[SEP]", ".", "?"])
    assert tok.unk_token_id not in ids


# ---------------------------------------------------------------- GroundingDINO
def test_tiny_gdino_forward_shapes(gdino0, gdino0_out):
    assert not gdino0.training and hasattr(gdino0, "tokenizer")
    logits, boxes = gdino0_out["pred_logits"], gdino0_out["pred_boxes"]
    assert logits.shape == (1, G.TINY_GDINO["num_queries"], 256)
    assert boxes.shape == (1, G.TINY_GDINO["num_queries"], 4)
    assert boxes.min() >= 0 and boxes.max() <= 1
    n_tokens = len(gdino0.tokenizer("defect on screw.")["input_ids"])
    assert n_tokens == 10  # [CLS] defect on s ##c ##r ##e ##w . [SEP]
    assert torch.isfinite(logits[0, :, :n_tokens]).all()
    assert torch.isneginf(logits[0, :, n_tokens:]).all()  # positions past the caption are masked out


def test_tiny_gdino_is_seeded(text_dir, gdino0, gdino0_out, image):
    again = G.build_gdino(text_dir, tiny=True, seed=0)
    a, b = gdino0.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(_gdino_out(again, image)["pred_logits"], gdino0_out["pred_logits"])
    other = G.build_gdino(text_dir, tiny=True, seed=1)
    assert not torch.equal(other.state_dict()["transformer.tgt_embed.weight"], a["transformer.tgt_embed.weight"])


def test_gdino_official_format_round_trip(text_dir, gdino_file, gdino0_out, image):
    model, report = G.load_gdino(gdino_file, text_dir, tiny=True, seed=3)
    assert report.missing == () and report.unexpected == () and report.n_loaded == report.n_model_keys
    out = _gdino_out(model, image)
    assert torch.equal(out["pred_logits"], gdino0_out["pred_logits"])
    assert torch.equal(out["pred_boxes"], gdino0_out["pred_boxes"])


def test_gdino_missing_keys_reported(gdino0, gdino_scratch, tmp_path):
    state = gdino0.state_dict()
    dropped = ["feat_map.bias", "transformer.tgt_embed.weight", "bert.pooler.dense.bias"]
    kept = {k: v for k, v in state.items() if k not in dropped}
    kept["head.extra.weight"] = torch.zeros(1)
    kept["bert.embeddings.position_ids"] = torch.arange(512)[None]  # older checkpoints: benign
    path = tmp_path / "gaps.pth"
    torch.save({"model": kept}, path)
    model = gdino_scratch
    with pytest.warns(UserWarning, match="gaps"):
        report = G.load_gdino_checkpoint(model, path)
    assert sorted(report.missing) == sorted(dropped) and report.unexpected == ("head.extra.weight",)
    assert "feat_map.bias" in str(report) and str(path) in str(report)

    half = dict(list(state.items())[: len(state) // 2])
    torch.save({"model": half}, path)
    with pytest.raises(ValueError, match="gaps.pth"):
        G.load_gdino_checkpoint(model, path)


def test_gdino_wrong_files_refused(gdino0, gdino_scratch, tmp_path):
    model = gdino_scratch
    bad = tmp_path / "bad.pth"
    torch.save({"epoch": 3, "optimizer": "x"}, bad)
    with pytest.raises(ValueError, match="not a GroundingDINO checkpoint"):
        G.load_gdino_checkpoint(model, bad)
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="bad.pth.*not a PyTorch checkpoint"):
        G.load_gdino_checkpoint(model, bad)
    torch.save(gdino0.state_dict(), bad)  # truncated download
    bad.write_bytes(bad.read_bytes()[: 1 << 20])
    with pytest.raises(ValueError, match="bad.pth"):
        G.load_gdino_checkpoint(model, bad)
    state = dict(gdino0.state_dict())
    state["feat_map.weight"] = torch.zeros(256, 7)
    torch.save({"model": state}, bad)
    with pytest.raises(ValueError, match="does not fit"):
        G.load_gdino_checkpoint(model, bad)


def test_gdino_config_is_the_packaged_one():
    path = G.gdino_config_path()
    assert path.name == "GroundingDINO_SwinT_OGC.py" and path.parent.parent.name == "groundingdino"
    assert 'text_encoder_type = "bert-base-uncased"' in path.read_text()


# ---------------------------------------------------------------- SAM
def _sam_out(sam, img):
    from segment_anything import SamPredictor

    pred = SamPredictor(sam)
    pred.set_image(img)
    masks, scores, logits = pred.predict(box=np.array([20, 30, 150, 170]), multimask_output=False)
    return pred.features, logits


@pytest.fixture(scope="module")
def rgb():
    """(180, 240, 3) uint8, fixed."""
    return np.random.default_rng(0).integers(0, 256, (180, 240, 3), dtype=np.uint8)


def test_tiny_sam_predictor_masks_have_image_size(rgb):
    from segment_anything import SamPredictor

    sam = S.build_sam("tiny", seed=0)
    pred = SamPredictor(sam)
    pred.set_image(rgb)
    assert pred.features.shape == (1, 32, 16, 16)
    masks, scores, _ = pred.predict(box=np.array([20, 30, 150, 170]), multimask_output=False)
    assert masks.shape == (1, 180, 240) and masks.dtype == bool and scores.shape == (1,)
    boxes = pred.transform.apply_boxes_torch(torch.tensor([[0, 0, 100, 100], [50, 60, 200, 170.0]]), rgb.shape[:2])
    masks, _, _ = pred.predict_torch(None, None, boxes=boxes, multimask_output=False)
    assert masks.shape == (2, 1, 180, 240)


def test_tiny_sam_seeded_and_official_format_round_trip(rgb, tmp_path):
    a, b = S.build_sam("tiny", seed=0), S.build_sam("tiny", seed=0)
    feats_a, logits_a = _sam_out(a, rgb)
    feats_b, logits_b = _sam_out(b, rgb)
    assert torch.equal(feats_a, feats_b) and np.array_equal(logits_a, logits_b)

    path = tmp_path / "sam_tiny.pth"
    torch.save(a.state_dict(), path)  # the format of the segment-anything release
    c = S.build_sam("tiny", seed=5)
    assert not torch.equal(_sam_out(c, rgb)[0], feats_a)
    S.load_sam_checkpoint(c, path)
    feats_c, logits_c = _sam_out(c, rgb)
    assert torch.equal(feats_c, feats_a) and np.array_equal(logits_c, logits_a)


def test_sam_wrong_variant_and_wrong_file(tmp_path):
    sam = S.build_sam("tiny", seed=0)
    state = sam.state_dict()
    state["image_encoder.patch_embed.proj.weight"] = torch.zeros(768, 3, 16, 16)
    path = tmp_path / "sam_b_like.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="sam_variant='vit_b'"):
        S.load_sam_checkpoint(sam, path)
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a SAM checkpoint"):
        S.load_sam_checkpoint(sam, path)
    with pytest.raises(ValueError, match="vit_q"):
        S.build_sam("vit_q")


# ---------------------------------------------------------------- saliency backbones
def test_torchvision_wide_resnet_keys_map_onto_timm():
    """The full key lists, without memory: meta tensors of both libraries' wide_resnet50_2."""
    import timm
    import torchvision

    with torch.device("meta"):
        tv = torchvision.models.wide_resnet50_2().state_dict()
        body = timm.create_model("wide_resnet50_2", features_only=True, out_indices=(1, 2, 3))
    target = body.state_dict()
    mapped = SAL.torchvision_resnet_to_timm(tv, target.keys())
    assert list(mapped) == list(target)
    assert all(mapped[k].shape == target[k].shape for k in target)
    dropped = set(tv) - set(mapped)
    assert dropped and {k.split(".")[0] for k in dropped} == {"fc", "layer4"}
    no_counters = {k: v for k, v in tv.items() if not k.endswith("num_batches_tracked")}
    assert set(SAL.torchvision_resnet_to_timm(no_counters, target.keys())) == set(target)
    with pytest.raises(ValueError, match="layer1.0.conv1.weight"):
        SAL.torchvision_resnet_to_timm({k: v for k, v in tv.items() if k != "layer1.0.conv1.weight"}, target)


@pytest.fixture(scope="module")
def wrn_file(tmp_path_factory):
    """A 1-block-per-stage wide ResNet saved by torchvision in float16 (as wide_resnet50_2-95faca4d.pth is), with
    DataParallel prefixes; returns (path, the torchvision model with the same rounded weights)."""
    from torchvision.models.resnet import Bottleneck, ResNet

    with torch.random.fork_rng():
        torch.manual_seed(0)
        tv = ResNet(Bottleneck, [1, 1, 1, 1], width_per_group=128).eval()
        with torch.no_grad():  # non-trivial BN statistics
            for m in tv.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("wrn") / "wrn_small.pth"
    torch.save({"module." + k: v.half() if v.is_floating_point() else v for k, v in tv.state_dict().items()}, path)
    return path, tv.half().float()


def _small_wrn_body():
    import timm

    return timm.create_model("wide_resnet50_2", features_only=True, out_indices=(1, 2, 3), layers=[1, 1, 1, 1])


def _tv_features(tv, x):
    with torch.no_grad():
        h = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        l1 = tv.layer1(h)
        l2 = tv.layer2(l1)
        return [l1, l2, tv.layer3(l2)]


def test_torchvision_format_file_agrees_with_torchvision(wrn_file):
    """The torchvision-format file loads into timm's extractor and gives torchvision's layer1..layer3 outputs."""
    path, tv = wrn_file
    body = SAL.load_torchvision_resnet(_small_wrn_body().eval(), path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = body(x)
    for mine, ref in zip(feats, _tv_features(tv, x)):
        torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-4)


def test_tiny_saliency_backbone_seeded():
    with pytest.warns(UserWarning, match="not meaningful"):
        a = zoo.load_saliency_backbone("wide_resnet50_2", kind="tiny", seed=0)
    b = zoo.load_saliency_backbone("wide_resnet50_2", kind="tiny", seed=0, warn=False)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        fa, fb = a(x), b(x)
    assert [f.shape[-1] for f in fa] == [64, 32, 16] and a.strides == (4, 8, 16)
    assert all(torch.equal(u, v) for u, v in zip(fa, fb))
    assert not a.meaningful and a.mean == SAL.IMAGENET_MEAN and a.input_size == 256
    with pytest.raises(ValueError, match="kind='paths'"):
        zoo.load_saliency_backbone("wide_resnet50_2", kind="paths")


def test_efficientnet_lite0_every_tensor_mapped():
    import timm

    state = torch.load(SAL.efficientnet_lite0_package_file(), map_location="cpu", weights_only=True)
    classifier = timm.create_model("tf_efficientnet_lite0")
    mapped = SAL.efficientnet_lite0_to_timm(state, classifier.state_dict())
    assert len(mapped) == len(state) == len(classifier.state_dict())
    assert list(mapped.values())[0] is list(state.values())[0]
    pairs = dict(zip(state, mapped))
    assert pairs["_conv_stem.weight"] == "conv_stem.weight" and pairs["_fc.weight"] == "classifier.weight"
    assert pairs["_blocks.0._depthwise_conv.weight"] == "blocks.0.0.conv_dw.weight"
    assert pairs["_blocks.15._project_conv.weight"] == "blocks.6.0.conv_pwl.weight"
    classifier.load_state_dict(mapped, strict=True)
    # trained statistics, not initial values
    assert not torch.allclose(classifier.bn1.running_var, torch.ones_like(classifier.bn1.running_var))
    assert classifier.classifier.weight.shape == (1000, 1280)
    backbone = zoo.load_saliency_backbone("tf_efficientnet_lite0", kind="tiny")
    assert backbone.meaningful and backbone.mean == backbone.std == (0.5, 0.5, 0.5)
    assert backbone.channels == (24, 40, 112) and backbone.strides == (4, 8, 16)
    body = backbone.body.state_dict()
    assert all(torch.equal(body[k], mapped[k]) for k in body)


def _saliency_auroc(backbone, image_path, mask_path) -> float:
    """Pixel AUROC of a plain self-similarity saliency (mean of the 400 largest cosine distances per pixel)."""
    import torch.nn.functional as F
    from PIL import Image
    from sklearn.metrics import roc_auc_score

    size = backbone.input_size
    img = Image.open(image_path).convert("RGB").resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255
    x = (x - torch.tensor(backbone.mean)[:, None, None]) / torch.tensor(backbone.std)[:, None, None]
    with torch.no_grad():
        feats = backbone(x[None])
    grid = feats[0].shape[-2:]
    f = torch.cat([F.interpolate(t, size=grid, mode="bilinear", align_corners=False) for t in feats], 1)[0]
    f = F.normalize(f.flatten(1).T, dim=1)
    score = (0.5 * (1 - f @ f.T)).topk(400, dim=1).values.mean(1).reshape(1, 1, *grid)
    mask = np.array(Image.open(mask_path)) > 127
    score = F.interpolate(score, size=mask.shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    return roc_auc_score(mask.ravel(), score.ravel())


@pytest.mark.skipif(not SAMPLES.exists(), reason=SAMPLES_MISSING)
def test_efficientnet_lite0_features_find_real_anomalies():
    """Real ImageNet features make a leather cut and poke stand out; the same network at random init does not."""
    real = zoo.load_saliency_backbone("tf_efficientnet_lite0")
    import timm

    with torch.random.fork_rng():
        torch.manual_seed(0)
        rand_body = timm.create_model("tf_efficientnet_lite0", features_only=True, out_indices=(1, 2, 3)).eval()
    rand = SAL.SaliencyBackbone(rand_body, "random", real.mean, real.std, False, "random")
    leather = SAMPLES / "mvtec_ad" / "leather"
    for defect in ("cut", "poke"):
        img, mask = leather / "test" / defect / "000.png", leather / "ground_truth" / defect / "000_mask.png"
        auc_real, auc_rand = _saliency_auroc(real, img, mask), _saliency_auroc(rand, img, mask)
        assert auc_real > 0.95, (defect, auc_real)
        assert auc_real > auc_rand + 0.1, (defect, auc_real, auc_rand)


# ---------------------------------------------------------------- load_models
def test_load_models_tiny(rgb):
    t0 = time.monotonic()
    with pytest.warns(UserWarning, match="not meaningful"):
        models = zoo.load_models("tiny", saliency_backbone="tf_efficientnet_lite0")
    build_s = time.monotonic() - t0
    assert build_s < 30
    assert models.kind == "tiny" and not models.meaningful and "NOT meaningful" in models.describe()
    assert models.saliency.meaningful and models.parts_meaningful == {"gdino": False, "sam": False, "saliency": True}
    assert models.gdino_min_size < models.gdino_max_size <= 512 and models.device == torch.device("cpu")
    assert not models.gdino.training and not models.sam.training and not models.saliency.training
    assert models.sam.image_encoder.img_size == 256 and hasattr(models.gdino, "tokenizer")
    with pytest.warns(UserWarning):
        again = zoo.load_models("tiny", saliency_backbone="tf_efficientnet_lite0")
        other = zoo.load_models("tiny", saliency_backbone="tf_efficientnet_lite0", seed=1)
    assert again.identity == models.identity != other.identity
    assert "seed=0" in models.identity and "tf_efficientnet_lite0" in models.identity
    assert torch.equal(_sam_out(again.sam, rgb)[0], _sam_out(models.sam, rgb)[0])


def test_load_models_official_offline_names_every_file(monkeypatch):
    monkeypatch.setattr(dl, "reachable", lambda url, timeout=None: False)
    t0 = time.monotonic()
    with pytest.raises(MissingFileError) as info:
        zoo.load_models("official", sam_variant="vit_b")
    assert time.monotonic() - t0 < 10
    assert [m[0] for m in info.value.missing] == ["sam_vit_b", "groundingdino_swint_ogc", "bert_base_uncased_vocab",
                                                  "wide_resnet50_2"]
    for name, url, path in info.value.missing:
        assert url in str(info.value) and str(path) in str(info.value)


def test_load_models_explicit_paths(monkeypatch, tmp_path):
    monkeypatch.setattr(dl, "reachable", lambda url, timeout=None: False)
    mine = tmp_path / "my_sam.pth"
    mine.write_bytes(b"x")
    with pytest.raises(MissingFileError) as info:  # the given SAM file wins; only the rest is reported
        zoo.load_models("official", checkpoints={"sam": mine}, saliency_backbone="tf_efficientnet_lite0")
    assert [m[0] for m in info.value.missing] == ["groundingdino_swint_ogc", "bert_base_uncased_vocab"]
    with pytest.raises(ValueError, match="needs checkpoints for"):
        zoo.load_models("paths", checkpoints={"sam": mine})
    with pytest.raises(MissingFileError, match="nope.pth"):
        zoo.load_models("paths", checkpoints={"sam": tmp_path / "nope.pth", "gdino": mine, "saliency": mine})
    with pytest.raises(ValueError, match="unknown checkpoints keys"):
        zoo.load_models("official", checkpoints={"sam2": mine})
    with pytest.raises(ValueError, match="unknown kind"):
        zoo.load_models("huge")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is built, nothing warned, before arguments are checked
        with pytest.raises(ValueError, match="sam_variant"):
            zoo.load_models("tiny", sam_variant="vit_x")


@pytest.fixture(scope="module")
def sam_file(tmp_path_factory):
    sam = S.build_sam("tiny", seed=0)
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(sam.state_dict(), path)
    return path, sam


def _shrink_architectures(monkeypatch, text_dir):
    """Official architectures replaced by the tiny ones, so the official loading path runs on small files."""
    real_sam, real_gdino = S.build_sam, G.build_gdino
    monkeypatch.setattr(S, "build_sam", lambda variant="vit_h", seed=0: real_sam("tiny", seed=seed))
    monkeypatch.setattr(G, "build_gdino", lambda _dir, tiny=False, seed=0, **kw:
                        real_gdino(text_dir, tiny=True, seed=seed, **kw))
    monkeypatch.setattr(SAL, "_timm_resnet", lambda tiny: _small_wrn_body())


def test_load_models_paths_wiring(monkeypatch, text_dir, sam_file, gdino_file, wrn_file, gdino0_out, image, rgb,
                                  tmp_path):
    """kind='paths' end to end on files in the official formats (architectures shrunk), without network."""
    monkeypatch.setattr(dl, "reachable", lambda *a, **k: pytest.fail("network was used"))
    _shrink_architectures(monkeypatch, text_dir)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(T.tiny_vocab()) + "\n")
    files = {"sam": sam_file[0], "gdino": gdino_file, "saliency": wrn_file[0], "bert_vocab": vocab}
    models = zoo.load_models("paths", checkpoints=files)
    assert models.meaningful and models.kind == "paths" and "local checkpoints" in models.describe()
    assert models.reports["gdino"].missing == ()
    assert (models.gdino_min_size, models.gdino_max_size) == (800, 1333)
    assert models.identity.startswith("paths|")
    assert all(file_fingerprint(f) in models.identity for f in files.values())
    assert torch.equal(_gdino_out(models.gdino, image)["pred_logits"], gdino0_out["pred_logits"])
    assert torch.equal(_sam_out(models.sam, rgb)[0], _sam_out(sam_file[1], rgb)[0])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got = models.saliency(x)
    for mine, ref in zip(got, _tv_features(wrn_file[1], x)):
        torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-4)


def test_load_models_random_falls_back_to_tiny_vocab_offline(monkeypatch, text_dir):
    monkeypatch.setattr(dl, "reachable", lambda *a, **k: False)
    _shrink_architectures(monkeypatch, text_dir)
    with pytest.warns(UserWarning) as record:
        models = zoo.load_models("random", sam_variant="vit_b", saliency_backbone="tf_efficientnet_lite0")
    messages = [str(w.message) for w in record]
    assert any("not meaningful" in m for m in messages)
    assert any("bert-base-uncased vocabulary unavailable" in m for m in messages)
    assert not models.meaningful and "timing only" in models.describe()
    assert "tiny-bert-v1-vocab" in models.identity and "sam=vit_b" in models.identity


def test_load_saliency_only():
    models = zoo.load_saliency_only("tf_efficientnet_lite0")
    assert models.gdino is None and models.sam is None and models.meaningful
    assert "saliency-only" in models.describe() and "tf_efficientnet_lite0" in models.identity
    with pytest.warns(UserWarning, match="not meaningful"):
        tiny = zoo.load_saliency_only("wide_resnet50_2", kind="tiny")
    assert not tiny.meaningful and "NOT meaningful" in tiny.describe()


def test_lite0_deep_stage_equals_timm_with_the_stride32_output():
    """``forward(x, deep=True)`` adds the map timm's own extractor returns for out index 4 (same weights)."""
    import timm

    model = SAL.load_saliency_backbone("tf_efficientnet_lite0")
    ref = timm.create_model("tf_efficientnet_lite0", features_only=True, out_indices=(1, 2, 3, 4)).eval()
    ref.load_state_dict(model.body.state_dict())
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(x, deep=True), ref(x)
        assert len(model(x)) == 3
    assert model.has_deep and [t.shape[1] for t in ours] == [24, 40, 112, 320]
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    tiny = SAL.load_saliency_backbone("wide_resnet50_2", kind="tiny", warn=False)
    assert not tiny.has_deep
    with pytest.raises(ValueError, match="deep_weight=0"):
        tiny(x, deep=True)


def test_auto_chooses_the_official_files_by_presence_and_the_notebooks_pick_them(monkeypatch, tmp_path, capsys,
                                                                                 text_dir, sam_file, gdino_file,
                                                                                 wrn_file, rgb):
    """``models="auto"`` with checkpoint files written in the official formats at the official file names of an empty
    weights folder (tiny weights, architectures shrunk: their hashes cannot be the published ones): the choice is the
    official set, every file is loaded as it is with a warning naming it, and the notebooks' set-up (``models`` and
    ``saliency_backbone`` left at their defaults) picks them; without them it is the tiny set, whose banner says how
    to get the real weights."""
    from saa_lib import workbook
    from saa_lib.cli import build_parser
    from saa_lib.workbook.report import run_report

    monkeypatch.setattr(dl, "reachable", lambda *a, **k: pytest.fail("network was used"))
    monkeypatch.setenv("SAA_HOME", str(tmp_path / "saa"))
    assert zoo.auto_kind() == "tiny" and workbook.resolve_models("auto") == "tiny"
    assert not workbook.is_meaningful("auto")
    assert workbook.banner("auto") == workbook.NOT_MEANINGFUL
    out = capsys.readouterr().out
    assert "`saa download weights`" in out and "--models sam=PATH,gdino=PATH" in out
    assert "models='auto' chose them" in out and "sam_vit_h_4b8939.pth" in out

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(T.tiny_vocab()) + "\n")
    official = {"sam_vit_h": sam_file[0], "groundingdino_swint_ogc": gdino_file, "bert_base_uncased_vocab": vocab,
                "wide_resnet50_2": wrn_file[0]}
    for name, src in official.items():
        zoo.CHECKPOINTS[name].path.parent.mkdir(parents=True, exist_ok=True)
        zoo.CHECKPOINTS[name].path.write_bytes(Path(src).read_bytes())
    assert zoo.auto_kind() == "official" and workbook.resolve_models("auto") == "official"
    assert workbook.choose_saliency_backbone("auto") == "wide_resnet50_2" and workbook.is_meaningful("auto")

    _shrink_architectures(monkeypatch, text_dir)
    with pytest.warns(UserWarning, match="is not the published") as record:
        models = zoo.load_models("auto")
    warned = "\n".join(str(w.message) for w in record)
    for name in official:
        assert zoo.CHECKPOINTS[name].path.name in warned and f"--force {name}" in warned
    assert models.kind == "official" and models.meaningful and "official checkpoints" in models.describe()
    assert file_fingerprint(zoo.CHECKPOINTS["sam_vit_h"].path) in models.identity
    assert torch.equal(_sam_out(models.sam, rgb)[0], _sam_out(sam_file[1], rgb)[0])
    with pytest.raises(Exception, match="corrupt or not the published"):
        zoo.load_models("official")  # asked for by name, the published files are still required
    with pytest.raises(ValueError, match="kind='auto' chooses"):
        zoo.load_models("auto", checkpoints={"sam": sam_file[0]})

    monkeypatch.setattr(workbook.series, "stage_items", lambda *a, **k: [])  # the models are the point, not the stages
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = workbook.setup(categories=["washer"], n_images=1)
    out = capsys.readouterr().out
    assert wb.models.kind == "official" and wb.models.meaningful and wb.tag != workbook.NOT_MEANINGFUL
    assert wb.saliency_backbone == "wide_resnet50_2" and "models='auto': the official weights" in out
    assert wb.models.identity == models.identity

    zoo.CHECKPOINTS["groundingdino_swint_ogc"].path.unlink()
    assert zoo.auto_kind() == "tiny"
    with pytest.warns(UserWarning, match="not meaningful"):
        assert zoo.load_models("auto").kind == "tiny"
    parser = build_parser()
    assert parser.parse_args(["report"]).models == "auto"
    assert inspect.signature(run_report).parameters["models"].default == "auto"
