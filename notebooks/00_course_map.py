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
# # 00 · Course map: zero-shot anomaly segmentation with SAA+, in ten notebooks
#
# This series builds SAA+ (Segment Any Anomaly+, Cao et al. 2023) one idea at a time: a product the method has never
# seen, a camera image of it, and the question *which pixels are defective?* — answered with no training image of
# that product at all. This first notebook is the map: who the series is for, what to know first, the route through
# the notebooks and a two-week plan, the whole pipeline in one picture, the four settings of anomaly detection, the
# metrics every later notebook reports (with a worked example small enough to do by hand), and a glossary of the
# symbols.
#
# ## Learning goals
# 1. Know the route: what each notebook teaches, in which order, and how long it takes.
# 2. Place SAA+ among the settings of anomaly detection: one-class, few-shot, zero-shot, batch zero-shot.
# 3. Compute and read the metrics of anomaly segmentation — pixel max-F1, pixel and image AUROC, AUPRO — and explain
#    why a category's maps are normalised together.
# 4. Look up any symbol of the series (θ_box, γ, K, ...) and where it is introduced.

# %% tags=["parameters"]
out_dir = None  # figures go to <out_dir>/figures; None: shown only

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from saa_lib import metrics, workbook
from saa_lib.workbook import course

workbook.check_parameters(globals())
figures = workbook.Figures(out_dir)

# %% [markdown]
# ## 1. Who it is for, and what to know first
#
# **For** master's students who know PyTorch but not anomaly detection, for instructors who teach a two-week unit
# from it, and for anyone who wants to understand SAA+ well enough to change it.
#
# **Prerequisites**
# - Python and NumPy (boolean masks, broadcasting, `axis=`), PyTorch tensors.
# - What a pretrained convolutional backbone gives: feature maps at strides 4, 8, 16 with one vector per location;
#   cosine similarity between such vectors.
# - Precision, recall and the ROC curve at the level of an introductory machine-learning course (section 6 recaps them).
# - *Not* needed: anomaly detection, or how GroundingDINO and SAM work inside. They are used as black boxes: text →
#   boxes, box → mask.
#
# **Running the series.** `make lab` installs everything and opens JupyterLab on `notebooks/`; every notebook runs on a
# CPU in minutes. The official weights (GroundingDINO, SAM and the WideResNet50 backbone, about 3.4 GB) are not
# installed: `saa download weights` fetches them into the weights folder (`$SAA_HOME/weights`). Without them the
# notebooks run the same code on small random-weight stand-ins, and every figure made with those says *not
# meaningful*. Three things are real either way: the hand-built *known case* of notebooks 01–07 (candidate regions
# made so that each prompt changes the outcome), the saliency maps of notebooks 04, 08 and 09 (real ImageNet features
# of `tf_efficientnet_lite0`), and the metrics primer below.
#
# **Exercises answer back.** Each exercise ends with a line such as `workbook.check("NN.k", answer, case=case)`, which
# answers ✓, or ✗ with a hint; it never shows the answer. *From scratch* exercises (cells tagged `exercise`) hand in a
# function that you write in a few lines — the fusion, a prompt's filter, the saliency — and `check` compares it with
# `saa_lib` on random inputs. Instructors find worked answers, as code that runs, in
# `notebooks/answers/NN_answers.py`.

