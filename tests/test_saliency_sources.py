"""Batch (mutual scoring) and few-shot saliency: known answers, order independence, memory bound, CLI plumbing."""
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from saa_lib.cache import StageCache
from saa_lib.cli import build_parser, configs_from_args, main
from saa_lib.config import SaliencyConfig, variant_config
from saa_lib.peers import PeerConfig, PeerSaliency, with_peers
from saa_lib.peers.config import DEEP_INPUT_SIZE, DEEP_WEIGHT
from saa_lib.peers.store import FeatureStore
from saa_lib.pipeline import SAAPipeline
from saa_lib.peers import sources as S
from saa_lib.prompts.language import category_prompts
from saa_lib.prompts.saliency import knn_saliency
from saa_lib.utils import image_digest
from saa_lib.weights.zoo import load_saliency_only


def _texture(gen, n_pixels: int, basis: torch.Tensor) -> torch.Tensor:
    """(n_pixels, D) unit features drawn from a small set of 'normal' vectors, with a little noise."""
    idx = torch.randint(len(basis), (n_pixels,), generator=gen)
    return F.normalize(basis[idx] + 0.01 * torch.randn(n_pixels, basis.shape[1], generator=gen), dim=1)


@pytest.fixture()
def planted():
    """Five images of 400 feature pixels from one normal texture; image 0 also holds one anomalous feature vector
    planted at 60 pixels (it repeats inside image 0, never elsewhere)."""
    gen = torch.Generator().manual_seed(0)
    basis = F.normalize(torch.randn(6, 32, generator=gen), dim=1)
    images = [_texture(gen, 400, basis) for _ in range(5)]
    anomaly = F.normalize(torch.randn(32, generator=gen), dim=0)
    where = torch.randperm(400, generator=gen)[:60]
    images[0][where] = F.normalize(anomaly + 0.01 * torch.randn(60, 32, generator=gen), dim=1)
    truth = torch.zeros(400, dtype=torch.bool)
    truth[where] = True
    return images, truth


def test_repeated_planted_patch_found_by_batch_missed_by_single_image(planted):
    images, truth = planted
    batch = S.batch_scores(images[0], images[1:], fraction=0.3, query_chunk=64, bank_chunk=100)
    assert batch[truth].min() > batch[~truth].max()  # every planted pixel above every normal one
    assert batch[truth].min() > 0.5 and batch[~truth].max() < 0.05
    # the single-image form (paper: 40 nearest neighbours in the same image) sees 59 copies of each planted pixel
    single = knn_saliency(images[0], neighbours=40, aggregate="nearest")
    auroc = (single[truth][:, None] > single[~truth][None]).float().mean()  # P(planted scores above normal)
    assert auroc < 0.7 and single[truth].max() < single[~truth].max()  # no better than noise: missed


def test_fewshot_with_the_image_itself_as_reference_is_zero(planted):
    images, _ = planted
    assert torch.allclose(S.fewshot_scores(images[1], [images[1]]), torch.zeros(400), atol=1e-6)
    # and a different reference gives a map that is not zero where the texture noise differs
    assert S.fewshot_scores(images[0], [images[1]]).max() > 0.5


def test_batch_scores_do_not_depend_on_the_order_of_the_other_images(planted):
    images, _ = planted
    a = S.batch_scores(images[0], images[1:], 0.5, query_chunk=50, bank_chunk=77)
    for perm in ([3, 1, 0, 2], [2, 3, 1, 0]):
        b = S.batch_scores(images[0], [images[1:][i] for i in perm], 0.5, query_chunk=50, bank_chunk=77)
        assert torch.equal(a, b)


def test_per_image_scaled_known_values():
    d = torch.tensor([[0.2, 1.0], [0.4, 2.0], [0.6, 3.0], [0.8, 4.0], [1.0, 5.0]])
    # each column in units of its own quantile: the median (0.6, 3.0) and the minimum (0.2, 1.0)
    assert torch.allclose(S.per_image_scaled(d, 0.5), torch.tensor([[1 / 3, 1 / 3], [2 / 3, 2 / 3], [1.0, 1.0],
                                                                     [4 / 3, 4 / 3], [5 / 3, 5 / 3]]))
    assert torch.allclose(S.per_image_scaled(d, 0.0), torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0],
                                                                     [5.0, 5.0]]))
    # an exact copy (all distances 0) stays 0: the quantile is clamped, never divided by zero
    assert torch.equal(S.per_image_scaled(torch.zeros(4, 2), 0.1), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="quantile"):
        S.per_image_scaled(d, 1.0)


