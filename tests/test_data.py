"""Data set readers, image/mask conversions, bad-input errors, VisA conversion, archives and downloads."""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import saa_lib.weights.download as dl
from saa_lib.data import (DATASETS, DatasetError, Sample, download_dataset, extract_archive, open_dataset,
                          prepare_visa, read_image, read_mask)
from saa_lib.data import archive as archive_mod

from conftest import SAMPLES, SAMPLES_MISSING  # noqa: E402  ($SAA_SAMPLES, else ../shared/data/samples)
IMAGE_ENDINGS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _rgb(h=8, w=10, value=100) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def _blob(h=8, w=10) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[2:5, 3:6] = 255
    return m


def _mvtec_tree(root: Path, category="widget") -> Path:
    """<root>/<category>: train/good (2), test/good (2), test/crack (2) with masks."""
    c = root / category
    for i in range(2):
        _png(c / "train" / "good" / f"{i:03d}.png", _rgb(value=90 + i))
        _png(c / "test" / "good" / f"{i:03d}.png", _rgb(value=110 + i))
        _png(c / "test" / "crack" / f"{i:03d}.png", _rgb(value=130 + i))
        _png(c / "ground_truth" / "crack" / f"{i:03d}_mask.png", _blob())
    return root


def _image_files(folder: Path) -> list[Path]:
    return [Path(dp) / f for dp, _, fs in os.walk(folder) for f in fs if f.lower().endswith(IMAGE_ENDINGS)]


# ------------------------------------------------------------------------------------------------ real samples
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=SAMPLES_MISSING)


@needs_samples
@pytest.mark.parametrize("subset", ["mvtec_ad", "mtd"])
def test_real_samples_read_as_folder(subset):
    ds = open_dataset("folder", root=SAMPLES / subset)
    assert ds.categories == sorted(d.name for d in (SAMPLES / subset).iterdir() if d.is_dir())
    assert ds.table is None
    for cat in ds.categories:
        for split in ("test", "train"):
            samples = ds.samples(cat, split)
            files = _image_files(SAMPLES / subset / cat / split)
            assert sorted(s.image_path for s in samples) == sorted(p.absolute() for p in files)
            assert samples == sorted(samples, key=lambda s: s.image_path.as_posix())
        n_masks = len(_image_files(SAMPLES / subset / cat / "ground_truth"))
        test = ds.samples(cat, "test")
        assert sum(s.label == 1 for s in test) == n_masks > 0
        for s in test:
            image, mask = s.load_image(), s.load_mask()
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            assert mask.dtype == bool and mask.shape == image.shape[:2]
            assert s.label == (s.defect_type != "good")
            assert mask.any() == (s.label == 1)
            assert (s.mask_path is None) == (s.label == 0)
            assert s.dataset == "folder" and s.category == cat


@needs_samples
def test_grayscale_samples_become_three_equal_channels():
    ds = open_dataset("folder", root=SAMPLES / "mvtec_ad", categories=["screw"])
    s = ds.samples("screw")[0]
    raw = Image.open(s.image_path)
    assert raw.mode == "L"
    img = s.load_image()
    assert np.array_equal(img[..., 0], np.asarray(raw)) and np.array_equal(img[..., 0], img[..., 1])
    assert np.array_equal(img[..., 1], img[..., 2])


@needs_samples
def test_mtd_samples_open_as_mtd_with_its_table():
    ds = open_dataset("mtd", root=SAMPLES / "mtd")
    assert ds.table == "mtd" and ds.categories == ["magnetic_tile"]
    assert {s.defect_type for s in ds.samples("magnetic_tile")} == {"good", "blowhole", "break", "crack", "fray",
                                                                    "uneven"}


