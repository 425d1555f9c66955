"""Settings of P^S against other images (:class:`PeerConfig`), held by ``SaliencyConfig.peers``. No torch here: the
command line reads these defaults before any model is loaded."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

#: what each pixel can be compared with besides the rest of its own image: the other test images of the category
#: (batch, zero-shot) or k normal reference images (few-shot)
PEER_SOURCES = ("batch", "fewshot")

#: the input size of the fine level when ``PeerConfig.source_size`` is None: batch compares with the other images as
#: they are (a larger input resolves small defects); few-shot compares with 2 x 12 views of each reference, so its bank
#: is 24 times larger per reference and a smaller input keeps it affordable on a CPU
SOURCE_INPUT_SIZES = {"batch": 384, "fewshot": 256}

#: categories whose objects lie at any angle in their images (MVTec AD: screws, metal nuts and hazelnuts are placed
#: at random orientations): batch compares them under every quarter turn when ``batch_rotations`` is None. Mirrors are
#: never used (a mirrored metal nut is a defect). Elsewhere the orientation carries meaning (the light falls from one
#: side of a magnetic tile) and turned views would match defects with the other images' normal parts.
ANY_ANGLE_CATEGORIES = frozenset({"screw", "metal_nut", "hazelnut"})

#: the share of the stride-32 level in the score when ``PeerConfig.deep_weight`` is None and the backbone holds that
#: stage
DEEP_WEIGHT = 0.3

#: how batch finds each query patch's nearest patch in each other image at the fine level: ``"index"`` (an
#: inverted-file patch index built once per category, :class:`saa_lib.peers.index.PatchIndex`: its cost per image
#: grows slowly with the size of the category) or ``"exact"`` (every patch of every other image: the reference)
PEER_SEARCHES = ("index", "exact")

#: the input size of the stride-32 level when ``PeerConfig.deep_size`` is None: larger than the fine level's input, so
#: that coarse grid has more cells (20 x 20 at 640 px) while each cell still sees a whole part of a tile or a screw
DEEP_INPUT_SIZE = 640


@dataclass(frozen=True)
class PeerConfig:
    """How P^S compares an image with other images of its category (:mod:`saa_lib.peers.sources`).

    ``source``: ``'batch'`` (the other test images of the category, mutual scoring, zero-shot) or ``'fewshot'`` (the
    first ``shots`` normal reference images). Both take features on a ``source_size`` input (None:
    :data:`SOURCE_INPUT_SIZES`), averaged over ``pool`` x ``pool`` neighbourhoods (1: each cell as it is).

    Batch divides the distances to each other image by their ``peer_quantile`` quantile over the image's patches (None:
    as they are; :func:`~saa_lib.peers.sources.per_image_scaled`) and keeps the mean of the smallest
    ``batch_fraction`` of these per-image distances; it compares the image under ``batch_rotations`` quarter turns (1,
    2 or 4; None: 4 for :data:`ANY_ANGLE_CATEGORIES`, else 1). With ``common_scale`` every image of a batch is shown at
    one pixel scale: its input is ``source_size`` times its longest side over the median longest side of the batch.

    Batch searches the fine level with ``search`` (:data:`PEER_SEARCHES`): ``"index"`` probes each query patch's
    ``nprobe`` nearest lists of a patch index of about ``list_size`` patches per list; ``"exact"`` compares with
    every patch. Few-shot and the stride-32 level are always searched exactly.

    Few-shot also compares with ``reference_rotations`` rotations of each reference (each one mirrored too) when
    ``augment_references``.

    Both score the fine grid and the backbone's stride-32 grid, taken on a ``deep_size`` input (None:
    :data:`DEEP_INPUT_SIZE`), and mix the coarse level in with ``deep_weight`` (None: :data:`DEEP_WEIGHT` where the
    backbone holds a stride-32 stage, 0 where it does not; :func:`~saa_lib.peers.sources.source_map`). The map is
    smoothed with a Gaussian of ``smooth_sigma`` px, divided by its own median when ``normalize`` and, with
    ``with_image``, combined with the single-image map as ``other ** (1 - image_weight) * image ** image_weight``.
    """

    source: Literal["batch", "fewshot"] = "batch"
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
    search: Literal["index", "exact"] = "index"
    nprobe: int = 16
    list_size: int = 900

    def __post_init__(self):
        checks = (
            (self.source in PEER_SOURCES, f"source must be one of {PEER_SOURCES}, got {self.source!r}"),
            (self.shots >= 1, f"shots must be >= 1, got {self.shots}"),
            (0.0 < self.batch_fraction <= 1.0, f"batch_fraction must be in (0, 1], got {self.batch_fraction}"),
            (self.source_size is None or self.source_size >= 32,
             f"source_size must be >= 32 px (or None), got {self.source_size}"),
            (self.pool >= 1, f"pool must be >= 1, got {self.pool}"),
            (self.peer_quantile is None or 0.0 <= self.peer_quantile < 1.0,
             f"peer_quantile must be in [0, 1) (or None), got {self.peer_quantile}"),
            (self.deep_weight is None or 0.0 <= self.deep_weight <= 1.0,
             f"deep_weight must be in [0, 1] (or None), got {self.deep_weight}"),
            (self.deep_size is None or self.deep_size >= 32,
             f"deep_size must be >= 32 px (or None), got {self.deep_size}"),
            (self.reference_rotations >= 1, f"reference_rotations must be >= 1, got {self.reference_rotations}"),
            (self.batch_rotations in (None, 1, 2, 4),
             f"batch_rotations must be 1, 2, 4 or None, got {self.batch_rotations}"),
            (0.0 <= self.image_weight <= 1.0, f"image_weight must be in [0, 1], got {self.image_weight}"),
            (self.search in PEER_SEARCHES, f"search must be one of {PEER_SEARCHES}, got {self.search!r}"),
            (self.nprobe >= 1, f"nprobe must be >= 1, got {self.nprobe}"),
            (self.list_size >= 1, f"list_size must be >= 1, got {self.list_size}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"saliency {message}")

    @property
    def source_input(self) -> int:
        """The input size of the fine level: ``source_size``, or the source's default."""
        return self.source_size if self.source_size is not None else SOURCE_INPUT_SIZES[self.source]

    @property
    def deep_input(self) -> int:
        """The input size of the stride-32 level: ``deep_size``, else :data:`DEEP_INPUT_SIZE`."""
        return self.deep_size if self.deep_size is not None else DEEP_INPUT_SIZE

    def turns_for(self, category: str) -> int:
        """How many quarter turns batch compares an image of ``category`` under: ``batch_rotations``, else 4 for
        :data:`ANY_ANGLE_CATEGORIES` and 1 elsewhere (always 1 for few-shot, whose references are rotated instead)."""
        if self.source != "batch":
            return 1
        if self.batch_rotations is not None:
            return self.batch_rotations
        return 4 if category in ANY_ANGLE_CATEGORIES else 1

    def deep_for(self, has_deep: bool) -> float:
        """The share of the stride-32 level with a backbone that does (not) hold that stage: ``deep_weight``, else
        :data:`DEEP_WEIGHT` where it does and 0 where it does not."""
        if self.deep_weight is not None:
            return self.deep_weight
        return DEEP_WEIGHT if has_deep else 0.0

    def resolved(self, category: str, has_deep: bool, exact: bool = False) -> "PeerConfig":
        """This config with every None that stands for a default filled in for ``category`` and a backbone that does
        (not) hold a stride-32 stage: a setting and the value it stands for then share one cache entry. The search
        settings of an exact search (few-shot, ``search="exact"``, or ``exact``: a device that searches exactly) are
        reset to their defaults, as they play no part."""
        turns = self.turns_for(category) if self.source == "batch" else self.batch_rotations
        out = replace(self, batch_rotations=turns, deep_weight=self.deep_for(has_deep), deep_size=self.deep_input)
        if exact or self.source != "batch" or self.search == "exact":
            out = replace(out, search="exact", nprobe=PeerConfig.nprobe, list_size=PeerConfig.list_size)
        return out


#: every :class:`PeerConfig` field (the command line and the benchmarks set them by name)
PEER_FIELDS = tuple(f.name for f in fields(PeerConfig))


def with_peers(config, **settings):
    """``config`` (a :class:`~saa_lib.config.SAAConfig`) with P^S against other images: ``settings`` are
    :class:`PeerConfig` fields, applied to the config's own peer settings when it has them. ``with_peers(config,
    source="batch")`` turns batch saliency on; ``config.with_(saliency={"peers": None})`` turns it off again."""
    current = config.saliency.peers
    peers = replace(current, **settings) if current is not None else PeerConfig(**settings)
    return config.with_(saliency={"peers": peers})
