"""Configuration dataclasses: thresholds, prompt switches, behaviour (paper | code) and the named variants.

One name per variant everywhere (code, CLI, notebooks, reports):

| variant                    | P^L | P^P | P^S | P^C |
|----------------------------|-----|-----|-----|-----|
| ``saa``                    |  -  |  -  |  -  |  -  |  class-agnostic prompts only
| ``saa_plus``               |  x  |  x  |  x  |  x  |
| ``saa_plus-no_language``   |  -  |  x  |  x  |  x  |
| ``saa_plus-no_property``   |  x  |  -  |  x  |  x  |
| ``saa_plus-no_saliency``   |  x  |  x  |  -  |  x  |
| ``saa_plus-no_confidence`` |  x  |  x  |  x  |  -  |
| ``saliency_only``          |  the P^S map itself is the anomaly map      |
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Literal

Behaviour = Literal["paper", "code"]
BEHAVIOURS = ("paper", "code")
#: where P^S takes the pixels each pixel is compared with: the image itself (SAA+), the other test images of the
#: category (batch, zero-shot), or k normal reference images (few-shot)
SALIENCY_SOURCES = ("image", "batch", "fewshot")


#: the input size of the batch / few-shot features when ``SaliencyConfig.source_size`` is None: batch compares with
#: the other images as they are (a larger input resolves small defects); few-shot compares with 2 x 12 views of each
#: reference, so its bank is 24 times larger per reference and a smaller input keeps it affordable on a CPU
SOURCE_INPUT_SIZES = {"batch": 384, "fewshot": 256}

#: categories whose objects lie at any angle in their images (MVTec AD: screws, metal nuts and hazelnuts are placed
#: at random orientations): batch saliency compares them under every quarter turn when ``batch_rotations`` is None.
#: Mirrors are never used (a mirrored metal nut is a defect). Elsewhere the orientation carries meaning (the light
#: falls from one side of a magnetic tile) and turned views would match defects with the other images' normal parts.
ANY_ANGLE_CATEGORIES = frozenset({"screw", "metal_nut", "hazelnut"})

#: the share of the stride-32 level in a batch / few-shot score when ``SaliencyConfig.deep_weight`` is None and the
#: backbone holds that stage (chosen on the sample images, checked on other real images: README)
DEEP_WEIGHT = 0.3

#: the input size of the stride-32 level of batch / few-shot saliency when ``SaliencyConfig.deep_size`` is None, for
#: both sources: larger than the fine level's input, so that coarse grid has more cells (20 x 20 at 640 px) while each
#: cell still sees a whole part of a tile or a screw (chosen on the sample images within the memory bound of a batch of
#: 100 images, checked on other real images: README)
DEEP_INPUT_SIZE = 640


@dataclass(frozen=True)
class SaliencyConfig:
    """P^S settings. ``aggregate='farthest'`` is the official code, ``'nearest'`` the paper.

    ``multi_instance`` (official code): in a category with several objects per image (property table count > 1) and
    at least two object boxes found, each pixel of one object is compared with the pixels of the *other* objects
    instead of with the whole image, on a ``multi_instance_size`` input (see
    :func:`saa_lib.prompts.saliency.multi_instance_saliency`).

    ``source``: what each pixel is compared with (:mod:`saa_lib.prompts.saliency_sources`): ``'image'`` the rest of
    its own image (SAA+), ``'batch'`` the other test images of the category (mutual scoring, zero-shot),
    ``'fewshot'`` the first ``shots`` normal reference images. These two take features on a ``source_size`` input
    (None: :data:`SOURCE_INPUT_SIZES`, 384 for batch, 256 for few-shot, whose bank holds every rotation), averaged
    over ``pool`` x ``pool`` neighbourhoods (1: each cell as it is); batch divides the distances to each other image
    by their ``peer_quantile`` quantile over the image's patches (None: as they are; see
    :func:`~saa_lib.prompts.saliency_sources.batch_scores`) and keeps the mean of the smallest ``batch_fraction`` of
    these per-image distances; few-shot also compares with ``reference_rotations`` rotations of each reference (each
    one mirrored too) when ``augment_references``. Both score the fine grid and the backbone's stride-32 grid and mix
    the coarse level in with ``deep_weight`` (None: :data:`DEEP_WEIGHT` where the backbone holds a stride-32 stage,
    tf_efficientnet_lite0, and 0 where it does not, the WideResNet50 extractor, which stops at layer3; see
    :func:`~saa_lib.prompts.saliency_sources.source_map`), that level taken on a ``deep_size`` input (None:
    :data:`DEEP_INPUT_SIZE`, 640 px). Batch compares the image under ``batch_rotations`` quarter
    turns (1, 2 or 4; None: 4 for :data:`ANY_ANGLE_CATEGORIES`, else 1). With ``common_scale`` every image of a batch is
    shown at one pixel scale: its input is ``source_size`` times its longest side over the median longest side of the
    batch, so images of different sizes (magnetic tiles) show their texture at the same scale; images of one size all
    take ``source_size``. Off by default: it helped on the sample tiles and lost on other real tiles (README).
    Few-shot always takes ``source_size``. The map is smoothed with a Gaussian of ``smooth_sigma`` px, divided by its
    own median when ``normalize`` (off: it helps where defects are small and hurts where one covers a large part of
    the image, whose median it then lies in) and, with ``with_image``, combined with the single-image map as
    ``other ** (1 - image_weight) * image ** image_weight``. The defaults were chosen on the real sample images
    (``benchmarks/saliency_real_features.py``) and checked on other real images against the simple forms
    (:data:`saa_lib.saliency_compare.SIMPLE_FORM`).
    """

    backbone: str = "wide_resnet50_2"
    input_size: int = 256
    neighbours: int = 400
    aggregate: Literal["nearest", "farthest"] = "farthest"
    chunk_size: int = 1024
    multi_instance: bool = False
    multi_instance_size: int = 1024
    #: the official code's exact input and feature steps (square cv2 resize, nearest upsampling of the deeper maps,
    #: full similarity matrix; multi-instance on the objects' SAM masks); False: aspect kept + padding, bilinear,
    #: chunked exact kNN, multi-instance on object boxes
    official_input: bool = True
    #: from here on the batch / few-shot settings (:data:`SOURCE_SETTINGS`): no part of the single-image map
    source: Literal["image", "batch", "fewshot"] = "image"
    shots: int = 1
    source_size: int | None = None
    pool: int = 1
    batch_fraction: float = 0.1
    peer_quantile: float | None = 0.1
    deep_weight: float | None = None
    deep_size: int | None = None
    augment_references: bool = True
    reference_rotations: int = 12
    batch_rotations: int | None = None
    common_scale: bool = False
    smooth_sigma: float = 8.0
    normalize: bool = False
    with_image: bool = True
    image_weight: float = 0.4

    def __post_init__(self):
        if self.source not in SALIENCY_SOURCES:
            raise ValueError(f"saliency source must be one of {SALIENCY_SOURCES}, got {self.source!r}")
        if self.shots < 1:
            raise ValueError(f"saliency shots must be >= 1, got {self.shots}")
        if not 0.0 < self.batch_fraction <= 1.0:
            raise ValueError(f"saliency batch_fraction must be in (0, 1], got {self.batch_fraction}")
        if self.source_size is not None and self.source_size < 32:
            raise ValueError(f"saliency source_size must be >= 32 px (or None), got {self.source_size}")
        if self.pool < 1:
            raise ValueError(f"saliency pool must be >= 1, got {self.pool}")
        if self.peer_quantile is not None and not 0.0 <= self.peer_quantile < 1.0:
            raise ValueError(f"saliency peer_quantile must be in [0, 1) (or None), got {self.peer_quantile}")
        if self.deep_weight is not None and not 0.0 <= self.deep_weight <= 1.0:
            raise ValueError(f"saliency deep_weight must be in [0, 1] (or None), got {self.deep_weight}")
        if self.deep_size is not None and self.deep_size < 32:
            raise ValueError(f"saliency deep_size must be >= 32 px (or None), got {self.deep_size}")
        if self.reference_rotations < 1:
            raise ValueError(f"saliency reference_rotations must be >= 1, got {self.reference_rotations}")
        if self.batch_rotations not in (None, 1, 2, 4):
            raise ValueError(f"saliency batch_rotations must be 1, 2, 4 or None, got {self.batch_rotations}")
        if not 0.0 <= self.image_weight <= 1.0:
            raise ValueError(f"saliency image_weight must be in [0, 1], got {self.image_weight}")

    @property
    def source_input(self) -> int:
        """The input size of the batch / few-shot features: ``source_size``, or the source's default."""
        return self.source_size if self.source_size is not None else SOURCE_INPUT_SIZES.get(self.source, 256)

    @property
    def deep_input(self) -> int:
        """The input size of the stride-32 level: ``deep_size``, else :data:`DEEP_INPUT_SIZE`."""
        return self.deep_size if self.deep_size is not None else DEEP_INPUT_SIZE

    def turns_for(self, category: str) -> int:
        """How many quarter turns batch saliency compares an image of ``category`` under: ``batch_rotations``, else
        4 for :data:`ANY_ANGLE_CATEGORIES` and 1 elsewhere."""
        if self.batch_rotations is not None:
            return self.batch_rotations
        return 4 if category in ANY_ANGLE_CATEGORIES else 1

    def deep_for(self, has_deep: bool) -> float:
        """The share of the stride-32 level in a batch / few-shot score with a backbone that does (not) hold that
        stage: ``deep_weight``, else :data:`DEEP_WEIGHT` where it does and 0 where it does not; 0 for the
        single-image source."""
        if self.source == "image":
            return 0.0
        if self.deep_weight is not None:
            return self.deep_weight
        return DEEP_WEIGHT if has_deep else 0.0


