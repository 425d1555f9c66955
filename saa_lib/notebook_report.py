"""The notebook series: what every notebook shares, and :func:`run_report`, which executes the series as a report.

``run_report`` runs ``notebooks/NN_*.ipynb`` with papermill (parameters passed through), writes the executed notebooks,
their HTML export and the figures they save into ``out/``. The helpers below are the few things every notebook needs
besides the library itself: where the data and the project are, the loud "not meaningful" banner, where figures go,
and a hand-built *known case* (candidates whose fate under each prompt is known in advance) that illustrates the
prompts with real numbers whatever the detector weights are.

Nothing here loads a model or touches the network at import time.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

#: the series, in reading order (file stems in ``notebooks/``)
NOTEBOOKS = (
    "00_setup_and_data",
    "01_baseline_saa",
    "02_language_prompts",
    "03_property_prompts",
    "04_saliency_prompts",
    "05_confidence_prompts",
    "06_saa_plus",
    "07_ablation_study",
    "08_results",
    "09_beyond_saa",
)
#: what figure titles say when the detector weights are random
NOT_MEANINGFUL = "random weights — not meaningful"
BANNER = "random weights: NOT meaningful — tests the machinery only"
#: committed figures stay below this size
MAX_FIGURE_BYTES = 450_000


# ----------------------------------------------------------------------------------------------------- locations
def project_root() -> Path | None:
    """The source tree holding this package (the folder with ``pyproject.toml`` and ``notebooks/``), if any."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def notebooks_dir() -> Path:
    """``<project>/notebooks``; raises ``FileNotFoundError`` for an installed copy without the source tree."""
    root = project_root()
    if root is None or not (root / "notebooks").is_dir():
        raise FileNotFoundError("the notebooks live in the source tree (notebooks/ beside saa_lib/); run from a clone "
                                "of the project, installed with `pip install -e .`")
    return root / "notebooks"


#: what a notebook or test says when the real samples are absent
SAMPLES_MISSING = "real samples not found: set SAA_SAMPLES=DIR or place them at ../shared/data/samples"


def shared_samples() -> Path | None:
    """The real MVTec AD / MTD samples with masks: ``$SAA_SAMPLES`` when set, else ``../shared/data/samples`` beside
    the project root; None when that folder does not exist."""
    env = os.environ.get("SAA_SAMPLES")
    if env:
        path = Path(env).expanduser()
    else:
        root = project_root()
        path = None if root is None else root.parent / "shared" / "data" / "samples"
    return path if path is not None and path.is_dir() else None


def real_datasets() -> dict:
    """``{category: dataset}`` of the real samples (:func:`shared_samples`: ``folder`` reader for ``mvtec_ad/``,
    ``mtd`` for ``mtd/``); ``{}`` with :data:`SAMPLES_MISSING` printed when they are not here."""
    from .data import open_dataset

    root = shared_samples()
    if root is None:
        print(SAMPLES_MISSING)
        return {}
    real = {}
    for name, sub in (("folder", "mvtec_ad"), ("mtd", "mtd")):
        if (root / sub).is_dir():
            rds = open_dataset(name, root / sub)
            real.update({cat: rds for cat in rds.categories})
    return real


def synthetic_root(seed: int = 0) -> Path:
    """Where the synthetic set of ``seed`` lives: ``<project>/data/synthetic[-seedN]``, else a temporary folder."""
    name = "synthetic" if seed == 0 else f"synthetic-seed{seed}"
    root = project_root()
    base = root / "data" if root is not None else Path(tempfile.gettempdir()) / "saa-workbook-data"
    return base / name


def open_data(dataset: str = "synthetic", root=None, categories=None, seed: int = 0):
    """:func:`saa_lib.data.open_dataset`, with the synthetic set generated (``seed``) under :func:`synthetic_root`
    when no ``root`` is given. ``categories``: list, comma-separated string or None (all)."""
    from .data import generate_synthetic, open_dataset

    if isinstance(categories, str):
        categories = [c.strip() for c in categories.split(",") if c.strip()]
    if dataset == "synthetic" and root is None:
        root = generate_synthetic(synthetic_root(seed), seed=seed)
    return open_dataset(dataset, root, categories=categories or None)


