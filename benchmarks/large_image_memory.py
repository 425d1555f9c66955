"""Peak memory of one SAA+ run (code behaviour: masks, region saliency and fusion at the image's own resolution) on a
large image, with the tiny random-weight models (NOT meaningful output; this measures memory only).

    python benchmarks/large_image_memory.py [--width 8000] [--height 6000] [--category screw]

Prints the number of candidates, the seconds taken and the peak resident memory of the process (goal: < 4 GiB for
8000 x 6000). SAM decodes the boxes a chunk at a time and each chunk's masks are bit-packed at once, so memory does
not grow with the number of candidates.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
import warnings

import numpy as np


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def test_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: a smooth grey gradient with a few dark blobs (the detector has something to find)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(90, 170, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 40, width, dtype=np.float32)[None, :]
    img = np.repeat((y + x).astype(np.uint8)[..., None], 3, axis=2)
    for _ in range(6):
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        r = max(4, min(height, width) // 40)
        img[max(cy - r, 0):cy + r, max(cx - r, 0):cx + r] = (30, 30, 40)
    return img


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=8000)
    ap.add_argument("--height", type=int, default=6000)
    ap.add_argument("--category", default="screw")
    ap.add_argument("--table", default="mvtec")
    args = ap.parse_args(argv)

    from saa_lib.config import variant_config
    from saa_lib.pipeline import SAAPipeline
    from saa_lib.prompts.language import category_prompts
    from saa_lib.weights.zoo import load_models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = load_models("tiny", seed=0)
    image = test_image(args.height, args.width)
    base = peak_rss_mib()
    prompts = category_prompts(args.category, args.table, behaviour="code")
    pipe = SAAPipeline(models)
    t0 = time.perf_counter()
    res = pipe.run(image, prompts, variant_config("saa_plus", "code"))
    secs = time.perf_counter() - t0
    peak = peak_rss_mib()
    print(f"image {args.width} x {args.height} ({image.nbytes / 2**20:.0f} MiB RGB), {len(res.regions)} candidates, "
          f"{sum(r.removed_by is None for r in res.regions)} fused, map {res.anomaly_map.shape}")
    print(f"time {secs:.1f} s; peak RSS {peak:.0f} MiB (after loading models and image: {base:.0f} MiB); "
          f"goal < 4096 MiB: {'met' if peak < 4096 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
