"""Orchestration: run variants over a dataset's categories, collect maps, compute metrics, write tables.

Torch computation lives in the stage modules; this module only loops, with progress bars, and writes files. A category
is evaluated in two steps: :func:`score_images` (the models, image by image: the part a scorer may run elsewhere, see
:mod:`saa_lib.engine.distributed`) and :func:`collect_runs` (maps stacked in the images' order, metrics), which every scorer
shares.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import frames
from .. import metrics as M
from ..config import SAAConfig
from ..data.datasets import FLAT_MASK_FORMS
from ..masks import resize_masks
from ..generator import normalize_caption
from ..peers.saliency import PeerSaliency
from ..pipeline import SAAPipeline, check_image
from ..prompts.language import CategoryPrompts, category_prompts, check_caption_lengths
from ..records import ImageResult
from ..safeio import save_npy, write_text


@dataclass
class CategoryRun:
    """Everything one variant produced on one category. maps / masks: (N, R, R); labels: (N,) int."""

    variant: str
    category: str
    maps: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    names: list[str]
    results: list[ImageResult] = field(repr=False, default_factory=list)
    metrics: dict = field(default_factory=dict)
    #: ``{metric: reason}`` of the metrics that are undefined (nan) for this ground truth
    undefined: dict = field(default_factory=dict)

    @classmethod
    def measured(cls, variant: str, category: str, maps, masks, labels, names, results=(),
                 region_metrics: bool = True) -> "CategoryRun":
        """The run with its :attr:`metrics` computed and the reason of each undefined one in :attr:`undefined`."""
        run = cls(variant, category, maps, masks, labels, names, list(results))
        run.metrics = M.category_metrics(maps, masks, labels, region_metrics=region_metrics)
        run.undefined = {k: why for k, why in M.undefined_reasons(masks, labels, region_metrics=region_metrics).items()
                         if not np.isfinite(run.metrics[k])}
        return run


def prompts_for(dataset, category: str, extra=(), behaviour: str = "code", object_word: str | None = None,
                configs: list[SAAConfig] = ()) -> CategoryPrompts:
    """Prompts of a dataset's category: its own table first, then every other table, then ``extra``; ``object_word``
    (None: the table's, else the category) names the object. When every one of ``configs`` is ``saliency_only`` no
    detector reads the prompts, and a category the tables lack needs no ``extra``."""
    return category_prompts(category, getattr(dataset, "table", None), extra=extra, behaviour=behaviour,
                            object_word=object_word, for_detector=not configs or not all(c.saliency_only
                                                                                         for c in configs))


@dataclass
class ScoredImage:
    """One image scored by every variant: ``results[v]`` belongs to ``configs[v]``; ``mask``: (R, R) bool ground truth
    at the evaluation resolution."""

    results: list[ImageResult]
    mask: np.ndarray


def labelled(samples, category: str = "") -> list:
    """The samples with a label (0 normal, 1 anomalous), in order; an error if there is none."""
    samples = [s for s in samples if s.label in (0, 1)]
    if not samples:
        raise ValueError(f"category {category!r}: no labelled test images (a flat folder's images are labelled by "
                         f"masks, {FLAT_MASK_FORMS}: a defect pixel marks a defect; an all-zero mask, or no mask once "
                         "other images have one, a normal image). Add masks, or score unlabelled images with saa "
                         "predict.")
    return samples


def eval_mask(sample, resolution: int) -> np.ndarray:
    """The ground-truth mask of ``sample`` at the evaluation resolution, (R, R) bool (nearest neighbour)."""
    return resize_masks(sample.load_mask()[None], resolution)[0]


class _Decoded(torch.utils.data.Dataset):
    """Item i: (i, image (H, W, 3) uint8 tensor, mask (R, R) bool tensor) of ``samples[i]``."""

    def __init__(self, samples: list, resolution: int):
        self.samples, self.resolution = samples, resolution

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        return i, torch.from_numpy(s.load_image()), torch.from_numpy(eval_mask(s, self.resolution))


def iter_images(samples: list, resolution: int, num_workers: int = 0, pin_memory: bool = False):
    """Yield ``(image, mask)`` of each sample in order: image (H, W, 3) uint8, mask (R, R) bool.

    ``num_workers == 0``: read in this process, one after the other. ``num_workers > 0``: a torch ``DataLoader`` with
    that many worker processes decodes the next images while the current one is scored; with ``pin_memory`` they
    arrive in page-locked memory (fast, asynchronous host-to-GPU copies). The pixels are the same either way.
    """
    if num_workers <= 0:
        for s in samples:
            yield s.load_image(), eval_mask(s, resolution)
        return
    loader = torch.utils.data.DataLoader(_Decoded(list(samples), resolution), batch_size=None, shuffle=False,
                                         num_workers=num_workers, pin_memory=pin_memory)
    for i, (j, image, mask) in enumerate(loader):
        assert i == j, "the loader must keep the samples' order"
        yield image.numpy(), mask.numpy()


def default_num_workers(device) -> int:
    """Image-loading worker processes when none are asked for: 2 on CUDA (decoding overlaps GPU work), 0 on CPU
    (the models already use every core)."""
    return 2 if torch.device(device).type == "cuda" else 0


def loader_settings(pipeline: SAAPipeline, num_workers: int | None, pin_memory: bool | None) -> tuple[int, bool]:
    """``(num_workers, pin_memory)`` with the defaults filled in from the pipeline's device (see :func:`score_images`)."""
    device = torch.device(getattr(pipeline.models, "device", None) or "cpu")
    workers = default_num_workers(device) if num_workers is None else int(num_workers)
    return workers, (device.type == "cuda" if pin_memory is None else bool(pin_memory))


def check_prompt_lengths(pipeline: SAAPipeline, prompts: CategoryPrompts, configs: list[SAAConfig]) -> None:
    """Raise :class:`~saa_lib.prompts.language.PromptTooLongError` if a caption the variants send to GroundingDINO is
    longer than its text encoder reads (``max_text_len``, 256 tokens); nothing to check without a detector."""
    detecting = [c for c in configs if not c.saliency_only]
    gdino = getattr(pipeline.models, "gdino", None)
    if not detecting or gdino is None:
        return
    tokenizer, limit = gdino.tokenizer, int(getattr(gdino, "max_text_len", 256))

    def count(caption: str) -> int:
        return len(tokenizer(caption)["input_ids"])

    ids = sorted({i for c in detecting for i in prompts.select(c.use_language)})
    captions = [normalize_caption(prompts.entries[i].caption) for i in ids]
    check_caption_lengths(captions + [normalize_caption(prompts.object_word)], count, limit)
    if any(c.single_caption for c in detecting) and len(captions) > 1:
        check_caption_lengths([" ".join(captions)], count, limit, joined=True)


def peer_samples(samples: list, references: list, configs: list[SAAConfig]) -> tuple[list, list]:
    """(batch, references) samples the batch / few-shot saliency of ``configs`` compares with: every sample of the
    category for ``batch``, the first max-``shots`` normal references for ``fewshot`` (empty lists when unused)."""
    peer_configs = [c.saliency.peers for c in configs if c.saliency.peers is not None]
    shots = max([p.shots for p in peer_configs if p.source == "fewshot"], default=0)
    batch = list(samples) if any(p.source == "batch" for p in peer_configs) else []
    return batch, list(references or [])[:shots]


def saliency_peers(pipeline: SAAPipeline, samples: list, references: list, configs: list[SAAConfig],
                   category: str) -> PeerSaliency | None:
    """The :class:`~saa_lib.peers.PeerSaliency` of one category for ``configs`` (its images: :func:`peer_samples`),
    sharing the pipeline's models, cache and precision; None when no config compares with other images."""
    if all(c.saliency.peers is None for c in configs):
        return None
    batch, refs = peer_samples(samples, references, configs)
    return PeerSaliency(pipeline.models, pipeline.cache, category=category, batch=[s.load_image for s in batch],
                        references=[s.load_image for s in refs], autocast=pipeline.autocast)


def score_images(pipeline: SAAPipeline, samples: list, prompts: CategoryPrompts, configs: list[SAAConfig],
                 progress: bool = True, desc: str = "", num_workers: int | None = 0,
                 pin_memory: bool | None = None, references: list | None = None) -> list[ScoredImage]:
    """Every variant of ``configs`` on every sample, in order, from one pass of the expensive stages per image.

    ``num_workers``: image-loading processes (:func:`iter_images`; None: :func:`default_num_workers`);
    ``pin_memory`` (None: when the models are on CUDA) only matters with ``num_workers > 0``. ``references``: normal
    samples (train/good) for few-shot saliency; batch saliency compares each sample with the others of ``samples``.
    Prompts too long for the text encoder and images too small for the models raise ``ValueError`` naming the prompt
    / the file.
    """
    check_prompt_lengths(pipeline, prompts, configs)
    peers = saliency_peers(pipeline, samples, references, configs, prompts.category)
    num_workers, pin = loader_settings(pipeline, num_workers, pin_memory)
    images = iter_images(samples, configs[0].eval_resolution, num_workers, pin)
    out = []
    for i, (image, mask) in enumerate(tqdm(images, total=len(samples), desc=desc or prompts.category,
                                           disable=not progress, leave=False, unit="img")):
        check_image(image, f"{samples[i].image_path} (image {i + 1} of {len(samples)} of category "
                           f"{prompts.category!r})")
        out.append(ScoredImage(pipeline.run_variants(image, prompts, configs, peers), mask))
    return out


def collect_runs(samples: list, scored: list[ScoredImage], category: str, configs: list[SAAConfig],
                 region_metrics: bool = False) -> list[CategoryRun]:
    """One :class:`CategoryRun` per variant from ``scored[i]`` of ``samples[i]``: maps stacked in this order, then the
    metrics. Every scorer (this process, a Ray cluster) ends here."""
    if len(scored) != len(samples):
        raise ValueError(f"category {category!r}: {len(scored)} scored images for {len(samples)} samples")
    masks_a = np.stack([x.mask for x in scored])
    labels_a = np.array([int(s.label) for s in samples])
    names = [str(s.image_path) for s in samples]
    runs = []
    for v, cfg in enumerate(configs):
        results = [x.results[v] for x in scored]
        maps = np.stack([x.anomaly_map for x in results]).astype(np.float32)
        runs.append(CategoryRun.measured(cfg.variant, category, maps, masks_a, labels_a, names, results,
                                         region_metrics=region_metrics))
    return runs


class LocalScorer:
    """Scores images in this process with ``pipeline`` (the default scorer of :func:`evaluate`).

    A scorer has ``score_images(samples, prompts, configs, progress, desc) -> list[ScoredImage]``, ``describe()``,
    ``meaningful``, ``cache_stats()``, ``execution()`` and ``close()``; :class:`saa_lib.engine.distributed.RayScorer` is the
    other one.
    """

    def __init__(self, pipeline: SAAPipeline, num_workers: int | None = 0, pin_memory: bool | None = None):
        self.pipeline = pipeline
        self.num_workers, self.pin_memory = loader_settings(pipeline, num_workers, pin_memory)

    def score_images(self, samples, prompts, configs, progress: bool = True, desc: str = "",
                     references: list | None = None) -> list[ScoredImage]:
        return score_images(self.pipeline, samples, prompts, configs, progress, desc, self.num_workers,
                            self.pin_memory, references)

    def describe(self) -> str:
        return self.pipeline.models.describe()

    @property
    def meaningful(self) -> bool:
        return self.pipeline.models.meaningful

    def cache_stats(self) -> dict:
        return self.pipeline.cache.stats()

    def execution(self) -> dict:
        return {"mode": "local", "num_workers": self.num_workers, "pin_memory": self.pin_memory and
                self.num_workers > 0, "torch_threads": torch.get_num_threads()}

    def close(self) -> None:
        pass


def run_category(pipeline: SAAPipeline | None, samples, prompts: CategoryPrompts, configs: list[SAAConfig],
                 progress: bool = True, desc: str = "", region_metrics: bool = False, num_workers: int | None = 0,
                 scorer=None, references: list | None = None) -> list[CategoryRun]:
    """All ``configs`` on ``samples`` of one category, from one pass of the expensive stages per image.

    ``region_metrics`` also computes AUPRO and region F1 (slow on smooth maps; the official ``--cal-pro``).
    ``scorer`` (default: a :class:`LocalScorer` of ``pipeline`` with ``num_workers`` loader processes) computes the
    per-image results; the metrics are always computed here, by :func:`collect_runs`. ``references``: normal samples
    for few-shot saliency (see :func:`score_images`)."""
    samples = labelled(samples, prompts.category)
    scorer = scorer if scorer is not None else LocalScorer(pipeline, num_workers)
    extra = {}
    if any(c.saliency.peers is not None for c in configs):
        if not isinstance(scorer, LocalScorer):
            raise ValueError("batch / few-shot saliency compares the images of a category with each other: "
                             "run it without --ray")
        extra = {"references": references}
    scored = scorer.score_images(samples, prompts, configs, progress=progress, desc=desc or prompts.category,
                                 **extra)
    return collect_runs(samples, scored, prompts.category, configs, region_metrics)


def save_maps(run: CategoryRun, out_dir: Path) -> Path:
    """Write every scored map (``.npy`` at the evaluation resolution) + masks/labels, to recompute metrics anywhere.
    Each file is written atomically."""
    d = Path(out_dir) / "maps" / run.variant / run.category
    save_npy(d / "maps.npy", run.maps)
    save_npy(d / "masks.npy", run.masks)
    save_npy(d / "labels.npy", run.labels)
    write_text(d / "images.json", json.dumps(run.names, indent=1))
    return d


def metrics_table(runs: list[CategoryRun]) -> pd.DataFrame:
    """The per-category metrics as a DataFrame: one row per (variant, category) with ``n_images``, every metric of
    :data:`saa_lib.metrics.METRIC_NAMES` in percent (NaN where undefined or not computed) and ``undefined``, why
    (``metric: reason; ...``, empty when every metric is defined)."""
    keys = list(M.METRIC_NAMES)
    rows = [[r.variant, r.category, len(r.labels), *(100 * r.metrics[k] for k in keys),
             "; ".join(f"{k}: {r.undefined.get(k, 'undefined')}" for k in keys if not np.isfinite(r.metrics[k]))]
            for r in runs]
    return frames.table(rows, ["variant", "category", "n_images", *keys, "undefined"], formats={"n_images": "d"})


def write_metrics_csv(runs: list[CategoryRun], path: Path) -> Path:
    """:func:`metrics_table` as CSV (``DataFrame.to_csv``), written atomically: metrics in percent with two decimals,
    an undefined or not computed value ``n/a`` (which ``pandas.read_csv`` reads as NaN)."""
    return write_text(path, frames.to_csv(metrics_table(runs)))


def warn_undefined(runs: list[CategoryRun]) -> str | None:
    """One warning (returned and issued) listing the undefined metrics of ``runs`` by category; None if none."""
    by_cat: dict[str, dict[str, str]] = {}
    for r in runs:
        for k, why in r.undefined.items():
            if not why.startswith("not computed"):
                by_cat.setdefault(r.category, {})[k] = why
    if not by_cat:
        return None
    parts = []
    for cat, items in by_cat.items():
        reasons: dict[str, list[str]] = {}
        for k, why in items.items():
            reasons.setdefault(why, []).append(k)
        parts.append(f"{cat}: " + ", ".join(f"{'/'.join(ks)} ({why})" for why, ks in reasons.items()))
    msg = "undefined metrics shown as n/a and left out of the means: " + "; ".join(parts)
    warnings.warn(msg, stacklevel=2)
    return msg


@dataclass(frozen=True)
class CategoryPlan:
    """What a run scores in one category, checked before any image is scored: the labelled test ``samples`` (after
    ``max_images``), the category's ``prompts`` and the normal ``references`` few-shot saliency compares with (the
    first ``shots``; empty when no config needs them)."""

    category: str
    samples: list
    prompts: CategoryPrompts
    references: list


def check_image_file(path, where: str = "") -> None:
    """:class:`~saa_lib.data.sample.DatasetError` naming ``path`` (and ``where``) if its header cannot be read or the
    image is smaller than the models take (:data:`saa_lib.pipeline.MIN_IMAGE_SIDE`); reads the header only."""
    from ..data.sample import DatasetError, image_size
    from ..pipeline import MIN_IMAGE_SIDE

    h, w = image_size(path)
    if min(h, w) < MIN_IMAGE_SIDE:
        raise DatasetError(f"{path}{where}: image is {w}x{h} px; SAA+ needs at least {MIN_IMAGE_SIDE} px per side "
                           "(upsample it, or leave it out)")


def fewshot_shots(configs: list[SAAConfig]) -> int:
    """The most reference images a few-shot config of ``configs`` compares with (0 when none is few-shot)."""
    return max([c.saliency.peers.shots for c in configs if c.saliency.source == "fewshot"], default=0)


def plan_categories(dataset, configs: list[SAAConfig], categories=None, extra_prompts=(),
                    max_images: int | None = None, object_word: str | None = None) -> list[CategoryPlan]:
    """Check what every category needs before any image of any category is scored; return what each will score.

    Per category: its labelled test images (listing them reads every mask and checks its size against its image),
    its prompts (:func:`prompts_for`, with ``object_word``), the size of every image to score (header only), and for
    few-shot saliency at least ``shots`` normal reference images (``train/good``) of a usable size. The first problem
    raises ``ValueError`` (or its subclass :class:`~saa_lib.data.sample.DatasetError`) naming the category and the
    file or folder.
    """
    shots = fewshot_shots(configs)
    plans = []
    for cat in list(categories or dataset.categories):
        samples = labelled(dataset.samples(cat), cat)
        if max_images:
            samples = balanced_subset(samples, max_images)
        prompts = prompts_for(dataset, cat, extra_prompts, configs[0].behaviour, object_word, configs)
        for i, s in enumerate(samples):
            check_image_file(s.image_path, f" (image {i + 1} of {len(samples)} of category {cat!r})")
        refs = reference_samples(dataset, cat, configs)[:shots]
        if len(refs) < shots:
            raise ValueError(f"few-shot saliency with {shots} shot(s) needs {shots} normal reference image(s) "
                             f"(train/good) of category {cat!r}; {dataset.root} has {len(refs)}: add normal images "
                             "there, or lower --shots")
        for i, s in enumerate(refs):
            check_image_file(s.image_path, f" (reference image {i + 1} of {shots} of category {cat!r})")
        plans.append(CategoryPlan(cat, samples, prompts, refs))
    return plans


def evaluate(dataset, pipeline: SAAPipeline | None, configs: list[SAAConfig], categories=None, extra_prompts=(),
             out_dir: str | Path | None = None, save_all_maps: bool = False, progress: bool = True,
             max_images: int | None = None, region_metrics: bool = False, num_workers: int | None = 0,
             scorer=None, object_word: str | None = None,
             plans: list[CategoryPlan] | None = None) -> list[CategoryRun]:
    """Run ``configs`` over ``categories`` of ``dataset`` (an :class:`saa_lib.data.AnomalyDataset`).

    Every category is checked before the first image is scored (:func:`plan_categories`, or the ``plans`` it
    returned; with a pipeline here, also every category's prompts against the text encoder's length).
    ``scorer``: where the models run (default: a :class:`LocalScorer` of ``pipeline`` with ``num_workers`` image-loading
    processes; a :class:`saa_lib.engine.distributed.RayScorer` shards the images over a Ray cluster, ``pipeline`` may then be
    None). ``object_word``: the object of the prompts (None: each category's own, see :func:`prompts_for`). With
    ``out_dir``: writes ``metrics.csv``, ``run.json`` and (``save_all_maps``) every map. Returns the runs.
    """
    if plans is None:
        plans = plan_categories(dataset, configs, categories, extra_prompts, max_images, object_word)
    scorer = scorer if scorer is not None else LocalScorer(pipeline, num_workers)
    local = getattr(scorer, "pipeline", None)
    if local is not None:
        for plan in plans:
            check_prompt_lengths(local, plan.prompts, configs)
    runs: list[CategoryRun] = []
    peers: dict = {}
    objects: dict[str, str] = {}
    t0 = time.perf_counter()
    for plan in tqdm(plans, desc="categories", disable=not progress or len(plans) < 2):
        objects[plan.category] = plan.prompts.object_word
        batch, used_refs = peer_samples(plan.samples, plan.references, configs)
        if batch or used_refs:
            peers[plan.category] = {"batch": sorted(str(s.image_path) for s in batch),
                                    "references": [str(s.image_path) for s in used_refs]}
        runs += run_category(pipeline, plan.samples, plan.prompts, configs, progress, desc=plan.category,
                             region_metrics=region_metrics, scorer=scorer, references=plan.references)
    warn_undefined(runs)
    if out_dir is not None:
        out = Path(out_dir)
        write_metrics_csv(runs, out / "metrics.csv")
        if save_all_maps:
            for r in runs:
                save_maps(r, out)
        write_text(out / "run.json", json.dumps({
            "seconds": round(time.perf_counter() - t0, 2), "categories": [p.category for p in plans],
            "variants": [c.variant for c in configs], "configs": [c.to_dict() for c in configs],
            "saliency_backbone": ", ".join(dict.fromkeys(c.saliency.backbone for c in configs)),
            "object_words": objects, "n_images": {r.category: len(r.labels) for r in runs},
            "models": scorer.describe(), "meaningful": scorer.meaningful,
            "cache": scorer.cache_stats(), "execution": scorer.execution(), "saliency_peers": peers},
            indent=1, default=str))
    return runs


def reference_samples(dataset, category: str, configs: list[SAAConfig]) -> list:
    """The normal reference images of a category for few-shot saliency: its ``train`` split (``train/good``) in
    order; an empty list when no config needs them. A clear error when the data set has none."""
    if not any(c.saliency.source == "fewshot" for c in configs):
        return []
    from ..data.datasets import DatasetError

    try:
        return [s for s in dataset.samples(category, "train") if s.label == 0]
    except DatasetError as err:
        raise ValueError(f"few-shot saliency needs normal reference images (train/good) of category {category!r}: "
                         f"{err}") from err


def balanced_subset(samples: list, n: int) -> list:
    """At most ``n`` samples, alternating anomalous and normal ones so both classes stay represented."""
    bad = [s for s in samples if s.label == 1]
    good = [s for s in samples if s.label == 0]
    out = []
    while len(out) < n and (bad or good):
        for pool in (bad, good):
            if pool and len(out) < n:
                out.append(pool.pop(0))
    return out
