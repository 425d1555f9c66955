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
# # 01 · The baseline SAA: a detector, a segmenter and class-agnostic prompts
#
# SAA ("Segment Any Anomaly", the paper's baseline) chains two foundation models. **GroundingDINO** reads a text
# prompt and returns boxes with confidences; **SAM** turns each box into a mask. With *class-agnostic* prompts — the
# same few words for every category — the candidate masks are fused into an anomaly map. This notebook runs exactly
# that (variant `saa`) and shows why it is not enough.
#
# ## Learning goals
# 1. Follow one image through the expensive stages: GroundingDINO boxes → SAM masks (computed once, cached).
# 2. Write down the fusion of candidate regions into an anomaly map and the image score.
# 3. See the baseline's failure modes: the detector answers "defect on washer" with the washer itself, large regions
#    swamp the map, and nothing tells a defect from an ordinary part of the object.

# %% tags=["parameters"]
dataset = "synthetic"  # synthetic | mvtec | visa | ksdd2 | mtd | folder
root = None  # data set folder; None: data/synthetic (generated on first use)
categories = None  # e.g. ["washer"]; None: every category
variant = "saa_plus"  # the full method the later notebooks compare with
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
import numpy as np
from IPython.display import display

from saa_lib import metrics
from saa_lib.workbook import report, viz
from saa_lib.workbook import known_case as kc
from saa_lib import workbook
from saa_lib.models.backbone import load_saliency_backbone
from saa_lib.scoring import score

workbook.check_parameters(globals())
saliency_backbone = workbook.choose_saliency_backbone(saliency_backbone)
wb = workbook.setup(
    models=models, device=device, saliency_backbone=saliency_backbone, seed=seed, out_dir=out_dir, dataset=dataset,
    root=root, categories=categories, n_images=n_images, behaviour=behaviour)

# %% [markdown]
# ## 1. The two expensive stages, once per image
#
# For every image, `pipeline.stages` runs GroundingDINO on each prompt entry (one forward per entry, batched, the image
# backbone run once for all entries), SAM on every box, and the saliency backbone; the results go to the stage cache,
# so every later notebook and every re-score costs milliseconds. `workbook.setup` (the set-up cell above, shared by every
# notebook) computed them with the full `saa_plus` settings: it needs every stage any variant needs. One image holds:

# %%
for it in wb.items[:2]:
    st = it.stages
    print(f"{it.sample.key}: {len(st.detections)} boxes from {len(st.detections.captions)} prompts, "
          f"masks {st.masks.shape}, object boxes {len(st.object_detections)}")

# %% [markdown]
# ## 2. From regions to an anomaly map
#
# GroundingDINO answers a prompt $T$ with boxes $b_i$ and confidences $c_i$; SAM turns each into a mask
# $m_i \in \{0,1\}^{H\times W}$. The regions that survive are fused pixel by pixel:
#
# $$A(x) = \frac{\sum_i c_i\, m_i(x)}{\delta + \sum_i m_i(x)}, \qquad
#   \text{image score} = \max_x A(x),$$
#
# with $\delta = 0$ in the paper: a pixel scores the mean confidence of the regions that cover it, and 0 where none
# does. The baseline SAA keeps every box above the box threshold $\theta_{box}$ whose prompt is class-agnostic — the
# same words for every category, in the paper `anomaly` and `defect`.
#
# > **Official code:** $\delta = 1$. A pixel covered by one region of confidence $c$ then scores $c/2$, and $n$
# > overlapping regions of confidence $c$ score $c\,n/(n+1)$: pixels on which several regions agree are lifted, which
# > changes the ranking of pixels wherever regions overlap (and so max-F1 and AUROC). Its class-agnostic prompts are
# > `defect on <category>`, `damage on <category>` and `flaw on <category>` (three forwards instead of two).
# > `behaviour="code"` (the default) follows the official code; `"paper"` the paper.

# %%
saa = wb.config("saa")
print("class-agnostic prompts:", [e.caption for e in wb.items[0].prompts.entries if e.kind == "agnostic"])
print(f"box threshold {saa.box_threshold}, text threshold {saa.text_threshold}, fusion offset δ = {saa.offset}")

# %% [markdown]
# ## 3. Where it fails, on a case we understand
#
# Random detector weights cannot show what a trained GroundingDINO does, so first a **known case**: a synthetic washer
# with a hole and candidate regions **hand-made so each prompt changes the outcome** (the true defect, the whole washer
# under two phrases, patches of intact metal, a patch of background, with confidences chosen for that). It shows the
# mechanism of each prompt, not how often a trained detector gets into this situation. The saliency map in it is real
# (`tf_efficientnet_lite0`, ImageNet weights). Only the two whole-washer boxes come from a class-agnostic prompt:
# "defect on washer" is answered with the washer.

# %%
lite0 = load_saliency_backbone("tf_efficientnet_lite0")
case_cfg = workbook.make_config("saa", behaviour, "tf_efficientnet_lite0")
case = kc.known_case(lite0, case_cfg, category="washer", defect="hole", seed=seed)
case_res = {"SAA": score(case.stages, case.prompts, case_cfg)}
workbook.show(kc.fate_table(case, case_res))
amap = case_res["SAA"].anomaly_map
print(f"max-F1-pixel {metrics.pixel_max_f1(amap[None], case.mask[None]):.3f}, "
      f"pixel AUROC {metrics.pixel_auroc(amap[None], case.mask[None]):.3f}")

