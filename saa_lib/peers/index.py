"""The patch searches of batch P^S at the size of a category: an inverted-file patch index (CPU default) and the exact
search with every bank in one device tensor (CUDA).

Batch scoring needs, for each query patch and each OTHER image, the nearest patch *of that image* (the per-image
minimum :func:`~saa_lib.peers.sources.batch_scores` aggregates). The exact search compares every patch of an image
with every patch of every other image, so its cost per image grows with N. :class:`PatchIndex` is built once per
category over the fine (stride-4) features of all batch images:

- its lists come from spherical k-means (``faiss.Kmeans(..., spherical=True)``, seeded sample) with about
  ``list_size`` patches per list (:func:`default_nlist`); every patch is filed under its nearest centroid (faiss
  flat inner-product search), rows ordered by (list, image) and kept as row numbers into the features (float16);
- a query patch probes its ``nprobe`` nearest lists (faiss flat search over the centroids); each probed list is
  compared with the query rows probing it in one matmul, and the maxima are taken *per image* over the list's runs of
  equal image (``np.maximum.reduceat``). faiss's own IVF / HNSW searches return a global top-K over all patches, not
  the nearest patch in each image, and with near-duplicate images a top-K fills with a few images; so this last step
  is done here in torch / numpy;
- a (query patch, image) pair whose image has no patch in the probed lists is *unknown*; its distance is the largest
  distance found for that query patch, at least the distance to its ``nprobe``-th centroid
  (:meth:`PatchIndex.distances`): such images are far from the patch and rarely among its closest ones.

With ``nprobe`` equal to the number of lists every pair is known and the search is the exact search. Order
independence: the rows follow the order of the banks (the sorted digests of the batch), the k-means sample and
initialisation are seeded, and the aggregate sorts.

:class:`DeviceBanks` is the exact search for a GPU: every bank in one device tensor, query chunks against groups of
images of equal size in one matmul, float32 accumulation.
"""
from __future__ import annotations

import math

import numpy as np
import torch

#: the assignment of patches to lists runs over blocks of this many rows. Each block's float32 copy (46 MiB at
#: D = 176) is larger than glibc's largest mmap threshold (32 MiB), so it goes back to the system when freed; with
#: blocks of 16384 rows the freed copies stayed in the heap and the process kept ~300 MiB more per 460k patches
ASSIGN_BLOCK = 65536


def default_nlist(total_patches: int, list_size: int = 900, nprobe: int = 16) -> int:
    """The number of lists: the power of 2 nearest to ``total_patches / list_size``, at least ``nprobe`` (a batch too
    small for more lists is then searched exactly)."""
    if total_patches <= 0:
        raise ValueError("the patch index needs at least one patch")
    return int(2 ** round(math.log2(max(total_patches / list_size, nprobe, 1))))


def flat_rows(banks: list[torch.Tensor]) -> torch.Tensor:
    """(sum R_j, D) the banks as one tensor: a view when they already lie one after the other in one storage (as a
    :class:`~saa_lib.peers.store.FeatureStore` block keeps them), else a copy."""
    first = banks[0]
    storage, offset = first.untyped_storage(), first.storage_offset()
    expected = offset
    for b in banks:
        if (not b.is_contiguous() or b.untyped_storage().data_ptr() != storage.data_ptr()
                or b.storage_offset() != expected or b.dtype != first.dtype):
            return torch.cat([x.reshape(-1, first.shape[-1]) for x in banks])
        expected += b.numel()
    total = sum(len(b) for b in banks)
    return torch.empty(0, dtype=first.dtype, device=first.device).set_(
        storage, offset, (total, first.shape[-1]), (first.shape[-1], 1))


