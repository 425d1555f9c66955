"""Scoring: stage outputs -> anomaly map, for one variant, with no model run (milliseconds).

:func:`score` reads as the method does: box threshold -> each enabled prompt's keep rule (P^L
:mod:`~saa_lib.prompts.language`, P^P :mod:`~saa_lib.prompts.property`) -> P^S rescoring
(:mod:`~saa_lib.prompts.saliency`) -> P^C top-K (:mod:`~saa_lib.prompts.confidence`) -> fusion
(:mod:`~saa_lib.fusion`). Each prompt module owns its whole rule, including where the official code (``behaviour=
"code"`` on stages computed in code behaviour, ``official``) differs from the paper.
"""
from __future__ import annotations

import numpy as np

from .config import SAAConfig
from .fusion import fuse_regions, image_score, official_fuse
from .prompts.confidence import fused_regions, resolve_top_k
from .prompts.language import CategoryPrompts, language_keep, prompts_identity
from .prompts.property import check_area_limit, property_keep
from .prompts.saliency import cv2_resize, rescored, saliency_key
from .records import ImageResult, Region


class Fates:
    """What becomes of each candidate while a variant's prompts filter them: ``used`` (its prompt belongs to the
    variant), ``alive`` (still kept) and ``removed`` (the name of the step that removed it; None while alive)."""

    def __init__(self, entries, scores: np.ndarray, config: SAAConfig):
        self.used = np.array([config.use_language or e.kind == "agnostic" for e in entries], bool)
        self.alive = self.used & (scores > config.box_threshold)
        self.removed = np.array([None] * len(entries), dtype=object)
        self.removed[~self.alive] = "threshold"

    def drop(self, keep: np.ndarray, why: str) -> None:
        self.removed[self.alive & ~keep] = why
        self.alive = self.alive & keep


def saliency_only(saliency: np.ndarray, config: SAAConfig) -> ImageResult:
    """The ``saliency_only`` variant: the P^S map itself, at ``eval_resolution``, is the anomaly map."""
    r = config.eval_resolution
    sal = saliency if saliency.shape == (r, r) else cv2_resize(saliency, (r, r))
    return ImageResult(anomaly_map=sal.astype(np.float32), image_score=image_score(sal), variant=config.variant)


def score(st, prompts: CategoryPrompts, config: SAAConfig, tokenizer=None) -> ImageResult:
    """Apply ``config``'s hybrid prompts to the stage outputs ``st`` of one image and fuse the regions they keep.

    ``tokenizer``: GroundingDINO's, to decode phrases as the official code does (code behaviour on official stages;
    without it the phrases are joined from the tokens). Returns the (R, R) float32 map, its image score and every
    candidate of the variant's prompts with what removed it.
    """
    if st.prompts is not None and st.prompts != prompts_identity(prompts):
        raise ValueError(f"these stage outputs were computed for other prompts than those of {prompts.category!r} "
                         f"here (another category, behaviour or prompt list): compute the stages with these prompts")
    key = saliency_key(st, prompts, config) if config.use_saliency or config.saliency_only else None
    if config.saliency_only:
        return saliency_only(st.saliency_for(key), config)
    region_saliency = st.region_saliency(key) if config.use_saliency else None  # this variant's map, or an error
    official = st.official and config.behaviour == "code"
    if official:
        check_area_limit(st, prompts, config)
    det, masks = st.detections, st.packed_masks()
    entries = [prompts.entries[st.entry_ids[e]] for e in det.entry]
    phrases = (det.official_phrases(config.text_threshold, tokenizer) if official and tokenizer is not None
               else det.phrases(config.text_threshold))
    fates = Fates(entries, det.scores, config)  # the box threshold
    if config.use_language:
        fates.drop(language_keep(phrases, [e.object_phrase for e in entries], substring=official), "language")
    if config.use_property:
        fates.drop(property_keep(st, prompts, config, official), "property")
    values = rescored(det.scores, region_saliency, config.gain, official)
    k = resolve_top_k(config, prompts)
    fused, weights = fused_regions(values, fates.alive, k, official)
    if k is not None:
        kept = np.zeros(len(det), bool)
        kept[fused] = True
        fates.drop(kept, "confidence")
    if official:  # in the official top-K order, at the masks' resolution, then resized
        amap = official_fuse(masks.select(fused), weights, config.offset, config.eval_resolution).astype(np.float32)
    else:  # unpacked chunk by chunk
        amap = fuse_regions(masks.select(fused), weights, config.offset)
    areas = masks.areas() / float(np.prod(masks.shape[1:]) if official else config.eval_resolution ** 2)
    regions = [Region(box=[round(float(v), 2) for v in det.boxes[i]], prompt=det.captions[det.entry[i]],
                      phrase=phrases[i], confidence=float(det.scores[i]), score=float(values[i]),
                      mask_area=float(areas[i]), removed_by=fates.removed[i],
                      saliency=None if region_saliency is None else float(region_saliency[i]))
               for i in np.flatnonzero(fates.used)]
    return ImageResult(anomaly_map=amap, image_score=image_score(amap), regions=regions, variant=config.variant)
