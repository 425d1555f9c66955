"""Content-addressed stage cache.

The expensive stages (generator, refiner, saliency) are pure functions of (image content, model, their own settings):
their outputs are stored as ``.npz`` files named by the sha1 of exactly those inputs. A changed threshold, K or prompt
switch changes no key of an expensive stage, so only the cheap scoring re-runs. Writes are atomic (temporary file +
rename); an entry that cannot be read back, or whose stored key differs, is deleted and recomputed, never trusted. An
entry that cannot be stored (full disk) is skipped with one warning: the cache saves time, it never stops a run.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from .download import saa_home
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