# %% [markdown]
# ## 2. The route
#
# | notebook | time | after it you can … |
# |---|---|---|
# | `00_course_map` (this one) | 30–45 min | place SAA+ among the settings; compute max-F1, AUROC and AUPRO by hand |
# | `00_setup_and_data` | 45 min | read a data set as `Sample` records; find the weights; say what a category's defect sizes mean for its metrics |
# | `01_baseline_saa` | 60 min | follow an image through GroundingDINO → SAM → fusion; write the fusion; see why class-agnostic prompts fail |
# | `02_language_prompts` | 45–60 min | write $\mathcal{P}^L$: expert prompts, a box's phrase, dropping boxes named after the object |
# | `03_property_prompts` | 45–60 min | write $\mathcal{P}^P$ in the paper's form (masks) and the code's (boxes); choose $\theta_{area}$ |
# | `04_saliency_prompts` | 90 min | compute a saliency map from deep features; write the rescoring; pick $\gamma$ |
# | `05_confidence_prompts` | 45–60 min | write $\mathcal{P}^C$ (top-$K$) and see that it is only as good as the ranking it cuts |
# | `06_saa_plus` | 90 min | put the four prompts together; tell the paper's behaviour from the official code's; explore the settings |
# | `07_ablation_study` | 60 min | run the ablation (the paper's Table 2) from one cached pass and explain why prompts interact |
# | `08_results` | 60 min | produce Table 1, qualitative grids and PR curves, and tell a real result from a test of the machinery |
# | `09_beyond_saa` | 90 min | compare each pixel with other images (batch zero-shot, few-shot) and measure where it helps |
# | capstone (end of `09_beyond_saa`) | 3–4 h | bring SAA+ to a new category: prompts, property table, $\theta_{area}$ and $K$ from the defect statistics, max-F1 against $\mathcal{P}^S$ alone |
#
# Notebooks 02–05 each add one prompt to the baseline of 01, and 01–05 share one structure: the idea as a formula (the
# paper's form first; where the official code differs, a side box says how and why it matters), the *known case*,
# then the data set, three takeaways and the exercises.

# %% [markdown]
# ## 3. A two-week plan
#
# Ten sessions of about two hours, with work at home between them.
#
# | day | in class | at home |
# |---|---|---|
# | 1 | this course map: the settings, the metrics by hand (00.1) | `00_setup_and_data`; exercises 00.2–00.4 |
# | 2 | `01_baseline_saa`: the stages, the fusion, where the baseline fails | 01 exercises (the fusion from scratch) |
# | 3 | `02_language_prompts` and `03_property_prompts` | 02 and 03 exercises |
# | 4 | `04_saliency_prompts`: real saliency maps on real defects | 04 exercises (the saliency from scratch) |
# | 5 | `05_confidence_prompts`; a short quiz on the glossary and the pipeline table | 05 exercises |
# | 6 | `06_saa_plus`: the whole method, code vs paper, the explorer | 06 exercises |
# | 7 | `07_ablation_study` | 07 exercises; choose a capstone category |
# | 8 | `08_results`: reading Table 1 and the PR curves; real results and noise | 08 exercises; capstone: prompts and property table |
# | 9 | `09_beyond_saa`: batch zero-shot and few-shot saliency | capstone: $\theta_{area}$ and $K$ from the defect statistics, the run |
# | 10 | capstone presentations against the rubric (end of 09) | — |

# %% [markdown]
# ## 4. The pipeline in one picture
#
# SAA+ splits into **expensive stages** — three networks, run once per image and cached — and **cheap scoring**: a
# box threshold, the four hybrid prompts and the fusion, a free function of the stage outputs that re-runs in
# milliseconds for every setting. The number in each box is the notebook that teaches it.

# %%
fig = course.pipeline_diagram()
figures.save(fig, "00_course_pipeline", readme=True)
plt.show()

# %% [markdown]
# | step | what | removes / changes | notebook |
# |---|---|---|---|
# | generator | GroundingDINO, one forward per prompt ($\mathcal{P}^L$ adds the expert prompts) | proposes boxes $b_i$ with confidences $c_i$ | 01, 02 |
# | threshold | $c_i > \theta_{box}$ | weak boxes | 01 |
# | $\mathcal{P}^L$ | the phrase (tokens with confidence $> \theta_{text}$) names the object | boxes of the object itself | 02 |
# | refiner | SAM, box → mask $m_i$ | — | 01 |
# | $\mathcal{P}^P$ | on the object (IoU with the object mask $\ge \theta_{IoU}$) and area $\le \theta_{area} \times$ the object's | regions too large or off the object | 03 |
# | $\mathcal{P}^S$ | $c'_i = c_i \exp(\gamma\, \overline{s}(m_i))$, $\overline{s}$ the mean saliency in the mask | re-ranks | 04 |
# | $\mathcal{P}^C$ | the top $K$ of $c'_i$ | all but the $K$ best | 05 |
# | fusion | $A(x) = \sum_i c'_i m_i(x) / (\delta + \sum_i m_i(x))$; image score $\max_x A(x)$ | — | 01 |
#
# > **Official code:** $\mathcal{P}^P$ tests box areas only (no IoU), $s(x)$ uses the *farthest* neighbours, and
# > $\gamma = 3$, $\delta = 1$ instead of the paper's $1$ and $0$. Notebooks 01–04 show each difference where it
# > arises; `docs/behaviours.md` lists them all.

