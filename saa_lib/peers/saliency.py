"""The peers of one category: the other images P^S compares its images with, and their features.

A :class:`PeerSaliency` is built once per category and handed to the pipeline with each image
(``pipe.stages(image, prompts, config, peers=peers)``); the pipeline itself holds no state of a category. It reads each
image once for its digest and size, keeps the loader (or the array it was given), and extracts features when a config
first needs them: every peer of that config in one pass, copied into a :class:`~saa_lib.peers.store.FeatureStore`.
Which peers an image is compared with depends only on the set, never on the order of the images.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from ..cache import StageCache, StageKeys
from ..pipeline import check_image
from ..utils import image_digest
from .config import PeerConfig
from .index import DeviceBanks, PatchIndex, default_nlist
from .sources import (combine_with_image, deep_features, order_key, quarter_turn, reference_view, reference_views,
                      scaled_input, source_features, source_map, unturn_features)
from .store import FeatureStore


class PeerSaliency:
    """The batch (other test images) and few-shot references of ONE category, and their kept features.

    ``models``: the :class:`saa_lib.models.Models` whose saliency backbone extracts the features (the pipeline's);
    ``cache``: the :class:`~saa_lib.cache.StageCache` their features go through (None: computed every time);
    ``category``: the category these images belong to (the pipeline refuses to score another category with them);
    ``batch``: the category's test images, each scored against the others, whatever their order; ``references``:
    normal images in order (the first ``shots`` are used). Each image is an (H, W, 3) uint8 array or a callable
    returning one.
    """

    def __init__(self, models, cache: StageCache | None = None, *, category: str, batch=(), references=(),
                 autocast: torch.dtype | None = None):
        self.models = models
        self.cache = cache if cache is not None else StageCache(enabled=False)
        self.category = category
        self.autocast = autocast
        self._amp = None if autocast is None else str(autocast)
        self._sources: dict[str, object] = {}  # digest -> the array or loader it came from
        self._longest: dict[str, int] = {}  # digest -> longest side (px)
        digests = {"batch": [], "references": []}
        for name, items in (("batch", batch), ("references", references)):
            for i, item in enumerate(items):
                image = item() if callable(item) else item
                check_image(image, f"saliency {name} image {i}")
                digest = image_digest(image)
                digests[name].append(digest)
                self._sources.setdefault(digest, item)
                self._longest[digest] = max(image.shape[:2])
        self.batch: list[str] = order_key(digests["batch"])
        self.references: list[str] = digests["references"]
        sides = [self._longest[d] for d in self.batch]
        self._batch_longest = float(np.median(sides)) if sides else None
        self._kept: dict[tuple, torch.Tensor] = {}
        self._store = FeatureStore()
        self._searches: dict[tuple, PatchIndex | DeviceBanks] = {}  # one per fine level of the batch
        #: wall and process CPU seconds of building the last fine-level search (the patch index)
        self.build_seconds = {"wall": 0.0, "cpu": 0.0}
        #: the share of (query patch, other image) pairs the patch index found in the last map it served (1: exact)
        self.known_share = 1.0

    # ----- what an image is compared with --------------------------------------------------------------------------
    @property
    def has_deep(self) -> bool:
        """Whether the saliency backbone holds a stride-32 stage (the coarse level of the score)."""
        return bool(getattr(self.models.saliency, "has_deep", False))

    @property
    def device(self) -> torch.device:
        """The device of the saliency backbone (the kept features live there)."""
        return next(self.models.saliency.parameters()).device

    def resolve(self, config: PeerConfig) -> PeerConfig:
        """``config`` with its defaults filled in for this category and backbone (:meth:`PeerConfig.resolved`); on a
        GPU batch searches exactly (:class:`~saa_lib.peers.index.DeviceBanks`)."""
        return config.resolved(self.category, self.has_deep, exact=self.device.type == "cuda")

    def compared_with(self, digest: str, config: PeerConfig) -> list[str]:
        """The digests of the images ``digest`` is compared with: the other batch images (sorted), or the first
        ``shots`` references; a clear error when they are missing."""
        if config.source == "batch":
            others = [d for d in self.batch if d != digest]
            if not others:
                raise ValueError(f"batch saliency of category {self.category!r} needs the other test images of the "
                                 "category: give at least two images as PeerSaliency(..., batch=images)")
            return others
        if len(self.references) < config.shots:
            raise ValueError(f"few-shot saliency with {config.shots} shot(s) needs that many normal reference images "
                             f"(train/good) of category {self.category!r}; {len(self.references)} given as "
                             "PeerSaliency(..., references=images)")
        return self.references[:config.shots]

    # ----- features ------------------------------------------------------------------------------------------------
    def input_size(self, config: PeerConfig, longest: int, deep: bool = False) -> int:
        """The input size of an image whose longest side is ``longest`` px (``deep``: of its stride-32 level):
        ``source_input`` (``deep_input``), which batch with ``common_scale`` scales to the batch's pixel scale."""
        size = config.deep_input if deep else config.source_input
        if config.source == "batch" and config.common_scale and self._batch_longest is not None:
            return scaled_input(size, longest, self._batch_longest, limit=max(1024, 2 * size) if deep else 1024)
        return size

    def features(self, digest: str, config: PeerConfig, transform: int = 0, deep: bool = False) -> torch.Tensor:
        """(h, w, D) features of the peer ``digest`` under ``config`` (``transform``: a few-shot reference view,
        :func:`~saa_lib.peers.sources.reference_view`; ``deep``: the stride-32 level on its own grid), extracted on
        first use together with those of every other peer of ``config``."""
        tag = self._tag(digest, config, transform, deep=deep)
        if tag not in self._kept:
            self.prepare(config)
        if tag not in self._kept:
            raise ValueError(f"image {digest[:12]} is not a peer of category {self.category!r} under {config.source}")
        return self._kept[tag]

    def _levels(self, config: PeerConfig) -> tuple[bool, ...]:
        return (False, True) if config.deep_for(self.has_deep) > 0 else (False,)

    @staticmethod
    def _view(config: PeerConfig, transform: int = 0, turns: int = 0, deep: bool = False) -> str:
        """The cache name of a view: a few-shot reference view, a quarter turn or the image as it is; per level."""
        view = f"{transform}/{config.reference_rotations}" if transform else (f"turn{turns}" if turns else "0")
        return f"{view}:deep" if deep else view

    def _tag(self, digest: str, config: PeerConfig, transform: int = 0, deep: bool = False) -> tuple:
        """The key of a kept peer feature: the image, its input size, pooling and view (and its dtype: the fine
        level of a batch searched with the patch index is kept in float16)."""
        size = self.input_size(config, self._longest[digest], deep)
        view = self._view(config, transform, deep=deep) + (":f16" if self._indexed(config) and not deep else "")
        return (digest, size, 1 if deep else config.pool, view)

    def _indexed(self, config: PeerConfig) -> bool:
        """Whether ``config``'s fine level is searched with the patch index (batch, ``search="index"``, CPU)."""
        return config.source == "batch" and config.search == "index" and self.device.type != "cuda"

    def _search_key(self, config: PeerConfig) -> tuple:
        return (config.source_input, config.pool, config.common_scale, self._indexed(config), config.list_size,
                config.nprobe)

    def prepare(self, config: PeerConfig) -> None:
        """Extract and keep every peer feature ``config`` needs, one image read at a time (otherwise done when the
        first image is scored)."""
        peers = self.batch if config.source == "batch" else self.references
        views = reference_views(config.source, config.augment_references, config.reference_rotations)
        indexed = self._indexed(config)
        fine_store = None
        for digest in peers:
            wanted = [(t, deep) for t in views for deep in self._levels(config)
                      if self._tag(digest, config, t, deep=deep) not in self._kept]
            if not wanted:
                continue
            source = self._sources[digest]
            image = source() if callable(source) else source
            for t, deep in wanted:
                feats = self._view_features(image, digest, config, t, deep=deep)
                store = self._store
                if indexed and not deep:  # float16, side by side in one block sized for the batch
                    feats = feats.half()
                    if fine_store is None:
                        fine_store = FeatureStore(block_mib=-(-feats.numel() * 2 * len(peers) // 2 ** 20) + 1)
                    store = fine_store
                self._kept[self._tag(digest, config, t, deep=deep)] = store.keep(feats)
        if config.source == "batch" and (indexed or self.device.type == "cuda"):
            self._batch_search(config)

    def _batch_search(self, config: PeerConfig) -> PatchIndex | DeviceBanks:
        """The fine-level search of the batch under ``config``, built once per category: the patch index (CPU) or
        every bank on the device (GPU); columns in the order of :attr:`batch`."""
        key = self._search_key(config)
        if key not in self._searches:
            banks = [self.features(d, config) for d in self.batch]
            wall, cpu = time.perf_counter(), time.process_time()
            if self._indexed(config):
                total = sum(b.shape[0] * b.shape[1] for b in banks)
                self._searches[key] = PatchIndex(banks, default_nlist(total, config.list_size, config.nprobe))
            else:
                self._searches[key] = DeviceBanks(banks, self.device)
            self.build_seconds = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
        return self._searches[key]

    def _view_features(self, image: np.ndarray, digest: str, config: PeerConfig, transform: int = 0, turns: int = 0,
                       grid_hw: tuple[int, int] | None = None, deep: bool = False) -> torch.Tensor:
        """(h, w, D) features of one view of ``image`` through the stage cache (``turns``: the image turned by that
        many quarter turns, its features turned back onto ``grid_hw``)."""
        size = self.input_size(config, max(image.shape[:2]), deep)
        pool, view = 1 if deep else config.pool, self._view(config, transform, turns, deep)
        backbone = self.models.saliency
        keys = StageKeys.of(digest, self.models, self._amp)

        def features_of(view_image):
            if deep:
                return deep_features(backbone, view_image, size, self.autocast)
            return source_features(backbone, view_image, size, pool, self.autocast)

        def compute():
            if turns:
                return {"features": unturn_features(features_of(quarter_turn(image, turns)), turns,
                                                    grid_hw).cpu().numpy()}
            view_image = reference_view(image, transform, config.reference_rotations)
            return {"features": features_of(view_image).cpu().numpy()}

        feats = self.cache.get("saliency_features", keys.saliency_features(size, pool, view), compute)["features"]
        return torch.from_numpy(feats).to(next(backbone.parameters()).device)

    def _search_fn(self, found: PatchIndex | DeviceBanks, columns: list[int], config: PeerConfig):
        """The fine-level search :func:`~saa_lib.peers.sources.source_map` calls: views -> (Q, N-1) distances."""
        def search(views: list[torch.Tensor]) -> torch.Tensor:
            if isinstance(found, DeviceBanks):
                return found.distances(views, columns)
            d, self.known_share = found.distances(views, columns, config.nprobe)
            return d

        return search

    @property
    def kept_bytes(self) -> int:
        """The size of the kept peer features, bytes."""
        return sum(f.numel() * f.element_size() for f in self._kept.values())

    # ----- the map ---------------------------------------------------------------------------------------------------
    def saliency_map(self, image: np.ndarray, digest: str, config: PeerConfig, out_hw: tuple[int, int],
                     image_map: Callable[[], np.ndarray] | None = None) -> np.ndarray:
        """(out_h, out_w) float32 batch or few-shot P^S map of ``image`` (its ``digest``) under the resolved
        ``config`` (:meth:`resolve`), combined with its single-image map (``image_map()``, same shape) when
        ``config.with_image``."""
        others = self.compared_with(digest, config)
        views = reference_views(config.source, config.augment_references, config.reference_rotations)
        in_batch = config.source == "batch" and digest in self.batch  # its own features are kept as a peer's
        turns = (config.batch_rotations or 1) if config.source == "batch" else 1

        search = None
        if config.source == "batch" and (self._indexed(config) or self.device.type == "cuda"):
            found = self._batch_search(config)
            position = {d: j for j, d in enumerate(self.batch)}
            columns = [position[d] for d in others]
            search = self._search_fn(found, columns, config)

        def level(deep: bool):  # query, its turned views and the peers' features, on one level's grid
            q = (self.features(digest, config, deep=deep) if in_batch
                 else self._view_features(image, digest, config, deep=deep)).float()
            turned = [self._view_features(image, digest, config, turns=4 // turns * k, grid_hw=q.shape[:2], deep=deep)
                      for k in range(1, turns)]
            if search is not None and not deep:  # the fine level's peers are searched through `search`
                return q, [], turned
            return q, [self.features(d, config, t, deep=deep).flatten(0, 1) for d in others for t in views], turned

        query, peers, turned = level(False)
        weight = config.deep_for(self.has_deep)
        deep = level(True) if weight > 0 else None
        amap = source_map(query, peers, config.source, out_hw, config.batch_fraction, config.smooth_sigma,
                          normalize=config.normalize, turned=turned, peer_quantile=config.peer_quantile, deep=deep,
                          deep_weight=weight, search=search)
        if config.with_image:
            if image_map is None:
                raise ValueError("with_image combines the map with the single-image P^S map: pass image_map")
            amap = combine_with_image(amap, image_map(), config.image_weight)
        return amap