def test_per_image_scaling_removes_an_offset_shared_by_a_whole_other_image(planted):
    """Another image that differs from the query as a whole (every distance to it doubled, as for a tile under other
    light) no longer decides the score: scaled, the batch scores do not change when one other image's distances are
    all multiplied by a constant, while without the scaling they do."""
    images, truth = planted
    q, others = images[0], images[1:]
    d = torch.stack([S.nearest_distance(q, o) for o in others], 1)
    far = d.clone()
    far[:, 0] *= 3.0
    scaled = S.smallest_mean(S.per_image_scaled(d, 0.1), 0.5), S.smallest_mean(S.per_image_scaled(far, 0.1), 0.5)
    assert torch.allclose(*scaled)
    assert not torch.allclose(S.smallest_mean(d, 0.5), S.smallest_mean(far, 0.5))
    # and through batch_scores the planted pixels still stand out of the normal ones
    batch = S.batch_scores(q, others, 0.3, peer_quantile=0.1)
    assert batch[truth].min() > batch[~truth].max()


def test_smallest_mean_known_values():
    d = torch.tensor([[0.4, 0.1, 0.3, 0.2], [1.0, 1.0, 0.0, 1.0]])
    assert torch.allclose(S.smallest_mean(d, 0.5), torch.tensor([0.15, 0.5]))
    assert torch.allclose(S.smallest_mean(d, 0.01), torch.tensor([0.1, 0.0]))  # at least one image
    assert torch.allclose(S.smallest_mean(d, 1.0), d.mean(1))
    with pytest.raises(ValueError):
        S.smallest_mean(d, 0.0)


@pytest.mark.parametrize("qc,bc", [(1, 1), (7, 13), (1000, 1000)])
def test_chunked_nearest_distance_equals_dense(qc, bc):
    gen = torch.Generator().manual_seed(1)
    q = F.normalize(torch.randn(123, 16, generator=gen), dim=1)
    bank = F.normalize(torch.randn(217, 16, generator=gen), dim=1)
    dense = (1.0 - (q @ bank.T).max(1).values).clamp_min(0)
    assert torch.allclose(S.nearest_distance(q, bank, qc, bc), dense, atol=1e-6)


