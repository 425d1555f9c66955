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

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

Behaviour = Literal["paper", "code"]
BEHAVIOURS = ("paper", "code")


@dataclass(frozen=True)
class SaliencyConfig:
    """P^S settings. ``aggregate='farthest'`` is the official code, ``'nearest'`` the paper.

    ``multi_instance`` (official code): in a category with several objects per image (property table count > 1) and
    at least two object boxes found, each pixel of one object is compared with the pixels of the *other* objects
    instead of with the whole image, on a ``multi_instance_size`` input (see
    :func:`saa_lib.prompts.saliency.multi_instance_saliency`).

    ``peers``: None (SAA+: each pixel is compared with the rest of its own image), or a
    :class:`saa_lib.peers.PeerConfig`: each pixel is compared with other images of its category (batch zero-shot or
    few-shot), an extension computed by :class:`saa_lib.peers.PeerSaliency`.
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
    peers: Any = None

    def __post_init__(self):
        if self.aggregate not in ("nearest", "farthest"):
            raise ValueError(f"saliency.aggregate must be 'nearest' or 'farthest', got {self.aggregate!r}")
        if self.peers is not None and not hasattr(self.peers, "source"):
            raise ValueError("saliency.peers must be None or a saa_lib.peers.PeerConfig "
                             f"(e.g. saa_lib.peers.with_peers(config, source='batch')), got {self.peers!r}")

    @property
    def source(self) -> str:
        """What each pixel is compared with: ``'image'`` (its own image), ``'batch'`` or ``'fewshot'``."""
        return "image" if self.peers is None else self.peers.source


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


def behaviour_table():
    """Every choice on which ``behaviour="code"`` (the official code) and ``"paper"`` differ, as a DataFrame: one row
    per :data:`BEHAVIOUR_CHOICES` entry, columns ``stage``, ``choice``, ``code`` (official code), ``paper``."""
    from .frames import table

    return table(BEHAVIOUR_CHOICES, ["stage", "choice", "code (official code)", "paper"])


def variant_config(name: str, behaviour: Behaviour = "code", **overrides) -> SAAConfig:
    """The :class:`SAAConfig` of a named variant, e.g. ``variant_config('saa_plus-no_saliency')``."""
    if name not in _SWITCHES:
        raise ValueError(f"unknown variant {name!r}; choose one of: {', '.join(VARIANTS)}")
    base = SAAConfig(variant=name, behaviour=behaviour, **_SWITCHES[name])
    code = behaviour == "code"
    base = base.with_(saliency={"aggregate": "farthest" if code else "nearest", "multi_instance": code,
                                "official_input": code})
    return base.with_(**overrides) if overrides else base
