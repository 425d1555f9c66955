"""Memory bound of batch saliency: a category of 100 images at 400 x 400 px, each scored against the 99 others.

The features of all images are extracted once (``PeerSaliency.prepare``) and held in memory; scoring one image runs
the exact nearest-patch search over blocks of ``chunk_size`` x 4096 similarities, so the peak does not grow with the
number of images beyond their features. Prints the feature memory, the peak resident memory of the process (goal:
<= 2 GiB) and the time per scored image. Scoring all 100 images takes 100 x the time per image on the CPU; ``--score``
sets how many are scored (the peak is reached with the first). Usage::

    python benchmarks/saliency_sources_memory.py [--images 100] [--size 400] [--score 2] [--pool 1] [--deep-size 640]
        [--device cpu]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import torch

from saa_lib.cache import StageCache
from saa_lib.config import variant_config
from saa_lib.data.synthetic import SYNTHETIC_CATEGORIES, synthesize
from saa_lib.peers import PeerConfig, PeerSaliency, with_peers
from saa_lib.peers.config import DEEP_INPUT_SIZE
from saa_lib.pipeline import SAAPipeline
from saa_lib.prompts.language import category_prompts
from saa_lib.weights.zoo import load_saliency_only


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--size", type=int, default=400)
    ap.add_argument("--score", type=int, default=2, help="how many images to score against the others")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pool", type=int, default=PeerConfig.pool, help="PeerConfig.pool (feature averaging)")
    ap.add_argument("--deep-size", type=int, default=None, metavar="PX",
                    help=f"PeerConfig.deep_size (input of the stride-32 level; default {DEEP_INPUT_SIZE})")
    args = ap.parse_args()
    models = load_saliency_only("tf_efficientnet_lite0", kind="official", device=args.device)
    pipe = SAAPipeline(models, StageCache(enabled=False))
    cfg = with_peers(variant_config("saliency_only", "paper").with_(saliency={"backbone": "tf_efficientnet_lite0"}),
                     source="batch", pool=args.pool, deep_size=args.deep_size)
    prompts = category_prompts("screw", "mvtec")

    def image(i: int) -> np.ndarray:
        kinds = ("good",) + SYNTHETIC_CATEGORIES["fabric"]  # synthetic fabric, one image in four defect-free
        return synthesize("fabric", kinds[i % len(kinds)], index=i, size=args.size).image

    base = peak_rss_mib()
    t0 = time.perf_counter()
    peers = PeerSaliency(models, pipe.cache, category="screw", batch=[lambda i=i: image(i) for i in range(args.images)])
    peers.prepare(cfg.saliency.peers)
    t_feat = time.perf_counter() - t0
    feat_mib = peers.kept_bytes / 2 ** 20
    after_features = peak_rss_mib()
    t1 = time.perf_counter()
    for i in range(args.score):
        amap = pipe.run(image(i), prompts, cfg, peers=peers).anomaly_map
        assert np.isfinite(amap).all()
    if torch.device(args.device).type == "cuda":
        torch.cuda.synchronize()
    per_image = (time.perf_counter() - t1) / max(args.score, 1)
    peak = peak_rss_mib()
    print(f"batch saliency, {args.images} images of {args.size}x{args.size} px, pool {args.pool}, "
          f"stride-32 level at {cfg.saliency.peers.deep_input} px, "
          f"device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"features of all images: {feat_mib:.0f} MiB ({t_feat / args.images:.3f} s / image to extract)")
    print(f"peak resident memory: {base:.0f} MiB after loading the model, {after_features:.0f} MiB after the features, "
          f"{peak:.0f} MiB after scoring {args.score} image(s) -> {'within' if peak <= 2048 else 'ABOVE'} 2 GiB")
    if torch.device(args.device).type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MiB")
    print(f"time per scored image (against {args.images - 1} others): {per_image:.2f} s")


if __name__ == "__main__":
    main()
