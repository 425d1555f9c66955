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
# # 08 · Results: SAA against SAA+ across categories
#
# The last notebook puts the series together in the form of the paper's results: a table with one column per
# category (Table 1 layout), a qualitative grid (image, ground truth, the anomaly maps of each method) and pixel
# precision–recall curves. With trained weights (`models="auto"` finds them in the weights folder, or
# `models="official"`) this notebook *is* the results section; with the tiny random-weight models (what `"auto"`
# falls back to without them) it only checks that every piece runs, and every table and figure says so.
#
# One result here is real whatever the detector weights: the saliency map $\mathcal{P}^S$ alone, computed with the
# ImageNet weights of `tf_efficientnet_lite0`, on real MVTec AD and MTD samples (section 4).
#
# ## Learning goals
# 1. Produce Table 1 (methods × categories, mean, the paper's mean) with `saa_lib.workbook.report.metric_table` from one cached
#    pass per image, and the same numbers one row per category.
# 2. Read the threshold-free metrics side by side: max-F1-pixel, pixel AUROC, image AUROC — compute max-F1-pixel and
#    image AUROC yourself, and know why the paper leads with max-F1-pixel.
# 3. Draw the qualitative grid and pixel PR curves of the paper's figures (`saa_lib.workbook.viz`), read where a PR
#    curve ends, and tell a real result from a test of the machinery.

# %% tags=["parameters"]
dataset = "synthetic"  # synthetic | mvtec | visa | ksdd2 | mtd | folder
root = None  # data set folder; None: data/synthetic (generated on first use)
categories = None  # e.g. ["washer"]; None: every category
variant = "saa_plus"  # the method compared with the baseline SAA
behaviour = "code"  # code (the official implementation) | paper
models = "auto"  # auto: official if their weights are here, else tiny (random weights) | official | tiny | random
device = "cpu"  # cpu | cuda | auto
n_images = 2  # images per category, anomalous and normal alternating
out_dir = None  # figures go to <out_dir>/figures, tables to <out_dir>/results.md; None: shown only
seed = 0  # synthetic data and random-weight models
saliency_backbone = "auto"  # auto: wide_resnet50_2 if its weights are here, else tf_efficientnet_lite0 (real, offline)

# %%
# %matplotlib inline
import time
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import display

from saa_lib.workbook import report, viz
from saa_lib import workbook
from saa_lib.cache import StageCache
from saa_lib.pipeline import SAAPipeline
from saa_lib.utils import resolve_device
from saa_lib.weights.zoo import load_saliency_only

workbook.check_parameters(globals())
saliency_backbone = workbook.choose_saliency_backbone(saliency_backbone)
wb = workbook.setup(
    models=models, device=device, saliency_backbone=saliency_backbone, seed=seed, out_dir=out_dir, dataset=dataset,
    root=root, categories=categories, n_images=n_images, behaviour=behaviour)

# %% [markdown]
# ## 1. Table 1: methods × categories
#
# Every metric is computed per category, every pixel of the category's test images pooled (normal images too), then
# averaged over categories. **max-F1-pixel** is the best $F_1 = 2PR/(P + R)$ over all thresholds of the pixel
# classification; it is the paper's headline metric because, unlike AUROC, it is not inflated by the huge number of
# easy normal pixels. **pixel AUROC**: the probability that a random defect pixel scores above a random normal pixel.
# **image AUROC**: the same over images, an image's score being the maximum of its map.
#
# > **Official code:** the official evaluation resizes every map and mask to 400 × 400, min-max normalises all maps
# > of a category together (one minimum, one maximum: an increasing function, so no metric changes), scores an image
# > by the maximum of its normalised map, and writes one row per category; the paper's means are averages of those
# > rows. AUPRO is computed only with `--cal-pro True` (its runs pass `False`: the CSV holds 0) and the region max-F1
# > is commented out. Why it matters: a 0 in the official AUPRO column means "not computed", and this workbook's
# > metrics follow the same protocol (`saa_lib.metrics`), so its numbers compare with the paper's on identical maps.
#
# With the tiny random-weight detector these tables are noise (the header says so): they test the machinery.