# %%
fig = viz.compare_results(case.image, case_res, case.mask,
                          title="known case (hand-built candidates): SAA fuses the whole washer, the hole is never "
                                "proposed")
wb.figures.save(fig, "01_known_case_saa", readme=True)
plt.show()

# %% [markdown]
# ## 4. The baseline on the data set
#
# Now the real pipeline on the data set images, scored with variant `saa`. The boxes are drawn with their fate:
# green = fused into the map, grey = below the box threshold or not from a class-agnostic prompt.

# %%
results = [wb.score(it, saa) for it in wb.items]
first = next(i for i, it in enumerate(wb.items) if it.sample.label == 1)
fig = viz.compare_results(wb.items[first].image, {"SAA": results[first]}, wb.items[first].mask,
                          title=f"SAA on {wb.items[first].sample.key} — {wb.tag}")
wb.figures.save(fig, "01_saa_example")
plt.show()

# %% [markdown]
# How large are the candidate regions? A defect is small; regions covering a large share of the object are the
# baseline's false alarms (with trained weights, the object itself is usually among the most confident boxes).

# %%
areas = np.concatenate([[r.mask_area for r in res.regions if r.removed_by is None] for res in results] + [[]])
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.hist(areas, bins=np.linspace(0, 1, 21), color="#0072B2")
ax.set_xlabel("region area / image area")
ax.set_ylabel("fused regions")
ax.set_title(f"areas of the regions SAA fuses — {wb.tag}", fontsize=9)
fig.tight_layout()
wb.figures.save(fig, "01_region_areas")
plt.show()
gt_area = np.mean([it.mask.mean() for it in wb.items if it.sample.label == 1])
print(f"mean ground-truth defect area: {gt_area:.2%} of the image")

# %%
runs = wb.runs([saa])
workbook.show(report.metric_table(runs, "pixel_max_f1", transpose=True),
              head=report.header(wb.models.describe(), wb.models.meaningful, wb.data.name))
scores = {lab: [r.image_score for r, it in zip(results, wb.items) if it.sample.label == lab] for lab in (0, 1)}
print("image scores, normal:", np.round(scores[0], 3), " anomalous:", np.round(scores[1], 3))

# %% [markdown]
# ## Takeaways
# 1. SAA chains GroundingDINO (text → boxes $b_i$, confidences $c_i$) and SAM (box → mask $m_i$), and fuses the masks:
#    $A(x) = \sum_i c_i m_i(x) / (\delta + \sum_i m_i(x))$; the image score is the map's maximum.
# 2. The networks run once per image and their outputs are cached: any threshold or prompt switch after them
#    re-scores in milliseconds, with no model in the loop.
# 3. With class-agnostic prompts the detector may answer "defect on washer" with the washer itself, and nothing in the
#    baseline tells a defect from the object or from an intact part of it: that is what the hybrid prompts of
#    notebooks 02–05 add.

# %% [markdown]
# ## Exercises
# Each exercise ends with `workbook.check(...)`: ✓, or ✗ with a hint. Replace the `...` with your answer.
# 1. **01.1** From scratch: the fusion.
# 2. **01.2** The fusion offset $\delta$: what does a washer pixel score under each form?
# 3. **01.3** The box threshold $\theta_{box}$: predict an image score.

# %% [markdown]
# ### 01.1 · From scratch: the fusion
# Write the paper's fusion yourself: `fuse(masks, scores)` takes `masks` (M, H, W) bool and `scores` (M,) and returns
# the (H, W) map $A = \sum_r s_r m_r / \sum_r m_r$, 0 where no region covers a pixel. `check` compares it with the
# library's `saa_lib.fusion.fuse_regions` on random inputs.

# %% tags=["exercise"]
def fuse(masks, scores):
    ...  # your code


workbook.check("01.1", fuse)

# %% [markdown]
# ### 01.2 · The fusion offset $\delta$
# In the known case SAA keeps two regions (the fate table of section 3). Work out by hand what $A(x)$ is on a washer
# pixel with the paper's $\delta = 0$ and with the official code's $\delta = 1$; then check your numbers by scoring,
# e.g. `score(case.stages, case.prompts, case_cfg.with_(fusion_offset=0.0)).image_score`. Hand in the pair
# `(value with δ = 0, value with δ = 1)`. Why does $\delta = 1$ favour pixels on which several regions agree?

# %% tags=["exercise"]
answer = ...  # (A on a washer pixel with δ = 0, with δ = 1)

workbook.check("01.2", answer, case=case)

# %% [markdown]
# ### 01.3 · The box threshold $\theta_{box}$
# Raise $\theta_{box}$ from 0.1 to 0.42 in the known case (this notebook's behaviour, so its $\delta$). Predict SAA's
# image score from the fate table, then check with `case_cfg.with_(box_threshold=0.42)`. With a trained detector,
# which images would a higher $\theta_{box}$ affect most, normal or anomalous ones?

# %% tags=["exercise"]
answer = ...  # SAA's image score on the known case at θ_box = 0.42

workbook.check("01.3", answer, case=case)
