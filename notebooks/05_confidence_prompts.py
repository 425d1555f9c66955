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
# # 05 · Confidence prompts $\mathcal{P}^C$: trust only the most confident few
#
# An image holds few defects, but a detector asked five prompts returns dozens of boxes. After the other prompts
# have filtered and re-ranked them, SAA+ keeps only the $K$ regions with the highest (rescored) confidence; $K$ is a
# per-category setting.
#
# ## Learning goals
# 1. Write $\mathcal{P}^C$ as a top-$K$ selection over the rescored confidences, read $K$ from the tables, and write
#    it yourself.
# 2. See how $\mathcal{P}^C$ interacts with $\mathcal{P}^S$: top-$K$ is only as good as the ranking it cuts.
# 3. Tell the paper's rule from the official code's (`argsort()[-k:]`) and know when the difference shows.

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
from saa_lib.prompts.confidence import official_top_k, top_k_keep
from saa_lib.scoring import score

workbook.check_parameters(globals())
saliency_backbone = workbook.choose_saliency_backbone(saliency_backbone)
wb = workbook.setup(
    models=models, device=device, saliency_backbone=saliency_backbone, seed=seed, out_dir=out_dir, dataset=dataset,
    root=root, categories=categories, n_images=n_images, behaviour=behaviour)

# %% [markdown]
# ## 1. The idea as a formula
#
# Of the regions $i$ still alive after $\mathcal{P}^L$ and $\mathcal{P}^P$, with rescored confidences $c'_i$
# ($\mathcal{P}^S$), keep
#
# $$\mathcal{R}^* = \operatorname*{top-K}_{i} \; c'_i ,$$
#
# the $K$ highest, a tie going to the lower index $i$. Only $\mathcal{R}^*$ enters the fusion $A(x) = \sum_{i \in
# \mathcal{R}^*} c'_i m_i(x) / (\delta + \sum_{i \in \mathcal{R}^*} m_i(x))$. $K$ comes from the category's property
# table (5 for most categories):

# %%
workbook.show(workbook.category_settings_table(it.prompts for it in wb.items)[["K (P^C)"]])
on = wb.config(variant)
off = workbook.switched_off(on, "confidence")

# %% [markdown]
# On five scores, two of them tied at the top, with $K = 2$ (`saa_lib.prompts.confidence.top_k_keep`):

# %%
example = [0.30, 0.55, 0.55, 0.20, 0.40]
print("scores:", example, "-> kept (K = 2):", top_k_keep(example, 2).nonzero()[0].tolist())

# %% [markdown]
# > **Official code:** the official implementation keeps `scores.argsort()[-k:]`: numpy sorts the surviving
# > candidates' scores in ascending order and takes the *last* $k$ positions. On distinct scores that is the same
# > set; on a tie it keeps the later candidate (a later prompt or query), and it fuses the kept regions in that
# > ascending order. With `k = 0` the slice `[-0:]` is the whole array: every candidate is kept. The `code` behaviour
# > reproduces this (`official_top_k`) so that the map equals the official one bit for bit; `paper` uses the rule
# > above. With trained weights exact ties of rescored confidences are rare, so the two rarely differ — exercise 05.3
# > shows where they do.

# %%
print("official argsort()[-2:] keeps:", sorted(official_top_k(example, 2).tolist()))

# %% [markdown]
# ## 2. A known case
#
# The hand-built washer (real `tf_efficientnet_lite0` saliency): without $\mathcal{P}^C$ every surviving patch of
# intact metal is fused into the map.

# %%
lite0 = load_saliency_backbone("tf_efficientnet_lite0")
case_on = workbook.make_config(variant, behaviour, "tf_efficientnet_lite0")
case = kc.known_case(lite0, case_on, category="washer", defect="hole", seed=seed)
case_res = {"P^C off": score(case.stages, case.prompts, workbook.switched_off(case_on, "confidence")),
            "P^C on": score(case.stages, case.prompts, case_on)}
workbook.show(kc.fate_table(case, case_res))
for lab, res in case_res.items():
    print(f"{lab}: max-F1-pixel {metrics.pixel_max_f1(res.anomaly_map[None], case.mask[None]):.3f}, "
          f"{sum(r.removed_by is None for r in res.regions)} regions fused")

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
n_kept = {lab: sum(r.removed_by is None for r in res.regions) for lab, res in case_res.items()}
assert n_kept["P^C on"] <= case.prompts.top_k < n_kept["P^C off"], n_kept

# %%
fig = viz.compare_results(case.image, case_res, case.mask,
                          title="known case: top-K keeps the hole and the most salient few")
wb.figures.save(fig, "05_known_case_confidence", readme=True)
plt.show()

# %% [markdown]
# $K$ against the quality of the ranking: with $\mathcal{P}^S$ the hole is ranked first and any $K \ge 1$ keeps it;
# without, intact patches out-rank it and a small $K$ throws the defect away.

