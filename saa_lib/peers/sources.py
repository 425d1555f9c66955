"""P^S from other images: batch zero-shot (mutual scoring) and few-shot (nearest normal patch) saliency.

The single-image P^S compares each pixel with the rest of its own image. With other images of the same product at hand
two training-free sources fit the same slot (a map in [0, 1]-ish units that the rescoring and ``saliency_only`` use):

- ``batch`` (mutual scoring, as in MuSc): the test images of a category score each other. For pixel p of image i and
  every other image j, ``d_j(p) = min_q (1 - cos(f_p, f_q))`` over the patches q of image j; the saliency is the mean
  of the smallest ``ceil(fraction * (N - 1))`` of these N - 1 distances, each first divided by its own 10 % quantile
  over the image's patches (:func:`per_image_scaled`: other images that differ as a whole, in lighting or in the
  scale of a texture, then stop lifting every patch). A normal patch has a close match in almost every other image;
  a defect has none in the images that do not share it, and the mean of the *smallest* distances stays low only if
  many other images carry the same defect. Zero-shot and transductive; the sorted aggregation makes it independent
  of the order of the images. Where the objects lie at any angle (screws), the image is also turned by quarter turns
  (:func:`quarter_turn`, its features turned back onto its grid) and each other image is matched by the closest turn:
  only the query's views are computed, the other images' features are held once.
- ``fewshot`` (PatchCore-style memory, no training): ``s(p) = min_q (1 - cos(f_p, f_q))`` over the patches q of k
  normal reference images.

Both take the patch features on their own input size (``PeerConfig.source_input``: 384 for batch, where small
defects then cover more cells; 256 for few-shot, whose bank holds every view of each reference), averaged over
``pool`` x ``pool`` neighbourhoods (``PeerConfig.pool``, 1 by default). Where the backbone holds a stride-32 stage
(tf_efficientnet_lite0) the same score is also computed on that stage's own coarse grid (:func:`deep_features`, on a
larger input: ``PeerConfig.deep_input``, 640 px) and mixed in (``PeerConfig.deep_weight``,
:func:`source_map`). Then:

- smooth the map with a Gaussian (``sigma`` pixels of the output map);
- optionally (``normalize``, off by default) divide it by its own median (:func:`median_normalise`): the distance
  of a normal patch to its best match differs from one image to the next, and the pixels of all images are ranked
  together by pixel AUROC and max-F1; but where a defect covers half the image the median lies inside it;
- combine it with the single-image map as a weighted geometric mean (:func:`combine_with_image`): high only where
  both are, which removes the isolated high distances of one source that the other does not share.

Few-shot compares with rotated and mirrored copies of each reference (:func:`reference_view`), so parts shown at
another angle in the reference still find their match (a screw lies at any angle).
Everything here is exact and memory-bounded: the nearest-neighbour search runs over blocks of ``query_chunk`` x
``bank_chunk`` similarities, so the working set never depends on the number or size of the images.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..prompts.saliency import backbone_maps, content_cells, nearest_distance, pixel_features


def neighbourhood_features(features: torch.Tensor, pool: int = 3) -> torch.Tensor:
    """(h, w, D) L2-normalised features averaged over each ``pool`` x ``pool`` neighbourhood, re-normalised.

    ``pool <= 1`` returns the features unchanged. Border cells average the cells that exist (no zero padding)."""
    if pool <= 1:
        return features
    x = features.permute(2, 0, 1)[None]  # (1, D, h, w)
    x = F.avg_pool2d(x, pool, stride=1, padding=pool // 2, count_include_pad=False)
    return F.normalize(x[0], dim=0).permute(1, 2, 0).contiguous()


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


def batch_scores(query: torch.Tensor | list[torch.Tensor], others: list[torch.Tensor], fraction: float = 0.3,
                 query_chunk: int = 1024, bank_chunk: int = 4096,
                 peer_quantile: float | None = None) -> torch.Tensor:
    """(Q,) mutual-scoring saliency of ``query`` (Q, D) against the patch sets ``others`` (each (R_j, D)) of the
    other images: the mean of the smallest ``fraction`` of the per-image nearest distances (see module docstring).

    ``query`` may be a list of views of the same Q patches (e.g. the image turned, see :func:`quarter_turn`): the
    distance to each other image is then the smallest over the views. ``peer_quantile``: the distances to each other
    image are first divided by their own ``peer_quantile`` quantile over the Q patches (:func:`per_image_scaled`)."""
    return batch_aggregate(batch_distances(query, others, query_chunk, bank_chunk), fraction, peer_quantile)


def batch_distances(query: torch.Tensor | list[torch.Tensor], others: list[torch.Tensor], query_chunk: int = 1024,
                    bank_chunk: int = 4096) -> torch.Tensor:
    """(Q, N-1) exact nearest distance of each query patch (Q, D) to each of the patch sets ``others`` (the smallest
    over the views when ``query`` is a list of views of the same Q patches)."""
    if not others:
        raise ValueError("batch saliency needs at least one other image of the category")
    views = query if isinstance(query, (list, tuple)) else [query]
    return torch.stack([torch.stack([nearest_distance(v, o, query_chunk, bank_chunk) for v in views], 1).amin(1)
                        for o in others], dim=1)


def batch_aggregate(distances: torch.Tensor, fraction: float, peer_quantile: float | None = None) -> torch.Tensor:
    """(Q,) mutual score from the (Q, N-1) per-image nearest distances: each column divided by its ``peer_quantile``
    quantile (None: as they are), then the mean of the smallest ``fraction`` of each row."""
    if peer_quantile is not None:
        distances = per_image_scaled(distances, peer_quantile)
    return smallest_mean(distances, fraction)


def per_image_scaled(distances: torch.Tensor, quantile: float = 0.1, eps: float = 1e-3) -> torch.Tensor:
    """(Q, N) ``distances`` with each column (the Q patches' distances to one other image) divided by its own
    ``quantile`` quantile (at least ``eps``).

    Two images of one product can differ as a whole (lighting, exposure, the scale of a tile's texture), which raises
    every distance between them: a patch compared with a brighter tile is far from all of it. In units of how close
    the other image comes to the query's best-matched tenth, an other image counts by how much worse it matches
    *this* patch than the query's well-matched ones, so images that differ as a whole stop lifting every patch of the
    query. Column by column, so the result keeps the order independence of :func:`smallest_mean`; a normal patch
    scores about 1 (the map is in units of these quantiles)."""
    if not 0.0 <= quantile < 1.0:
        raise ValueError(f"peer quantile must be in [0, 1), got {quantile}")
    scale = torch.quantile(distances.float(), quantile, dim=0)  # (N,)
    return distances / scale.clamp_min(eps)


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


def reference_view(image: np.ndarray, t: int, rotations: int = 4) -> np.ndarray:
    """(H, W, C) view ``t`` (0 .. 2 * rotations - 1) of a reference image: rotated counter-clockwise by
    ``360 * (t // 2) / rotations`` degrees about its centre, then mirrored left-right when ``t`` is odd (t = 0: the
    image itself). The frame keeps its size; what the rotation brings in from outside is filled with the median colour
    of the image's border. Quarter turns of a square image (or half turns of any) are exact (``np.rot90``); with
    ``rotations=4`` a square image's views are its 8 dihedral symmetries."""
    if not 0 <= t < 2 * rotations:
        raise ValueError(f"reference view {t} out of range for {rotations} rotations (0 .. {2 * rotations - 1})")
    angle = 360.0 * (t // 2) / rotations
    h, w = image.shape[:2]
    if angle % 180 == 0 or (angle % 90 == 0 and h == w):
        out = np.rot90(image, int(angle // 90))
    else:
        out = rotate_image(image, angle)
    return np.ascontiguousarray(out[:, ::-1] if t % 2 else out)


def rotate_image(image: np.ndarray, degrees: float) -> np.ndarray:
    """(H, W[, C]) uint8 ``image`` rotated counter-clockwise by ``degrees`` about its centre in the same frame
    (bilinear). Pixels from outside the frame take the median colour of the image's border: the image is sampled as
    ``image - fill`` with zeros outside, then ``fill`` is added back, so nothing is darkened at the frame's edge."""
    chw = image[..., None] if image.ndim == 2 else image
    fill = np.median(np.concatenate([chw[0], chw[-1], chw[:, 0], chw[:, -1]]), axis=0)
    h, w = chw.shape[:2]
    th = np.deg2rad(degrees)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    u, v = x - cx, cy - y  # output position, y up
    x_in = math.cos(th) * u + math.sin(th) * v + cx
    y_in = cy - (-math.sin(th) * u + math.cos(th) * v)
    grid = torch.stack([x_in / max(w - 1, 1) * 2 - 1, y_in / max(h - 1, 1) * 2 - 1], -1)[None].float()
    fill_t = torch.from_numpy(fill.astype(np.float32))
    src = (torch.from_numpy(np.ascontiguousarray(chw)).float() - fill_t).permute(2, 0, 1)[None]
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0].permute(1, 2, 0)
    out = (out + fill_t).round().clamp(0, 255).to(torch.uint8).numpy()
    return out.reshape(image.shape)


def quarter_turn(image: np.ndarray, k: int) -> np.ndarray:
    """(H, W, C) ``image`` turned counter-clockwise by ``k`` quarter turns, exactly (the frame turns with it: a
    (W, H, C) image for odd ``k``)."""
    return np.ascontiguousarray(np.rot90(image, k))


def unturn_features(features: torch.Tensor, k: int, grid_hw: tuple[int, int]) -> torch.Tensor:
    """(h, w, D) features of an image turned by ``k`` quarter turns (:func:`quarter_turn`), turned back onto the
    (gh, gw) = ``grid_hw`` grid of the image itself. Where rounding left the turned grid a cell off, it is resized
    bilinearly and re-normalised."""
    f = torch.rot90(features, -k, dims=(0, 1))
    if tuple(f.shape[:2]) != tuple(grid_hw):
        f = F.interpolate(f.permute(2, 0, 1)[None], size=tuple(grid_hw), mode="bilinear", align_corners=False)
        f = F.normalize(f[0], dim=0).permute(1, 2, 0)
    return f.contiguous()


def scaled_input(size: int, longest: int, reference_longest: float, limit: int = 1024) -> int:
    """The input size that shows an image whose longest side is ``longest`` px at the pixel scale of a
    ``reference_longest`` px image shown at ``size``: ``round(size * longest / reference_longest)``, kept within
    [32, ``limit``]. Images of one set then show their texture at one scale, whatever their sizes."""
    return int(min(limit, max(32, round(size * longest / reference_longest))))


def reference_views(source: str, augment: bool, rotations: int) -> range:
    """The view indices (:func:`reference_view`) a source compares with: every rotation and mirror of a few-shot
    reference when ``augment``, else the image as it is."""
    return range(2 * rotations) if source == "fewshot" and augment else range(1)


def median_normalise(values: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """``values / max(median(values), eps)``: a map in units of its own typical pixel. A median below ``eps`` (an
    image whose patches nearly all found an exact match) counts as ``eps``, so rounding noise is not blown up and an
    all-zero map stays 0."""
    return (values / max(float(np.median(values)), eps)).astype(np.float32)


def source_features(backbone: torch.nn.Module, image: np.ndarray, size: int = 384, pool: int = 1,
                    autocast: torch.dtype | None = None) -> torch.Tensor:
    """(h, w, D) neighbourhood-aggregated patch features of ``image`` (H, W, 3) uint8 on a ``size`` input: the
    single-image P^S features (:func:`saa_lib.prompts.saliency.pixel_features`) then :func:`neighbourhood_features`."""
    return neighbourhood_features(pixel_features(backbone, image, size, autocast), pool)


def deep_features(backbone: torch.nn.Module, image: np.ndarray, size: int = 384,
                  autocast: torch.dtype | None = None) -> torch.Tensor:
    """(h, w, C) L2-normalised features of ``image`` from the backbone's stride-32 stage, on that stage's own grid
    (12 x 12 cells for a square image at 384 px, 20 x 20 at 640 px): the coarse level of :func:`source_map`."""
    feats, content = backbone_maps(backbone, image, size, autocast, deep=True)
    return content_cells(F.normalize(feats[-1][0], dim=0), content, size)


def source_map(query: torch.Tensor, peers: list[torch.Tensor], source: str, out_hw: tuple[int, int],
               batch_fraction: float = 0.1, smooth_sigma: float = 8.0, chunk_size: int = 1024,
               normalize: bool = False, turned: list[torch.Tensor] = (),
               peer_quantile: float | None = None, deep: tuple | None = None, deep_weight: float = 0.0,
               search=None) -> np.ndarray:
    """(out_h, out_w) float32 batch or few-shot saliency map of ``query`` (h, w, D) against ``peers`` (each (P_j, D):
    the other test images for ``'batch'``, the reference images (and their views) for ``'fewshot'``), divided by its
    median when ``normalize``. ``turned``: batch only, further views of the query on its grid (each (h, w, D), see
    :func:`unturn_features`); each other image is matched by the closest view. ``peer_quantile``: batch only, see
    :func:`batch_scores`.

    ``deep``: the same three inputs on the backbone's stride-32 grid (:func:`deep_features`): ``(query (h', w', C),
    peers [(P'_j, C)], turned [(h', w', C)])``, the peers in the order of ``peers``. That coarse level is scored on
    its own grid like the fine one, upsampled bilinearly onto the fine grid and mixed in as
    ``(1 - deep_weight) * fine + deep_weight * coarse`` (per-level scoring, as in MuSc): the stride-32 stage sees
    parts of a tile or a screw as a whole, where large defects differ, and the fine level keeps small ones sharp.

    ``search``: batch only, a callable from the fine level's views (each (Q, D)) to their (Q, N-1) per-image nearest
    distances (:class:`~saa_lib.peers.index.PatchIndex`, :class:`~saa_lib.peers.index.DeviceBanks`), used instead of
    the exact search over ``peers`` (then unused at that level); the coarse level is always searched exactly."""
    if source not in ("batch", "fewshot"):
        raise ValueError(f"source_map computes 'batch' or 'fewshot' saliency, got {source!r}")

    def scores(q: torch.Tensor, others: list[torch.Tensor], views, search=None) -> torch.Tensor:  # (q_h * q_w,)
        flat = q.reshape(-1, q.shape[-1])
        if source == "fewshot":
            return fewshot_scores(flat, others, chunk_size)
        all_views = [flat] + [v.reshape(-1, q.shape[-1]) for v in views]
        d = search(all_views) if search is not None else batch_distances(all_views, others, chunk_size)
        return batch_aggregate(d, batch_fraction, peer_quantile)

    h, w = query.shape[:2]
    s = scores(query, peers, turned, search)
    if deep is not None and deep_weight > 0:
        deep_query, deep_peers, deep_turned = deep
        coarse = scores(deep_query, deep_peers, deep_turned).reshape(1, 1, *deep_query.shape[:2])
        coarse = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).reshape(-1)
        s = (1.0 - deep_weight) * s + deep_weight * coarse
    out = grid_to_smoothed_map(s, (h, w), out_hw, smooth_sigma)
    return median_normalise(out) if normalize else out


def combine_with_image(other: np.ndarray, image_map: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """Weighted geometric mean ``other ** (1 - image_weight) * image_map ** image_weight`` of two non-negative maps
    of the same shape (0.5: ``sqrt(other * image)``): high only where both are, and its ranking of pixels does not
    change when either map is rescaled (their units differ)."""
    a = np.clip(other, 0, None).astype(np.float64) ** (1.0 - image_weight)
    return (a * np.clip(image_map, 0, None).astype(np.float64) ** image_weight).astype(np.float32)
