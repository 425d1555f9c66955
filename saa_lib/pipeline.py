"""The SAA / SAA+ pipeline: expensive stages (cached) then cheap scoring (hybrid prompts + fusion).

``SAAPipeline.stages`` runs generator, refiner and saliency for one image (each through the stage cache);
``score`` applies P^L, P^P, P^S, P^C and the fusion for one variant, in milliseconds. ``run_variants`` scores any number
of variants from one pass of the expensive stages, which is how the ablation study is computed.

``behaviour="code"`` follows the official code step by step (see ``saa_lib.config.behaviour_table()``): GroundingDINO
gets the official transform of the RGB image, SAM and the saliency backbone the BGR image (the official code reads
images with OpenCV), boxes stay unclipped, masks, region saliency and fusion work at the image's own resolution and
the fused map is ``cv2.resize``'d to ``eval_resolution``. Masks are bit-packed as SAM decodes them (chunk by chunk)
and stored compressed. ``behaviour="paper"`` works at ``eval_resolution`` throughout.
"""
from __future__ import annotations

import hashlib

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .cache import StageCache
from .config import SAAConfig
from .fusion import fuse_regions, image_score, official_fuse
from .generator import Detections, Generator, normalize_caption
from .masks import PackedMasks, resize_masks
from .prompts.confidence import official_top_k, top_k_keep
from .prompts.language import CategoryPrompts, language_keep
from .prompts.property import (object_boxes_keep, object_reference_area, official_object_area, official_object_keep,
                               official_property_keep, property_keep_boxes, property_keep_stats)
from .prompts.saliency import (cv2_resize, multi_instance_saliency, official_features, official_grid,
                               official_multi_instance_grid, official_rescore, rescore, saliency_map)
from .prompts.saliency_sources import combine_with_image, dihedral, order_key, source_features, source_map
from .refiner import Refiner
from .utils import image_digest, settings_digest

MIN_IMAGE_SIDE = 32
#: settings of the batch / few-shot saliency sources (no part of the single-image map's cache key)
_SOURCE_SETTINGS = ("source", "shots", "source_size", "pool", "batch_fraction", "augment_references", "smooth_sigma",
                    "with_image")


@dataclass
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


@dataclass
class StageOutputs:
    """The expensive, cached results for one image.

    detections: candidates of every prompt entry in ``entry_ids`` (indices into ``CategoryPrompts.entries``);
    masks: (M, R, R) bool, one per detection, at the evaluation resolution R (paper behaviour) or (M, H, W) at the
    image's own resolution (``official``: code behaviour), as a dense array or a :class:`~saa_lib.masks.PackedMasks`
    (what the pipeline returns: only the masks that are fused get unpacked); object_detections / object_masks: the
    object prompt's boxes and masks (paper behaviour: (K, R, R) dense; code behaviour: the found objects' full
    resolution masks, packed, only where multi-instance saliency needs them); saliency: the P^S map at the masks'
    resolution (float32; float64 for the official multi-instance form) or None.
    """

    image_hw: tuple[int, int]
    entry_ids: tuple[int, ...]
    detections: Detections
    masks: np.ndarray | PackedMasks
    object_detections: Detections
    object_masks: np.ndarray | None
    saliency: np.ndarray | None
    official: bool = False
    area_limit: float | None = None
    _saliency_means: tuple = field(default=(None, None), repr=False, compare=False)

    def packed_masks(self) -> PackedMasks:
        if not isinstance(self.masks, PackedMasks):
            self.masks = PackedMasks.from_dense(self.masks)
        return self.masks

    def region_saliency(self, known: np.ndarray | None = None) -> np.ndarray:
        """(M,) mean of the current ``saliency`` inside each mask, computed once per saliency map (``known``: the
        values for it, e.g. from the stage cache)."""
        if self.saliency is None:
            raise ValueError("this variant uses P^S: compute the stages with the saliency map")
        if self._saliency_means[0] is not self.saliency:  # a new map: never serve another map's means
            if known is not None:
                means = known
            elif self.official:  # NaN for an empty mask, the map's dtype
                means = self.packed_masks().official_means(self.saliency)
            else:
                means = self.packed_masks().means(self.saliency)
            self._saliency_means = (self.saliency, means)
        return self._saliency_means[1]


