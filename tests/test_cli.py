"""The command line end to end (tiny models, real sample images, offline)."""
import json
import time

import numpy as np
import pytest
from PIL import Image

from saa_lib.cli import main


@pytest.fixture(autouse=True)
def _quiet_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_evaluate_folder_on_real_samples_with_tiny_models(samples_root, tmp_path, capsys):
    out = tmp_path / "ev"
    rc = main(["evaluate", "--dataset", "folder", "--root", str(samples_root / "mvtec_ad"), "--models", "tiny",
               "--device", "cpu", "--max-images", "2", "--out", str(out), "--save-maps"])
    assert rc == 0
    table = (out / "table1.md").read_text()
    methods = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| SAA")]
    assert "NOT MEANINGFUL" in table and {"SAA", "SAA+"} <= set(methods)
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("variant,category,n_images,pixel_max_f1") and len(rows) == 1 + 2 * 2
    maps = np.load(out / "maps" / "saa_plus" / "screw" / "maps.npy")
    assert maps.shape == (2, 400, 400)
    # the saved maps reproduce the table: anyone can recompute the metrics
    from saa_lib.metrics import pixel_max_f1

    masks = np.load(out / "maps" / "saa_plus" / "screw" / "masks.npy")
    row = next(r for r in rows if r.startswith("saa_plus,screw"))
    assert float(row.split(",")[3]) == pytest.approx(100 * pixel_max_f1(maps, masks), abs=0.006)


def test_ablation_writes_table2(samples_root, tmp_path):
    out = tmp_path / "ab"
    rc = main(["ablation", "--dataset", "folder", "--root", str(samples_root / "mtd"), "--models", "tiny",
               "--device", "cpu", "--max-images", "2", "--out", str(out)])
    assert rc == 0
    text = (out / "table2.md").read_text()
    variants = {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| SAA")}
    assert {f"SAA+ {label}" for label in ("w/o P^L", "w/o P^P", "w/o P^S", "w/o P^C")} | {"SAA+"} <= variants
    run = json.loads((out / "run.json").read_text())
    # five variants from one cached pass: each expensive stage computed once per image
    assert run["cache"]["misses"]["saliency"] == 2


def test_predict_writes_map_overlay_and_regions(samples_root, tmp_path):
    img = next((samples_root / "mvtec_ad" / "leather" / "test" / "poke").glob("*.png"))
    out = tmp_path / "pred"
    rc = main(["predict", str(img), "--category", "leather", "--models", "tiny", "--device", "cpu",
               "--variant", "saa", "--variant", "saa_plus", "--out", str(out)])
    assert rc == 0
    stem = f"{img.stem}_saa_plus"
    amap = np.load(out / f"{stem}_map.npy")
    h, w = np.asarray(Image.open(img)).shape[:2]
    assert amap.shape == (h, w)
    png = np.asarray(Image.open(out / f"{stem}_map.png"))
    assert png.dtype == np.uint16 and png.shape == (h, w)
    meta = json.loads((out / f"{stem}_regions.json").read_text())
    np.testing.assert_allclose(png / 65535 * meta["map_png_scale"], amap, atol=meta["map_png_scale"] / 65535)
    assert meta["meaningful"] is False and isinstance(meta["regions"], list)
    assert {"box", "mask_area", "score", "prompt", "removed_by"} <= set(meta["regions"][0])
    assert Image.open(out / f"{stem}_overlay.png").size == (w, h)


def test_unknown_category_without_prompt_is_a_clear_error(samples_root, tmp_path, capsys):
    img = next((samples_root / "mvtec_ad" / "leather" / "test" / "poke").glob("*.png"))
    rc = main(["predict", str(img), "--category", "teacup", "--models", "tiny", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "teacup" in err and "--prompt" in err and "bottle" in err


def test_download_weights_offline_names_url_and_path(tmp_path, capsys, monkeypatch):
    import saa_lib.weights.download as dl

    monkeypatch.setattr(dl, "reachable", lambda url, timeout=dl.CONNECT_TIMEOUT: False)
    t0 = time.perf_counter()
    rc = main(["download", "weights", "sam_vit_b"])
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert rc == 2 and "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth" in err
    assert "sam_vit_b_01ec64.pth" in err


def test_demo_offline_falls_back_to_real_saliency(tmp_path, capsys, monkeypatch):
    import saa_lib.weights.download as dl

    monkeypatch.setattr(dl, "reachable", lambda url, timeout=dl.CONNECT_TIMEOUT: False)
    rc = main(["demo", "--models", "official", "--device", "cpu", "--out", str(tmp_path / "demo"),
               "--data", str(tmp_path / "synthetic")])
    captured = capsys.readouterr()
    assert rc == 0 and "groundingdino_swint_ogc.pth" in captured.err and "missing" in captured.err
    table = (tmp_path / "demo" / "table1.md").read_text()
    assert "saliency_only" in table and "tf_efficientnet_lite0" in table
    assert (tmp_path / "demo" / "overlays.png").stat().st_size > 10_000
