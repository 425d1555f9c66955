"""P^S from other images: batch zero-shot (mutual scoring) and few-shot (nearest normal patch) saliency.

The single-image P^S compares each pixel with the rest of its own image. With other images of the same product at hand
two training-free sources fit the same slot (a map in [0, 1]-ish units that the rescoring and ``saliency_only`` use):

- ``batch`` (mutual scoring, as in MuSc): the test images of a category score each other. For pixel p of image i and
  every other image j, ``d_j(p) = min_q (1 - cos(f_p, f_q))`` over the patches q of image j; the saliency is the mean
  of the smallest ``ceil(fraction * (N - 1))`` of these N - 1 distances. A normal patch has a close match in almost
  every other image; a defect has none in the images that do not share it, and the mean of the *smallest* distances
  stays low only if many other images carry the same defect. Zero-shot and transductive; the sorted aggregation
  makes it independent of the order of the images.
- ``fewshot`` (PatchCore-style memory, no training): ``s(p) = min_q (1 - cos(f_p, f_q))`` over the patches q of k
  normal reference images.

Both use locally aggregated patch features (``pool`` x ``pool`` average of the stride-4 features, re-normalised, as
PatchCore does with 3 x 3) and a Gaussian smoothing of the map (``sigma`` pixels of the output map). Everything here
is exact and memory-bounded: the nearest-neighbour search runs over blocks of ``query_chunk`` x ``bank_chunk``
similarities, so the working set never depends on the number or size of the images.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..config import SALIENCY_SOURCES as SOURCES


def neighbourhood_features(features: torch.Tensor, pool: int = 3) -> torch.Tensor:
    """(h, w, D) L2-normalised features averaged over each ``pool`` x ``pool`` neighbourhood, re-normalised.

    ``pool <= 1`` returns the features unchanged. Border cells average the cells that exist (no zero padding)."""
    if pool <= 1:
        return features
    x = features.permute(2, 0, 1)[None]  # (1, D, h, w)
    x = F.avg_pool2d(x, pool, stride=1, padding=pool // 2, count_include_pad=False)
    return F.normalize(x[0], dim=0).permute(1, 2, 0).contiguous()


def nearest_distance(queries: torch.Tensor, bank: torch.Tensor, query_chunk: int = 1024,
                     bank_chunk: int = 4096) -> torch.Tensor:
    """(Q,) ``min over bank of (1 - cos)`` for L2-normalised ``queries`` (Q, D) against ``bank`` (R, D), exact.

    Similarities are formed ``query_chunk`` x ``bank_chunk`` at a time (the working set: that many floats, whatever
    Q and R); distances are clamped at 0 (rounding can give -1e-7 for identical vectors)."""
    if len(bank) == 0:
        raise ValueError("nearest_distance: the bank is empty")
    out = torch.empty(len(queries), device=queries.device, dtype=torch.float32)
    for qs in range(0, len(queries), query_chunk):
        q = queries[qs:qs + query_chunk].float()
        best = torch.full((len(q),), -2.0, device=q.device)
        for bs in range(0, len(bank), bank_chunk):
            best = torch.maximum(best, (q @ bank[bs:bs + bank_chunk].float().T).amax(1))
        out[qs:qs + len(q)] = (1.0 - best).clamp_min(0.0)
    return out


def smallest_mean(distances: torch.Tensor, fraction: float) -> torch.Tensor:
    """(Q,) mean of the smallest ``ceil(fraction * N)`` (at least 1) of each row of ``distances`` (Q, N).

    Sorted before summing, so the result does not depend on the order of the columns (bit for bit)."""
    n = distances.shape[1]
    if n == 0:
        raise ValueError("smallest_mean: no other image to compare with")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    m = max(1, math.ceil(fraction * n - 1e-9))
    return distances.sort(dim=1).values[:, :m].mean(1)


def batch_scores(query: torch.Tensor, others: list[torch.Tensor], fraction: float = 0.3,
                 query_chunk: int = 1024, bank_chunk: int = 4096) -> torch.Tensor:
    """(Q,) mutual-scoring saliency of ``query`` (Q, D) against the patch sets ``others`` (each (R_j, D)) of the
    other images: the mean of the smallest ``fraction`` of the per-image nearest distances (see module docstring)."""
    if not others:
        raise ValueError("batch saliency needs at least one other image of the category")
    d = torch.stack([nearest_distance(query, o, query_chunk, bank_chunk) for o in others], dim=1)  # (Q, N-1)
    return smallest_mean(d, fraction)


def fewshot_scores(query: torch.Tensor, references: list[torch.Tensor], query_chunk: int = 1024,
                   bank_chunk: int = 4096) -> torch.Tensor:
    """(Q,) distance of each query patch (Q, D) to its nearest patch among all reference patch sets (each (R_j, D));
    the bank is searched set by set, so the references are never concatenated."""
    if not references:
        raise ValueError("few-shot saliency needs at least one reference image")
    return torch.stack([nearest_distance(query, r, query_chunk, bank_chunk) for r in references], 1).amin(1)


def gaussian_smooth(values: torch.Tensor, sigma: float) -> torch.Tensor:
    """(h, w) map convolved with a Gaussian of ``sigma`` pixels (separable, reflect padding); ``sigma <= 0``: as is."""
    if sigma <= 0:
        return values
    radius = max(1, int(round(4 * sigma)))
    radius = min(radius, min(values.shape) - 1) if min(values.shape) > 1 else 0
    if radius == 0:
        return values
    x = torch.arange(-radius, radius + 1, device=values.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    v = F.pad(values[None, None].float(), (radius, radius, radius, radius), mode="reflect")
    v = F.conv2d(v, k.view(1, 1, 1, -1))
    return F.conv2d(v, k.view(1, 1, -1, 1))[0, 0]


def grid_to_smoothed_map(values: torch.Tensor, grid_hw: tuple[int, int], out_hw: tuple[int, int],
                         sigma: float = 4.0) -> np.ndarray:
    """(gh * gw,) values on the feature grid -> (out_h, out_w) float32 map: bilinear, then Gaussian ``sigma``."""
    up = F.interpolate(values.reshape(1, 1, *grid_hw).float(), size=tuple(out_hw), mode="bilinear",
                       align_corners=False)[0, 0]
    return gaussian_smooth(up, sigma).cpu().numpy().astype(np.float32)


def order_key(digests) -> list[str]:
    """The sorted digests of a set of images: the cache key of a batch or reference set (order-free)."""
    return sorted(set(digests))


def dihedral(image: np.ndarray, t: int) -> np.ndarray:
    """(H, W, 3) image under the t-th (0..7) rotation / flip: ``rot90`` by ``t // 2`` quarter turns, then a
    left-right flip when ``t`` is odd (t = 0: the image itself)."""
    out = np.rot90(image, t // 2)
    return np.ascontiguousarray(out[:, ::-1] if t % 2 else out)


def source_features(backbone: torch.nn.Module, image: np.ndarray, size: int = 256, pool: int = 3,
                    autocast: torch.dtype | None = None) -> torch.Tensor:
    """(h, w, D) neighbourhood-aggregated patch features of ``image`` (H, W, 3) uint8 on a ``size`` input: the
    single-image P^S features (:func:`saa_lib.prompts.saliency.pixel_features`) then :func:`neighbourhood_features`."""
    from .saliency import pixel_features

    return neighbourhood_features(pixel_features(backbone, image, size, autocast), pool)


def source_map(query: torch.Tensor, peers: list[torch.Tensor], source: str, out_hw: tuple[int, int],
               batch_fraction: float = 0.3, smooth_sigma: float = 4.0, chunk_size: int = 1024) -> np.ndarray:
    """(out_h, out_w) float32 batch or few-shot saliency map of ``query`` (h, w, D) against ``peers`` (each (P_j, D):
    the other test images for ``'batch'``, the reference images (and their rotations) for ``'fewshot'``)."""
    h, w, d = query.shape
    flat = query.reshape(-1, d)
    if source == "batch":
        s = batch_scores(flat, peers, batch_fraction, chunk_size)
    elif source == "fewshot":
        s = fewshot_scores(flat, peers, chunk_size)
    else:
        raise ValueError(f"source_map computes 'batch' or 'fewshot' saliency, got {source!r}")
    return grid_to_smoothed_map(s, (h, w), out_hw, smooth_sigma)


def combine_with_image(other: np.ndarray, image_map: np.ndarray) -> np.ndarray:
    """Geometric mean ``sqrt(other * image)`` of two non-negative maps of the same shape: high only where both are,
    and its ranking of pixels does not change when either map is rescaled (their units differ)."""
    return np.sqrt(np.clip(other, 0, None) * np.clip(image_map, 0, None)).astype(np.float32)
