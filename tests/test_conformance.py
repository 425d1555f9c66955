"""Golden conformance: ``saa_plus`` in ``code`` behaviour against the official code's outputs on identical weights.

The goldens in tests/data/conformance were written by benchmarks/conformance/harness.py from the official repository
(caoyunkang/Segment-Any-Anomaly at 23acbd9) running on the project's tiny models exported with ``saa export-models
tiny`` (the multi-instance case: the same models with a 6-query detector, see benchmarks/conformance/project_side.py).
Here the project rebuilds the same models, checks they are the ones the goldens were made with, and must give the
same raw 400 x 400 map (to 1e-4) and fuse the same regions, image by image.
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

from records import MAP_TOL, block_mean, case_image, image_sha256, match_kept  # noqa: E402

INDEX = json.loads((GOLDENS / "index.json").read_text())


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    """A factory: the pipeline of a golden model set, built once, checked against the goldens' weight digests."""
    from project_side import build_model_set

    from saa_lib.weights.export import combined_digest, state_digests
    from saa_lib.pipeline import SAAPipeline

    built = {}
    home = tmp_path_factory.mktemp("conformance_home")

    def get(name):
        if name not in built:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("SAA_HOME", str(home))
                models = build_model_set(name)
            digests = {"sam": combined_digest(state_digests(models.sam.state_dict())),
                       "groundingdino": combined_digest(state_digests(models.gdino.state_dict())),
                       "saliency": combined_digest(state_digests(models.saliency.body.state_dict()))}
            expected = INDEX["models"][name]
            changed = sorted(k for k in expected["tensor_digests"] if digests[k] != expected["tensor_digests"][k])
            assert not changed, (f"the {name} models changed ({', '.join(changed)}) since the goldens were written; "
                                 "regenerate them with a checkout of the official repository at 23acbd9:\n  "
                                 f"{INDEX['regenerate']}")
            assert [models.gdino_min_size, models.gdino_max_size] == expected["gdino_size"]
            built[name] = SAAPipeline(models)
        return built[name]

    return get


def test_goldens_cover_the_required_cases():
    cases = [json.loads((GOLDENS / f"{n}.json").read_text()) for n in INDEX["cases"]]
    square_grey = [c for c in cases if c["category"] == "screw"]
    square_colour = [c for c in cases if c["category"] == "leather"]
    non_square = [c for c in cases if c["hw"][0] != c["hw"][1] and len(c["images"]) == 1]
    multi = [c for c in cases if len(c["images"]) > 1 and int(c["property_sentence"].split(" ")[5]) > 1]
    assert len(square_grey) >= 2 and len(square_colour) >= 2 and len(non_square) >= 2 and len(multi) >= 1
    assert all(c["kept"] for c in cases if len(c["images"]) == 1), "a golden without fused regions checks little"
    # with the random detector no defect box survives P^P on the pair: that case checks the multi-instance saliency
    assert all(c["saliency_stats"]["max"] > 0 for c in multi)
    size = sum(f.stat().st_size for f in GOLDENS.iterdir())
    assert size <= 5e6, f"goldens take {size / 1e6:.1f} MB"


@pytest.mark.parametrize("name", INDEX["cases"])
def test_project_equals_official_code(name, samples_root, pipelines):
    from project_side import project_record

    golden = json.loads((GOLDENS / f"{name}.json").read_text())
    with np.load(GOLDENS / f"{name}.npz") as z:
        official_map, official_saliency = z["raw_map"], z["saliency_64"]
    image = case_image({"images": [samples_root / p for p in golden["images"]]})
    assert image_sha256(image) == golden["image_sha256"], f"{golden['images']}: not the pixels the goldens used"
    record, arrays = project_record(pipelines(golden["models"]), image, golden["table"], golden["category"])
    saliency = arrays["saliency"]
    assert list(saliency.shape) == golden["saliency_stats"]["shape"], f"{name}: saliency map shape differs"
    sal_diff = float(np.max(np.abs(block_mean(saliency).astype(np.float64) - official_saliency)))
    assert sal_diff <= MAP_TOL, f"{name}: saliency (64 x 64 block means) max |diff| {sal_diff:.3g} > {MAP_TOL}"
    diff = float(np.max(np.abs(arrays["raw_map"].astype(np.float64) - official_map)))
    equal, why = match_kept(golden, record)
    assert equal, f"{name}: kept regions differ: {why}"
    assert diff <= MAP_TOL, f"{name}: raw map max |diff| {diff:.3g} > {MAP_TOL}"
