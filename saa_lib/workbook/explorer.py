"""The interactive explorer of notebook 06: ipywidgets controls beside a picture that is re-scored from stored stage
outputs (:func:`saa_lib.scoring.score`, no model in the loop) and redrawn in place.

Every control holds exactly the value the model uses: each slider's initial value lies on its step grid (a browser
snaps a slider to that grid and sends the snapped value back), :meth:`Explorer.config` reads the widget values as
they are, and the status line shows the configuration actually scored. Controls without effect are disabled
(θ_IoU outside paper behaviour, a prompt's settings while the prompt is off). Changing the image keeps every setting;
only the θ_box range follows the box confidences of the image shown.

Images are *sources*: ``{name: callable(behaviour) -> item}``, an item being anything with ``image`` (H, W, 3) uint8,
``mask`` (R, R) bool, ``prompts`` and ``stages`` (a :class:`saa_lib.workbook.Item` or a
:class:`saa_lib.workbook.known_case.KnownCase`; :func:`explorer_sources` builds them). A source is called on first view of an
image under a behaviour (that may run the models once) and its item kept.
"""
from __future__ import annotations

import math
import time
from typing import Callable

from ..config import BEHAVIOURS
from ..prompts.saliency import saliency_key
from ..scoring import score
from .known_case import KnownCase
from .viz import MapCanvas, fate_legend_html
from .series import PROMPTS, make_config

#: the settings read from the sliders: SAAConfig field -> (label, step)
SLIDERS = {"box_threshold": ("θ_box", 0.01), "text_threshold": ("θ_text", 0.01), "min_iou": ("θ_IoU", 0.001),
           "max_area_ratio": ("θ_area", 0.01), "top_k": ("K", 1)}


def on_grid(value: float, lo: float, step: float) -> float:
    """The value a browser slider sends back for ``value``: snapped to the grid ``lo + n * step`` (double arithmetic,
    as in JavaScript)."""
    return lo + round((value - lo) / step) * step


