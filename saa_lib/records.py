"""The records passed between the steps of the pipeline: immutable (keyword-only frozen dataclasses) and
self-describing.

:class:`Detections` (GroundingDINO's boxes) and :class:`StageOutputs` (everything the expensive stages computed for
one image) are read by :func:`saa_lib.scoring.score`, which returns an :class:`ImageResult` with one :class:`Region`
per candidate.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache

import numpy as np

from .masks import PackedMasks

#: BERT's special tokens, never part of a phrase
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@lru_cache(maxsize=4096)
def decode_official(tokenizer, tokens: tuple[str, ...]) -> str:
    """``tokenizer.decode`` of these WordPiece tokens' ids (the official phrase; memoised: the explorer re-scores the
    same boxes many times)."""
    return tokenizer.decode(tokenizer.convert_tokens_to_ids(list(tokens)))


def decode_tokens(tokens: list[str]) -> str:
    """WordPiece tokens -> text (``##`` pieces glued, special tokens and dots dropped)."""
    words: list[str] = []
    for t in tokens:
        if t in SPECIAL_TOKENS or t == ".":
            continue
        if t.startswith("##") and words:
            words[-1] += t[2:]
        else:
            words.append(t)
    return " ".join(words)


@dataclass(frozen=True, kw_only=True)
class Detections:
    """Generator output for one image: every box whose confidence exceeds the stage's floor (immutable).

    boxes: (M, 4) float32 xyxy pixels, clipped to the image; cxcywh: (M, 4) float32 the model's raw normalised boxes
    (centre, size; not clipped: what the official code computes areas from and gives SAM); scores: (M,) float32 max
    token confidence; entry: (M,) int32 index into
    ``captions``; token_conf: (M, T) float32 confidence of each caption token (0-padded); tokens[e]: the tokens of
    caption e (length <= T).
    """

    boxes: np.ndarray
    scores: np.ndarray
    entry: np.ndarray
    token_conf: np.ndarray
    captions: list[str]
    tokens: list[list[str]]
    image_hw: tuple[int, int]
    cxcywh: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def phrases(self, text_threshold: float) -> list[str]:
        """The phrase of each box: its caption's tokens with confidence > ``text_threshold``."""
        out = []
        for conf, e in zip(self.token_conf, self.entry):
            toks = self.tokens[int(e)]
            out.append(decode_tokens([t for t, c in zip(toks, conf[: len(toks)]) if c > text_threshold]))
        return out

    def official_phrases(self, text_threshold: float, tokenizer) -> list[str]:
        """The phrase of each box as the official code builds it: ``tokenizer.decode`` of the caption's token ids whose
        confidence > ``text_threshold`` (special tokens and dots included, as decoded)."""
        out = []
        for conf, e in zip(self.token_conf, self.entry):
            toks = self.tokens[int(e)]
            out.append(decode_official(tokenizer, tuple(toks[i] for i in np.flatnonzero(conf[: len(toks)] >
                                                                                          text_threshold))))
        return out

    def raw_boxes(self) -> np.ndarray:
        """(M, 4) float32 normalised cx, cy, w, h (the clipped pixel boxes converted back where none were stored)."""
        if self.cxcywh is not None:
            return self.cxcywh
        h, w = self.image_hw
        b = self.boxes.astype(np.float64) / np.array([w, h, w, h])
        return np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], 1).astype(np.float32)

    def official_areas(self) -> np.ndarray:
        """(M,) float32 normalised box areas w * h of the raw (unclipped) boxes, computed in float32."""
        raw = self.raw_boxes()
        return raw[:, 2] * raw[:, 3]

    def official_pixel_boxes(self) -> np.ndarray:
        """(M, 4) float32 xyxy pixel boxes as the official code derives them from the raw boxes (not clipped):
        scale by (W, H, W, H), then x0 = cx - w / 2 and x1 = w + x0, in float32."""
        h, w = self.image_hw
        import torch

        b = torch.from_numpy(np.ascontiguousarray(self.raw_boxes(), np.float32)) * torch.tensor(
            [w, h, w, h], dtype=torch.float32)
        xy0 = b[:, :2] - b[:, 2:] / 2
        return torch.cat([xy0, b[:, 2:] + xy0], 1).numpy()

    def select(self, keep: np.ndarray) -> "Detections":
        keep = np.asarray(keep)
        return Detections(boxes=self.boxes[keep], scores=self.scores[keep], entry=self.entry[keep],
                          token_conf=self.token_conf[keep], captions=self.captions, tokens=self.tokens,
                          image_hw=self.image_hw, cxcywh=None if self.cxcywh is None else self.cxcywh[keep])

    def only(self, e: int) -> "Detections":
        """The boxes of caption ``e`` alone, as a one-caption :class:`Detections`."""
        keep = self.entry == e
        t = len(self.tokens[e])
        return Detections(boxes=self.boxes[keep], scores=self.scores[keep],
                          entry=np.zeros(int(keep.sum()), np.int32), token_conf=self.token_conf[keep][:, :t],
                          captions=[self.captions[e]], tokens=[self.tokens[e]], image_hw=self.image_hw,
                          cxcywh=None if self.cxcywh is None else self.cxcywh[keep])

    @staticmethod
    def empty(captions: list[str], tokens: list[list[str]], image_hw: tuple[int, int]) -> "Detections":
        t = max((len(x) for x in tokens), default=0)
        return Detections(boxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32),
                          entry=np.zeros(0, np.int32), token_conf=np.zeros((0, t), np.float32), captions=list(captions),
                          tokens=[list(x) for x in tokens], image_hw=image_hw, cxcywh=np.zeros((0, 4), np.float32))

    @staticmethod
    def concat(parts: list["Detections"]) -> "Detections":
        """Join detections of different captions of the same image (entry indices renumbered)."""
        captions, tokens, offset, rows = [], [], 0, []
        t = max((p.token_conf.shape[1] for p in parts), default=0)
        for p in parts:
            rows.append((p.boxes, p.scores, p.entry + offset,
                         np.pad(p.token_conf, ((0, 0), (0, t - p.token_conf.shape[1]))), p.raw_boxes()))
            captions += p.captions
            tokens += p.tokens
            offset += len(p.captions)
        if not parts:
            raise ValueError("nothing to concatenate")
        b, s, e, c, raw = (np.concatenate(x) for x in zip(*rows))
        return Detections(boxes=b.astype(np.float32), scores=s.astype(np.float32), entry=e.astype(np.int32),
                          token_conf=c.astype(np.float32), captions=captions, tokens=tokens,
                          image_hw=parts[0].image_hw, cxcywh=raw.astype(np.float32))

    def to_arrays(self) -> dict:
        return {"boxes": self.boxes, "scores": self.scores, "entry": self.entry, "token_conf": self.token_conf,
                "cxcywh": self.raw_boxes(), "captions": np.array(self.captions, dtype=str),
                "tokens": np.array(["\t".join(t) for t in self.tokens], dtype=str),
                "image_hw": np.array(self.image_hw)}

    @staticmethod
    def from_arrays(a: dict) -> "Detections":
        return Detections(boxes=a["boxes"], scores=a["scores"], entry=a["entry"], token_conf=a["token_conf"],
                          captions=[str(c) for c in a["captions"]],
                          tokens=[str(t).split("\t") if str(t) else [] for t in a["tokens"]],
                          image_hw=tuple(int(x) for x in a["image_hw"]), cxcywh=a.get("cxcywh"))


