"""Official-format export of a model set and loading it back through its manifest."""
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from saa_lib import cli
from saa_lib.config import variant_config
from saa_lib.weights.export import ManifestError, load_manifest, read_manifest, state_digests
from saa_lib.pipeline import SAAPipeline
from saa_lib.prompts.language import category_prompts
from saa_lib.weights.zoo import load_models


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    home = tmp_path_factory.mktemp("export_home")
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        mp.setenv("SAA_HOME", str(home))
        warnings.simplefilter("ignore")
        models = load_models("tiny")
        out = tmp_path_factory.mktemp("export") / "tiny"
        assert cli.main(["export-models", "tiny", str(out), "--saliency-backbone", "wide_resnet50_2"]) == 0
        yield models, out


def test_files_in_official_formats(exported):
    _, out = exported
    manifest = json.loads((out / "manifest.json").read_text())
    sam = torch.load(out / "sam.pth", weights_only=True)
    assert all(torch.is_tensor(v) for v in sam.values()) and "image_encoder.patch_embed.proj.weight" in sam
    gd = torch.load(out / "groundingdino.pth", weights_only=True)
    assert set(gd) == {"model"} and any(k.startswith("bert.") for k in gd["model"])
    assert manifest["groundingdino"]["overrides"]["num_queries"] == 100
    assert (manifest["groundingdino"]["min_size"], manifest["groundingdino"]["max_size"]) == (224, 384)
    assert manifest["sam"]["sizes"]["embed_dim"] == 64
    assert set(manifest["sha256"]) >= {"sam.pth", "groundingdino.pth", "saliency.pth", "bert/vocab.txt"}
    # the config is SLConfig python: the OGC values, then the overrides and the local text encoder
    ns = {}
    exec((out / "groundingdino_config.py").read_text(), ns)
    assert ns["num_queries"] == 100 and ns["backbone"] == "swin_T_224_1k" and ns["hidden_dim"] == 256
    assert ns["text_encoder_type"] == str(out / "bert")
    # BertModel.from_pretrained on the folder gives the detector's own text encoder
    from transformers import BertModel
    bert = BertModel.from_pretrained(str(out / "bert"), local_files_only=True).state_dict()
    assert {f"bert.{k}": v for k, v in state_digests(bert).items()
            if f"bert.{k}" in gd["model"]} == {k: v for k, v in state_digests(gd["model"]).items()
                                                if k.startswith("bert.") and k[5:] in bert}


def test_manifest_round_trip_identical_tensors_and_outputs(exported):
    models, out = exported
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = load_models("paths", checkpoints={"manifest": str(out / "manifest.json")})
    for part in ("gdino", "sam"):
        a, b = state_digests(getattr(models, part).state_dict()), state_digests(getattr(back, part).state_dict())
        assert a == b, part
    assert state_digests(models.saliency.body.state_dict()) == state_digests(back.saliency.body.state_dict())
    assert not back.meaningful and "NOT meaningful" in back.describe()
    assert (back.gdino_min_size, back.gdino_max_size) == (224, 384)
    rng = np.random.default_rng(0)
    image = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    prompts = category_prompts("screw", "mvtec")
    cfg = variant_config("saa_plus", "code")
    r1 = SAAPipeline(models).run(image, prompts, cfg)
    r2 = SAAPipeline(back).run(image, prompts, cfg)
    np.testing.assert_array_equal(r1.anomaly_map, r2.anomaly_map)
    assert r1.regions_json() == r2.regions_json()


def test_changed_file_is_refused(exported, tmp_path, capsys):
    _, out = exported
    copy = tmp_path / "set"
    copy.mkdir()
    for f in ("manifest.json", "sam.pth"):
        (copy / f).write_bytes((out / f).read_bytes())
    with pytest.raises(ManifestError, match="missing"):
        read_manifest(copy / "manifest.json")
    for f in ("groundingdino.pth", "groundingdino_config.py", "saliency.pth"):
        (copy / f).symlink_to(out / f)
    (copy / "bert").symlink_to(out / "bert")
    data = bytearray((out / "sam.pth").read_bytes())
    data[-1] ^= 0xFF
    (copy / "sam.pth").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="sha256 differs"):
        load_manifest(copy / "manifest.json")
    image = tmp_path / "x.png"  # a readable image: inputs are checked before the models are loaded
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(image)
    rc = cli.main(["predict", str(image), "--category", "screw", "--out", str(tmp_path / "o"),
                   "--models", f"manifest={copy / 'manifest.json'}"])
    assert rc == 2 and "sha256 differs" in capsys.readouterr().err