class _LargestOutput(TorchDispatchMode):
    """Records the element count of the largest tensor any torch operation produces."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_chunk_sizes_bound_the_working_set():
    gen = torch.Generator().manual_seed(2)
    q = F.normalize(torch.randn(2000, 8, generator=gen), dim=1)
    others = [F.normalize(torch.randn(3000, 8, generator=gen), dim=1) for _ in range(3)]
    with _LargestOutput() as rec:
        S.batch_scores(q, others, 0.5, query_chunk=100, bank_chunk=250)
    # the similarity blocks (100 x 250) and the (Q, images) distance table; never Q x R = 6e6
    assert rec.largest <= max(100 * 250, 2000 * 3)
    with _LargestOutput() as dense:
        S.batch_scores(q, others, 0.5, query_chunk=4000, bank_chunk=4000)
    assert dense.largest >= 2000 * 3000


def test_gaussian_smooth_keeps_constants_and_mass():
    flat = torch.full((20, 30), 0.7)
    assert torch.allclose(S.gaussian_smooth(flat, 4.0), flat, atol=1e-6)
    spike = torch.zeros(41, 41)
    spike[20, 20] = 1.0
    out = S.gaussian_smooth(spike, 2.0)
    assert abs(float(out.sum()) - 1.0) < 1e-4 and out[20, 20] < 0.1 and out.argmax() == 20 * 41 + 20


def test_reference_views_with_four_rotations_are_the_eight_symmetries_of_a_square():
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    views = [S.reference_view(image, t, rotations=4) for t in range(8)]
    assert len({v.tobytes() for v in views}) == 8 and np.array_equal(views[0], image)
    assert np.array_equal(views[1], image[:, ::-1]) and np.array_equal(views[2], np.rot90(image))
    with pytest.raises(ValueError, match="out of range"):
        S.reference_view(image, 8, rotations=4)


def test_rotate_image_agrees_with_rot90_and_fills_with_the_border_colour():
    rng = np.random.default_rng(0)
    square = rng.integers(0, 255, (9, 9, 3), dtype=np.uint8)
    assert np.array_equal(S.rotate_image(square, 90), np.rot90(square))  # the general path, exact at 90 degrees
    grey = rng.integers(0, 255, (7, 12), dtype=np.uint8)
    assert np.array_equal(S.rotate_image(grey, 180), np.rot90(grey, 2))
    flat = np.full((20, 30, 3), 77, np.uint8)  # no darkening where the frame brings in outside pixels
    assert np.array_equal(S.rotate_image(flat, 30), flat)
    view = S.reference_view(grey, 3, rotations=12)  # 30 degrees, mirrored: same frame
    assert view.shape == grey.shape and view.dtype == np.uint8


def test_median_normalise_and_weighted_combination_known_values():
    m = np.array([[1.0, 2.0], [4.0, 8.0]], np.float32)  # median 3
    assert np.allclose(S.median_normalise(m), m / 3)
    assert np.array_equal(S.median_normalise(np.zeros((3, 3))), np.zeros((3, 3)))  # undefined scale: stays 0
    other, image = np.full((2, 2), 4.0), np.full((2, 2), 0.25)
    assert np.allclose(S.combine_with_image(other, image, 0.5), 1.0)  # sqrt(4 * 0.25)
    assert np.allclose(S.combine_with_image(other, image, 0.0), 4.0)
    assert np.allclose(S.combine_with_image(other, image, 0.25), 4 ** 0.75 * 0.25 ** 0.25)


# ----- pipeline: the sources in the per-image saliency stage --------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_pipe():
    return load_saliency_only("wide_resnet50_2", kind="tiny")


def _images(n=4, size=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8) for _ in range(n)]


def _cfg(source, **kw):
    base = variant_config("saliency_only", "paper").with_(eval_resolution=48)
    return base if source == "image" else with_peers(base, source=source, **kw)


def _peers(models, category="screw", batch=(), references=(), cache=None):
    return PeerSaliency(models, cache, category=category, batch=batch, references=references)


def test_pipeline_batch_is_order_independent_and_keyed_by_the_set(tiny_pipe, tmp_path):
    prompts = category_prompts("screw", "mvtec")
    imgs = _images()
    cfg = _cfg("batch")
    pipe = SAAPipeline(tiny_pipe, StageCache(tmp_path))
    peers = _peers(tiny_pipe, batch=imgs, cache=pipe.cache)
    first = [pipe.run(im, prompts, cfg, peers=peers).anomaly_map for im in imgs]
    assert len(peers.batch) == 4 and peers.batch == sorted(peers.batch)
    pipe2 = SAAPipeline(tiny_pipe, StageCache(enabled=False))
    shuffled = _peers(tiny_pipe, batch=(imgs[i] for i in (2, 0, 3, 1)))  # any iterable, here a generator
    assert shuffled.batch == peers.batch
    for im, m in zip(imgs, first):
        assert np.array_equal(pipe2.run(im, prompts, cfg, peers=shuffled).anomaly_map, m)
    # a different batch is a different cache entry (and a different map)
    fewer = _peers(tiny_pipe, batch=imgs[:3], cache=pipe.cache)
    assert not np.array_equal(pipe.run(imgs[0], prompts, cfg, peers=fewer).anomaly_map, first[0])
    assert pipe.cache.misses["saliency"] >= 5


def test_pipeline_fewshot_reference_equal_to_the_image_gives_zero_map(tiny_pipe):
    prompts = category_prompts("screw", "mvtec")
    imgs = _images(2)
    pipe = SAAPipeline(tiny_pipe)
    cfg = _cfg("fewshot", with_image=False, augment_references=False, normalize=False)
    peers = _peers(tiny_pipe, references=[imgs[0]])
    assert np.abs(pipe.run(imgs[0], prompts, cfg, peers=peers).anomaly_map).max() < 1e-5
    normalised = with_peers(cfg, normalize=True)  # the floor of the median keeps rounding noise tiny
    assert np.abs(pipe.run(imgs[0], prompts, normalised, peers=peers).anomaly_map).max() < 1e-3
    assert pipe.run(imgs[1], prompts, cfg, peers=peers).anomaly_map.max() > 1e-3
    with pytest.raises(ValueError, match="2 shot"):
        pipe.run(imgs[1], prompts, with_peers(cfg, shots=2), peers=peers)


def test_pipeline_refuses_missing_or_foreign_peers(tiny_pipe, lite0_pipe):
    """Batch saliency without peers, with the peers of another category, or with features of another backbone:
    each a clear error naming what to do."""
    image, screw = _images(1)[0], category_prompts("screw", "mvtec")
    pipe = SAAPipeline(tiny_pipe)
    with pytest.raises(ValueError, match="PeerSaliency"):
        pipe.run(image, screw, _cfg("batch"))
    with pytest.raises(ValueError, match="category 'leather'"):
        pipe.run(image, screw, _cfg("batch"), peers=_peers(tiny_pipe, "leather", batch=_images(2)))
    with pytest.raises(ValueError, match="another saliency backbone"):
        pipe.run(image, screw, _cfg("batch"), peers=_peers(lite0_pipe, batch=_images(2)))
    with pytest.raises(ValueError, match="at least two images"):
        pipe.run(image, screw, _cfg("batch"), peers=_peers(tiny_pipe, batch=[image]))


def test_cli_flags_reach_the_config():
    args = build_parser().parse_args(["predict", "a.png", "--category", "screw", "--out", "o",
                                      "--saliency-source", "fewshot", "--shots", "2", "--reference", "r.png"])
    (cfg,) = configs_from_args(args, ["saliency_only"])
    assert (cfg.saliency.source, cfg.saliency.peers.shots) == ("fewshot", 2) and args.reference == ["r.png"]
    args = build_parser().parse_args(["evaluate", "--dataset", "folder", "--out", "o", "--saliency-source", "batch"])
    assert {c.saliency.source for c in configs_from_args(args, ["saa_plus", "saliency_only"])} == {"batch"}
    assert {c.saliency.peers.batch_rotations for c in configs_from_args(args, ["saa_plus"])} == {None}
    args = build_parser().parse_args(["evaluate", "--dataset", "folder", "--out", "o", "--saliency-source", "batch",
                                      "--batch-rotations", "2"])
    assert configs_from_args(args, ["saliency_only"])[0].saliency.peers.batch_rotations == 2
    (cfg,) = configs_from_args(args, ["saliency_only"])
    assert (cfg.saliency.peers.pool, cfg.saliency.peers.peer_quantile) == (1, 0.1)  # batch defaults
    args = build_parser().parse_args(["evaluate", "--dataset", "folder", "--out", "o", "--saliency-source", "batch",
                                      "--saliency-pool", "3", "--peer-quantile", "none"])
    (cfg,) = configs_from_args(args, ["saliency_only"])
    p = cfg.saliency.peers
    assert (p.pool, p.peer_quantile, p.deep_weight, p.deep_size) == (3, None, None, None)
    args = build_parser().parse_args(["evaluate", "--dataset", "folder", "--out", "o", "--saliency-source", "batch",
                                      "--deep-weight", "0.5", "--deep-size", "512"])
    assert configs_from_args(args, ["saliency_only"])[0].saliency.peers.deep_weight == 0.5
    assert configs_from_args(args, ["saliency_only"])[0].saliency.peers.deep_size == 512
    args = build_parser().parse_args(["evaluate", "--dataset", "folder", "--out", "o"])
    assert configs_from_args(args, ["saliency_only"])[0].saliency.peers is None  # the image itself
    for bad in (["--peer-quantile", "1.5"], ["--peer-quantile", "x"], ["--deep-weight", "2"], ["--deep-weight", "x"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["evaluate", "--dataset", "folder", "--out", "o", *bad])
    with pytest.raises(ValueError, match="pool"):
        PeerConfig(pool=0)
    with pytest.raises(ValueError, match="shots"):
        PeerConfig(shots=0)
    with pytest.raises(ValueError, match="source"):
        PeerConfig(source="other")
    with pytest.raises(ValueError, match="PeerConfig"):
        SaliencyConfig(peers={"source": "batch"})


@pytest.mark.parametrize("flag, value", [("--shots", "0"), ("--deep-size", "16")])
def test_cli_bad_source_setting_is_one_line_exit_2(capsys, tmp_path, flag, value):
    code = main(["predict", str(tmp_path / "a.png"), "--category", "screw", "--out", str(tmp_path / "o"),
                 "--models", "tiny", "--variant", "saliency_only", "--saliency-source", "fewshot", flag, value])
    err = capsys.readouterr().err
    assert code == 2 and flag[2:].replace("-", "_") in err and "Traceback" not in err


def test_saa_plus_rescores_with_the_batch_map(tmp_path):
    """Inside SAA+ (tiny models, plumbing only): the region saliency is the mean of the *batch* map in each mask, and
    ``evaluate`` records which images formed the batch and the references."""
    import json

    from saa_lib.data import generate_synthetic, open_dataset
    from saa_lib.engine.evaluate import evaluate
    from saa_lib.weights.zoo import load_models

    with pytest.warns(UserWarning, match="not meaningful"):
        models = load_models("tiny", seed=0)
    ds = open_dataset("synthetic", generate_synthetic(tmp_path / "syn", seed=3, n_good=1, n_defect=1, size=128,
                                                      categories=("washer",)))
    samples = ds.samples("washer")
    prompts = category_prompts("washer", "synthetic")
    pipe = SAAPipeline(models, StageCache(tmp_path / "cache"))
    image_cfg = variant_config("saa_plus", "paper", eval_resolution=64)
    batch_cfg = with_peers(image_cfg.with_(variant="saa_plus-batch"), source="batch")
    peers = _peers(models, "washer", batch=[s.load_image for s in samples], cache=pipe.cache)
    st = pipe.stages(samples[0].load_image(), prompts, batch_cfg, peers=peers)
    single = pipe.stages(samples[0].load_image(), prompts, image_cfg).saliency
    assert not np.allclose(st.saliency, single)
    assert np.allclose(st.region_saliency(), st.packed_masks().means(st.saliency))
    plus_img, plus_batch = pipe.run_variants(samples[0].load_image(), prompts, [image_cfg, batch_cfg], peers)
    assert [r.saliency for r in plus_batch.regions] != [r.saliency for r in plus_img.regions]
    alone = variant_config("saliency_only", "paper", eval_resolution=64)
    cfgs = [with_peers(alone.with_(variant="b"), source="batch"),
            with_peers(alone.with_(variant="f"), source="fewshot", augment_references=False)]
    evaluate(ds, SAAPipeline(models), cfgs, out_dir=tmp_path / "out", progress=False)
    recorded = json.loads((tmp_path / "out" / "run.json").read_text())["saliency_peers"]["washer"]
    assert sorted(recorded["batch"]) == sorted(str(s.image_path) for s in samples)
    assert recorded["references"] == [str(ds.samples("washer", "train")[0].image_path)]


def test_unturn_features_inverts_a_quarter_turn_of_the_grid():
    f = F.normalize(torch.randn(5, 7, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    for k in range(4):
        assert torch.equal(S.unturn_features(torch.rot90(f, k, dims=(0, 1)), k, (5, 7)), f)
    # a turned grid that rounding left a cell off is resized onto the image's grid, each vector unit length again
    g = S.unturn_features(torch.randn(8, 6, 4), 1, (5, 7))
    assert g.shape == (5, 7, 4) and torch.allclose(g.norm(dim=-1), torch.ones(5, 7))
    assert np.array_equal(S.quarter_turn(np.arange(6).reshape(2, 3), 1), np.rot90(np.arange(6).reshape(2, 3)))


def test_scaled_input_known_values():
    assert S.scaled_input(384, 512, 512) == 384  # images of the set's median size keep the input size
    assert S.scaled_input(384, 256, 512) == 192 and S.scaled_input(256, 300, 200) == 384
    assert S.scaled_input(384, 5000, 500) == 1024 and S.scaled_input(384, 10, 512) == 32  # kept within [32, 1024]


def test_pipeline_batch_rotations_find_a_turned_copy(tiny_pipe):
    """A square image and its quarter turn, as a batch of two: compared under the four quarter turns (the default
    for screws) each image finds the other exactly, so the map is zero; compared as it is (leather, or
    ``batch_rotations=1``), it is not."""
    img = np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    cfg = _cfg("batch", with_image=False, normalize=False, smooth_sigma=0.0, peer_quantile=None)  # distances as is
    pipe = SAAPipeline(tiny_pipe)
    screw, leather = category_prompts("screw", "mvtec"), category_prompts("leather", "mvtec")
    pair = [img, np.rot90(img)]
    exact = with_peers(cfg, search="exact")
    assert np.abs(pipe.run(img, screw, exact, peers=_peers(tiny_pipe, batch=pair)).anomaly_map).max() < 1e-5
    # the patch index keeps the features in float16: the turned copy is found to that precision
    assert np.abs(pipe.run(img, screw, cfg, peers=_peers(tiny_pipe, batch=pair)).anomaly_map).max() < 1e-4
    assert pipe.run(img, leather, cfg, peers=_peers(tiny_pipe, "leather", batch=pair)).anomaly_map.max() > 1e-3
    one_turn = with_peers(cfg, batch_rotations=1)
    assert pipe.run(img, screw, one_turn, peers=_peers(tiny_pipe, batch=pair)).anomaly_map.max() > 1e-3
    with pytest.raises(ValueError, match="batch_rotations"):
        PeerConfig(batch_rotations=3)


def test_pipeline_common_scale_shows_each_image_at_the_sets_pixel_scale(tiny_pipe):
    """With ``common_scale`` an image half the size of the others is given half the input (half the feature grid);
    without it every image takes ``source_size``."""
    rng = np.random.default_rng(6)
    imgs = [rng.integers(0, 255, (s, s, 3), dtype=np.uint8) for s in (128, 128, 64)]
    for common, grids in ((True, [(24, 24), (24, 24), (12, 12)]), (False, [(24, 24)] * 3)):
        cfg = PeerConfig("batch", source_size=96, common_scale=common)
        peers = _peers(tiny_pipe, batch=imgs)
        assert [tuple(peers.features(image_digest(im), cfg).shape[:2]) for im in imgs] == grids


def test_single_image_key_ignores_every_source_setting(tiny_pipe, tmp_path):
    """The batch / few-shot settings play no part in the single-image map: a screw batch run (its turns resolved to
    4) takes its single-image term from the same cache entry as the image run."""
    img = _images(1)[0]
    screw = category_prompts("screw", "mvtec")
    image_cfg = _cfg("image")
    batch_cfg = _cfg("batch", common_scale=True)
    keys = SAAPipeline(tiny_pipe).keys("d")
    plain = keys.saliency(asdict(image_cfg.saliency), 48)
    for change in ({"batch_rotations": 4}, {"common_scale": True}, {"image_weight": 0.7}, {"reference_rotations": 3}):
        with_source = with_peers(image_cfg, source="batch", **change)  # keyed without the images compared with
        assert keys.saliency(asdict(with_source.saliency), 48) == plain
    pipe = SAAPipeline(tiny_pipe, StageCache(tmp_path))
    peers = _peers(tiny_pipe, batch=[img, _images(2, seed=1)[1]], cache=pipe.cache)
    pipe.run(img, screw, image_cfg)
    hits = pipe.cache.hits.get("saliency", 0)
    pipe.run(img, screw, batch_cfg, peers=peers)
    assert pipe.cache.hits.get("saliency", 0) == hits + 1  # the single-image term, computed once


def test_source_map_mixes_the_stride32_level_linearly():
    """With the coarse level on the same grid as the fine one (no upsampling), the batch map is the weighted sum of
    the two levels' maps (smoothing is linear); weight 0 is the fine map itself."""
    gen = torch.Generator().manual_seed(3)
    unit = lambda *s: F.normalize(torch.randn(*s, generator=gen), dim=-1)  # noqa: E731
    q, peers = unit(6, 5, 8), [unit(30, 8) for _ in range(4)]
    dq, dpeers = unit(6, 5, 3), [unit(30, 3) for _ in range(4)]
    args = dict(batch_fraction=0.5, smooth_sigma=2.0, peer_quantile=0.1)
    fine = S.source_map(q, peers, "batch", (12, 10), **args)
    coarse = S.source_map(dq, dpeers, "batch", (12, 10), **args)
    for a in (0.0, 0.3, 1.0):
        mixed = S.source_map(q, peers, "batch", (12, 10), deep=(dq, dpeers, []), deep_weight=a, **args)
        np.testing.assert_allclose(mixed, (1 - a) * fine + a * coarse, rtol=1e-5, atol=1e-6)
    assert np.array_equal(S.source_map(q, peers, "batch", (12, 10), deep=(dq, dpeers, []), deep_weight=0.0, **args),
                          fine)


