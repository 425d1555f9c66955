"""Small pieces shared by the builders: seeded construction, checkpoint reading, load reports, file fingerprints."""
from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

#: ImageNet normalisation (mean, std per RGB channel) of GroundingDINO's input and the ImageNet backbones
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded to ``seed``; the caller's generator state is restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def torch_load(path: str | os.PathLike, what: str, trusted: bool = False):
    """``torch.load`` on CPU, tensors-only first.

    A file that needs full unpickling (some official checkpoints store Python objects beside the weights) is read with
    ``weights_only=False`` only when it is ``trusted`` (its published hash was checked) or, with a warning, when the
    user named it. Any other failure becomes one error naming the file.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            content = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - re-raised with the file name
            raise ValueError(f"{path}: cannot be read as a {what} checkpoint ({type(err).__name__}: {err}). "
                             "The file is truncated or not a PyTorch checkpoint: download it again.") from err
        if not trusted:
            warnings.warn(f"{path}: holds Python objects besides tensors and was read with full unpickling "
                          "(only use files you trust)", stacklevel=3)
        return content
    except Exception as err:  # noqa: BLE001 - truncated / not a torch file
        raise ValueError(f"{path}: cannot be read as a {what} checkpoint ({type(err).__name__}: {err}). "
                         "The file is truncated or not a PyTorch checkpoint: download it again.") from err


def strip_prefix(state_dict: dict, prefix: str = "module.") -> dict:
    """Keys without a leading ``prefix`` (``module.`` is what DataParallel adds)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


@dataclass(frozen=True)
class LoadReport:
    """What a non-strict ``load_state_dict`` did: keys the model wanted but the file lacked, and the reverse."""

    path: str
    n_model_keys: int
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]

    @property
    def fraction_missing(self) -> float:
        return len(self.missing) / max(self.n_model_keys, 1)

    @property
    def n_loaded(self) -> int:
        return self.n_model_keys - len(self.missing)

    def __str__(self) -> str:
        def few(keys):
            return ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")
        text = f"{self.path}: loaded {self.n_loaded}/{self.n_model_keys} tensors"
        if self.missing:
            text += f"; missing: {few(self.missing)}"
        if self.unexpected:
            text += f"; unexpected: {few(self.unexpected)}"
        return text


def file_fingerprint(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Cheap stable id of a (possibly multi-GB) file: sha256 of its size, first and last MiB; 16 hex digits."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(block))
        if size > block:
            fh.seek(max(size - block, block))
            h.update(fh.read(block))
    return h.hexdigest()[:16]
