"""P^S, saliency prompts: how different each pixel's deep feature is from the rest of the image.

s_ij = mean over N neighbours of (1 - cos(f_ij, f_neighbour)). The paper takes the N nearest neighbours; the official
code takes ``0.5 * (1 - cos)`` over the N *farthest* pixels (``SaliencyConfig.aggregate``). A region's confidence is then
multiplied by ``exp(gain * mean saliency inside its mask)`` (gain 1 in the paper, 3 in the code). For images of several
alike objects the official code compares each object with the others instead (:func:`multi_instance_saliency`).

``SaliencyConfig.official_input`` (code behaviour) takes the official code's exact steps: the image ``cv2.resize``'d
to a square (aspect not kept, bilinear), normalised as ``(x - 255 mean) / (255 std)``, deeper layers upsampled with
nearest interpolation, the farthest-N mean taken over a full similarity matrix (:func:`official_grid`), the grid
``cv2.resize``'d to the image size; multi-instance saliency compares the pixels of the objects' SAM masks
(:func:`official_multi_instance_grid`).
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F

from ..config import SaliencyConfig
from ..utils import settings_digest
from .property import found_objects


def cv2_resize(array: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """``cv2.resize`` to (h, w) (bilinear, or nearest), the official code's resize for images, grids and maps."""
    import cv2

    return cv2.resize(array, (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)


@torch.no_grad()
def official_features(backbone: torch.nn.Module, image: np.ndarray, size: int,
                      autocast: torch.dtype | None = None) -> torch.Tensor:
    """(1, D, g, g) L2-normalised features as the official extractor makes them: ``image`` (H, W, 3) uint8
    ``cv2.resize``'d to ``size`` x ``size`` (bilinear), ``(x - 255 * mean) / (255 * std)`` in float32, the maps
    (strides 4, 8, 16) upsampled to the first map's grid with nearest interpolation, concatenated, normalised."""
    device = next(backbone.parameters()).device
    x = torch.as_tensor(cv2_resize(np.ascontiguousarray(image), (size, size)), device=device)
    x = x.permute(2, 0, 1).contiguous()[None]
    mean = torch.tensor([m * 255 for m in backbone.mean], device=device).view(-1, 1, 1)
    std = torch.tensor([s * 255 for s in backbone.std], device=device).view(-1, 1, 1)
    x = (x - mean) / std
    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        feats = backbone(x)
    feats = [f.float() for f in feats]
    feats = [feats[0]] + [F.interpolate(f, feats[0].shape[2:]) for f in feats[1:]]
    return F.normalize(torch.cat(feats, dim=1), dim=1)


def official_grid(features: torch.Tensor, neighbours: int = 400) -> np.ndarray:
    """(g, g) float32 official single-instance saliency on the grid: mean of the ``neighbours`` largest
    ``0.5 * (1 - cos)`` of each position to all positions (itself included), from one full similarity matrix."""
    _, c, h, w = features.shape
    flat = features.view(c, h * w)
    dist = 0.5 * (1 - flat.T @ flat)
    top = dist.topk(min(neighbours, h * w), dim=1, largest=True, sorted=True).values
    return torch.mean(top, dim=1).view(h, w).cpu().numpy()


def official_multi_instance_grid(features: torch.Tensor, object_masks, chunk_size: int = 4096) -> np.ndarray | None:
    """(g, g) float64 official multi-instance saliency on the grid, or None where the official code would fail.

    ``object_masks``: a sequence of (H, W) bool masks of the objects (SAM masks of the object boxes), each
    ``cv2.resize``'d (nearest) to the grid. Each grid position inside object i scores ``0.5 * (1 - max cos)`` to the
    positions inside the other objects' masks, where the features at object i's own positions count as zero vectors
    (so an overlap with object i matches at cosine 0); 0 outside; the map is the maximum over objects. The official
    code raises when fewer than two objects are given or an object mask is empty on the grid: those objects are
    left out here, and None (fall back to the single-instance map) is returned when fewer than two remain.
    """
    _, c, h, w = features.shape
    grids = [cv2_resize(np.asarray(m).astype(np.int32), (h, w), nearest=True).reshape(-1) > 0 for m in object_masks]
    grids = [torch.from_numpy(g).to(features.device) for g in grids if g.any()]
    if len(grids) < 2:
        return None
    flat = features.reshape(c, h * w)
    out = np.zeros((len(grids), h * w))
    for i, own in enumerate(grids):
        zeroed = flat.masked_fill(own[None], 0.0)
        others = torch.cat([zeroed[:, g] for j, g in enumerate(grids) if j != i], dim=1)  # (D, N)
        where = own.nonzero()[:, 0]
        queries = flat[:, where].T.contiguous()  # (Q, D)
        best = torch.cat([(queries[a:a + chunk_size] @ others).max(dim=1)[0]
                          for a in range(0, len(queries), chunk_size)])
        out[i, where.cpu().numpy()] = (0.5 * (1.0 - best)).cpu().numpy()
    return out.max(0).reshape(h, w)


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
def backbone_maps(backbone: torch.nn.Module, image: np.ndarray, size: int = 256,
                  autocast: torch.dtype | None = None, deep: bool = False) -> tuple[list[torch.Tensor], tuple[int, int]]:
    """The backbone's float32 maps of ``image`` (H, W, 3) uint8 on a ``size`` input (:func:`preprocess`), each
    (1, C_i, g_i, g_i), and the (h, w) of the unpadded content. ``deep``: the stride-32 map appended
    (:class:`~saa_lib.models.backbone.SaliencyBackbone`). ``autocast`` (bf16 / fp16): the backbone runs in that mixed
    precision; its maps are turned to float32 before anything else."""
    device = next(backbone.parameters()).device
    x, content = preprocess(image, size, backbone.mean, backbone.std, device)
    with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        feats = backbone(x, deep=True) if deep else backbone(x)
    return [f.float() for f in feats], content


def content_cells(features: torch.Tensor, content_hw: tuple[int, int], size: int) -> torch.Tensor:
    """(D, g, g) map of a padded ``size`` input -> (h, w, D): the cells over the image content (``content_hw``)."""
    gh, gw = features.shape[-2:]
    vh, vw = max(1, round(content_hw[0] * gh / size)), max(1, round(content_hw[1] * gw / size))
    return features[:, :vh, :vw].permute(1, 2, 0).contiguous()


@torch.no_grad()
def pixel_features(backbone: torch.nn.Module, image: np.ndarray, size: int = 256,
                   autocast: torch.dtype | None = None) -> torch.Tensor:
    """(h, w, D) L2-normalised features of the image content on the first feature map's grid (stride 4).

    The backbone's maps (out_indices 1, 2, 3) are upsampled to the first map's grid and concatenated
    (:func:`backbone_maps`).
    """
    feats, content = backbone_maps(backbone, image, size, autocast)
    gh, gw = feats[0].shape[-2:]
    up = [feats[0]] + [F.interpolate(f, size=(gh, gw), mode="bilinear", align_corners=False) for f in feats[1:]]
    return content_cells(F.normalize(torch.cat(up, dim=1)[0], dim=0), content, size)


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

    ``autocast`` applies to the backbone only: the neighbour search compares float32 features. With
    ``config.official_input`` and the ``farthest`` aggregate, the official code's steps (:func:`official_grid`)."""
    if config.official_input and config.aggregate == "farthest":
        grid = official_grid(official_features(backbone, image, config.input_size, autocast), config.neighbours)
        return cv2_resize(grid, out_hw or image.shape[:2])
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


def nearest_distance(queries: torch.Tensor, bank: torch.Tensor, query_chunk: int = 1024,
                     bank_chunk: int = 4096) -> torch.Tensor:
    """(Q,) ``min over bank of (1 - cos)`` for L2-normalised ``queries`` (Q, D) against ``bank`` (R, D), exact.

    Similarities are formed ``query_chunk`` x ``bank_chunk`` at a time (the working set: that many floats, whatever
    Q and R); distances are clamped at 0 (rounding can give -1e-7 for identical vectors)."""
    if len(bank) == 0:
        raise ValueError("nearest_distance: the bank is empty")
    out = torch.empty(len(queries), device=queries.device, dtype=torch.float32)
    block = torch.empty(min(query_chunk, len(queries)) * min(bank_chunk, len(bank)), device=queries.device)
    for qs in range(0, len(queries), query_chunk):
        q = queries[qs:qs + query_chunk].float()
        best = torch.full((len(q),), -2.0, device=q.device)
        for bs in range(0, len(bank), bank_chunk):
            b = bank[bs:bs + bank_chunk].float()
            sims = torch.mm(q, b.T, out=block[:len(q) * len(b)].view(len(q), len(b)))  # one buffer for every block
            best = torch.maximum(best, sims.amax(1))
        out[qs:qs + len(q)] = (1.0 - best).clamp_min(0.0)
    return out


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
        out[idx] = torch.maximum(out[idx], 0.5 * nearest_distance(flat[idx], flat[others], config.chunk_size))
    return _grid_to_map(out, (gh, gw), out_hw or image.shape[:2])


def rescore(scores: np.ndarray, region_saliency: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """(M,) scores * exp(gain * region_saliency); ``region_saliency``: (M,) mean saliency inside each region's mask
    (``PackedMasks.means``)."""
    return np.asarray(scores, np.float64) * np.exp(gain * np.asarray(region_saliency, np.float64))


def official_rescore(confidence: float, region_saliency, gain: float = 3.0):
    """One region's official re-score: ``confidence * exp(gain * mean saliency)`` with numpy's scalar types (a float32
    mean gives a float32 score); ``confidence`` unchanged (a Python float) when the mask is empty (``NaN`` mean)."""
    if np.isnan(region_saliency):
        return float(confidence) * 1.0
    return float(confidence) * np.exp(gain * region_saliency)


def rescored(confidences: np.ndarray, region_saliency: np.ndarray | None, gain: float, official: bool):
    """The scores P^C ranks: the box ``confidences`` (M,) re-scored by ``region_saliency`` (M,) (None: P^S off, the
    confidences as they are). Paper rule: a float64 array (:func:`rescore`); ``official``: a list of the official
    scalars (:func:`official_rescore`), whose numpy types the official ranking keeps."""
    if official:
        if region_saliency is None:
            return [float(c) for c in confidences]
        return [official_rescore(float(c), m, gain) for c, m in zip(confidences, region_saliency)]
    scores = np.asarray(confidences).astype(np.float64)
    return scores if region_saliency is None else rescore(scores, region_saliency, gain)


# ------------------------------------------------------------------------------------ which map a variant scores with
def instance_objects(st, prompts, config):
    """The found objects (a ``Detections`` subset of ``st.object_detections``) whose pixels multi-instance saliency
    compares with each other, or None when the image is compared with itself: ``multi_instance`` set, several objects
    per image in the category, not ``saliency_only``, the single-image source; paper behaviour also needs two boxes
    found (official stages take the found objects as they are, see ``official_multi_instance_grid``)."""
    keep, count = found_objects(st, prompts, config)
    if (not config.saliency.multi_instance or count <= 1 or config.saliency_only
            or getattr(config.saliency, "source", "image") != "image"):
        return None
    if not st.official and keep.sum() < 2:
        return None
    return st.object_detections.select(keep)


def saliency_key(st, prompts, config) -> str:
    """The key of the P^S map ``config`` scores with on the stage outputs ``st`` (``StageOutputs.saliency_maps``):
    the saliency settings, the map's resolution and the objects multi-instance saliency compares."""
    objects = instance_objects(st, prompts, config)
    boxes = None
    if objects is not None:
        pixel = objects.official_pixel_boxes() if st.official else np.round(objects.boxes, 3)
        boxes = hashlib.sha1(np.ascontiguousarray(pixel, np.float32).tobytes()).hexdigest()
    return settings_digest({"settings": asdict(config.saliency), "objects": boxes,
                            "size": None if st.official else config.eval_resolution})