def test_source_map_coarse_cell_covers_the_whole_fine_grid():
    """A coarse grid of one cell: its score (by hand: distances 1 and 0 to the two other images, mean of both = 0.5)
    is upsampled to a constant over the fine grid."""
    q = F.normalize(torch.randn(4, 4, 6, generator=torch.Generator().manual_seed(0)), dim=-1)
    deep = (torch.tensor([[[1.0, 0.0]]]), [torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])], [])
    out = S.source_map(q, [q.reshape(-1, 6)] * 2, "batch", (8, 8), batch_fraction=1.0, smooth_sigma=0.0,
                       deep=deep, deep_weight=1.0)
    np.testing.assert_allclose(out, np.full((8, 8), 0.5), atol=1e-6)


@pytest.fixture(scope="module")
def lite0_pipe():
    return load_saliency_only("tf_efficientnet_lite0", kind="official")


def test_pipeline_sources_take_the_stride32_level_where_the_backbone_has_it(lite0_pipe, tiny_pipe, tmp_path):
    """``deep_weight=None`` resolves to :data:`DEEP_WEIGHT` with tf_efficientnet_lite0 (which holds a stride-32
    stage) and to 0 with the ResNet extractor (which does not); asking that one for the level is a clear error. The
    known answers of the fine level hold with the coarse one: order independence, exact matches under turns (batch)
    and a zero map against the image itself (few-shot)."""
    prompts = category_prompts("leather", "mvtec")
    imgs = _images(3, size=96)
    pipe = SAAPipeline(lite0_pipe, StageCache(tmp_path))
    cfg = _cfg("batch", source_size=128, deep_size=128)
    peers = _peers(lite0_pipe, "leather", batch=imgs, cache=pipe.cache)
    assert peers.resolve(cfg.saliency.peers).deep_weight == DEEP_WEIGHT
    auto = pipe.run(imgs[0], prompts, cfg, peers=peers).anomaly_map
    explicit = pipe.run(imgs[0], prompts, with_peers(cfg, deep_weight=DEEP_WEIGHT), peers=peers).anomaly_map
    fine_only = pipe.run(imgs[0], prompts, with_peers(cfg, deep_weight=0.0), peers=peers).anomaly_map
    assert np.array_equal(auto, explicit) and not np.allclose(auto, fine_only)
    reordered = _peers(lite0_pipe, "leather", batch=imgs[::-1])
    assert np.array_equal(SAAPipeline(lite0_pipe).run(imgs[0], prompts, cfg, peers=reordered).anomaly_map, auto)
    assert pipe.cache.hits["saliency"] >= 1  # the resolved weight is the key: auto and explicit share an entry
    square = np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8)  # a square and its quarter turn:
    exact = _cfg("batch", source_size=128, with_image=False, smooth_sigma=0.0, peer_quantile=None, deep_weight=0.5,
                 deep_size=256, search="exact")  # float32 features (the patch index keeps float16)
    pair = [square, np.rot90(square)]  # under four turns each finds the other exactly, on both levels
    screw = category_prompts("screw", "mvtec")
    assert np.abs(pipe.run(square, screw, exact, peers=_peers(lite0_pipe, batch=pair)).anomaly_map).max() < 1e-5
    leather_pair = _peers(lite0_pipe, "leather", batch=pair)
    assert pipe.run(square, prompts, exact, peers=leather_pair).anomaly_map.max() > 1e-3  # leather: no turns
    deep = peers.features(image_digest(imgs[1]), cfg.saliency.peers, deep=True)
    assert deep.shape == (4, 4, 320)  # 96 x 104 shown at 128 px (118 x 128 of content): 4 x 4 cells of 32 px
    pooled = with_peers(cfg, pool=3).saliency.peers  # the stride-32 features are not pooled: one entry for every pool
    assert peers.features(image_digest(imgs[1]), pooled, deep=True) is deep
    small = _peers(tiny_pipe, "leather", batch=imgs)
    assert small.resolve(cfg.saliency.peers).deep_weight == 0.0
    few = _cfg("fewshot", source_size=128, deep_size=160, with_image=False, augment_references=False)
    own = _peers(lite0_pipe, "leather", references=[imgs[0]])  # the image as its own reference: zero on both levels
    assert own.resolve(few.saliency.peers).deep_weight == DEEP_WEIGHT
    assert np.abs(pipe.run(imgs[0], prompts, few, peers=own).anomaly_map).max() < 1e-5
    assert pipe.run(imgs[1], prompts, few, peers=own).anomaly_map.max() > 1e-3
    with pytest.raises(ValueError, match="deep_weight=0"):
        small.prepare(with_peers(cfg, deep_weight=0.5).saliency.peers)
    with pytest.raises(ValueError, match="deep_weight"):
        PeerConfig(deep_weight=1.5)
    with pytest.raises(ValueError, match="deep_size"):
        PeerConfig(deep_size=16)


