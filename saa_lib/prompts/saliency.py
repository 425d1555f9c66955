"""P^S, saliency prompts: how different each pixel's deep feature is from the rest of the image.

s_ij = mean over N neighbours of (1 - cos(f_ij, f_neighbour)). The paper takes the N nearest neighbours; the official
code takes ``0.5 * (1 - cos)`` over the N *farthest* pixels (``SaliencyConfig.aggregate``). A region's confidence is then
multiplied by ``exp(gain * mean saliency inside its mask)`` (gain 1 in the paper, 3 in the code). For images of several
alike objects the official code compares each object with the others instead (:func:`multi_instance_saliency`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..config import SaliencyConfig


def preprocess(image: np.ndarray, size: int, mean, std, device=None) -> tuple[torch.Tensor, tuple[int, int]]:
    """Resize the longest side to ``size``, normalise, pad bottom/right to a square.

    ``image``: (H, W, 3) uint8; ``device``: where to do it (the uint8 pixels are copied there first). Returns the
    (1, 3, size, size) tensor and the (h, w) of the unpadded content.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device, non_blocking=True)
    x = x.permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    mean_t = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    x = (x - mean_t) / torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return F.pad(x, (0, size - nw, 0, size - nh)), (nh, nw)


@torch.no_grad()
def pixel_features(backbone: torch.nn.Module, image: np.ndarray, size: int = 256,
                   autocast: torch.dtype | None = None) -> torch.Tensor:
    """(h, w, D) L2-normalised features of the image content on the first feature map's grid (stride 4).

    The backbone's maps (out_indices 1, 2, 3) are upsampled to the first map's grid and concatenated. ``autocast``
    (bf16 / fp16): the backbone runs in that mixed precision; its maps are turned to float32 before anything else.
    """
    device = next(backbone.parameters()).device
    x, (nh, nw) = preprocess(image, size, backbone.mean, backbone.std, device)
    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        feats = backbone(x)
    if autocast is not None:
        feats = [f.float() for f in feats]
    gh, gw = feats[0].shape[-2:]
    up = [feats[0]] + [F.interpolate(f, size=(gh, gw), mode="bilinear", align_corners=False) for f in feats[1:]]
    f = F.normalize(torch.cat(up, dim=1)[0].float(), dim=0)  # (D, gh, gw)
    vh, vw = max(1, round(nh * gh / size)), max(1, round(nw * gw / size))
    return f[:, :vh, :vw].permute(1, 2, 0).contiguous()


def knn_saliency(features: torch.Tensor, neighbours: int = 400, aggregate: str = "nearest",
                 chunk_size: int = 1024) -> torch.Tensor:
    """(P,) saliency of each of P feature vectors against all others, exact and chunked.

    ``features``: (P, D) L2-normalised. ``aggregate="nearest"``: mean (1 - cos) to the N nearest other pixels
    (paper); ``"farthest"``: mean 0.5 * (1 - cos) to the N farthest pixels (official code). Memory peaks at
    ``chunk_size * P`` similarities.
    """
    p = features.shape[0]
    if p < 2:
        return torch.zeros(p, device=features.device)
    k = min(neighbours, p - 1)
    out = torch.empty(p, device=features.device)
    for start in range(0, p, chunk_size):
        q = features[start:start + chunk_size]
        sim = q @ features.T  # (c, P)
        if aggregate == "nearest":
            rows = torch.arange(len(q), device=sim.device)
            sim[rows, rows + start] = float("-inf")  # a pixel is not its own neighbour
            top = sim.topk(k, dim=1, largest=True).values
            out[start:start + len(q)] = (1.0 - top).mean(1)
        elif aggregate == "farthest":
            top = sim.topk(k, dim=1, largest=False).values
            out[start:start + len(q)] = (0.5 * (1.0 - top)).mean(1)
        else:
            raise ValueError(f"aggregate must be 'nearest' or 'farthest', got {aggregate!r}")
    return out


def saliency_map(image: np.ndarray, backbone: torch.nn.Module, config: SaliencyConfig = SaliencyConfig(),
                 out_hw: tuple[int, int] | None = None, autocast: torch.dtype | None = None) -> np.ndarray:
    """(out_h, out_w) float32 saliency map of ``image`` (H, W, 3) uint8 (default: the image size).

    ``autocast`` applies to the backbone only: the neighbour search compares float32 features."""
    feats = pixel_features(backbone, image, config.input_size, autocast)
    gh, gw, d = feats.shape
    s = knn_saliency(feats.reshape(-1, d), config.neighbours, config.aggregate, config.chunk_size)
    return _grid_to_map(s, (gh, gw), out_hw or image.shape[:2])


