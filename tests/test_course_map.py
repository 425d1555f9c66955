"""The course map (notebook 00_course_map) against the code and the series: its route names every notebook, its
glossary's settings exist with the defaults it states and each symbol appears where it says it is introduced, and its
worked metrics example and figures show what the metrics compute."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from saa_lib import metrics  # noqa: E402
from saa_lib.config import SAAConfig, SaliencyConfig, variant_config  # noqa: E402
from saa_lib.peers import PeerConfig  # noqa: E402
from saa_lib.records import Detections, ImageResult, Region, StageOutputs  # noqa: E402
from saa_lib.workbook import NOTEBOOKS, course  # noqa: E402

jupytext = pytest.importorskip("jupytext")

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
CLASSES = {c.__name__: c for c in (SAAConfig, SaliencyConfig, PeerConfig, Detections, StageOutputs, ImageResult,
                                    Region)}


def _markdown(name: str) -> list[str]:
    return [c.source for c in jupytext.read(NB_DIR / f"{name}.py").cells if c.cell_type == "markdown"]


def _sections(name: str) -> dict[int, str]:
    """{section number: the markdown of that numbered section (## k. ...) of notebook ``name``}."""
    out, current = {}, None
    for text in _markdown(name):
        head = re.match(r"\s*##\s+(\d+)\.", text)
        if head:
            current = int(head.group(1))
        if current is not None:
            out[current] = out.get(current, "") + "\n" + text
    return out


def _glossary() -> list[list[str]]:
    text = next(s for s in _markdown("00_course_map") if "Glossary of symbols" in s)
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| symbol")]
    assert len(rows) >= 20 and all(len(r) == 5 for r in rows)
    return rows


def test_the_route_names_every_notebook_and_the_capstone():
    route = next(s for s in _markdown("00_course_map") if "## 2. The route" in s)
    for name in NOTEBOOKS:
        assert f"`{name}`" in route, f"the route does not name {name}"
    assert "capstone" in route


def _resolve(path: str):
    """The object a glossary entry names: ``Class.attribute`` of the records and configs, or ``module.function``
    under ``saa_lib``."""
    owner, attr = path.rsplit(".", 1)
    if owner in CLASSES:
        cls = CLASSES[owner]
        fields = getattr(cls, "__dataclass_fields__", {})
        assert attr in fields or hasattr(cls, attr), f"{path} does not exist"
        return cls, attr
    module = importlib.import_module(f"saa_lib.{owner}")
    assert hasattr(module, attr), f"{path} does not exist"
    return module, attr


def _value(config, attr: str):
    """A setting's value as the pipeline uses it (None resolved by the behaviour, as ``gain`` and ``offset`` do)."""
    resolved = {"rescore_gain": "gain", "fusion_offset": "offset"}
    if attr in resolved:
        return getattr(config, resolved[attr])
    return getattr(config.saliency, attr) if attr in SaliencyConfig.__dataclass_fields__ else getattr(config, attr)


@pytest.mark.parametrize("row", _glossary(), ids=lambda r: r[0])
def test_glossary_entry_matches_the_code(row):
    symbol, _, where, default, introduced = row
    settings = re.findall(r"`([\w.]+)`", where)
    for path in settings:
        _resolve(path)
    first = settings[0] if settings else ""
    owner = first.split(".")[0]
    if owner in ("SAAConfig", "SaliencyConfig") and " / " in default:
        attr = first.split(".")[1]
        for form, stated in zip(("paper", "code"), default.split(" / ")):
            actual = _value(variant_config("saa_plus", form), attr)
            if stated == "table":
                assert getattr(SAAConfig(), attr) is None, f"{first} is not taken from the tables"
            elif stated != "—":
                assert float(stated) == pytest.approx(actual), f"{first} ({form}) is {actual}, not {stated}"
    elif owner == "PeerConfig" and re.fullmatch(r"[\d.]+", default):
        assert float(default) == pytest.approx(getattr(PeerConfig(), first.split(".")[1]))
    name, section = re.fullmatch(r"`(\w+)` §(\d+)", introduced).groups()
    assert name in NOTEBOOKS, f"{symbol}: no notebook {name}"
    text = _sections(name).get(int(section), "")
    for latex in re.findall(r"\$([^$]+)\$", symbol) or [symbol]:
        assert latex in text, f"{symbol}: {latex!r} is not in {name} section {section}"


def test_the_worked_example_by_hand():
    ex = course.metrics_example()
    assert ex.masks.sum() == 16 and (~ex.masks).sum() == 176 and ex.labels.tolist() == [True, True, False]
    best = course.at_threshold(ex.maps, ex.masks, 0.6)  # normalised 0.625: raw scores >= 0.6
    assert (best.tp, best.fp, best.fn) == (12, 0, 4) and best.f1 == pytest.approx(6 / 7)
    assert metrics.pixel_max_f1(ex.maps, ex.masks) == pytest.approx(6 / 7)
    # the 4 defect pixels at 0.3 lose against 3 normal pixels above them and tie with 4 normal pixels at 0.3
    assert metrics.pixel_auroc(ex.maps, ex.masks) == pytest.approx(1 - 4 * (3 + 0.5 * 4) / (16 * 176))
    assert metrics.image_auroc(ex.maps, ex.labels) == 1.0
    everything = course.at_threshold(ex.maps, ex.masks, 0.0)
    assert (everything.tp, everything.fp, everything.fn) == (16, 176, 0)


def test_the_threshold_table_of_the_worked_example():
    from saa_lib.frames import markdown

    ex = course.metrics_example()
    df = course.threshold_table(ex.maps, ex.masks)
    assert list(df.columns) == ["threshold t", "flags raw scores", "TP", "FP", "FN", "precision", "recall", "F1"]
    assert df["threshold t"].tolist() == pytest.approx([1, 0.625, 0.5, 0.375, 0.25, 0.125, 0])  # 7 distinct scores
    assert df["flags raw scores"].tolist() == ["≥ 0.9", "≥ 0.6", "≥ 0.5", "≥ 0.4", "≥ 0.3", "≥ 0.2", "≥ 0.1"]
    assert df.iloc[0, 2:5].tolist() == [4, 0, 12] and df.iloc[1, 2:5].tolist() == [12, 0, 4]
    assert df.iloc[-1, 2:5].tolist() == [16, 176, 0]
    assert df["F1"].max() == pytest.approx(metrics.pixel_max_f1(ex.maps, ex.masks))
    row = [c.strip() for c in markdown(df).splitlines()[3].strip("|").split("|")]
    assert row == ["0.625", "≥ 0.6", "12", "0", "4", "1.000", "0.750", "0.857"]


def test_the_metrics_figure_marks_the_max_f1_point():
    import matplotlib.pyplot as plt

    ex = course.metrics_example()
    fig = course.metrics_figure(ex)
    star = next(line for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "*")
    r, p = star.get_xdata()[0], star.get_ydata()[0]
    assert 2 * p * r / (p + r) == pytest.approx(metrics.pixel_max_f1(ex.maps, ex.masks))
    texts = " ".join(t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts())
    for value in (metrics.aupro(ex.maps, ex.masks), metrics.pixel_auroc(ex.maps, ex.masks)):
        assert f"{value:.3f}" in texts
    plt.close(fig)


def test_the_pipeline_diagram_names_every_stage_and_prompt():
    import matplotlib.pyplot as plt

    fig = course.pipeline_diagram()
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    for word in ("GroundingDINO", "SAM", "saliency backbone", "P}^L", "P}^P", "P}^S", "P}^C", "fusion",
                 "theta_{box}", "theta_{area}", "gamma", "delta"):
        assert word in text, word
    assert np.isin(["(01)", "(02)", "(03)", "(04)", "(05)"], re.findall(r"\(\d\d\)", text)).all()
    plt.close(fig)
