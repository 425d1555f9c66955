"""The README's "Your own images" section, followed literally on fresh folders in each layout it shows.

The commands are read out of README.md's fenced block (so the test fails when the README and the command line drift
apart) and run as written, in a temporary folder that holds the data under the name the commands use. The images
are real MVTec AD screws when ``../shared/data/samples`` is here (downscaled to keep the test short), otherwise
synthetic washers; three have a defect mask and two are good images without one. The command with the official
weights cannot run here: it must end with the missing files and the offline command, which must be the README's.
"""
from __future__ import annotations

import csv
import json
import re
import shlex
import time
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import saa_lib.weights.download as dl
from saa_lib.cli import build_parser, main

from conftest import ROOT, SAMPLES  # noqa: E402  (the project root; $SAA_SAMPLES, else ../shared/data/samples)

SIDE = 256  #: pixels per side of the images written (real samples are downscaled to it)
DEFECTIVE, GOOD = ("001", "002", "003"), ("004", "005")


def readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Your own images", 1)[1].split("\n## ", 1)[0]


def readme_commands() -> dict[str, list[str]]:
    """The commands of the section's ``bash`` block, by role: ``offline``, ``download``, ``weights``; each as argv
    (program first)."""
    block = re.search(r"```bash\n(.*?)```", readme_section(), re.S).group(1)
    lines = [shlex.split(x) for x in block.splitlines() if x.strip() and not x.lstrip().startswith("#")]
    assert all(argv[0].endswith("saa") for argv in lines), "every command of the block runs saa"
    roles = {"download": [a for a in lines if a[1] == "download"],
             "offline": [a for a in lines if a[1] == "evaluate" and "saliency_only" in a],
             "weights": [a for a in lines if a[1] == "evaluate" and "saliency_only" not in a]}
    assert all(len(v) == 1 for v in roles.values()), f"expected one command of each role in the block: {lines}"
    return {k: v[0] for k, v in roles.items()}


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def images() -> list[tuple[np.ndarray, np.ndarray]]:
    """Five (image (SIDE, SIDE, 3) uint8, mask (SIDE, SIDE) bool): three with a defect, then two good ones."""
    screw = SAMPLES / "mvtec_ad" / "screw"
    if screw.is_dir():
        defects = sorted(p for p in (screw / "test").glob("*/*.png") if p.parent.name != "good")[:3]
        goods = sorted((screw / "test" / "good").glob("*.png"))[:2]
        masks = [screw / "ground_truth" / p.parent.name / f"{p.stem}_mask.png" for p in defects]
        out = [(Image.open(p).convert("RGB"), Image.open(m)) for p, m in zip(defects, masks)]
        out += [(Image.open(p).convert("RGB"), None) for p in goods]
        return [(np.asarray(im.resize((SIDE, SIDE), Image.BILINEAR)),
                 np.zeros((SIDE, SIDE), bool) if m is None else np.asarray(m.resize((SIDE, SIDE), Image.NEAREST)) > 0)
                for im, m in out]
    from saa_lib.data import synthesize

    made = [synthesize("washer", d, index=i, size=SIDE) for i, d in enumerate(("hole", "scratch", "stain"))]
    made += [synthesize("washer", "good", index=i, size=SIDE) for i in range(2)]
    return [(s.image, s.mask) for s in made]


