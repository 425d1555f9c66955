"""Exact vs pooled pixel max-F1 on a VisA-sized synthetic category: time, peak memory, difference.

    python benchmarks/bench_pooled_metrics.py [--pixels N [N ...]] [--size 400] [--bins 65536] [--seed 0]

For every N (default: 32 M pixels = 200 maps of 400x400, and 128 M) the category is generated image by image from a
seed (smooth background noise, 0-3 elliptic defects whose blurred masks raise the map, false-positive blobs), and each
mode runs in its own fresh process so that its peak RSS (``ru_maxrss``) is its own:

* ``generate``: one generation pass, nothing kept (the cost of producing the data, and the interpreter's baseline);
* ``exact``: the category held in memory as (N, H, W) float32 maps + bool masks, ``pixel_max_f1(pooled=False)``;
* ``pooled-array``: the same arrays, ``pixel_max_f1(pooled=True)`` (histogram filled image by image);
* ``pooled-stream``: ``pixel_max_f1_streaming`` over a generator: a min/max pass and a histogram pass, never more
  than one image in memory.

Seconds are the metric alone for the array modes and the whole run (two generation passes included) for the stream.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
from scipy import ndimage

try:
    from saa_lib import metrics as M
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from saa_lib import metrics as M

MODES = ("generate", "exact", "pooled-array", "pooled-stream")


def make_pair(index: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic (map (size, size) float32, mask (size, size) bool), determined by (seed, index)."""
    rng = np.random.default_rng([seed, index])
    amap = 4.0 * ndimage.gaussian_filter(rng.standard_normal((size, size), dtype=np.float32), 4)
    mask = np.zeros((size, size), dtype=bool)
    rows, cols = np.ogrid[:size, :size]
    blobs = np.zeros((size, size), dtype=np.float32)
    for kind in ("defect", "false_positive"):
        count = rng.integers(0, 4) if kind == "defect" and rng.random() < 0.6 else int(rng.random() < 0.3)
        for _ in range(count):
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(4, 40, 2)
            shape = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1.0
            blobs += rng.uniform(0.3, 1.2) * shape
            if kind == "defect":
                mask |= shape
    amap += ndimage.gaussian_filter(blobs, 3)
    amap += 0.05 * rng.random((size, size), dtype=np.float32)
    return amap, mask


def pairs(n_images: int, size: int, seed: int):
    for i in range(n_images):
        yield make_pair(i, size, seed)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def worker(mode: str, n_images: int, size: int, seed: int, bins: int) -> dict:
    baseline = psutil.Process().memory_info().rss / 2**20
    out = {"mode": mode, "baseline_mib": baseline}
    if mode == "generate":
        t0 = time.perf_counter()
        for _ in pairs(n_images, size, seed):
            pass
        out["seconds"] = time.perf_counter() - t0
    elif mode in ("exact", "pooled-array"):
        maps = np.empty((n_images, size, size), dtype=np.float32)
        masks = np.empty((n_images, size, size), dtype=bool)
        for i, (amap, mask) in enumerate(pairs(n_images, size, seed)):
            maps[i], masks[i] = amap, mask
        t0 = time.perf_counter()
        out["max_f1"] = M.pixel_max_f1(maps, masks, pooled=mode == "pooled-array", bins=bins)
        out["seconds"] = time.perf_counter() - t0
        out["positive_fraction"] = float(masks.mean())
    else:
        t0 = time.perf_counter()
        value, upper = M.pixel_max_f1_streaming(lambda: pairs(n_images, size, seed), bins=bins, return_bound=True)
        out["seconds"] = time.perf_counter() - t0
        out["max_f1"], out["upper_bound"] = value, upper
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def run_mode(mode: str, n_images: int, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--images", str(n_images),
           "--size", str(args.size), "--seed", str(args.seed), "--bins", str(args.bins)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{proc.stderr}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pixels", type=int, nargs="+", default=[32_000_000, 128_000_000],
                        help="pixels per synthetic category (rounded up to whole maps)")
    parser.add_argument("--size", type=int, default=400, help="map side (evaluation resolution)")
    parser.add_argument("--bins", type=int, default=M.DEFAULT_BINS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.images, args.size, args.seed, args.bins)))
        return

    print(f"numpy {np.__version__}, {psutil.cpu_count()} CPUs, bins {args.bins}, maps {args.size}x{args.size} float32")
    for pixels in args.pixels:
        n_images = math.ceil(pixels / args.size**2)
        total = n_images * args.size**2
        print(f"\n== {n_images} maps of {args.size}x{args.size} = {total / 1e6:.1f} M pixels")
        results = {mode: run_mode(mode, n_images, args) for mode in MODES}
        exact = results["exact"]["max_f1"]
        print(f"   defect pixels: {100 * results['exact']['positive_fraction']:.2f} %, "
              f"interpreter baseline RSS {results['generate']['baseline_mib']:.0f} MiB")
        print(f"   {'mode':<14}{'seconds':>9}{'peak RSS MiB':>14}{'max-F1':>12}{'delta vs exact':>16}")
        for mode in MODES:
            r = results[mode]
            f1 = r.get("max_f1")
            f1_s = f"{f1:.6f}" if f1 is not None else "-"
            delta = f"{f1 - exact:+.2e}" if f1 is not None and mode != "exact" else "-"
            print(f"   {mode:<14}{r['seconds']:>9.2f}{r['peak_rss_mib']:>14.0f}{f1_s:>12}{delta:>16}")
        s = results["pooled-stream"]
        print(f"   pooled certified bracket: exact max-F1 in [{s['max_f1']:.6f}, {s['upper_bound']:.6f}]; "
              f"stream seconds include 2 generation passes (~{2 * results['generate']['seconds']:.2f} s)")
        limit = 1.5 * 1024
        ok = s["peak_rss_mib"] < limit and abs(s["max_f1"] - exact) <= 1e-3
        print(f"   pooled-stream under 1.5 GB and within 1e-3 of exact: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
