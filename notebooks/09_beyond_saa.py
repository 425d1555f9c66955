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
#   other; still zero-shot (no labels, no normal set), but transductive;
# - **few-shot** (as PatchCore's memory bank, without training): each pixel against the patches of $k$ normal
#   reference images (`train/good`).
#
# Everything below runs on **real** ImageNet features (`tf_efficientnet_lite0`, installed offline), whatever the
# `models` parameter says; only section 4 (inside SAA+) uses the `models` parameter.
#
# ## Learning goals
# 1. Write the batch and few-shot saliency formulas and say why they are robust (the mean of the *smallest*
#    distances; the nearest reference patch).
# 2. Compare single-image, batch and few-shot maps on real MVTec AD and MTD images, with pixel AUROC, max-F1 and
#    AUPRO, and say where each source helps and where it fails.
# 3. Select a source in the config / CLI (`--saliency-source batch|fewshot`, `--shots k`) and use it inside SAA+.

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

# %%
# %matplotlib inline
import time

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from saa_lib import workbook
from saa_lib.workbook import viz
from saa_lib.fusion import resize_map
from saa_lib.peers import PeerSaliency, with_peers
from saa_lib.engine.saliency_sources import compare_sources, defect_type_table, source_configs, sources_table
from saa_lib.utils import resolve_device
from saa_lib.weights.zoo import load_saliency_only

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
# with the number of images beyond their features (`benchmarks/saliency_sources_memory.py`: 100 images of 400² px).

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
display(Markdown(sources_table(rows, baseline=f"image-{behaviour}")))

# %% [markdown]
# A category's pixel AUROC pools the pixels of all its images, so defect types that cover large areas weigh most.
# Per defect type (that type's images together with the category's normal ones) and its share of the category's
# defect pixels:

# %%
display(Markdown(defect_type_table(rows)))

# %% [markdown]
# On **all** test images of the samples (`python benchmarks/saliency_real_features.py --simple`; CPU, 2 cores;
# batch = every other test image of the category; references from `train/good`), means over MVTec AD leather, screw
# and MTD, against the paper's single-image form:
#
# | P^S source (paper form; mean over leather, screw, MTD) | pixel AUROC | max-F1-pixel | AUPRO@0.3 | s / image (CPU) |
# |---|---:|---:|---:|---:|
# | single image (SAA+, paper) | 95.00 | 40.71 | 85.63 | 0.17 |
# | batch: the other test images (zero-shot) | 98.41 (+3.41) | 56.47 (+15.76) | 91.44 | 4.78 |
# | few-shot, k = 1 train/good image | 97.85 (+2.85) | 54.64 (+13.93) | 87.11 | 2.09 |
# | few-shot, k = 2 | 97.64 (+2.64) | 55.53 (+14.81) | 86.24 | 3.66 |
# | simple batch (plain nearest-patch distance, 256 px) | 95.34 (+0.34) | 45.54 (+4.83) | 83.83 | 0.37 |
# | simple few-shot, k = 1 | 92.48 (−2.52) | 35.89 (−4.82) | 77.45 | 0.08 |
#
# Per category (pixel AUROC / max-F1): screw 95.3 / 17.1 (single image) → 99.4 / 49.0 (batch, four turns), 97.8 /
# 42.5 (few-shot k = 1); MTD 89.8 / 32.1 → 96.1 / 54.4 (batch), 95.9 / 49.9 (k = 1); leather 99.87 / 72.9 → 99.82 /
# 66.1 (batch), 99.87 / 71.6 (k = 1). Batch gains +3.41 AUROC points and +15.8 max-F1 points over the single-image
# form, few-shot k = 1 +2.85 and +13.9: leather has nothing to gain, and MTD's large uneven tiles are where the
# stride-32 level helps (batch 94.0 → 96.1; without that level batch reached +2.70 AUROC points, with it on the
# fine level's 384 px input +3.20).
#
# ### Where each source helps, where it fails
# - **Batch** helps most where the defect resembles other parts of its own image, or where the image has a lot of
#   structure of its own (screw: the thread is "unlike the rest of the image" everywhere; the other screws explain
#   it), and on MTD tiles, whose uneven lighting the single-image form mistakes for defects (max-F1 32 → 56). It fails
#   where the defect type recurs in many test images (a batch of the same glue stain would score it as normal), and
#   on textures whose single-image map is already near perfect (leather): comparing with other pieces of leather adds
#   their natural variation as false positives, which the single-image term mostly removes.
# - **Few-shot** needs normal references that look like the test images: with one reference at another pose, every
#   unmatched normal patch becomes salient (screw, simple form: AUROC 87); the 24 rotated / mirrored views of each
#   reference recover it (97.7). It cannot be fooled by a defect shared by the test set, and it is cheap: $k$ images
#   instead of the whole batch.
# - **Both** fail on defects that cover a large part of the image (MTD uneven, fray): there is no "normal rest" to
#   compare with inside the image, and the other tiles differ as much from each other as from the defect. The
#   stride-32 level, whose cells see a whole part of a tile, recovers part of it (other real MTD tiles: AUROC gain
#   +0.2 → +1.4 for batch), at the price of some max-F1 where defects are small. The per-defect-type table above
#   shows it: fray and break gain most, while a faint uneven shading stays near chance on other tiles.

# %% [markdown]
# ## 4. Inside SAA+
#
# The source is one field of the saliency config (`SaliencyConfig.peers`, set with `with_peers`); the other images
# of the category are one object, `PeerSaliency`, built once per category and handed to the pipeline with each image
# (`peers=`). Every image's map is computed against them, cached under the digests of exactly those images. `saa evaluate ... --saliency-source batch` or `--saliency-source fewshot --shots 2` does the same from
# the command line (`saa predict` takes the images given as the batch, and `--reference` images for few-shot).

# %%
saliency_backbone = workbook.choose_saliency_backbone(saliency_backbone)
wb = workbook.setup(models=models, device=device, saliency_backbone=saliency_backbone, seed=seed, out_dir=out_dir,
              dataset="synthetic", root=None, categories=None, n_images=1, behaviour=behaviour)
plus = with_peers(wb.config(variant), source="batch")
cat0 = wb.items[0].sample.category
peers = PeerSaliency(wb.models, wb.pipe.cache, category=cat0, batch=[s.load_image for s in workbook.pick(wb.data, cat0, 4)])
print("batch used (image digests):", [d[:8] for d in peers.batch])
res = wb.pipe.run(wb.items[0].image, wb.items[0].prompts, plus, peers=peers)
print(f"{variant} with batch P^S on {wb.items[0].sample.key}: image score {res.image_score:.3f}, "
      f"{sum(r.removed_by is None for r in res.regions)} regions fused — {wb.tag}")

# %% [markdown]
# ## Exercises
# 1. The batch source keeps the mean of the smallest $\rho$ of the per-image distances. Recompute the screw row with
#    $\rho = 1$ (every other image; `source_configs(behaviours=("paper",), batch_fraction=1.0)`) and with
#    $\rho = 0.1$. Which defect images gain, which lose, and why does a small $\rho$ hurt when a defect type occurs
#    in several test images?
# 2. Show that the few-shot map of a reference image against itself is zero, and that it is *not* zero against its own
#    rotation by 90° when `augment_references=False`. What does this say about using one reference for a product that
#    comes in arbitrary orientations (screw), and what does it cost to add the 12 rotations x 2 mirrors?
#
# Answers: `notebooks/answers/09_answers.md`.
