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
from IPython.display import display

from saa_lib import metrics
from saa_lib.workbook import report, viz
from saa_lib.workbook import known_case as kc
from saa_lib import workbook
from saa_lib.config import ABLATION_VARIANTS
from saa_lib.models.backbone import load_saliency_backbone
from saa_lib.scoring import score

workbook.check_parameters(globals())
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
workbook.show(workbook.variant_switches_table(configs))

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
workbook.show(kc.fate_table(case, case_res))
case_f1 = {lab: 100 * metrics.pixel_max_f1(res.anomaly_map[None], case.mask[None]) for lab, res in case_res.items()}

# %% [markdown]
# The regions each variant fuses into the map:

# %%
for lab, res in case_res.items():
    kept = kc.fused_names(case, res)
    print(f"{lab:14s} keeps the true defect: {'true defect' in kept!s:5s} ({len(kept)} regions fused)")

# %% tags=["remove-cell"]
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
# stages come from the cache filled above, each variant is a re-score. Each category's maps are scored as in the
# paper: max-F1-pixel over every pixel of the category's test images pooled, then the mean over the categories. The
# paper column is filled for MVTec AD and VisA only.
#
# > **Official code:** the official evaluation min-max normalises all maps of a category together (one minimum, one
# > maximum) before the metrics — an increasing function of the scores, so it changes no max-F1 or AUROC and only
# > puts every score, the image scores (each map's maximum) included, in [0, 1]. It writes one row per category to a CSV
# > file and computes no mean: the "mean" columns of the paper's tables (and of this one) are averages of those rows.
# > Region metrics are off (AUPRO only with `--cal-pro True`, otherwise reported as 0; the region max-F1 is commented
# > out). Why it matters: compare means over the same categories, and never a zero AUPRO from the official CSV.
#
# With the tiny random-weight detector (the default when the official weights are not here) this table is noise:
# it shows that one cached pass scores all five variants, not which prompt matters. Section 2 is the lesson.

# %%
wb.caution("the ablation table and bars of this section")
t0 = time.perf_counter()
runs = wb.runs(configs)
print(f"{len(configs)} variants x {len(wb.items)} images scored in {time.perf_counter() - t0:.1f} s")
table = workbook.paper_table(wb.data, wb.data.categories[0])
workbook.show({"Ablation, mean max-F1-pixel over the categories (%)": report.ablation_table(runs, "pixel_max_f1",
                                                                                             dataset=table),
               "Per category, max-F1-pixel (%)": report.metric_table(runs, "pixel_max_f1", transpose=True)},
              head=report.header(wb.models.describe(), wb.models.meaningful, wb.data.name))

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
# ## Takeaways
# 1. An ablation removes one prompt from the full method at a time: it measures what each prompt adds *given the
#    others*, and all five variants cost one pass of the networks.
# 2. The prompts' contributions do not add up: $\mathcal{P}^S$ is useless alone and essential with $\mathcal{P}^C$;
#    a variant missing one prompt can be worse than the baseline with none.
# 3. Which prompt does a job depends on the behaviour (the paper's prompts hold no object word, so $\mathcal{P}^P$
#    does what $\mathcal{P}^L$ does in the code); how much each adds on real data needs trained weights and the data
#    set table.

# %% [markdown]
# ## Exercises
#
# Each exercise ends with `workbook.check(...)`: it says whether your answer is right and, if not, gives a hint (never
# the answer). All three are about the known case of section 2 (real saliency, hand-built candidates: the answers
# hold whatever the detector weights); build it in the other behaviour with
# `kc.known_case(lite0, workbook.make_config("saa_plus", "paper", "tf_efficientnet_lite0"))` and score any variant with
# `score(case.stages, case.prompts, workbook.make_config(variant, behaviour, "tf_efficientnet_lite0"))`.
#
# ### 07.1 · The ablation in the paper's behaviour
# Run the known-case ablation again with `behaviour="paper"` ($\gamma = 1$, $\delta = 0$, the paper's prompts and
# $\mathcal{P}^P$ on masks). Which variants change their verdict on the hole — found (max-F1-pixel $\ge$ 0.5) in one
# behaviour, not in the other — and why?

# %% tags=["exercise"]
changed = ...  # a set of variant names, e.g. {"saa_plus-no_confidence"}

workbook.check("07.1", changed, backbone=lite0)

# %% [markdown]
# ### 07.2 · Below the baseline
# Add a sixth row, the baseline `saa` (every prompt off), in code behaviour. Which ablation variants score *below*
# it on the known case, and what does that say about the prompts' contributions adding up?

# %% tags=["exercise"]
below_saa = ...  # a set of variant names

workbook.check("07.2", below_saa, backbone=lite0)

# %% [markdown]
# ### 07.3 · One prompt on at a time
# The paper removes one prompt at a time. Run the complementary study: start from `saa` and switch **one** prompt on
# (`.with_(use_language=True)`, ...). Which prompt alone gives the highest max-F1-pixel on the known case (code
# behaviour)? Do the two rankings agree?

# %% tags=["exercise"]
best_alone = ...  # one of "language", "property", "saliency", "confidence"

workbook.check("07.3", best_alone, backbone=lite0)