class Explorer:
    """Controls + picture for ``sources`` (see the module doc), scored with ``pipe`` under ``saa_plus`` settings.

    ``saliency_backbone``: recorded in the configs; ``tag``: the models' tag for the picture's title; ``side``:
    pixels of one panel's long side (two panels and a colour bar fit beside the controls in a 1280 px window).
    """

    def __init__(self, pipe, sources: dict[str, Callable], saliency_backbone: str, behaviour: str = "code",
                 tag: str = "", side: int = 240):
        import ipywidgets as W

        self.pipe, self.sources, self.backbone, self.tag, self.side = pipe, dict(sources), saliency_backbone, tag, side
        self._items: dict = {}
        self._stages: dict = {}  # (image, behaviour) -> its stage outputs with every P^S map computed so far
        self._canvas: dict = {}
        self._busy = False
        self.result = None
        self.timings = {"score_ms": math.nan, "draw_ms": math.nan}
        first = self.item(next(iter(self.sources)), behaviour)
        base = make_config("saa_plus", behaviour, saliency_backbone)
        full = {"layout": W.Layout(width="262px"), "style": {"description_width": "48px"}}
        self.w_image = W.Dropdown(options=list(self.sources), description="image", **full)
        self.w_behaviour = W.ToggleButtons(options=list(BEHAVIOURS), value=behaviour, description="behaviour",
                                           style={"description_width": "48px", "button_width": "70px"})
        top = self.box_max(first)
        self.sliders = {
            "box_threshold": W.FloatSlider(value=on_grid(min(base.box_threshold, top), 0.0, 0.01), min=0.0, max=top,
                                           step=0.01, description="θ_box", readout_format=".2f", **full),
            "text_threshold": W.FloatSlider(value=on_grid(base.text_threshold, 0.0, 0.01), min=0.0, max=1.0,
                                            step=0.01, description="θ_text", readout_format=".2f", **full),
            "min_iou": W.FloatSlider(value=on_grid(base.min_iou, 0.0, 0.001), min=0.0, max=0.1, step=0.001,
                                     description="θ_IoU", readout_format=".3f", **full),
            "max_area_ratio": W.FloatSlider(value=on_grid(first.prompts.max_area_ratio, 0.0, 0.01), min=0.0,
                                            max=1.0, step=0.01, description="θ_area", readout_format=".2f", **full),
            "top_k": W.IntSlider(value=first.prompts.top_k, min=1, max=max(30, first.prompts.top_k), description="K",
                                 **full),
        }
        self.w_use = {p: W.Checkbox(value=True, description=f"P^{p[0].upper()} {p}", indent=False,
                                    layout=W.Layout(width="125px" if i % 2 == 0 else "140px"))
                      for i, p in enumerate(PROMPTS)}
        self.w_table = W.Button(description="K, θ_area from the table", layout=W.Layout(width="200px"),
                                tooltip="set K and θ_area to the prompt table's values for this image's category")
        self.picture = W.Image(format="jpeg", layout=W.Layout(width=f"{self._canvas_for(first).width}px"))
        self.status = W.HTML()
        for w in [self.w_behaviour, *self.sliders.values(), *self.w_use.values()]:
            w.observe(self.update, names="value")
        self.w_image.observe(self.on_image, names="value")
        self.w_table.on_click(self.table_values)
        controls = W.VBox([self.w_image, self.w_behaviour, *self.sliders.values(),
                           W.GridBox(list(self.w_use.values()), layout=W.Layout(grid_template_columns="125px 140px")),
                           self.w_table, W.HTML(fate_legend_html())], layout=W.Layout(width="270px", flex="0 0 270px"))
        self.ui = W.HBox([controls, W.VBox([self.picture, self.status])])
        for name, w in [("explorer", self.ui), ("picture", self.picture), ("status", self.status),
                        ("behaviour", self.w_behaviour), ("image", self.w_image), *self.sliders.items(),
                        *((f"use_{p}", w) for p, w in self.w_use.items())]:
            w.add_class(f"saa-{name}")  # stable hooks for the browser test (tests/test_browser.py)
        self.update()

    # ----- data
    def item(self, name: str | None = None, behaviour: str | None = None):
        """The item of image ``name`` under ``behaviour`` (default: those shown), computed on first use."""
        name = self.w_image.value if name is None else name
        behaviour = self.w_behaviour.value if behaviour is None else behaviour
        key = (name, behaviour)
        if key not in self._items:
            self._items[key] = self.sources[name](behaviour)
        return self._items[key]

    def footer(self, item) -> str:
        """The line under ``item``'s picture: the models' tag, except for the known case, whose candidates are
        hand-made whatever the models (its own source line)."""
        return item.source if isinstance(item, KnownCase) else self.tag

    def _canvas_for(self, item) -> MapCanvas:
        if id(item.image) not in self._canvas:
            self._canvas[id(item.image)] = MapCanvas(item.image, item.mask, side=self.side, footer=self.footer(item))
        return self._canvas[id(item.image)]

    @staticmethod
    def box_max(item) -> float:
        """The θ_box slider's maximum for ``item``: its highest box confidence, rounded up to the 0.01 grid."""
        scores = item.stages.detections.scores
        return min(1.0, max(0.05, math.ceil(100 * float(scores.max())) / 100)) if len(scores) else 1.0

    def config(self):
        """The :class:`saa_lib.config.SAAConfig` the controls describe (widget values used as they are)."""
        values = {k: w.value for k, w in self.sliders.items()}
        return make_config("saa_plus", self.w_behaviour.value, self.backbone, **values,
                                 **{f"use_{p}": w.value for p, w in self.w_use.items()})

    @staticmethod
    def settings_line(cfg) -> str:
        """The settings a picture was scored with, written under it (so a saved picture says what it shows)."""
        on = "".join(p[0].upper() for p in PROMPTS if getattr(cfg, f"use_{p}")) or "none"
        return (f"{cfg.behaviour}: box {cfg.box_threshold:.2f} text {cfg.text_threshold:.2f} IoU {cfg.min_iou:.3f} "
                f"area {cfg.max_area_ratio:.2f} K {cfg.top_k} P^{on}")

    # ----- callbacks
    def _set_enabled(self) -> None:
        use = {p: w.value for p, w in self.w_use.items()}
        s = self.sliders
        s["text_threshold"].disabled = not use["language"]
        s["min_iou"].disabled = not (use["property"] and self.w_behaviour.value == "paper")
        s["max_area_ratio"].disabled = not use["property"]
        s["top_k"].disabled = not use["confidence"]

    def update(self, change=None):
        """Re-score the image shown with the controls' settings and redraw in place; returns the ImageResult."""
        if self._busy:
            return self.result
        if (self.w_image.value, self.w_behaviour.value) not in self._items:
            self.status.value = f"computing the stage outputs of <b>{self.w_image.value}</b> (first view) ..."
        self._set_enabled()
        it = self.item()
        cfg = self.config()
        shown = (self.w_image.value, self.w_behaviour.value)
        st = self._stages.get(shown, it.stages)
        if cfg.use_saliency and saliency_key(st, it.prompts, cfg) not in st.saliency_maps:
            # multi-instance saliency compares the objects found, which θ_box decides: a new set, a new map
            st = self._stages[shown] = self.pipe.with_saliency(st, it.image, it.prompts, cfg)
        t0 = time.perf_counter()
        res = score(st, it.prompts, cfg, tokenizer=self.pipe.tokenizer)
        t1 = time.perf_counter()
        self.picture.value = self._canvas_for(it).render(res, title=f"anomaly map, image score {res.image_score:.3f}",
                                                         note=self.settings_line(cfg))
        t2 = time.perf_counter()
        self.timings = {"score_ms": 1000 * (t1 - t0), "draw_ms": 1000 * (t2 - t1)}
        self.result, self.used = res, cfg
        kept = sum(r.removed_by is None for r in res.regions)
        sliders = " ".join(f"{k}={getattr(cfg, k)!r}" for k in SLIDERS)
        prompts = " ".join(f"use_{p}={getattr(cfg, f'use_{p}')}" for p in PROMPTS)
        self.status.value = (f"<b>{self.w_image.value}</b> ({cfg.behaviour}): {kept} of {len(res.regions)} regions "
                             f"kept, image score {res.image_score:.3f}; re-scored in {self.timings['score_ms']:.0f} ms, "
                             f"drawn in {self.timings['draw_ms']:.0f} ms<br>config used: "
                             f"<code class='saa-config'>{sliders} {prompts}</code>")
        return res

    def on_image(self, change=None):
        """A new image keeps every setting; θ_box's range follows the new image's confidences (value kept if it
        fits, else set to the new maximum)."""
        self._busy = True
        try:
            if (self.w_image.value, self.w_behaviour.value) not in self._items:
                self.status.value = f"computing the stage outputs of <b>{self.w_image.value}</b> (first view) ..."
            it = self.item()
            box = self.sliders["box_threshold"]
            top = self.box_max(it)
            if box.value > top:
                box.value = top
            box.max = top
            self.picture.layout.width = f"{self._canvas_for(it).width}px"
        finally:
            self._busy = False
        return self.update()

    def table_values(self, button=None):
        """Set K and θ_area to the prompt table's values for the category shown."""
        pr = self.item().prompts
        self._busy = True
        try:
            self.sliders["top_k"].value = pr.top_k
            self.sliders["max_area_ratio"].value = on_grid(pr.max_area_ratio, 0.0, 0.01)
        finally:
            self._busy = False
        return self.update()


def explorer_sources(pipe, dataset, items: list, behaviour: str, saliency_backbone: str, case_backbone,
                     seed: int = 0, real: dict | None = None) -> dict:
    """The images of the explorer (:class:`saa_lib.workbook.explorer.Explorer`), ``{name: callable(behaviour) -> item}``:

    the hand-made known case first (``case_backbone`` computes its saliency), then the first image of each category
    of ``dataset`` (taken from ``items``, computed under ``behaviour``, when that is the behaviour asked), then the
    first anomalous image of each category of ``real`` (``{category: dataset}``, e.g.
    :func:`saa_lib.workbook.real_datasets`). Stage outputs are computed on first view only.
    """
    from .known_case import known_case
    from .series import sample_item

    def case(b):
        return known_case(case_backbone, make_config("saa_plus", b, saliency_backbone), seed=seed)

    def from_items(first):
        def load(b):
            done = [it for it in items if it.sample is first and b == behaviour]
            return done[0] if done else sample_item(pipe, dataset, first, make_config("saa_plus", b, saliency_backbone))
        return load

    def from_real(rds, smp):
        return lambda b: sample_item(pipe, rds, smp, make_config("saa_plus", b, saliency_backbone))

    sources = {"known case (hand-made): washer/hole": case}
    for cat in dict.fromkeys(it.sample.category for it in items):
        first = next(it.sample for it in items if it.sample.category == cat)
        sources[f"{dataset.name}: {first.key}"] = from_items(first)
    for cat, rds in (real or {}).items():
        smp = next((s for s in rds.samples(cat) if s.label == 1), None)
        if smp is not None:
            sources[f"real: {smp.key}"] = from_real(rds, smp)
    return sources
