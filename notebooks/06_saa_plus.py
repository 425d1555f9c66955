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
# 1. Put the pipeline together: the order of the filters, and what each one removes on the known case.
# 2. Tell apart the paper's and the official code's behaviour wherever they differ, and predict what changes.
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
from IPython.display import Image, display

from saa_lib.workbook import report, viz
from saa_lib.workbook import known_case as kc
from saa_lib import workbook
from saa_lib.config import BEHAVIOURS, behaviour_table
from saa_lib.scoring import score
from saa_lib.workbook.explorer import Explorer, explorer_sources
from saa_lib.models.backbone import load_saliency_backbone
from saa_lib.prompts.language import category_prompts

workbook.check_parameters(globals())
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
# | $\mathcal{P}^P$ | IoU of $m_i$ with the object's mask $\ge \theta_{IoU}$, area$(m_i) \le \theta_{area}\,\times$ area(object) | regions off the object / too large |
# | $\mathcal{P}^S$ | $c'_i = c_i \exp(\gamma\, \overline{s}(m_i))$ | re-ranks |
# | $\mathcal{P}^C$ | top-$K$ of $c'_i$ | all but the $K$ best |
# | fusion | $A(x) = \sum c'_i m_i(x) / (\delta + \sum m_i(x))$, score $= \max A$ | — |
#
# SAM comes before $\mathcal{P}^P$: the paper's property test reads the masks. This table is the paper's form.
#
# > **Official code:** the official implementation differs in several steps (`behaviour="code"`, the default, is the
# > official code step by step; it produced the published numbers): it tests $\mathcal{P}^P$ on the *boxes* (area
# > ratio only, no IoU — so there the order of SAM and $\mathcal{P}^P$ does not matter), uses other class-agnostic
# > prompts, another saliency aggregate, $\gamma = 3$ and $\delta = 1$. Why it matters: a number measured in one
# > behaviour is not the other's, and some prompts do different jobs (exercise 06.2). The main differences:

# %%
code_cfg, paper_cfg = (wb.config(variant, b) for b in ("code", "paper"))
workbook.show(workbook.behaviour_settings_table(wb.items[0].prompts, code_cfg, paper_cfg))

# %% [markdown]
# > Every choice on which the two behaviours differ, step by step, as the library applies it
# > (`saa_lib.config.behaviour_table()`; the same table is in `docs/behaviours.md`):

# %%
workbook.show(behaviour_table())

# %% [markdown]
# ## 2. SAA and SAA+ on the data set images
#
# With the tiny random-weight detector (the default when the official weights are not here) the candidates are
# noise: the maps and the fate chart below show the machinery at work, not what SAA+ does. The known case in the
# explorer (section 3) is the part that teaches whatever the weights.

# %%
wb.caution("the maps and the fate chart of this section")
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
print(f"{sum(r.removed_by is None for r in result.regions)} region(s) fused with K = {explorer.used.top_k}, "
      f"P^S {'on' if explorer.used.use_saliency else 'off'}")
print(explorer.status.value.replace("<b>", "").replace("</b>", "").replace("<br>", "\n"))
display(Image(explorer.picture.value))  # the picture, also in static exports (HTML) without widget state
explorer.w_use["saliency"].value = True
explorer.table_values()

# %%
wb.caution("this table")
runs = wb.runs([saa, full])
workbook.show({"max-F1-pixel (%)": report.metric_table(runs, "pixel_max_f1", transpose=True)},
              head=report.header(wb.models.describe(), wb.models.meaningful, wb.data.name))

# %% [markdown]
# ## Takeaways
# 1. SAA+ is a chain: generator → threshold → $\mathcal{P}^L$ → SAM → $\mathcal{P}^P$ → $\mathcal{P}^S$ rescoring →
#    $\mathcal{P}^C$ top-$K$ → fusion; the networks run once per image, everything after them re-scores in
#    milliseconds.
# 2. The official code and the paper differ in many small steps (prompts, boxes vs masks, aggregate, $\gamma$,
#    $\delta$, top-$K$ order); they change which prompt does which job, so say which behaviour a number comes from.
# 3. Each threshold has one job: $\theta_{box}$ cuts weak boxes, $\theta_{IoU}$ checks a region touches the object,
#    $\theta_{area}$ bounds its size, $K$ bounds how many regions are fused.

# %% [markdown]
# ## Exercises
#
# Each exercise ends with `workbook.check(...)`: it says whether your answer is right and, if not, gives a hint (never
# the answer). They are about the **known case** (the first image of the explorer): its candidates are hand-built
# and its saliency is real, so the answers hold whatever the detector weights. Use the explorer, or score from code:
# `kc.known_case(lite0, workbook.make_config("saa_plus", "paper", "tf_efficientnet_lite0"))` builds the case in paper
# behaviour, `kc.fate_table(case, {"label": score(case.stages, case.prompts, config)})` shows what removed what.
#
# ### 06.1 · The box threshold
# On the known case (code behaviour, every prompt on), raise $\theta_{box}$ in steps of 0.01. At which value does the
# hole leave the map, and which candidates take its place among the $K$ kept? (On a synthetic image with the tiny
# detector, by contrast, the confidences are saturated near 1: $\theta_{box} = 0.9$ removes candidates but not the
# fused ones, and the map does not change.)

# %% tags=["exercise"]
theta_box = ...  # the lowest value, a multiple of 0.01

workbook.check("06.1", theta_box, backbone=lite0)

# %% [markdown]
# ### 06.2 · What $\mathcal{P}^P$ removes in the paper's behaviour
# Switch the known case to `paper`. From the table of section 1, predict which candidates $\mathcal{P}^P$ removes
# there, then verify. Answer with the set of their indices in `case.names` (0 is the true defect).

# %% tags=["exercise"]
removed_by_property = ...  # a set of indices, e.g. {0, 3}

workbook.check("06.2", removed_by_property, backbone=lite0)

# %% [markdown]
# ### 06.3 · $\theta_{IoU}$ is not a size test
# Still in paper behaviour, raise $\theta_{IoU}$ (`min_iou`) in steps of 0.001. From which value on does
# $\mathcal{P}^P$ remove the hole? What does that say about using $\theta_{IoU}$ to remove large regions?

# %% tags=["exercise"]
theta_iou = ...  # the smallest value, a multiple of 0.001

workbook.check("06.3", theta_iou, backbone=lite0)
