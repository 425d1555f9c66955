"""Scale-out over Ray: a local two-CPU cluster, tiny models, results bit-identical to the single-process run."""
import json
import logging
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from saa_lib.cli import main
from saa_lib.config import variant_config
from saa_lib.data import generate_synthetic, open_dataset
from saa_lib.engine.distributed import PipelineSpec, RayScorer
from saa_lib.engine.evaluate import evaluate, write_metrics_csv

ray = pytest.importorskip("ray")

CONFIGS = [variant_config("saa"), variant_config("saa_plus")]
SPEC = PipelineSpec(kind="tiny", seed=0, device="cpu", cache=False)
ACTORS = 2  # one CPU each: each actor runs torch with 1 thread


@pytest.fixture(autouse=True)
def _quiet_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = generate_synthetic(tmp_path_factory.mktemp("ray") / "synthetic", seed=3, n_good=2, n_defect=2,
                              categories=("washer",), train_good=0)
    return open_dataset("synthetic", root)


@pytest.fixture(scope="module")
def reference(dataset):
    """The single-process run, with the actors' torch thread count (CPU kernels round by thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return evaluate(dataset, SPEC.build(), CONFIGS, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def _same_metrics(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_ray_scorer_reproduces_the_single_process_run(cluster, dataset, reference):
    with RayScorer(SPEC, actors=ACTORS) as scorer:
        runs = evaluate(dataset, None, CONFIGS, progress=False, scorer=scorer)
        per_actor = ray.get([a.cache_stats.remote() for a in scorer.handles])
        stats, execution = scorer.cache_stats(), scorer.execution()
        assert "tiny" in scorer.describe() and scorer.meaningful is False
    assert execution["actors"] == ACTORS and execution["torch_threads"] == 1
    assert all(s["misses"].get("saliency", 0) >= 1 for s in per_actor)  # both actors scored images
    assert stats["misses"]["saliency"] == len(reference[0].labels)  # summed over the actors
    assert [(r.variant, r.category) for r in runs] == [(r.variant, r.category) for r in reference]
    for got, want in zip(runs, reference):
        assert got.names == want.names
        np.testing.assert_array_equal(got.labels, want.labels)
        assert np.array_equal(got.masks, want.masks)
        assert np.array_equal(got.maps, want.maps), got.variant
        assert got.maps.flags.writeable
        assert [x.regions_json() for x in got.results] == [x.regions_json() for x in want.results]
        assert [x.image_score for x in got.results] == [x.image_score for x in want.results]
        assert _same_metrics(got.metrics, want.metrics), (got.metrics, want.metrics)


def test_cli_evaluate_with_ray(cluster, dataset, reference, tmp_path):
    out = tmp_path / "ev"
    rc = main(["evaluate", "--dataset", "synthetic", "--root", str(dataset.root), "--models", "tiny", "--device", "cpu",
               "--no-cache", "--save-maps", "--ray", "--ray-actors", str(ACTORS), "--out", str(out),
               "--saliency-backbone", SPEC.saliency_backbone])
    assert rc == 0
    assert (out / "metrics.csv").read_text() == write_metrics_csv(reference, tmp_path / "ref.csv").read_text()
    for run in reference:
        assert np.array_equal(np.load(out / "maps" / run.variant / "washer" / "maps.npy"), run.maps)
    meta = json.loads((out / "run.json").read_text())
    assert meta["execution"]["mode"] == "ray" and meta["execution"]["actors"] == ACTORS
    assert meta["cache"]["misses"]["saliency"] == len(reference[0].labels)
    assert "NOT MEANINGFUL" in (out / "table1.md").read_text()
    assert ray.is_initialized()  # a cluster the command did not start is left running


def test_without_ray_installed_the_error_says_how_to_install(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    rc = main(["evaluate", "--dataset", "synthetic", "--root", str(dataset.root), "--models", "tiny", "--device", "cpu",
               "--ray", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "--ray needs Ray" in err and "pip install" in err


def test_importing_the_library_does_not_import_ray():
    code = "import sys, saa_lib.cli, saa_lib.engine.distributed, saa_lib.engine.evaluate; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