class ReadOnlyDict(dict):
    """A dict that refuses changes (the P^S maps of a frozen :class:`StageOutputs`); copies and pickles as a dict."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("the P^S maps of StageOutputs are read-only: make a new record with with_saliency")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self):
        return type(self), (dict(self),)


def read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a`` (the caller's array is left writable)."""
    view = np.asarray(a).view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, kw_only=True)
class StageOutputs:
    """What the expensive stages computed for one image (built by :meth:`saa_lib.pipeline.SAAPipeline.stages`, or by
    hand for a known case).

    ``entry_ids``: the prompt entries detected (indices into ``CategoryPrompts.entries``); ``prompts``: the identity
    of those prompts (:func:`saa_lib.prompts.language.prompts_identity`; scoring refuses other prompts; None for
    stages built by hand without it); ``detections``: the candidates of those entries; ``masks``: one per candidate,
    (M, R, R) at the evaluation resolution R (paper behaviour) or (M, H, W) at the image's (``official``: code
    behaviour), bit-packed (a dense bool array given here is packed); ``object_detections`` / ``object_masks``: the
    object prompt's boxes and masks (paper: (K, R, R) bool; code: the found objects' full-resolution masks, packed,
    where multi-instance saliency needs them); ``saliency_maps``: ``{saliency key: (map, region means or None)}``,
    every P^S map computed for these stages, under :func:`saa_lib.prompts.saliency.saliency_key` (the map at the
    masks' resolution; the (M,) mean inside each mask, computed here when None); ``area_limit``: the raw box area
    above which candidates were not segmented (code behaviour, pruned stages). Immutable: the maps are held read-only
    and :meth:`with_saliency` makes a new record.
    """

    image_hw: tuple[int, int]
    entry_ids: tuple[int, ...]
    detections: Detections
    masks: PackedMasks
    object_detections: Detections
    object_masks: np.ndarray | PackedMasks | None = None
    saliency_maps: dict = field(default_factory=dict)
    prompts: str | None = None
    official: bool = False
    area_limit: float | None = None

    def __post_init__(self):  # normalised once, when the record is made; never changed afterwards
        if not isinstance(self.masks, PackedMasks):
            object.__setattr__(self, "masks", PackedMasks.from_dense(self.masks))
        maps = {key: (read_only(m), read_only(self.official_or_paper_means(m) if means is None else means))
                for key, (m, means) in self.saliency_maps.items()}
        object.__setattr__(self, "saliency_maps", ReadOnlyDict(maps))

    def official_or_paper_means(self, saliency_map: np.ndarray) -> np.ndarray:
        """(M,) mean of ``saliency_map`` inside each mask (official stages: NaN for an empty mask, in the map's
        dtype)."""
        return self.masks.official_means(saliency_map) if self.official else self.masks.means(saliency_map)

    def packed_masks(self) -> PackedMasks:
        return self.masks

    @property
    def saliency(self) -> np.ndarray | None:
        """The P^S map when these stages hold exactly one (None when they hold none)."""
        if len(self.saliency_maps) > 1:
            raise ValueError(f"these stages hold {len(self.saliency_maps)} P^S maps: pick one with saliency_for(key)")
        return next(iter(self.saliency_maps.values()))[0] if self.saliency_maps else None

    def with_saliency(self, key: str, saliency_map: np.ndarray, means: np.ndarray | None = None) -> "StageOutputs":
        """These stages with the P^S map ``key`` (and its region means, when known) added."""
        return replace(self, saliency_maps={**self.saliency_maps, key: (saliency_map, means)})

    def saliency_for(self, key: str) -> np.ndarray:
        """The P^S map ``key``; a clear error when these stages do not hold it (computed with other saliency settings
        or objects, or without P^S)."""
        if key not in self.saliency_maps:
            raise ValueError("these stages hold no P^S map for this variant's saliency settings (and objects): "
                             "compute the stages with it (SAAPipeline.stages / run_variants, or with_saliency)")
        return self.saliency_maps[key][0]

    def region_saliency(self, key: str | None = None) -> np.ndarray:
        """(M,) mean of the P^S map ``key`` (None: the one map held) inside each mask (official stages: NaN for an
        empty mask, in the map's dtype)."""
        if key is None:
            if len(self.saliency_maps) != 1:
                raise ValueError(f"these stages hold {len(self.saliency_maps)} P^S maps: name one")
            key = next(iter(self.saliency_maps))
        self.saliency_for(key)  # a clear error when the map is missing
        return self.saliency_maps[key][1]


@dataclass(frozen=True, kw_only=True)
class Region:
    """One candidate region and what became of it (``removed_by`` is None for the regions fused into the map)."""

    box: list[float]
    prompt: str
    phrase: str
    confidence: float
    score: float
    mask_area: float
    saliency: float | None
    removed_by: str | None


@dataclass(frozen=True, kw_only=True)
class ImageResult:
    """anomaly_map: (R, R) float32; image_score: its max; regions: every candidate with its fate."""

    anomaly_map: np.ndarray
    image_score: float
    regions: list[Region] = field(default_factory=list)
    variant: str = ""

    def regions_json(self) -> list[dict]:
        return [asdict(r) for r in self.regions]
