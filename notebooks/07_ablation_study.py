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
# # 07 · Ablation study: what each hybrid prompt contributes
#
# Notebooks 02–05 switched one prompt on and off at a time. The paper's Table 2 does it systematically: start from
# the full SAA+ and remove **one** prompt at a time, then compare the mean max-F1-pixel over the categories. Because
# all five variants share the same GroundingDINO / SAM / saliency outputs, the whole ablation costs one pass of the
# expensive stages per image; every variant after that is a cheap re-score.
#
# ## Learning goals
# 1. Name the five ablation variants and the prompt each one leaves out.
# 2. Run the ablation from one cached pass (`SAAPipeline.run_variants` under `saa_lib.engine.evaluate.run_category`) and
#    read it in the layout of the paper's Table 2 (`saa_lib.workbook.report.ablation_table`).
# 3. Explain why a prompt's contribution depends on the others (the order of the filters, top-$K$ after rescoring),
#    on a known case and on the data set.

# %% tags=["parameters"]
dataset = "synthetic"  # synthetic | mvtec | visa | ksdd2 | mtd | folder
root = None  # data set folder; None: data/synthetic (generated on first use)
categories = None  # e.g. ["washer"]; None: every category
variant = "saa_plus"  # the full method the ablation removes prompts from
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
from IPython.display import Markdown, display

from saa_lib import metrics
from saa_lib.workbook import report, viz
from saa_lib.workbook import known_case as kc
from saa_lib import workbook
from saa_lib.config import ABLATION_VARIANTS
from saa_lib.models.backbone import load_saliency_backbone
from saa_lib.scoring import score

saliency_backbone = workbook.choose_saliency_backbone(saliency_backbone)
wb = workbook.setup(
    models=models, device=device, saliency_backbone=saliency_backbone, seed=seed, out_dir=out_dir, dataset=dataset,
    root=root, categories=categories, n_images=n_images, behaviour=behaviour)

# %% [markdown]
# ## 1. The five variants
#
# Each ablation variant is the full method with one switch off (`saa_lib.config.variant_config`). Removing
# $\mathcal{P}^L$ also removes the expert prompts, so that variant asks the detector the class-agnostic prompts only.

# %%
configs = [wb.config(v) for v in ABLATION_VARIANTS]
rows = ["| variant | label | P^L | P^P | P^S | P^C |", "|---|---|:---:|:---:|:---:|:---:|"]
rows += [f"| `{c.variant}` | {report.VARIANT_LABELS[c.variant]} | "
         + " | ".join("x" if getattr(c, f"use_{p}") else "–" for p in workbook.PROMPTS) + " |" for c in configs]
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## 2. The ablation on a known case
#
# The washer of notebook 01: candidates hand-made so each prompt changes the outcome, real `tf_efficientnet_lite0`
# saliency. Each column of the table says what happened to each candidate under one variant. Since the case was built
# for every prompt to matter, "removing X loses the hole" here shows *how* a prompt acts and how the prompts depend on
# each other; it says nothing about how much each prompt adds on real data (that is the data set table below, with
# trained weights and enough images).
# Watch the interactions: without $\mathcal{P}^S$ the intact patches out-rank the hole and $\mathcal{P}^C$ then
# throws the hole away; without $\mathcal{P}^C$ nothing limits the number of fused patches.

# %%
lite0 = load_saliency_backbone("tf_efficientnet_lite0")
case_cfgs = [workbook.make_config(v, behaviour, "tf_efficientnet_lite0") for v in ABLATION_VARIANTS]
case = kc.known_case(lite0, case_cfgs[-1], category="washer", defect="hole", seed=seed)
case_res = {report.VARIANT_LABELS[c.variant]: score(case.stages, case.prompts, c) for c in case_cfgs}
display(Markdown(kc.fate_table(case, case_res)))
case_f1 = {lab: 100 * metrics.pixel_max_f1(res.anomaly_map[None], case.mask[None]) for lab, res in case_res.items()}

# %% [markdown]
# The regions each variant fuses into the map:

# %%
for lab, res in case_res.items():
    kept = kc.fused_names(case, res)
    print(f"{lab:14s} keeps the true defect: {'true defect' in kept!s:5s} ({len(kept)} regions fused)")

# %% [markdown]
# A check that runs with the notebook (nbval compares this cell's output, which must stay empty):

# %%
# NBVAL_CHECK_OUTPUT
keeps = {lab: "true defect" in kc.fused_names(case, res) for lab, res in case_res.items()}
assert keeps["SAA+"] and not keeps["SAA+ w/o P^L"] and not keeps["SAA+ w/o P^S"], keeps

# %%
fig = viz.bar_chart(case_f1, "max-F1-pixel (%) on this image",
                    title="known case (hand-built candidates): removing one prompt at a time")
fig.axes[0].set_ylim(0, 105)
wb.figures.save(fig, "07_known_case_ablation", readme=True)
plt.show()

# %%
fig = viz.compare_results(case.image, {lab: case_res[lab] for lab in ("SAA+ w/o P^S", "SAA+")}, case.mask,
                          title="known case: without P^S the top-K cut keeps intact metal instead of the hole")
wb.figures.save(fig, "07_known_case_no_saliency", readme=True)
plt.show()

# %% [markdown]
# ## 3. The ablation on the data set (Table 2 layout)
#
# `wb.runs` calls `saa_lib.engine.evaluate.run_category` per category with the five configurations: the expensive
# stages come from the cache filled above, each variant is a re-score. The paper column is filled for MVTec AD and
# VisA only.

# %%
t0 = time.perf_counter()
runs = wb.runs(configs)
print(f"{len(configs)} variants x {len(wb.items)} images scored in {time.perf_counter() - t0:.1f} s")
table = workbook.paper_table(wb.data, wb.data.categories[0])
display(Markdown(report.header(wb.models.describe(), wb.models.meaningful, wb.data.name)
                 + "**Ablation, mean max-F1-pixel over the categories (%)**\n\n"
                 + report.ablation_table(runs, "pixel_max_f1", dataset=table)
                 + "\n**Per category, max-F1-pixel (%)**\n\n"
                 + report.metric_table(runs, "pixel_max_f1", transpose=True)))

# %%
mean_f1 = {report.VARIANT_LABELS[c.variant]: 100 * sum(r.metrics["pixel_max_f1"] for r in runs
                                                       if r.variant == c.variant) / len(wb.data.categories)
           for c in configs}
paper = {report.VARIANT_LABELS[c.variant]: report.paper_value(c.variant, table) for c in configs}
fig = viz.bar_chart(mean_f1, "mean max-F1-pixel (%)", title=f"ablation on {wb.data.name} — {wb.tag}",
                    reference={k: v for k, v in paper.items() if v is not None})
wb.figures.save(fig, "07_ablation_bars")
plt.show()

# %% [markdown]
# ## Exercises
# 1. Run the known-case ablation again in the paper's behaviour (`behaviour="paper"`: $\gamma = 1$, $\delta = 0$,
#    nearest-neighbour saliency). Which variant changes its verdict on the true defect, and why?
# 2. Add a sixth row to the ablation: the baseline `saa` (every prompt off). Where does it rank on the known case and
#    what does that say about the prompts' contributions adding up?
# 3. The paper's Table 2 removes one prompt at a time. Design the complementary study (one prompt **on** at a time,
#    starting from `saa`) with `wb.config("saa").with_(use_<prompt>=True)` and compare the two rankings on
#    the known case.
#
# Answers: `notebooks/answers/07_answers.md`.