def write_folder(root: Path, layout: str) -> int:
    """The README's layouts under ``root``: ``masks`` (flat, masks/<stem>.png), ``beside`` (flat, <stem>_mask.png)
    or ``mvtec`` (one category folder, ``part``); the good images have no mask. Returns the number of images."""
    pairs = images()
    assert all(m.any() for _, m in pairs[:3]) and not any(m.any() for _, m in pairs[3:])
    for stem, (image, mask) in zip(DEFECTIVE + GOOD, pairs):
        defective = stem in DEFECTIVE
        if layout == "mvtec":
            folder = root / "part" / "test" / ("defect" if defective else "good")
            mask_path = root / "part" / "ground_truth" / "defect" / f"{stem}_mask.png"
        else:
            folder = root
            mask_path = root / "masks" / f"{stem}.png" if layout == "masks" else root / f"{stem}_mask.png"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{stem}.png")
        if defective:
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
    return len(pairs)


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``argv`` as the README writes it (its program is the ``saa`` entry point, run here in this process)."""
    rc = main(argv[1:])
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return rc, out, err


def test_the_readme_commands_are_the_saa_entry_point():
    assert [e.value for e in entry_points(group="console_scripts", name="saa")] == ["saa_lib.cli:main"]
    commands = readme_commands()
    assert all(argv[0] == ".venv/bin/saa" for argv in commands.values())
    assert option(commands["offline"], "--root") == option(commands["weights"], "--root")
    assert "--object" in commands["offline"] and "--object" in commands["weights"]
    section = readme_section()
    for form in ("masks/<stem>.png", "<stem>_mask.png", "test/good", "ground_truth/<defect type>/<stem>_mask.png"):
        assert form in section


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    """One SAA_HOME (weights folder and stage cache) for the three layouts: the same images, computed once."""
    return tmp_path_factory.mktemp("own_images_home")


@pytest.mark.parametrize("layout", ["masks", "beside", "mvtec"])
def test_readme_offline_command_runs_first_time_in_each_layout(layout, tmp_path, monkeypatch, capsys, shared_home):
    monkeypatch.setenv("SAA_HOME", str(shared_home))
    argv = readme_commands()["offline"]
    root, out = tmp_path / option(argv, "--root"), tmp_path / option(argv, "--out")
    n = write_folder(root, layout)
    monkeypatch.chdir(tmp_path)
    rc, printed, err = run(capsys, argv)
    assert rc == 0, err
    category = "part" if layout == "mvtec" else root.name
    if layout != "mvtec":  # the two good images without a mask: normal, said once with their count
        said = [x for x in err.splitlines() if "without a mask" in x]
        assert len(said) == 1 and f"{category}: 2 images without a mask are taken as normal" in said[0]
    rows = list(csv.DictReader((out / "metrics.csv").open(encoding="utf-8")))
    assert [(r["variant"], r["category"], int(r["n_images"])) for r in rows] == [("saliency_only", category, n)]
    assert rows[0]["image_auroc"] != "n/a", "both classes are counted: the no-mask images as normal"
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["n_images"] == {category: n} and record["object_words"] == {category: option(argv, "--object")}
    assert record["saliency_backbone"] == "tf_efficientnet_lite0" and record["meaningful"] is True
    maps_table = (out / "table1.md").read_text(encoding="utf-8")
    assert "tf_efficientnet_lite0" in maps_table and "P^S map only" in maps_table
    assert f"wrote {out / 'table1.md'}" in printed


def test_readme_weights_commands_name_the_missing_files_and_the_offline_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dl, "reachable", lambda url, timeout=dl.CONNECT_TIMEOUT: False)  # offline, fast
    commands = readme_commands()
    write_folder(tmp_path / option(commands["weights"], "--root"), "masks")
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    rc, _, err = run(capsys, commands["download"])
    assert rc == 2 and "sam_vit_h_4b8939.pth" in err and "--variant saliency_only" in err
    rc, _, err = run(capsys, commands["weights"])
    assert time.perf_counter() - t0 < 60
    assert rc == 2 and "groundingdino_swint_ogc.pth" in err and "sam_vit_h_4b8939.pth" in err
    assert not (tmp_path / option(commands["weights"], "--out")).exists(), "a failed run leaves no results folder"
    hint = [x for x in err.splitlines() if "runs offline: " in x]
    assert len(hint) == 1
    suggested = shlex.split(hint[0].split("runs offline: ", 1)[1])
    readme = commands["offline"]
    assert suggested[1:] == readme[1:], "the offline command the error names is the README's"
    assert vars(build_parser().parse_args(suggested[1:])) == vars(build_parser().parse_args(readme[1:]))


def test_readme_predict_line_names_the_offline_form_and_that_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dl, "reachable", lambda url, timeout=dl.CONNECT_TIMEOUT: False)
    line = re.search(r"`(saa predict [^`]+)`", readme_section()).group(1)
    argv = shlex.split(line)
    paths = [a for a in argv[2:] if a.endswith(".png")]
    for path, (image, _) in zip(paths, images()):
        Image.fromarray(image).save(tmp_path / path)
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, argv)
    assert rc == 2 and "groundingdino_swint_ogc.pth" in err
    offline = shlex.split(next(x for x in err.splitlines() if "runs offline: " in x).split("runs offline: ", 1)[1])
    assert offline[1:] == argv[1:] + ["--variant", "saliency_only"]
    rc, printed, err = run(capsys, offline)
    assert rc == 0, err
    out = tmp_path / option(argv, "--out")
    for path in paths:
        stem = Path(path).stem
        assert (out / f"{stem}_saliency_only_overlay.png").is_file()
        assert re.search(rf"{re.escape(path)} \[saliency_only\] image score \d\.\d{{4}} \(max of the anomaly map",
                         printed)
