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
# # 02 · Language prompts $\mathcal{P}^L$: say what a defect is, and what it is not
#
# "Defect" is an ambiguous word for a detector trained on everyday captions: asked for "defect on washer", it often
# returns the washer. SAA+ adds **expert prompts** per category — the words an inspector would use ("scratch. hole.
# stain. missing part.") — and drops every box whose phrase names the inspected object itself.
#
# ## Learning goals
# 1. Read the per-category prompt tables: class-agnostic prompts, expert prompts, the object word.
# 2. Know how a box gets its phrase (caption tokens above the text threshold) and how $\mathcal{P}^L$ filters on it.
# 3. Measure the effect of $\mathcal{P}^L$ with the prompt on and off, on a known case and on the data set.

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
from IPython.display import Markdown, display

from saa_lib import metrics
from saa_lib.workbook import report, viz
from saa_lib.workbook import known_case as kc
from saa_lib import workbook
from saa_lib.models.backbone import load_saliency_backbone
from saa_lib.scoring import score

saliency_backbone = workbook.choose_saliency_backbone(saliency_backbone)
wb = workbook.setup(
    models=models, device=device, saliency_backbone=saliency_backbone, seed=seed, out_dir=out_dir, dataset=dataset,
    root=root, categories=categories, n_images=n_images, behaviour=behaviour)

# %% [markdown]
# ## 1. The prompt tables
#
# Each category has class-agnostic prompts (built from the object word), expert prompts (one GroundingDINO forward
# per caption; a caption may hold several phrases) and its object word:

# %%
rows = ["| category | object word | kind | caption (one forward each) |", "|---|---|---|---|"]
for pr in {it.prompts.category: it.prompts for it in wb.items}.values():
    for e in pr.entries:
        rows.append(f"| {pr.category} | {pr.object_word} | {e.kind} | `{e.caption}` |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## 2. The idea as a formula
#
# For category $c$ the detector is asked every prompt of $\mathcal{T}_c = \mathcal{T}^{agnostic}_c \cup
# \mathcal{T}^{expert}_c$. Box $i$ (from caption $T$) has token confidences $\sigma_i(t)$; its **phrase** is
#
# $$p_i = \{\, t \in T : \sigma_i(t) > \theta_{text} \,\},$$
#
# and $\mathcal{P}^L$ keeps the box only if its phrase does not name the object:
#
# $$\text{keep}_i \iff p_i \cap \mathrm{words}(\text{object}_c) = \emptyset .$$
#
# Without $\mathcal{P}^L$ (variant `saa_plus-no_language`) only the class-agnostic prompts are asked and no box is
# dropped for its phrase.

# %%
on = wb.config(variant)
off = workbook.switched_off(on, "language")
print(f"on: {on.variant} (P^L {on.use_language}),  off: {off.variant} (P^L {off.use_language}),  "
      f"text threshold θ_text = {on.text_threshold}")

# %% [markdown]
# ## 3. A known case
#
# The washer of notebook 01 (candidates hand-made so each prompt changes the outcome; real `tf_efficientnet_lite0`
# saliency). With $\mathcal{P}^L$ the expert prompt proposes the hole, and the box phrased "washer" is dropped.

# %%
lite0 = load_saliency_backbone("tf_efficientnet_lite0")
case_on = workbook.make_config(variant, behaviour, "tf_efficientnet_lite0")
case_off = workbook.switched_off(case_on, "language")
case = kc.known_case(lite0, case_on, category="washer", defect="hole", seed=seed)
case_res = {"P^L off": score(case.stages, case.prompts, case_off),
            "P^L on": score(case.stages, case.prompts, case_on)}
display(Markdown(kc.fate_table(case, case_res)))
for lab, res in case_res.items():
    print(f"{lab}: max-F1-pixel {metrics.pixel_max_f1(res.anomaly_map[None], case.mask[None]):.3f}")

# %% [markdown]
# A check that runs with the notebook (nbval compares this cell's output, which must stay empty):

# %%
# NBVAL_CHECK_OUTPUT
kept_on = [r for r in case_res["P^L on"].regions if r.removed_by is None]
assert all(case.prompts.object_word not in r.phrase.split() for r in kept_on)  # no kept box is named after the object
assert len(case_res["P^L off"].regions) < len(case_res["P^L on"].regions)  # without P^L no expert prompt is asked

# %%
fig = viz.compare_results(case.image, case_res, case.mask,
                          title="known case: language prompts propose the hole and drop the box named 'washer'")
wb.figures.save(fig, "02_known_case_language", readme=True)
plt.show()

# %% [markdown]
# ## 4. On the data set: the same images, $\mathcal{P}^L$ off and on
#
# `pipeline.score` re-scores the cached stage outputs; no model runs here.

# %%
first = next(it for it in wb.items if it.sample.label == 1)
res = {"P^L off": wb.score(first, off), "P^L on": wb.score(first, on)}
fig = viz.compare_results(first.image, res, first.mask, title=f"{first.sample.key} — {wb.tag}")
wb.figures.save(fig, "02_language_on_off")
plt.show()

# %% [markdown]
# The phrases of the most confident boxes, and what $\mathcal{P}^L$ did with them:

# %%
regions = sorted(res["P^L on"].regions, key=lambda r: -r.confidence)[:8]
rows = ["| caption | phrase | confidence | fate |", "|---|---|---:|---|"]
rows += [f"| `{r.prompt}` | {r.phrase or '(none)'} | {r.confidence:.3f} | {r.removed_by or 'kept'} |" for r in regions]
display(Markdown(f"{wb.tag}\n\n" + "\n".join(rows)))

# %%
runs = wb.runs([off, on])
display(Markdown(report.header(wb.models.describe(), wb.models.meaningful, wb.data.name)
                 + "**max-F1-pixel (%)**\n\n" + report.metric_table(runs, "pixel_max_f1")
                 + "\n**pixel AUROC (%)**\n\n" + report.metric_table(runs, "pixel_auroc")))

# %% [markdown]
# ## Exercises
# 1. In the known case, raise the text threshold to 0.5 (`case_on.with_(text_threshold=0.5)`). Which candidate that
#    $\mathcal{P}^L$ removed before now survives, and which prompt still stops it?
# 2. Add a user prompt: `category_prompts("washer", "synthetic", extra=("dent",))`. How many GroundingDINO forwards
#    does one image now cost, and which `kind` does the new entry have?
# 3. Write the expert prompts you would give a new category, `bolt`, and run `saa predict` on a synthetic washer image
#    with `--category bolt --prompt ...`. Why must the object word be chosen with care?
#
# Answers: `notebooks/answers/02_answers.md`.