_SALIENCY_FIELDS = [f.name for f in fields(SaliencyConfig)]
#: the batch / few-shot settings: every :class:`SaliencyConfig` field from ``source`` on (the single-image map's cache
#: key leaves them out, so a batch run and an image run share their single-image maps)
SOURCE_SETTINGS = tuple(_SALIENCY_FIELDS[_SALIENCY_FIELDS.index("source"):])


@dataclass(frozen=True)
class SAAConfig:
    """Everything that decides one run of the pipeline on one category.

    ``None`` for ``top_k`` / ``max_area_ratio`` / ``object_count`` means "take the category's value from the tables".
    """

    variant: str = "saa_plus"
    behaviour: Behaviour = "code"
    # which hybrid prompts are on
    use_language: bool = True
    use_property: bool = True
    use_saliency: bool = True
    use_confidence: bool = True
    saliency_only: bool = False
    # generator
    box_threshold: float = 0.1
    text_threshold: float = 0.1
    single_caption: bool = False
    # P^P
    min_iou: float = 1e-3
    max_area_ratio: float | None = None
    object_count: int | None = None
    # P^C
    top_k: int | None = None
    # P^S
    saliency: SaliencyConfig = field(default_factory=SaliencyConfig)
    rescore_gain: float | None = None  # None: 3 (code) or 1 (paper)
    # fusion / evaluation
    fusion_offset: float | None = None  # None: 1 (code) or 0 (paper)
    eval_resolution: int = 400
    extra_prompts: tuple[str, ...] = ()

    def __post_init__(self):
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {BEHAVIOURS}, got {self.behaviour!r}")
        if self.saliency.aggregate not in ("nearest", "farthest"):
            raise ValueError(f"saliency.aggregate must be 'nearest' or 'farthest', got {self.saliency.aggregate!r}")

    @property
    def gain(self) -> float:
        """Exponent gain of the saliency rescoring: score * exp(gain * mean saliency)."""
        if self.rescore_gain is not None:
            return self.rescore_gain
        return 3.0 if self.behaviour == "code" else 1.0

    @property
    def offset(self) -> float:
        """Constant added to the fusion denominator (1 in the official code, 0 in the paper)."""
        if self.fusion_offset is not None:
            return self.fusion_offset
        return 1.0 if self.behaviour == "code" else 0.0

    def with_(self, **changes) -> "SAAConfig":
        """A copy with some fields changed (``saliency`` may be given as a dict of its fields)."""
        if isinstance(changes.get("saliency"), dict):
            changes["saliency"] = replace(self.saliency, **changes["saliency"])
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


