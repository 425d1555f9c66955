"""The SAA / SAA+ pipeline: expensive stages (cached) then cheap scoring (hybrid prompts + fusion).

``SAAPipeline.stages`` runs generator, refiner and saliency for one image (each through the stage cache) and returns
them as one immutable :class:`~saa_lib.records.StageOutputs`; :func:`saa_lib.scoring.score` applies P^L, P^P, P^S,
P^C and the fusion for one variant, in milliseconds. ``run_variants`` scores any number of variants from one pass of
the expensive stages, which is how the ablation study is computed.

``behaviour="code"`` follows the official code step by step (see ``saa_lib.config.behaviour_table()``): GroundingDINO
gets the official transform of the RGB image, SAM and the saliency backbone the BGR image (the official code reads
images with OpenCV), boxes stay unclipped, masks, region saliency and fusion work at the image's own resolution and
the fused map is ``cv2.resize``'d to ``eval_resolution``. Masks are bit-packed as SAM decodes them (chunk by chunk)
and stored compressed. ``behaviour="paper"`` works at ``eval_resolution`` throughout.

The pipeline holds no state of a category: P^S against other images of the category (batch, few-shot) takes the
category's :class:`saa_lib.peers.PeerSaliency` as the ``peers`` argument of each call.
"""
from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import torch

from .cache import StageCache, StageKeys
from .config import SAAConfig
from .generator import Detections, Generator, normalize_caption
from .masks import PackedMasks, resize_masks
from .prompts.language import CategoryPrompts, prompts_identity
from .prompts.property import area_limit
from .prompts.saliency import (cv2_resize, instance_objects, multi_instance_saliency, official_features, official_grid,
                               official_multi_instance_grid, saliency_key, saliency_map)
from .records import ImageResult, StageOutputs
from .refiner import Refiner
from .scoring import score
from .utils import image_digest

MIN_IMAGE_SIDE = 32


