"""The explorer of notebook 06, driven from code: every control's value reaches the configuration scored, controls
without effect are disabled, settings survive an image change, and every control changes the picture on the known
case. (tests/test_browser.py drives the same explorer in a real browser.)"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from saa_lib.workbook import known_case as kc  # noqa: E402
from saa_lib import workbook as wb  # noqa: E402
from saa_lib.cache import StageCache  # noqa: E402
from saa_lib.workbook.explorer import PROMPTS, Explorer, on_grid  # noqa: E402
from saa_lib.pipeline import SAAPipeline  # noqa: E402
from saa_lib.weights.zoo import load_saliency_only  # noqa: E402


@pytest.fixture(scope="module")
def explorer():
    models = load_saliency_only("tf_efficientnet_lite0")
    pipe = SAAPipeline(models, StageCache(enabled=False))
    case = {b: kc.known_case(models.saliency, wb.make_config("saa_plus", b, "tf_efficientnet_lite0"))
            for b in ("code", "paper")}
    # a second image: the known case with every box confidence raised to 0.9 and above (a random-weight detector)
    def loud(b):
        c = kc.known_case(models.saliency, wb.make_config("saa_plus", b, "tf_efficientnet_lite0"), seed=1)
        det = c.stages.detections
        return replace(c, stages=replace(c.stages, detections=replace(
            det, scores=(0.9 + 0.1 * np.linspace(0, 1, len(det.scores))).astype(np.float32))))

    return Explorer(pipe, {"case": case.__getitem__, "loud": loud}, "tf_efficientnet_lite0", "code", "test")


def _sliders(ex):
    return {k: w for k, w in ex.sliders.items()}


def test_initial_values_are_on_the_browser_grid(explorer):
    """A browser snaps every slider to min + n * step and sends that back: the initial values must survive it."""
    for name, w in _sliders(explorer).items():
        assert on_grid(w.value, w.min, w.step) == w.value, f"{name}: {w.value} becomes {on_grid(w.value, w.min, w.step)}"
    assert explorer.sliders["min_iou"].value == 0.001 == explorer.used.min_iou


def test_known_case_picture_says_where_it_comes_from(explorer):
    """The known case is hand-made whatever the detector: its footer says so and names the real saliency features;
    an image the models scored carries the models' tag."""
    case = explorer.item("case", "code")
    assert explorer.footer(case) == "hand-made candidates; saliency: tf_efficientnet_lite0, ImageNet weights"
    scored = wb.Item(None, case.image, case.mask, case.prompts, case.stages)
    assert explorer.footer(scored) == "test"


def test_on_grid_catches_a_value_off_the_grid():
    assert on_grid(0.001, 0.0, 0.005) == 0.0  # what happened to θ_IoU with a step of 0.005


def test_config_scored_equals_the_widget_values(explorer):
    explorer.w_behaviour.value = "paper"
    rng = np.random.default_rng(0)
    for _ in range(5):
        for name, w in _sliders(explorer).items():
            target = rng.uniform(w.min, w.max)
            w.value = on_grid(target, w.min, w.step) if isinstance(w.step, float) else int(round(target))
        for p, w in explorer.w_use.items():
            w.value = bool(rng.integers(2))
        used = explorer.used
        for name, w in _sliders(explorer).items():
            assert getattr(used, name) == w.value, name
        for p, w in explorer.w_use.items():
            assert getattr(used, f"use_{p}") == w.value
        assert f"min_iou={explorer.sliders['min_iou'].value!r}" in explorer.status.value
    for w in explorer.w_use.values():
        w.value = True
    explorer.w_behaviour.value = "code"


def test_inactive_controls_are_disabled(explorer):
    explorer.w_behaviour.value = "code"
    assert explorer.sliders["min_iou"].disabled
    explorer.w_behaviour.value = "paper"
    assert not explorer.sliders["min_iou"].disabled
    explorer.w_use["property"].value = False
    assert explorer.sliders["min_iou"].disabled and explorer.sliders["max_area_ratio"].disabled
    explorer.w_use["property"].value = True
    explorer.w_use["confidence"].value = False
    assert explorer.sliders["top_k"].disabled
    explorer.w_use["confidence"].value = True
    explorer.w_behaviour.value = "code"


