"""Stacks of candidate masks: nearest-neighbour resizing and a bit-packed stack with fast per-mask statistics.

A detector can return hundreds of candidates per image; their (M, 400, 400) bool masks take 77 MB for M = 483, and a
dense pass over them costs more than the rest of the scoring together. :class:`PackedMasks` keeps them as the stage
cache stores them (8 pixels a byte), answers areas and IoUs on the packed bits, and unpacks only the masks asked for.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """(M, H, W) bool -> (M, size, size) bool, nearest neighbour (as the official evaluation resizes masks)."""
    if masks.shape[-2:] == (size, size):
        return masks.astype(bool)
    if len(masks) == 0:
        return np.zeros((0, size, size), bool)
    t = torch.from_numpy(np.ascontiguousarray(masks, dtype=bool)).view(torch.uint8)[:, None]  # no float copy
    return F.interpolate(t, size=(size, size), mode="nearest")[:, 0].numpy().view(bool)


class PackedMasks:
    """M masks of H x W pixels stored as ``np.packbits(masks, axis=-1)``: ``bits`` (M, H, ceil(W / 8)) uint8.

    ``len(pm)``, ``pm.shape`` (M, H, W) and ``pm[idx]`` (dense bool (M', H, W) for an index array, slice or bool mask)
    behave as on the dense stack; ``np.asarray(pm)`` unpacks everything.
    """

    def __init__(self, bits: np.ndarray, width: int):
        bits = np.asarray(bits, dtype=np.uint8)
        if bits.ndim != 3 or bits.shape[-1] != (width + 7) // 8:
            raise ValueError(f"packed masks must be (M, H, ceil(W/8)) for W = {width}; got {bits.shape}")
        self.bits = bits
        self.width = int(width)

    @classmethod
    def from_dense(cls, masks: np.ndarray) -> "PackedMasks":
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3:
            raise ValueError(f"masks must be (M, H, W); got {masks.shape}")
        return cls(np.packbits(masks, axis=-1), masks.shape[-1])

    @classmethod
    def concat(cls, parts: list["PackedMasks"], hw: tuple[int, int]) -> "PackedMasks":
        """One stack from several (an empty (0, H, W) stack when ``parts`` is empty)."""
        if not parts:
            return cls(np.zeros((0, hw[0], (hw[1] + 7) // 8), np.uint8), hw[1])
        return cls(np.concatenate([p.bits for p in parts]), parts[0].width)

    def __len__(self) -> int:
        return len(self.bits)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.bits), self.bits.shape[1], self.width)

    def __getitem__(self, idx) -> np.ndarray:
        return np.unpackbits(self.bits[idx], axis=-1, count=self.width).view(bool)

    def select(self, idx) -> "PackedMasks":
        """The masks at ``idx`` (index array, slice or bool mask), still packed."""
        return PackedMasks(self.bits[idx], self.width)

    def __array__(self, dtype=None, copy=None):
        dense = self[:]
        return dense if dtype is None else dense.astype(dtype)

    def areas(self) -> np.ndarray:
        """(M,) int64 pixel count of each mask (computed once per stack)."""
        if getattr(self, "_areas", None) is None:
            flat = np.ascontiguousarray(self.bits).reshape(len(self.bits), self.bits.shape[1] * self.bits.shape[2])
            if flat.shape[1] % 8 == 0:  # 64 bits at a time: 8x fewer elements to count and sum
                flat = flat.view(np.uint64)
            self._areas = np.bitwise_count(flat).sum(axis=1, dtype=np.int64)
        return self._areas

    def iou(self, reference: np.ndarray) -> np.ndarray:
        """(M,) IoU of each mask with ``reference`` (H, W) bool; 0 where both are empty."""
        if np.shape(reference) != self.shape[1:]:
            raise ValueError(f"reference mask {np.shape(reference)} does not match masks {self.shape}")
        ref = np.packbits(np.asarray(reference, dtype=bool), axis=-1)
        inter = np.bitwise_count(self.bits & ref).sum(axis=(1, 2), dtype=np.int64)
        union = np.bitwise_count(self.bits | ref).sum(axis=(1, 2), dtype=np.int64)
        return np.where(union > 0, inter / np.maximum(union, 1), 0.0)

    def means(self, values: np.ndarray, chunk: int = 32) -> np.ndarray:
        """(M,) float64 mean of ``values`` (H, W) inside each mask (0 for an empty mask); ``chunk`` masks unpacked at
        a time, so memory stays at ``chunk * H * W`` doubles."""
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.size != self.shape[1] * self.width:
            raise ValueError(f"values {np.shape(values)} do not match masks {self.shape}")
        sums = np.zeros(len(self))
        for start in range(0, len(self), chunk):
            dense = self[start:start + chunk].reshape(-1, v.size)
            sums[start:start + chunk] = dense.astype(np.float64) @ v
        area = self.areas()
        return np.where(area > 0, sums / np.maximum(area, 1), 0.0)

    def official_means(self, values: np.ndarray) -> np.ndarray:
        """(M,) ``values[mask].mean()`` for each mask, as the official code takes it (numpy's mean in the map's own
        dtype, float32 or float64; NaN for an empty mask). One mask is unpacked at a time."""
        values = np.asarray(values)
        if values.shape != self.shape[1:]:
            raise ValueError(f"values {values.shape} do not match masks {self.shape}")
        out = np.full(len(self), np.nan, dtype=values.dtype)
        for i in range(len(self)):
            picked = values[self[i]]
            if picked.size:
                out[i] = picked.mean()
        return out
