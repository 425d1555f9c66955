"""Conformance harness: the official SAA+ code and this project on identical weights, stage by stage.

    python benchmarks/conformance/harness.py --reference /path/to/Segment-Any-Anomaly [--models DIR]
        [--cases samples|assets|all] [--goldens tests/data/conformance] [--repeat N] [--five]

``--reference``: a checkout of github.com/caoyunkang/Segment-Any-Anomaly at commit 23acbd9 (branch SAA-plus).
``--models``: a folder written by ``saa export-models``; default: the project's tiny models, exported into a
temporary folder. Each side runs in its own process (both import a module named ``groundingdino``: the official code
its vendored copy, the project the installed package), on the same decoded RGB pixels. Prints, per image, the max
|diff| of the raw 400 x 400 map, whether the kept regions are equal and the first stage that differs, then the time
ratios; ``--goldens DIR`` writes the official records as the golden files of tests/test_conformance.py.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from records import (STAGES, asset_cases, block_mean, case_image, compare, image_sha256, load_record,  # noqa: E402
                     sample_cases)

REGENERATE = ("PYTHONPATH=$PWD python benchmarks/conformance/harness.py --reference /path/to/Segment-Any-Anomaly "
              "--goldens tests/data/conformance")
GOLDEN_FORMAT = "saa-conformance-goldens/1"


def _env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _run(cmd: list[str], what: str) -> None:
    print(f"[{what}] {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, env=_env(), cwd=str(ROOT))
    if proc.returncode:
        raise SystemExit(f"{what} side failed (exit {proc.returncode}); its messages are above")


def export_set(name: str, out: Path) -> Path:
    """Model set ``name`` written in the official formats (``tiny`` is what ``saa export-models tiny`` writes)."""
    if name == "tiny":
        _run([sys.executable, "-m", "saa_lib.cli", "export-models", "tiny", str(out)], "export")
    else:
        _run([sys.executable, str(HERE / "project_side.py"), "--export", name, "--models", str(out)], "export")
    return out


def write_goldens(out: Path, cases: list[dict], work: Path, manifests: dict, samples: Path) -> None:
    """Golden files: one JSON record + one compressed .npz (raw map, 64 x 64 saliency summary) per case, and an index
    with the weights' digests and the command that regenerates them."""
    out.mkdir(parents=True, exist_ok=True)
    index = {"format": GOLDEN_FORMAT, "regenerate": REGENERATE,
             "models": {name: {"source": m["source"], "tensor_digests": m["tensor_digests"],
                               "gdino_size": [m["groundingdino"]["min_size"], m["groundingdino"]["max_size"]]}
                        for name, m in manifests.items()},
             "cases": []}
    for case in cases:
        rec, arrays = load_record(work / "official" / case["name"])
        rec.pop("timing", None)
        rec["images"] = [str(Path(p).resolve().relative_to(samples.resolve())) for p in case["images"]]
        rec["table"] = case["table"]
        rec["models"] = case["models"]
        small = block_mean(arrays["saliency"]) if "saliency" in arrays else np.zeros((0, 0), np.float32)
        tmp = out / f".{case['name']}.npz.tmp"
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, raw_map=arrays["raw_map"].astype(np.float32), saliency_64=small)
        tmp.replace(out / f"{case['name']}.npz")
        tmp = out / f".{case['name']}.json.tmp"
        tmp.write_text(json.dumps(rec, indent=1) + "\n")
        tmp.replace(out / f"{case['name']}.json")
        index["cases"].append(case["name"])
    tmp = out / ".index.json.tmp"
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    tmp.replace(out / "index.json")
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {len(cases)} golden cases to {out} ({size / 1e6:.2f} MB)")


def _ratio(a, b) -> str:
    return "n/a" if not b else f"{a / b:.2f}x"