# %% [markdown]
# ## 5. Four settings of anomaly detection
#
# Anomaly detection methods differ first in **what they may see of the product** before they judge a test image.
# Results are only comparable within one setting.
#
# | setting | what the method may use of the category | example | in this series |
# |---|---|---|---|
# | one-class (full-shot) | many normal training images, no defect | **PatchCore** (Roth et al., CVPR 2022): a memory bank of normal patch features from a pretrained backbone; a patch's anomaly score is its distance to the nearest normal patch | — (the reference the others are measured against) |
# | few-shot | $k$ normal images ($k$ = 1, 2, 4), no defect | PatchCore's memory bank built from $k$ images | `09_beyond_saa`: few-shot $\mathcal{P}^S$ |
# | zero-shot | no image of the category at all: its name and a few words | WinCLIP (Jeong et al., CVPR 2023), **SAA+** | 01–08 |
# | batch zero-shot | no label and no normal image, but the whole unlabelled test set of the category at once | **MuSc** (Li et al., ICLR 2024): the test images score each other ("mutual scoring") | `09_beyond_saa`: batch $\mathcal{P}^S$ |
#
# **Transductive or inductive.** SAA+ judges each image on its own (*inductive*): its map does not change when other
# test images are added. A batch method is *transductive*: it uses the test set it is evaluated on, so an image's map
# depends on which other images are in the batch — and a defect type that many test images share looks normal to it.
# Batch zero-shot still uses no label and no normal set, which is why it counts as zero-shot.

# %% [markdown]
# ## 6. The metrics
#
# A method returns one **anomaly map** per image: a score per pixel, compared with the ground-truth **mask** at the
# evaluation resolution $R \times R$ ($R = 400$ here). Every metric works on the maps of one category.
#
# **Category-wide min-max normalisation.** First, all maps of a category are scaled *together*,
# $\hat A = (A - \min) / (\max - \min)$ with one minimum and one maximum over every pixel of every image of the
# category. A threshold then means the same thing on every image, and a normal image whose map is uniformly low stays
# low. (Exercise 00.1 shows what goes wrong when each map is scaled on its own.)
#
# - **Pixel max-F1** (the paper's headline, "max-F1-pixel"). Pool every pixel of the category. A threshold $t$ flags
#   the pixels with $\hat A \ge t$; precision $\mathrm{Pr}$ = flagged defect pixels / flagged pixels, recall
#   $\mathrm{Re}$ = flagged defect pixels / defect pixels, $F_1 = 2\,\mathrm{Pr}\,\mathrm{Re} / (\mathrm{Pr} +
#   \mathrm{Re})$. Max-F1 is the best $F_1$ over every threshold. It punishes false positives: when defects are
#   small, a false alarm as large as the defect halves the precision.
# - **Pixel AUROC.** The probability that a random defect pixel scores higher than a random normal pixel (ties count
#   one half): the area under the ROC curve (true-positive rate against false-positive rate). It needs no threshold but
#   forgives a lot: normal pixels are so many that a map can rank thousands of them above the defect and still score
#   above 0.99.
# - **Image AUROC.** An image's score is the maximum of its normalised map; image AUROC is the probability that a
#   random anomalous image scores higher than a random normal image. It sees one pixel per image.
# - **AUPRO** (up to a false-positive rate of 0.3). For each connected defect region (8-connected pixels), the *PRO*
#   is the share of its pixels flagged at a threshold; PRO($t$) is its mean over all regions of the category and
#   FPR($t$) the share of normal pixels flagged. AUPRO is the area under PRO against FPR from 0 to 0.3, divided by
#   0.3. Each defect region counts the same however small it is — unlike the pixel metrics, where large defects
#   dominate.
#
# A category small enough to compute all of it by hand: three images of $8 \times 8$ pixels, two with a defect
# (outlined in magenta) and one normal, scores written in each pixel.

# %%
ex = course.metrics_example()
fig = course.metrics_figure(ex)
figures.save(fig, "00_course_metrics", readme=True)
plt.show()

