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
# # 03 · Property prompts $\mathcal{P}^P$: a defect lies on the object and is small
#
# Words alone do not stop a detector from answering "defect" with half the image. SAA+ adds what an inspector knows
# about *where* and *how large* defects are: they lie on the inspected object, and they cover only a fraction of it.
# The object itself is found with one more prompt: the object word.
#
# ## Learning goals
# 1. Write both forms of $\mathcal{P}^P$: the paper's (masks: IoU with the object, area ratio) and the official
#    code's (boxes: area ratio only).
# 2. Read the per-category property table (object count, maximum area ratio).
# 3. Measure the effect of $\mathcal{P}^P$ on and off, and how the result depends on $\theta_{area}$.

# %% tags=["parameters"]
dataset = "synthetic"  # synthetic | mvtec | visa | ksdd2 | mtd | folder
root = None  # data set folder; None: data/synthetic (generated on first use)
categories = None  # e.g. ["washer"]; None: every category
variant = "saa_plus"  # the variant with the prompt on; the prompt is switched off from it
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
# ## 1. The idea as a formula
#
# The object prompt — the object word, one more GroundingDINO forward — gives object boxes $o_j$, and SAM their
# masks; $m_{obj}$ is the union of the masks of the objects found (the whole image when none is found). The paper
# keeps candidate mask $m_i$ iff
#
# $$\mathrm{IoU}(m_i, m_{obj}) \ge \theta_{IoU} \quad\text{and}\quad 0 < |m_i| \le \theta_{area}\, |m_{obj}| :$$
#
# the region must touch the object ($\theta_{IoU} = 0.001$ asks for any overlap at all) and be small next to it.
# $\theta_{area}$ (`max_area_ratio`) and the object count come from the category's property table:

# %%
workbook.show(workbook.category_settings_table(it.prompts for it in wb.items))
on = wb.config(variant)
off = workbook.switched_off(on, "property")
print(f"behaviour {behaviour!r}; θ_IoU = {on.min_iou} (paper behaviour only)")

# %% [markdown]
# > **Official code:** $\mathcal{P}^P$ tests the GroundingDINO *boxes*, with areas as fractions of the image and no IoU
# > test: a box is kept iff $0 < |b_i| < \theta_{area} \cdot \max_j |o_j|$. With several objects per image
# > (count > 1) only object boxes smaller than $1/\text{count}$ of the image count as objects (a box around the whole
# > tray is not one object); with none found the reference is the whole image. The code therefore cannot see *where*
# > a region is — a small box on the background passes (exercise 03.2) — and a box's area overstates a thin or
# > diagonal defect's (a scratch across its box), so the same $\theta_{area}$ cuts at another size than in the paper.

# %% [markdown]
# ## 2. A known case
#
# In the hand-built washer (real `tf_efficientnet_lite0` saliency), the box phrased "defect" covers the whole washer:
# language cannot stop it, the area ratio does.

# %%
lite0 = load_saliency_backbone("tf_efficientnet_lite0")
case_on = workbook.make_config(variant, behaviour, "tf_efficientnet_lite0")
case = kc.known_case(lite0, case_on, category="washer", defect="hole", seed=seed)
case_res = {"P^P off": score(case.stages, case.prompts, workbook.switched_off(case_on, "property")),
            "P^P on": score(case.stages, case.prompts, case_on)}
workbook.show(kc.fate_table(case, case_res))
for lab, res in case_res.items():
    outside = res.anomaly_map[~case.mask].max()
    print(f"{lab}: max-F1-pixel {metrics.pixel_max_f1(res.anomaly_map[None], case.mask[None]):.3f}, "
          f"highest score outside the defect {outside:.2f} (image score {res.image_score:.2f})")

# %%
fig = viz.compare_results(case.image, case_res, case.mask,
                          title="known case: the area ratio removes the whole-washer box phrased 'defect'")
wb.figures.save(fig, "03_known_case_property", readme=True)
plt.show()

# %% [markdown]
# With the official code's fusion offset ($\delta = 1$) the hole can stay the highest pixel even with $\mathcal{P}^P$
# off, so one image's max-F1 hardly moves; but the whole washer now glows, which raises the score of every *normal*
# washer — image-level detection and the category-wide normalisation of the metrics pay for it.
#
# How strict should $\theta_{area}$ be? A sweep on the known case (both behaviours):

# %%
ratios = np.geomspace(0.002, 1.0, 25)
fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
for beh, style in (("code", "-"), ("paper", "--")):
    cfg_b = workbook.make_config(variant, beh, "tf_efficientnet_lite0")
    case_b = kc.known_case(lite0, cfg_b, category="washer", defect="hole", seed=seed)
    kept, f1 = [], []
    for r in ratios:
        res = score(case_b.stages, case_b.prompts, cfg_b.with_(max_area_ratio=float(r), use_confidence=False))
        kept.append(sum(x.removed_by is None for x in res.regions))
        f1.append(metrics.pixel_max_f1(res.anomaly_map[None], case_b.mask[None]))
    ax[0].plot(ratios, kept, style, marker="o", ms=3, label=f"{beh} behaviour")
    ax[1].plot(ratios, f1, style, marker="o", ms=3, label=f"{beh} behaviour")
