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
# precision–recall curves. With trained weights (`models="official"`) this notebook *is* the results section; with
# the default tiny random-weight models it only checks that every piece runs, and every table and figure says so.
#
# One result here is real whatever the detector weights: the saliency map $\mathcal{P}^S$ alone, computed with the
# ImageNet weights of `tf_efficientnet_lite0`, on real MVTec AD and MTD samples (section 4).
#
# ## Learning goals
# 1. Produce Table 1 (methods × categories, mean, the paper's mean) with `saa_lib.workbook.report.metric_table` from one cached
#    pass per image, and the same numbers one row per category.
# 2. Read the threshold-free metrics side by side: max-F1-pixel, pixel AUROC, image AUROC — and know why the paper
#    leads with max-F1-pixel.
# 3. Draw the qualitative grid and pixel PR curves of the paper's figures (`saa_lib.workbook.viz`), and tell a real result
#    from a test of the machinery.

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
from IPython.display import Markdown, display

from saa_lib.workbook import report, viz
from saa_lib import workbook
from saa_lib.cache import StageCache
from saa_lib.pipeline import SAAPipeline
from saa_lib.utils import resolve_device
from saa_lib.weights.zoo import load_saliency_only

saliency_backbone = workbook.choose_saliency_backbone(saliency_backbone)
wb = workbook.setup(
    models=models, device=device, saliency_backbone=saliency_backbone, seed=seed, out_dir=out_dir, dataset=dataset,
    root=root, categories=categories, n_images=n_images, behaviour=behaviour)

# %% [markdown]
# ## 1. Table 1: methods × categories
#
# Every metric is computed per category on the maps of that category normalised together (the official protocol),
# then averaged over categories. **max-F1-pixel** is the best F1 over all thresholds of the pixel classification; it
# is the paper's headline metric because, unlike AUROC, it is not inflated by the huge number of easy normal pixels.

# %%
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
display(Markdown(head + "\n".join(f"**{k}**\n\n{v}" for k, v in sections.items())))

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
# its best F1 point summarise it; max-F1-pixel is the F1 of the best point on this curve.

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
    display(Markdown(report.header(sal_models.describe(), sal_models.meaningful,
                                   "MVTec AD + MTD samples" if workbook.shared_samples() else f"{wb.data.name} (fallback)",
                                   f"{2 * n_images} images per category (anomalous and normal alternating): a handful, "
                                   "so read the numbers as an illustration, not a benchmark.")
                     + "**P^S map alone, per category (%)**\n\n"
                     + "\n".join(f"{name}\n\n{report.metric_table(real_runs, key, transpose=True)}" for name, key in
                                 (("max-F1-pixel", "pixel_max_f1"), ("pixel AUROC", "pixel_auroc")))))

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
# ## Exercises
# 1. Add the pixel AUROC and max-F1-pixel of the *saliency-only* variant on the synthetic data to Table 1
#    (`wb.config("saliency_only")` as a third method). Is saliency alone better or worse than SAA+ there, and
#    why is that no contradiction with the paper?
# 2. On the real samples, which category has the highest saliency-only pixel AUROC but a low max-F1-pixel? Explain
#    the gap using the size of its defects. (Without them, section 4 runs on the synthetic images: same question.)
# 3. The PR curves of a category with very few defect pixels start at low precision. Compute the precision of a map
#    that flags every pixel, for one category, and compare it with where the curves end at recall 1.
#
# Answers: `notebooks/answers/08_answers.md`.
