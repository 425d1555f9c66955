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
# # 09 · Beyond SAA+: saliency from other images (batch zero-shot and few-shot $\mathcal{P}^S$)
#
# SAA+'s saliency prompt compares each pixel only with the pixels of *the same image*. It fails where a defect
# resembles other parts of that image (a scratch repeated along a tile, a defect spread over a large area), and it
# ignores what a user almost always has: other images of the same product. Two training-free ideas fill the same
# slot — a map that the rescoring (and the `saliency_only` variant) uses exactly as before:
#
# - **batch zero-shot** (mutual scoring, as in MuSc, ICLR 2024): the unlabelled test images of a category score each
#   other; still zero-shot (no labels, no normal set), but *transductive*: each image's map depends on the other test
#   images it is scored with, so the result is a property of the batch, not of the image alone;
# - **few-shot** (as PatchCore's memory bank, CVPR 2022, without its training-set coreset): each pixel against the
#   patches of $k$ normal reference images (`train/good`).
#
# Everything below runs on **real** ImageNet features (`tf_efficientnet_lite0`, installed offline), whatever the
# `models` parameter says; only section 4 (inside SAA+) and the capstone's SAA+ row use the `models` parameter.
#
# ## Learning goals
# 1. Write the batch and few-shot saliency formulas, implement their core yourself, and say why they are robust (the
#    mean of the *smallest* distances; the nearest reference patch) and what they cost (a defect shared by the batch;
#    references at another pose).
# 2. Compare single-image, batch and few-shot maps on real MVTec AD and MTD images, with pixel AUROC, max-F1 and
#    AUPRO, and say where each source helps and where it fails.
# 3. Select a source in the config / CLI (`--saliency-source batch|fewshot`, `--shots k`), use it inside SAA+, and
#    bring SAA+ to a category of your own (the capstone).

# %% tags=["parameters"]
dataset = "synthetic"  # used only when the real samples are absent (synthetic | mvtec | folder ...)
root = None  # data set folder; None: data/synthetic (generated on first use)
categories = None  # e.g. ["screw"]; None: every category
variant = "saa_plus"  # section 4: the SAA+ variant that uses the map
behaviour = "paper"  # the single-image form the sources are compared with and combined with
models = "auto"  # section 4 only: auto (official if their weights are here, else tiny) | official | tiny | random
device = "cpu"  # cpu | cuda | auto
n_images = 2  # test images per category here: 2 * n_images (the batch); the benchmark uses all of them
out_dir = None  # figures go to <out_dir>/figures; None: shown only
seed = 0  # synthetic data and random-weight models
saliency_backbone = "auto"  # section 4 (auto: wide_resnet50_2 if its weights are here, else tf_efficientnet_lite0)
capstone_root = None  # capstone: a folder data set of a category the tables lack; None: a synthetic "gasket" set
capstone_category = None  # its category (None: the first)
capstone_object = "foreground"  # what θ_area is relative to: foreground (an object on a background) | image (a texture)

# %%
# %matplotlib inline
import time

import matplotlib.pyplot as plt
from IPython.display import display

from saa_lib import workbook
from saa_lib.workbook import viz
from saa_lib.fusion import resize_map
from saa_lib.peers import PeerSaliency, with_peers
from saa_lib.peers import sources as S
from saa_lib.data import open_dataset
from saa_lib.prompts.language import DEFAULT_PROPERTY
from saa_lib.tables import find_table
from saa_lib.workbook import report
from saa_lib.workbook.capstone import defect_statistics, unseen_category
from saa_lib.engine.saliency_sources import (compare_sources, defect_type_table, source_configs, source_means_table,
                                             sources_table)
from saa_lib.utils import resolve_device
from saa_lib.weights.zoo import load_saliency_only