# %% [markdown]
# The raw scores run from 0.1 to 0.9, so $\hat A = (A - 0.1) / 0.8$: 0.6 becomes 0.625, 0.3 becomes 0.25. Each row
# below is one threshold, at each distinct normalised score, with what it flags over the 192 pixels (16 of them
# defective):

# %%
workbook.show(course.threshold_table(ex.maps, ex.masks))
print(f"pixel max-F1 {metrics.pixel_max_f1(ex.maps, ex.masks):.3f}, "
      f"pixel AUROC {metrics.pixel_auroc(ex.maps, ex.masks):.3f}, "
      f"image AUROC {metrics.image_auroc(ex.maps, ex.labels):.3f}, "
      f"AUPRO (FPR <= 0.3) {metrics.aupro(ex.maps, ex.masks):.3f}")

# %% [markdown]
# Read the four numbers together:
#
# - **max-F1 0.857** at $t = 0.625$ (raw 0.6): all 12 pixels scored 0.6 or more are defects, but the large defect's
#   lower row (0.3) is missed, and flagging it would also flag the 4 normal pixels below it and the normal pixels
#   at 0.4 and 0.5.
# - **pixel AUROC 0.993**: almost perfect, although no threshold finds every defect pixel without false alarms — only
#   7 of 176 normal pixels score as high as the lowest defect pixels.
# - **image AUROC 1.000**: the normal image's highest score (0.4) is below both anomalous images' (0.9 and 0.6).
# - **AUPRO 0.984**: at the thresholds that flag no normal pixel, the small defect is found entirely and the large one
#   for two thirds; both are complete once 7 of the 176 normal pixels (4 %) are flagged.
#
# The same map can look excellent by one metric and mediocre by another; the paper leads with max-F1 because it is
# the hardest to flatter.

# %% [markdown]
# ## 7. Glossary of symbols
#
# Where each symbol is introduced, and the setting that holds it in `saa_lib` (defaults: paper / official code;
# *table*: the category's value from the prompt tables, `saa_lib/resources/saa_tables.yaml`).
#
# | symbol | what it is | in `saa_lib` | default paper / code | introduced in |
# |---|---|---|---|---|
# | $b_i$, $c_i$ | box $i$ from GroundingDINO and its confidence (its highest token confidence) | `Detections.boxes`, `Detections.scores` | — | `01_baseline_saa` §2 |
# | $m_i$ | the SAM mask of box $i$ | `StageOutputs.masks` | — | `01_baseline_saa` §2 |
# | $A(x)$ | the anomaly map; the image score is $\max_x A(x)$ | `ImageResult.anomaly_map`, `ImageResult.image_score` | — | `01_baseline_saa` §2 |
# | $\theta_{box}$ | box threshold: a box is kept when $c_i > \theta_{box}$ | `SAAConfig.box_threshold` | 0.1 / 0.1 | `01_baseline_saa` §2 |
# | $\delta$ | fusion offset in the denominator of $A(x)$ | `SAAConfig.fusion_offset` | 0 / 1 | `01_baseline_saa` §2 |
# | $\sigma_i(t)$ | the confidence of caption token $t$ for box $i$ | `Detections.token_conf` | — | `02_language_prompts` §2 |
# | $\theta_{text}$ | text threshold: a box's phrase is its tokens with $\sigma_i(t) > \theta_{text}$ | `SAAConfig.text_threshold` | 0.1 / 0.1 | `02_language_prompts` §2 |
# | $p_i$ | the phrase of box $i$ | `Detections.phrases` | — | `02_language_prompts` §2 |
# | $\theta_{IoU}$ | the least IoU of a region's mask with the object's mask (paper form only) | `SAAConfig.min_iou` | 0.001 / — | `03_property_prompts` §1 |
# | $\theta_{area}$ | the largest area of a region, as a fraction of the object's | `SAAConfig.max_area_ratio` | table / table | `03_property_prompts` §1 |
# | count | objects per image of the category | `SAAConfig.object_count` | table / table | `03_property_prompts` §1 |
# | $f(x)$ | the unit feature vector of pixel $x$ (backbone maps at strides 4, 8, 16 on the stride-4 grid) | `prompts.saliency.pixel_features` | — | `04_saliency_prompts` §1 |
# | $s(x)$ | saliency: mean cosine distance to the $N$ nearest pixels (code: half of it, to the $N$ farthest) | `prompts.saliency.saliency_map` | — | `04_saliency_prompts` §1 |
# | $N$ | neighbours of a pixel in $s(x)$ (in `09_beyond_saa`, $N$ is the number of test images of a batch) | `SaliencyConfig.neighbours` | 400 / 400 | `04_saliency_prompts` §1 |
# | $\gamma$ | gain of the saliency rescoring | `SAAConfig.rescore_gain` | 1 / 3 | `04_saliency_prompts` §1 |
# | $c'_i$ | rescored confidence $c_i \exp(\gamma\, \overline{s}(m_i))$, $\overline{s}(m_i)$ the mean saliency in $m_i$ | `Region.score`, `Region.saliency` | — | `04_saliency_prompts` §1 |
# | $K$ | regions $\mathcal{P}^C$ keeps (top-$K$ of $c'_i$) | `SAAConfig.top_k` | table / table | `05_confidence_prompts` §1 |
# | $R$ | the resolution maps and masks are compared at ($R \times R$) | `SAAConfig.eval_resolution` | 400 / 400 | `00_course_map` §6 |
# | $t$ | a threshold on the category-normalised map | — | — | `00_course_map` §6 |
# | $\rho$ | batch $\mathcal{P}^S$: share of the other images whose distances are averaged | `PeerConfig.batch_fraction` | 0.1 | `09_beyond_saa` §1 |
# | $k$ | few-shot $\mathcal{P}^S$: normal reference images per category | `PeerConfig.shots` | 1 | `09_beyond_saa` §1 |
# | $\sigma$ | Gaussian smoothing of the batch / few-shot map, in pixels of the 400 px map | `PeerConfig.smooth_sigma` | 8 | `09_beyond_saa` §1 |
# | $w$ | share of the backbone's stride-32 level in the batch / few-shot map | `PeerConfig.deep_weight` | 0.3 with `tf_efficientnet_lite0`, 0 with WideResNet50 | `09_beyond_saa` §1 |
#
# $\sigma$ names two things (a token's confidence in 02, the smoothing in 09), as does $N$; the notebook says which.