def test_pipeline_stride32_level_takes_its_own_input_size(lite0_pipe, tmp_path):
    """``deep_size=None`` resolves to :data:`DEEP_INPUT_SIZE` for both sources (the map shares its cache entry with
    the explicit size); the coarse grid follows ``deep_size`` whatever ``source_size`` is, and ``common_scale``
    scales it like the fine input (an image half the size of the others: half the grid)."""
    prompts = category_prompts("leather", "mvtec")
    imgs = _images(3, size=96)  # 96 x 104 px
    pipe = SAAPipeline(lite0_pipe, StageCache(tmp_path))
    auto = _cfg("batch", source_size=64)
    assert auto.saliency.peers.deep_input == PeerConfig("fewshot").deep_input == DEEP_INPUT_SIZE == 640
    explicit, small = with_peers(auto, deep_size=640), with_peers(auto, deep_size=128)
    peers = _peers(lite0_pipe, "leather", batch=imgs, cache=pipe.cache)
    d = image_digest(imgs[1])
    deep = peers.features(d, auto.saliency.peers, deep=True)
    assert peers.features(d, explicit.saliency.peers, deep=True) is deep
    assert deep.shape == (18, 20, 320)  # 591 x 640 px of content
    assert peers.features(d, auto.saliency.peers).shape[:2] == (15, 16)  # the fine level: 64 px, stride 4
    first = pipe.run(imgs[0], prompts, auto, peers=peers).anomaly_map
    assert np.array_equal(pipe.run(imgs[0], prompts, explicit, peers=peers).anomaly_map, first)
    assert pipe.cache.hits["saliency"] >= 1  # the resolved size is the key: one entry for None and 640
    assert peers.features(d, small.saliency.peers, deep=True).shape == (4, 4, 320)
    assert not np.allclose(pipe.run(imgs[0], prompts, small, peers=peers).anomaly_map, first)
    rng = np.random.default_rng(6)
    sized = [rng.integers(0, 255, (s, s, 3), dtype=np.uint8) for s in (128, 128, 64)]
    for common, grids in ((True, [(8, 8), (8, 8), (4, 4)]), (False, [(8, 8)] * 3)):
        cfg = PeerConfig("batch", source_size=64, deep_size=256, common_scale=common)
        scaled = _peers(lite0_pipe, "leather", batch=sized)
        assert [tuple(scaled.features(image_digest(im), cfg, deep=True).shape[:2]) for im in sized] == grids


def test_feature_store_keeps_copies_side_by_side_in_few_blocks():
    store = FeatureStore(block_mib=1)  # 262144 float32 per block
    parts = [torch.randn(100, 50, 20, generator=torch.Generator().manual_seed(i)) for i in range(3)]  # 100000 each
    kept = [store.keep(p) for p in parts]
    assert all(torch.equal(k, p) and k.data_ptr() != p.data_ptr() for k, p in zip(kept, parts))
    assert len(store.blocks) == 2  # two fit in the first block, the third opens a second
    assert kept[1].data_ptr() == kept[0].data_ptr() + 100000 * 4  # side by side
    big = store.keep(torch.ones(300000))  # larger than a block: a block of its own size
    assert len(store.blocks) == 3 and store.blocks[-1].numel() == 300000 and torch.equal(big, torch.ones(300000))
    assert store.keep(torch.ones(4, dtype=torch.float64)).dtype == torch.float64 and len(store.blocks) == 4
    parts[0].zero_()  # the copies do not share memory with what was kept
    assert kept[0].abs().sum() > 0