workbook.check_parameters(globals())
lite0 = load_saliency_only("tf_efficientnet_lite0", device=resolve_device(device))
print("real saliency backbone:", lite0.saliency.name, "ImageNet weights:", lite0.saliency.meaningful)
figures = workbook.Figures(out_dir)
real = workbook.real_datasets()  # {category: dataset} of the real samples; {} (and a line saying so) without them
samples_root = workbook.shared_samples() if real else None
if real:
    data = {d.name: d for d in dict.fromkeys(real.values())}
else:
    print("NOTE: the real MVTec AD / MTD samples were not found (SAA_SAMPLES): the maps and the "
          f"table below use the {dataset!r} data set instead; their numbers say nothing about real defects.")
    data = {dataset: workbook.open_data(dataset, root, categories, seed)}
print({name: d.categories for name, d in data.items()})

# %% [markdown]
# ## 1. The idea as formulas
#
# Every image $I$ gives unit feature vectors $f(x)$ on the stride-4 grid (the single-image $\mathcal{P}^S$ features,
# here on a larger input: 384 px for batch, 256 px for few-shot). The distance of pixel $x$ to an image $J$ is that
# of its nearest patch,
#
# $$d_J(x) = \min_{y \in J} \bigl(1 - \cos(f(x), f(y))\bigr).$$
#
# **Batch** (mutual scoring): with the $N$ test images of the category, each other image's distances are first put
# in units of their own 10 % quantile over the pixels of $I$ (`peer_quantile`),
#
# $$\tilde d_J(x) = \frac{d_J(x)}{q_{0.1}\{d_J(x') : x' \in I\}},$$
#
# since a tile under other light is far from *every* patch of $I$, and this scale removes that common factor.
# Pixel $x$ of image $I$ then gets the mean of the smallest $m = \lceil \rho (N - 1) \rceil$ of these distances,
#
# $$s_{\text{batch}}(x) = \frac{1}{m} \sum_{J \in \text{smallest}_m \{\tilde d_J(x) : J \ne I\}} \tilde d_J(x),
# \qquad \rho = 0.1 .$$
#
# A normal patch has a close match in nearly every other image; a defect has none, except in the few images that
# share it — taking the *smallest* distances makes one such image (or a normal patch missing from a few images) a
# small change rather than a decision. The images are sorted before averaging: the map does not depend on their order.
# The same score is also computed on the backbone's stride-32 stage, on its own coarse grid, taken from a larger
# input (`deep_size`, 640 px: 20 x 20 cells; per-level scoring, as MuSc does), upsampled bilinearly and mixed in,
#
# $$s_{\text{batch}} = (1 - w)\, s_{\text{batch}}^{\text{stride 4}} + w\, s_{\text{batch}}^{\text{stride 32}},
# \qquad w = 0.3 \ (\texttt{deep\_weight}),$$
#
# since a cell of that stage sees a whole part of a tile or a screw, where large defects (an uneven or frayed tile)
# differ from the other images, while the fine level keeps small defects sharp. The WideResNet50 extractor stops at
# layer3 (its layer4 is not loaded), so with it $w$ defaults to 0.
# Where the objects lie at any angle (screw, metal nut, hazelnut: `ANY_ANGLE_CATEGORIES`, or `batch_rotations`), the
# image is also turned by quarter turns $t$ (its features turned back onto its own grid) and each other image is
# matched by the closest turn, $d_J(x) = \min_t \min_{y \in J} (1 - \cos(f_t(x), f(y)))$: only the image's own
# views are computed, the other images' features are held once. Mirrors are not used (a mirrored metal nut is a
# defect), nor turns elsewhere: the light falls from one side of a magnetic tile, and a turned tile's bright edge
# matches the other tiles' normal edges.
#
# **Few-shot**: with $k$ normal references $R_1 \dots R_k$ and their views $g$ (12 rotations by 30°, each also
# mirrored: a screw lies at any angle, and a convolutional feature is not rotation invariant),
#
# $$s_{\text{few}}(x) = \min_{j \le k,\ g} d_{g(R_j)}(x),$$
#
# zero for a pixel whose patch occurs in a reference, with its stride-32 level mixed in as for batch. Both maps are
# then smoothed with a Gaussian ($\sigma = 8$ px of the 400 px map) and combined with the single-image map
# $s_{\text{img}}$ by a weighted geometric mean,
#
# $$s = s_{\text{src}}^{\,0.6}\; s_{\text{img}}^{\,0.4},$$
#
# high only where a pixel is unlike the other images *and* unlike its own image, and unchanged in ranking when either
# map is rescaled (their units differ). An option (`normalize=True`) first divides $s_{\text{src}}$ by its own
# median, since how far a *normal* patch is from its best match differs from image to image while pixel AUROC and
# max-F1 rank the pixels of all images together; it is off by default: where a defect covers half of the image (MTD's
# uneven and fray tiles), the median lies inside the defect and the division erases it.
#
# The nearest-neighbour search is exact and runs over blocks of `chunk_size` x 4096 similarities: memory does not grow
# with the number of images beyond their features.
#
# Why few-shot compares with rotated and mirrored references: convolutional features are not rotation invariant. The
# few-shot distance of an image to itself is 0 everywhere; to the same image turned by a quarter turn it is not
# (`saa_lib.peers.sources`, real lite0 features on a normal image of the first category):