# ------------------------------------------------------------------------------------------------ conversions
def test_image_mode_conversions(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    _png(tmp_path / "l.png", gray)
    assert np.array_equal(read_image(tmp_path / "l.png"), np.repeat(gray[..., None], 3, 2))

    rgba = np.random.default_rng(0).integers(0, 256, (4, 5, 4), dtype=np.uint8)
    _png(tmp_path / "rgba.png", rgba)
    assert np.array_equal(read_image(tmp_path / "rgba.png"), rgba[..., :3])  # alpha dropped, not composited

    sixteen = np.array([[0, 128, 129, 257], [32896, 65406, 65535, 1000]], np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "i16.png")
    assert Image.open(tmp_path / "i16.png").mode.startswith("I")
    expected = np.array([[0, 0, 1, 1], [128, 254, 255, 4]], np.uint8)  # round(v / 257)
    assert np.array_equal(read_image(tmp_path / "i16.png"), np.repeat(expected[..., None], 3, 2))

    pal = Image.new("P", (3, 2))
    palette = [10, 20, 30, 200, 100, 50] + [0] * (768 - 6)
    pal.putpalette(palette)
    idx = np.array([[0, 1, 1], [1, 0, 0]], np.uint8)
    pal.putdata(idx.ravel().tolist())
    pal.save(tmp_path / "p.png")
    lut = np.array(palette, np.uint8).reshape(-1, 3)
    assert np.array_equal(read_image(tmp_path / "p.png"), lut[idx])

    bilevel = Image.fromarray(idx.astype(bool))
    bilevel.save(tmp_path / "one.png")
    assert np.array_equal(read_image(tmp_path / "one.png")[..., 0], idx * 255)


def test_mask_any_nonzero_is_true(tmp_path):
    m = np.array([[0, 1, 128], [255, 0, 2]], np.uint8)
    _png(tmp_path / "m.png", m)
    assert np.array_equal(read_mask(tmp_path / "m.png"), m != 0)
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (1, 0, 0)  # rounds to 0 in L, still a defect pixel
    rgb[1, 2] = (0, 0, 255)
    _png(tmp_path / "c.png", rgb)
    assert np.array_equal(read_mask(tmp_path / "c.png"), rgb.any(2))
    Image.fromarray(np.array([[0, 300], [70000 % 65536, 0]], np.uint16)).save(tmp_path / "m16.png")
    assert np.array_equal(read_mask(tmp_path / "m16.png"), np.array([[0, 1], [1, 0]], bool))


# ------------------------------------------------------------------------------------------------ bad inputs
def _raises_naming(fn, path, *args):
    with pytest.raises(DatasetError) as err:
        fn(*args)
    assert str(path) in str(err.value), str(err.value)
    return str(err.value)


def test_empty_and_unreadable_files(tmp_path):
    root = _mvtec_tree(tmp_path / "d")
    empty = root / "widget" / "test" / "good" / "002.png"
    empty.write_bytes(b"")
    _raises_naming(lambda: open_dataset("folder", root).samples("widget"), empty)
    empty.unlink()

    garbage = root / "widget" / "test" / "good" / "003.png"
    garbage.write_bytes(b"this is not a png file at all")
    s = [s for s in open_dataset("folder", root).samples("widget") if s.image_path.name == "003.png"][0]
    _raises_naming(s.load_image, garbage)

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    garbage.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # truncated
    _raises_naming(s.load_image, garbage)

    mask = root / "widget" / "ground_truth" / "crack" / "000_mask.png"
    mask.write_bytes(b"")
    _raises_naming(lambda: open_dataset("folder", root).samples("widget"), mask)


def test_mask_size_must_match_image(tmp_path):
    root = _mvtec_tree(tmp_path / "d")
    mask = root / "widget" / "ground_truth" / "crack" / "001_mask.png"
    _png(mask, _blob(8, 11))
    # caught when the category is listed (every defect mask is read then), before any model runs
    msg = _raises_naming(lambda: open_dataset("folder", root).samples("widget"), mask)
    assert "11x8" in msg and "10x8" in msg


def test_defect_image_without_mask(tmp_path):
    root = _mvtec_tree(tmp_path / "d")
    orphan = _png(root / "widget" / "test" / "crack" / "007.png", _rgb())
    _raises_naming(lambda: open_dataset("folder", root).samples("widget"), orphan)
    with pytest.raises(DatasetError, match="without a mask"):
        Sample(orphan, None, 1, "widget", "crack", "folder")


def test_layout_errors(tmp_path):
    root = _mvtec_tree(tmp_path / "d")
    (root / "hollow" / "test" / "good").mkdir(parents=True)
    ds = open_dataset("folder", root)
    assert ds.categories == ["hollow", "widget"]
    _raises_naming(lambda: ds.samples("hollow"), root.absolute())  # empty category
    msg = _raises_naming(lambda: ds.samples("gadget"), root.absolute())
    assert "hollow" in msg and "widget" in msg
    with pytest.raises(DatasetError, match="categories: hollow, widget"):
        open_dataset("folder", root, categories=["widget", "gadget"])
    with pytest.raises(DatasetError, match="no split"):
        ds.samples("widget", "val")
    missing = tmp_path / "nowhere"
    _raises_naming(lambda: open_dataset("mvtec", missing), missing)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "notes.txt").write_text("no images here")
    _raises_naming(lambda: open_dataset("mvtec", wrong), wrong.absolute())
    _raises_naming(lambda: open_dataset("folder", wrong), wrong.absolute())
    with pytest.raises(DatasetError, match="mvtec, visa, ksdd2, mtd, folder, synthetic"):
        open_dataset("imagenet", root)
    # data one folder too deep: the error says where
    nested = tmp_path / "outer"
    _mvtec_tree(nested / "mvtec_anomaly_detection")
    msg = _raises_naming(lambda: open_dataset("mvtec", nested), nested.absolute())
    assert "mvtec_anomaly_detection" in msg
    # images outside defect folders, and folders inside them, are never skipped silently
    stray = _png(root / "widget" / "test" / "stray.png", _rgb())
    _raises_naming(lambda: open_dataset("folder", root).samples("widget"), stray)
    stray.unlink()
    deep = _png(root / "widget" / "test" / "crack" / "sub" / "x.png", _rgb())
    _raises_naming(lambda: open_dataset("folder", root).samples("widget"), deep.parent)


