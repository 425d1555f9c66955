"""``saa bench scaling``: batch P^S at the size of a category. Seconds per scored image (feature extraction and
scoring; process CPU time on one thread and wall time), peak resident memory, and how the time per image grows with
the number N of images, for the patch index (the default) and the exact search.

Categories of N = 25, 50, 100, 200 images are built from the real sample images (``../shared/data/samples``) and
label-preserving variants of them (:func:`build_categories`: deterministic, nested: N = 25 is the first 25 of
N = 50 ...). Each (category, N, search) runs in a fresh process (its peak memory is its own). A category's cost per
scored image = (extraction of all N images + the index build + N x the scoring of one image) / N; the scoring is
measured on ``score`` query images (real test images) and the same images' maps give the pixel AUROC / max-F1 of each
search where both ran. ``--root DIR`` runs on the categories of a folder as they are (every image is the batch).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..safeio import save_npy, write_text

SIZES = (25, 50, 100, 200)
IMAGE_SIDE = 400
#: name -> (folder under the samples, label-preserving transforms, brightness range, smallest crop, seed).
#: leather (isotropic texture): mirrors, quarter turns, crops, brightness; screw (any angle, but a mirror changes the
#: thread's hand): quarter turns, crops, brightness; MTD tiles (the light falls from one side): crops and brightness
SCALING_CATEGORIES = {
    "leather": ("mvtec_ad/leather", ("mirror_lr", "mirror_ud", "turn", "crop", "bright"), (0.9, 1.1), 0.80, 1),
    "screw": ("mvtec_ad/screw", ("turn", "crop", "bright"), (0.9, 1.1), 0.85, 2),
    "mtd": ("mtd/magnetic_tile", ("crop", "bright"), (0.92, 1.08), 0.85, 3),
}
SEARCHES = ("index", "exact", "image")
#: goals on a 2-core machine, 400 px images, one turn (seconds per scored image, MiB, growth of the time per image)
GOALS = {"s_per_image": {100: 5.0, 200: 8.0}, "peak_mib": {200: 2048}, "growth": {100: 1.6, 200: 2.0}}


# ----- the categories ---------------------------------------------------------------------------------------------
def _load(path: Path, mode: str) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(path).convert(mode))


def _resize(a: np.ndarray, nearest: bool = False) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(a)
    return np.array(im.resize((IMAGE_SIDE, IMAGE_SIDE), Image.NEAREST if nearest else Image.BICUBIC))


def variant(img: np.ndarray, mask: np.ndarray | None, ops: tuple, bright: tuple, crop_min: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """One random label-preserving variant of ``img`` (H, W[, 3]) uint8 and its ``mask`` (None: normal), resized to
    :data:`IMAGE_SIDE`: one or two of the geometric ``ops`` (a crop keeps >= 95 % of the defect), maybe brightness."""
    geo = [o for o in ops if o != "bright"]
    chosen = set(rng.choice(geo, size=rng.integers(1, min(2, len(geo)) + 1), replace=False).tolist())
    if "bright" in ops and rng.random() < 0.6:
        chosen.add("bright")
    out, m, desc = img, mask, []
    if "crop" in chosen:
        h, w = out.shape[:2]
        for _ in range(100):
            f = rng.uniform(crop_min, 0.95)
            ch, cw = int(round(h * f)), int(round(w * f))
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            if m is None or m[y0:y0 + ch, x0:x0 + cw].sum() >= 0.95 * m.sum():
                break
        out, m = out[y0:y0 + ch, x0:x0 + cw], None if m is None else m[y0:y0 + ch, x0:x0 + cw]
        desc.append(f"crop{f:.2f}")
    out, m = _resize(out), None if m is None else _resize(m, nearest=True)
    for op, flip in (("mirror_lr", lambda a: a[:, ::-1]), ("mirror_ud", lambda a: a[::-1])):
        if op in chosen:
            out, m = flip(out), None if m is None else flip(m)
            desc.append(op)
    if "turn" in chosen:
        k = int(rng.integers(1, 4))
        out, m = np.rot90(out, k), None if m is None else np.rot90(m, k)
        desc.append(f"turn{k}")
    if "bright" in chosen:
        g = rng.uniform(*bright)
        out = np.clip(out.astype(np.float32) * g, 0, 255).round().astype(np.uint8)
        desc.append(f"bright{g:.3f}")
    return np.ascontiguousarray(out), None if m is None else np.ascontiguousarray(m), desc


def _category_items(samples: Path, name: str, total: int) -> list[tuple]:
    """(defect, source path, transforms, image, mask) of the ``total`` images of one category: the real test and
    train/good images as they are, then blocks of 25, each a variant of half of the real defective images
    (alternating halves) and variants of the normal ones (at N = 200 each real defect appears 4-5 times)."""
    folder, ops, bright, crop_min, seed = SCALING_CATEGORIES[name]
    rng, root = np.random.default_rng(seed), samples / folder
    mode = "RGB" if name == "leather" else "L"
    defect, good = [], []
    for d in sorted(p for p in (root / "test").iterdir() if p.is_dir()):
        for f in sorted(d.glob("*.png")):
            m = None if d.name == "good" else _load(root / "ground_truth" / d.name / f"{f.stem}_mask.png", "L") > 127
            (good if d.name == "good" else defect).append((d.name, f, m))
    train = [("good", f, None) for f in sorted((root / "train" / "good").glob("*.png"))]
    items = [(d, f, ["orig"], _resize(_load(f, mode)), None if m is None else
              _resize(m.astype(np.uint8) * 255, True) > 127) for d, f, m in defect + good + train]
    normals, nb, block, half = good + train, 0, 0, (len(defect) + 1) // 2

    def normal_variant():
        nonlocal nb
        d, f, _ = normals[nb % len(normals)]
        nb += 1
        img, _, desc = variant(_load(f, mode), None, ops, bright, crop_min, rng)
        return d, f, desc, img, None

    while len(items) < min(25, total):
        items.append(normal_variant())
    while len(items) < total:
        start = (block % 2) * half
        blk = []
        for d, f, m in defect[start:start + half] or defect[:half]:
            img, mm, desc = variant(_load(f, mode), m.astype(np.uint8) * 255, ops, bright, crop_min, rng)
            blk.append((d, f, desc, img, mm > 127))
        while len(blk) < 25:
            blk.append(normal_variant())
        items += [blk[i] for i in rng.permutation(len(blk))]
        block += 1
    return items[:total]


def build_categories(samples: Path, out: Path, sizes=SIZES, categories=tuple(SCALING_CATEGORIES)) -> dict:
    """Write ``out/N<n>/<category>/{test,ground_truth}/...`` (MVTec folder layout) for every size and category, and
    ``out/manifest.json`` (each image's source and transforms, the query images). Deterministic; a folder already
    written for the same manifest is kept as it is."""
    from PIL import Image

    if not (samples / "mvtec_ad").is_dir() and not (samples / "mtd").is_dir():
        raise FileNotFoundError(f"{samples}: the real sample images are not there (expected mvtec_ad/ and mtd/ "
                                "inside); place them at ../shared/data/samples or pass --samples DIR")
    manifest = {"side": IMAGE_SIDE, "sizes": list(sizes), "categories": {}}
    for name in categories:
        items = _category_items(samples, name, max(sizes))
        names = [f"{i:03d}_{f.stem}_{'-'.join(desc).replace('.', 'p')}" for i, (d, f, desc, _, _) in enumerate(items)]
        real_tests = [i for i, (d, f, desc, _, _) in enumerate(items) if desc == ["orig"] and "train" not in f.parts]
        manifest["categories"][name] = {
            "images": [{"name": names[i], "defect": it[0], "source": str(it[1].relative_to(samples)),
                        "transform": it[2]} for i, it in enumerate(items)],
            "queries": [names[i] for i in real_tests],
            "defective": {str(n): sum(it[0] != "good" for it in items[:n]) for n in sizes}}
    path = out / "manifest.json"
    if path.is_file() and json.loads(path.read_text()) == manifest:
        return manifest
    for name in categories:
        items = _category_items(samples, name, max(sizes))
        entry = manifest["categories"][name]
        for n in sizes:
            root = out / f"N{n}" / name
            for (d, _, _, img, m), info in zip(items[:n], entry["images"][:n]):
                target = root / "test" / d / f"{info['name']}.png"
                if not target.is_file():
                    from ..safeio import save_image

                    save_image(target, Image.fromarray(img))
                    if m is not None:
                        save_image(root / "ground_truth" / d / f"{info['name']}_mask.png",
                                   Image.fromarray(m.astype(np.uint8) * 255))
    write_text(path, json.dumps(manifest, indent=1))
    return manifest


# ----- one measurement (in its own process) ------------------------------------------------------------------------
def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024


def measure(root: Path, category: str, search: str, queries: list[str] | int, device: str = "cpu",
            maps_out: Path | None = None, threads: int = 1, known_as: str | None = None,
            nprobe: int | None = None) -> dict:
    """Batch P^S (``saliency_only``) over the folder category ``root/category`` (every test image is the batch):
    extraction of all images + index build, then the scoring of the ``queries`` (image file stems, all when empty;
    or a number of images, anomalous and normal alternating). ``known_as``: the category of the prompt tables the
    folder's images are (its prompts and quarter turns; default ``category``). ``nprobe``: the patch index's
    (default :attr:`PeerConfig.nprobe`).
    ``search``: ``index``, ``exact`` or ``image`` (the single-image map, no batch). Times: process CPU seconds (one
    thread when ``threads`` is 1) and wall seconds."""
    import torch

    from ..config import variant_config
    from ..data import open_dataset
    from ..engine.evaluate import eval_mask, labelled
    from ..peers import PeerSaliency, with_peers
    from ..pipeline import SAAPipeline
    from ..prompts.language import category_prompts
    from ..weights.zoo import load_saliency_only

    torch.set_num_threads(threads)
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:
        pass
    models = load_saliency_only("tf_efficientnet_lite0", kind="official", device=device)
    ds = open_dataset("folder", root)
    samples = labelled(ds.samples(category), category)
    if isinstance(queries, int):  # that many images, anomalous and normal alternating
        from ..engine.evaluate import balanced_subset

        chosen = balanced_subset(samples, queries)
    else:
        chosen = [s for s in samples if not queries or s.image_path.stem in queries]
    config = variant_config("saliency_only", "paper").with_(saliency={"backbone": "tf_efficientnet_lite0"})
    known_as = known_as or category
    prompts = category_prompts(known_as, getattr(ds, "table", None) if known_as == category else None)
    if search != "image":
        config = with_peers(config, source="batch", search=search, **({"nprobe": nprobe} if nprobe else {}))
    pipe = SAAPipeline(models)
    out = {"category": category, "n": len(samples), "search": search, "device": device, "threads": threads,
           "queries": len(chosen), "rss_start_mib": peak_rss_mib()}
    wall, cpu = time.perf_counter(), time.process_time()
    peers = None
    if search != "image":
        peers = PeerSaliency(models, category=known_as, batch=[s.load_image for s in samples])
        peers.prepare(peers.resolve(config.saliency.peers))
        out["turns"] = peers.resolve(config.saliency.peers).batch_rotations
    out["prepare_wall"], out["prepare_cpu"] = time.perf_counter() - wall, time.process_time() - cpu
    out["build_wall"] = peers.build_seconds["wall"] if peers else 0.0
    out["build_cpu"] = peers.build_seconds["cpu"] if peers else 0.0
    out["kept_mib"] = peers.kept_bytes / 2 ** 20 if peers else 0.0
    out["rss_after_prepare_mib"] = peak_rss_mib()
    if search == "index":
        out["search"] = f"index{'' if nprobe is None else f' nprobe {nprobe}'}"
    maps, masks, shares = [], [], []
    wall, cpu = time.perf_counter(), time.process_time()
    for s in chosen:
        maps.append(pipe.run(s.load_image(), prompts, config, peers=peers).anomaly_map)
        masks.append(eval_mask(s, config.eval_resolution))
        shares.append(peers.known_share if peers else 1.0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    out["score_wall"] = (time.perf_counter() - wall) / max(len(chosen), 1)
    out["score_cpu"] = (time.process_time() - cpu) / max(len(chosen), 1)
    out["known_share"] = float(np.mean(shares)) if shares else 1.0
    out["peak_mib"] = peak_rss_mib()
    n = out["n"]
    for kind in ("wall", "cpu"):
        out[f"extract_{kind}"] = (out[f"prepare_{kind}"] - out[f"build_{kind}"]) / n
        out[f"per_image_{kind}"] = out[f"prepare_{kind}"] / n + out[f"score_{kind}"]
    out["load_average"] = list(os.getloadavg())
    if maps_out is not None:
        save_npy(maps_out.with_suffix(".maps.npy"), np.stack(maps).astype(np.float16))
        save_npy(maps_out.with_suffix(".masks.npy"), np.stack(masks))
    return out


# ----- the table -------------------------------------------------------------------------------------------------
def accuracy(results: list[dict], maps_dir: Path) -> list[dict]:
    """Pixel AUROC and max-F1 of each (category, N, search) over its query maps, where the exact search ran too:
    the index's and the single image's differences to it."""
    from .. import metrics as M

    rows = []
    for r in results:
        stem = Path(r["spec"]["maps"]) if "spec" in r else maps_dir / f"{r['category']}_N{r['n']}_{r['search']}"
        if not stem.with_suffix(".maps.npy").is_file():
            continue
        maps = np.load(stem.with_suffix(".maps.npy")).astype(np.float32)
        masks = np.load(stem.with_suffix(".masks.npy"))
        rows.append({"category": r["category"], "n": r["n"], "search": r["search"], "queries": len(maps),
                     "auroc": M.pixel_auroc(maps, masks), "max_f1": M.pixel_max_f1(maps, masks),
                     "known_share": r["known_share"]})
    return rows


def table(results: list[dict]):
    """DataFrame: per category, search and N the seconds per scored image (extraction incl. the index build, scoring,
    total; CPU = process CPU seconds on one thread, wall), peak RSS, and the growth of the time per image from the
    smallest N (n/a for that N itself)."""
    from .. import frames

    rows, base = [], {}
    for r in sorted(results, key=lambda r: (r["category"], r["search"], r["n"])):
        b = base.setdefault((r["category"], r["search"]), r)
        growth = [float("nan")] * 2 if b is r else [r[f"per_image_{k}"] / b[f"per_image_{k}"] for k in ("cpu", "wall")]
        rows.append([r["category"], r["search"], r.get("turns", 1), r["n"], r["prepare_cpu"] / r["n"],
                     r["prepare_wall"] / r["n"], r["build_cpu"], r["score_cpu"], r["score_wall"], r["per_image_cpu"],
                     r["per_image_wall"], *growth, r["rss_after_prepare_mib"], r["peak_mib"], r["known_share"]])
    columns = ["category", "search", "turns", "N", "extraction + build CPU", "extraction + build wall",
               "build CPU (s, once)", "scoring CPU", "scoring wall", "total CPU", "total wall", "growth CPU",
               "growth wall", "RSS before scoring MiB", "peak RSS MiB", "known pairs"]
    formats = {"turns": "d", "N": "d", "build CPU (s, once)": ".1f", "growth CPU": ".2f", "growth wall": ".2f",
               "RSS before scoring MiB": ".0f", "peak RSS MiB": ".0f", "known pairs": ".3f"}
    return frames.table(rows, columns, formats=formats,
                        notes="Seconds per scored image (build: seconds per category); growth: the total against "
                              "the smallest N of the same category and search.")


def accuracy_table(rows: list[dict]):
    """DataFrame: pixel AUROC / max-F1 (%) of each search over the query maps and the difference to the exact search
    (AUROC in points of AUROC x 100: the tolerance 0.003 is 0.3 points; max-F1 in points, tolerance 1; n/a where the
    exact search did not run)."""
    from .. import frames

    exact = {(r["category"], r["n"]): r for r in rows if r["search"] == "exact"}
    out = []
    for r in sorted(rows, key=lambda r: (r["category"], r["n"], r["search"])):
        e = exact.get((r["category"], r["n"]))
        out.append([r["category"], r["n"], r["search"], r["queries"], 100 * r["auroc"], 100 * r["max_f1"],
                    float("nan") if e is None else 100 * (r["auroc"] - e["auroc"]),
                    float("nan") if e is None else 100 * (r["max_f1"] - e["max_f1"])])
    return frames.table(out, ["category", "N", "search", "queries", "pixel AUROC", "max-F1", "Δ AUROC vs exact",
                              "Δ max-F1 vs exact"],
                        formats={"N": "d", "queries": "d", "pixel AUROC": ".3f", "Δ AUROC vs exact": "+.3f",
                                 "Δ max-F1 vs exact": "+.2f"})


def plot(results: list[dict], path: Path) -> Path:
    """Log-log figure of the CPU seconds per scored image against N, per category and search."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(8.0, 4.2), dpi=110)
    cats = sorted({r["category"] for r in results})
    colours = {c: f"C{i}" for i, c in enumerate(cats)}
    for (cat, search) in sorted({(r["category"], r["search"]) for r in results if r["search"] in ("index", "exact")}):
        runs = [r for r in results if (r["category"], r["search"]) == (cat, search)]
        pts = sorted((r["n"], r["per_image_cpu"]) for r in runs)
        turns = max(r.get("turns", 1) for r in runs)
        ax.plot(*zip(*pts), marker="o", color=colours[cat], ls="-" if search.startswith("index") else "--",
                label=f"{cat}{f' ({turns} turns)' if turns > 1 else ''}, {search}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(SIZES, [str(n) for n in SIZES])
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks([t for t in (1, 2, 5, 10, 20, 50, 100, 200) if t <= 1.5 * max(r["per_image_cpu"] for r in results)])
    ax.set_xlabel("images in the category (N)")
    ax.set_ylabel("CPU s per scored image (1 thread)")
    ax.set_title("Batch P^S: cost per image, patch index vs exact search")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), handlelength=3.5, borderaxespad=0)
    fig.tight_layout()
    from ..safeio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return path


