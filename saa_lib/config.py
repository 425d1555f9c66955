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
from typing import Literal

Behaviour = Literal["paper", "code"]
BEHAVIOURS = ("paper", "code")


@dataclass(frozen=True)
class SaliencyConfig:
    """P^S settings. ``aggregate='farthest'`` is the official code, ``'nearest'`` the paper.

    ``multi_instance`` (official code): in a category with several objects per image (property table count > 1) and
    at least two object boxes found, each pixel of one object is compared with the pixels of the *other* objects
    instead of with the whole image, on a ``multi_instance_size`` input (see
    :func:`saa_lib.prompts.saliency.multi_instance_saliency`).

    ``source``: what each pixel is compared with (:mod:`saa_lib.prompts.saliency_sources`): ``'image'`` the rest of
    its own image (SAA+), ``'batch'`` the other test images of the category (mutual scoring, zero-shot),
    ``'fewshot'`` the first ``shots`` normal reference images. These two take features on a ``source_size`` input,
    averaged over ``pool`` x ``pool`` neighbourhoods; batch keeps the mean of the smallest ``batch_fraction`` of the
    per-image distances; few-shot adds the 8 rotations / flips of each reference when ``augment_references``; the map
    is smoothed with a Gaussian of ``smooth_sigma`` px and, with ``with_image``, combined with the single-image map
    (geometric mean).
    """

    backbone: str = "wide_resnet50_2"
    input_size: int = 256
    neighbours: int = 400
    aggregate: Literal["nearest", "farthest"] = "farthest"
    chunk_size: int = 1024
    multi_instance: bool = False
    multi_instance_size: int = 1024
    source: Literal["image", "batch", "fewshot"] = "image"
    shots: int = 1
    source_size: int = 256
    pool: int = 3
    batch_fraction: float = 0.3
    augment_references: bool = True
    smooth_sigma: float = 4.0
    with_image: bool = True

    def __post_init__(self):
        from .prompts.saliency_sources import SOURCES

        if self.source not in SOURCES:
            raise ValueError(f"saliency source must be one of {SOURCES}, got {self.source!r}")
        if self.shots < 1:
            raise ValueError(f"saliency shots must be >= 1, got {self.shots}")
        if not 0.0 < self.batch_fraction <= 1.0:
            raise ValueError(f"saliency batch_fraction must be in (0, 1], got {self.batch_fraction}")


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


def variant_config(name: str, behaviour: Behaviour = "code", **overrides) -> SAAConfig:
    """The :class:`SAAConfig` of a named variant, e.g. ``variant_config('saa_plus-no_saliency')``."""
    if name not in _SWITCHES:
        raise ValueError(f"unknown variant {name!r}; choose one of: {', '.join(VARIANTS)}")
    base = SAAConfig(variant=name, behaviour=behaviour, **_SWITCHES[name])
    code = behaviour == "code"
    base = base.with_(saliency={"aggregate": "farthest" if code else "nearest", "multi_instance": code})
    return base.with_(**overrides) if overrides else base