_SWITCHES = {
    "saa": dict(use_language=False, use_property=False, use_saliency=False, use_confidence=False),
    "saa_plus": dict(),
    "saa_plus-no_language": dict(use_language=False),
    "saa_plus-no_property": dict(use_property=False),
    "saa_plus-no_saliency": dict(use_saliency=False),
    "saa_plus-no_confidence": dict(use_confidence=False),
    "saliency_only": dict(use_language=False, use_property=False, use_confidence=False, saliency_only=True),
}
VARIANTS: tuple[str, ...] = tuple(_SWITCHES)
ABLATION_VARIANTS: tuple[str, ...] = (
    "saa_plus-no_language",
    "saa_plus-no_property",
    "saa_plus-no_saliency",
    "saa_plus-no_confidence",
    "saa_plus",
)


#: every choice on which the two behaviours differ: (stage, choice, code = the official code, paper)
BEHAVIOUR_CHOICES: tuple[tuple[str, str, str, str], ...] = (
    ("input", "colour order per model", "GroundingDINO RGB; SAM and saliency backbone BGR (the official code reads "
     "images with OpenCV and converts only for GroundingDINO)", "RGB for every model"),
    ("P^L", "class-agnostic prompts", "`defect on {category key}`, `damage on ...`, `flaw on ...`, filter phrase = "
     "the category key as written (`metal_nut`)", "`anomaly`, `defect`, filter phrase = the object word"),
    ("P^P", "object prompt", "the property sentence's 8th word with its comma and underscores (`screw,` sent as "
     "`screw,.`)", "the object word (`screw`)"),
    ("generator", "GroundingDINO input", "official transform: PIL bilinear of the uint8 image to shorter side 800 "
     "(longer <= 1333), integer size arithmetic, ToTensor, Normalize", "float resize on the model's device, "
     "antialiased, rounded sizes"),
    ("generator", "boxes per caption", "every query above the floor", "the 100 most confident"),
    ("generator", "boxes", "raw normalised boxes, not clipped: areas w * h in float32, unclipped pixel boxes to SAM",
     "clipped to the image"),
    ("P^L", "language filter", "drop a box when the filter phrase is a substring of `tokenizer.decode` of its "
     "tokens above the text threshold", "drop a box when its phrase shares a word with the object phrase"),
    ("P^P", "property filter", "on boxes: 0 < area < ratio x largest object box (object boxes < 1 / count); no IoU",
     "on masks: IoU with the object mask >= 1e-3 and area <= ratio x object mask area"),
    ("refiner", "mask resolution", "the image's own (bit-packed as decoded, chunk by chunk; cached compressed)",
     "`eval_resolution` (nearest)"),
    ("P^S", "saliency input", "`cv2.resize` to 256 x 256 (aspect not kept), `(x - 255 mean) / (255 std)`",
     "longest side 256, antialiased, zero-padded"),
    ("P^S", "feature upsampling", "nearest (`F.interpolate` default)", "bilinear"),
    ("P^S", "aggregate", "mean of the 400 largest 0.5 (1 - cos), the pixel itself included",
     "mean of (1 - cos) to the 400 nearest other pixels"),
    ("P^S", "several objects (count > 1)", "each object's SAM-mask pixels against the other objects' (1024 input, "
     "masks resized nearest to the grid), max over objects; single-instance map when < 2 objects have mask pixels "
     "(the official code fails there)", "whole-image map"),
    ("P^S", "map size", "64 x 64 grid `cv2.resize`'d (bilinear) to the image size", "`eval_resolution`"),
    ("P^S", "rescoring", "score x exp(3 x mean saliency in the mask), numpy scalar types (float32 for the "
     "single-instance map); empty mask: factor 1", "score x exp(1 x mean saliency)"),
    ("P^C", "top-K", "`argsort()[-k:]` (numpy default sort) over the surviving candidates in prompt, query order; "
     "fused in that order", "the K highest, ties to the lower index"),
    ("fusion", "formula", "sum(mask x score) / (1 + sum(mask)) at the image's resolution, float64, then `cv2.resize` "
     "(bilinear) to `eval_resolution`", "sum(mask x score) / sum(mask) at `eval_resolution`"),
    ("fusion", "no candidate", "an all-zero map (the official code fuses one empty mask of score 0)",
     "an all-zero map"),
)


def behaviour_table() -> str:
    """Markdown table of every choice on which ``behaviour="code"`` (the official code) and ``"paper"`` differ."""
    rows = ["| stage | choice | `code` (official code) | `paper` |", "|---|---|---|---|"]
    rows += [f"| {stage} | {choice} | {code} | {paper} |" for stage, choice, code, paper in BEHAVIOUR_CHOICES]
    return "\n".join(rows)


def variant_config(name: str, behaviour: Behaviour = "code", **overrides) -> SAAConfig:
    """The :class:`SAAConfig` of a named variant, e.g. ``variant_config('saa_plus-no_saliency')``."""
    if name not in _SWITCHES:
        raise ValueError(f"unknown variant {name!r}; choose one of: {', '.join(VARIANTS)}")
    base = SAAConfig(variant=name, behaviour=behaviour, **_SWITCHES[name])
    code = behaviour == "code"
    base = base.with_(saliency={"aggregate": "farthest" if code else "nearest", "multi_instance": code,
                                "official_input": code})
    return base.with_(**overrides) if overrides else base
