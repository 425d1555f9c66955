"""The torch models: SAM, GroundingDINO, the saliency backbone and the BERT text encoder, and :class:`Models`, the set
the pipeline runs (assembled by :func:`saa_lib.weights.zoo.load_models`).

Each module builds one family in its official, ``tiny`` (small, random, seeded) or ``random`` (official size, random)
form and loads checkpoints in the official file formats. Heavy libraries (segment_anything, groundingdino, timm,
transformers) are imported inside the functions, so importing this package is cheap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from saa_lib.models.common import LoadReport
from saa_lib.models.backbone import SaliencyBackbone, load_saliency_backbone

__all__ = ["Models", "SaliencyBackbone", "load_saliency_backbone"]


@dataclass(kw_only=True)
class Models:
    """The three networks of the pipeline and what they are.

    ``gdino``: groundingdino ``GroundingDINO`` (eval, has ``.tokenizer``); ``sam``: ``segment_anything.modeling.Sam``
    (eval); both ``None`` in a saliency-only set (:func:`saa_lib.weights.zoo.load_saliency_only`); ``saliency``:
    :class:`SaliencyBackbone`. ``gdino_min_size`` / ``gdino_max_size``: shorter-side target and longer-side cap of
    GroundingDINO's input. ``identity``: stable string for cache keys. Built with keyword arguments only.
    """

    gdino: Any
    sam: Any
    saliency: SaliencyBackbone
    kind: str
    gdino_min_size: int
    gdino_max_size: int
    identity: str
    device: Any
    parts_meaningful: dict[str, bool] = field(default_factory=dict)
    reports: dict[str, LoadReport] = field(default_factory=dict)
    sam_variant: str = ""

    @property
    def meaningful(self) -> bool:
        """True only when every part carries trained weights."""
        return bool(self.parts_meaningful) and all(self.parts_meaningful.values())

    def describe(self) -> str:
        """One line for report headers."""
        sal = f"saliency {self.saliency.name}" + (" (ImageNet weights)" if self.saliency.meaningful else " (random)")
        if self.gdino is None:
            return f"saliency-only models, no GroundingDINO/SAM: {sal}" + \
                ("" if self.saliency.meaningful else " (NOT meaningful)")
        if self.kind == "tiny":
            head = "tiny random-init models (NOT meaningful)"
        elif self.kind == "random":
            head = f"random-init official-size models, SAM {self.sam_variant} (NOT meaningful, timing only)"
        else:
            src = "official checkpoints" if self.kind == "official" else "local checkpoints"
            head = f"{src}: SAM {self.sam_variant}, GroundingDINO Swin-T OGC"
        return f"{head}; {sal}"
