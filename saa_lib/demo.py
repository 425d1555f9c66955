"""``make demo``: the synthetic data set, the official weights, SAA and SAA+ on it, into ``results/demo/``.

Without the official detector weights (offline), the demo names every missing file and still produces something real:
the P^S saliency map alone (``saliency_only``) on real ImageNet features (``tf_efficientnet_lite0``), labelled as such.
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from .config import variant_config
from .weights.download import MissingFileError


def _grid(runs_by_variant: dict, dataset, out: Path, title: str, n: int = 4) -> Path:
    """Qualitative grid: image, ground truth, then one column per variant, for the first anomalous images."""
    from .workbook.viz import GridRow, qualitative_grid

    first = next(iter(runs_by_variant.values()))
    rows = []
    for cat_run in first:
        samples = {str(s.image_path): s for s in dataset.samples(cat_run.category)}
        picked = [i for i, lab in enumerate(cat_run.labels) if lab == 1][: max(1, n // len(first))]
        for i in picked:
            s = samples[cat_run.names[i]]
            maps = {v: next(r for r in runs if r.category == cat_run.category).maps[i]
                    for v, runs in runs_by_variant.items()}
            rows.append(GridRow(s.load_image(), s.load_mask(), maps, cat_run.category))
    path = out / "overlays.png"
    qualitative_grid(rows, title=title, path=path)
    return path


def run_demo(models: str = "official", out: Path = Path("results/demo"), device: str = "auto",
             data_root: Path = Path("data/synthetic")) -> int:
    from .cache import StageCache
    from .data import open_dataset
    from .data.synthetic import generate_synthetic
    from .engine.evaluate import evaluate
    from .pipeline import SAAPipeline
    from .workbook.report import header, metric_table, write_report
    from .utils import resolve_device
    from .weights.zoo import load_models, load_saliency_only

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (Path(data_root) / "dataset.json").exists():
        print(f"[1/3] generating the synthetic data set in {data_root}")
        generate_synthetic(data_root, seed=0)
    else:
        print(f"[1/3] synthetic data set found in {data_root}")
    dataset = open_dataset("synthetic", data_root)
    dev = resolve_device(device)
    cache = StageCache(out / "cache")
    print(f"[2/3] models: {models}")
    try:
        loaded = load_models(models, device=dev)
        configs = [variant_config("saa"), variant_config("saa_plus")]
        note = ""
    except MissingFileError as err:
        print(str(err), file=sys.stderr)
        print("\nThe detector weights are missing, so SAA/SAA+ cannot run here. Producing the one stage that runs on "
              "real weights offline instead: the P^S saliency map alone (saliency_only) on real ImageNet features "
              "(tf_efficientnet_lite0).", file=sys.stderr)
        loaded = load_saliency_only("tf_efficientnet_lite0", kind="official", device=dev)
        configs = [variant_config("saliency_only").with_(saliency={"backbone": "tf_efficientnet_lite0"})]
        note = ("Detector weights missing: this is the saliency_only variant (P^S map alone) on real ImageNet "
                "features (tf_efficientnet_lite0), not SAA+.")
    pipe = SAAPipeline(loaded, cache)
    print(f"[3/3] running {', '.join(c.variant for c in configs)} on {len(dataset.categories)} categories")
    runs = evaluate(dataset, pipe, configs, out_dir=out)
    head = header(loaded.describe(), loaded.meaningful, f"synthetic ({data_root})", note)
    table = write_report(out / "table1.md", "Demo: synthetic data set", head,
                         {"max-F1-pixel (%)": metric_table(runs, "pixel_max_f1"),
                          "pixel AUROC (%)": metric_table(runs, "pixel_auroc")})
    by_variant = {c.variant: [r for r in runs if r.variant == c.variant] for c in configs}
    title = "\n".join(textwrap.wrap(loaded.describe(), 90) + textwrap.wrap(note, 90))
    grid = _grid(by_variant, dataset, out, title=title)
    print(table.read_text())
    print(f"wrote {table}, {out / 'metrics.csv'} and {grid}")
    return 0
