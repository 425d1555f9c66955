"""Bad inputs and faults, as a user meets them on the command line: each ends with the documented behaviour.

Every case checks the exit status, that the message names the file or setting, that no traceback is printed and that
no partial file is left (see docs/reliability.md). The command runs in this process (``saa_lib.cli.main``); where a
model run is needed it is the saliency-only variant (``tf_efficientnet_lite0``) on small images; the cases that must
fail before any model is built replace the model builder by one that fails the test.
"""
import errno
import hashlib
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saa_lib.cli import main, output_stems

FAST = ["--variant", "saliency_only", "--models", "tiny", "--saliency-backbone", "tf_efficientnet_lite0",
        "--device", "cpu"]


# ----------------------------------------------------------------------------------------------------------- helpers
def run(capsys, *argv):
    """(exit status, stdout, stderr) of ``saa argv``; stderr must hold no traceback."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return rc, out, err


def lines(err: str) -> list[str]:
    """The lines of stderr that are messages (progress bars left out)."""
    return [x for x in err.splitlines() if x.startswith("saa ")]


def png(path: Path, size=(64, 64), value=None, mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(int(hashlib.sha1(os.fsencode(path)).hexdigest()[:8], 16))
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    a = rng.integers(0, 255, shape, dtype=np.uint8) if value is None else np.full(shape, value, np.uint8)
    Image.fromarray(a).save(path)
    return path


def mvtec_tree(root: Path, category: str = "screw", empty_mask: bool = False, good: int = 2, bad: int = 1) -> Path:
    for i in range(good):
        png(root / category / "test" / "good" / f"{i:03d}.png")
    for i in range(bad):
        png(root / category / "test" / "crack" / f"{i:03d}.png")
        m = np.zeros((64, 64), np.uint8)
        if not empty_mask:
            m[20:40, 20:40] = 255
        Image.fromarray(m).save(png(root / category / "ground_truth" / "crack" / f"{i:03d}_mask.png", mode="L"))
    return root


@pytest.fixture
def no_models(monkeypatch):
    """Building models fails the test: the case must be refused before."""
    from saa_lib.engine.distributed import PipelineSpec

    def build(self, device=None):
        raise AssertionError("models were built before the bad input was found")

    monkeypatch.setattr(PipelineSpec, "build", build)


def leftovers(folder: Path) -> list[str]:
    """Temporary or staging files under ``folder`` (none may survive a run)."""
    return [str(p) for p in folder.rglob("*") if ".partial-" in p.name or ".old-" in p.name or p.name.endswith(".tmp")
            or p.name.endswith(".part")]


# ------------------------------------------------------------------------------------------- 1. unique output names
def test_output_names_mirror_the_inputs_only_when_stems_collide():
    assert output_stems(["x/a.png", "y/b.png"]) == ["a", "b"]
    assert output_stems(["d/a/000.png", "d/b/000.png"]) == ["a/000", "b/000"]
    assert output_stems(["d/a.png", "d/a.jpg", "d/b.png"]) == ["a.png", "a.jpg", "b"]


def test_predict_same_file_names_in_two_folders_keeps_both(tmp_path, capsys):
    a, b = png(tmp_path / "in" / "a" / "000.png"), png(tmp_path / "in" / "b" / "000.png")
    c = png(tmp_path / "in" / "b" / "001.jpg".replace(".jpg", ".png"))
    jpg = tmp_path / "in" / "b" / "001.jpg"
    Image.open(c).save(jpg)
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "predict", a, b, c, jpg, "--category", "screw", "--out", out, *FAST)
    assert rc == 0
    maps = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_map.npy"))
    assert maps == ["a/000_saliency_only_map.npy", "b/000_saliency_only_map.npy", "b/001.jpg_saliency_only_map.npy",
                    "b/001.png_saliency_only_map.npy"]
    # each output holds its own image's map (not the last one written)
    for name, src in (("a/000", a), ("b/000", b)):
        meta = json.loads((out / f"{name}_saliency_only_regions.json").read_text())
        assert meta["image"] == str(src)
    assert not np.array_equal(np.load(out / "a/000_saliency_only_map.npy"), np.load(out / "b/000_saliency_only_map.npy"))
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------------------------- 2. undefined metrics
def test_undefined_metrics_are_na_with_a_reason_and_left_out_of_the_mean(hand_runs):
    from saa_lib.engine.evaluate import warn_undefined
    from saa_lib.frames import markdown
    from saa_lib.workbook.report import metric_table

    runs = hand_runs({"good_only": [0, 0, 0], "bad_only": [1, 1], "mixed": [0, 1, 0, 1]})
    mixed = next(r for r in runs if r.category == "mixed")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # numpy's "Mean of empty slice" would show here
        table = markdown(metric_table(runs, "image_max_f1"))
        f1_table = markdown(metric_table(runs, "pixel_max_f1"))
        message = warn_undefined(runs)
    assert [str(w.message) for w in caught] == [message]  # one warning, nothing from numpy
    row = next(x for x in table.splitlines() if x.startswith("| SAA+"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:3] == ["n/a", "n/a"]  # not 0.00 (no anomalous image) nor 100.00 (no normal image)
    assert cells[3] == cells[4] == f"{100 * mixed.metrics['image_max_f1']:.2f}"  # mean of the defined value only
    assert "good_only: no anomalous image" in table and "bad_only: no normal image" in table
    f1_row = next(x for x in f1_table.splitlines() if x.startswith("| SAA+"))
    assert [c.strip() for c in f1_row.strip("|").split("|")][1] == "n/a" and "good_only: no anomalous pixel" in f1_table
    assert "good_only" in message and "bad_only" in message and "\n" not in message
    # a metric undefined everywhere: the mean is n/a too, without a numpy warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        only_good = markdown(metric_table(hand_runs({"good_only": [0, 0]}), "image_auroc"))
    only_row = next(x for x in only_good.splitlines() if x.startswith("| SAA+"))
    assert [c.strip() for c in only_row.strip("|").split("|")] == ["SAA+", "n/a", "n/a"]


def test_evaluate_good_only_category_prints_na_and_one_warning(tmp_path, capsys):
    root = mvtec_tree(tmp_path / "ds", "screw")
    for i in range(2):
        png(tmp_path / "ds" / "leather" / "test" / "good" / f"{i:03d}.png")
    out = tmp_path / "ev"
    rc, stdout, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", out, *FAST)
    assert rc == 0
    csv_rows = {r.split(",")[1]: r for r in (out / "metrics.csv").read_text().splitlines()[1:]}
    assert csv_rows["leather"].count("n/a") == 6 and "no anomalous image" in csv_rows["leather"]
    assert "n/a" in (out / "table1.md").read_text()
    warn = [x for x in lines(err) if "warning" in x and "undefined" in x]
    assert len(warn) == 1 and "leather" in warn[0]
    assert "Mean of empty slice" not in err and "RuntimeWarning" not in err


# ------------------------------------------------------------------------------ 3. atomic files, folder as a unit
def test_disk_full_while_writing_results_leaves_nothing(tmp_path, capsys, monkeypatch):
    root = mvtec_tree(tmp_path / "ds")
    out = tmp_path / "ev"
    real_save = np.save
    calls = []

    def save(fh, arr, *a, **k):  # the second map file hits a full disk half way
        calls.append(1)
        if len(calls) == 2:
            fh.write(b"\x93NUMPY partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(fh, arr, *a, **k)

    monkeypatch.setattr(np, "save", save)
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", out, "--save-maps", *FAST)
    assert rc == 2 and "No space left on device" in err and "masks.npy" in err
    assert len(lines(err)) == 1
    assert not out.exists() and leftovers(tmp_path) == []


def test_failed_rerun_keeps_the_earlier_results_whole(tmp_path, capsys, monkeypatch):
    root = mvtec_tree(tmp_path / "ds")
    out = tmp_path / "ev"
    assert run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", out, "--save-maps", *FAST)[0] == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    import saa_lib.workbook.report as report

    def broken(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "table1.md"))

    monkeypatch.setattr(report, "write_report", broken)
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", out, *FAST)
    assert rc == 2 and "table1.md" in err
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and leftovers(tmp_path) == []  # metrics.csv of the failed run never joined the old table


def test_rerun_replaces_the_folder_as_a_unit(tmp_path, capsys):
    root = mvtec_tree(tmp_path / "ds")
    out = tmp_path / "ev"
    assert run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", out, "--save-maps", *FAST)[0] == 0
    assert (out / "maps").is_dir()
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", out, *FAST)
    assert rc == 0 and "replaced the earlier results" in err
    assert not (out / "maps").exists()  # no stale maps of the earlier run beside the new metrics
    assert {p.name for p in out.iterdir()} == {"metrics.csv", "run.json", "table1.md", ".saa-files"}


def test_rerun_refuses_a_results_folder_holding_files_of_yours(tmp_path, capsys, no_models, monkeypatch):
    from saa_lib.engine.distributed import PipelineSpec

    root = mvtec_tree(tmp_path / "ds")
    out = tmp_path / "ev"
    monkeypatch.undo()  # a first, complete run
    assert run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", out, *FAST)[0] == 0
    monkeypatch.setattr(PipelineSpec, "build", lambda self, device=None: pytest.fail("models were built"))
    (out / "my notes.md").write_text("mine")
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", out, *FAST)
    assert rc == 2 and "my notes.md" in err and str(out) in err
    assert (out / "my notes.md").read_text() == "mine" and (out / "table1.md").is_file()


def test_out_folder_with_other_files_is_refused_before_models(tmp_path, capsys, no_models):
    root = mvtec_tree(tmp_path / "ds")
    out = tmp_path / "mine"
    (out / "notes.txt").parent.mkdir()
    (out / "notes.txt").write_text("keep me")
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", out, *FAST)
    assert rc == 2 and str(out) in err and "not the results of an earlier saa run" in err
    assert (out / "notes.txt").read_text() == "keep me" and leftovers(tmp_path) == []


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    from saa_lib.safeio import atomic_path, write_text

    target = write_text(tmp_path / "a.txt", "old")
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(target)  # the error names the file being written
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


# ------------------------------------------------------------------------------------------- 4. all-zero masks
def test_all_zero_mask_means_normal_in_every_layout(tmp_path):
    from saa_lib.data import open_dataset

    mv = mvtec_tree(tmp_path / "mv", "widget", empty_mask=True)
    flat = tmp_path / "flat" / "widget"
    png(flat / "000.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(flat / "000_mask.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mv_s = open_dataset("folder", mv).samples("widget")
        flat_s = open_dataset("folder", flat).samples("widget")
    bad = next(s for s in mv_s if s.image_path.name == "000.png" and "crack" in str(s.image_path))
    assert bad.label == 0 and flat_s[0].label == 0  # the same mask, the same label
    assert bad.defect_type == "crack" and bad.mask_path is None
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "all-zero mask" in msgs[0] and str(bad.image_path) in msgs[0]


# ---------------------------------------------------------------------------------------------- 5. long prompts
def test_prompt_over_the_token_limit_is_an_error_naming_it():
    from types import SimpleNamespace

    from saa_lib.config import variant_config
    from saa_lib.engine.evaluate import check_prompt_lengths
    from saa_lib.models.text import load_tokenizer, tiny_text_encoder_dir
    from saa_lib.prompts.language import PromptTooLongError, category_prompts

    tok = load_tokenizer(str(tiny_text_encoder_dir()))
    pipe = SimpleNamespace(models=SimpleNamespace(gdino=SimpleNamespace(tokenizer=tok, max_text_len=256)))
    cfg = variant_config("saa_plus")
    check_prompt_lengths(pipe, category_prompts("screw", extra=["scratch"]), [cfg])  # fine
    long = " ".join(["scratch"] * 300)
    with pytest.raises(PromptTooLongError, match="256 tokens") as info:
        check_prompt_lengths(pipe, category_prompts("screw", extra=[long]), [cfg])
    assert "'scratch scratch" in str(info.value) and "--prompt" in str(info.value)
    # many short prompts joined into one caption exceed it too
    many = [f"defect number {i}" for i in range(60)]
    check_prompt_lengths(pipe, category_prompts("screw", extra=many), [cfg])
    with pytest.raises(PromptTooLongError, match="single-caption"):
        check_prompt_lengths(pipe, category_prompts("screw", extra=many), [cfg.with_(single_caption=True)])
    # the saliency-only variant sends no caption
    check_prompt_lengths(pipe, category_prompts("screw", extra=[long]), [variant_config("saliency_only")])


@pytest.mark.slow
def test_predict_long_prompt_exits_2_before_scoring(tmp_path, capsys):
    img = png(tmp_path / "a.png")
    rc, _, err = run(capsys, "predict", img, "--category", "screw", "--prompt", " ".join(["scratch"] * 300),
                     "--models", "tiny", "--device", "cpu", "--variant", "saa_plus", "--out", tmp_path / "o")
    assert rc == 2 and "256 tokens" in err and "scratch scratch" in err
    assert not (tmp_path / "o").exists() and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- 7. output / cache checked up front
def test_out_is_an_existing_file(tmp_path, capsys, no_models):
    img = png(tmp_path / "a.png")
    (tmp_path / "o").write_text("x")
    rc, _, err = run(capsys, "predict", img, "--category", "screw", "--out", tmp_path / "o", *FAST)
    assert rc == 2 and str(tmp_path / "o") in err and "not a folder" in err
    assert (tmp_path / "o").read_text() == "x"


def test_out_in_a_read_only_place(tmp_path, capsys, no_models, monkeypatch):
    import tempfile

    img = png(tmp_path / "a.png")

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "ro"))

    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    rc, _, err = run(capsys, "predict", img, "--category", "screw", "--out", tmp_path / "ro" / "o", *FAST)
    assert rc == 2 and "Permission denied" in err and "ro" in err and len(lines(err)) == 1
    assert not (tmp_path / "ro" / "o").exists()


def test_failed_predict_leaves_no_out_folder(tmp_path, capsys, monkeypatch):
    img = png(tmp_path / "a.png")
    import saa_lib.pipeline as P

    def broken(self, *a, **k):
        raise ValueError("scoring failed")

    monkeypatch.setattr(P.SAAPipeline, "run_variants", broken)
    rc, _, err = run(capsys, "predict", img, "--category", "screw", "--out", tmp_path / "o", *FAST)
    assert rc == 2 and "scoring failed" in err
    assert not (tmp_path / "o").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("cache_dir", ["", "FILE/sub", "READONLY"])
def test_unusable_cache_dir_is_refused_before_models(tmp_path, capsys, no_models, monkeypatch, cache_dir):
    import tempfile

    img = png(tmp_path / "a.png")
    (tmp_path / "FILE").write_text("x")
    if cache_dir == "READONLY":
        (tmp_path / "READONLY").mkdir()
        real = tempfile.mkstemp

        def mkstemp(*a, dir=None, **k):
            if dir is not None and Path(dir) == tmp_path / "READONLY":
                raise PermissionError(errno.EACCES, "Permission denied", str(dir))
            return real(*a, dir=dir, **k)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    arg = str(tmp_path / cache_dir) if cache_dir else ""
    rc, _, err = run(capsys, "predict", img, "--category", "screw", "--out", tmp_path / "o", "--cache-dir", arg, *FAST)
    assert rc == 2 and "cache" in err and len(lines(err)) == 1
    if cache_dir:
        assert arg in err
    assert not (tmp_path / "o").exists() and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------ 8. wrong-hash checkpoint
@pytest.fixture
def fake_zoo_file(monkeypatch, tmp_path):
    """A zoo entry whose published content is ``good``; downloads of it are served locally."""
    import pooch

    from saa_lib.weights import download as dl
    from saa_lib.weights import registry, zoo

    good = b"the published checkpoint" * 100
    ck = zoo.Checkpoint("sam_vit_b", "https://example.invalid/sam.pth", "sam_vit_b_test.pth",
                        "sha256:" + hashlib.sha256(good).hexdigest(), len(good), "test file", "test")
    monkeypatch.setitem(zoo.CHECKPOINTS, "sam_vit_b", ck)
    monkeypatch.setattr(dl, "reachable", lambda url, timeout=dl.CONNECT_TIMEOUT: True)
    monkeypatch.setattr(registry, "hosts_reachable", lambda urls, timeout=None: {"example.invalid": True})

    def retrieve(url, known_hash, fname, path, downloader=None):
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=path)  # private, like pooch's own temporary file
        with os.fdopen(fd, "wb") as fh:
            fh.write(good)
        os.replace(tmp, Path(path) / fname)
        return str(Path(path) / fname)

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    return ck, good


def test_wrong_hash_checkpoint_is_one_line_and_force_replaces_it(fake_zoo_file, capsys):
    ck, good = fake_zoo_file
    ck.path.parent.mkdir(parents=True, exist_ok=True)
    ck.path.write_bytes(b"not the checkpoint")
    rc, _, err = run(capsys, "download", "weights", "sam_vit_b")
    assert rc == 2 and str(ck.path) in err and "--force" in err and len(lines(err)) == 1
    assert ck.path.read_bytes() == b"not the checkpoint"  # nothing replaced without --force
    rc, out, err = run(capsys, "download", "weights", "sam_vit_b", "--force")
    assert rc == 0 and ck.path.read_bytes() == good and str(ck.path) in out
    assert leftovers(ck.path.parent) == []


def test_wrong_hash_official_checkpoint_when_loading_models(capsys, tmp_path):
    from saa_lib.weights import zoo

    path = zoo.CHECKPOINTS["sam_vit_h"].path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"truncated")
    img = png(tmp_path / "a.png")
    rc, _, err = run(capsys, "predict", img, "--category", "screw", "--models", "official", "--no-download",
                     "--device", "cpu", "--out", tmp_path / "o")
    assert rc == 2 and str(path) in err and "md5" in err and len(lines(err)) == 1
    assert not (tmp_path / "o").exists()


def test_unknown_weights_name(capsys):
    rc, _, err = run(capsys, "download", "weights", "sam_vit_x")
    assert rc == 2 and "sam_vit_x" in err and "sam_vit_h" in err


# --------------------------------------------------------------------------------------------- 9. tracebacks
def test_device_cuda_without_gpu(tmp_path, capsys, no_models, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc, _, err = run(capsys, "predict", png(tmp_path / "a.png"), "--category", "screw", "--out", tmp_path / "o",
                     *FAST[:-2], "--device", "cuda")
    assert rc == 2 and "--device cuda" in err and len(lines(err)) == 1


@pytest.mark.parametrize("flag,value", [("--eval-resolution", "0"), ("--box-threshold", "1.5"), ("--top-k", "0"),
                                        ("--device", "gpu")])
def test_out_of_range_settings(tmp_path, capsys, no_models, flag, value):
    rc, _, err = run(capsys, "predict", png(tmp_path / "a.png"), "--category", "screw", "--out", tmp_path / "o",
                     *FAST, flag, value)
    assert rc == 2 and f"{flag} {value}" in err.replace("'", "") and len(lines(err)) == 1


def test_ctrl_c_during_evaluate(tmp_path, capsys, monkeypatch):
    import saa_lib.pipeline as P

    root = mvtec_tree(tmp_path / "ds")
    monkeypatch.setattr(P.SAAPipeline, "run_variants", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", tmp_path / "ev", *FAST)
    assert rc == 130 and lines(err) == ["saa evaluate: interrupted; cached stages kept; re-run resumes"]
    assert not (tmp_path / "ev").exists() and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------- 10. poor messages
def test_too_small_image_names_the_file(tmp_path, capsys, no_models):
    img = png(tmp_path / "tiny.png", size=(20, 50))
    rc, _, err = run(capsys, "predict", img, "--category", "screw", "--out", tmp_path / "o", *FAST)
    assert rc == 2 and str(img) in err and "20x50" in err


def test_too_small_image_in_a_dataset_says_which(tmp_path, capsys, no_models):
    root = mvtec_tree(tmp_path / "ds", good=3)
    small = png(root / "screw" / "test" / "good" / "001.png", size=(16, 16))
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", tmp_path / "ev", *FAST)
    assert rc == 2 and str(small) in err and "image 3 of 4" in err and "'screw'" in err


@pytest.mark.parametrize("spec", ["sam=/x.pth,gdino", "sam:/x.pth", "weights=/x.pth", "sam=,gdino=/y"])
def test_malformed_models_spec(tmp_path, capsys, no_models, spec):
    rc, _, err = run(capsys, "predict", png(tmp_path / "a.png"), "--category", "screw", "--out", tmp_path / "o",
                     "--models", spec)
    assert rc == 2 and "sam=PATH,gdino=PATH" in err and spec in err and len(lines(err)) == 1


def test_missing_input_is_found_before_models(tmp_path, capsys, no_models):
    rc, _, err = run(capsys, "predict", png(tmp_path / "a.png"), tmp_path / "nope.png", "--category", "screw",
                     "--out", tmp_path / "o", *FAST)
    assert rc == 2 and str(tmp_path / "nope.png") in err and len(lines(err)) == 1
    assert not (tmp_path / "o").exists()


def test_unreadable_file_stops_the_batch_naming_it(tmp_path, capsys, no_models):
    good = png(tmp_path / "a.png")
    broken = tmp_path / "b.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    rc, _, err = run(capsys, "predict", good, broken, "--category", "screw", "--out", tmp_path / "o", *FAST)
    assert rc == 2 and str(broken) in err and len(lines(err)) == 1
    assert not (tmp_path / "o").exists()


def test_keep_going_scores_the_rest_and_lists_failures(tmp_path, capsys):
    good = [png(tmp_path / "a.png"), png(tmp_path / "c.png")]
    broken = tmp_path / "b.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    small = png(tmp_path / "d.png", size=(8, 8))
    out = tmp_path / "o"
    rc, _, err = run(capsys, "predict", good[0], broken, good[1], small, "--category", "screw", "--out", out,
                     "--keep-going", *FAST)
    assert rc == 2
    assert sorted(p.name for p in out.glob("*_map.npy")) == ["a_saliency_only_map.npy", "c_saliency_only_map.npy"]
    summary = lines(err)[-1]
    assert "2 of 4 image(s) scored; 2 failed" in summary and str(broken) in summary and str(small) in summary
    run_record = json.loads((out / "run.json").read_text())
    assert [f["image"] for f in run_record["failed"]] == [str(broken), str(small)]


# --------------------------------------------------------------------------------------------------- 11. minor
def test_file_modes_follow_the_umask(tmp_path, capsys, fake_zoo_file):
    ck, _ = fake_zoo_file
    old = os.umask(0o002)
    try:
        out, cache = tmp_path / "o", tmp_path / "cache"
        assert run(capsys, "predict", png(tmp_path / "a.png"), "--category", "screw", "--out", out,
                   "--cache-dir", cache, *FAST)[0] == 0
        assert run(capsys, "download", "weights", "sam_vit_b")[0] == 0
    finally:
        os.umask(old)
    files = [*out.rglob("*.*"), *cache.rglob("*.npz"), ck.path]
    assert len(files) > 5
    for f in files:
        assert f.stat().st_mode & 0o777 == (0o775 if f.is_dir() else 0o664), f


def test_stale_download_temp_files_are_removed_by_the_next_download(fake_zoo_file, capsys):
    ck, _ = fake_zoo_file
    folder = ck.path.parent
    folder.mkdir(parents=True, exist_ok=True)
    stale, fresh = folder / "tmpab12cd34", folder / "tmpzz99yy88"
    for p in (stale, fresh):
        p.write_bytes(b"partial download")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert run(capsys, "download", "weights", "sam_vit_b")[0] == 0
    assert not stale.exists() and fresh.exists()  # a download still writing its file is left alone


def test_warnings_are_one_line_and_dependency_future_warnings_silenced(tmp_path, capsys, monkeypatch):
    import saa_lib.cli as cli

    def noisy(args):
        warnings.warn("first line\nsecond line", UserWarning)
        warnings.warn_explicit("old API", FutureWarning, "site-packages/timm/x.py", 3, module="timm.x")
        return 0

    monkeypatch.setattr(cli, "cmd_synthetic", noisy)  # the parser is built inside main()
    rc, _, err = run(capsys, "synthetic", "--out", tmp_path / "s")
    assert rc == 0
    assert err.strip().splitlines() == ["saa synthetic: warning: first line second line"]


# ------------------------------------------------------------------------------ cases that already behave well
def test_empty_image_file_names_it(tmp_path, capsys, no_models):
    empty = tmp_path / "e.png"
    empty.write_bytes(b"")
    rc, _, err = run(capsys, "predict", empty, "--category", "screw", "--out", tmp_path / "o", *FAST)
    assert rc == 2 and str(empty) in err and "0 bytes" in err


def test_offline_download_names_url_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import saa_lib.weights.download as dl
    from saa_lib.weights import zoo

    monkeypatch.setattr(dl, "reachable", lambda url, timeout=dl.CONNECT_TIMEOUT: False)
    rc, _, err = run(capsys, "download", "weights", "sam_vit_b", "--force")
    assert rc == 2 and "sam_vit_b_01ec64.pth" in err and "https://" in err
    assert not zoo.CHECKPOINTS["sam_vit_b"].path.exists()


def test_mask_size_mismatch_is_found_before_models(tmp_path, capsys, no_models):
    root = mvtec_tree(tmp_path / "ds")
    mask = root / "screw" / "ground_truth" / "crack" / "000_mask.png"
    Image.fromarray(np.full((30, 64), 255, np.uint8)).save(mask)
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", tmp_path / "ev", *FAST)
    assert rc == 2 and str(mask) in err and "64x30" in err


def test_unknown_category_in_dataset(tmp_path, capsys, no_models):
    root = mvtec_tree(tmp_path / "ds")
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--category", "scerw",
                     "--out", tmp_path / "ev", *FAST)
    assert rc == 2 and "scerw" in err and "screw" in err


def test_corrupt_cache_entry_is_recomputed(tmp_path, capsys):
    img = png(tmp_path / "a.png")
    cache = tmp_path / "cache"
    args = ["predict", img, "--category", "screw", "--cache-dir", cache, *FAST]
    assert run(capsys, *args, "--out", tmp_path / "o1")[0] == 0
    for entry in cache.rglob("*.npz"):
        entry.write_bytes(b"PK\x03\x04 broken")
    assert run(capsys, *args, "--out", tmp_path / "o2")[0] == 0
    a, b = (np.load(tmp_path / o / "a_saliency_only_map.npy") for o in ("o1", "o2"))
    assert np.array_equal(a, b) and not math.isnan(float(a.sum()))


def test_disk_full_for_the_stage_cache_costs_the_entries_not_the_run(tmp_path, capsys, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    cache = tmp_path / "cache"
    rc, _, err = run(capsys, "predict", png(tmp_path / "a.png"), "--category", "screw", "--out", tmp_path / "o",
                     "--cache-dir", cache, *FAST)
    assert rc == 0 and (tmp_path / "o" / "a_saliency_only_map.npy").is_file()
    warn = lines(err)
    assert len(warn) == 1 and str(cache) in warn[0] and "No space left on device" in warn[0]
    assert list(cache.rglob("*.npz")) == [] and leftovers(cache) == []


def test_decompression_bomb_sized_image_names_the_file(tmp_path, capsys, no_models, monkeypatch):
    from PIL import Image as PILImage

    img = png(tmp_path / "huge.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 is then over twice the limit
    rc, _, err = run(capsys, "predict", img, "--category", "screw", "--out", tmp_path / "o", *FAST)
    assert rc == 2 and str(img) in err and "Downscale" in err and len(lines(err)) == 1


def test_staging_folder_of_a_killed_run_is_removed_by_the_next_run(tmp_path):
    import subprocess
    import sys

    from saa_lib.safeio import ResultFolder

    out = tmp_path / "ev"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / ".ev.partial-abc123"
    stale.mkdir()
    (stale / "metrics.csv").write_text("half")
    (stale / ".saa-owner").write_text(f"{dead.stdout.strip()}@{os.uname().nodename}\n")
    live = tmp_path / ".ev.partial-live"
    live.mkdir()
    (live / ".saa-owner").write_text(f"{os.getpid()}@{os.uname().nodename}\n")  # a run still going: kept
    with ResultFolder(out) as folder:
        (folder.path / "run.json").write_text("{}")
    assert not stale.exists() and live.exists() and (out / "run.json").is_file()


def test_jpeg_mask_is_refused_naming_it(tmp_path):
    from saa_lib.data import open_dataset
    from saa_lib.data.sample import DatasetError

    flat = tmp_path / "parts"
    png(flat / "a.png", size=(96, 96))
    m = np.zeros((96, 96), np.uint8)
    m[30:50, 30:50] = 255
    Image.fromarray(m).save(flat / "a_mask.jpg", quality=50)
    assert (np.asarray(Image.open(flat / "a_mask.jpg")) != 0).sum() > 400  # the noise a JPEG adds
    with pytest.raises(DatasetError, match="PNG") as info:
        open_dataset("folder", flat).samples("parts")
    assert str(flat / "a_mask.jpg") in str(info.value)


def test_out_given_as_a_symlink_keeps_the_link(tmp_path, capsys):
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)
    img = png(tmp_path / "a.png")
    for _ in range(2):  # new, then replacing the first run
        assert run(capsys, "predict", img, "--category", "screw", "--out", link, *FAST)[0] == 0
    assert link.is_symlink() and (real / "a_saliency_only_map.npy").is_file() and leftovers(tmp_path) == []


def test_file_names_that_are_not_utf8(tmp_path):
    import subprocess
    import sys

    root = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/data\xff"))
    mvtec_tree(root)
    out = tmp_path / "ev"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "saa_lib.cli", "evaluate", "--dataset", "folder", "--root", root,
                           "--out", out, *FAST], capture_output=True, env=env)
    assert done.returncode == 0 and b"Traceback" not in done.stderr
    assert b"data\xff" in (out / "table1.md").read_bytes() and b"data\xff" in done.stdout  # the name's own bytes


# ------------------------------------------------------------------------------------------- checks before any work
def two_categories(root: Path, train_good: tuple = (2, 0)) -> Path:
    """Categories ``bottle`` and ``screw`` (MVTec layout), with ``train_good[i]`` normal training images each (0: no
    train/ folder at all)."""
    for cat, n in zip(("bottle", "screw"), train_good):
        mvtec_tree(root, cat)
        for i in range(n):
            png(root / cat / "train" / "good" / f"{i:03d}.png")
    return root


def test_fewshot_without_train_good_in_the_second_category_fails_before_models(tmp_path, capsys, no_models):
    root = two_categories(tmp_path / "ds")
    out = tmp_path / "ev"
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", out,
                     "--saliency-source", "fewshot", *FAST)
    assert rc == 2 and len(lines(err)) == 1 and "'screw'" in err and str(root / "screw" / "train") in err
    assert not out.exists() and leftovers(tmp_path) == []


def test_fewshot_with_fewer_references_than_shots_names_the_category(tmp_path, capsys, no_models):
    root = two_categories(tmp_path / "ds", train_good=(2, 1))
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", tmp_path / "ev",
                     "--saliency-source", "fewshot", "--shots", "2", *FAST)
    assert rc == 2 and len(lines(err)) == 1 and "2 shot(s)" in err and "'screw'" in err and "has 1" in err


class RefusingScorer:
    """A scorer that fails the test if any image is scored (the run must stop before)."""

    def score_images(self, *args, **kwargs):
        raise AssertionError("an image was scored before every category was checked")


def test_evaluate_checks_every_category_before_scoring_the_first_image(tmp_path):
    from saa_lib.config import variant_config
    from saa_lib.data import open_dataset
    from saa_lib.engine.evaluate import evaluate
    from saa_lib.peers import with_peers

    dataset = open_dataset("folder", two_categories(tmp_path / "ds"))
    fewshot = with_peers(variant_config("saliency_only"), source="fewshot", shots=1)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"category 'screw'.*screw/train"):
        evaluate(dataset, None, [fewshot], out_dir=out, progress=False, scorer=RefusingScorer())
    assert not out.exists()
    png(tmp_path / "ds" / "screw" / "test" / "good" / "009.png", size=(16, 16))  # a too small image, 2nd category
    with pytest.raises(ValueError, match=r"009\.png \(image 4 of 4 of category 'screw'\): image is 16x16"):
        evaluate(open_dataset("folder", dataset.root), None, [variant_config("saliency_only")], out_dir=out,
                 progress=False, scorer=RefusingScorer())
    assert not out.exists()
    (tmp_path / "ds" / "screw" / "test" / "good" / "009.png").unlink()
    png(tmp_path / "ds" / "screw" / "ground_truth" / "crack" / "000_mask.png", size=(32, 32), mode="L")  # wrong size
    with pytest.raises(ValueError, match=r"screw/ground_truth/crack/000_mask\.png"):
        evaluate(open_dataset("folder", dataset.root), None, [variant_config("saliency_only")], out_dir=out,
                 progress=False, scorer=RefusingScorer())
    assert not out.exists()


def test_saliency_source_comparison_checks_every_category_first(tmp_path):
    from saa_lib.data import open_dataset
    from saa_lib.engine.saliency_sources import compare_sources, source_configs

    dataset = open_dataset("folder", two_categories(tmp_path / "ds"))
    configs = source_configs(shots=(1,), behaviours=("paper",))
    with pytest.raises(ValueError, match=r"category 'screw'"):
        compare_sources(None, dataset, configs)  # no models: computing any map would fail otherwise


# ------------------------------------------------------------------------------------------------ your own images
def test_flat_folder_without_a_mask_for_some_images_counts_them_as_normal(tmp_path, capsys):
    root = tmp_path / "mine"
    for stem in ("001", "002", "003"):
        png(root / f"{stem}.png")
    m = np.zeros((64, 64), np.uint8)
    m[10:30, 10:30] = 255
    Image.fromarray(m).save(root / "001_mask.png")
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", tmp_path / "ev", *FAST)
    assert rc == 0, err
    assert [x for x in lines(err) if "without a mask" in x] == [
        f"saa evaluate: warning: mine: 2 images without a mask are taken as normal (in a flat folder with masks, no "
        f"mask means normal, as an all-zero mask does), first: {(root / '002.png').absolute()}"]
    row = (tmp_path / "ev" / "metrics.csv").read_text().splitlines()[1].split(",")
    assert row[:3] == ["saliency_only", "mine", "3"]


def test_flat_folder_without_any_mask_points_to_predict(tmp_path, capsys, no_models):
    root = tmp_path / "plain"
    png(root / "a.png")
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", tmp_path / "ev", *FAST)
    assert rc == 2 and len(lines(err)) == 1 and "saa predict" in err and "masks/<stem>.png" in err


def test_mask_folder_under_another_name_is_refused_naming_the_forms(tmp_path, capsys, no_models):
    root = tmp_path / "mine"
    png(root / "001.png")
    png(root / "gt" / "001.png", mode="L", value=0)
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--out", tmp_path / "ev", *FAST)
    assert rc == 2 and len(lines(err)) == 1 and str((root / "gt").absolute()) in err
    assert "masks/<stem>.png" in err and "<stem>_mask.png beside the image" in err and "rename gt/ to masks/" in err


def test_unknown_category_of_a_flat_folder_says_why_and_how(tmp_path, capsys, no_models):
    root = tmp_path / "mine"
    png(root / "001.png")
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--category", "leather",
                     "--out", tmp_path / "ev", *FAST)
    assert rc == 2 and len(lines(err)) == 1
    assert "its categories: mine" in err and "named after the folder" in err and "--object" in err


def test_object_word_names_one_category(tmp_path, capsys, no_models):
    root = mvtec_tree(mvtec_tree(tmp_path / "ds", "screw"), "nut")
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--object", "bolt",
                     "--out", tmp_path / "ev", *FAST)
    assert rc == 2 and len(lines(err)) == 1 and "--category" in err and "nut, screw" in err
    rc, _, err = run(capsys, "evaluate", "--dataset", "folder", "--root", root, "--object", " ",
                     "--out", tmp_path / "ev", *FAST)
    assert rc == 2 and "--object" in err


def test_saliency_only_needs_no_prompts_and_predict_needs_an_object_or_category(tmp_path, capsys):
    img = png(tmp_path / "in" / "part.png")
    rc, _, err = run(capsys, "predict", img, "--out", tmp_path / "o", *FAST)
    assert rc == 2 and len(lines(err)) == 1 and "--object" in err and not (tmp_path / "o").exists()
    rc, printed, err = run(capsys, "predict", img, "--object", "gizmo", "--out", tmp_path / "o", *FAST)
    assert rc == 0, err
    meta = json.loads((tmp_path / "o" / "part_saliency_only_regions.json").read_text())
    assert meta["category"] == "gizmo" and meta["object_word"] == "gizmo" and "image score" in printed
    rc, _, err = run(capsys, "predict", img, "--object", "gizmo", "--variant", "saa", "--out", tmp_path / "p",
                     "--models", "tiny")
    assert rc == 2 and "gizmo" in err and "--prompt" in err


def test_missing_weights_name_the_offline_command(tmp_path, capsys, monkeypatch):
    import saa_lib.weights.download as dl

    monkeypatch.setattr(dl, "reachable", lambda url, timeout=dl.CONNECT_TIMEOUT: False)
    root = mvtec_tree(tmp_path / "ds")
    rc, _, err = run(capsys, "ablation", "--dataset", "folder", "--root", root, "--saliency-backbone",
                     "wide_resnet50_2", "--prompt", "dent", "--out", tmp_path / "ev")
    assert rc == 2 and "wide_resnet50_2-95faca4d.pth" in err and "groundingdino_swint_ogc.pth" in err
    hint = lines(err)[-1]
    assert hint.endswith(f"runs offline: saa evaluate --dataset folder --root {root} --out {tmp_path / 'ev'} "
                         "--variant saliency_only")