def pick(dataset, category: str, n: int) -> list:
    """At most ``n`` labelled test samples of ``category``, anomalous and normal alternating (anomalous first)."""
    from .evaluate import balanced_subset

    return balanced_subset([s for s in dataset.samples(category) if s.label in (0, 1)], n)


def side_by_side(dataset, category: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str] | None:
    """A two-object image for multi-instance saliency: a normal image of ``category`` (its first train image, else a
    normal test image) left of its first anomalous test image. Returns (image (H, 2W, 3), mask (H, 2W) bool,
    boxes (2, 4) xyxy, the anomalous sample's key), or None when the category lacks either image or their sizes
    differ."""
    test = dataset.samples(category)
    defect = next((s for s in test if s.label == 1), None)
    try:
        normal = dataset.samples(category, split="train")[0]
    except Exception:  # no train split in this data set
        normal = next((s for s in test if s.label == 0), None)
    if defect is None or normal is None:
        return None
    left, right = normal.load_image(), defect.load_image()
    if left.shape != right.shape:
        return None
    h, w = right.shape[:2]
    mask = np.concatenate([np.zeros((h, w), bool), defect.load_mask()], 1)
    boxes = np.array([[0, 0, w, h], [w, 0, 2 * w, h]], np.float32)
    return np.concatenate([left, right], 1), mask, boxes, defect.key


def paper_table(dataset, category: str) -> str:
    """The prompt table a category's numbers are compared with (``mvtec``, ``visa``, ...; ``""`` when none)."""
    from .prompts.language import find_table

    return getattr(dataset, "table", None) or find_table(category) or ""


# ------------------------------------------------------------------------------------------------- models, banner
def is_meaningful(models) -> bool:
    """``models``: a kind string (``"tiny"``, ``"official"``, ...) or a :class:`saa_lib.zoo.Models`."""
    if isinstance(models, str):
        return models not in ("tiny", "random")
    return bool(models.meaningful)


def banner(models) -> str:
    """Print which models make the outputs, loudly when they are random; return the tag for figure titles."""
    meaningful = is_meaningful(models)
    line = models if isinstance(models, str) else models.describe()
    if meaningful:
        print(f"Models: {line}")
        return "trained weights" if isinstance(models, str) else line.split(";")[0]
    bar = "!" * 78
    print(f"{bar}\n!!  {BANNER.upper()}\n!!  models: {line}\n!!  Every map, score and table made with these models "
          f"is noise.\n!!  Run with models='official' for the real report.\n{bar}")
    return NOT_MEANINGFUL


def choose_saliency_backbone(name: str = "auto") -> str:
    """The P^S backbone a notebook uses: ``name`` as given, except ``"auto"``: ``wide_resnet50_2`` (the paper's)
    when its weights file is in the cache, else ``tf_efficientnet_lite0`` (real ImageNet weights, installed with the
    package, no download)."""
    from .zoo import CHECKPOINTS

    if name != "auto":
        return name
    return "wide_resnet50_2" if CHECKPOINTS["wide_resnet50_2"].path.is_file() else "tf_efficientnet_lite0"


def saliency_line(saliency_backbone: str) -> str:
    """One line for the banner: which P^S backbone runs, and why when it is not the paper's."""
    from .zoo import CHECKPOINTS

    if saliency_backbone == "wide_resnet50_2":
        return "P^S backbone: wide_resnet50_2 (the paper's)"
    why = ("" if CHECKPOINTS["wide_resnet50_2"].path.is_file() else
           f"; the paper's WideResNet50 weights are not at {CHECKPOINTS['wide_resnet50_2'].path} "
           "(`saa download weights wide_resnet50_2` fetches them)")
    return f"P^S backbone: {saliency_backbone} (real ImageNet weights, installed offline){why}"


def few_images_note(items) -> str | None:
    """A warning when the images per category are too few for image-level metrics to mean anything (image AUROC
    from one anomalous and one normal image is 0, 50 or 100), else None."""
    from collections import Counter

    per = Counter((it.sample.category, it.sample.label) for it in items)
    cats = {c for c, _ in per}
    if not cats:
        return None
    worst = min(cats, key=lambda c: min(per[(c, 0)], per[(c, 1)]))
    normal, anomalous = per[(worst, 0)], per[(worst, 1)]
    if min(normal, anomalous) >= 10:
        return None
    return (f"note: only {anomalous} anomalous and {normal} normal image(s) in category {worst!r}: image-level "
            "metrics (image AUROC, image max-F1) take only a few values (0, 50 or 100 from one of each; undefined "
            "without both) and pixel metrics rest on few images; raise n_images (>= 20) before reading them as "
            "results")