def test_mvtec_layout_reader(tmp_path):
    root = _mvtec_tree(tmp_path / "mvtec")
    (root / "widget" / "test" / "good" / ".DS_Store").write_bytes(b"\0")
    (root / "widget" / "readme.txt").write_text("not data")
    ds = open_dataset("mvtec", root, categories="widget")
    assert ds.table == "mvtec" and ds.categories == ["widget"] and ds.name == "mvtec"
    test = ds.samples("widget")
    assert [(s.defect_type, s.image_path.name, s.label) for s in test] == [
        ("crack", "000.png", 1), ("crack", "001.png", 1), ("good", "000.png", 0), ("good", "001.png", 0)]
    assert test[0].mask_path.name == "000_mask.png" and test[0].dataset == "mvtec"
    assert np.array_equal(test[0].load_mask(), _blob() > 0)
    assert not test[2].load_mask().any() and test[2].load_mask().shape == (8, 10)
    assert [s.image_path.name for s in ds.samples("widget", "train")] == ["000.png", "001.png"]
    assert ds.check() == 6
    # one category given directly
    single = open_dataset("folder", root / "widget")
    assert single.categories == ["widget"] and len(single.samples("widget")) == 4


def test_flat_folder(tmp_path):
    root = tmp_path / "shots"
    _png(root / "a.png", _rgb())                                # no mask, others have one: normal
    _png(root / "b.png", _rgb())
    _png(root / "masks" / "b.png", _blob())                      # mask in masks/: anomalous
    _png(root / "c.jpg", _rgb())
    _png(root / "c_mask.png", np.zeros((8, 10), np.uint8))       # empty mask beside: normal
    ds = open_dataset("folder", root)
    assert ds.categories == ["shots"] and ds.splits == ("test",)
    with pytest.warns(UserWarning, match=r"^shots: 1 image without a mask is taken as normal") as caught:
        got = {s.image_path.name: (s.label, s.defect_type, s.mask_path) for s in ds.samples("shots")}
    assert len(caught) == 1 and str((root / "a.png").absolute()) in str(caught[0].message)
    assert got == {"a.png": (0, "good", None), "b.png": (1, "defect", (root / "masks" / "b.png").absolute()),
                   "c.jpg": (0, "good", None)}
    b = ds.samples("shots")[1]
    assert np.array_equal(b.load_mask(), _blob() > 0)
    _png(root / "d_mask.png", _blob())
    _raises_naming(lambda: open_dataset("folder", root).samples("shots"), (root / "d_mask.png").absolute())
    (root / "d_mask.png").unlink()
    _png(root / "more" / "e.png", _rgb())
    msg = _raises_naming(lambda: open_dataset("folder", root).samples("shots"), (root / "more").absolute())
    assert "masks/<stem>.png" in msg and "<stem>_mask.png beside the image" in msg