class PatchIndex:
    """Inverted-file index over the patch banks of the images of a category (module docstring).

    ``banks``: each image's L2-normalised patches (R_j, D) (float16 or float32), image ``j`` = column ``j`` of every
    result; they are referenced, not copied, when they lie side by side in one storage (:func:`flat_rows`).
    ``nlist`` lists from ``iters`` spherical k-means iterations on a seeded sample of ``sample`` patches."""

    def __init__(self, banks: list[torch.Tensor], nlist: int, iters: int = 10, sample: int = 65536, seed: int = 0):
        import faiss  # imported here: the package stays importable without it

        if not banks:
            raise ValueError("the patch index needs at least one image")
        self.x = flat_rows([b.reshape(-1, b.shape[-1]) for b in banks])
        sizes = torch.tensor([b.shape[0] * (b.shape[1] if b.dim() == 3 else 1) for b in banks])
        self.n, self.dim, self.nlist = len(banks), self.x.shape[1], int(nlist)
        self.starts = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
        if self.nlist > len(self.x):
            raise ValueError(f"the patch index cannot hold {self.nlist} lists over {len(self.x)} patches")
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(self.x), generator=g)[:min(sample, len(self.x))].sort().values
        xs = np.ascontiguousarray(self.x[pick].float().numpy())
        if self.nlist == 1:
            centroids = xs.mean(0, keepdims=True)
            centroids /= max(float(np.linalg.norm(centroids)), 1e-12)
        else:
            km = faiss.Kmeans(self.dim, self.nlist, niter=iters, spherical=True, seed=seed, verbose=False,
                              max_points_per_centroid=max(1, math.ceil(len(xs) / self.nlist)) + 1,
                              min_points_per_centroid=1)
            km.train(xs)
            centroids = km.centroids
        self.centroids = faiss.IndexFlatIP(self.dim)
        self.centroids.add(np.ascontiguousarray(centroids, dtype=np.float32))
        assign = torch.cat([torch.from_numpy(self._probe(self.x[i:i + ASSIGN_BLOCK], 1)[1][:, 0])
                            for i in range(0, len(self.x), ASSIGN_BLOCK)])
        owner = torch.repeat_interleave(torch.arange(self.n), sizes)
        self.rows = torch.argsort(assign * self.n + owner, stable=True)  # (list, image, grid order)
        self.owner = owner[self.rows].numpy()
        counts = torch.bincount(assign, minlength=self.nlist)
        self.offsets = np.concatenate([[0], torch.cumsum(counts, 0).numpy()])

    def _probe(self, rows: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, k) similarities and numbers of the ``k`` nearest centroids of ``rows`` (faiss flat search)."""
        sims, lists = self.centroids.search(np.ascontiguousarray(rows.float().numpy()), k)
        return sims, lists.astype(np.int64)

    @property
    def patches(self) -> int:
        return len(self.x)

    def bank(self, j: int) -> torch.Tensor:
        """(R_j, D) image ``j``'s patches in grid order, as kept."""
        return self.x[self.starts[j]:self.starts[j + 1]]

    def search(self, queries: torch.Tensor, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, n) float32 largest cosine similarity of each query patch (Q, D) to each image's patches (-inf where the
        image has no patch in the probed lists), and (Q,) the similarity to each query patch's ``nprobe``-th
        centroid."""
        nprobe = min(int(nprobe), self.nlist)
        q = queries.float().contiguous()
        sims_c, lists = self._probe(q, nprobe)
        rows = np.repeat(np.arange(len(q)), nprobe)
        order = np.argsort(lists.reshape(-1), kind="stable")
        flat_lists, rows = lists.reshape(-1)[order], rows[order]
        bounds = np.searchsorted(flat_lists, np.arange(self.nlist + 1))
        best = np.full((len(q), self.n), -np.inf, np.float32)
        for c in np.flatnonzero(np.diff(bounds)):
            a, b = self.offsets[c], self.offsets[c + 1]
            if a == b:
                continue
            r = rows[bounds[c]:bounds[c + 1]]
            sims = (q[torch.from_numpy(r)] @ self.x[self.rows[a:b]].float().T).numpy()
            own = self.owner[a:b]
            runs = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
            cols = own[runs]
            best[np.ix_(r, cols)] = np.maximum(best[np.ix_(r, cols)], np.maximum.reduceat(sims, runs, axis=1))
        return best, sims_c[:, -1].astype(np.float32)

    def distances(self, views: list[torch.Tensor], columns: list[int], nprobe: int) -> tuple[torch.Tensor, float]:
        """(Q, len(columns)) nearest distance ``1 - cos`` of the query patches to the images ``columns`` (the smallest
        over ``views``, each (Q, D): the query and its turned copies), unknown pairs filled as the module docstring
        says; and the share of known pairs."""
        d = probe = None
        cols = np.asarray(columns, dtype=np.int64)
        for v in views:
            best, probe_sim = self.search(v, nprobe)
            dv = 1.0 - best[:, cols]  # +inf where unknown
            pv = 1.0 - probe_sim
            d = dv if d is None else np.minimum(d, dv)
            probe = pv if probe is None else np.minimum(probe, pv)
        known = np.isfinite(d)
        worst = np.where(known, d, -1.0).max(1)
        fill = np.maximum(worst, probe)
        out = np.where(known, d, fill[:, None]).clip(min=0.0).astype(np.float32)
        return torch.from_numpy(out), float(known.mean()) if known.size else 1.0


class DeviceBanks:
    """Exact per-image nearest-patch search with every bank in one (sum R_j, D) tensor on ``device`` (a GPU: the
    search is cheap there, so it stays exact). Images of equal size are searched in groups of ``group`` with one
    matmul per query chunk (``sims.view(chunk, g, R).amax(-1)``); ``dtype`` float16 halves the memory, the products
    are accumulated and compared in float32."""

    def __init__(self, banks: list[torch.Tensor], device: torch.device | str, dtype: torch.dtype = torch.float32,
                 query_chunk: int = 1024, group: int = 16):
        self.device = torch.device(device)
        self.sizes = [b.reshape(-1, b.shape[-1]).shape[0] for b in banks]
        self.x = torch.cat([b.reshape(-1, b.shape[-1]).to(self.device, dtype) for b in banks])
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)])
        self.query_chunk, self.group = query_chunk, group

    def _sims(self, q: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        if bank.dtype == torch.float32:
            return q @ bank.T
        if self.device.type == "cuda":  # float16 inputs, float32 accumulation and output
            return torch.mm(q.to(bank.dtype), bank.T, out_dtype=torch.float32)
        return q @ bank.float().T

    def distances(self, views: list[torch.Tensor], columns: list[int]) -> torch.Tensor:
        """(Q, len(columns)) exact nearest distance ``1 - cos`` of the query patches to the images ``columns`` (the
        smallest over ``views``, each (Q, D)), on the device."""
        cols = list(columns)
        out = torch.full((len(views[0]), len(cols)), float("inf"), device=self.device)
        groups, i = [], 0
        while i < len(cols):  # runs of consecutive columns of equal size, at most `group` long
            j = i + 1
            while (j < len(cols) and j - i < self.group and self.sizes[cols[j]] == self.sizes[cols[i]]
                   and cols[j] == cols[j - 1] + 1):
                j += 1
            groups.append((i, j))
            i = j
        for v in views:
            v = v.to(self.device, torch.float32)
            for qs in range(0, len(v), self.query_chunk):
                q = v[qs:qs + self.query_chunk]
                for i, j in groups:
                    a, b = self.starts[cols[i]], self.starts[cols[j - 1] + 1]
                    sims = self._sims(q, self.x[a:b]).view(len(q), j - i, -1).amax(-1)
                    out[qs:qs + len(q), i:j] = torch.minimum(out[qs:qs + len(q), i:j], (1.0 - sims))
        return out.clamp_min(0.0)