def _grid_to_map(values: torch.Tensor, grid_hw: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """(gh * gw,) values on the feature grid -> (out_h, out_w) float32 map, bilinear."""
    s = F.interpolate(values.reshape(1, 1, *grid_hw), size=tuple(out_hw), mode="bilinear", align_corners=False)
    return s[0, 0].cpu().numpy().astype(np.float32)


def box_cells(boxes: np.ndarray, image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> np.ndarray:
    """(B, gh, gw) bool: the cells of a (gh, gw) feature grid covering the image that each xyxy pixel box touches."""
    h, w = image_hw
    gh, gw = grid_hw
    out = np.zeros((len(boxes), gh, gw), bool)
    for m, (x0, y0, x1, y1) in zip(out, np.asarray(boxes, np.float64).reshape(-1, 4)):
        r0, r1 = int(np.floor(max(y0, 0) * gh / h)), int(np.ceil(min(y1, h) * gh / h))
        c0, c1 = int(np.floor(max(x0, 0) * gw / w)), int(np.ceil(min(x1, w) * gw / w))
        m[r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)] = True
    return out


def nearest_other_distance(queries: torch.Tensor, reference: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
    """(Q,) ``0.5 * (1 - max cos)`` of each L2-normalised query (Q, D) to the reference set (R, D), chunked over R."""
    best = torch.full((len(queries),), -1.0, device=queries.device)
    for start in range(0, len(reference), chunk_size):
        best = torch.maximum(best, (queries @ reference[start:start + chunk_size].T).max(1).values)
    return 0.5 * (1.0 - best)


def multi_instance_saliency(image: np.ndarray, backbone: torch.nn.Module, boxes: np.ndarray,
                            config: SaliencyConfig = SaliencyConfig(), out_hw: tuple[int, int] | None = None,
                            autocast: torch.dtype | None = None) -> np.ndarray:
    """(out_h, out_w) float32 saliency of an image holding several objects (official code, object count > 1).

    ``boxes``: (B >= 2, 4) xyxy pixel boxes of the objects. Features are taken on a ``config.multi_instance_size``
    input; every feature pixel inside object i's box scores ``0.5 * (1 - max cos)`` against the feature pixels inside
    the other objects' boxes (and outside box i); the map is the maximum over objects and 0 outside every box. A
    defect on one object has no match on the others, while what the objects share (and what one object's box holds
    of the background) does.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) < 2:
        raise ValueError(f"multi_instance_saliency needs at least two object boxes, got {len(boxes)}")
    feats = pixel_features(backbone, image, config.multi_instance_size, autocast)
    gh, gw, d = feats.shape
    flat = feats.reshape(-1, d)
    cells = torch.from_numpy(box_cells(boxes, image.shape[:2], (gh, gw)).reshape(len(boxes), -1)).to(flat.device)
    out = torch.zeros(gh * gw, device=flat.device)
    for i in range(len(boxes)):
        others = cells[np.arange(len(boxes)) != i].any(0) & ~cells[i]
        if not others.any():
            continue
        idx = cells[i].nonzero()[:, 0]
        out[idx] = torch.maximum(out[idx], nearest_other_distance(flat[idx], flat[others], config.chunk_size))
    return _grid_to_map(out, (gh, gw), out_hw or image.shape[:2])


def mean_in_masks(masks: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(M,) mean of ``values`` (H, W) inside each of ``masks`` (M, H, W) bool (0 for an empty mask)."""
    m = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    area = m.sum(1)
    return np.where(area > 0, (m @ v) / np.maximum(area, 1), 0.0)


def rescore(scores: np.ndarray, region_saliency: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """(M,) scores * exp(gain * region_saliency); ``region_saliency``: (M,) mean saliency inside each region's mask
    (:func:`mean_in_masks`, or ``PackedMasks.means`` on a packed stack)."""
    return np.asarray(scores, np.float64) * np.exp(gain * np.asarray(region_saliency, np.float64))
