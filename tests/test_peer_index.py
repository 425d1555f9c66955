"""The patch index of batch P^S (saa_lib.peers.index) against the exact search: known answers, the fill rule, order
independence, the tolerance on a hand-built case and on real features, and the device search."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from saa_lib import metrics as M
from saa_lib.config import variant_config
from saa_lib.peers import PeerSaliency, with_peers
from saa_lib.peers import sources as S
from saa_lib.peers.index import DeviceBanks, PatchIndex, default_nlist, flat_rows
from saa_lib.peers.store import FeatureStore
from saa_lib.pipeline import SAAPipeline
from saa_lib.prompts.language import category_prompts
from saa_lib.weights.zoo import load_saliency_only

#: the tolerance of the patch index against the exact search, per category (pixel AUROC; max-F1 in [0, 1])
AUROC_TOLERANCE, F1_TOLERANCE = 0.003, 0.01


def _clustered(n_images=8, side=12, dim=24, seed=0, planted=None, directions=12, per_image=12):
    """``n_images`` (side, side, dim) unit feature grids, each drawn around ``per_image`` of ``directions`` shared
    'normal' directions; ``planted``: {image: number of cells} that get an anomalous direction of their own (a
    (side * side,) truth mask each)."""
    gen = torch.Generator().manual_seed(seed)
    basis = F.normalize(torch.randn(directions, dim, generator=gen), dim=1)
    grids, truths = [], []
    for i in range(n_images):
        mine = torch.randperm(directions, generator=gen)[:per_image]
        idx = mine[torch.randint(per_image, (side * side,), generator=gen)]
        f = F.normalize(basis[idx] + 0.15 * torch.randn(side * side, dim, generator=gen), dim=1)
        truth = torch.zeros(side * side, dtype=torch.bool)
        if planted and i in planted:
            where = torch.randperm(side * side, generator=gen)[:planted[i]]
            odd = F.normalize(torch.randn(dim, generator=gen), dim=0)
            f[where] = F.normalize(odd + 0.15 * torch.randn(len(where), dim, generator=gen), dim=1)
            truth[where] = True
        grids.append(f.reshape(side, side, dim))
        truths.append(truth)
    return grids, truths


def _flat(grids):
    return [g.reshape(-1, g.shape[-1]) for g in grids]


#: the largest difference of one cosine computed by two matmuls of different shapes (BLAS picks its kernel, and so
#: the order of the products' sum, by the shapes): a few float32 ulps of 1
MATMUL_ROUNDING = 5e-7


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_every_list_probed_is_the_exact_search(dtype):
    """nprobe = nlist: every pair is known and each distance is the exact one (the same products; bit for bit where
    BLAS sums them in the same order, else within a few float32 ulps), and so is the whole map."""
    grids, _ = _clustered()
    banks = [b.to(dtype) for b in _flat(grids)]
    index = PatchIndex(banks, nlist=16)
    assert index.offsets[-1] == sum(len(b) for b in banks) and (np.diff(index.offsets) > 0).sum() > 1
    for q in (0, 5):
        others = [j for j in range(len(grids)) if j != q]
        views = [grids[q].reshape(-1, 24), torch.rot90(grids[q], 1, (0, 1)).reshape(-1, 24)]
        exact = S.batch_distances(views, [banks[j] for j in others])
        got, known = index.distances(views, others, nprobe=16)
        assert known == 1.0 and (got - exact).abs().max() <= MATMUL_ROUNDING
        # and the whole map, the stride-32 level included
        deep = (grids[q][::3, ::3], [grids[j][::3, ::3].reshape(-1, 24) for j in others], [])
        ref = S.source_map(grids[q], [banks[j] for j in others], "batch", (24, 24), 0.3, 2.0,
                           turned=[torch.rot90(grids[q], 1, (0, 1))], peer_quantile=0.1, deep=deep, deep_weight=0.3)
        amap = S.source_map(grids[q], [], "batch", (24, 24), 0.3, 2.0, turned=[torch.rot90(grids[q], 1, (0, 1))],
                            peer_quantile=0.1, deep=deep, deep_weight=0.3,
                            search=lambda v: index.distances(v, others, 16)[0])
        np.testing.assert_allclose(amap, ref, rtol=1e-5, atol=0)


def test_unknown_pairs_are_filled_with_the_largest_known_distance_or_the_probe_distance():
    """Two far clusters, two lists: images 0 and 1 lie in cluster A, image 2 in cluster B. A patch of A probing one
    list finds images 0 and 1 and not image 2, whose distance is max(largest known distance, distance to the probed
    centroid)."""
    gen = torch.Generator().manual_seed(1)
    a, b = torch.eye(8)[0], torch.eye(8)[1]
    near = lambda c, n: F.normalize(c + 0.05 * torch.randn(n, 8, generator=gen), dim=1)  # noqa: E731
    banks = [near(a, 30), near(a, 30), near(b, 30)]
    index = PatchIndex(banks, nlist=2, iters=5)
    query = near(a, 4)
    d, known = index.distances([query], [0, 1, 2], nprobe=1)
    assert known == pytest.approx(2 / 3)
    exact = S.batch_distances([query], banks)
    assert (d[:, :2] - exact[:, :2]).abs().max() <= MATMUL_ROUNDING
    centroid = torch.from_numpy(index.centroids.reconstruct(int(np.argmax(index.centroids.reconstruct_n(0, 2) @
                                                                          query[0].numpy()))))
    probe = 1.0 - query @ centroid
    expected = torch.maximum(exact[:, :2].amax(1), probe)
    torch.testing.assert_close(d[:, 2], expected, rtol=0, atol=1e-6)
    assert (d[:, 2] < exact[:, 2]).all()  # filled below the true (far) distance, above every known one
    assert (d[:, 2] >= d[:, :2].amax(1)).all()


def test_hand_built_category_within_tolerance_of_the_exact_search():
    """60 images, 5 carrying a planted anomaly: the index map (about 900 patches per list over 8640 patches, probing
    half of them would be exact-like; here 16 of 64 lists of ~135) ranks pixels as the exact search does."""
    grids, truths = _clustered(n_images=60, planted={i: 9 for i in range(0, 60, 12)}, seed=3, directions=48,
                               per_image=16)
    banks = _flat(grids)
    index = PatchIndex([b.half() for b in banks], nlist=default_nlist(sum(map(len, banks)), list_size=135))
    assert index.nlist == 64
    maps = {"exact": [], "index": []}
    shares = []
    for q in range(0, 60, 6):
        others = [j for j in range(60) if j != q]
        exact = S.batch_aggregate(S.batch_distances([banks[q]], [banks[j] for j in others]), 0.1, 0.1)
        d, share = index.distances([banks[q]], others, nprobe=16)
        maps["exact"].append(exact.numpy())
        maps["index"].append(S.batch_aggregate(d, 0.1, 0.1).numpy())
        shares.append(share)
    truth = np.stack([truths[q].numpy() for q in range(0, 60, 6)])[:, None]
    got = {k: (M.pixel_auroc(np.stack(v)[:, None], truth), M.pixel_max_f1(np.stack(v)[:, None], truth))
           for k, v in maps.items()}
    assert min(shares) < 1.0  # some pairs were unknown: the index did not search everything
    assert got["exact"][0] > 0.9  # the planted cells are found at all
    assert abs(got["index"][0] - got["exact"][0]) <= AUROC_TOLERANCE
    assert abs(got["index"][1] - got["exact"][1]) <= F1_TOLERANCE


def test_index_is_deterministic_and_does_not_depend_on_the_order_of_the_images():
    """Built twice it files every patch under the same list; through PeerSaliency, a shuffled batch gives the same
    maps bit for bit (the columns follow the sorted digests)."""
    grids, _ = _clustered(n_images=10, seed=4)
    one, two = PatchIndex(_flat(grids), nlist=32), PatchIndex(_flat(grids), nlist=32)
    assert torch.equal(one.rows, two.rows) and np.array_equal(one.offsets, two.offsets)
    models = load_saliency_only("wide_resnet50_2", kind="tiny")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 72, 3), dtype=np.uint8) for _ in range(5)]
    cfg = with_peers(variant_config("saliency_only", "paper").with_(eval_resolution=48), source="batch",
                     source_size=96, list_size=20, nprobe=2)
    prompts, pipe = category_prompts("screw", "mvtec"), SAAPipeline(models)
    peers = PeerSaliency(models, category="screw", batch=images)
    first = [pipe.run(im, prompts, cfg, peers=peers).anomaly_map for im in images]
    exact = pipe.run(images[0], prompts, with_peers(cfg, search="exact"), peers=peers).anomaly_map
    assert not np.allclose(exact, first[0], rtol=1e-4, atol=0)  # the index was searched approximately
    shuffled = PeerSaliency(models, category="screw", batch=[images[i] for i in (3, 1, 4, 0, 2)])
    for im, m in zip(images, first):
        assert np.array_equal(pipe.run(im, prompts, cfg, peers=shuffled).anomaly_map, m)


def test_flat_rows_references_banks_kept_side_by_side():
    store = FeatureStore(block_mib=1)
    banks = [store.keep(torch.randn(5, 4, 8).half()) for _ in range(3)]
    flat = flat_rows([b.reshape(-1, 8) for b in banks])
    assert flat.shape == (60, 8) and flat.data_ptr() == banks[0].data_ptr()
    assert torch.equal(flat[20:40], banks[1].reshape(-1, 8))
    apart = [torch.randn(3, 8), torch.randn(2, 8)]
    assert torch.equal(flat_rows(apart), torch.cat(apart))


def test_default_nlist_known_values():
    assert default_nlist(9216 * 100) == 1024 and default_nlist(9216 * 25) == 256 and default_nlist(9216 * 200) == 2048
    assert default_nlist(1000) == 16  # at least nprobe lists: a small batch is searched exactly
    with pytest.raises(ValueError):
        default_nlist(0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_device_banks_equal_the_exact_search_on_this_device(dtype):
    """The GPU search is device-agnostic torch: run on the CPU it equals the exact search (groups of equal-size
    images in one matmul, a last group of another size)."""
    grids, _ = _clustered(n_images=7, seed=5)
    banks = _flat(grids) + [F.normalize(torch.randn(50, 24), dim=1)]
    views = [banks[2], banks[3].flip(0)]
    others = [0, 1, 3, 4, 5, 6, 7]
    exact = S.batch_distances(views, [banks[j].to(dtype) for j in others])
    got = DeviceBanks(banks, "cpu", dtype=dtype, group=3).distances(views, others)
    assert (got - exact).abs().max() <= MATMUL_ROUNDING


def test_device_banks_on_cuda_equal_the_cpu_search():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: the CUDA search is checked on the CPU only")
    grids, _ = _clustered(n_images=9, seed=6)
    banks, others = _flat(grids), list(range(1, 9))
    torch.backends.cuda.matmul.allow_tf32 = False
    cpu = DeviceBanks(banks, "cpu").distances([banks[0]], others)
    gpu = DeviceBanks(banks, "cuda").distances([banks[0].cuda()], others).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=1e-5)
    half = DeviceBanks(banks, "cuda", dtype=torch.float16).distances([banks[0].cuda()], others).cpu()
    torch.testing.assert_close(half, cpu, rtol=0, atol=2e-3)


def test_real_features_within_tolerance_of_the_exact_search(samples_root):
    """The real MTD sample tiles (13 test images, tf_efficientnet_lite0 ImageNet features at 256 px, one turn): the
    default index (nprobe 16) and a finer one (list_size 200: 16 of 256 lists probed) stay within 0.003 pixel AUROC
    and 1 max-F1 point of the exact search."""
    from saa_lib.data import open_dataset
    from saa_lib.engine.evaluate import eval_mask, labelled

    ds = open_dataset("folder", samples_root / "mtd")
    (cat,) = ds.categories
    samples = labelled(ds.samples(cat), cat)
    images = [s.load_image() for s in samples]
    masks = np.stack([eval_mask(s, 128) for s in samples])
    models = load_saliency_only("tf_efficientnet_lite0", kind="official")
    base = with_peers(variant_config("saliency_only", "paper").with_(
        eval_resolution=128, saliency={"backbone": "tf_efficientnet_lite0"}), source="batch", source_size=256)
    peers = PeerSaliency(models, category=cat, batch=images)
    pipe = SAAPipeline(models)
    prompts = category_prompts(cat, getattr(ds, "table", None))
    scores, shares = {}, {}
    for name, cfg in (("exact", with_peers(base, search="exact")), ("index", base),
                      ("index200", with_peers(base, list_size=200))):
        maps, share = [], []
        for im in images:
            maps.append(pipe.run(im, prompts, cfg, peers=peers).anomaly_map)
            share.append(peers.known_share)
        maps = np.stack(maps)
        scores[name] = (M.pixel_auroc(maps, masks), M.pixel_max_f1(maps, masks))
        shares[name] = min(share)
    assert shares["index200"] < 1.0
    for name in ("index", "index200"):
        assert abs(scores[name][0] - scores["exact"][0]) <= AUROC_TOLERANCE, (name, scores)
        assert abs(scores[name][1] - scores["exact"][1]) <= F1_TOLERANCE, (name, scores)


def test_cli_exact_and_nprobe_reach_the_config_and_fewshot_resolves_to_exact():
    from saa_lib.cli import build_parser, configs_from_args
    from saa_lib.peers import PeerConfig

    base = ["evaluate", "--dataset", "folder", "--out", "o", "--saliency-source", "batch"]
    (cfg,) = configs_from_args(build_parser().parse_args(base), ["saliency_only"])
    assert (cfg.saliency.peers.search, cfg.saliency.peers.nprobe) == ("index", 16)
    (cfg,) = configs_from_args(build_parser().parse_args(base + ["--exact", "--nprobe", "8"]), ["saliency_only"])
    assert (cfg.saliency.peers.search, cfg.saliency.peers.nprobe) == ("exact", 8)
    # settings that play no part share one cache entry: few-shot and the exact search resolve to the defaults
    assert PeerConfig(source="fewshot", nprobe=4).resolved("screw", True).search == "exact"
    assert PeerConfig(search="exact", nprobe=4).resolved("screw", True) == PeerConfig().resolved("screw", True, True)
    assert PeerConfig(nprobe=4).resolved("screw", True).nprobe == 4
    for bad in (dict(search="ivf"), dict(nprobe=0), dict(list_size=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PeerConfig(**bad)


def test_scaling_categories_are_deterministic_nested_and_keep_their_labels(samples_root, tmp_path):
    """The scaling benchmark's categories: the same files every time, N = 25 inside N = 30, the real test images
    first, every defective image with a mask that still holds its defect."""
    from PIL import Image

    from saa_lib.engine.scaling import build_categories

    one = build_categories(samples_root, tmp_path / "a", sizes=(25, 30), categories=("mtd",))
    two = build_categories(samples_root, tmp_path / "b", sizes=(25, 30), categories=("mtd",))
    assert one == two
    entry = one["categories"]["mtd"]
    assert len(entry["images"]) == 30 and entry["queries"] == [i["name"] for i in entry["images"][:len(
        entry["queries"])]]
    assert all(i["transform"] == ["orig"] for i in entry["images"][:len(entry["queries"])])
    assert all(not {"turn1", "mirror_lr"} & set(i["transform"]) for i in entry["images"])  # tiles keep their light
    for n in (25, 30):
        files = sorted((tmp_path / "a" / f"N{n}" / "mtd" / "test").rglob("*.png"))
        assert len(files) == n
    small = {p.name for p in (tmp_path / "a" / "N25" / "mtd" / "test").rglob("*.png")}
    assert small <= {p.name for p in (tmp_path / "a" / "N30" / "mtd" / "test").rglob("*.png")}
    for info in entry["images"][:30]:
        img = tmp_path / "a" / "N30" / "mtd" / "test" / info["defect"] / f"{info['name']}.png"
        assert np.array_equal(np.array(Image.open(img)), np.array(Image.open(
            tmp_path / "b" / "N30" / "mtd" / "test" / info["defect"] / f"{info['name']}.png")))
        if info["defect"] != "good":
            mask = np.array(Image.open(tmp_path / "a" / "N30" / "mtd" / "ground_truth" / info["defect"] /
                                       f"{info['name']}_mask.png"))
            assert mask.shape == (400, 400) and mask.max() == 255


def test_scaling_bench_without_the_samples_is_one_line_exit_2(capsys, tmp_path):
    from saa_lib.cli import main

    assert main(["bench", "scaling", "--samples", str(tmp_path / "absent"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "sample images are not at" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
