"""P^S on real ImageNet features (tf_efficientnet_lite0) and real defect images: far above chance."""
import pytest

from saa_lib.config import variant_config
from saa_lib.data import open_dataset
from saa_lib.evaluate import evaluate
from saa_lib.pipeline import SAAPipeline
from saa_lib.zoo import load_saliency_only


@pytest.fixture(scope="module")
def real_pipeline():
    models = load_saliency_only("tf_efficientnet_lite0", kind="official")
    assert models.meaningful
    return SAAPipeline(models)


@pytest.mark.parametrize("subset", ["mvtec_ad", "mtd"])
@pytest.mark.parametrize("behaviour", ["code", "paper"])
def test_saliency_alone_finds_real_defects(real_pipeline, samples_root, subset, behaviour):
    ds = open_dataset("folder", samples_root / subset)
    cfg = variant_config("saliency_only", behaviour).with_(saliency={"backbone": "tf_efficientnet_lite0"})
    runs = evaluate(ds, real_pipeline, [cfg], progress=False)
    assert len(runs) == len(ds.categories) >= 1
    for run in runs:
        n_defect = int(run.labels.sum())
        assert n_defect >= 5 and run.masks.any(axis=(1, 2)).sum() == n_defect
        # chance is 0.5 for AUROC and the defect-pixel fraction for max-F1
        assert run.metrics["pixel_auroc"] > 0.8, (run.category, run.metrics)
        assert run.metrics["pixel_max_f1"] > 3 * run.masks.mean(), (run.category, run.metrics)