@dataclass
class ImageResult:
    """anomaly_map: (R, R) float32; image_score: its max; regions: every candidate with its fate."""

    anomaly_map: np.ndarray
    image_score: float
    regions: list[Region] = field(default_factory=list)
    variant: str = ""

    def regions_json(self) -> list[dict]:
        return [asdict(r) for r in self.regions]


def resize_map(amap: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(h, w) float -> (H, W) float32, bilinear."""
    t = torch.from_numpy(np.ascontiguousarray(amap, dtype=np.float32))[None, None]
    return F.interpolate(t, size=tuple(hw), mode="bilinear", align_corners=False)[0, 0].numpy()


def found_objects(st: "StageOutputs", prompts: CategoryPrompts, config: SAAConfig) -> tuple[np.ndarray, int]:
    """(keep (K,) bool over ``st.object_detections``, object count): the object boxes a variant counts, those above
    the box threshold and no larger than one object's share of the image (count from the config or the table)."""
    count = config.object_count if config.object_count is not None else prompts.count
    obj = st.object_detections
    if st.official:  # raw float32 areas, 0 < area < 1 / count (also for one object)
        return (obj.scores > config.box_threshold) & official_object_keep(obj.official_areas(), count), count
    return (obj.scores > config.box_threshold) & object_boxes_keep(obj.boxes, st.image_hw, count), count


def bgr(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 with the channels reversed (RGB <-> BGR), contiguous."""
    return np.ascontiguousarray(image[..., ::-1])


def _boxes_digest(boxes: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(boxes, np.float32).tobytes()).hexdigest()


def check_image(image: np.ndarray, name: str = "image") -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name}: expected an (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}")
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        raise ValueError(f"{name}: image is {image.shape[1]}x{image.shape[0]} px; SAA+ needs at least "
                         f"{MIN_IMAGE_SIDE} px per side (upsample it first)")


class _Fates:
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


class SAAPipeline:
    """Composes the stages for one set of models.

    ``models``: a :class:`saa_lib.zoo.Models` (``gdino``, ``sam``, ``saliency``, ``identity``, GDINO input sizes).
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
        # mixed precision changes the numbers: its stage results get their own cache entries (none added for float32,
        # so existing entries stay valid)
        self._amp = {} if autocast is None else {"autocast": str(autocast)}
        self.max_per_caption = max_per_caption
        self.peers: dict = {"batch": [], "references": []}  # images of the category (see set_peers)
        self._peer_features: dict = {}

    # ----- expensive stages -------------------------------------------------------------------------------------------
    def _detect(self, image, digest, captions: list[str], single_caption: bool,
                official: bool = False) -> list[Detections]:
        """Detections per caption, each cached on its own; the missing ones run as one batched forward.
        ``official``: the official input transform and no per-caption cap (every query above the floor is kept)."""
        cap = None if official else self.max_per_caption
        common = {"image": digest, "model": self.models.identity, "min": self.generator.min_size,
                  "max": self.generator.max_size, "floor": self.generator.floor, "cap": cap, "v": 2,
                  **({"input": "official"} if official else {}), **self._amp}
        if single_caption and len(captions) > 1:
            key = {**common, "captions": [normalize_caption(c) for c in captions], "joined": True}
            d = self.cache.get("generator", key, lambda: self._cap(self.generator.detect(
                image, captions, single_caption=True, official_input=official), cap).to_arrays())
            joined = Detections.from_arrays(d)
            return [joined.only(e) for e in range(len(captions))]
        keys = [self.cache.key("generator", {**common, "caption": normalize_caption(c)}) for c in captions]
        found = [self.cache.load("generator", k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            fresh = self._cap(self.generator.detect(image, [captions[i] for i in missing], official_input=official),
                              cap)
            for j, i in enumerate(missing):
                found[i] = fresh.only(j).to_arrays()
                self.cache.save("generator", keys[i], found[i])
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

    def _mask_key(self, digest: str, det: Detections, size: int) -> dict:
        return {"image": digest, "model": self.models.identity, "boxes": settings_digest(
            {"b": np.round(det.boxes, 3).tolist()}), "size": size, **self._amp}

    def _segment(self, image, digest, det: Detections, size: int) -> PackedMasks:
        d = self.cache.get("refiner", self._mask_key(digest, det, size), lambda: {"masks": np.packbits(
            resize_masks(self.refiner.segment(image, det.boxes), size), axis=-1)})
        return PackedMasks(d["masks"].reshape(len(det), size, -1), size)

    def _full_mask_key(self, digest: str, det: Detections) -> dict:
        return {"image": digest, "model": self.models.identity, "colour": "bgr", "size": "full",
                "boxes": _boxes_digest(det.official_pixel_boxes()), **self._amp}

    def _segment_full(self, image_bgr, digest, det: Detections) -> PackedMasks:
        """Code behaviour: masks of the raw boxes on the BGR image, at full resolution, packed and compressed."""
        d = self.cache.get("refiner", self._full_mask_key(digest, det), lambda: {
            "masks": self.refiner.segment_packed(image_bgr, det.official_pixel_boxes()).bits}, compress=True)
        return PackedMasks(d["masks"], image_bgr.shape[1])

    def _official_objects(self, st: StageOutputs, prompts: CategoryPrompts, config: SAAConfig) -> Detections | None:
        """Code behaviour: the object boxes whose masks multi-instance saliency compares (None: single-instance)."""
        keep, count = found_objects(st, prompts, config)
        if not config.saliency.multi_instance or count <= 1 or config.saliency_only:
            return None
        return st.object_detections.select(keep)

    def _official_saliency(self, st: StageOutputs, image_bgr, digest, prompts: CategoryPrompts,
                           config: SAAConfig) -> tuple[np.ndarray, dict]:
        """Code behaviour: the P^S map at the image's resolution and its cache key. Single instance: the official
        64 x 64 grid (float32); several objects: the official multi-instance grid on the found objects' SAM masks
        (float64), or the single-instance grid where the official code would fail (fewer than two objects with
        mask pixels on the grid). Only the grid is cached; it is ``cv2.resize``'d to the image size here."""
        objects = self._official_objects(st, prompts, config)
        backbone = self.models.saliency
        key = {"image": digest, "backbone": getattr(backbone, "identity", backbone.name), "colour": "bgr",
               "settings": asdict(config.saliency), "v": "official", **self._amp,
               "objects": None if objects is None else self._full_mask_key(digest, objects)}

        def compute():
            sc = config.saliency
            grid = None
            if objects is not None:
                masks = self._segment_full(image_bgr, digest, objects)
                feats = official_features(backbone, image_bgr, sc.multi_instance_size, self.autocast)
                grid = official_multi_instance_grid(feats, (masks[i] for i in range(len(masks))), sc.chunk_size)
            if grid is None:
                grid = official_grid(official_features(backbone, image_bgr, sc.input_size, self.autocast),
                                     sc.neighbours)
            return {"grid": grid}

        grid = self.cache.get("saliency", key, compute)["grid"]
        return cv2_resize(grid, st.image_hw), key

    def _instance_boxes(self, st: StageOutputs, prompts: CategoryPrompts, config: SAAConfig) -> np.ndarray | None:
        """The object boxes multi-instance saliency compares (None: the image is compared with itself as usual)."""
        keep, count = found_objects(st, prompts, config)
        if not (config.saliency.multi_instance and count > 1) or config.saliency_only or keep.sum() < 2:
            return None
        return st.object_detections.boxes[keep]

    def _saliency_key(self, digest: str, config: SAAConfig, boxes: np.ndarray | None) -> dict:
        backbone = self.models.saliency
        settings = asdict(config.saliency)
        if boxes is None:  # these settings play no part (and keys made before they existed stay valid)
            for name in ("multi_instance", "multi_instance_size"):
                del settings[name]
        else:
            settings["instances"] = np.round(boxes, 3).tolist()
        if config.saliency.source == "image":
            for name in _SOURCE_SETTINGS:
                del settings[name]
        else:  # keyed by the set of images compared with
            settings["peers"] = self._peer_digests(digest, config)
        return {"image": digest, "backbone": getattr(backbone, "identity", backbone.name),
                "settings": settings, "size": config.eval_resolution, **self._amp}

    def _saliency(self, image, digest, config: SAAConfig, boxes: np.ndarray | None = None) -> np.ndarray:
        r = config.eval_resolution

        def compute():
            if config.saliency.source != "image":
                return {"saliency": self._other_images_saliency(image, digest, config)}
            if boxes is None:
                return {"saliency": saliency_map(image, self.models.saliency, config.saliency, (r, r), self.autocast)}
            return {"saliency": multi_instance_saliency(image, self.models.saliency, boxes, config.saliency, (r, r),
                                                        self.autocast)}

        return self.cache.get("saliency", self._saliency_key(digest, config, boxes), compute)["saliency"]

    # ----- saliency from other images (batch / few-shot) ---------------------------------------------------------------
    def set_peers(self, configs: list[SAAConfig], batch=(), references=()) -> dict:
        """Give the images a ``batch`` / ``fewshot`` saliency map is computed against, for ``configs``.

        ``batch``: the category's test images (each image is scored against the others of this set, whatever their
        order); ``references``: normal images in order (the first ``shots`` are used). Each item is an (H, W, 3)
        uint8 array or a callable returning one: images are read one at a time, their features extracted (through the
        stage cache) for every setting ``configs`` need and kept in memory for the category, the pixels dropped.
        Returns ``peers``: the digests of each set (the batch as a sorted set)."""
        wanted = [c for c in configs if c.saliency.source != "image"]
        self._peer_features = {}
        used = {"batch": [], "references": []}
        for name, items in (("batch", batch), ("references", references)):
            for i, item in enumerate(items):
                image = item() if callable(item) else item
                check_image(image, f"saliency {name} image {i}")
                digest = image_digest(image)
                used[name].append(digest)
                for c in wanted:
                    aug = name == "references" and c.saliency.source == "fewshot" and c.saliency.augment_references
                    for t in range(8) if aug else (0,):
                        self._source_features(image, digest, c, t)
        self.peers = {"batch": order_key(used["batch"]), "references": used["references"]}
        return self.peers

    def _source_features(self, image, digest: str, config: SAAConfig, transform: int = 0) -> torch.Tensor:
        """(P, D) batch / few-shot patch features of one image (``transform``: :func:`dihedral` index), through the
        stage cache; kept in memory until the next :meth:`set_peers`."""
        s = config.saliency
        tag = (digest, s.source_size, s.pool, transform)
        if tag not in self._peer_features:
            if image is None:
                raise ValueError("saliency peer features missing: pass the image to SAAPipeline.set_peers first")
            backbone = self.models.saliency
            key = {"image": digest, "backbone": getattr(backbone, "identity", backbone.name), "size": s.source_size,
                   "pool": s.pool, "transform": transform, **self._amp}
            feats = self.cache.get("saliency_features", key, lambda: {"features": source_features(
                backbone, dihedral(image, transform), s.source_size, s.pool, self.autocast).cpu().numpy()})
            self._peer_features[tag] = torch.from_numpy(feats["features"]).to(next(backbone.parameters()).device)
        return self._peer_features[tag]

    def _peer_digests(self, digest: str, config: SAAConfig) -> list[str]:
        """The images ``digest`` is compared with: the other batch images (sorted), or the first ``shots``
        references; a clear error when they are missing."""
        s = config.saliency
        if s.source == "batch":
            others = [d for d in self.peers["batch"] if d != digest]
            if not others:
                raise ValueError("batch saliency needs the other test images of the category: call "
                                 "SAAPipeline.set_peers(batch=...) with at least two images")
            return others
        refs = self.peers["references"]
        if len(refs) < s.shots:
            raise ValueError(f"few-shot saliency with {s.shots} shot(s) needs that many normal reference images "
                             f"(train/good); {len(refs)} given to SAAPipeline.set_peers(references=...)")
        return refs[:s.shots]

    def _other_images_saliency(self, image, digest: str, config: SAAConfig) -> np.ndarray:
        """(R, R) batch or few-shot map of ``image``, combined with its single-image map when ``with_image``."""
        s, r = config.saliency, config.eval_resolution
        transforms = range(8) if s.source == "fewshot" and s.augment_references else (0,)
        peers = [self._source_features(None, d, config, t).flatten(0, 1)
                 for d in self._peer_digests(digest, config) for t in transforms]
        amap = source_map(self._source_features(image, digest, config), peers, s.source, (r, r), s.batch_fraction,
                          s.smooth_sigma, s.chunk_size)
        if s.with_image:
            amap = combine_with_image(amap, self._saliency(image, digest, config.with_(saliency={"source": "image"})))
        return amap

    def _attach_saliency(self, st: StageOutputs, image, digest, prompts: CategoryPrompts, config: SAAConfig,
                         memo: dict | None = None) -> None:
        """Set ``st.saliency`` for ``config`` and the mean saliency inside each candidate mask, both through the cache
        (one entry per caption's masks, as the refiner stores them), so re-scoring never unpacks all masks again.
        ``memo``: maps already attached in this pass, by saliency key."""
        # code behaviour's own P^S map; a batch / few-shot map (beyond the official code) is resized to the image
        official_map = st.official and config.saliency.source == "image"
        if official_map:
            image_bgr, sal_key = bgr(image), None
            objects = self._official_objects(st, prompts, config)
            tag = settings_digest({"official": True, "settings": asdict(config.saliency), "objects": None if
                                   objects is None else _boxes_digest(objects.official_pixel_boxes())})
        else:
            boxes = self._instance_boxes(st, prompts, config) if config.saliency.source == "image" else None
            sal_key = self._saliency_key(digest, config, boxes)
            tag = settings_digest(sal_key)
        if memo is not None and tag in memo:
            st.saliency = memo[tag][0]
            st.region_saliency(known=memo[tag][1])
            return
        if official_map:
            st.saliency, sal_key = self._official_saliency(st, image_bgr, digest, prompts, config)
        else:
            st.saliency = self._saliency(image, digest, config, boxes)
            if st.official:  # masks are at the image's resolution
                st.saliency = cv2_resize(st.saliency, st.image_hw)
        det, masks = st.detections, st.packed_masks()
        means = np.zeros(len(det), dtype=st.saliency.dtype if st.official else np.float64)
        for e in range(len(det.captions)):
            rows = np.flatnonzero(det.entry == e)
            if rows.size:
                sub = det.only(e)
                mkey = (self._full_mask_key(digest, sub) if st.official
                        else self._mask_key(digest, sub, config.eval_resolution))
                key = {"masks": mkey, "saliency": sal_key}
                means[rows] = self.cache.get("region_saliency", key, lambda: {
                    "means": (masks.select(rows).official_means(st.saliency) if st.official
                              else masks.select(rows).means(st.saliency))})["means"]
        st.region_saliency(known=means)
        if memo is not None:
            memo[tag] = (st.saliency, means)

    def _area_limit(self, st: StageOutputs, prompts: CategoryPrompts, config: SAAConfig):
        """Code behaviour: the largest raw box area P^P can keep under ``config`` for any box threshold (the object
        area taken over every object box above the generator's floor), or None when ``config`` keeps any area."""
        if not config.use_property:
            return None
        ratio = config.max_area_ratio if config.max_area_ratio is not None else prompts.max_area_ratio
        areas = st.object_detections.official_areas()
        count = config.object_count if config.object_count is not None else prompts.count
        ref = official_object_area(areas[official_object_keep(areas, count)])
        return np.float32(ref * ratio)

    def stages(self, image: np.ndarray, prompts: CategoryPrompts, config: SAAConfig,
               entry_ids: tuple[int, ...] | None = None, need_saliency: bool | None = None,
               prune: bool = False, also_for: list[SAAConfig] = ()) -> StageOutputs:
        """Run (or load) generator, refiner and saliency for ``image`` (H, W, 3) uint8; the stages serve any variant.

        ``prune`` (code behaviour; what :meth:`run` and :meth:`run_variants` do): segment only the candidates the
        variants can keep: when ``config`` and every config in ``also_for`` use P^P, boxes at least as large as P^P's
        limit for any box threshold are dropped before SAM (the official code segments only the boxes that pass its
        filters). ``StageOutputs.area_limit`` records the limit; scoring a variant that could keep larger boxes on
        such stages raises."""
        check_image(image)
        digest = image_digest(image)
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
            parts = self._detect(image, digest, captions, True, official) if captions else []
            obj = self._detect(image, digest, [prompts.object_caption], False, official)[0]
        else:  # the object prompt joins the entries' forward (one image backbone pass for all)
            *parts, obj = self._detect(image, digest, captions + [prompts.object_caption], False, official)
        if official:
            image_bgr = bgr(image)
            st = StageOutputs(hw, entry_ids, Detections.empty([], [], hw), None, obj, None, None, official=True)
            limits = [self._area_limit(st, prompts, c) for c in [config, *also_for] if not c.saliency_only]
            if prune and limits and all(v is not None for v in limits):
                st.area_limit = max(limits)
                parts = [p.select(p.official_areas() < st.area_limit) for p in parts]
            st.detections = Detections.concat(parts) if parts else Detections.empty([], [], hw)
            st.masks = PackedMasks.concat([self._segment_full(image_bgr, digest, p) for p in parts], hw)
            objects = self._official_objects(st, prompts, config)
            if objects is not None and len(objects):
                st.object_masks = self._segment_full(image_bgr, digest, objects)
        else:
            det = Detections.concat(parts) if parts else Detections.empty([], [], hw)
            masks = PackedMasks.concat([self._segment(image, digest, p, r) for p in parts], (r, r))
            obj_masks = self._segment(image, digest, obj, r)[:] if len(obj) else None
            st = StageOutputs(hw, entry_ids, det, masks, obj, obj_masks, None)
        if (config.use_saliency or config.saliency_only) if need_saliency is None else need_saliency:
            self._attach_saliency(st, image, digest, prompts, config)
        return st

    # ----- cheap scoring ----------------------------------------------------------------------------------------------
    def score(self, st: StageOutputs, prompts: CategoryPrompts, config: SAAConfig) -> ImageResult:
        """Apply the variant's hybrid prompts and fuse (no model is run)."""
        r = config.eval_resolution
        if config.saliency_only:
            if st.saliency is None:
                raise ValueError("saliency_only needs the saliency stage")
            sal = st.saliency if st.saliency.shape == (r, r) else cv2_resize(st.saliency, (r, r))
            return ImageResult(sal.astype(np.float32), image_score(sal), [], config.variant)
        if st.official and config.behaviour == "code":
            return self._score_official(st, prompts, config)
        det = st.detections
        masks = st.packed_masks()
        mask_px = masks.areas()  # (M,) pixels: P^P (paper) and the region table
        entries = [prompts.entries[st.entry_ids[e]] for e in det.entry]
        phrases = det.phrases(config.text_threshold)
        fates = _Fates(entries, det.scores, config)
        used, drop = fates.used, fates.drop
        if config.use_language:
            drop(language_keep(phrases, [e.object_phrase for e in entries]), "language")
        if config.use_property:
            ratio = config.max_area_ratio if config.max_area_ratio is not None else prompts.max_area_ratio
            obj_keep, _ = found_objects(st, prompts, config)
            if config.behaviour == "code":
                ref = object_reference_area(st.object_detections.boxes[obj_keep], st.image_hw)
                drop(property_keep_boxes(det.boxes, st.image_hw, ref, ratio), "property")
            else:
                om = st.object_masks
                obj_mask = (om[obj_keep].any(0) if om is not None and obj_keep.any() else np.ones((r, r), bool))
                drop(property_keep_stats(masks.iou(obj_mask), mask_px, int(obj_mask.sum()), config.min_iou, ratio),
                     "property")
        scores = det.scores.astype(np.float64)
        sal_mean = None
        if config.use_saliency:
            sal_mean = st.region_saliency()
            scores = rescore(scores, sal_mean, config.gain)
        if config.use_confidence:
            k = config.top_k if config.top_k is not None else prompts.top_k
            drop(top_k_keep(scores, k, fates.alive), "confidence")
        kept = np.flatnonzero(fates.alive)
        amap = fuse_regions(masks.select(kept), scores[kept], config.offset)  # unpacked chunk by chunk
        areas = mask_px / float(r * r)
        regions = [Region([round(float(v), 2) for v in det.boxes[i]], det.captions[det.entry[i]], phrases[i],
                          float(det.scores[i]), float(scores[i]), float(areas[i]),
                          None if sal_mean is None else float(sal_mean[i]), fates.removed[i])
                   for i in np.flatnonzero(used)]
        return ImageResult(amap, image_score(amap), regions, config.variant)

    def _tokenizer(self):
        return self.generator.model.tokenizer if self.generator is not None else None

    def _score_official(self, st: StageOutputs, prompts: CategoryPrompts, config: SAAConfig) -> ImageResult:
        """Code behaviour on stages computed in code behaviour: the official filters, re-scoring, top-K and fusion.

        Filters: box score > box threshold, 0 < raw area < object area x ratio (P^P), the filter phrase not a
        substring of the decoded phrase (P^L). The surviving candidates, in prompt then query order, are re-scored
        with numpy's scalar types, ranked by ``argsort()[-k:]`` and fused in that order at the masks' resolution
        (weights start at ``offset``), then ``cv2.resize``'d to ``eval_resolution``."""
        r = config.eval_resolution
        if st.area_limit is not None:
            limit = self._area_limit(st, prompts, config)
            if limit is None or limit > st.area_limit:
                raise ValueError(f"variant {config.variant!r} can keep boxes the stages dropped before SAM (area limit "
                                 f"{st.area_limit:g}); compute the stages for it: stages(..., prune=False)")
        det, masks = st.detections, st.packed_masks()
        entries = [prompts.entries[st.entry_ids[e]] for e in det.entry]
        tokenizer = self._tokenizer()
        phrases = (det.official_phrases(config.text_threshold, tokenizer) if tokenizer is not None
                   else det.phrases(config.text_threshold))
        fates = _Fates(entries, det.scores, config)
        used, drop = fates.used, fates.drop
        if config.use_language:
            drop(language_keep(phrases, [e.object_phrase for e in entries], substring=True), "language")
        if config.use_property:
            ratio = config.max_area_ratio if config.max_area_ratio is not None else prompts.max_area_ratio
            obj_keep, _ = found_objects(st, prompts, config)
            ref = official_object_area(st.object_detections.official_areas()[obj_keep])
            drop(official_property_keep(det.official_areas(), ref, ratio), "property")
        sal_mean = st.region_saliency() if config.use_saliency else None
        if config.use_saliency:
            values = [official_rescore(float(c), m, config.gain) for c, m in zip(det.scores, sal_mean)]
        else:
            values = [float(c) for c in det.scores]
        survivors = np.flatnonzero(fates.alive)
        ranked = np.stack([values[i] for i in survivors]) if survivors.size else np.zeros(0)  # the official array
        order = np.arange(len(ranked))
        if config.use_confidence:
            k = config.top_k if config.top_k is not None else prompts.top_k
            order = official_top_k(ranked, k)  # argsort()[-k:] of the official array; k = 0 keeps all
            kept = np.zeros(len(det), bool)
            kept[survivors[order]] = True
            drop(kept, "confidence")
        amap = official_fuse(masks.select(survivors[order]), ranked[order], config.offset, r).astype(np.float32)
        areas = masks.areas() / float(np.prod(masks.shape[1:]))
        regions = [Region([round(float(v), 2) for v in det.boxes[i]], det.captions[det.entry[i]], phrases[i],
                          float(det.scores[i]), float(values[i]), float(areas[i]),
                          None if sal_mean is None else float(sal_mean[i]), fates.removed[i])
                   for i in np.flatnonzero(used)]
        return ImageResult(amap, image_score(amap), regions, config.variant)

    def run(self, image: np.ndarray, prompts: CategoryPrompts, config: SAAConfig) -> ImageResult:
        """One image, one variant."""
        return self.score(self.stages(image, prompts, config, prune=True), prompts, config)

    def run_variants(self, image: np.ndarray, prompts: CategoryPrompts,
                     configs: list[SAAConfig]) -> list[ImageResult]:
        """Several variants from one pass of the expensive stages (the union of what they need).

        The variants must share ``eval_resolution`` and ``single_caption``; saliency maps are computed once per
        distinct saliency setting, object masks whenever one variant follows the paper.
        """
        if len({(c.eval_resolution, c.single_caption) for c in configs}) > 1:
            raise ValueError("run_variants: variants must share eval_resolution and single_caption")
        digest = image_digest(image)
        out: dict[int, ImageResult] = {}
        for behaviour in dict.fromkeys(c.behaviour for c in configs):  # code and paper stages differ
            group = [(i, c) for i, c in enumerate(configs) if c.behaviour == behaviour]
            detecting = [c for _, c in group if not c.saliency_only]
            base = detecting[0] if detecting else group[0][1]
            entries = tuple(sorted({i for c in detecting for i in prompts.select(c.use_language)}))
            st = self.stages(image, prompts, base, entries, need_saliency=False, prune=True, also_for=detecting)
            memo: dict = {}
            for i, c in group:
                if c.use_saliency or c.saliency_only:
                    self._attach_saliency(st, image, digest, prompts, c, memo)  # each distinct saliency map once
                out[i] = self.score(st, prompts, c)
        return [out[i] for i in range(len(configs))]
