"""The notebooks' toolkit (saa_lib.workbook): where the real samples come from, which P^S backbone runs, the few-images
warning."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from saa_lib import workbook as wb
from saa_lib.weights.zoo import CHECKPOINTS


def test_saa_samples_overrides_shared(tmp_path, monkeypatch, capsys):
    (tmp_path / "mvtec_ad").mkdir()
    monkeypatch.setenv("SAA_SAMPLES", str(tmp_path))
    assert wb.shared_samples() == tmp_path
    monkeypatch.setenv("SAA_SAMPLES", str(tmp_path / "nowhere"))
    assert wb.shared_samples() is None
    assert wb.real_datasets() == {}
    assert wb.SAMPLES_MISSING in capsys.readouterr().out


def test_auto_backbone_follows_the_weights_file():
    """SAA_HOME is a fresh folder per test (conftest): no WideResNet50 file, so auto takes the real lite0."""
    path = CHECKPOINTS["wide_resnet50_2"].path
    assert not path.exists()
    assert wb.choose_saliency_backbone("auto") == "tf_efficientnet_lite0"
    assert "not at" in wb.saliency_line("tf_efficientnet_lite0")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"stand-in")  # presence is what counts; loading checks the hash
    assert wb.choose_saliency_backbone("auto") == "wide_resnet50_2"
    assert wb.choose_saliency_backbone("tf_efficientnet_lite0") == "tf_efficientnet_lite0"
    assert "not at" not in wb.saliency_line("tf_efficientnet_lite0")


def _items(counts: dict) -> list:
    return [SimpleNamespace(sample=SimpleNamespace(category=c, label=lab)) for (c, lab), n in counts.items()
            for _ in range(n)]


def test_few_images_note():
    assert "0, 50 or 100" in wb.few_images_note(_items({("a", 0): 1, ("a", 1): 1}))
    assert wb.few_images_note(_items({("a", 0): 10, ("a", 1): 12, ("b", 0): 10, ("b", 1): 10})) is None
    assert wb.few_images_note(_items({("a", 0): 10, ("a", 1): 12, ("b", 0): 10, ("b", 1): 3})) is not None


def test_the_source_tree_is_found(monkeypatch):
    """The notebooks, the synthetic set and the real samples are found from the package's own place in the tree."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert wb.project_root() == root and wb.notebooks_dir() == root / "notebooks"
    assert wb.synthetic_root() == root / "data" / "synthetic"
    monkeypatch.delenv("SAA_SAMPLES", raising=False)
    shared = root.parent / "shared" / "data" / "samples"
    assert wb.shared_samples() == (shared if shared.is_dir() else None)


def _mask_png(path, mask):
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(mask, np.uint8) * 255).save(path)


def test_defect_statistics_on_a_hand_built_folder(tmp_path):
    """Known answers: a dark 40 x 40 image with a bright 20 x 20 object; one image with two defects (a 2 x 2 square and
    a 1 x 4 bar), one with one (4 x 4, touching a diagonal neighbour: 8-connected), one normal."""
    import numpy as np
    from PIL import Image

    from saa_lib.data import open_dataset
    from saa_lib.workbook.capstone import QUANTILES, defect_statistics, foreground

    image = np.zeros((40, 40, 3), np.uint8)
    image[10:30, 10:30] = 200
    cat = tmp_path / "part"
    masks = {"a": [(slice(12, 14), slice(12, 14)), (slice(20, 21), slice(15, 19))],
             "b": [(slice(15, 19), slice(15, 19)), (slice(19, 20), slice(19, 20))]}
    (cat / "test" / "dent").mkdir(parents=True)
    for name, parts in masks.items():
        Image.fromarray(image).save(cat / "test" / "dent" / f"{name}.png")
        mask = np.zeros((40, 40), bool)
        for sl in parts:
            mask[sl] = True
        _mask_png(cat / "ground_truth" / "dent" / f"{name}_mask.png", mask)
    (cat / "test" / "good").mkdir(parents=True)
    Image.fromarray(image).save(cat / "test" / "good" / "c.png")
    assert foreground(image).sum() == 400 and foreground(255 - image).sum() == 400  # the side away from the border
    assert foreground(np.full((8, 8, 3), 7, np.uint8)).all()  # one grey level: nothing to separate

    data = open_dataset("folder", tmp_path)
    st = defect_statistics(data, "part", object_area="foreground")
    assert st.n_images == 3 and sorted(st.per_image.tolist()) == [1, 2]
    assert sorted(st.mask_ratios.tolist()) == [4 / 400, 4 / 400, 17 / 400]
    assert sorted(st.box_ratios.tolist()) == [4 / 400, 4 / 400, 25 / 400]
    whole = defect_statistics(data, "part", object_area="image")
    assert sorted(whole.mask_ratios.tolist()) == [4 / 1600, 4 / 1600, 17 / 1600]
    assert st.quantile("count", 1.0) == 2 and st.quantile("area", 1.0, "paper") == 17 / 400
    assert st.quantile("area", 1.0, "code") == 25 / 400
    table = st.table()
    assert table.index.name == "part: 3 defects in 2 of 3 images (object: foreground)"
    assert table.loc["defects per anomalous image", "max"] == 2
    assert table.loc["defect mask / object mask area (paper)", "max"] == pytest.approx(17 / 400)
    assert list(table.columns) == [f"q{round(100 * q)}" if q < 1 else "max" for q in QUANTILES]


def test_unseen_category_is_a_folder_set_the_tables_do_not_know(tmp_path):
    import pytest

    from saa_lib.data import open_dataset
    from saa_lib.tables import find_table
    from saa_lib.workbook.capstone import unseen_category

    root = unseen_category(root=tmp_path / "cap", n_good=1, n_defect=2)
    data = open_dataset("folder", root)
    assert data.categories == ["gasket"] and find_table("gasket") is None
    assert sum(s.label for s in data.samples("gasket")) == 2
    assert unseen_category(root=root, n_good=1, n_defect=2) == root  # written once
    (tmp_path / "other").mkdir()
    with pytest.raises(FileExistsError, match="choose another root"):
        unseen_category(root=tmp_path / "other")