def test_flat_folder_without_masks_is_unlabelled(tmp_path):
    root = tmp_path / "plain"
    for name in ("x.png", "y.png"):
        _png(root / name, _rgb())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "taken as normal" line: nothing is labelled here
        got = [(s.label, s.defect_type) for s in open_dataset("folder", root).samples("plain")]
    assert got == [(-1, "unknown"), (-1, "unknown")]


def test_flat_folder_mask_folder_under_another_name_is_refused_naming_the_forms(tmp_path):
    root = tmp_path / "mine"
    _png(root / "001.png", _rgb())
    _png(root / "002.png", _rgb())
    _png(root / "gt" / "001.png", _blob())                       # masks, named like the images, in gt/
    msg = _raises_naming(lambda: open_dataset("folder", root).samples("mine"), (root / "gt").absolute())
    assert "rename gt/ to masks/" in msg
    assert "masks/<stem>.png, masks/<stem>_mask.png or <stem>_mask.png beside the image" in msg


def test_unknown_category_of_a_folder_says_what_the_categories_are(tmp_path):
    flat = tmp_path / "mine"
    _png(flat / "001.png", _rgb())
    with pytest.raises(DatasetError) as err:
        open_dataset("folder", flat, categories=["leather"])
    msg = str(err.value)
    assert "'leather'" in msg and "its categories: mine" in msg and "named after the folder" in msg
    assert "--category" in msg and "--object" in msg and "\n" not in msg
    tree = _mvtec_tree(tmp_path / "tree")
    with pytest.raises(DatasetError) as err:
        open_dataset("folder", tree, categories=["bottle"])
    msg = str(err.value)
    assert "its categories: widget" in msg and "sub-folders" in msg and "--root" in msg
    with pytest.raises(DatasetError) as err:
        open_dataset("folder", tree / "widget", categories=["bottle"])
    assert "its categories: widget" in str(err.value) and "holds test/" in str(err.value)


def test_ksdd2_reader(tmp_path):
    root = tmp_path / "ksdd2"
    for split, ids in (("train", (10, 11, 12)), ("test", (20, 21))):
        for i in ids:
            _png(root / split / f"{i}.png", _rgb(value=i))
            _png(root / split / f"{i}_GT.png", _blob() if i % 2 else np.zeros((8, 10), np.uint8))
    ds = open_dataset("ksdd2", root)
    assert ds.categories == ["ksdd2"] and ds.table == "ksdd2"
    train = ds.samples("ksdd2", "train")
    assert [(s.image_path.name, s.label) for s in train] == [("10.png", 0), ("11.png", 1), ("12.png", 0)]
    assert train[1].mask_path.name == "11_GT.png" and train[0].mask_path is None
    assert [s.label for s in ds.samples("ksdd2", "test")] == [0, 1]
    (root / "test" / "21_GT.png").unlink()
    _raises_naming(lambda: open_dataset("ksdd2", root).samples("ksdd2", "test"), (root / "test" / "21.png").absolute())
    (root / "test" / "21.png").unlink()
    _png(root / "test" / "30_GT.png", _blob())
    orphan = (root / "test" / "30_GT.png").absolute()
    _raises_naming(lambda: open_dataset("ksdd2", root).samples("ksdd2", "test"), orphan)


