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
models = "auto"  # auto: official if their weights are here, else tiny (random weights) | official | tiny | random
device = "cpu"  # cpu | cuda | auto
n_images = 2  # images per category, anomalous and normal alternating
out_dir = None  # figures go to <out_dir>/figures; None: shown only
seed = 0  # synthetic data and random-weight models
saliency_backbone = "auto"  # auto: wide_resnet50_2 if its weights are here, else tf_efficientnet_lite0 (real, offline)

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
from IPython.display import Image, Markdown, display

from saa_lib.workbook import report, viz
from saa_lib import workbook
from saa_lib.config import BEHAVIOURS, behaviour_table
from saa_lib.workbook.explorer import Explorer, explorer_sources
from saa_lib.models.backbone import load_saliency_backbone
from saa_lib.prompts.language import category_prompts

saliency_backbone = workbook.choose_saliency_backbone(saliency_backbone)
wb = workbook.setup(
    models=models, device=device, saliency_backbone=saliency_backbone, seed=seed, out_dir=out_dir, dataset=dataset,
    root=root, categories=categories, n_images=n_images, behaviour=behaviour)

# %% [markdown]
# ## 1. The whole pipeline
#
# | step | what | removes / changes |
# |---|---|---|
# | generator | GroundingDINO, one forward per prompt entry ($\mathcal{P}^L$ adds the expert entries) | proposes boxes $b_i$, $c_i$ |
# | threshold | $c_i > \theta_{box}$ | weak boxes |
# | $\mathcal{P}^L$ | phrase (tokens $> \theta_{text}$) names the object | boxes of the object itself |
# | refiner | SAM, box → mask $m_i$ | — |
# | $\mathcal{P}^P$ | on the object, area $< \theta_{area}\,\times$ object (paper: on the SAM masks, IoU with the object mask $\ge \theta_{IoU}$; code: on the boxes) | regions too large / off the object |
# | $\mathcal{P}^S$ | $c'_i = c_i \exp(\gamma\, \overline{s}(m_i))$ | re-ranks |
# | $\mathcal{P}^C$ | top-$K$ of $c'_i$ | all but the $K$ best |
# | fusion | $A(x) = \sum c'_i m_i(x) / (\delta + \sum m_i(x))$, score $= \max A$ | — |
#
# SAM comes before $\mathcal{P}^P$: the paper's property test reads the masks. The official code tests the boxes, so
# there the order of the two does not matter.
#
# ### Code vs paper behaviour
#
# Where the official code and the paper differ (`behaviour`; the default `code` produced the published numbers):

# %%
code_cfg, paper_cfg = (wb.config(variant, b) for b in ("code", "paper"))
cat0, table0 = wb.items[0].sample.category, wb.items[0].prompts.table
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
# Every choice on which the two behaviours differ, step by step, as the library applies it
# (`saa_lib.config.behaviour_table()`; the same table is in `docs/behaviours.md`):

# %%
display(Markdown(behaviour_table()))

# %% [markdown]
# ## 2. SAA and SAA+ on the data set images

# %%
saa = wb.config("saa")
full = wb.config(variant)
for it in [it for it in wb.items if it.sample.label == 1][:2]:
    res = {"SAA": wb.score(it, saa), "SAA+": wb.score(it, full)}
    fig = viz.compare_results(it.image, res, it.mask, title=f"{it.sample.key} — {wb.tag}")
    wb.figures.save(fig, f"06_saa_vs_saa_plus_{it.sample.category}")
    plt.show()

# %% [markdown]
# What removed the candidates, image by image (`removed_by` of every region):

# %%
fig = viz.fate_chart({it.sample.key: wb.score(it, full) for it in wb.items},
                     title=f"fate of every candidate ({full.variant}) — {wb.tag}")
wb.figures.save(fig, "06_candidate_fates")
plt.show()

# %% [markdown]
# ## 3. The explorer
#
# Controls on the left, the picture on the right: the candidate boxes coloured by their fate (legend under the
# controls), and the anomaly map. Every change re-scores the image from its stored stage outputs with
# `pipeline.score` and redraws the picture in place; the status line says what was scored (the exact configuration)
# and how long it took. Controls without effect are greyed out: $\theta_{IoU}$ outside paper behaviour, a prompt's
# settings while that prompt is off. Changing the image keeps every setting (the button sets $K$ and
# $\theta_{area}$ to the image's category values from the prompt table); the $\theta_{box}$ slider ends at the highest
# box confidence of the image shown.
#
# The images: first the **known case** (the washer with one hole from notebooks 01–05: hand-made so each prompt
# changes the outcome, with real saliency features), then one image per category of the data set, then one real
# image per category of the real samples. Stage outputs are computed the first time an image is shown under a
# behaviour (10–20 s per image on a CPU; the status line says so), then kept.

# %%
lite0 = load_saliency_backbone("tf_efficientnet_lite0")  # the known case's saliency: real ImageNet features
sources = explorer_sources(wb.pipe, wb.data, wb.items, behaviour, saliency_backbone, lite0, seed, workbook.real_datasets())
explorer = Explorer(wb.pipe, sources, saliency_backbone, behaviour, wb.tag)
display(explorer.ui)

# %% [markdown]
# The explorer works headless too: set the controls from code; each change re-scores (`explorer.result`,
# `explorer.used` hold the last result and its configuration).

# %%
explorer.w_use["saliency"].value = False
explorer.sliders["top_k"].value = 1
result = explorer.result
assert result.variant == "saa_plus" and sum(r.removed_by is None for r in result.regions) <= 1
assert explorer.used.top_k == 1 and not explorer.used.use_saliency
print(explorer.status.value.replace("<b>", "").replace("</b>", "").replace("<br>", "\n"))
display(Image(explorer.picture.value))  # the picture, also in static exports (HTML) without widget state
explorer.w_use["saliency"].value = True
explorer.table_values()

# %%
runs = wb.runs([saa, full])
display(Markdown(report.header(wb.models.describe(), wb.models.meaningful, wb.data.name)
                 + "**max-F1-pixel (%)**\n\n" + report.metric_table(runs, "pixel_max_f1", transpose=True)))

# %% [markdown]
# ## Exercises
# 1. On the known case, raise $\theta_{box}$ step by step. At which value does the hole leave the map, and which
#    candidate takes its place among the $K$ kept? Then choose a synthetic image: its slider ends at its highest box
#    confidence. How many candidates does $\theta_{box} = 0.9$ remove
#    (`sum(r.removed_by == "threshold" for r in explorer.result.regions)`), and why does the map not change?
# 2. Switch the behaviour between `code` and `paper` on the known case with every prompt on. List the differences you
#    expect from the table in section 1, and check which ones you see. In paper behaviour, at which $\theta_{IoU}$ do
#    the patches of intact surface start to be removed by $\mathcal{P}^P$?
# 3. On the known case, turn $\mathcal{P}^P$ off and sweep $K$ from 1 to 10. From which $K$ on does a whole-object
#    region enter the map, and what does it do to the map and the image score?
#
# Answers: `notebooks/answers/06_answers.md`.