def make_config(variant: str = "saa_plus", behaviour: str = "code", saliency_backbone: str = "wide_resnet50_2",
                **overrides):
    """:func:`saa_lib.config.variant_config` with the saliency backbone recorded in the config."""
    from .config import variant_config

    return variant_config(variant, behaviour, **overrides).with_(saliency={"backbone": saliency_backbone})


# ------------------------------------------------------------------------------------------------ stage outputs
@dataclass
class Item:
    """One image of the series: its sample, pixels (H, W, 3) uint8, ground truth (R, R) bool at the evaluation
    resolution R, its category's prompts and the stage outputs (computed once, scored many times)."""

    sample: object
    image: np.ndarray
    mask: np.ndarray
    prompts: object
    stages: object


def stage_items(pipe, dataset, n_images: int, config) -> list[Item]:
    """``pipe.stages`` once for each of ``n_images`` images per category of ``dataset`` (stage cache on hits).

    ``config`` should need every stage any later variant needs (``saa_plus``: every prompt entry and the saliency).
    """
    from tqdm.auto import tqdm

    chosen = [s for cat in dataset.categories for s in pick(dataset, cat, n_images)]
    return [sample_item(pipe, dataset, s, config)
            for s in tqdm(chosen, desc="stage outputs", unit="image", disable=len(chosen) < 2, leave=False)]


def sample_item(pipe, dataset, sample, config) -> Item:
    """The :class:`Item` of one ``sample`` of ``dataset``: its category's prompts and ``pipe.stages`` under
    ``config`` (from the stage cache when computed before)."""
    from .evaluate import eval_mask, prompts_for

    prompts = prompts_for(dataset, sample.category, config.extra_prompts, config.behaviour)
    image = sample.load_image()
    return Item(sample, image, eval_mask(sample, config.eval_resolution), prompts,
                pipe.stages(image, prompts, config))


class Workbench(NamedTuple):
    """What :func:`setup` gives a notebook: the loaded models, their tag for figure titles, a cached pipeline, the
    figure writer, the data set and the stage outputs of its first images."""

    models: object
    tag: str
    pipe: object
    figures: "Figures"
    data: object
    items: list


def setup(models: str = "tiny", device: str = "cpu", saliency_backbone: str = "wide_resnet50_2", seed: int = 0,
          out_dir=None, dataset: str = "synthetic", root=None, categories=None, n_images: int = 2,
          behaviour: str = "code") -> Workbench:
    """The set-up every notebook of the series starts with, from its parameters cell.

    Loads the models (never downloading: a missing checkpoint is an error that names the file and the command that
    fetches it; ``saliency_backbone="auto"``: see :func:`choose_saliency_backbone`), prints the banner, opens the data and computes (or loads from the stage cache) the stage outputs of
    ``n_images`` images per category under ``saa_plus`` (which needs every stage any variant needs).
    """
    import warnings

    from .cache import StageCache
    from .pipeline import SAAPipeline
    from .utils import resolve_device
    from .zoo import load_models

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*not meaningful.*")  # said once, loudly, by the banner
    saliency_backbone = choose_saliency_backbone(saliency_backbone)
    loaded = load_models(models, device=resolve_device(device), saliency_backbone=saliency_backbone, seed=seed,
                         download=False)
    tag = banner(loaded)
    print(saliency_line(saliency_backbone))
    pipe = SAAPipeline(loaded, StageCache())
    data = open_data(dataset, root, categories, seed)
    t0 = time.perf_counter()
    items = stage_items(pipe, data, n_images, make_config("saa_plus", behaviour, saliency_backbone))
    print(f"{len(items)} images of {data.categories}: stages in {time.perf_counter() - t0:.1f} s "
          f"(stage cache hits {pipe.cache.stats()['hits']})")
    note = few_images_note(items)
    if note:
        print(note)
    return Workbench(loaded, tag, pipe, Figures(out_dir), data, items)