# %%
ks = list(range(1, 11))
fig, ax = plt.subplots(figsize=(5.2, 3.3))
for use_sal, style in ((True, "-"), (False, "--")):
    f1 = []
    for k in ks:
        res = score(case.stages, case.prompts, case_on.with_(top_k=k, use_saliency=use_sal))
        f1.append(metrics.pixel_max_f1(res.anomaly_map[None], case.mask[None]))
    ax.plot(ks, f1, style, marker="o", ms=4, label=f"P^S {'on' if use_sal else 'off'}")
ax.axvline(case.prompts.top_k, color="#999999", lw=1, ls=":")
ax.set_xlabel("K (regions kept)")
ax.set_ylabel("max-F1-pixel (this image)")
ax.set_ylim(-0.02, 1.05)
ax.set_title("known case: K and the ranking it cuts (dotted: table K)", fontsize=9)
ax.legend(fontsize=8)
fig.tight_layout()
wb.figures.save(fig, "05_top_k_sweep", readme=True)
plt.show()

# %% [markdown]
# $K$ also trades one error for another: with two real defects in an image and $K = 1$ the second defect is missing
# from the map (its pixels become false negatives: max-F1-pixel suffers), while the image score — the map's maximum —
# hardly moves (image AUROC does not). A large $K$ on single-defect images adds false positives instead.
#
# ## 3. On the data set: the same images, $\mathcal{P}^C$ off and on, and a few values of $K$
#
# With the tiny random-weight detector (the default when the official weights are not here) the candidates are
# noise: these maps and tables show that the code runs, not what $\mathcal{P}^C$ does. Sections 1 and 2 are the
# lesson; this section is the same measurement on real candidates once `models="official"` is available.

# %%
wb.caution("the maps and tables of this section")
first = next(it for it in wb.items if it.sample.label == 1)
res = {"P^C off": wb.score(first, off), "P^C on": wb.score(first, on)}
fig = viz.compare_results(first.image, res, first.mask, title=f"{first.sample.key} — {wb.tag}")
wb.figures.save(fig, "05_confidence_on_off")
plt.show()

# %%
k_configs = [off] + [on.with_(top_k=k, variant=f"{on.variant} K={k}") for k in (1, 3, 10)] + [on]
runs = wb.runs(k_configs)
workbook.show({"max-F1-pixel (%), SAA+ with each category's table K": report.metric_table(runs, "pixel_max_f1"),
               "pixel AUROC (%)": report.metric_table(runs, "pixel_auroc")},
              head=report.header(wb.models.describe(), wb.models.meaningful, wb.data.name))

# %% [markdown]
# ## Takeaways
# 1. $\mathcal{P}^C$ keeps the $K$ most confident regions after rescoring; $K$ is a per-category prior on how many
#    regions an image's defects need (5 for most categories).
# 2. A top-$K$ cut is only as good as the ranking it cuts: after $\mathcal{P}^S$ the defect is ranked first; on raw
#    detector confidences a small $K$ throws it away.
# 3. $K$ trades missed second defects (pixel recall) against fused false regions (precision); the official
#    `argsort()[-k:]` differs from the paper's rule only on exact ties (and keeps every region at $K = 0$).

# %% [markdown]
# ## Exercises
#
# Each exercise ends with `workbook.check(...)`: it says whether your answer is right and, if not, gives a hint (never
# the answer). Replace the `...` and run the cell.
#
# ### 05.1 · Top-$K$ from scratch
# Write the paper's $\mathcal{P}^C$: `top_k(scores, k, candidates)` takes the rescored confidences `scores` (M,), $K$
# and `candidates` (M,) bool (the regions still alive after $\mathcal{P}^L$ and $\mathcal{P}^P$), and returns an (M,)
# bool mask of the regions kept: the $K$ highest scores among the candidates, a tie going to the lower index.
# `check` compares it with `saa_lib.prompts.confidence.top_k_keep` on random inputs (ties included).

# %% tags=["exercise"]
def top_k(scores, k, candidates):
    ...  # your code


workbook.check("05.1", top_k)

# %% [markdown]
# ### 05.2 · How far down is the hole without $\mathcal{P}^S$?
# In the known case, with $\mathcal{P}^S$ off (`case_on.with_(use_saliency=False)`), what is the smallest $K$ that
# keeps the hole? Predict it from the confidences in the fate table of section 2, then verify it by scoring.

# %% tags=["exercise"]
smallest_k = ...  # a whole number

workbook.check("05.2", smallest_k, case=case, config=case_on)

# %% [markdown]
# ### 05.3 · Ties: the paper's rule and the official `argsort()[-k:]`
# Scores `(0.3, 0.5, 0.5, 0.2, 0.5)`, $K = 2$. Which indices does the paper's rule keep, and which does the official
# code's `scores.argsort()[-2:]` keep? Work it out by hand first (numpy sorts so few values stably), then answer with
# the pair of sets `(official, paper)`.

# %% tags=["exercise"]
official, paper = ..., ...  # two sets of indices

workbook.check("05.3", (official, paper))
