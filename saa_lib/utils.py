"""Small shared helpers: content digests, device choice, CUDA out-of-memory splitting."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import torch


#: ``--autocast`` names -> torch dtype (``none``: float32, no autocast)
AUTOCAST_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def image_digest(image: np.ndarray) -> str:
    """sha1 of an image's pixels and shape: the content key of every cached stage."""
    a = np.ascontiguousarray(image)
    return hashlib.sha1(a.tobytes() + str((a.shape, a.dtype.str)).encode()).hexdigest()


def settings_digest(settings: dict) -> str:
    """sha1 of a JSON-able dict of settings (key order ignored)."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else as given (``cuda`` without a GPU is an error)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(device)


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used here (not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; CUDA without a visible
    GPU), or None when it can."""
    if device == "auto":
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        return "expected auto, cpu, cuda or cuda:N"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return "no CUDA GPU is visible here"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return f"only {torch.cuda.device_count()} CUDA GPU(s) are visible"
    return None


def split_on_oom(fn, items: list, *args) -> list:
    """Run ``fn(items, *args)``; on CUDA out-of-memory, split ``items`` in halves and retry each. Returns the list of
    results of every call that succeeded, in order."""
    try:
        return [fn(items, *args)]
    except torch.cuda.OutOfMemoryError:
        if len(items) <= 1:
            raise
        torch.cuda.empty_cache()
        mid = len(items) // 2
        return split_on_oom(fn, items[:mid], *args) + split_on_oom(fn, items[mid:], *args)