def test_mtd_reader(tmp_path):
    root = tmp_path / "mtd"
    for folder, names in (("MT_Blowhole", ("b1", "b2")), ("MT_Free", ("f1",))):
        for n in names:
            _png(root / folder / "Imgs" / f"{n}.png", _blob() if folder != "MT_Free" else np.zeros((8, 10), np.uint8))
            Image.fromarray(_rgb()[..., 0]).save(root / folder / "Imgs" / f"{n}.jpg")
    ds = open_dataset("mtd", root)
    assert ds.categories == ["mtd"] and ds.table == "mtd" and ds.splits == ("test",)
    got = [(s.defect_type, s.image_path.name, s.label, s.mask_path is not None) for s in ds.samples("mtd")]
    assert got == [("blowhole", "b1.jpg", 1, True), ("blowhole", "b2.jpg", 1, True), ("good", "f1.jpg", 0, False)]
    img = ds.samples("mtd")[0].load_image()
    assert img.shape == (8, 10, 3) and (img[..., 0] == img[..., 2]).all()
    with pytest.raises(DatasetError, match="no split 'train'"):
        ds.samples("mtd", "train")
    (root / "MT_Blowhole" / "Imgs" / "b2.png").unlink()
    no_mask = (root / "MT_Blowhole" / "Imgs" / "b2.jpg").absolute()
    _raises_naming(lambda: open_dataset("mtd", root).samples("mtd"), no_mask)