# %% [markdown]
# ## Takeaways
# 1. SAA+ is two foundation models that propose candidate regions and four cheap hybrid prompts that filter and
#    re-rank them; the networks run once per image, everything after them in milliseconds.
# 2. Zero-shot means no image of the category; few-shot (normal images) and batch zero-shot (the unlabelled test set,
#    transductive) use more, and results compare only within one setting.
# 3. Read every metric with its blind spot: max-F1 punishes false alarms on small defects, pixel AUROC forgives them,
#    image AUROC sees one pixel per image, AUPRO weighs every defect region alike — and all of them normalise a
#    category's maps together.

# %% [markdown]
# ## Exercises
# Each exercise ends with `workbook.check(...)`: ✓, or ✗ with a hint. Replace the `...` with your answer.
# 1. **00.1** Scale each map on its own instead of category-wide: what happens to max-F1 and image AUROC?
# 2. **00.2** From scratch: pixel max-F1 in a few lines.

# %% [markdown]
# ### 00.1 · Normalising each map on its own
# Scale each of the three maps `ex.maps` by its *own* minimum and maximum (so each map runs from 0 to 1), stack them,
# and compute `metrics.pixel_max_f1(maps, ex.masks)` and `metrics.image_auroc(maps, ex.labels)` on the result. Hand in
# the pair `(max_f1, image_auroc)`. Before you run it: which image's highest score changes most, and what does that do
# to the image AUROC?

# %% tags=["exercise"]
answer = ...  # (pixel max-F1, image AUROC) with each map scaled on its own

workbook.check("00.1", answer)

# %% [markdown]
# ### 00.2 · From scratch: max-F1
# Write `max_f1(scores, labels)`: `scores` (P,) float and `labels` (P,) bool, one entry per pixel of a whole category.
# Return the largest $F_1$ over the thresholds "flag every pixel whose score is $\ge t$", $t$ running over the distinct
# scores. `check` compares it with `saa_lib.metrics.pixel_max_f1` on random scores, with and without ties.

# %% tags=["exercise"]
def max_f1(scores, labels):
    ...  # your code


workbook.check("00.2", max_f1)
