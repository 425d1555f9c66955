"""The benchmark runs end to end on tiny models and reports every figure it promises (no timing is asserted)."""
import json

import numpy as np
import pytest

from saa_lib.engine import bench


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    with pytest.warns(UserWarning, match="not meaningful"):
        r = bench.run_bench("tiny", "cpu", n_images=1, out=out, knn_sides=(64, 96), repeats=1)
    return out, r


def test_bench_writes_json_and_markdown_with_every_figure(result):
    out, r = result
    assert json.loads((out / "bench.json").read_text())["ratios"] == r["ratios"]
    md = (out / "bench.md").read_text()
    for name in r["stages"]:
        assert name in md
    for key in ("one forward per prompt", "batched / one call per box", "five independent runs",
                "threshold change", "throughput"):
        assert any(key in k for k in r["ratios"]), key
    assert all(np.isfinite(v) and v > 0 for v in r["ratios"].values())
    assert [x["input_side"] for x in r["knn_scaling"]] == [64, 96]
    assert "not measured" in r["cuda"]["status"] and "CUDA: not measured" in md
    assert r["meaningful"] is False and "NOT meaningful" in md


def test_autocast_check_reports_speed_and_max_f1(tmp_path):
    from saa_lib.config import variant_config
    from saa_lib.data import generate_synthetic, open_dataset
    from saa_lib.prompts.language import category_prompts
    from saa_lib.weights.zoo import load_models

    ds = open_dataset("synthetic", generate_synthetic(tmp_path / "syn", seed=1, n_good=0, n_defect=1))
    cat = ds.categories[0]
    with pytest.warns(UserWarning, match="not meaningful"):
        models = load_models("tiny", seed=0)
    r = bench.autocast_check(models, ds.samples(cat)[:1], category_prompts(cat, "synthetic"),
                             variant_config("saa_plus"), dtypes=())
    assert set(r) == {"fp32"} and r["fp32"]["images_per_s"] > 0 and 0 <= r["fp32"]["pixel_max_f1"] <= 100


def _hand_built_result(cuda: dict) -> dict:
    return {"machine": {"cpu": "test"}, "device": "cuda", "models": "tiny (NOT meaningful)", "meaningful": False,
            "images": 1, "stages": {"generator": {"ms": 12.345, "peak_mib": 3.0}, "SAM": {"ms": 1.0, "peak_mib": 0.5}},
            "ratios": {"a / b": 0.25}, "cuda": cuda,
            "knn_scaling": [{"input_side": 64, "pixels_at_stride4": 256, "ms": 2.25, "peak_mib": 1.0}]}


def test_bench_tables_known_answers_and_an_unmeasured_delta_is_na():
    from saa_lib import frames

    cuda = {"fp32": {"images_per_s": 10.0, "pixel_max_f1": 41.5},
            "bf16": {"images_per_s": 20.0, "pixel_max_f1": 41.25, "max_f1_delta_vs_fp32_pt": -0.25}}
    tables = bench.bench_tables(_hand_built_result(cuda))
    assert list(tables) == ["stages", "ratios", "knn", "cuda"]
    assert list(tables["stages"].columns) == ["stage", "ms", "peak MiB"]
    assert tables["stages"]["ms"].tolist() == [12.345, 1.0]
    stages = frames.markdown(tables["stages"]).splitlines()
    assert [c.strip() for c in stages[2].strip("|").split("|")] == ["generator", "12.3", "3.0"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in frames.markdown(tables["cuda"]).splitlines()]
    assert rows[0] == ["precision", "images/s", "max-F1-pixel", "delta vs fp32 (pt)"]
    assert rows[2] == ["fp32", "10", "41.5", "-"]  # fp32 is the reference: no delta, not 0
    assert rows[3] == ["bf16", "20", "41.25", "-0.25"]
    md = bench.to_markdown(_hand_built_result({"status": "not measured: no GPU"}))
    assert "CUDA: not measured: no GPU." in md and "| generator " in md and "cuda" not in bench.bench_tables(
        _hand_built_result({"status": "x"}))