def test_image_change_keeps_the_settings_and_box_range_follows_the_scores(explorer):
    explorer.w_image.value = "case"
    explorer.sliders["top_k"].value = 3
    explorer.sliders["max_area_ratio"].value = 0.37
    explorer.sliders["box_threshold"].value = 0.2
    assert explorer.sliders["box_threshold"].max == 0.45  # the known case's highest confidence
    explorer.w_image.value = "loud"
    assert explorer.sliders["top_k"].value == 3 and explorer.sliders["max_area_ratio"].value == 0.37
    assert explorer.sliders["box_threshold"].value == 0.2 and explorer.sliders["box_threshold"].max == 1.0
    assert explorer.used.top_k == 3 and explorer.used.max_area_ratio == 0.37
    explorer.w_image.value = "case"
    explorer.table_values()
    assert explorer.sliders["top_k"].value == explorer.item().prompts.top_k


def test_every_control_changes_the_picture_on_the_known_case(explorer):
    """The picture changes when any control moves from its default, and so does the map, except for θ_text: on the
    known case P^P also removes what P^L removes, so θ_text changes the phrases shown (not the map)."""
    explorer.w_image.value = "case"
    explorer.w_behaviour.value = "paper"
    for name, value in {"box_threshold": 0.1, "text_threshold": 0.1, "min_iou": 0.001}.items():
        explorer.sliders[name].value = value
    explorer.table_values()
    moves = {"box_threshold": 0.35, "text_threshold": 0.5, "min_iou": 0.05, "max_area_ratio": 0.01, "top_k": 2}
    for name, value in moves.items():
        before = explorer.picture.value, explorer.result.anomaly_map, [r.phrase for r in explorer.result.regions]
        w = explorer.sliders[name]
        old = w.value
        w.value = value
        assert explorer.picture.value != before[0], name
        if name == "text_threshold":
            assert any(before[2]) and not any(r.phrase for r in explorer.result.regions)
        else:
            assert not np.array_equal(explorer.result.anomaly_map, before[1]), name
        w.value = old
    for p in PROMPTS:
        before = explorer.result.anomaly_map
        explorer.w_use[p].value = False
        assert not np.array_equal(explorer.result.anomaly_map, before), p
        explorer.w_use[p].value = True
    before = explorer.result.anomaly_map
    explorer.w_behaviour.value = "code"
    assert not np.array_equal(explorer.result.anomaly_map, before)


def test_a_step_that_leaves_the_map_alone_still_changes_the_picture(explorer):
    """The settings line under the picture is readable whatever the footer: one step of θ_IoU (0.001 → 0.002) keeps
    the known case's map, and the picture still changes (the browser waits for that new picture)."""
    explorer.w_image.value = "case"
    explorer.w_behaviour.value = "paper"
    explorer.sliders["min_iou"].value = 0.001
    before = explorer.picture.value, explorer.result.anomaly_map
    explorer.sliders["min_iou"].value = 0.002
    assert np.array_equal(explorer.result.anomaly_map, before[1]) and explorer.picture.value != before[0]


def test_picture_is_drawn_at_its_displayed_size(explorer):
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(explorer.picture.value)) as im:
        width = im.size[0]
    assert explorer.picture.layout.width == f"{width}px"
    assert width + 270 <= 840, "picture and controls must fit beside each other in JupyterLab at 1280 px, file browser open"
    assert not math.isnan(explorer.timings["draw_ms"])


def test_headless_settings_reach_the_result(explorer):
    """What notebook 06 does from code (P^S off, K = 1): the configuration scored says so, and the map fuses at most
    one region; the settings go back afterwards."""
    for image in ("case", "loud"):
        explorer.w_image.value = image
        explorer.w_use["saliency"].value = False
        explorer.sliders["top_k"].value = 1
        result = explorer.result
        assert result.variant == "saa_plus" and sum(r.removed_by is None for r in result.regions) <= 1
        assert explorer.used.top_k == 1 and not explorer.used.use_saliency
        explorer.w_use["saliency"].value = True
        explorer.table_values()
        assert explorer.used.use_saliency and explorer.used.top_k == explorer.item().prompts.top_k