def bgr(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 with the channels reversed (RGB <-> BGR), contiguous."""
    return np.ascontiguousarray(image[..., ::-1])


def check_image(image: np.ndarray, name: str = "image") -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name}: expected an (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}")
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        raise ValueError(f"{name}: image is {image.shape[1]}x{image.shape[0]} px; SAA+ needs at least "
                         f"{MIN_IMAGE_SIDE} px per side (upsample it first)")


class SAAPipeline:
    """Composes the stages for one set of models.

    ``models``: a :class:`saa_lib.weights.zoo.Models` (``gdino``, ``sam``, ``saliency``, ``identity``, GDINO input sizes).
    ``cache``: a :class:`StageCache` (None: an in-memory-free, always-compute cache).
    """

    def __init__(self, models, cache: StageCache | None = None, autocast: torch.dtype | None = None,
                 max_per_caption: int = 100):
        self.models = models
        self.cache = cache if cache is not None else StageCache(enabled=False)
        has_detector = getattr(models, "gdino", None) is not None  # saliency-only model sets have none
        self.generator = (Generator(models.gdino, models.gdino_min_size, models.gdino_max_size, autocast=autocast)
                          if has_detector else None)
        self.refiner = Refiner(models.sam, autocast=autocast) if has_detector else None
        self.autocast = autocast
        # mixed precision changes the numbers: its stage results get their own cache entries
        self._amp = None if autocast is None else str(autocast)
        self.max_per_caption = max_per_caption

    # ----- expensive stages -------------------------------------------------------------------------------------------
    def keys(self, digest: str) -> StageKeys:
        """The cache keys of the image with this ``digest`` (:func:`saa_lib.utils.image_digest`) under these models."""
        return StageKeys.of(digest, self.models, self._amp)

    def _detect(self, image, keys: StageKeys, captions: list[str], single_caption: bool,
                official: bool = False) -> list[Detections]:
        """Detections per caption, each cached on its own; the missing ones run as one batched forward.
        ``official``: the official input transform and no per-caption cap (every query above the floor is kept)."""
        cap = None if official else self.max_per_caption
        g = self.generator
        settings = {"min_size": g.min_size, "max_size": g.max_size, "floor": g.floor, "cap": cap, "official": official}
        if single_caption and len(captions) > 1:
            key = keys.generator([normalize_caption(c) for c in captions], joined=True, **settings)
            d = self.cache.get("generator", key, lambda: self._cap(self.generator.detect(
                image, captions, single_caption=True, official_input=official), cap).to_arrays())
            joined = Detections.from_arrays(d)
            return [joined.only(e) for e in range(len(captions))]
        names = [self.cache.key("generator", keys.generator([normalize_caption(c)], **settings)) for c in captions]
        found = [self.cache.load("generator", k) for k in names]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            fresh = self._cap(self.generator.detect(image, [captions[i] for i in missing], official_input=official),
                              cap)
            for j, i in enumerate(missing):
                found[i] = fresh.only(j).to_arrays()
                self.cache.save("generator", names[i], found[i])
        return [Detections.from_arrays(f) for f in found]

    @staticmethod
    def _cap(det: Detections, cap: int | None) -> Detections:
        """At most ``cap`` most confident boxes per caption (all of them for None)."""
        if cap is None:
            return det
        keep = np.zeros(len(det), bool)
        for e in np.unique(det.entry):
            idx = np.flatnonzero(det.entry == e)
            keep[idx[np.argsort(-det.scores[idx], kind="stable")[:cap]]] = True
        return det.select(keep)

    def _segment(self, image, keys: StageKeys, det: Detections, size: int) -> PackedMasks:
        d = self.cache.get("refiner", keys.masks(det.boxes, size), lambda: {"masks": np.packbits(
            resize_masks(self.refiner.segment(image, det.boxes, image_key=keys.digest), size), axis=-1)})
        return PackedMasks(d["masks"].reshape(len(det), size, -1), size)

    def _segment_full(self, image_bgr, keys: StageKeys, det: Detections) -> PackedMasks:
        """Code behaviour: masks of the raw boxes on the BGR image, at full resolution, packed and compressed."""
        boxes = det.official_pixel_boxes()
        d = self.cache.get("refiner", keys.full_masks(boxes), lambda: {"masks": self.refiner.segment_packed(
            image_bgr, boxes, image_key=f"{keys.digest}:bgr").bits}, compress=True)
        return PackedMasks(d["masks"], image_bgr.shape[1])

    def _official_saliency(self, st: StageOutputs, image_bgr, keys: StageKeys, objects, config: SAAConfig,
                           key: dict) -> np.ndarray:
        """Code behaviour: the P^S map at the image's resolution (cache entry ``key``). Single instance: the official
        64 x 64 grid (float32); several ``objects``: the official multi-instance grid on their SAM masks (float64), or
        the single-instance grid where the official code would fail (fewer than two objects with mask pixels on the
        grid). Only the grid is cached; it is ``cv2.resize``'d to the image size here."""
        backbone = self.models.saliency

        def compute():
            sc = config.saliency
            grid = None
            if objects is not None:
                masks = self._segment_full(image_bgr, keys, objects)
                feats = official_features(backbone, image_bgr, sc.multi_instance_size, self.autocast)
                grid = official_multi_instance_grid(feats, (masks[i] for i in range(len(masks))), sc.chunk_size)
            if grid is None:
                grid = official_grid(official_features(backbone, image_bgr, sc.input_size, self.autocast),
                                     sc.neighbours)
            return {"grid": grid}

        grid = self.cache.get("saliency", key, compute)["grid"]
        return cv2_resize(grid, st.image_hw)

    def _saliency(self, image, keys: StageKeys, config: SAAConfig, boxes: np.ndarray | None = None,
                  peers=None) -> tuple[np.ndarray, dict]:
        """(the P^S map at the evaluation resolution, its cache key): of the image with itself (with ``boxes``: of
        each object with the others), or against other images (``config.saliency.peers``, computed by ``peers``)."""
        r, sc = config.eval_resolution, config.saliency
        if sc.peers is None:
            key = keys.saliency(asdict(sc), r, boxes)

            def compute():
                if boxes is None:
                    return {"saliency": saliency_map(image, self.models.saliency, sc, (r, r), self.autocast)}
                return {"saliency": multi_instance_saliency(image, self.models.saliency, boxes, sc, (r, r),
                                                            self.autocast)}
        else:
            key = keys.saliency(asdict(sc), r, None, peers.compared_with(keys.digest, sc.peers))
            own = config.with_(saliency={"peers": None})  # the image's own map, for the peers' combination

            def compute():
                return {"saliency": peers.saliency_map(image, keys.digest, sc.peers, (r, r),
                                                       lambda: self._saliency(image, keys, own)[0])}
        return self.cache.get("saliency", key, compute)["saliency"], key

    def _check_peers(self, peers, prompts: CategoryPrompts, config: SAAConfig) -> None:
        """A clear error unless ``peers`` can serve ``config``'s P^S against other images for this category."""
        if peers is None:
            raise ValueError(f"{config.saliency.source} saliency compares each image with other images of its "
                             "category: build them once, peers = saa_lib.peers.PeerSaliency(models, cache, "
                             f"category={prompts.category!r}, batch=images or references=images), and pass "
                             "peers=peers")
        if peers.category != prompts.category:
            raise ValueError(f"these peers are images of category {peers.category!r}, not of {prompts.category!r}: "
                             "build one PeerSaliency per category")
        mine, theirs = self.keys("").backbone, StageKeys.of("", peers.models).backbone
        if mine != theirs:
            raise ValueError(f"the peers' features come from another saliency backbone ({theirs}) than this "
                             f"pipeline's ({mine})")

    def with_saliency(self, st: StageOutputs, image, prompts: CategoryPrompts, config: SAAConfig,
                      keys: StageKeys | None = None, peers=None) -> StageOutputs:
        """``st`` with the P^S map ``config`` scores with, and the mean saliency inside each candidate mask, both
        through the cache (one entry per caption's masks, as the refiner stores them), so re-scoring never unpacks
        all masks again; ``st`` itself when it holds that map already. ``keys``: the image's (hashed here if None);
        ``peers``: the category's :class:`saa_lib.peers.PeerSaliency` when ``config`` compares with other images."""
        tag = saliency_key(st, prompts, config)
        if tag in st.saliency_maps:
            return st
        keys = self.keys(image_digest(image)) if keys is None else keys
        if config.saliency.peers is not None:  # resolved: None and the value it stands for share one cache entry
            self._check_peers(peers, prompts, config)
            config = config.with_(saliency={"peers": peers.resolve(config.saliency.peers)})
        objects = instance_objects(st, prompts, config)
        if st.official and config.saliency.peers is None:  # code behaviour's own P^S map
            sal_key = keys.official_saliency(asdict(config.saliency),
                                             None if objects is None else objects.official_pixel_boxes())
            saliency = self._official_saliency(st, bgr(image), keys, objects, config, sal_key)
        else:
            saliency, sal_key = self._saliency(image, keys, config, None if objects is None else objects.boxes, peers)
            if st.official:  # a batch / few-shot map (beyond the official code) is resized to the image's masks
                saliency = cv2_resize(saliency, st.image_hw)
        det, masks = st.detections, st.packed_masks()
        means = np.zeros(len(det), dtype=saliency.dtype if st.official else np.float64)
        for e in range(len(det.captions)):
            rows = np.flatnonzero(det.entry == e)
            if rows.size:
                sub = det.only(e)
                mkey = (keys.full_masks(sub.official_pixel_boxes()) if st.official
                        else keys.masks(sub.boxes, config.eval_resolution))
                means[rows] = self.cache.get("region_saliency", keys.region_saliency(mkey, sal_key), lambda: {
                    "means": (masks.select(rows).official_means(saliency) if st.official
                              else masks.select(rows).means(saliency))})["means"]
        return st.with_saliency(tag, saliency, means)

    def stages(self, image: np.ndarray, prompts: CategoryPrompts, config: SAAConfig,
               entry_ids: tuple[int, ...] | None = None, need_saliency: bool | None = None,
               prune: bool = False, also_for: list[SAAConfig] = (), digest: str | None = None,
               peers=None) -> StageOutputs:
        """Run (or load) generator, refiner and saliency for ``image`` (H, W, 3) uint8; the stages serve any variant.
        ``digest``: the image's :func:`saa_lib.utils.image_digest` when the caller has it (computed here otherwise);
        ``peers``: the category's :class:`saa_lib.peers.PeerSaliency` when ``config`` compares with other images.

        ``prune`` (code behaviour; what :meth:`run` and :meth:`run_variants` do): segment only the candidates the
        variants can keep: when ``config`` and every config in ``also_for`` use P^P, boxes at least as large as P^P's
        limit for any box threshold are dropped before SAM (the official code segments only the boxes that pass its
        filters). ``StageOutputs.area_limit`` records the limit; scoring a variant that could keep larger boxes on
        such stages raises."""
        check_image(image)
        keys = self.keys(image_digest(image) if digest is None else digest)
        r = config.eval_resolution
        official = config.behaviour == "code"
        entry_ids = prompts.select(config.use_language) if entry_ids is None else tuple(entry_ids)
        if config.saliency_only:
            entry_ids = ()
        captions = [prompts.entries[i].caption for i in entry_ids]
        hw = tuple(image.shape[:2])
        if config.saliency_only:
            parts, obj = [], Detections.empty([], [], hw)
        elif self.generator is None:
            raise ValueError(f"variant {config.variant!r} needs GroundingDINO and SAM; these models are saliency-only")
        elif config.single_caption:
            parts = self._detect(image, keys, captions, True, official) if captions else []
            obj = self._detect(image, keys, [prompts.object_caption], False, official)[0]
        else:  # the object prompt joins the entries' forward (one image backbone pass for all)
            *parts, obj = self._detect(image, keys, captions + [prompts.object_caption], False, official)
        ident = prompts_identity(prompts)
        if official:
            image_bgr = bgr(image)
            limits = [area_limit(obj, prompts, c) for c in [config, *also_for] if not c.saliency_only]
            limit = max(limits) if prune and limits and all(v is not None for v in limits) else None
            if limit is not None:
                parts = [p.select(p.official_areas() < limit) for p in parts]
            st = StageOutputs(image_hw=hw, entry_ids=entry_ids, prompts=ident, official=True, area_limit=limit,
                              detections=Detections.concat(parts) if parts else Detections.empty([], [], hw),
                              masks=PackedMasks.concat([self._segment_full(image_bgr, keys, p) for p in parts], hw),
                              object_detections=obj)
            objects = instance_objects(st, prompts, config)
            if objects is not None and len(objects):
                st = replace(st, object_masks=self._segment_full(image_bgr, keys, objects))
        else:
            st = StageOutputs(image_hw=hw, entry_ids=entry_ids, prompts=ident,
                              detections=Detections.concat(parts) if parts else Detections.empty([], [], hw),
                              masks=PackedMasks.concat([self._segment(image, keys, p, r) for p in parts], (r, r)),
                              object_detections=obj, object_masks=self._segment(image, keys, obj, r)[:] if len(obj)
                              else None)
        if (config.use_saliency or config.saliency_only) if need_saliency is None else need_saliency:
            st = self.with_saliency(st, image, prompts, config, keys, peers)
        return st

    # ----- cheap scoring ----------------------------------------------------------------------------------------------
    @property
    def tokenizer(self):
        """GroundingDINO's tokenizer (official phrase decoding), None for saliency-only models."""
        return self.generator.model.tokenizer if self.generator is not None else None

    def score(self, st: StageOutputs, prompts: CategoryPrompts, config: SAAConfig) -> ImageResult:
        """:func:`saa_lib.scoring.score` with these models' tokenizer (no model is run)."""
        return score(st, prompts, config, tokenizer=self.tokenizer)

    def run(self, image: np.ndarray, prompts: CategoryPrompts, config: SAAConfig, peers=None) -> ImageResult:
        """One image, one variant (``peers``: see :meth:`stages`)."""
        return self.score(self.stages(image, prompts, config, prune=True, peers=peers), prompts, config)

    def run_variants(self, image: np.ndarray, prompts: CategoryPrompts, configs: list[SAAConfig],
                     peers=None) -> list[ImageResult]:
        """Several variants from one pass of the expensive stages (the union of what they need; ``peers``: see
        :meth:`stages`).

        The variants must share ``eval_resolution`` and ``single_caption``; saliency maps are computed once per
        distinct saliency setting, object masks whenever one variant follows the paper.
        """
        if len({(c.eval_resolution, c.single_caption) for c in configs}) > 1:
            raise ValueError("run_variants: variants must share eval_resolution and single_caption")
        keys = self.keys(image_digest(image))
        out: dict[int, ImageResult] = {}
        for behaviour in dict.fromkeys(c.behaviour for c in configs):  # code and paper stages differ
            group = [(i, c) for i, c in enumerate(configs) if c.behaviour == behaviour]
            detecting = [c for _, c in group if not c.saliency_only]
            base = detecting[0] if detecting else group[0][1]
            entries = tuple(sorted({i for c in detecting for i in prompts.select(c.use_language)}))
            st = self.stages(image, prompts, base, entries, need_saliency=False, prune=True, also_for=detecting,
                             digest=keys.digest)
            for c in (c for _, c in group if c.use_saliency or c.saliency_only):
                st = self.with_saliency(st, image, prompts, c, keys, peers)  # each distinct saliency map once
            for i, c in group:
                out[i] = self.score(st, prompts, c)
        return [out[i] for i in range(len(configs))]
