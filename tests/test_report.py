"""Report tables: one function, two orientations of the same numbers (Table 1 layout and its transpose)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from saa_lib.workbook.report import metric_table


def _runs():
    vals = {("saa", "bottle"): 0.10, ("saa", "cable"): 0.30, ("saa_plus", "bottle"): 0.50, ("saa_plus", "cable"): 0.70}
    return [SimpleNamespace(variant=v, category=c, metrics={"pixel_max_f1": x}, labels=[0] * (3 if c == "bottle" else 5))
            for (v, c), x in vals.items()]


def _rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.strip().splitlines()]


def test_table1_layout_has_variants_as_rows_and_the_paper_column():
    rows = _rows(metric_table(_runs(), dataset="mvtec"))
    assert rows[0] == ["method", "bottle", "cable", "mean", "paper (mean)"]
    assert rows[2][:4] == ["SAA", "10.00", "30.00", "20.00"]
    assert rows[3][:4] == ["SAA+", "50.00", "70.00", "60.00"]
    assert float(rows[2][4]) > 0 and float(rows[3][4]) > float(rows[2][4])  # the paper's SAA < SAA+ on MVTec AD
    assert "paper" not in metric_table(_runs())


def test_transpose_holds_the_same_numbers_with_categories_as_rows():
    flat = _rows(metric_table(_runs(), dataset="mvtec"))
    rows = _rows(metric_table(_runs(), dataset="mvtec", transpose=True))
    assert rows[0] == ["category", "n", "SAA", "SAA+"]
    assert rows[2] == ["bottle", "3", "10.00", "50.00"] and rows[3] == ["cable", "5", "30.00", "70.00"]
    assert rows[4] == ["**mean**", "", "**20.00**", "**60.00**"]
    assert rows[5] == ["paper (mean)", "", flat[2][4], flat[3][4]]


@pytest.mark.parametrize("transpose", [False, True])
def test_a_missing_cell_is_left_out_of_the_mean(transpose):
    runs = [r for r in _runs() if (r.variant, r.category) != ("saa", "cable")]
    rows = _rows(metric_table(runs, transpose=transpose))
    mean = rows[2][3] if not transpose else rows[4][2]
    assert mean.strip("*") == "10.00"