# %%
wb.caution("Table 1, the grid and the PR curves of sections 1-3")
methods = [wb.config("saa"), wb.config(variant)]
t0 = time.perf_counter()
runs = wb.runs(methods)
print(f"{len(methods)} methods x {len(wb.items)} images scored in {time.perf_counter() - t0:.1f} s")
table = workbook.paper_table(wb.data, wb.data.categories[0])
head = report.header(wb.models.describe(), wb.models.meaningful, wb.data.name)
sections = {f"{name} (%)": report.metric_table(runs, key, dataset=table if key == "pixel_max_f1" else "")
            for name, key in (("max-F1-pixel", "pixel_max_f1"), ("pixel AUROC", "pixel_auroc"),
                              ("image AUROC", "image_auroc"))}
sections["max-F1-pixel (%), one row per category"] = report.metric_table(runs, "pixel_max_f1", transpose=True)
workbook.show(sections, head=head)

# %% [markdown]
# ## 2. Qualitative results
#
# One anomalous image per category: the image, its ground truth (magenta outline) and the anomaly map of each
# method, all maps on one colour scale.

# %%
labels = {c.variant: report.VARIANT_LABELS.get(c.variant, c.variant) for c in methods}
grid_rows = []
for cat in wb.data.categories:
    by_variant = {r.variant: r for r in runs if r.category == cat}
    i = next((j for j, lab in enumerate(by_variant[methods[0].variant].labels) if lab == 1), 0)
    it = [x for x in wb.items if x.sample.category == cat][i]
    grid_rows.append(viz.GridRow(it.image, it.sample.load_mask(), {labels[v]: r.maps[i] for v, r in by_variant.items()},
                                 f"{cat}\n{it.sample.defect_type}"))
fig = viz.qualitative_grid(grid_rows, title=f"SAA vs SAA+ — {wb.tag}")
wb.figures.save(fig, "08_qualitative")
plt.show()

# %% [markdown]
# ## 3. Pixel precision–recall curves
#
# One curve per method and category (maps normalised per category, as for the metrics). The area under the curve and
# its best F1 point summarise it; max-F1-pixel is the F1 of the best point on this curve. Read a curve from the left
# (a high threshold: few pixels flagged) to the right: every curve *ends* at recall 1, where every pixel is flagged
# and the precision is the share of defect pixels of the category (exercise 08.2).

# %%
curves = {f"{report.VARIANT_LABELS.get(r.variant, r.variant)} · {r.category}": viz.pixel_pr(r.maps, r.masks)
          for r in runs}
fig = viz.pr_curves(curves, title=f"pixel PR on {wb.data.name} — {wb.tag}")
wb.figures.save(fig, "08_pr_curves")
plt.show()

# %% [markdown]
# ## 4. A real result: the saliency prompt alone on real images
#
# The `saliency_only` variant uses the $\mathcal{P}^S$ map itself as the anomaly map. With the ImageNet weights of
# `tf_efficientnet_lite0` (installed with the project, no download) this is a genuine zero-shot result on the real
# MVTec AD and MTD samples in `../shared/data/samples` — not the full SAA+, only one of its four prompts.

# %%
real = workbook.real_datasets()  # {category: dataset}; {} (and a line saying so) without the samples
if not real:
    print("falling back to the synthetic images: the numbers below are NOT on real images")
    real = {cat: wb.data for cat in wb.data.categories}
real_runs, real_items = [], []
if real:
    sal_models = load_saliency_only("tf_efficientnet_lite0", device=resolve_device(device), download=False)
    sal_pipe = SAAPipeline(sal_models, StageCache())
    sal_cfg = workbook.make_config("saliency_only", behaviour, "tf_efficientnet_lite0", eval_resolution=256)
    t0 = time.perf_counter()
    for rds in dict.fromkeys(real.values()):
        its = workbook.stage_items(sal_pipe, rds, 2 * n_images, sal_cfg)  # saliency alone is cheap: twice as many
        real_items += its
        real_runs += workbook.category_runs(sal_pipe, its, [sal_cfg])
    print(f"{sal_models.describe()}: {len(real_items)} images in {time.perf_counter() - t0:.1f} s")
    where = "MVTec AD + MTD samples" if workbook.shared_samples() else f"{wb.data.name} (fallback)"
    workbook.show({f"P^S map alone, per category, {name} (%)": report.metric_table(real_runs, key, transpose=True)
                   for name, key in (("max-F1-pixel", "pixel_max_f1"), ("pixel AUROC", "pixel_auroc"))},
                  head=report.header(sal_models.describe(), sal_models.meaningful, where,
                                     f"{2 * n_images} images per category (anomalous and normal alternating): a "
                                     "handful, so read the numbers as an illustration, not a benchmark."))

