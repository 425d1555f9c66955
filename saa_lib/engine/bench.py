"""``saa bench``: per-stage latency and peak memory, and the ratios that matter for dataset-scale runs.

Stages: generator (GroundingDINO), SAM image encoder, SAM decoder, saliency features, saliency kNN, prompt filters +
fusion (scoring), metrics. Ratios measured in the same run: one GDINO forward for all prompts vs one per prompt; batched
SAM decoding vs one call per box; the five-variant ablation vs five independent runs; re-scoring after a threshold
change (ms per image). Writes ``bench.json`` and ``bench.md`` (machine and versions recorded). Random-weight models are
fine for timing; the output says which were used.
"""
from __future__ import annotations

import json
import platform
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch

from .. import frames
from ..safeio import write_text


class PeakMemory:
    """Peak extra memory of a block: CUDA allocator peak on GPU, sampled process RSS on CPU (MiB)."""

    def __init__(self, device: torch.device, interval: float = 0.005):
        self.device, self.interval, self.peak_mib = device, interval, 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._proc = psutil.Process()
            self._base = self._peak = self._proc.memory_info().rss
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, self._proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, self._proc.memory_info().rss)
            self.peak_mib = (self._peak - self._base) / 2**20


@contextmanager
def timed(device: torch.device, record: dict, name: str):
    """Adds ``{name: {"ms": ..., "peak_mib": ...}}`` to ``record`` for the block."""
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        yield
        if device.type == "cuda":
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3
    record[name] = {"ms": round(ms, 2), "peak_mib": round(mem.peak_mib, 1)}
    say(f"{name}: {ms:.1f} ms")


