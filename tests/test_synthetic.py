"""The synthetic data set: layout, determinism, exact masks, defects on the object, speed."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import ndimage

from saa_lib.data import (STAIN_THRESHOLD, SYNTHETIC_CATEGORIES, DatasetError, generate_synthetic, open_dataset,
                          synthesize)

TABLES_YAML = Path(__file__).resolve().parents[1] / "saa_lib" / "resources" / "saa_tables.yaml"
_SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("syn") / "synthetic"
    t = time.perf_counter()
    generate_synthetic(root)
    _SECONDS["default"] = time.perf_counter() - t
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_counts(synthetic_root):
    ds = open_dataset("synthetic", synthetic_root)
    assert ds.categories == ["fabric", "washer"] and ds.table == "synthetic"
    for cat in ds.categories:
        test = ds.samples(cat)
        assert sum(s.label == 0 for s in test) == 4 and sum(s.label == 1 for s in test) == 8
        assert len(ds.samples(cat, "train")) == 2
        types = SYNTHETIC_CATEGORIES[cat]
        per_type = {t: sum(s.defect_type == t for s in test) for t in types}
        assert sum(per_type.values()) == 8 and max(per_type.values()) - min(per_type.values()) <= 1
        for s in test:
            img = s.load_image()
            assert img.shape == (256, 256, 3)
            assert s.load_mask().any() == (s.label == 1)
    meta = json.loads((synthetic_root / "dataset.json").read_text())
    assert meta["settings"]["seed"] == 0 and meta["settings"]["size"] == 256
    assert meta["counts"]["washer"]["test/missing_part"] == 2 and meta["counts"]["fabric"]["test/scratch"] == 3


def test_generation_is_fast(synthetic_root):
    assert _SECONDS["default"] < 4.0  # about 0.5 s on one CPU core


def test_same_seed_same_bytes_other_seed_differs(synthetic_root, tmp_path):
    again = generate_synthetic(tmp_path / "again")
    assert _files(again) == _files(synthetic_root)
    other = _files(generate_synthetic(tmp_path / "other", seed=1))
    base = _files(synthetic_root)
    assert other.keys() == base.keys()
    images = [k for k in base if k.endswith(".png")]
    assert all(other[k] != base[k] for k in images)
    # one category's images do not depend on the others being generated
    washer_only = _files(generate_synthetic(tmp_path / "washer", categories=("washer",)))
    assert all(washer_only[k] == base[k] for k in washer_only if k.startswith("washer/"))


def test_existing_root(synthetic_root, tmp_path):
    assert generate_synthetic(synthetic_root) == synthetic_root  # same settings: kept as is
    with pytest.raises(DatasetError, match="overwrite=True"):
        generate_synthetic(synthetic_root, seed=5)
    root = generate_synthetic(tmp_path / "s", n_good=1, n_defect=1, train_good=0, size=64)
    generate_synthetic(root, seed=3, n_good=1, n_defect=1, train_good=0, size=64, overwrite=True)
    assert json.loads((root / "dataset.json").read_text())["settings"]["seed"] == 3
    assert [p.name for p in root.parent.iterdir()] == ["s"]  # no temporary folder left


@pytest.mark.parametrize("category", sorted(SYNTHETIC_CATEGORIES))
def test_files_are_the_rendered_images(synthetic_root, category):
    ds = open_dataset("synthetic", synthetic_root)
    for s in ds.samples(category):
        index = int(s.image_path.stem)
        r = synthesize(category, s.defect_type, seed=0, index=index)
        assert np.array_equal(s.load_image(), r.image)
        assert np.array_equal(s.load_mask(), r.mask)
        stored = np.asarray(Image.open(s.mask_path)) if s.mask_path else None
        assert stored is None or set(np.unique(stored)) == {0, 255}


@pytest.mark.parametrize("category,defect", [(c, d) for c, ds in SYNTHETIC_CATEGORIES.items() for d in ds])
@pytest.mark.parametrize("index", range(3))
def test_masks_are_exact_and_on_the_object(category, defect, index):
    r = synthesize(category, defect, seed=7, index=index, size=192)
    change = np.abs(r.image.astype(int) - r.clean.astype(int)).max(axis=2)
    assert r.mask.sum() >= 10
    if defect == "stain":
        assert np.array_equal(r.mask, change > STAIN_THRESHOLD)
    else:
        assert np.array_equal(r.mask, change > 0)  # the mask is exactly the pixels planting changed
    assert not (change[~r.mask] > STAIN_THRESHOLD).any()
    assert not (r.mask & ~r.support).any()  # on the object
    if defect != "missing_part":
        assert not ((change > 0) & ~r.allowed).any()  # every changed pixel, faint stain rim included
    clean_lum = r.clean.astype(float).mean(axis=2)
    lum = r.image.astype(float).mean(axis=2)
    if defect == "hole":
        assert lum[r.mask].max() <= 30 and clean_lum[r.mask].min() >= 35
    if defect == "missing_part":
        assert lum[r.mask].max() < 80 <= clean_lum[r.mask].min()  # metal replaced by dark background
        assert ndimage.label(r.mask)[1] == 1
    if defect == "scratch":  # thin: nothing survives two erosions
        assert not ndimage.binary_erosion(r.mask, iterations=2).any()


def test_washer_is_an_object_on_a_dark_background():
    r = synthesize("washer", "good", seed=0, index=0)
    lum = r.image.astype(float).mean(axis=2)
    assert 0.2 < r.support.mean() < 0.6
    assert lum[r.support].min() > lum[~r.support].max()
    assert not r.support[0].any() and not r.support[:, 0].any()  # the ring does not touch the border
    assert ndimage.label(~r.support)[1] == 2  # a ring: outside and the central hole


def test_categories_and_defects_match_the_prompt_table():
    table = yaml.safe_load(TABLES_YAML.read_text())["synthetic_tables"]
    assert set(SYNTHETIC_CATEGORIES) == set(table["language_prompts"]) == set(table["property_prompts"])
    for cat, defects in SYNTHETIC_CATEGORIES.items():
        captions = " ".join(entry[0] for entry in table["language_prompts"][cat])
        for d in defects:
            assert d.replace("_", " ") in captions
        assert table["property_prompts"][cat]["object"] == cat


def test_bad_arguments():
    with pytest.raises(DatasetError, match="washer, fabric"):
        synthesize("carpet")
    with pytest.raises(DatasetError, match="no defect type 'missing_part'"):
        synthesize("fabric", "missing_part")
    with pytest.raises(DatasetError, match="size"):
        synthesize("washer", size=16)
    with pytest.raises(DatasetError, match="seed"):
        synthesize("washer", seed=-1)