# ------------------------------------------------------------------------------------------------ VisA
def _raw_visa(raw: Path) -> Path:
    """A tiny raw VisA tree: candle with 2 train normals, 1 test normal, 2 test anomalies (mask values 0..2)."""
    rows = ["object,split,label,image,mask"]
    (raw / "candle/Data/Images/Normal").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(_rgb(value=50 + i)).save(raw / "candle/Data/Images/Normal" / f"{i:04d}.JPG")
        rows.append(f"candle,{'train' if i < 2 else 'test'},normal,candle/Data/Images/Normal/{i:04d}.JPG,")
    (raw / "candle/Data/Images/Anomaly").mkdir(parents=True)
    for i in range(2):
        Image.fromarray(_rgb(value=200 + i)).save(raw / "candle/Data/Images/Anomaly" / f"{i:03d}.JPG")
        m = np.zeros((8, 10), np.uint8)
        m[1:3, 2:4] = i + 1  # VisA masks hold small non-zero values
        _png(raw / "candle/Data/Masks/Anomaly" / f"{i:03d}.png", m)
        rows.append(f"candle,test,anomaly,candle/Data/Images/Anomaly/{i:03d}.JPG,candle/Data/Masks/Anomaly/{i:03d}.png")
    (raw / "split_csv").mkdir(parents=True)
    (raw / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    return raw


def test_prepare_visa_and_read(tmp_path):
    raw = _raw_visa(tmp_path / "VisA")
    out = prepare_visa(raw, out_root=tmp_path / "visa", progress=False)
    ds = open_dataset("visa", out)
    assert ds.categories == ["candle"] and ds.table == "visa"
    test = ds.samples("candle")
    assert [(s.defect_type, s.image_path.name, s.label) for s in test] == [
        ("bad", "000.JPG", 1), ("bad", "001.JPG", 1), ("good", "0002.JPG", 0)]
    assert len(ds.samples("candle", "train")) == 2
    for s in test[:2]:
        src = raw / "candle/Data/Images/Anomaly" / s.image_path.name
        assert s.image_path.read_bytes() == src.read_bytes()  # copied unchanged
        stored = np.asarray(Image.open(s.mask_path))
        raw_mask = np.asarray(Image.open(raw / "candle/Data/Masks/Anomaly" / (s.image_path.stem + ".png")))
        assert set(np.unique(stored)) == {0, 255} and np.array_equal(stored > 0, raw_mask > 0)
        assert np.array_equal(s.load_mask(), raw_mask > 0)


def test_prepare_visa_bad_inputs_leave_nothing(tmp_path):
    raw = _raw_visa(tmp_path / "VisA")
    csv_path = raw / "split_csv" / "1cls.csv"
    (raw / "candle/Data/Images/Anomaly/001.JPG").unlink()
    out = tmp_path / "visa"
    _raises_naming(lambda: prepare_visa(raw, out_root=out, progress=False), raw / "candle/Data/Images/Anomaly/001.JPG")
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["VisA"]  # no half-converted folder
    csv_path.write_text("object,split,image\ncandle,train,x.JPG\n")
    _raises_naming(lambda: prepare_visa(raw, out_root=out, progress=False), csv_path)


# ------------------------------------------------------------------------------------------------ archives
def _tar(path: Path, members: dict[str, bytes], mode="w:xz", symlink: str | None = None) -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo("bottle/link")
            info.type, info.linkname = tarfile.SYMTYPE, symlink
            tar.addfile(info)
    return path


def _png_bytes(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _mvtec_members() -> dict[str, bytes]:
    return {"license.txt": b"CC BY-NC-SA 4.0", "bottle/train/good/000.png": _png_bytes(_rgb()),
            "bottle/test/good/000.png": _png_bytes(_rgb()), "bottle/test/broken/000.png": _png_bytes(_rgb()),
            "bottle/ground_truth/broken/000_mask.png": _png_bytes(_blob())}


def test_extract_archive_tar_xz_and_zip(tmp_path):
    members = _mvtec_members()
    dest = extract_archive(_tar(tmp_path / "a.tar.xz", members), tmp_path / "out", progress=False)
    for name, data in members.items():
        assert (dest / name).read_bytes() == data
    assert len(open_dataset("mvtec", dest).samples("bottle")) == 2
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    dest2 = extract_archive(tmp_path / "a.zip", tmp_path / "out2", progress=False)
    assert sorted(p.relative_to(dest2).as_posix() for p in dest2.rglob("*") if p.is_file()) == sorted(members)
    with pytest.raises(DatasetError, match="already exists"):
        extract_archive(tmp_path / "a.zip", dest2, progress=False)


@pytest.mark.parametrize("bad", ["../evil.txt", "/tmp/evil-abs.txt", "bottle/../../evil.txt", "symlink"])
def test_extract_archive_refuses_escaping_members(tmp_path, bad):
    members = _mvtec_members()
    if bad == "symlink":
        archive = _tar(tmp_path / "bad.tar.gz", members, "w:gz", symlink="/etc/passwd")
    else:
        archive = _tar(tmp_path / "bad.tar.gz", {**members, bad: b"pwned"}, "w:gz")
    (tmp_path / "work").mkdir()
    before = set(tmp_path.rglob("*"))
    _raises_naming(lambda: extract_archive(archive, tmp_path / "work" / "out", progress=False), archive)
    assert set(tmp_path.rglob("*")) == before  # nothing extracted, no temporary folder left
    assert not Path("/tmp/evil-abs.txt").exists()


def test_extract_archive_refuses_zip_traversal(tmp_path):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr("../evil.txt", b"pwned")
    bad = tmp_path / "bad.zip"
    _raises_naming(lambda: extract_archive(bad, tmp_path / "out", progress=False), bad)
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_extract_archive_truncated_leaves_nothing(tmp_path):
    blob = np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    archive = _tar(tmp_path / "a.tar", {"x/big.bin": blob, "x/small.txt": b"1"}, "w")
    archive.write_bytes(archive.read_bytes()[:120_000])
    with pytest.raises(DatasetError, match="corrupt|refused|not a tar"):
        extract_archive(archive, tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar"]


# ------------------------------------------------------------------------------------------------ downloads
def test_registry_entries_are_well_formed():
    assert set(DATASETS) == {"mvtec", "visa"}
    for src in DATASETS.values():
        assert src.url.startswith("https://") and len(src.sha256) == 64 and int(src.sha256, 16) >= 0
        assert src.size > 10**9 and src.archive in ("tar.xz", "tar")
    assert DATASETS["mvtec"].filename == "mvtec_anomaly_detection.tar.xz"
    assert DATASETS["visa"].filename == "VisA_20220922.tar"


def test_download_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "reachable", lambda url, timeout=dl.CONNECT_TIMEOUT: False)
    t = time.perf_counter()
    with pytest.raises(dl.MissingFileError) as err:
        download_dataset("mvtec", root=tmp_path / "mvtec", progress=False)
    assert time.perf_counter() - t < 2
    assert DATASETS["mvtec"].url in str(err.value) and "mvtec_anomaly_detection.tar.xz" in str(err.value)
    assert not (tmp_path / "mvtec").exists()
    with pytest.raises(DatasetError, match="cannot be downloaded automatically"):
        download_dataset("ksdd2", root=tmp_path / "k")


@pytest.fixture
def http_dir(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``<tmp_path>/served``; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_file_refuses_wrong_hash(http_dir, tmp_path):
    served, base = http_dir
    payload = b"published archive bytes" * 100
    (served / "data.bin").write_bytes(payload)
    dest_dir = tmp_path / "cache"
    dest = dest_dir / "data.bin"
    with pytest.raises(dl.HashMismatchError):
        dl.fetch_file(f"{base}/data.bin", dest, "sha256:" + "0" * 64, progress=False)
    assert not dest.exists()
    assert not dest_dir.exists() or not any(dest_dir.iterdir())  # no partial file kept
    good = "sha256:" + hashlib.sha256(payload).hexdigest()
    assert dl.fetch_file(f"{base}/data.bin", dest, good, progress=False).read_bytes() == payload


def test_download_dataset_end_to_end(http_dir, tmp_path, monkeypatch):
    served, base = http_dir
    archive = _tar(served / "mvtec_anomaly_detection.tar.xz", _mvtec_members())
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    src = DATASETS["mvtec"]
    fake = archive_mod.DatasetSource(src.name, f"{base}/{archive.name}", "f" * 64, archive.stat().st_size,
                                     src.archive, src.homepage, src.license)
    monkeypatch.setitem(archive_mod.DATASETS, "mvtec", fake)
    root = tmp_path / "data" / "mvtec"
    with pytest.raises(dl.HashMismatchError):
        download_dataset("mvtec", root=root, progress=False)
    assert not root.exists() and not (tmp_path / "data" / ".downloads" / archive.name).exists()

    monkeypatch.setitem(archive_mod.DATASETS, "mvtec",
                        archive_mod.DatasetSource(src.name, fake.url, digest, fake.size, src.archive, src.homepage,
                                                  src.license))
    assert download_dataset("mvtec", root=root, progress=False) == root
    ds = open_dataset("mvtec", root)
    assert ds.categories == ["bottle"] and [s.label for s in ds.samples("bottle")] == [1, 0]
    assert not (tmp_path / "data" / ".downloads" / archive.name).exists()  # archive removed after extraction
    assert download_dataset("mvtec", root=root, progress=False) == root    # already there: nothing fetched


def test_open_synthetic_generates_missing_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = open_dataset("synthetic")
    assert ds.root == (tmp_path / "data" / "synthetic").absolute()
    assert ds.table == "synthetic" and ds.categories == ["fabric", "washer"]
    assert all(s.dataset == "synthetic" for s in ds.samples("washer"))
