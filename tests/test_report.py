"""The tables as DataFrames: Table 1 (and its transpose), Table 2, the per-category metrics, and how they are shown
(HTML, markdown, CSV) with undefined values as ``n/a``. Known answers on hand-built runs."""
from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from saa_lib import frames
from saa_lib.workbook.report import ablation_table, metric_table, paper_value, write_report

ROOT = Path(__file__).resolve().parents[1]
NO_DEFECT = "no anomalous pixel in the ground truth"


def _runs(cable_saa=0.30):
    """SAA and SAA+ on bottle (3 images) and cable (5 images); ``cable_saa`` nan: undefined there."""
    vals = {("saa", "bottle"): 0.10, ("saa", "cable"): cable_saa, ("saa_plus", "bottle"): 0.50,
            ("saa_plus", "cable"): 0.70}
    return [SimpleNamespace(variant=v, category=c, metrics={"pixel_max_f1": x}, labels=[0] * (3 if c == "bottle" else 5),
                            undefined={} if np.isfinite(x) else {"pixel_max_f1": NO_DEFECT})
            for (v, c), x in vals.items()]


def _md_rows(text: str) -> list[list[str]]:
    """The cells of each row of the first markdown table in ``text`` (the alignment row left out)."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows if not re.fullmatch(r"[|:\- ]+", line)]


def test_table1_layout_variants_as_rows_categories_mean_and_the_paper_column():
    df = metric_table(_runs(), dataset="mvtec")
    assert df.index.name == "method" and list(df.index) == ["SAA", "SAA+"]
    assert list(df.columns) == ["bottle", "cable", "mean", "paper (mean)"]
    assert df.loc["SAA", ["bottle", "cable", "mean"]].tolist() == pytest.approx([10.0, 30.0, 20.0])
    assert df.loc["SAA+", ["bottle", "cable", "mean"]].tolist() == pytest.approx([50.0, 70.0, 60.0])
    assert df.loc["SAA", "paper (mean)"] == paper_value("saa", "mvtec") < df.loc["SAA+", "paper (mean)"]
    assert "paper (mean)" not in metric_table(_runs()).columns  # no data set the paper reports on: no column
    assert _md_rows(frames.markdown(df))[0] == ["method", "bottle", "cable", "mean", "paper (mean)"]
    assert _md_rows(frames.markdown(df))[1][:4] == ["SAA", "10.00", "30.00", "20.00"]


def test_transpose_holds_the_same_numbers_with_categories_as_rows():
    flat = metric_table(_runs(), dataset="mvtec")
    df = metric_table(_runs(), dataset="mvtec", transpose=True)
    assert df.index.name == "category" and list(df.index) == ["bottle", "cable", "mean", "paper (mean)"]
    assert list(df.columns) == ["n", "SAA", "SAA+"]
    assert df.loc["bottle"].tolist() == [3, pytest.approx(10.0), pytest.approx(50.0)]
    assert df.loc["cable", "n"] == 5
    assert df.loc["mean", ["SAA", "SAA+"]].tolist() == flat["mean"].tolist()
    assert df.loc["paper (mean)", ["SAA", "SAA+"]].tolist() == flat["paper (mean)"].tolist()
    rows = _md_rows(frames.markdown(df))
    assert rows[0] == ["category", "n", "SAA", "SAA+"] and rows[1] == ["bottle", "3", "10.00", "50.00"]
    assert rows[3] == ["mean", "-", "20.00", "60.00"]  # a count of the mean row makes no sense: "-", not n/a or blank


@pytest.mark.parametrize("transpose", [False, True])
def test_an_undefined_cell_is_nan_shown_na_and_left_out_of_the_mean(transpose):
    df = metric_table(_runs(cable_saa=float("nan")), transpose=transpose)
    cell = df.loc["SAA", "cable"] if not transpose else df.loc["cable", "SAA"]
    mean = df.loc["SAA", "mean"] if not transpose else df.loc["mean", "SAA"]
    assert math.isnan(cell) and mean == pytest.approx(10.0)
    assert df.attrs["notes"] == f"n/a = undefined, left out of the means: cable: {NO_DEFECT}."
    md = frames.markdown(df)
    cells = [c for row in _md_rows(md) for c in row]
    assert "n/a" in cells and "nan" not in md.lower().replace("n/a", "") and df.attrs["notes"] in md
    html = frames.styled(df).to_html()
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", html)
    assert "n/a" in cells and not any(c.strip().lower() in ("nan", "", "0.00") for c in cells)
    assert df.attrs["notes"] in html  # the reason, under the table (caption)


def test_a_mean_of_nothing_defined_is_na_without_a_numpy_warning():
    import warnings

    runs = [r for r in _runs(cable_saa=float("nan")) if r.variant == "saa" and r.category == "cable"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = metric_table(runs)
    assert math.isnan(df.loc["SAA", "mean"]) and _md_rows(frames.markdown(df))[1] == ["SAA", "n/a", "n/a"]


def test_table2_layout_mean_delta_and_paper():
    runs = [*_runs(), *[SimpleNamespace(variant="saa_plus-no_saliency", category=c, metrics={"pixel_max_f1": x},
                                        labels=[0], undefined={}) for c, x in (("bottle", 0.20), ("cable", 0.40))]]
    df = ablation_table(runs, dataset="mvtec")
    assert df.index.name == "variant" and list(df.index) == ["SAA", "SAA+", "SAA+ w/o P^S"]
    assert list(df.columns) == ["mean max-F1-pixel", "Δ vs SAA+", "paper"]
    assert df["mean max-F1-pixel"].tolist() == pytest.approx([20.0, 60.0, 30.0])
    delta = df["Δ vs SAA+"].tolist()
    assert delta[0] == pytest.approx(-40.0) and delta[1] == frames.NOT_APPLICABLE and delta[2] == pytest.approx(-30.0)
    assert df.loc["SAA+ w/o P^S", "paper"] == paper_value("saa_plus-no_saliency", "mvtec")
    rows = _md_rows(frames.markdown(df))
    assert rows[3] == ["SAA+ w/o P^S", "30.00", "-30.00", f"{paper_value('saa_plus-no_saliency', 'mvtec'):.2f}"]
    assert set(ablation_table(runs)["paper"]) == {frames.NOT_APPLICABLE}  # no data set: the paper reports nothing
    no_full = ablation_table([r for r in runs if r.variant != "saa_plus"])
    assert "Δ vs SAA+" not in no_full.columns  # nothing to compare with


def test_table2_delta_of_an_undefined_mean_is_na():
    runs = [*_runs(), SimpleNamespace(variant="saa_plus-no_language", category="bottle",
                                      metrics={"pixel_max_f1": float("nan")}, labels=[0],
                                      undefined={"pixel_max_f1": NO_DEFECT})]
    df = ablation_table(runs)
    assert math.isnan(df.loc["SAA+ w/o P^L", "Δ vs SAA+"])
    assert _md_rows(frames.markdown(df))[3][:3] == ["SAA+ w/o P^L", "n/a", "n/a"]


def test_metrics_csv_round_trip_with_pandas(tmp_path, hand_runs):
    from saa_lib.engine.evaluate import metrics_table, write_metrics_csv
    from saa_lib.metrics import METRIC_NAMES

    runs = hand_runs({"good_only": [0, 0, 0], "mixed": [0, 1, 0, 1]})
    path = write_metrics_csv(runs, tmp_path / "metrics.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == ["variant", "category", "n_images", *METRIC_NAMES, "undefined"]
    assert back["category"].tolist() == ["good_only", "mixed"] and back["n_images"].tolist() == [3, 4]
    for i, r in enumerate(runs):
        for k in METRIC_NAMES:
            if np.isfinite(r.metrics[k]):
                assert back.loc[i, k] == pytest.approx(100 * r.metrics[k], abs=0.005)
            else:
                assert math.isnan(back.loc[i, k])
    text = path.read_text()
    good = text.splitlines()[1].split(",")
    assert good[3:3 + len(METRIC_NAMES)] == ["n/a"] * len(METRIC_NAMES)  # undefined: n/a in the file, not 0 or blank
    assert "pixel_max_f1: no anomalous pixel" in back.loc[0, "undefined"]
    assert back.loc[1, "aupro"] != back.loc[1, "aupro"]  # not computed (no --cal-pro): NaN as well
    frame = metrics_table(runs)
    assert frame.shape == back.shape and frames.to_csv(frame) == text


def test_write_report_renders_dataframes_as_markdown(tmp_path):
    path = write_report(tmp_path / "t.md", "Title", "head\n\n", {"max-F1-pixel (%)": metric_table(_runs()),
                                                                 "text": "as it is\n"})
    text = path.read_text()
    assert "## max-F1-pixel (%)" in text and "| SAA+ " in text and "|:---" in text and "as it is" in text


def test_cell_text_rule():
    assert [frames.cell_text(v) for v in (float("nan"), None, pd.NA, np.float32("nan"))] == ["n/a"] * 4
    assert frames.cell_text(0.0) == "0.00" and frames.cell_text(3) == "3" and frames.cell_text("-") == "-"
    assert frames.cell_text(0.12345, ".3f") == "0.123" and frames.cell_text(-1.5, "+.2f") == "-1.50"


def test_behaviour_table_is_the_table_of_docs_behaviours():
    from saa_lib.config import BEHAVIOUR_CHOICES, behaviour_table

    df = behaviour_table()
    assert list(df.columns) == ["stage", "choice", "code (official code)", "paper"]
    assert [tuple(r) for r in df.itertuples(index=False)] == list(BEHAVIOUR_CHOICES)
    text = (ROOT / "docs" / "behaviours.md").read_text(encoding="utf-8")
    table = _md_rows(text[text.index("| stage |"):])
    assert [tuple(r) for r in table[1:1 + len(BEHAVIOUR_CHOICES)]] == list(BEHAVIOUR_CHOICES)


def test_known_case_fate_table_and_rescoring_table():
    from saa_lib.config import variant_config
    from saa_lib.scoring import score
    from saa_lib.workbook import known_case as kc
    from saa_lib.workbook.series import switched_off
    from saa_lib.weights.zoo import load_saliency_backbone

    cfg = variant_config("saa_plus").with_(saliency={"backbone": "tf_efficientnet_lite0"})
    case = kc.known_case(load_saliency_backbone("tf_efficientnet_lite0"), cfg, size=128)
    res = {"SAA": score(case.stages, case.prompts, variant_config("saa")), "SAA+": score(case.stages, case.prompts, cfg),
           "w/o P^S": score(case.stages, case.prompts, switched_off(cfg, "saliency"))}
    df = kc.fate_table(case, res)
    assert list(df.index) == case.names and list(df.columns) == ["confidence", "SAA", "SAA+", "w/o P^S"]
    assert df.loc["true defect", "SAA"] == "not prompted" and df.loc["true defect", "SAA+"] == "kept"
    assert df.loc[case.names[1], "SAA+"].startswith("removed: ")
    assert df["confidence"].tolist() == pytest.approx(case.stages.detections.scores.tolist())
    kept = [n for n in case.names if df.loc[n, "SAA+"] == "kept"]
    assert kept == kc.fused_names(case, res["SAA+"])
    rescored = kc.rescoring_table(case, res["SAA+"])
    r = res["SAA+"].regions[0]
    assert rescored.loc["true defect"].tolist() == pytest.approx([r.confidence, r.saliency, r.score])
    assert rescored.loc["true defect", "c' = c·exp(γ s)"] == pytest.approx(r.confidence * np.exp(cfg.gain * r.saliency))
