"""The CUDA-oriented code paths, run on the CPU: DataLoader image loading and mixed precision (autocast)."""
import warnings

import numpy as np
import pytest
import torch

from saa_lib.cache import StageCache
from saa_lib.config import variant_config
from saa_lib.data import generate_synthetic, open_dataset
from saa_lib.engine.evaluate import evaluate, iter_images, labelled, prompts_for
from saa_lib.generator import Generator
from saa_lib.pipeline import SAAPipeline


@pytest.fixture(scope="module")
def tiny():
    from saa_lib.weights.zoo import load_models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_models("tiny", seed=0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = generate_synthetic(tmp_path_factory.mktemp("loader") / "synthetic", seed=5, n_good=1, n_defect=1,
                              categories=("washer",), train_good=0)
    return open_dataset("synthetic", root)


def test_loader_yields_the_same_pixels_and_masks_in_order(dataset):
    samples = labelled(dataset.samples("washer"))
    plain = list(iter_images(samples, 400))
    loaded = list(iter_images(samples, 400, num_workers=2))
    assert len(plain) == len(loaded) == len(samples)
    for (im_a, m_a), (im_b, m_b), s in zip(plain, loaded, samples):
        assert im_b.dtype == np.uint8 and m_b.dtype == bool and m_b.shape == (400, 400)
        assert np.array_equal(im_a, im_b) and np.array_equal(m_a, m_b)
        assert m_a.any() == (s.label == 1)


def test_dataloader_path_gives_the_plain_loop_maps(tiny, dataset):
    configs = [variant_config("saa_plus", single_caption=True)]  # one detector forward per image: quicker
    plain = evaluate(dataset, SAAPipeline(tiny), configs, progress=False, num_workers=0)
    loaded = evaluate(dataset, SAAPipeline(tiny), configs, progress=False, num_workers=2)
    for a, b in zip(plain, loaded):
        assert a.names == b.names and np.array_equal(a.masks, b.masks)
        assert np.array_equal(a.maps, b.maps)
        assert a.metrics.keys() == b.metrics.keys()
        for k in a.metrics:
            assert a.metrics[k] == b.metrics[k] or (np.isnan(a.metrics[k]) and np.isnan(b.metrics[k]))


def test_generator_and_saliency_honour_autocast(tiny, dataset):
    """bf16 autocast (the CPU stand-in for CUDA bf16/fp16) reaches GroundingDINO and the saliency backbone, gives close
    numbers, and its stage results are cached apart from the float32 ones."""
    image = labelled(dataset.samples("washer"))[-1].load_image()
    seen = []
    hooks = [m.register_forward_hook(lambda mod, i, o: seen.append((type(mod).__name__,
                                                                    torch.is_autocast_enabled("cpu"))))
             for m in (tiny.gdino, tiny.saliency)]
    try:
        fp32, bf16 = (Generator(tiny.gdino, tiny.gdino_min_size, tiny.gdino_max_size, autocast=a).detect(
            image, ["scratch on washer."]) for a in (None, torch.bfloat16))
        assert seen == [("GroundingDINO", False), ("GroundingDINO", True)]
        assert bf16.scores.dtype == np.float32 and len(fp32) > 0
        np.testing.assert_allclose(np.sort(bf16.scores)[-5:], np.sort(fp32.scores)[-5:], atol=0.05)

        seen.clear()
        cache = StageCache(enabled=True, root=None)
        cfg = variant_config("saliency_only")
        prompts = prompts_for(dataset, "washer")
        maps = [SAAPipeline(tiny, cache, autocast=a).run(image, prompts, cfg).anomaly_map
                for a in (None, torch.bfloat16, None)]
    finally:
        for h in hooks:
            h.remove()
    assert seen == [("SaliencyBackbone", False), ("SaliencyBackbone", True)]  # the third run came from the cache
    assert cache.misses["saliency"] == 2 and cache.hits["saliency"] == 1
    assert maps[1].dtype == np.float32 and np.array_equal(maps[0], maps[2])
    assert not np.array_equal(maps[0], maps[1])
    assert np.corrcoef(maps[0].ravel(), maps[1].ravel())[0, 1] > 0.9