# %%
ref_data = next(iter(data.values()))
reference = next(s for s in workbook.pick(ref_data, ref_data.categories[0], 2) if s.label == 0).load_image()
f0 = S.source_features(lite0.saliency, reference, size=256).flatten(0, 1)
f90 = S.source_features(lite0.saliency, S.quarter_turn(reference, 1), size=256).flatten(0, 1)
print(f"mean few-shot distance of a {ref_data.categories[0]} image to itself: {S.fewshot_scores(f0, [f0]).mean():.4f}; "
      f"turned by 90°, against itself unturned: {S.fewshot_scores(f90, [f0]).mean():.4f}; "
      f"with the turn among the references: {S.fewshot_scores(f90, [f0, f90]).mean():.4f}")

# %% [markdown]
# The settings of each source as the library resolves them (`saa_lib.engine.saliency_sources.source_configs`):

# %%
configs = source_configs(behaviours=(behaviour,))
for name, c in configs.items():
    s = c.saliency.peers
    if s is None:
        print(f"{name:16s} source=image    (each pixel against the rest of its own image)")
        continue
    turns = f"turns: screw {s.turns_for('screw')}, leather {s.turns_for('leather')}, " if s.source == "batch" else ""
    scale = f"peer quantile {s.peer_quantile}, " if s.source == "batch" else ""
    scale += f"stride-32 weight {s.deep_for(lite0.saliency.has_deep)} at {s.deep_input} px, "
    print(f"{name:16s} source={s.source:8s} shots={s.shots} input {s.source_input} px, "
          f"pool {s.pool}x{s.pool}, ρ={s.batch_fraction}, {scale}σ={s.smooth_sigma}, {turns}"
          f"median-normalised: {s.normalize}, "
          f"single-image weight: {s.image_weight if s.with_image else 0}")

# %% [markdown]
# ## 2. Side by side on real images
#
# Per category, $2 \times$ `n_images` test images (anomalous and normal alternating) form the batch; the references
# are the first `train/good` images. Each row: one anomalous image with its ground truth, then its map from each
# source (each map min-max scaled for display).

# %%
t0 = time.perf_counter()
rows = []
for d in data.values():
    cats = [c for c in d.categories if not categories or c in categories]
    rows += compare_sources(lite0, d, configs, cats, max_images=2 * n_images) if cats else []
print(f"{len(rows)} (category, source) runs in {time.perf_counter() - t0:.1f} s")

# %%
shown = ["image-" + behaviour, "batch-" + behaviour, "fewshot1-" + behaviour]
for cat in dict.fromkeys(r.category for r in rows):
    by = {r.name: r for r in rows if r.category == cat}
    d = next(x for x in data.values() if cat in x.categories)
    smp = workbook.pick(d, cat, 2 * n_images)
    i = next((j for j, s in enumerate(smp) if s.label == 1), 0)
    image = smp[i].load_image()
    fig = viz.map_panels(image, {n: resize_map(by[n].maps[i], image.shape[:2]) for n in shown},
                         smp[i].load_mask(), normalize=True, label="saliency (min-max scaled per map)",
                         title=f"{cat}: {smp[i].defect_type} — P^S by source (real lite0 features)")
    figures.save(fig, f"09_sources_{cat}", readme=samples_root is not None)
    plt.show()

