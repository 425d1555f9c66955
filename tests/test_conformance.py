"""Golden conformance: ``saa_plus`` in ``code`` behaviour against the official code's outputs on identical weights.

The goldens in tests/data/conformance were written by benchmarks/conformance/harness.py from the official repository
(caoyunkang/Segment-Any-Anomaly at 23acbd9) running on the project's tiny models, exported with
``saa export-models tiny``. Here the project rebuilds the same tiny models, checks they are the ones the goldens were
made with, and must give the same raw 400 x 400 map (to 1e-4) and fuse the same regions, image by image.
"""
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDENS = ROOT / "tests" / "data" / "conformance"
sys.path.insert(0, str(ROOT / "benchmarks" / "conformance"))

from records import MAP_TOL, case_image, match_kept  # noqa: E402

INDEX = json.loads((GOLDENS / "index.json").read_text())


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    from saa_lib.export import combined_digest, state_digests
    from saa_lib.pipeline import SAAPipeline
    from saa_lib.zoo import load_models

    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        mp.setenv("SAA_HOME", str(tmp_path_factory.mktemp("conformance_home")))
        warnings.simplefilter("ignore")
        models = load_models("tiny")
    digests = {"sam": combined_digest(state_digests(models.sam.state_dict())),
               "groundingdino": combined_digest(state_digests(models.gdino.state_dict())),
               "saliency": combined_digest(state_digests(models.saliency.body.state_dict()))}
    expected = INDEX["models"]["tensor_digests"]
    changed = sorted(k for k in expected if digests[k] != expected[k])
    assert not changed, (f"the tiny models changed ({', '.join(changed)}) since the goldens were written; regenerate "
                         f"them with a checkout of the official repository at 23acbd9:\n  {INDEX['regenerate']}")
    assert [models.gdino_min_size, models.gdino_max_size] == INDEX["models"]["gdino_size"]
    return SAAPipeline(models)


def test_goldens_cover_the_required_cases():
    cases = [json.loads((GOLDENS / f"{n}.json").read_text()) for n in INDEX["cases"]]
    square_grey = [c for c in cases if c["category"] == "screw"]
    square_colour = [c for c in cases if c["category"] == "leather"]
    non_square = [c for c in cases if c["hw"][0] != c["hw"][1] and len(c["images"]) == 1]
    multi = [c for c in cases if len(c["images"]) > 1 and int(c["property_sentence"].split(" ")[5]) > 1]
    assert len(square_grey) >= 2 and len(square_colour) >= 2 and len(non_square) >= 2 and len(multi) >= 1
    assert all(c["kept"] for c in cases), "a golden without fused regions checks little"
    size = sum(f.stat().st_size for f in GOLDENS.iterdir())
    assert size <= 5e6, f"goldens take {size / 1e6:.1f} MB"


@pytest.mark.parametrize("name", INDEX["cases"])
def test_project_equals_official_code(name, samples_root, tiny_pipeline):
    from records import image_sha256
    from project_side import project_record

    golden = json.loads((GOLDENS / f"{name}.json").read_text())
    with np.load(GOLDENS / f"{name}.npz") as z:
        official_map = z["raw_map"]
    image = case_image({"images": [samples_root / p for p in golden["images"]]})
    assert image_sha256(image) == golden["image_sha256"], f"{golden['images']}: not the pixels the goldens used"
    record, arrays = project_record(tiny_pipeline, image, golden["table"], golden["category"])
    diff = float(np.max(np.abs(arrays["raw_map"].astype(np.float64) - official_map)))
    equal, why = match_kept(golden, record)
    assert equal, f"{name}: kept regions differ: {why}"
    assert diff <= MAP_TOL, f"{name}: raw map max |diff| {diff:.3g} > {MAP_TOL}"