def report(cases: list[dict], work: Path) -> list[dict]:
    rows = []
    print(f"\n{'image':44s} {'HxW':>10s} {'cand.':>5s} {'max|diff| map':>13s} {'kept equal':>10s}  first stage "
          f"that differs")
    for case in cases:
        off, off_a = load_record(work / "official" / case["name"])
        pro, pro_a = load_record(work / "project" / case["name"])
        if off["image_sha256"] != pro["image_sha256"]:
            raise SystemExit(f"{case['name']}: the two sides were given different pixels")
        c = compare(off, off_a, pro, pro_a)
        rows.append({"case": case["name"], **c, "official": off, "project": pro})
        hw = "x".join(map(str, off["hw"]))
        print(f"{case['name']:44s} {hw:>10s} {len(off['candidates']):5d} {c['map_max_abs_diff']:13.2e} "
              f"{str(c['kept_equal']):>10s}  {c['first_diff'] or '-'}")
    print("\nstage by stage (ok / detail):")
    for r in rows:
        print(f"  {r['case']}")
        for s in STAGES:
            ok, detail = r["stages"][s]
            print(f"    {'ok ' if ok else 'DIFF'} {s:16s} {detail}")
        if r["official"].get("note"):
            print(f"    note: {r['official']['note']}")
    t_off = [r["official"]["timing"]["forward_s"] for r in rows]
    t_pro = [r["project"]["timing"]["forward_s"] for r in rows]
    t_abl = [r["project"]["timing"]["ablation_s"] for r in rows]
    five = [r["official"]["timing"].get("five_forwards_s") for r in rows]
    five_off = sum(f for f in five) if all(f is not None for f in five) else 5 * sum(t_off)
    how = "five measured official forwards" if all(f is not None for f in five) else "5 x one official forward"
    print("\ntime per image (s), best of the repeats:")
    print(f"{'image':44s} {'official':>9s} {'project':>9s} {'ratio':>7s} {'ablation':>9s} {'/5 off.':>8s}")
    for r, a, b, c5, f in zip(rows, t_off, t_pro, t_abl, five):
        f = f if f is not None else 5 * a
        print(f"{r['case']:44s} {a:9.2f} {b:9.2f} {_ratio(b, a):>7s} {c5:9.2f} {_ratio(c5, f):>8s}")
    print(f"\nall images: project / official per image = {_ratio(sum(t_pro), sum(t_off))} (goal <= 0.6x); "
          f"five-variant ablation / five official runs = {_ratio(sum(t_abl), five_off)} (goal <= 0.15x; official "
          f"five runs = {how})")
    n_ok = sum(1 for r in rows if r["first_diff"] is None)
    print(f"identical to the official code (raw map to 1e-4, same kept regions, every stage): {n_ok} of {len(rows)}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, type=Path,
                    help="checkout of caoyunkang/Segment-Any-Anomaly at 23acbd9 (has SAA/model.py)")
    ap.add_argument("--models", type=Path, default=None, help="exported model set (default: tiny, exported now)")
    ap.add_argument("--cases", choices=["samples", "assets", "all"], default="samples",
                    help="samples: the golden cases on ../shared/data/samples; assets: the official repository's "
                         "own example images (never written as goldens)")
    ap.add_argument("--samples", type=Path, default=ROOT.parent / "shared" / "data" / "samples")
    ap.add_argument("--goldens", type=Path, default=None, help="write the golden files here (samples cases only)")
    ap.add_argument("--only", action="append", default=None, metavar="NAME", help="run only these cases (repeatable)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per image and side (best is kept)")
    ap.add_argument("--five", action="store_true", help="time five official forwards instead of 5 x one")
    ap.add_argument("--work", type=Path, default=None, help="keep both sides' records here (default: temporary)")
    ap.add_argument("--json", type=Path, default=None, help="write the comparison summary as JSON")
    args = ap.parse_args(argv)

    if not (args.reference / "SAA" / "model.py").is_file():
        print(f"harness: {args.reference}: not a checkout of the official repository (no SAA/model.py); get one with "
              "git clone https://github.com/caoyunkang/Segment-Any-Anomaly && git -C Segment-Any-Anomaly checkout "
              "23acbd9", file=sys.stderr)
        return 2
    cases = []
    if args.cases in ("samples", "all"):
        if not args.samples.is_dir():
            print(f"harness: {args.samples}: sample set not found (pass --samples)", file=sys.stderr)
            return 2
        cases += sample_cases(args.samples)
    if args.cases in ("assets", "all"):
        cases += asset_cases(args.reference)
    if args.only:
        cases = [c for c in cases if c["name"] in args.only]
    if args.goldens is not None and (args.cases != "samples" or args.only):
        print("harness: --goldens takes all the samples cases (no --only)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="saa-conformance-")) if args.work is None else args.work
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.models:  # one given model set for every case
            cases = [dict(c, models="given") for c in cases]
        manifests = {}
        for name in dict.fromkeys(c["models"] for c in cases):
            folder = args.models.resolve() if args.models else export_set(name, work / "models" / name)
            manifests[name] = json.loads((folder / "manifest.json").read_text())
            listed = []
            for case in (c for c in cases if c["models"] == name):
                image = case_image(case)
                npy = work / "images" / f"{case['name']}.npy"
                npy.parent.mkdir(parents=True, exist_ok=True)
                np.save(npy, image)
                listed.append({k: (list(map(str, v)) if k == "images" else v) for k, v in case.items()} |
                              {"npy": str(npy), "image_sha256": image_sha256(image)})
            listing = work / f"cases-{name}.json"
            listing.write_text(json.dumps(listed, indent=1))
            common = ["--models", str(folder), "--cases", str(listing), "--repeat", str(args.repeat)]
            _run([sys.executable, str(HERE / "official_side.py"), "--reference", str(args.reference.resolve()),
                  "--out", str(work / "official"), *common] + (["--five"] if args.five else []), "official")
            _run([sys.executable, str(HERE / "project_side.py"), "--out", str(work / "project"), *common], "project")
        rows = report(cases, work)
        if args.json:
            args.json.write_text(json.dumps([{k: v for k, v in r.items() if k not in ("official", "project")}
                                             for r in rows], indent=1, default=str))
        if args.goldens is not None:
            write_goldens(args.goldens, cases, work, manifests, args.samples)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