# %% [markdown]
# ## 3. The table
#
# On the images above (few per category, so the numbers move a lot from image to image):

# %%
workbook.show({"per category": sources_table(rows),
               "mean over categories": source_means_table(rows, baseline=f"image-{behaviour}")})

# %% [markdown]
# A category's pixel AUROC pools the pixels of all its images, so defect types that cover large areas weigh most.
# Per defect type (that type's images together with the category's normal ones) and its share of the category's
# defect pixels:

# %%
workbook.show(defect_type_table(rows))

# %% [markdown]
# These are a handful of images per category: read the table as an illustration. The same comparison on **all** test
# images of the samples, the other real images, and how the defaults of both sources were chosen (every sweep, with
# its numbers) are in [`docs/results.md`](../docs/results.md) ("Batch and few-shot P^S", "How the defaults of batch
# and few-shot P^S were chosen"; `benchmarks/saliency_real_features.py` reproduces them).
#
# ### Where each source helps, where it fails
# - **Batch** helps most where the defect resembles other parts of its own image, or where the image has a lot of
#   structure of its own (a screw: its thread is "unlike the rest of the image" everywhere, the other screws explain
#   it), and on textures under uneven lighting, which the single-image form mistakes for defects. It fails where a
#   defect type recurs in many test images (a batch of the same glue stain scores it as normal: exercise 09.3), and on
#   textures whose single-image map is already near perfect (leather): comparing with other pieces adds their natural
#   variation as false positives, which the single-image term mostly removes.
# - **Few-shot** needs normal references that look like the test images: with one reference at another pose every
#   unmatched normal patch becomes salient (the demonstration in section 1); the rotated and mirrored views of each
#   reference recover it. It cannot be fooled by a defect shared by the test set, and it is cheap: $k$ images instead
#   of the whole batch.
# - **Both** fail on defects that cover a large part of the image (MTD's uneven and fray tiles): there is no "normal
#   rest" inside the image, and the other tiles differ as much from each other as from the defect. The stride-32
#   level, whose cells see a whole part of a tile, recovers part of it, at the price of some max-F1 where defects are
#   small; the per-defect-type table above shows which types gain.

# %% [markdown]
# ## 4. Inside SAA+
#
# The source is one field of the saliency config (`SaliencyConfig.peers`, set with `with_peers`); the other images
# of the category are one object, `PeerSaliency`, built once per category and handed to the pipeline with each image
# (`peers=`). Every image's map is computed against them, cached under the digests of exactly those images.
# `saa evaluate ... --saliency-source batch` or `--saliency-source fewshot --shots 2` does the same from
# the command line (`saa predict` takes the images given as the batch, and `--reference` images for few-shot).
#
# With the tiny random-weight detector (what `models="auto"` falls back to without the official weights) the regions
# and the image score below are noise; the code path is what this section shows.

# %%
saliency_backbone = workbook.choose_saliency_backbone(saliency_backbone)
wb = workbook.setup(models=models, device=device, saliency_backbone=saliency_backbone, seed=seed, out_dir=out_dir,
                    dataset="synthetic", root=None, categories=None, n_images=1, behaviour=behaviour)
plus = with_peers(wb.config(variant), source="batch")
cat0 = wb.items[0].sample.category
peers = PeerSaliency(wb.models, wb.pipe.cache, category=cat0,
                     batch=[s.load_image for s in workbook.pick(wb.data, cat0, 4)])
