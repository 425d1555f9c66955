"""The per-defect-type breakdown of the saliency comparison: known answers and agreement with scikit-learn."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from saa_lib.engine.saliency_sources import SourceRow, defect_type_auroc, defect_type_table


def _row(name="batch-paper"):
    """Four 4 x 4 images: a 'hole' found exactly, a 'stain' scored inverted, two normal images with mild noise."""
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 4, 4), np.uint8)
    masks[0, :2, :2] = 1  # hole: 4 pixels
    masks[1, :, :3] = 1  # stain: 12 pixels
    maps = rng.uniform(0.2, 0.4, (4, 4, 4)).astype(np.float32)
    maps[0][masks[0] == 1] = 0.9
    maps[1] = np.where(masks[1] == 1, 0.0, 1.0)
    return SourceRow("tile", name, np.nan, np.nan, np.nan, 0.0, maps, masks, ("hole", "stain", "good", "good"))


def test_defect_type_auroc_known_answers_and_sklearn():
    row = _row()
    out = defect_type_auroc(row)
    assert list(out) == ["hole", "stain"]
    assert out["hole"] == pytest.approx((1.0, 4 / 16)) and out["stain"][1] == pytest.approx(12 / 16)
    pick = [1, 2, 3]  # the stain's image with the normal ones
    expected = roc_auc_score(row.masks[pick].ravel(), row.maps[pick].ravel())
    assert out["stain"][0] == pytest.approx(expected) and expected < 0.5
    with pytest.raises(ValueError, match="defect types"):
        defect_type_auroc(SourceRow("tile", "x", 0, 0, 0, 0, row.maps, row.masks, ("hole",)))


def test_defect_type_table_one_line_per_type_one_column_per_source():
    from saa_lib.frames import markdown

    table = defect_type_table([_row("image-paper"), _row("batch-paper")])
    assert list(table.columns) == ["category", "defect type", "share of defect pixels", "image-paper", "batch-paper"]
    assert table.iloc[0].tolist() == ["tile", "hole", pytest.approx(25.0), pytest.approx(100.0), pytest.approx(100.0)]
    assert table.iloc[1].tolist()[:3] == ["tile", "stain", pytest.approx(75.0)] and len(table) == 2
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in markdown(table).splitlines()[2:4]]
    assert rows[0] == ["tile", "hole", "25.00", "100.00", "100.00"]


def test_sources_tables_values_na_and_differences():
    from saa_lib.engine.saliency_sources import source_means_table, sources_table
    from saa_lib.frames import markdown

    a, b = _row("image-paper"), _row("batch-paper")
    a = SourceRow("tile", "image-paper", 0.75, 0.5, np.nan, 0.25, a.maps, a.masks, a.defect_types)
    b = SourceRow("tile", "batch-paper", 0.8, 0.6, 0.3, 0.5, b.maps, b.masks, b.defect_types)
    per = sources_table([a, b])
    assert list(per.columns) == ["category", "source", "pixel AUROC", "max-F1", "AUPRO@0.3", "s / image"]
    assert per.iloc[1].tolist() == ["tile", "batch-paper", pytest.approx(80.0), pytest.approx(60.0), pytest.approx(30.0),
                                    0.5]
    assert "n/a" in markdown(per).splitlines()[2]  # the undefined AUPRO of image-paper
    means = source_means_table([a, b], baseline="image-paper")
    assert list(means.index) == ["image-paper", "batch-paper"]
    assert means.loc["batch-paper", "Δ AUROC vs image-paper"] == pytest.approx(0.05)
    assert means.loc["batch-paper", "Δ max-F1 (points)"] == pytest.approx(10.0)
    assert "+0.0500" in markdown(means) and "+10.00" in markdown(means)
    assert source_means_table([a, b], baseline="nothing")["Δ max-F1 (points)"].isna().all()


@pytest.mark.parametrize("args, says", [(["--deep-size", "8"], "--deep-size"), (["--only", "no-such-row"], "--only")])
def test_real_feature_benchmark_bad_arguments_exit_2_with_one_line(args, says):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "saliency_real_features.py"
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr
