# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · SAA+: all four prompts together, and an explorer
#
# The full method chains the stages of notebooks 01–05. The expensive part (GroundingDINO, SAM, the saliency
# backbone) runs once per image; everything after it — thresholds, the four prompts, top-$K$, the fusion — is cheap
# and re-runs in a fraction of a second. The explorer at the end makes that tangible: move a slider and the anomaly
# map is re-scored from the stored stage outputs, with no model in the loop.
#
# ## Learning goals
# 1. Put the pipeline together: order of the filters, what each one removes on real candidates.
# 2. Tell apart the paper's and the official code's behaviour wherever they differ.
# 3. Explore the settings interactively (box / text thresholds, $\theta_{IoU}$, $\theta_{area}$, $K$, each prompt on or
#    off) and see which ones matter on which image.

# %% tags=["parameters"]
dataset = "synthetic"  # synthetic | mvtec | visa | ksdd2 | mtd | folder
root = None  # data set folder; None: data/synthetic (generated on first use)
categories = None  # e.g. ["washer"]; None: every category
variant = "saa_plus"  # the full method (any variant name works)
behaviour = "code"  # code (the official implementation) | paper
models = "tiny"  # official | tiny (random weights, tests only) | random
device = "cpu"  # cpu | cuda | auto
n_images = 2  # images per category, anomalous and normal alternating
out_dir = None  # figures go to <out_dir>/figures; None: shown only
seed = 0  # synthetic data and random-weight models
saliency_backbone = "wide_resnet50_2"  # or tf_efficientnet_lite0 (real ImageNet weights, installed offline)

# %%
# %matplotlib inline
import io
import time

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, Markdown, display

from saa_lib import report, viz
from saa_lib import notebook_report as nb
from saa_lib.config import BEHAVIOURS
from saa_lib.prompts.language import category_prompts

loaded, TAG, pipe, figures, ds, items = nb.setup(models, device, saliency_backbone, seed, out_dir, dataset, root,
                                                 categories, n_images, behaviour)

# %% [markdown]
# ## 1. The whole pipeline
#
# | step | what | removes / changes |
# |---|---|---|
# | generator | GroundingDINO, one forward per prompt entry ($\mathcal{P}^L$ adds the expert entries) | proposes boxes $b_i$, $c_i$ |
# | threshold | $c_i > \theta_{box}$ | weak boxes |
# | $\mathcal{P}^L$ | phrase (tokens $> \theta_{text}$) names the object | boxes of the object itself |
# | $\mathcal{P}^P$ | on the object, area $< \theta_{area}\,\times$ object | regions too large / off the object |
# | refiner | SAM, box → mask $m_i$ | — |
# | $\mathcal{P}^S$ | $c'_i = c_i \exp(\gamma\, \overline{s}(m_i))$ | re-ranks |
# | $\mathcal{P}^C$ | top-$K$ of $c'_i$ | all but the $K$ best |
# | fusion | $A(x) = \sum c'_i m_i(x) / (\delta + \sum m_i(x))$, score $= \max A$ | — |
#
# Where the official code and the paper differ (`behaviour`):

# %%
code_cfg, paper_cfg = (nb.make_config(variant, b, saliency_backbone) for b in ("code", "paper"))
cat0, table0 = items[0].sample.category, items[0].prompts.table
agnostic = {b: ", ".join(f"`{e.caption}`" for e in category_prompts(cat0, table0, behaviour=b).entries
                         if e.kind == "agnostic") for b in BEHAVIOURS}
rows = ["| setting | paper | official code |", "|---|---|---|",
        f"| class-agnostic prompts ({cat0}) | {agnostic['paper']} | {agnostic['code']} |",
        f"| P^P | SAM masks: IoU with the object ≥ {paper_cfg.min_iou:g} and area ratio | boxes: area ratio only |",
        f"| P^S neighbours | {paper_cfg.saliency.aggregate} N, 1 − cos | {code_cfg.saliency.aggregate} N, ½ (1 − cos) |",
        "| P^S with several objects per image (count > 1) | whole image | each object against the other objects |",
        f"| P^S rescoring gain γ | {paper_cfg.gain:g} | {code_cfg.gain:g} |",
        f"| fusion offset δ | {paper_cfg.offset:g} | {code_cfg.offset:g} |"]
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## 2. SAA and SAA+ on the data set images

# %%
saa = nb.make_config("saa", behaviour, saliency_backbone)
full = nb.make_config(variant, behaviour, saliency_backbone)
for it in [it for it in items if it.sample.label == 1][:2]:
    res = {"SAA": pipe.score(it.stages, it.prompts, saa), "SAA+": pipe.score(it.stages, it.prompts, full)}
    fig = viz.compare_results(it.image, res, it.mask, title=f"{it.sample.key} — {TAG}")
    figures.save(fig, f"06_saa_vs_saa_plus_{it.sample.category}")
    plt.show()

# %% [markdown]
# What removed the candidates, image by image (`removed_by` of every region):

# %%
fates = ["threshold", "language", "property", "confidence", None]
counts = np.zeros((len(items), len(fates)))
for i, it in enumerate(items):
    for r in pipe.score(it.stages, it.prompts, full).regions:
        counts[i, fates.index(r.removed_by)] += 1
fig, ax = plt.subplots(figsize=(6.5, 3.2))
left = np.zeros(len(items))
for j, f in enumerate(fates):
    ax.barh(range(len(items)), counts[:, j], left=left, color=viz.FATE_COLOURS[f],
            label="kept" if f is None else f"removed: {f}")
    left += counts[:, j]
ax.set_yticks(range(len(items)))
ax.set_yticklabels([it.sample.key for it in items], fontsize=7)
ax.set_xlabel("candidate regions")
ax.set_title(f"fate of every candidate ({full.variant}) — {TAG}", fontsize=9)
ax.legend(fontsize=7, loc="lower right")
fig.tight_layout()
figures.save(fig, "06_candidate_fates")
plt.show()

# %% [markdown]
# ## 3. The explorer
#
# The stage outputs are computed **once** per image and behaviour (the two behaviours ask different class-agnostic
# prompts and compute the saliency differently); every change of a control calls `pipeline.score` only. One image per
# category; the `code` stages are those computed above (cache hits), the `paper` ones are computed here.

# %%
explore = {}  # behaviour -> list of items
t0 = time.perf_counter()
for b in BEHAVIOURS:
    explore[b] = nb.stage_items(pipe, ds, 1, nb.make_config("saa_plus", b, saliency_backbone))
print(f"explorer stages: {sum(len(v) for v in explore.values())} in {time.perf_counter() - t0:.1f} s")

# %%
w_image = W.Dropdown(options=[(it.sample.key, i) for i, it in enumerate(explore["code"])], description="image")
w_behaviour = W.ToggleButtons(options=list(BEHAVIOURS), value=behaviour, description="behaviour")
w_box = W.FloatSlider(value=0.1, min=0.05, max=0.6, step=0.01, description="θ_box")
w_text = W.FloatSlider(value=0.1, min=0.05, max=0.6, step=0.01, description="θ_text")
w_iou = W.FloatSlider(value=full.min_iou, min=0.0, max=0.5, step=0.005, readout_format=".3f",
                      description="θ_IoU")  # P^P with masks: paper behaviour only
w_area = W.FloatSlider(value=explore["code"][0].prompts.max_area_ratio, min=0.01, max=1.0, step=0.01,
                       description="θ_area")
w_k = W.IntSlider(value=explore["code"][0].prompts.top_k, min=1, max=30, description="K")
w_use = {p: W.Checkbox(value=True, description=f"P^{p[0].upper()} ({p})", indent=False) for p in nb.PROMPTS}
picture = W.Image(format="png")  # the figure, as PNG bytes: redrawn without any output capture
status = W.HTML()


def update(change=None):
    """Re-score the chosen image from its stored stage outputs and redraw; returns the ImageResult."""
    it = explore[w_behaviour.value][w_image.value]
    cfg = nb.make_config("saa_plus", w_behaviour.value, saliency_backbone, box_threshold=w_box.value,
                         text_threshold=w_text.value, min_iou=w_iou.value, max_area_ratio=w_area.value,
                         top_k=w_k.value, **{f"use_{p}": w.value for p, w in w_use.items()})
    t = time.perf_counter()
    res = pipe.score(it.stages, it.prompts, cfg)
    ms = 1000 * (time.perf_counter() - t)
    kept = sum(r.removed_by is None for r in res.regions)
    status.value = (f"<b>{it.sample.key}</b>: {kept} of {len(res.regions)} regions kept, image score "
                    f"{res.image_score:.3f}; re-scored in {ms:.0f} ms from stored stage outputs — {TAG}")
    fig = viz.compare_results(it.image, {"SAA+ (explorer settings)": res}, it.mask,
                              title=f"{cfg.behaviour} behaviour — {TAG}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    picture.value = buf.getvalue()
    return res


def on_image(change):
    pr = explore[w_behaviour.value][w_image.value].prompts
    w_area.value, w_k.value = pr.max_area_ratio, pr.top_k  # the category's table values (each triggers update)
    update()


for w in [w_behaviour, w_box, w_text, w_iou, w_area, w_k, *w_use.values()]:
    w.observe(update, names="value")
w_image.observe(on_image, names="value")
ui = W.VBox([W.HBox([w_image, w_behaviour]), W.HBox([w_box, w_text]), W.HBox([w_iou, w_area, w_k]),
             W.HBox(list(w_use.values())), status, picture])
result = update()  # draw once (this call is also what a headless run checks)
display(ui)

# %% [markdown]
# The explorer works headless too: set the controls from code and call `update()`.

# %%
w_use["saliency"].value = False  # triggers update()
w_k.value = 1
result = update()
assert result.variant == "saa_plus" and sum(r.removed_by is None for r in result.regions) <= 1
print(status.value.replace("<b>", "").replace("</b>", ""))
display(Image(picture.value))  # the explorer's last picture, also in static exports (HTML) without widget state
w_use["saliency"].value, w_k.value = True, explore["code"][0].prompts.top_k

# %%
runs = nb.category_runs(pipe, items, [saa, full])
display(Markdown(report.header(loaded.describe(), loaded.meaningful, ds.name)
                 + "**max-F1-pixel (%)**\n\n" + nb.category_rows_table(runs, "pixel_max_f1")))

# %% [markdown]
# ## Exercises
# 1. In the explorer, find the setting of $\theta_{box}$ above which an image loses all its candidates. How does that
#    value relate to the generator's floor (`pipe.generator.floor`) and to the confidences you see?
# 2. Switch the behaviour between `code` and `paper` on the same image with every prompt on. List the differences
#    you expect from the table in section 1, and check which ones you see.
# 3. Turn $\mathcal{P}^P$ off and sweep $K$: for which images does a large $K$ hurt, and why?
#
# Answers: `notebooks/answers/06_answers.md`.
