"""Where a category's peer features are kept while its images are scored."""
from __future__ import annotations

import torch


class FeatureStore:
    """Feature tensors kept side by side in a few large blocks (``block_mib`` each, or one tensor's size if larger).

    A batch holds the features of every image for as long as the category is scored. Kept as separate tensors, each
    one sits among the freed temporaries of its own extraction, and the allocator cannot give those holes back, so the
    process grows by much more than the features. Copied into blocks allocated once, the temporaries of the next
    extraction reuse the same memory (``benchmarks/saliency_sources_memory.py`` measures the peak)."""

    def __init__(self, block_mib: int = 256):
        self.block_bytes = block_mib * 2 ** 20
        self.blocks: list[torch.Tensor] = []
        self.used = 0  # elements used in the last block

    def keep(self, features: torch.Tensor) -> torch.Tensor:
        """A copy of ``features`` inside the store (same shape, dtype and device)."""
        n = features.numel()
        last = self.blocks[-1] if self.blocks else None
        if (last is None or last.dtype != features.dtype or last.device != features.device
                or self.used + n > last.numel()):
            size = max(n, self.block_bytes // features.element_size())
            self.blocks.append(torch.empty(size, dtype=features.dtype, device=features.device))
            self.used = 0
        out = self.blocks[-1][self.used:self.used + n].view(features.shape)
        out.copy_(features)
        self.used += n
        return out
