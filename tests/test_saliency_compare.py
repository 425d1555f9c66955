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
    table = defect_type_table([_row("image-paper"), _row("batch-paper")]).splitlines()
    assert table[0] == "| category | defect type | share of defect pixels | image-paper | batch-paper |"
    assert table[2] == "| tile | hole | 25.00 | 100.00 | 100.00 |"
    assert table[3].startswith("| tile | stain | 75.00 |") and len(table) == 4


@pytest.mark.parametrize("args, says", [(["--deep-size", "8"], "--deep-size"), (["--only", "no-such-row"], "--only")])
def test_real_feature_benchmark_bad_arguments_exit_2_with_one_line(args, says):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "saliency_real_features.py"
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr
