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
# ## 1. The prompt tables
#
# Each category has class-agnostic prompts (built from the object word), expert prompts (one GroundingDINO forward
# per caption; a caption may hold several phrases) and its object word:

# %%
workbook.show(workbook.prompt_entries_table(it.prompts for it in wb.items))

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
#
# > **Official code:** its class-agnostic prompts are `defect on <category>`, `damage on <category>` and
# > `flaw on <category>` (the paper's: `anomaly`, `defect`), and their filter phrase is the category key as written
# > (`metal_nut`). A box is dropped when that phrase is a *substring* of the box's phrase as the tokenizer decodes it,
# > not when the two share a word. So for `screw` it also drops `screws` and `screwdriver`, which the paper keeps;
# > for MVTec AD's `metal_nut` the decoded phrase reads `metal _ nut`, which never contains `metal_nut`, and the
# > filter drops nothing. It matters wherever the category's key is not the everyday word for the object.
# > Exercise 02.2 tries both rules.

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
workbook.show(kc.fate_table(case, case_res))
for lab, res in case_res.items():
    print(f"{lab}: max-F1-pixel {metrics.pixel_max_f1(res.anomaly_map[None], case.mask[None]):.3f}")

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
print(wb.tag)
workbook.show(workbook.regions_table(res["P^L on"].regions, n=8))

# %%
runs = wb.runs([off, on])
workbook.show({"max-F1-pixel (%)": report.metric_table(runs, "pixel_max_f1"),
               "pixel AUROC (%)": report.metric_table(runs, "pixel_auroc")},
              head=report.header(wb.models.describe(), wb.models.meaningful, wb.data.name))

# %% [markdown]
# ## Takeaways
# 1. $\mathcal{P}^L$ asks the detector in an inspector's words (expert prompts per category) and drops every box whose
#    phrase names the inspected object itself.
# 2. A box's phrase is its caption tokens whose confidence is above $\theta_{text}$: the threshold decides which words
#    a box has, and so whether $\mathcal{P}^L$ can see the object in it.
# 3. The paper compares whole words; the official code tests whether the category key is a substring of the decoded
#    phrase, which drops more boxes for some object words and none for others.

# %% [markdown]
# ## Exercises
# Each exercise ends with `workbook.check(...)`: ✓, or ✗ with a hint. Replace the `...` with your answer.
# 1. **02.1** From scratch: a box's phrase and the paper's language filter.
# 2. **02.2** Word or substring: what each form of the filter drops.
# 3. **02.3** A text threshold too high, on the known case.

# %% [markdown]
# ### 02.1 · From scratch: the language filter
# Write `keep(tokens, token_conf, text_threshold, object_word)`. `tokens` is one caption's tokens (a list of strings,
# dots included), `token_conf` (M, T) the confidence of each of the T tokens for each of M boxes, `object_word` the
# object (it may hold several words). Return the (M,) bool array of the boxes $\mathcal{P}^L$ keeps in the paper's
# form: each box's phrase is its tokens with confidence above $\theta_{text}$; keep the box when the phrase shares no
# word with the object word. `check` compares it with the library (`Detections.phrases`, then
# `prompts.language.language_keep`) on random confidences.

# %% tags=["exercise"]
def keep(tokens, token_conf, text_threshold, object_word):
    ...  # your code


workbook.check("02.1", keep)

# %% [markdown]
# ### 02.2 · Word or substring
# For the object `screw`, which of the phrases `screws`, `screw`, `scratch on screw`, `screwdriver`, `thread` does the
# paper's rule drop, and which the official code's (the side box of section 2)? Hand in
# `{"paper": [the phrases it drops], "code": [the phrases it drops]}`. Which rule would you trust for a category
# whose object word is short and common?

# %% tags=["exercise"]
answer = ...  # {"paper": [...], "code": [...]}

workbook.check("02.2", answer)

# %% [markdown]
# ### 02.3 · A text threshold too high
# In the known case, raise $\theta_{text}$ from 0.1 to 0.5 (`case_on.with_(text_threshold=0.5)`). Which candidate
# changes its fate, and what removes it now? Predict it first — the known case gives the tokens that name a candidate
# a confidence equal to the candidate's, the others 0.02 — then score it and compare the fate tables. Hand in
# `{candidate name: what removes it now}` with the fate table's names (`language`, `property`, `confidence`,
# `threshold`, or `kept`); `{}` if no fate changes.

# %% tags=["exercise"]
answer = ...  # {candidate name: what removes it at θ_text = 0.5}

workbook.check("02.3", answer, case=case)
