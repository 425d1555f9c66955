"""Stage-cache size and re-scoring time in code behaviour (full-resolution masks, stored bit-packed and compressed),
with the tiny random-weight models (NOT meaningful output; sizes and times only).

    python benchmarks/code_cache_size.py [--side 1024] [--images 2]

Each sample image of ../shared/data/samples (MVTec AD screw and leather) is resized to side x side; one SAA+ run
fills a fresh stage cache; the script prints the cache's bytes per image and per candidate mask (goal: <= 2 MB per
image for 1024 x 1024 images with <= 100 candidates, i.e. <= 20 kB a mask) and the time of re-scoring each image from
the cache after a threshold and K change (goal: <= 50 ms per image).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "samples"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--images", type=int, default=2)
    args = ap.parse_args(argv)

    from saa_lib.cache import StageCache
    from saa_lib.config import variant_config
    from saa_lib.pipeline import SAAPipeline
    from saa_lib.prompts.language import category_prompts
    from saa_lib.weights.zoo import load_models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = load_models("tiny", seed=0)
    files = [(c, sorted((SAMPLES / "mvtec_ad" / c / "test").rglob("*.png"))) for c in ("screw", "leather")]
    picks = [(c, f[i]) for i in range(args.images) for c, f in files][: args.images]
    cfg = variant_config("saa_plus", "code")
    changed = cfg.with_(box_threshold=cfg.box_threshold + 0.05, top_k=3)
    with tempfile.TemporaryDirectory() as tmp:
        cache = StageCache(tmp)
        pipe = SAAPipeline(models, cache)
        stages, n_masks = [], 0
        for cat, path in picks:
            img = np.asarray(Image.open(path).convert("RGB").resize((args.side, args.side), Image.BILINEAR))
            prompts = category_prompts(cat, "mvtec", behaviour="code")
            st = pipe.stages(img, prompts, cfg)
            stages.append((st, prompts))
            n_masks += len(st.detections)
        per_stage = {d.name: sum(f.stat().st_size for f in d.rglob("*.npz")) for d in Path(tmp).iterdir()}
        total = sum(per_stage.values())
        t0 = time.perf_counter()
        for st, prompts in stages:
            pipe.score(st, prompts, changed)
        ms = (time.perf_counter() - t0) * 1e3 / len(stages)
    print(f"{len(picks)} images {args.side} x {args.side}, {n_masks} candidate masks in all")
    print("cache bytes per stage: " + ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in sorted(per_stage.items())))
    print(f"cache per image {total / len(picks) / 2**20:.2f} MiB; refiner per mask "
          f"{per_stage.get('refiner', 0) / max(n_masks, 1) / 1024:.1f} KiB (goal: 100 masks + the rest <= 2 MB)")
    print(f"re-scoring from the cache after a threshold/K change: {ms:.1f} ms per image (goal <= 50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