print("batch used (image digests):", [d[:8] for d in peers.batch])
res = wb.pipe.run(wb.items[0].image, wb.items[0].prompts, plus, peers=peers)
wb.caution("this image score and these regions")
print(f"{variant} with batch P^S on {wb.items[0].sample.key}: image score {res.image_score:.3f}, "
      f"{sum(r.removed_by is None for r in res.regions)} regions fused — {wb.tag}")

# %% [markdown]
# ## Takeaways
# 1. $\mathcal{P}^S$ can compare a pixel with other images instead of its own: batch zero-shot (mutual scoring over
#    the unlabelled test images: transductive) and few-shot (nearest patch among $k$ normal references).
# 2. Batch is robust because it averages only the smallest distances — and misses a defect that recurs in
#    $\lceil \rho (N - 1) \rceil$ other images; few-shot is only as good as its references' coverage of poses.
# 3. Bringing SAA+ to a new category means writing its prompts and deriving $\theta_{area}$ and $K$ from the
#    category's defect statistics — and reporting against $\mathcal{P}^S$ alone, the part that is real without the
#    detector weights.

# %% [markdown]
# ## Exercises
#
# Each exercise ends with `workbook.check(...)`: it says whether your answer is right and, if not, gives a hint (never
# the answer). Replace the `...` and run the cell.
#
# ### 09.1 · Mutual scoring from scratch
# Write the core of the batch source: `batch_score(distances, rho)` takes `distances` (Q, N − 1) — row $x$: patch
# $x$'s (scaled) distance $\tilde d_J(x)$ to each other image $J$ — and $\rho$, and returns (Q,): the mean of the
# smallest $m = \lceil \rho (N - 1) \rceil$ (at least 1) of each row. `check` compares it with
# `saa_lib.peers.sources.smallest_mean` on random inputs. Why the *smallest* distances, and not all of them?

# %% tags=["exercise"]
def batch_score(distances, rho):
    ...  # your code


workbook.check("09.1", batch_score)

# %% [markdown]
# ### 09.2 · Few-shot saliency from scratch
# Write `fewshot(query, references)`: `query` (Q, D) unit feature vectors of the test image, `references` a list of
# (R_j, D) unit vectors of the normal references (and their views); return (Q,): each query patch's distance
# $1 - \cos$ to its nearest patch in any reference. `check` compares it with `saa_lib.peers.sources.fewshot_scores`.
# Then explain the numbers of the rotation demonstration in section 1 with your function.

# %% tags=["exercise"]
def fewshot(query, references):
    ...  # your code


workbook.check("09.2", fewshot)

# %% [markdown]
# ### 09.3 · When does mutual scoring miss a defect?
# A defect type recurs in several test images of the batch. Write `missed_from(n_images, rho)`: with `n_images` test
# images in the batch and fraction $\rho$, how many *other* images must show the same defect for its patches to score
# like normal ones? What does that make $\rho$ mean, and what is the trade-off in choosing it?

# %% tags=["exercise"]
def missed_from(n_images, rho):
    ...  # your code


workbook.check("09.3", missed_from)

# %% [markdown]
# ### 09.4 · Capstone: bring SAA+ to a new category
#
# A category the prompt tables do not hold: you write its **language prompts** and its **property table**
# ($\theta_{area}$, $K$), justify both from the **defect statistics** of its masks, run SAA+ with them and report
# max-F1-pixel against $\mathcal{P}^S$ alone. By default it is a small synthetic set named `gasket` (washer-like
# rings; the tables do not know the word); set `capstone_root` to a folder of your own (README, "Your own images":
# a flat folder or the MVTec AD layout, with masks).
#
# **Step 1 — the data and its defect statistics.** `defect_statistics` counts each 8-connected region of a mask as
# one defect and measures it against the object (`capstone_object`: its foreground, or the whole image for a
# texture): defect box / object box area (what $\mathcal{P}^P$ compares in code behaviour), defect mask / object mask
# area (paper behaviour), and the defects per anomalous image.