def run_one(spec: dict) -> dict:
    """Runs :func:`measure` for ``spec`` in a fresh Python process; returns its result."""
    env = {**os.environ, "OMP_NUM_THREADS": str(spec.get("threads", 1)), "MKL_NUM_THREADS": str(spec.get("threads", 1))}
    cmd = [sys.executable, "-m", "saa_lib.engine.scaling", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"scaling run {spec} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_scaling(samples: Path, out: Path, sizes=SIZES, categories=("leather",), searches=("index", "exact"),
                score: int = 2, device: str = "cpu", threads: int = 1, root: Path | None = None,
                exact_sizes=None, say=print, nprobe: int | None = None) -> list[dict]:
    """Every (category, N, search) in its own process; results appended to ``out/scaling.jsonl`` as they come (a run
    already there for the same settings is reused; the printed table holds every run recorded there). ``root``: a
    folder of categories measured as they are."""
    results_path = out / "scaling.jsonl"
    done = []
    if results_path.is_file():
        done = [json.loads(line) for line in results_path.read_text().splitlines() if line.strip()]
    if root is None:
        manifest = build_categories(samples, out / "categories", sizes, categories)
        plan = [(out / "categories" / f"N{n}", c, n, manifest["categories"][c]["queries"][:score])
                for c in categories for n in sizes]
    else:
        plan = [(root, c, None, score) for c in categories]
    results = []
    for folder, named, n, queries in plan:
        cat, _, known_as = named.partition(":")
        for search in searches:
            if search == "exact" and exact_sizes is not None and n not in exact_sizes:
                continue
            spec = {"root": str(folder), "category": cat, "search": search, "queries": queries, "device": device,
                    "threads": threads, "maps": str(out / "maps" / f"{cat}_N{n or 'all'}_{search}")}
            if known_as:
                spec["known_as"] = known_as
            if nprobe and search == "index":
                spec["nprobe"] = nprobe
                spec["maps"] += f"_nprobe{nprobe}"
            old = [r for r in done if r.get("spec") == spec]
            if old:
                results.append(old[-1])
                continue
            say(f"{cat} N={n or 'all'} {search} ...")
            r = run_one(spec)
            r["spec"] = spec
            results.append(r)
            with open(results_path, "a") as fh:
                fh.write(json.dumps(r) + "\n")
            say(f"  {r['per_image_cpu']:.2f} CPU s / {r['per_image_wall']:.2f} wall s per image, "
                f"peak {r['peak_mib']:.0f} MiB, load {r['load_average'][0]:.1f}")
    return results


