"""The toolkit every notebook of the series imports: set-up (models, banner, data, stage outputs), the images of a
run (:class:`Item`), configurations, and where figures go.

:func:`setup` is the first cell of a notebook, called with its parameters as keyword arguments. The hand-built known
case lives in :mod:`saa_lib.workbook.known_case`; the papermill runner of the whole series in :mod:`saa_lib.workbook.report`.

Nothing here loads a model or touches the network at import time.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the series, in reading order (file stems in ``notebooks/``): the course map first, loading no model
NOTEBOOKS = (
    "00_course_map",
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
    root = Path(__file__).resolve().parents[2]  # saa_lib/workbook/series.py -> the project
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
    from ..data import open_dataset

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


def saliency_images(data, dataset: str) -> tuple[dict, str, bool]:
    """The images a notebook shows real saliency maps on: ``({category: data set}, what they are, whether they are
    the real samples)``. With a data set of your own (``dataset`` other than ``"synthetic"``, ``data`` opened from
    it): its images. Otherwise the real samples (:func:`real_datasets`), and without them the synthetic set
    ``data``, said in one line."""
    if dataset != "synthetic":
        return {cat: data for cat in data.categories}, f"the {dataset} images of {data.root}", False
    real = real_datasets()
    if real:
        return real, "real MVTec AD / MTD images", True
    print("falling back to the synthetic images: the maps below are NOT on real images")
    return {cat: data for cat in data.categories}, "synthetic images (fallback)", False


def synthetic_root(seed: int = 0) -> Path:
    """Where the synthetic set of ``seed`` lives: ``<project>/data/synthetic[-seedN]``, else a temporary folder."""
    name = "synthetic" if seed == 0 else f"synthetic-seed{seed}"
    root = project_root()
    base = root / "data" if root is not None else Path(tempfile.gettempdir()) / "saa-workbook-data"
    return base / name


def open_data(dataset: str = "synthetic", root=None, categories=None, seed: int = 0):
    """:func:`saa_lib.data.open_dataset`, with the synthetic set generated (``seed``) under :func:`synthetic_root`
    when no ``root`` is given. ``categories``: list, comma-separated string or None (all)."""
    from ..data import generate_synthetic, open_dataset

    if isinstance(categories, str):
        categories = [c.strip() for c in categories.split(",") if c.strip()]
    if dataset == "synthetic" and root is None:
        root = generate_synthetic(synthetic_root(seed), seed=seed)
    return open_dataset(dataset, root, categories=categories or None)


def pick(dataset, category: str, n: int) -> list:
    """At most ``n`` labelled test samples of ``category``, anomalous and normal alternating (anomalous first)."""
    from ..engine.evaluate import balanced_subset

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
    from ..tables import find_table

    return getattr(dataset, "table", None) or find_table(category) or ""


# ------------------------------------------------------------------------------------------------- models, banner
def resolve_models(models: str, saliency_backbone: str = "wide_resnet50_2") -> str:
    """The kind ``models`` stands for: ``"auto"`` becomes ``"official"`` when every official weights file is in the
    weights folder (:func:`saa_lib.weights.auto_kind`), else ``"tiny"``; any other value is itself."""
    from ..weights import auto_kind

    return auto_kind(saliency_backbone=saliency_backbone) if models == "auto" else models


def is_meaningful(models) -> bool:
    """``models``: a kind string (``"tiny"``, ``"official"``, ``"auto"``, ...) or a
    :class:`saa_lib.weights.zoo.Models`."""
    if isinstance(models, str):
        return resolve_models(models, choose_saliency_backbone("auto")) not in ("tiny", "random")
    return bool(models.meaningful)


def banner(models, requested: str | None = None) -> str:
    """Print which models make the outputs, loudly when they are random (with how to get the real ones); return the
    tag for figure titles. ``requested``: the ``models`` parameter the set-up was given (``"auto"`` says why)."""
    from ..weights import how_to_get_weights, missing_weights, weights_for

    if isinstance(models, str):
        requested, models = models, resolve_models(models, choose_saliency_backbone("auto"))
    meaningful = is_meaningful(models)
    line = models if isinstance(models, str) else models.describe()
    if meaningful:
        print(f"Models: {line}" + ("  (models='auto': the official weights are in the weights folder)"
                                   if requested == "auto" else ""))
        return "trained weights" if isinstance(models, str) else line.split(";")[0]
    bar = "!" * 78
    why = ""
    if requested == "auto":
        absent = [path.name for _, _, path in missing_weights(weights_for(
            saliency_backbone=choose_saliency_backbone("auto")))]
        why = f"\n!!  models='auto' chose them: not in the weights folder: {', '.join(absent)}"
    print(f"{bar}\n!!  {BANNER.upper()}\n!!  models: {line}{why}\n!!  Every map, score and table made with these "
          f"models is noise.\n!!  {how_to_get_weights()}\n{bar}")
    return NOT_MEANINGFUL


def choose_saliency_backbone(name: str = "auto") -> str:
    """The P^S backbone a notebook uses: ``name`` as given, except ``"auto"``: ``wide_resnet50_2`` (the paper's)
    when its weights file is in the cache, else ``tf_efficientnet_lite0`` (real ImageNet weights, installed with the
    package, no download)."""
    from ..weights.zoo import CHECKPOINTS

    if name != "auto":
        return name
    return "wide_resnet50_2" if CHECKPOINTS["wide_resnet50_2"].path.is_file() else "tf_efficientnet_lite0"


def saliency_line(saliency_backbone: str) -> str:
    """One line for the banner: which P^S backbone runs, and why when it is not the paper's."""
    from ..weights.zoo import CHECKPOINTS

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
    from ..config import variant_config

    return variant_config(variant, behaviour, **overrides).with_(saliency={"backbone": saliency_backbone})


# ------------------------------------------------------------------------------------------------ stage outputs
@dataclass(frozen=True)
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
    from ..engine.evaluate import eval_mask, prompts_for

    prompts = prompts_for(dataset, sample.category, config.extra_prompts, config.behaviour)
    image = sample.load_image()
    return Item(sample, image, eval_mask(sample, config.eval_resolution), prompts,
                pipe.stages(image, prompts, config))


@dataclass(frozen=True)
class Workbook:
    """What :func:`setup` gives a notebook: the loaded ``models``, their ``tag`` for figure titles, a cached ``pipe``,
    the ``figures`` writer, the ``data`` set and the stage outputs of its first images (``items``), with the
    ``behaviour`` and ``saliency_backbone`` every configuration of the notebook uses."""

    models: object
    tag: str
    pipe: object
    figures: "Figures"
    data: object
    items: tuple
    behaviour: str = "code"
    saliency_backbone: str = "wide_resnet50_2"

    def config(self, variant: str = "saa_plus", behaviour: str | None = None, **overrides):
        """The configuration of ``variant`` under this notebook's behaviour (or ``behaviour``) and P^S backbone."""
        return make_config(variant, behaviour or self.behaviour, self.saliency_backbone, **overrides)

    def score(self, item: Item, config):
        """``item``'s stage outputs scored under ``config`` (no model runs): an :class:`saa_lib.records.ImageResult`."""
        return self.pipe.score(item.stages, item.prompts, config)

    def caution(self, what: str = "this result") -> None:
        """Say, where a result is shown, that it means nothing when the detectors' weights are random (one line;
        nothing with trained weights)."""
        if not self.models.meaningful:
            print(f"⚠ {what}: made with random-weight detectors, so it is noise; it shows that the code runs, not "
                  "what SAA+ does (models='official' for the real result)")

    def runs(self, configs, items=None) -> list:
        """:func:`category_runs` of ``configs`` on ``items`` (default: all of this notebook's)."""
        return category_runs(self.pipe, list(self.items if items is None else items), configs)


def setup(*, models: str = "auto", device: str = "cpu", saliency_backbone: str = "auto", seed: int = 0,
          out_dir=None, dataset: str = "synthetic", root=None, categories=None, n_images: int = 2,
          behaviour: str = "code") -> Workbook:
    """The set-up every notebook of the series starts with, called with its parameters cell's values by keyword.

    Checks every value first (:func:`saa_lib.workbook.parameters.check_parameters`), then loads the models (never
    downloading: a missing checkpoint is an error that names the file and the command that fetches it;
    ``models="auto"``: the official ones when their weights are in the weights folder, else the tiny ones, see
    :func:`resolve_models`; ``saliency_backbone="auto"``: see :func:`choose_saliency_backbone`), prints the banner,
    opens the
    data and computes (or loads from the stage cache) the stage outputs of ``n_images`` images per category under
    ``saa_plus`` (which needs every stage any variant needs).
    """
    import warnings

    from ..cache import StageCache
    from ..pipeline import SAAPipeline
    from ..utils import resolve_device
    from ..weights.registry import parse_models
    from ..weights.zoo import load_models
    from .parameters import check_parameters

    check_parameters(models=models, device=device, saliency_backbone=saliency_backbone, seed=seed, out_dir=out_dir,
                     dataset=dataset, root=root, categories=categories, n_images=n_images, behaviour=behaviour)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*not meaningful.*")  # said once, loudly, by the banner
    saliency_backbone = choose_saliency_backbone(saliency_backbone)
    kind, paths = parse_models(models, "models")  # a kind, or the command line's sam=PATH,gdino=PATH,... form
    loaded = load_models(kind, device=resolve_device(device), saliency_backbone=saliency_backbone, seed=seed,
                         checkpoints=paths, download=False)
    tag = banner(loaded, requested=models)
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
    return Workbook(models=loaded, tag=tag, pipe=pipe, figures=Figures(out_dir), data=data, items=tuple(items),
                    behaviour=behaviour, saliency_backbone=saliency_backbone)


def category_runs(pipe, items: list[Item], configs) -> list:
    """:func:`saa_lib.engine.evaluate.run_category` on the images of ``items``, category by category (stages come from the
    cache). Returns the :class:`saa_lib.engine.evaluate.CategoryRun` list, metrics included."""
    from ..engine.evaluate import run_category

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
