"""Refiner: SAM turns each box into a mask (one image embedding per image, all boxes decoded in one call)."""
from __future__ import annotations

import numpy as np
import torch

from .utils import image_digest, split_on_oom


class Refiner:
    """SAM wrapper holding the expensive image embedding of the current image.

    ``sam`` is a ``segment_anything.modeling.Sam``. ``set_image`` computes the embedding once; ``segment`` decodes any
    number of boxes against it.
    """

    def __init__(self, sam: torch.nn.Module, autocast: torch.dtype | None = None):
        from segment_anything import SamPredictor

        self.predictor = SamPredictor(sam)
        self.autocast = autocast
        self._image_key: str | None = None

    @property
    def device(self) -> torch.device:
        return self.predictor.device

    def forget_image(self) -> None:
        """Drop the held embedding: the next :meth:`set_image` computes it again (e.g. to time the image encoder)."""
        self._image_key = None

    @torch.no_grad()
    def set_image(self, image: np.ndarray, image_key: str | None = None) -> None:
        """Compute (or keep) the embedding of ``image`` (H, W, 3) uint8 RGB. ``image_key``: a digest naming these
        pixels when the caller has one (else the pixels are hashed here)."""
        key = image_digest(image) if image_key is None else image_key
        if key == self._image_key:
            return
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            self.predictor.set_image(image)
        self._image_key = key

    @torch.no_grad()
    def _decode(self, boxes: list, hw: tuple[int, int]) -> np.ndarray:
        b = torch.as_tensor(np.asarray(boxes, np.float32), device=self.device)
        b = self.predictor.transform.apply_boxes_torch(b, hw)
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            masks, _, _ = self.predictor.predict_torch(None, None, boxes=b, multimask_output=False)
        return masks[:, 0].cpu().numpy()

    def segment_packed(self, image: np.ndarray, boxes: np.ndarray, budget: int = 1 << 28,
                       image_key: str | None = None):
        """(M, H, W) masks of ``boxes`` (M, 4) xyxy pixels, bit-packed as they are decoded: the boxes are decoded a
        chunk at a time so that the chunk's float masks at full resolution stay under about ``budget`` bytes (one box
        at a time on very large images). Returns a :class:`saa_lib.masks.PackedMasks`."""
        from .masks import PackedMasks

        hw = tuple(image.shape[:2])
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        bits = np.zeros((len(boxes), hw[0], (hw[1] + 7) // 8), np.uint8)
        if len(boxes):
            self.set_image(image, image_key)
            chunk = max(1, int(budget // (hw[0] * hw[1] * 4 * 2)))
            for start in range(0, len(boxes), chunk):
                at = start
                for m in split_on_oom(self._decode, list(boxes[start:start + chunk]), hw):
                    bits[at:at + len(m)] = np.packbits(m.astype(bool), axis=-1)
                    at += len(m)
        return PackedMasks(bits, hw[1])

    def segment(self, image: np.ndarray, boxes: np.ndarray, image_key: str | None = None) -> np.ndarray:
        """(M, H, W) bool masks, one per box. ``boxes``: (M, 4) xyxy pixels of ``image`` (H, W, 3) uint8;
        ``image_key``: as :meth:`set_image`."""
        hw = tuple(image.shape[:2])
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, *hw), bool)
        self.set_image(image, image_key)
        parts = split_on_oom(self._decode, list(boxes), hw)
        return np.concatenate(parts).astype(bool)