# %%
if real_runs:
    grid_rows = []
    for r in real_runs:
        i = next((j for j, lab in enumerate(r.labels) if lab == 1), 0)
        it = [x for x in real_items if x.sample.category == r.category][i]
        grid_rows.append(viz.GridRow(it.image, it.sample.load_mask(), {"P^S map": r.maps[i]},
                                     f"{r.category}\n{it.sample.defect_type}"))
    fig = viz.qualitative_grid(grid_rows, normalize=True, label="saliency (min-max scaled per map)",
                               title=f"{'real' if workbook.shared_samples() else 'synthetic (fallback)'} images, "
                                     "saliency prompt alone (tf_efficientnet_lite0, ImageNet weights)")
    wb.figures.save(fig, "08_real_saliency_grid", readme=workbook.shared_samples() is not None)
    plt.show()
    fig = viz.pr_curves({r.category: viz.pixel_pr(r.maps, r.masks) for r in real_runs},
                        title=f"pixel PR, saliency prompt alone (lite0, {'real' if workbook.shared_samples() else 'synthetic'})")
    wb.figures.save(fig, "08_real_saliency_pr", readme=workbook.shared_samples() is not None)
    plt.show()

# %% [markdown]
# With `out_dir` set, the tables are also written as markdown next to the figures (not when `out_dir` is the
# project itself, where only the README figures go):

# %%
if out_dir and not wb.figures.readme_only:
    extra = {} if not real_runs else {"P^S map alone on real samples, max-F1-pixel (%)":
                                      report.metric_table(real_runs, "pixel_max_f1", transpose=True)}
    path = report.write_report(Path(out_dir) / "results.md", "SAA+ workbook results", head, {**sections, **extra})
    print("tables written to", path.name)

# %% [markdown]
# ## Takeaways
# 1. Table 1 reports max-F1-pixel per category and its mean: the best $F_1$ over thresholds, every pixel of the
#    category pooled; pixel AUROC stays high on small defects, max-F1 does not — chance level is the defect-pixel
#    share, not 50 %.
# 2. An image's score is the maximum of its map; with a handful of images image metrics take only a few values.
# 3. Results with random-weight detectors test the machinery only; the one real result without the official weights
#    is $\mathcal{P}^S$ alone on real features (section 4).

# %% [markdown]
# ## Exercises
#
# Each exercise ends with `workbook.check(...)`: it says whether your answer is right and, if not, gives a hint (never
# the answer). They are about the metrics, computed on given maps and masks, so they are right or wrong whatever the
# weights that made the maps.
#
# ### 08.1 · Max-F1-pixel from scratch
# Write `max_f1(maps, masks)`: `maps` (N, H, W) float and `masks` (N, H, W) bool of one category; return the best
# $F_1$ over all thresholds, every pixel of every image pooled. A threshold $t$ flags the pixels scoring $\ge t$, so
# equal scores are flagged together. `check` compares it with `saa_lib.metrics.pixel_max_f1` on random maps (ties
# included).

# %% tags=["exercise"]
def max_f1(maps, masks):
    ...  # your code


workbook.check("08.1", max_f1)

# %% [markdown]
# ### 08.2 · Where every PR curve ends
# The pixel PR curves of section 3 end, at recall 1, at a low precision. Compute that precision — the precision of a
# map that flags every pixel — for each category of `runs` (Table 1's runs: `run.category`, `run.masks`), as a dict
# `{category: precision}`. What does it say about a method whose curve stays near that level?

# %% tags=["exercise"]
end_precision = ...  # {category: precision}

workbook.check("08.2", end_precision, runs=runs)

# %% [markdown]
# ### 08.3 · Image AUROC from the maps
# For the $\mathcal{P}^S$-alone runs of section 4 (`real_runs`: real features), compute each category's image AUROC
# yourself: an image's score is the maximum of its map (`run.maps`), its label `run.labels`
# (`sklearn.metrics.roc_auc_score`). Answer with `{category: AUROC}` (a fraction, not %); use `float("nan")` where a
# category has one class only. Why does it take so few values here?

# %% tags=["exercise"]
image_aurocs = ...  # {category: image AUROC}

workbook.check("08.3", image_aurocs, real_runs=real_runs)
