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
# 1. Write $\mathcal{P}^C$ as a top-$K$ selection over the rescored confidences and read $K$ from the tables.
# 2. See how $\mathcal{P}^C$ interacts with $\mathcal{P}^S$: top-$K$ is only as good as the ranking it cuts.
# 3. Measure $\mathcal{P}^C$ on and off, and the effect of $K$.

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
# ## 1. The idea as a formula
#
# Of the regions $i$ still alive after $\mathcal{P}^L$ and $\mathcal{P}^P$, with rescored confidences $c'_i$
# ($\mathcal{P}^S$), keep
#
# $$\mathcal{R}^* = \operatorname*{top-K}_{i} \; c'_i ,$$
#
# ties broken by order. Only $\mathcal{R}^*$ enters the fusion $A(x) = \sum_{i \in \mathcal{R}^*} c'_i m_i(x) /
# (\delta + \sum_{i \in \mathcal{R}^*} m_i(x))$.

# %%
rows = ["| category | K |", "|---|---:|"]
rows += [f"| {pr.category} | {pr.top_k} |" for pr in {it.prompts.category: it.prompts for it in wb.items}.values()]
display(Markdown("\n".join(rows)))
on = wb.config(variant)
off = workbook.switched_off(on, "confidence")

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
display(Markdown(kc.fate_table(case, case_res)))
for lab, res in case_res.items():
    print(f"{lab}: max-F1-pixel {metrics.pixel_max_f1(res.anomaly_map[None], case.mask[None]):.3f}, "
          f"{sum(r.removed_by is None for r in res.regions)} regions fused")

# %% [markdown]
# A check that runs with the notebook (nbval compares this cell's output, which must stay empty):

# %%
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
# without, five intact patches out-rank it and a small $K$ throws the defect away.

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
# ## 3. On the data set: the same images, $\mathcal{P}^C$ off and on, and a few values of $K$

# %%
first = next(it for it in wb.items if it.sample.label == 1)
res = {"P^C off": wb.score(first, off), "P^C on": wb.score(first, on)}
fig = viz.compare_results(first.image, res, first.mask, title=f"{first.sample.key} — {wb.tag}")
wb.figures.save(fig, "05_confidence_on_off")
plt.show()

# %%
k_configs = [off] + [on.with_(top_k=k, variant=f"{on.variant} K={k}") for k in (1, 3, 10)] + [on]
runs = wb.runs(k_configs)
display(Markdown(report.header(wb.models.describe(), wb.models.meaningful, wb.data.name)
                 + "**max-F1-pixel (%)** (`SAA+` uses each category's table K)\n\n"
                 + report.metric_table(runs, "pixel_max_f1")
                 + "\n**pixel AUROC (%)**\n\n" + report.metric_table(runs, "pixel_auroc")))

# %% [markdown]
# ## Exercises
# 1. In the known case, with $\mathcal{P}^S$ off, what is the smallest $K$ that keeps the hole? Explain it from the
#    confidences in the fate table.
# 2. $\mathcal{P}^C$ acts *after* $\mathcal{P}^S$. What would change if the top-$K$ cut were taken on the raw
#    GroundingDINO confidences instead? Try it by scoring with `use_saliency=False` and comparing which regions survive.
# 3. An image with two real defects and $K = 1$: which metric suffers most, max-F1-pixel or image AUROC? Why?
#
# Answers: `notebooks/answers/05_answers.md`.