ax[0].set_ylabel("regions kept (P^C off)")
ax[1].set_ylabel("max-F1-pixel (this image)")
for a in ax:
    a.axvline(case.prompts.max_area_ratio, color="#999999", lw=1, ls=":")
    a.set_xscale("log")
    a.set_xlabel("θ_area (max area ratio, log scale)")
    a.legend(fontsize=8)
fig.suptitle("known case: sweeping θ_area with P^C off (dotted: the washer's table value)", fontsize=10)
fig.tight_layout()
wb.figures.save(fig, "03_area_ratio_sweep", readme=True)
plt.show()

# %% [markdown]
# ## 3. On the data set: the same images, $\mathcal{P}^P$ off and on

# %%
first = next(it for it in wb.items if it.sample.label == 1)
res = {"P^P off": wb.score(first, off), "P^P on": wb.score(first, on)}
fig = viz.compare_results(first.image, res, first.mask, title=f"{first.sample.key} — {wb.tag}")
wb.figures.save(fig, "03_property_on_off")
plt.show()

# %%
runs = wb.runs([off, on])
workbook.show({"max-F1-pixel (%)": report.metric_table(runs, "pixel_max_f1"),
               "image AUROC (%)": report.metric_table(runs, "image_auroc")},
              head=report.header(wb.models.describe(), wb.models.meaningful, wb.data.name))

# %% [markdown]
# ## Takeaways
# 1. $\mathcal{P}^P$ encodes what an inspector knows about where defects are and how large: on the object and small
#    next to it ($\theta_{IoU}$, $\theta_{area}$), the object being found by one more prompt, its name.
# 2. The paper tests SAM masks (overlap and area); the official code tests box areas only, so it cannot tell a region
#    on the background from one on the object.
# 3. $\theta_{area}$ must sit between the category's largest real defects and the whole object; area alone cannot
#    separate a defect from an intact patch of the same size — that takes $\mathcal{P}^S$ (notebook 04).

# %% [markdown]
# ## Exercises
# Each exercise ends with `workbook.check(...)`: ✓, or ✗ with a hint. Replace the `...` with your answer.
# 1. **03.1** From scratch: the paper's property filter.
# 2. **03.2** Boxes or masks: what the IoU test sees that the box test does not.
# 3. **03.3** How small can $\theta_{area}$ be?

# %% [markdown]
# ### 03.1 · From scratch: the property filter
# Write `keep(masks, object_mask, min_iou, max_area_ratio)`: `masks` (M, H, W) bool candidate masks, `object_mask`
# (H, W) bool. Return the (M,) bool array the paper's $\mathcal{P}^P$ keeps: IoU with the object mask at least
# $\theta_{IoU}$, and an area above 0 and at most $\theta_{area}$ times the object's. `check` compares it with
# `prompts.property.property_keep_stats` on random discs (on the object, beside it, as large as it, empty).

# %% tags=["exercise"]
def keep(masks, object_mask, min_iou, max_area_ratio):
    ...  # your code


workbook.check("03.1", keep)

# %% [markdown]
# ### 03.2 · Boxes or masks
# Score the known case with the paper's form of $\mathcal{P}^P$: `score(case.stages, case.prompts,
# case_on.with_(behaviour="paper"))` (the same candidates and saliency map; the paper's rules from there on) and
# compare its fate table with section 2's. Which candidate does the paper's $\mathcal{P}^P$ remove that the official
# code's keeps? Hand in its name as written in the fate table. Why can the code's test not see it?

# %% tags=["exercise"]
answer = ...  # the candidate's name

workbook.check("03.2", answer, case=case)

# %% [markdown]
# ### 03.3 · How small can $\theta_{area}$ be?
# In the sweep of section 2 the hole leaves the map when $\theta_{area}$ gets too small. What is the smallest
# $\theta_{area}$ for which this notebook's form of $\mathcal{P}^P$ still keeps the hole? It is the hole's area as a
# fraction of the washer's: in the code's form of their boxes (`case.stages.detections.boxes[0]`,
# `case.stages.object_detections.boxes`, areas with `prompts.property.box_areas`), in the paper's of their masks
# (`case.stages.packed_masks().areas()[0]`, `case.stages.object_masks`). Compare it with the sweep. Why does the
# table's $\theta_{area}$ sit far above it, and what about a category's defects decides how far?

# %% tags=["exercise"]
answer = ...  # the smallest θ_area that keeps the hole

workbook.check("03.3", answer, case=case)