def recorded(out: Path) -> list[dict]:
    """Every measurement recorded in ``out/scaling.jsonl`` (the last one of each setting)."""
    path = out / "scaling.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return list({json.dumps(r["spec"], sort_keys=True): r for r in lines}.values())


def main(args) -> int:
    """``saa bench scaling`` (see the module docstring)."""
    samples, out = Path(args.samples), Path(args.out)
    root = Path(args.root) if args.root else None
    if root is None and not samples.is_dir():
        print(f"saa bench scaling: the real sample images are not at {samples}: place them at ../shared/data/samples "
              "or pass --samples DIR (nothing was measured)", file=sys.stderr)
        return 2
    categories = args.categories.split(",") if args.categories else (
        sorted(p.name for p in root.iterdir() if p.is_dir()) if root else ["leather"])
    sizes = tuple(int(x) for x in args.sizes.split(","))
    exact_sizes = None if args.exact_sizes is None else {int(x) for x in args.exact_sizes.split(",") if x}
    searches = tuple(args.searches.split(","))
    bad = sorted(set(searches) - set(SEARCHES))
    if bad:
        print(f"saa bench scaling: --searches {','.join(bad)}: choose from {','.join(SEARCHES)}", file=sys.stderr)
        return 2
    from .. import frames

    load_before = os.getloadavg()
    results = run_scaling(samples, out, sizes, categories, searches, args.score, args.device, args.threads, root,
                          exact_sizes, say=lambda m: print(f"[scaling {time.strftime('%H:%M:%S')}] {m}",
                                                           file=sys.stderr, flush=True), nprobe=args.nprobe)
    load_after = os.getloadavg()
    results = recorded(out)  # this run's and every earlier one's in the same folder
    rows = accuracy(results, out / "maps")
    text = (f"Batch P^S at the size of a category ({args.device}, torch threads {args.threads}; CPU = process CPU "
            f"seconds, wall = elapsed seconds; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after)\n\n"
            + frames.markdown(table(results)) + "\nAccuracy over the query maps:\n\n"
            + frames.markdown(accuracy_table(rows)))
    write_text(out / "scaling.md", text)
    if args.figure:
        plot(results, Path(args.figure))
    print(text)
    return 0


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    result = measure(Path(spec["root"]), spec["category"], spec["search"], spec["queries"], spec["device"],
                     Path(spec["maps"]) if spec.get("maps") else None, spec.get("threads", 1), spec.get("known_as"),
                     spec.get("nprobe"))
    print(json.dumps(result))