# %%
cap_root = capstone_root or unseen_category()
cap_data = open_dataset("folder", cap_root)
cap_cat = capstone_category or cap_data.categories[0]
cap_data = open_dataset("folder", cap_root, categories=[cap_cat])
print(f"{cap_root}: category {cap_cat!r}, in the prompt tables: {find_table(cap_cat) is not None}")
stats = defect_statistics(cap_data, cap_cat, object_area=capstone_object)
workbook.show(stats.table())
examples = [s for s in cap_data.samples(cap_cat) if s.label == 1][:4]
fig, axes = plt.subplots(1, len(examples), figsize=(2.4 * len(examples), 2.7), squeeze=False)
for ax, sample in zip(axes[0], examples):
    ax.imshow(viz.with_outline(sample.load_image(), sample.load_mask()))
    ax.set_title(sample.defect_type, fontsize=9)
    ax.axis("off")
fig.suptitle(f"{cap_cat}: defects (ground truth outlined)", fontsize=10)
plt.show()

# %% [markdown]
# **Step 2 — the prompts and the property table (checked).** Defect words for GroundingDINO (not the object's name:
# $\mathcal{P}^L$ drops the boxes whose phrase names the object), $\theta_{area}$ and $K$. Justify the two numbers
# from the table above in a sentence each: which quantile, which margin, and what a larger or smaller value would
# let through or cut.

# %% tags=["exercise"]
my_table = {
    "prompts": [...],  # defect words, e.g. "scratch"
    "max_area_ratio": ...,  # θ_area
    "top_k": ...,  # K
}

verdict = workbook.check("09.4", my_table, stats=stats, behaviour=behaviour)
verdict

# %% [markdown]
# **Step 3 — run it and compare with $\mathcal{P}^S$ alone.** Until 09.4 passes, the defaults for a category without
# a table run instead (`saa_lib.prompts.language.DEFAULT_PROPERTY`, the prompt "defect"). The $\mathcal{P}^S$ row is
# real (lite0 ImageNet features); the SAA+ row is real only with the official detector weights.

# %%
cap_table = my_table if verdict else {"prompts": ["defect"], "max_area_ratio": DEFAULT_PROPERTY["max_area_ratio"],
                                      "top_k": DEFAULT_PROPERTY["top_k"]}
cap_cfg = wb.config("saa_plus").with_(extra_prompts=tuple(cap_table["prompts"]), top_k=cap_table["top_k"],
                                      max_area_ratio=cap_table["max_area_ratio"])
cap_items = workbook.stage_items(wb.pipe, cap_data, 2 * n_images, cap_cfg)
cap_runs = wb.runs([cap_cfg, wb.config("saliency_only")], items=cap_items)
wb.caution("the SAA+ row")
workbook.show({"max-F1-pixel (%)": report.metric_table(cap_runs, "pixel_max_f1", transpose=True),
               "pixel AUROC (%)": report.metric_table(cap_runs, "pixel_auroc", transpose=True)},
              head=report.header(wb.models.describe(), wb.models.meaningful, f"{cap_cat} ({len(cap_items)} images)"))

# %% [markdown]
# **Step 4 — report.** A short write-up (a markdown cell, or a page): the category and its data, the prompts and
# why, the property table and its justification from the statistics, the two rows of the table (say which models
# made them), two qualitative examples, and where the method fails on this category and why.
#
# | criterion | points | full marks when |
# |---|---:|---|
# | prompts | 2 | defect words only, each motivated by a defect type seen in the data; the object word is not among them |
# | $\theta_{area}$ | 2 | derived from a stated quantile of the right area ratio (box areas for `code`, mask areas for `paper`), with a margin, and below 1 |
# | $K$ | 2 | derived from the defects per image, with the cost of a larger $K$ (false regions) said |
# | results | 2 | max-F1-pixel (and pixel AUROC) of SAA+ and of $\mathcal{P}^S$ alone on the same images, the models named, random-weight rows marked as such |
# | analysis | 2 | one success and one failure explained with the fate of the candidates (`viz.fate_chart`) or the maps |
#
# 09.4 passing is the minimum for the two property rows; the rest is read by a person.