def say(message: str) -> None:
    """Progress of the benchmark, on stderr (the results go to stdout and the files)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict:
    from importlib import metadata

    import timm
    import transformers

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": psutil.cpu_count(),
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1), "torch": torch.__version__,
            "timm": timm.__version__, "transformers": transformers.__version__, "numpy": np.__version__,
            **{d: metadata.version(d) for d in ("segment-anything", "groundingdino-py")}}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def knn_scaling(device: torch.device, sides=(200, 400, 600, 800), dim: int = 64, neighbours: int = 400) -> list:
    """Exact chunked kNN saliency on P = side² pixels: time and peak memory as the input grows."""
    from ..prompts.saliency import knn_saliency

    out = []
    for side in sides:
        feats = torch.nn.functional.normalize(torch.randn(side // 4 * side // 4, dim, device=device), dim=1)
        rec: dict = {}
        with timed(device, rec, "knn"):
            knn_saliency(feats, neighbours, "farthest", chunk_size=1024)
        out.append({"input_side": side, "pixels_at_stride4": feats.shape[0], **rec["knn"]})
    return out


def run_bench(models_kind: str = "tiny", device: str = "auto", n_images: int = 4, out: Path = Path("results/bench"),
              seed: int = 0, knn_sides=(200, 400, 600, 800), repeats: int = 3) -> dict:
    """Measure everything; returns and writes the results (``out``/bench.json and bench.md). Stages are timed once
    after a warm-up; the ablation / single-run ratio takes the best of ``repeats`` runs of each side."""
    from .. import metrics as M
    from ..cache import StageCache
    from ..config import ABLATION_VARIANTS, variant_config
    from ..data.synthetic import generate_synthetic
    from ..data import open_dataset
    from ..fusion import fuse_regions
    from ..pipeline import SAAPipeline
    from ..prompts.language import category_prompts
    from ..prompts.saliency import knn_saliency, pixel_features
    from ..utils import resolve_device
    from ..weights.zoo import load_models

    dev = resolve_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = generate_synthetic(out / "data", seed=seed)
    ds = open_dataset("synthetic", root)
    cat = ds.categories[0]
    samples = ds.samples(cat)[:n_images]
    images = [s.load_image() for s in samples]
    models = load_models(models_kind, device=dev, seed=seed)
    prompts = category_prompts(cat, "synthetic")
    cfg = variant_config("saa_plus")
    pipe = SAAPipeline(models, StageCache(enabled=False))
    captions = [e.caption for e in prompts.entries]
    stages: dict = {}
    ratios: dict = {}
    img = images[0]
    pipe.generator.detect(img, captions[:1])  # warm-up
    with timed(dev, stages, "generator (all prompts in one call)"):
        det = pipe.generator.detect(img, captions)
    with timed(dev, stages, "generator (one forward per prompt)"):
        for c in captions:
            pipe.generator.detect(img, [c])
    with timed(dev, stages, "generator (single joined caption)"):
        pipe.generator.detect(img, captions, single_caption=True)
    boxes = det.boxes[: max(1, min(len(det), 32))] if len(det) else np.array([[8, 8, 64, 64]], np.float32)
    pipe.refiner.forget_image()
    with timed(dev, stages, "SAM image encoder"):
        pipe.refiner.set_image(img)
    pipe.refiner.segment(img, boxes[:1])  # warm-up of the decoder path
    with timed(dev, stages, f"SAM decoder ({len(boxes)} boxes, batched)"):
        pipe.refiner.segment(img, boxes)
    with timed(dev, stages, f"SAM decoder ({len(boxes)} boxes, one call each)"):
        for b in boxes:
            pipe.refiner.segment(img, b[None])
    with timed(dev, stages, "saliency features"):
        feats = pixel_features(models.saliency, img, cfg.saliency.input_size)
    with timed(dev, stages, "saliency kNN"):
        knn_saliency(feats.reshape(-1, feats.shape[-1]), cfg.saliency.neighbours, cfg.saliency.aggregate)
    st = pipe.stages(img, prompts, cfg, prompts.select(True), True)
    with timed(dev, stages, "prompt filters + fusion (one variant)"):
        res = pipe.score(st, prompts, cfg)
    kept = np.flatnonzero([r.removed_by is None for r in res.regions])  # saa_plus: one region per detection, in order
    with timed(dev, stages, f"fusion alone ({len(kept)} masks unpacked and fused)"):
        fuse_regions(st.packed_masks().select(kept), st.detections.scores[kept], cfg.offset)
    maps = np.random.default_rng(0).random((len(images) * 25, 400, 400), dtype=np.float32)
    masks = maps > 0.99
    with timed(dev, stages, f"metrics ({len(maps)} maps 400x400)"):
        M.category_metrics(maps, masks, region_metrics=False)  # AUPRO/region F1 are opt-in (--cal-pro)

    configs = [variant_config(v) for v in ABLATION_VARIANTS]

    def single() -> float:
        t0 = time.perf_counter()
        for im in images:
            SAAPipeline(models, StageCache(enabled=False)).run(im, prompts, cfg)
        return time.perf_counter() - t0

    def ablation() -> tuple[float, SAAPipeline]:
        shutil.rmtree(out / "cache_ablation", ignore_errors=True)  # a cold cache: nothing carried over
        t0 = time.perf_counter()
        pipe_ab = SAAPipeline(models, StageCache(out / "cache_ablation"))
        for im in images:
            pipe_ab.run_variants(im, prompts, configs)
        return time.perf_counter() - t0, pipe_ab

    # the two sides of the ratio, interleaved and the best of `repeats` each (a shared machine's noise is one-sided)
    one, five = float("inf"), float("inf")
    for rep in range(repeats):
        one = min(one, single())
        t, ab = ablation()
        five = min(five, t)
        say(f"run {rep + 1}/{repeats}: one saa_plus run {one:.1f} s, five-variant ablation {five:.1f} s "
            f"({len(images)} images)")
    t0 = time.perf_counter()
    for c in configs:
        solo = SAAPipeline(models, StageCache(enabled=False))
        for im in images:
            solo.run(im, prompts, c)
    independent = time.perf_counter() - t0
    say(f"five independent runs: {independent:.1f} s")
    for im in images:  # the variant's own stage entries (code behaviour segments only what P^P can keep)
        ab.run(im, prompts, cfg)
    t0 = time.perf_counter()
    changed = cfg.with_(box_threshold=cfg.box_threshold + 0.05, top_k=3)
    for im in images:
        ab.run(im, prompts, changed)  # every expensive stage comes from the cache
    rescore_ms = (time.perf_counter() - t0) * 1e3 / len(images)

    cuda = autocast_check(models, samples, prompts, cfg) if dev.type == "cuda" else {
        "status": "not measured: no CUDA device on this machine (throughput goal >= 20 images/s on an H100 with SAM "
                  "ViT-H + GroundingDINO Swin-T; autocast max-F1 within 0.5 pt of fp32)"}

    gen_one = stages["generator (one forward per prompt)"]["ms"]
    gen_all = stages["generator (all prompts in one call)"]["ms"]
    dec_keys = [k for k in stages if k.startswith("SAM decoder")]
    ratios = {
        "generator: all prompts in one call (backbone once) / one forward per prompt": round(gen_all / gen_one, 3),
        "generator: single joined caption / one forward per prompt":
            round(stages["generator (single joined caption)"]["ms"] / gen_one, 3),
        "SAM decoder: batched / one call per box": round(stages[dec_keys[0]]["ms"] / stages[dec_keys[1]]["ms"], 3),
        "ablation (5 variants, one cached pass) / one saa_plus run (goal <= 1.3)": round(five / one, 3),
        "ablation (5 variants, one cached pass) / five independent runs": round(five / independent, 3),
        "re-scoring after a threshold change, ms per image (goal <= 50)": round(rescore_ms, 2),
        f"SAA+ throughput on {dev.type}, images/s (one process, nothing cached)": round(len(images) / one, 3),
    }
    result = {"machine": machine(), "device": str(dev), "models": models.describe(),
              "meaningful": models.meaningful, "images": len(images), "stages": stages, "ratios": ratios, "cuda": cuda,
              "knn_scaling": knn_scaling(dev, knn_sides)}
    write_text(out / "bench.json", json.dumps(result, indent=1))
    write_text(out / "bench.md", to_markdown(result))
    return result


def autocast_check(models, samples, prompts, cfg, dtypes=("bf16", "fp16")) -> dict:
    """SAA+ images/s and max-F1-pixel in fp32 and under each autocast dtype, on the same images (run on CUDA by
    :func:`run_bench`; on CPU autocast is slow and only checks the code path)."""
    from .. import metrics as M
    from ..cache import StageCache
    from .evaluate import eval_mask
    from ..pipeline import SAAPipeline
    from ..utils import AUTOCAST_DTYPES

    images = [s.load_image() for s in samples]
    gt = np.stack([eval_mask(s, cfg.eval_resolution) for s in samples])
    sync = torch.cuda.synchronize if models.device.type == "cuda" else (lambda: None)
    out = {}
    for name in ("fp32",) + tuple(dtypes):
        dtype = AUTOCAST_DTYPES["none" if name == "fp32" else name]
        pipe = SAAPipeline(models, StageCache(enabled=False), autocast=dtype)
        pipe.run(images[0], prompts, cfg)  # warm-up (kernels, cuDNN autotuning)
        sync()
        t0 = time.perf_counter()
        maps = np.stack([pipe.run(im, prompts, cfg).anomaly_map for im in images])
        sync()
        out[name] = {"images_per_s": round(len(images) / (time.perf_counter() - t0), 2),
                     "pixel_max_f1": round(100 * M.pixel_max_f1(maps, gt), 3)}
    for name in dtypes:
        out[name]["max_f1_delta_vs_fp32_pt"] = round(out[name]["pixel_max_f1"] - out["fp32"]["pixel_max_f1"], 3)
    return out


def bench_tables(r: dict) -> dict[str, pd.DataFrame]:
    """The tables of a :func:`run_bench` result as DataFrames: ``stages`` (ms and peak MiB per stage), ``ratios``,
    ``knn`` (the kNN scaling) and, when measured on CUDA, ``cuda`` (fp32 vs autocast on the same images)."""
    out = {
        "stages": frames.table([[k, v["ms"], v["peak_mib"]] for k, v in r["stages"].items()],
                               ["stage", "ms", "peak MiB"], formats={"ms": ".1f", "peak MiB": ".1f"}),
        "ratios": frames.table(list(r["ratios"].items()), ["ratio", "value"], formats={"value": "g"}),
        "knn": frames.table([[x["input_side"], x["pixels_at_stride4"], x["ms"], x["peak_mib"]] for x in r["knn_scaling"]],
                            ["input side", "pixels (stride 4)", "ms", "peak MiB"],
                            formats={"ms": ".1f", "peak MiB": ".1f"}),
    }
    cuda = r.get("cuda", {})
    if cuda and "status" not in cuda:
        out["cuda"] = frames.table([[k, v["images_per_s"], v["pixel_max_f1"], v.get("max_f1_delta_vs_fp32_pt", "-")]
                                    for k, v in cuda.items()],
                                   ["precision", "images/s", "max-F1-pixel", "delta vs fp32 (pt)"],
                                   formats={"images/s": "g", "max-F1-pixel": "g", "delta vs fp32 (pt)": "+g"})
    return out


def to_markdown(r: dict) -> str:
    """The benchmark's report: machine, then :func:`bench_tables` as markdown."""
    tables = bench_tables(r)
    lines = [f"# saa bench — {r['device']}, {r['models']}", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in r["machine"].items()), "",
             frames.markdown(tables["stages"]), frames.markdown(tables["ratios"]),
             "Saliency kNN (exact, chunked, 400 neighbours):", "", frames.markdown(tables["knn"])]
    cuda = r.get("cuda", {})
    if "status" in cuda:
        lines += [f"CUDA: {cuda['status']}."]
    elif "cuda" in tables:
        lines += ["CUDA, SAA+ on the same images (fp32 vs autocast):", "", frames.markdown(tables["cuda"])]
    return "\n".join(lines)


def main(args) -> int:
    r = run_bench(args.models, args.device, args.images, Path(args.out))
    print(to_markdown(r))
    print(f"wrote {Path(args.out) / 'bench.json'} and bench.md")
    return 0