def explorer_sources(pipe, dataset, items: list[Item], behaviour: str, saliency_backbone: str, case_backbone,
                     seed: int = 0, real: dict | None = None) -> dict:
    """The images of the explorer (:class:`saa_lib.explorer.Explorer`), ``{name: callable(behaviour) -> item}``:

    the hand-made known case first (``case_backbone`` computes its saliency), then the first image of each category
    of ``dataset`` (taken from ``items``, computed under ``behaviour``, when that is the behaviour asked), then the first anomalous image of each
    category of ``real`` (``{category: dataset}``, e.g. :func:`real_datasets`). Stage outputs are computed on first
    view only.
    """
    def case(b):
        return known_case(case_backbone, make_config("saa_plus", b, saliency_backbone), seed=seed)

    def from_items(first):
        def load(b):
            done = [it for it in items if it.sample is first and b == behaviour]
            return done[0] if done else sample_item(pipe, dataset, first, make_config("saa_plus", b, saliency_backbone))
        return load

    def from_real(rds, smp):
        return lambda b: sample_item(pipe, rds, smp, make_config("saa_plus", b, saliency_backbone))

    sources = {"known case (hand-made): washer/hole": case}
    for cat in dict.fromkeys(it.sample.category for it in items):
        first = next(it.sample for it in items if it.sample.category == cat)
        sources[f"{dataset.name}: {first.key}"] = from_items(first)
    for cat, rds in (real or {}).items():
        smp = next((s for s in rds.samples(cat) if s.label == 1), None)
        if smp is not None:
            sources[f"real: {smp.key}"] = from_real(rds, smp)
    return sources


def category_runs(pipe, items: list[Item], configs) -> list:
    """:func:`saa_lib.evaluate.run_category` on the images of ``items``, category by category (stages come from the
    cache). Returns the :class:`saa_lib.evaluate.CategoryRun` list, metrics included."""
    from .evaluate import run_category

    runs = []
    for cat in dict.fromkeys(it.sample.category for it in items):
        mine = [it for it in items if it.sample.category == cat]
        runs += run_category(pipe, [it.sample for it in mine], mine[0].prompts, list(configs), progress=False)
    return runs


PROMPTS = ("language", "property", "saliency", "confidence")


def switched_off(config, prompt: str):
    """``config`` with one hybrid prompt off, named like the ablation variants (``saa_plus`` ->
    ``saa_plus-no_<prompt>``). ``prompt``: language | property | saliency | confidence."""
    if prompt not in PROMPTS:
        raise ValueError(f"prompt must be one of {PROMPTS}, got {prompt!r}")
    return config.with_(**{f"use_{prompt}": False}, variant=f"{config.variant}-no_{prompt}")


# ------------------------------------------------------------------------------------------------------- figures
class Figures:
    """Where a notebook's figures go.

    ``out_dir=None``: nowhere (they are shown inline only). Otherwise ``<out_dir>/figures/<name>.png``. When that
    folder is the project's own ``figures/`` (``out_dir`` = the project root), only figures saved with
    ``readme=True`` are written: illustrations of the data and the method, and maps made with real weights, never
    outputs of random-weight models.
    """

    def __init__(self, out_dir=None, dpi: int = 100):
        self.dir = None if out_dir in (None, "") else Path(out_dir).expanduser().absolute() / "figures"
        root = project_root()
        self.readme_only = (self.dir is not None and root is not None
                            and self.dir.resolve() == (root / "figures").resolve())
        self.dpi = dpi
        self.saved: list[Path] = []

    def save(self, fig, name: str, readme: bool = False) -> Path | None:
        """Write ``fig`` as ``<name>.png`` (see the class doc for when; a file above ``MAX_FIGURE_BYTES`` is re-saved
        at 80 % of the resolution, then with a 256-colour palette); return the path or None."""
        if self.dir is None or (self.readme_only and not readme):
            return None
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{name}.png"
        fig.savefig(path, dpi=self.dpi, bbox_inches="tight")
        if path.stat().st_size > MAX_FIGURE_BYTES:  # photos and textures: first fewer pixels, then 256 colours
            fig.savefig(path, dpi=round(0.8 * self.dpi), bbox_inches="tight")
        if path.stat().st_size > MAX_FIGURE_BYTES:
            from PIL import Image

            with Image.open(path) as im:
                small = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
            small.save(path, optimize=True)
        if self.readme_only and path.stat().st_size > MAX_FIGURE_BYTES:
            print(f"warning: {path} is {path.stat().st_size // 1000} KB (> {MAX_FIGURE_BYTES // 1000} KB)")
        self.saved.append(path)
        return path


