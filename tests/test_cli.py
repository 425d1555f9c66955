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


def test_predict_writes_map_overlay_and_regions(samples_root, tmp_path, capsys):
    img = next((samples_root / "mvtec_ad" / "leather" / "test" / "poke").glob("*.png"))
    out = tmp_path / "pred"
    rc = main(["predict", str(img), "--category", "leather", "--models", "tiny", "--device", "cpu",
               "--variant", "saa", "--variant", "saa_plus", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert f"[saa_plus] image score" in printed and "max of the anomaly map" in printed
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
    assert meta["image_score"] == pytest.approx(float(amap.max()), rel=1e-4) and "max of" in meta["image_score_note"]
    figure = Image.open(out / f"{stem}_overlay.png")  # image | map over it, colour bar, titles: wider than the image
    assert figure.format == "PNG" and figure.size[0] > 1.5 * figure.size[1]


def test_predict_overlay_figure_has_title_scores_and_colour_bar():
    from types import SimpleNamespace

    from saa_lib.cli import overlay_figure
    from saa_lib.config import variant_config

    image = np.full((60, 90, 3), 128, np.uint8)
    amap = np.zeros((60, 90), np.float32)
    amap[10:20, 30:40] = 0.7
    models = SimpleNamespace(describe=lambda: "tiny random-init models (NOT meaningful); saliency x")
    result = SimpleNamespace(image_score=0.7)
    fig = overlay_figure(image, amap, result, "dir/part_07.png", variant_config("saa_plus"), models,
                         SimpleNamespace(object_word="screw"))
    title = fig.get_suptitle()
    assert "part_07.png" in title and "saa_plus" in title and "NOT meaningful" in title and "'screw'" in title
    image_ax, map_ax, bar_ax = fig.axes  # the image, the map over it, and the colour bar
    assert "image score 0.700" in map_ax.get_title() and "anomaly score" in bar_ax.get_ylabel()
    assert bar_ax.get_ylim()[1] == pytest.approx(0.7)


def actions_of(parser) -> list:
    """Every argument ``parser`` shows in its help, recorded by a help formatter as the help is written."""
    import argparse

    seen = []

    class Recorder(argparse.HelpFormatter):
        def add_argument(self, action):
            seen.append(action)
            super().add_argument(action)

    parser.formatter_class = Recorder
    parser.format_help()
    return seen


def test_every_option_of_every_command_has_help():
    import argparse

    from saa_lib.cli import build_parser

    commands = next(a.choices for a in actions_of(build_parser()) if isinstance(a.choices, dict))
    assert {"download", "predict", "evaluate", "ablation", "demo", "synthetic", "bench", "report",
            "export-models"} <= set(commands)
    for name, sub in commands.items():  # --help: usage, then a one-line description
        first = sub.format_help().split("\n\n")[1]
        assert first.strip() and "\n" not in first.strip(), f"saa {name} --help: no one-line description first"
    lacking = [f"saa {name} {a.option_strings[0] if a.option_strings else a.dest}"
               for name, sub in commands.items() for a in actions_of(sub)
               if a.dest != "help" and (not a.help or a.help == argparse.SUPPRESS)]
    assert len([a for a in actions_of(commands["evaluate"]) if a.dest != "help"]) > 30
    assert not lacking, "options without help: " + ", ".join(lacking)
    layouts = commands["evaluate"].format_help()
    for form in ("masks/<stem>.png", "<stem>_mask.png", "test/good", "ground_truth/<defect>/<stem>_mask.png",
                 "--variant saliency_only"):
        assert form in layouts
    assert "saa evaluate --dataset folder" in commands["predict"].format_help()


def test_ray_help_says_whether_ray_is_installed():
    import importlib.util

    from saa_lib.cli import build_parser

    commands = next(a.choices for a in actions_of(build_parser()) if isinstance(a.choices, dict))
    ray = next(a for a in actions_of(commands["evaluate"]) if "--ray" in a.option_strings)
    installed = importlib.util.find_spec("ray") is not None
    assert ("Ray is installed here" in ray.help) == installed and ("pip install" in ray.help) != installed


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


def test_make_setup_refuses_a_disk_too_full_for_the_venv(tmp_path):
    """A new .venv on a disk without room for it stops before pip, with one line that names the folder and the fix,
    and leaves no half-made .venv behind."""
    import re
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[1]
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(root / name, tmp_path / name)
    need = int(shutil.disk_usage(tmp_path).free / 2**30) + 10
    proc = subprocess.run(["make", "setup", f"SETUP_GB={need}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and not (tmp_path / ".venv").exists()
    said = [line for line in proc.stderr.splitlines() if not re.match(r"make(\[\d+\])?: ", line)]  # make's own
    assert len(said) == 1 and f"needs about {need} GB" in said[0] and str(tmp_path) in said[0], proc.stderr
    assert "free some space" in said[0]
