"""The notebooks' toolkit (saa_lib.workbook): where the real samples come from, which P^S backbone runs, the few-images
warning."""
from __future__ import annotations

from types import SimpleNamespace

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
    """The notebooks, the synthetic set and the real samples are found beside the package in a clone."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert wb.project_root() == root
    assert wb.notebooks_dir() == root / "notebooks"
    assert wb.synthetic_root() == root / "data" / "synthetic"
    monkeypatch.delenv("SAA_SAMPLES", raising=False)
    shared = root.parent / "shared" / "data" / "samples"
    assert wb.shared_samples() == (shared if shared.is_dir() else None)