# ----------------------------------------------------------------------------------------------------- known case
@dataclass
class KnownCase:
    """A synthetic image with hand-built candidate regions whose fate under each prompt is known in advance.

    image: (H, W, 3) uint8; mask: (R, R) bool ground truth at the evaluation resolution R; stages: the
    :class:`saa_lib.pipeline.StageOutputs` a detector could have produced (the saliency map is real: computed with
    the given backbone); names: one description per candidate, in order.
    """

    image: np.ndarray
    mask: np.ndarray
    prompts: object
    stages: object
    names: list[str]
    kinds: list[str]


def _box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _disc(shape, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= r * r


def known_case(backbone, config, category: str = "washer", defect: str = "hole", seed: int = 0,
               size: int = 256, n_normal: int = 6) -> KnownCase:
    """Hand-made candidates for a ``category`` image with one ``defect`` (synthetic, ``seed``), built so that each
    prompt changes the outcome (an illustration of the mechanisms, not a model of a trained detector's output).

    The candidates (confidences chosen so that each prompt changes the outcome):

    - the true defect, found by the expert prompt, confidence 0.30;
    - the whole object, phrase = the object word (0.45): P^L removes it (the paper's class-agnostic prompts hold no
      object word; the phrase is then the prompt's first word and P^P removes it);
    - the whole object, phrase = the prompt's first word, e.g. "defect" (0.40): P^P removes it (larger than
      ``max_area_ratio`` of the object);
    - ``n_normal`` small patches of intact surface, phrase "stain" (0.36 down to 0.31): without P^S they out-rank
      the defect and P^C keeps them instead of it;
    - a background patch, phrase of the defect (0.29): off the object.

    ``backbone``: a :class:`saa_lib.zoo.SaliencyBackbone` (the saliency map is really computed); ``config``: the
    :class:`saa_lib.config.SAAConfig` whose behaviour, saliency settings and evaluation resolution are used.
    """
    from .data.synthetic import synthesize
    from .generator import Detections
    from .masks import resize_masks
    from .pipeline import StageOutputs
    from .prompts.language import category_prompts
    from .prompts.saliency import saliency_map

    s = synthesize(category, defect, seed=seed, index=0, size=size)
    prompts = category_prompts(category, "synthetic", behaviour=config.behaviour)
    agnostic = next(i for i, e in enumerate(prompts.entries) if e.kind == "agnostic")
    expert = next(i for i, e in enumerate(prompts.entries) if e.kind == "expert")
    entry_ids = (agnostic, expert)
    captions = [prompts.entries[i].caption for i in entry_ids]
    tokens = [c.replace(".", " . ").split() for c in captions]
    word = defect.replace("_", " ").split()[0]
    rng = np.random.default_rng(seed)
    free = s.allowed & ~_disc(s.mask.shape, *np.argwhere(s.mask).mean(0), 0.12 * size)
    radius = 0.035 * size
    patches = []
    for _ in range(n_normal):
        cand = np.argwhere(free)
        cy, cx = cand[rng.integers(len(cand))] + 0.5
        disc = _disc(s.mask.shape, cy, cx, radius) & s.support
        patches.append(disc)
        free &= ~_disc(s.mask.shape, cy, cx, 2.5 * radius)
    obj_word = prompts.object_word.split()[-1]
    named = obj_word if obj_word in tokens[0] else tokens[0][0]  # the paper's agnostic prompts hold no object word
    rows = [("true defect", s.mask, 1, word, 0.30),
            (f"whole object, phrase '{named}'", s.support, 0, named, 0.45),
            (f"whole object, phrase '{tokens[0][0]}'", s.support, 0, tokens[0][0], 0.40)]
    rows += [(f"intact surface {i + 1}", p, 1, "stain", 0.36 - 0.01 * i) for i, p in enumerate(patches)]
    background = ~s.support & ~_disc(s.mask.shape, size / 2, size / 2, 0.45 * size)
    if background.any():  # an object on a background (a texture has none)
        by, bx = np.argwhere(background)[rng.integers(background.sum())] + 0.5
        rows += [("background", _disc(s.mask.shape, by, bx, radius) & ~s.support, 1, word, 0.29)]
    token_conf = np.zeros((len(rows), max(len(t) for t in tokens)), np.float32)
    for r, (_, _, e, phrase, conf) in enumerate(rows):
        toks = tokens[e]
        hits = [j for j, t in enumerate(toks) if t == phrase] or [0]
        token_conf[r, :len(toks)] = 0.02
        token_conf[r, hits] = conf
    hw = s.mask.shape
    det = Detections(np.array([_box(m) for _, m, *_ in rows], np.float32),
                     np.array([c for *_, c in rows], np.float32), np.array([e for _, _, e, _, _ in rows], np.int32),
                     token_conf, captions, tokens, hw)
    obj_tokens = [prompts.object_word.split()]
    obj = Detections(np.array([_box(s.support)], np.float32), np.array([0.6], np.float32), np.zeros(1, np.int32),
                     np.full((1, len(obj_tokens[0])), 0.6, np.float32), [prompts.object_word], obj_tokens, hw)
    r = config.eval_resolution
    masks = resize_masks(np.stack([m for _, m, *_ in rows]), r)
    obj_masks = resize_masks(s.support[None], r)
    sal = saliency_map(s.image, backbone, config.saliency, (r, r))
    st = StageOutputs(hw, entry_ids, det, masks, obj, obj_masks, sal)
    return KnownCase(s.image, resize_masks(s.mask[None], r)[0], prompts, st, [name for name, *_ in rows],
                     [prompts.entries[entry_ids[e]].kind for _, _, e, _, _ in rows])


def candidate_regions(case: KnownCase, result) -> dict:
    """``{candidate index: Region}`` of an :class:`saa_lib.pipeline.ImageResult` on ``case``. A variant without P^L
    never asks the expert prompts: its regions are the class-agnostic candidates only (the others are missing)."""
    asked = [i for i, kind in enumerate(case.kinds) if len(result.regions) == len(case.names) or kind == "agnostic"]
    return dict(zip(asked, result.regions))


def fused_names(case: KnownCase, result) -> list[str]:
    """Names of the candidates of ``case`` that ``result`` fused into its anomaly map (in candidate order)."""
    return [case.names[i] for i, r in candidate_regions(case, result).items() if r.removed_by is None]


def fate_table(case: KnownCase, results: dict) -> str:
    """Markdown: one row per candidate of ``case``, one column per ``{label: ImageResult}`` saying what removed it
    (``kept`` for the regions fused into the map; ``not prompted`` for candidates of an expert prompt that a variant
    without P^L never asks for)."""
    labels = list(results)
    lines = ["| candidate | confidence | " + " | ".join(labels) + " |",
             "|---|---:|" + "---|" * len(labels)]
    per_candidate = {lab: candidate_regions(case, res) for lab, res in results.items()}
    for i, name in enumerate(case.names):
        cells = []
        for lab in labels:
            reg = per_candidate[lab].get(i)
            if reg is None:
                cells.append("not prompted")
            elif reg.removed_by is None:
                cells.append("**kept**")
            else:
                cells.append(f"removed: {reg.removed_by}")
        lines.append(f"| {name} | {case.stages.detections.scores[i]:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------- tables
def category_rows_table(runs, metric: str = "pixel_max_f1") -> str:
    """Markdown: one row per category, one column per variant, then the mean row (``metric`` in percent)."""
    from .report import VARIANT_LABELS

    variants = list(dict.fromkeys(r.variant for r in runs))
    cats = list(dict.fromkeys(r.category for r in runs))
    val = {(r.variant, r.category): 100 * r.metrics[metric] for r in runs}
    lines = ["| category | n | " + " | ".join(VARIANT_LABELS.get(v, v) for v in variants) + " |",
             "|---|---:|" + "---:|" * len(variants)]
    n = {r.category: len(r.labels) for r in runs}
    for c in cats:
        lines.append(f"| {c} | {n[c]} | " + " | ".join(f"{val.get((v, c), np.nan):.2f}" for v in variants) + " |")
    means = [np.nanmean([val.get((v, c), np.nan) for c in cats]) for v in variants]
    lines.append("| **mean** | | " + " | ".join(f"**{m:.2f}**" for m in means) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------- report
def _kernel_env(root: Path | None) -> None:
    """Settings the kernels inherit: inline figures (whatever ``MPLBACKEND`` the caller has), offline hubs, and the
    package importable."""
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures go into the notebooks
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    if root is not None:
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if str(root) not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([str(root), *paths])


def run_report(dataset: str = "synthetic", root=None, categories=None, models: str = "tiny",
               out="results/report", device: str = "auto", max_images: int | None = None,
               notebooks=None, kernel_name: str = "python3", progress: bool = True) -> int:
    """Execute the notebook series into ``out/``; return 0 when every notebook ran, 1 otherwise.

    Writes ``out/NN_name.ipynb`` (executed), ``out/NN_name.html`` (nbconvert), the figures the notebooks save into
    ``out/figures/`` and ``out/index.md`` (status and time of each notebook). ``categories``: list or comma-separated
    string; ``max_images``: images per category (the notebooks' ``n_images``). A notebook that fails is still exported
    (up to the failing cell) and named in the index; the others run on.
    """
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter
    from tqdm.auto import tqdm

    nb_dir = notebooks_dir()
    names = list(notebooks or NOTEBOOKS)
    unknown = [n for n in names if not (nb_dir / f"{n}.ipynb").is_file()]
    if unknown:
        raise FileNotFoundError(f"no notebook {unknown} in {nb_dir}; the series is {', '.join(NOTEBOOKS)}")
    if isinstance(categories, str):
        categories = [c.strip() for c in categories.split(",") if c.strip()] or None
    out = Path(out).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    params = {"dataset": dataset, "root": None if root is None else str(Path(root).expanduser().absolute()),
              "categories": list(categories) if categories else None, "models": models, "device": device,
              "out_dir": str(out)}
    if max_images:
        params["n_images"] = int(max_images)
    _kernel_env(project_root())
    exporter = HTMLExporter()
    status = []
    bar = tqdm(names, desc="notebooks", unit="nb", disable=not progress, file=sys.stderr)
    for name in bar:
        bar.set_postfix_str(name)
        dst = out / f"{name}.ipynb"
        t0 = time.perf_counter()
        error = ""
        try:
            pm.execute_notebook(str(nb_dir / f"{name}.ipynb"), str(dst), parameters=params, kernel_name=kernel_name,
                                cwd=str(nb_dir), progress_bar=False, log_output=False)
        except pm.PapermillExecutionError as err:
            error = f"{err.ename}: {err.evalue}".splitlines()[0]
        seconds = time.perf_counter() - t0
        if dst.exists():
            body, _ = exporter.from_notebook_node(nbformat.read(dst, as_version=4))
            (out / f"{name}.html").write_text(body, encoding="utf-8")
        status.append({"notebook": name, "seconds": round(seconds, 1), "error": error})
    figures = sorted(p.name for p in (out / "figures").glob("*.png")) if (out / "figures").is_dir() else []
    lines = ["# SAA+ workbook report", "", f"Dataset: {dataset}" + (f" ({params['root']})" if root else ""),
             f"Categories: {', '.join(categories) if categories else 'all'}", f"Models: {models}"
             + ("" if is_meaningful(models) else f" — **{BANNER}**"), "",
             "| notebook | seconds | status |", "|---|---:|---|"]
    for s in status:
        lines.append(f"| [{s['notebook']}]({s['notebook']}.html) | {s['seconds']} | "
                     f"{'failed: ' + s['error'] if s['error'] else 'ok'} |")
    lines += ["", f"Figures ({len(figures)}): see `figures/`.", ""]
    (out / "index.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "report.json").write_text(json.dumps({"parameters": params, "notebooks": status, "figures": figures},
                                                indent=1), encoding="utf-8")
    failed = [s for s in status if s["error"]]
    for s in failed:
        print(f"saa report: {s['notebook']} failed: {s['error']}", file=sys.stderr)
    print(f"wrote {len(status)} notebooks + HTML, {len(figures)} figures and {out / 'index.md'}")
    return 1 if failed else 0
