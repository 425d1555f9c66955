"""Content-addressed stage cache.

The expensive stages (generator, refiner, saliency) are pure functions of (image content, model, their own settings):
their outputs are stored as ``.npz`` files named by the sha1 of exactly those inputs. A changed threshold, K or prompt
switch changes no key of an expensive stage, so only the cheap scoring re-runs. Writes are atomic (temporary file +
rename); an entry that cannot be read back, or whose stored key differs, is deleted and recomputed, never trusted. An
entry that cannot be stored (full disk) is skipped with one warning: the cache saves time, it never stops a run.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .paths import saa_home
from .safeio import file_mode
from .utils import settings_digest


class StageCache:
    """``get(stage, key_parts, compute)``: the stored arrays for these inputs, or ``compute()``'s, stored.

    ``root=None`` -> ``$SAA_HOME/cache``; ``enabled=False`` computes every time. ``hits`` / ``misses`` count per stage.
    """

    def __init__(self, root: str | os.PathLike | None = None, enabled: bool = True):
        if root is not None and not str(root).strip():
            raise ValueError("the stage cache folder is an empty string; give a folder (--cache-dir DIR) or switch the "
                             "cache off (--no-cache)")
        self.root = Path(root) if root is not None else saa_home() / "cache"
        self.enabled = enabled
        self.hits: dict[str, int] = {}
        self.misses: dict[str, int] = {}

    def check_writable(self) -> None:
        """Raise ``ValueError`` naming the folder if entries cannot be stored under ``root`` (nothing when the cache is
        off): a run then fails at once instead of after its first image."""
        if not self.enabled:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
            os.close(fd)
            os.unlink(tmp)
        except OSError as err:
            raise ValueError(f"{self.root}: cannot store stage cache entries there ({err.strerror or err}); choose a "
                             "writable --cache-dir, or run with --no-cache") from err

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / f"{key}.npz"

    @staticmethod
    def key(stage: str, key_parts: dict) -> str:
        """The entry name for ``stage`` with these inputs (sha1 of their JSON)."""
        return settings_digest({"stage": stage, **key_parts})

    def _count(self, stage: str, hit: bool) -> None:
        counter = self.hits if hit else self.misses
        counter[stage] = counter.get(stage, 0) + 1

    def load(self, stage: str, key: str) -> dict | None:
        """The stored arrays, or None if absent, corrupt (then removed) or the cache is off. Counts hits/misses."""
        data = self._read(stage, key) if self.enabled else None
        self._count(stage, data is not None)
        return data

    def _read(self, stage: str, key: str) -> dict | None:
        path = self.path(stage, key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:  # never unpickle what is on disk
                data = {k: z[k] for k in z.files}
            if str(data.pop("__key__")) != key:
                raise ValueError("key mismatch")
            return data
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError):
            path.unlink(missing_ok=True)
            return None

    def save(self, stage: str, key: str, arrays: dict, compress: bool = False) -> None:
        """Store ``arrays`` atomically (nothing when the cache is off); ``compress``: zip-deflated (masks)."""
        if not self.enabled:
            return
        path = self.path(stage, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        except OSError as err:
            self._store_failed(err)
            return
        try:
            with os.fdopen(fd, "wb") as fh:
                (np.savez_compressed if compress else np.savez)(fh, __key__=np.array(key), **arrays)
            os.chmod(tmp, file_mode())  # mkstemp files are private; a shared cache follows the umask
            os.replace(tmp, path)
        except OSError as err:  # a full disk costs the cache entry, not the run
            Path(tmp).unlink(missing_ok=True)
            self._store_failed(err)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _store_failed(self, err: OSError) -> None:
        """Warn once that entries cannot be stored (the run goes on computing every stage)."""
        if not getattr(self, "_warned", False):
            self._warned = True
            warnings.warn(f"{self.root}: cannot store stage cache entries ({err.strerror or err}); going on without "
                          "storing them (a re-run recomputes those stages)", stacklevel=3)

    def get(self, stage: str, key_parts: dict, compute: Callable[[], dict], compress: bool = False) -> dict:
        """Arrays of ``stage`` for ``key_parts`` (a JSON-able dict), computed and stored on a miss."""
        key = self.key(stage, key_parts)
        data = self.load(stage, key)
        if data is None:
            data = compute()
            self.save(stage, key, data, compress)
        return data

    def stats(self) -> dict:
        return {"hits": dict(self.hits), "misses": dict(self.misses)}


@dataclass(frozen=True)
class StageKeys:
    """Every stage cache key of one image under one set of models, one method per stage (the ``key_parts`` given to
    :meth:`StageCache.get`).

    ``digest``: the image's :func:`saa_lib.utils.image_digest`, computed once per image and passed down; ``models``:
    the models' identity; ``backbone``: the saliency backbone's identity; ``amp``: the autocast dtype as text (None for
    float32: nothing is added, so float32 entries stay valid). Boxes enter a key by digest: the clipped boxes rounded
    to 1/1000 px (masks at the evaluation resolution) or the exact float32 pixel boxes of the official code.
    """

    digest: str
    models: str
    backbone: str
    amp: str | None = None

    @classmethod
    def of(cls, digest: str, models, amp: str | None = None) -> "StageKeys":
        """The keys of the image ``digest`` under ``models`` (a :class:`saa_lib.models.Models`: its identity and its
        saliency backbone's) and the autocast dtype ``amp`` (as text, None for float32)."""
        backbone = models.saliency
        return cls(digest, models.identity, getattr(backbone, "identity", backbone.name), amp)

    def _by_models(self) -> dict:
        return {"image": self.digest, "model": self.models}

    def _by_backbone(self) -> dict:
        return {"image": self.digest, "backbone": self.backbone}

    def _amp(self) -> dict:
        return {} if self.amp is None else {"autocast": self.amp}

    def generator(self, captions: list[str], *, min_size: int, max_size: int, floor: float, cap: int | None,
                  official: bool, joined: bool = False) -> dict:
        """GroundingDINO's boxes for one normalised caption (``captions`` = [it]) or, ``joined``, for several joined
        into one."""
        key = {**self._by_models(), "min": min_size, "max": max_size, "floor": floor, "cap": cap, "v": 2,
               **({"input": "official"} if official else {}), **self._amp()}
        return {**key, "captions": list(captions), "joined": True} if joined else {**key, "caption": captions[0]}

    def masks(self, boxes: np.ndarray, size: int) -> dict:
        """SAM's masks of ``boxes`` (M, 4) clipped xyxy pixels, at ``size`` x ``size``."""
        return {**self._by_models(), "boxes": settings_digest({"b": np.round(boxes, 3).tolist()}),
                "size": size, **self._amp()}

    def full_masks(self, pixel_boxes: np.ndarray) -> dict:
        """Code behaviour: SAM's masks of the official float32 pixel boxes on the BGR image, at full resolution."""
        digest = hashlib.sha1(np.ascontiguousarray(pixel_boxes, np.float32).tobytes()).hexdigest()
        return {**self._by_models(), "colour": "bgr", "size": "full", "boxes": digest, **self._amp()}

    def saliency(self, settings: dict, size: int, instances: np.ndarray | None = None,
                 peers: list[str] | None = None) -> dict:
        """The P^S map at ``size`` for the saliency ``settings`` (``asdict(SaliencyConfig)``); ``instances``: the
        object boxes of multi-instance saliency (None: the image compared with itself, the multi-instance settings
        then play no part); ``peers``: the digests of the images a batch / few-shot map compares with (None: the
        single-image source, whose keys the source settings play no part in)."""
        settings = dict(settings)
        if instances is None:
            for name in ("multi_instance", "multi_instance_size"):
                settings.pop(name, None)
        else:
            settings["instances"] = np.round(instances, 3).tolist()
        if peers is None:
            settings.pop("peers", None)
        else:
            settings["compared_with"] = list(peers)
        return {**self._by_backbone(), "settings": settings, "size": size, **self._amp()}

    def official_saliency(self, settings: dict, objects: np.ndarray | None = None) -> dict:
        """Code behaviour: the official saliency grid for ``settings`` on the BGR image; ``objects``: the float32
        pixel boxes whose masks multi-instance saliency compares (None: single instance)."""
        return {**self._by_backbone(), "colour": "bgr", "settings": dict(settings), "v": "official",
                **self._amp(), "objects": None if objects is None else self.full_masks(objects)}

    def saliency_features(self, size: int, pool: int, transform: str) -> dict:
        """Batch / few-shot patch features of the image at ``size``, pooled ``pool`` x ``pool``, of the reference
        view ``transform`` (``"t/rotations"``, see :func:`saa_lib.peers.sources.reference_view`)."""
        return {**self._by_backbone(), "size": size, "pool": pool, "transform": transform, **self._amp()}

    @staticmethod
    def region_saliency(masks: dict, saliency: dict | None) -> dict:
        """The mean saliency inside each of the masks keyed ``masks``, for the map keyed ``saliency``."""
        return {"masks": masks, "saliency": saliency}
