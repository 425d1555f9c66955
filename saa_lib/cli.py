"""Command line: ``saa download | predict | evaluate | ablation | demo | synthetic | bench | report``.

Every command calls the same library functions the notebooks call.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .config import ABLATION_VARIANTS, VARIANTS, variant_config


# ----- shared options -----------------------------------------------------------------------------------------------
def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument("--models", default="official",
                   help="official | tiny | random | sam=PATH,gdino=PATH[,saliency=PATH] (local checkpoints). "
                        "tiny/random are random-weight models for tests and timing: their output is NOT meaningful")
    g.add_argument("--sam-variant", default="vit_h", choices=["vit_h", "vit_l", "vit_b"])
    g.add_argument("--saliency-backbone", default="wide_resnet50_2",
                   choices=["wide_resnet50_2", "tf_efficientnet_lite0"],
                   help="P^S feature extractor; tf_efficientnet_lite0 has real ImageNet weights that install offline")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--seed", type=int, default=0, help="seed of tiny/random model weights")
    g.add_argument("--cache-dir", default=None, help="stage cache (default $SAA_HOME/cache)")
    g.add_argument("--no-cache", action="store_true", help="recompute every stage")
    g.add_argument("--no-download", action="store_true", help="never download weights; fail if missing")
    g.add_argument("--autocast", choices=["none", "bf16", "fp16"], default="none", help="CUDA mixed precision")


def _add_setting_args(p: argparse.ArgumentParser, variants: bool = True) -> None:
    g = p.add_argument_group("settings")
    if variants:
        g.add_argument("--variant", action="append", choices=VARIANTS,
                       help="repeatable; default saa and saa_plus")
    g.add_argument("--behaviour", default="code", choices=["code", "paper"],
                   help="where the official code and the paper differ, follow which (default code: the published "
                        "numbers came from it)")
    g.add_argument("--prompt", action="append", default=[], help="extra defect prompt (repeatable)")
    g.add_argument("--box-threshold", type=float, default=0.1)
    g.add_argument("--text-threshold", type=float, default=0.1)
    g.add_argument("--top-k", type=int, default=None, help="P^C's K for every category (default: per category)")
    g.add_argument("--single-caption", action="store_true", help="all prompts in one GroundingDINO caption")
    g.add_argument("--eval-resolution", type=int, default=400)


def _configs(args, names) -> list:
    over = dict(box_threshold=args.box_threshold, text_threshold=args.text_threshold, top_k=args.top_k,
                single_caption=args.single_caption, eval_resolution=args.eval_resolution,
                extra_prompts=tuple(args.prompt))
    over = {k: v for k, v in over.items() if v is not None}
    out = [variant_config(n, args.behaviour, **over) for n in names]
    return [c.with_(saliency={"backbone": args.saliency_backbone}) for c in out]


def _spec(args, need_detector: bool = True):
    """The :class:`saa_lib.distributed.PipelineSpec` of the model options (Ray actors rebuild the same pipeline)."""
    from .distributed import PipelineSpec

    kind, paths = args.models, None
    if "=" in kind:
        paths = dict(item.split("=", 1) for item in kind.split(","))
        kind = "paths"
    return PipelineSpec(kind=kind, checkpoints=paths, sam_variant=args.sam_variant,
                        saliency_backbone=args.saliency_backbone, seed=args.seed, download=not args.no_download,
                        device=args.device, need_detector=need_detector, autocast=args.autocast,
                        cache_dir=args.cache_dir, cache=not args.no_cache)


def _pipeline(args, need_detector: bool = True):
    return _spec(args, need_detector).build()


# ----- commands -----------------------------------------------------------------------------------------------------
def cmd_download(args) -> int:
    if args.what == "weights":
        from .zoo import download_weights

        for path in download_weights(args.names or None, progress=True):
            print(path)
    else:
        from .data import download_dataset

        for name in args.names or ["mvtec", "visa"]:
            print(download_dataset(name, args.root))
    return 0


def cmd_predict(args) -> int:
    from PIL import Image

    from .data.sample import read_image
    from .pipeline import resize_map
    from .prompts.language import category_prompts
    from .viz import overlay

    names = args.variant or ["saa_plus"]
    configs = _configs(args, names)
    prompts = category_prompts(args.category, args.table, extra=args.prompt, behaviour=args.behaviour)
    pipe = _pipeline(args, need_detector=not all(c.saliency_only for c in configs))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in args.paths:
        image = read_image(path)
        for cfg, res in zip(configs, pipe.run_variants(image, prompts, configs)):
            stem = f"{Path(path).stem}_{cfg.variant}"
            amap = resize_map(res.anomaly_map, image.shape[:2])
            np.save(out / f"{stem}_map.npy", amap)
            scale = float(max(amap.max(), 1e-12))
            png16 = np.round(np.clip(amap / scale, 0, 1) * 65535).astype(np.uint16)
            Image.fromarray(png16).save(out / f"{stem}_map.png")
            Image.fromarray(overlay(image, amap)).save(out / f"{stem}_overlay.png")
            (out / f"{stem}_regions.json").write_text(json.dumps({
                "image": str(path), "category": args.category, "variant": cfg.variant,
                "models": pipe.models.describe(), "meaningful": pipe.models.meaningful,
                "image_score": res.image_score, "map_png_scale": scale,
                "map_png_note": "map = png / 65535 * map_png_scale", "regions": res.regions_json()}, indent=1))
            print(f"{path} [{cfg.variant}] score {res.image_score:.4f} -> {out / stem}_*")
    return 0


def _open(args):
    from .data import open_dataset

    return open_dataset(args.dataset, args.root, categories=args.category or None)


def _scorer(args, need_detector: bool):
    """Where ``evaluate`` runs the models: this process, or a Ray cluster (``--ray``)."""
    if args.num_workers is not None and args.num_workers < 0:
        raise ValueError(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.ray is None:
        from .evaluate import LocalScorer

        if args.ray_actors is not None:
            raise ValueError("--ray-actors needs --ray")
        return LocalScorer(_pipeline(args, need_detector), num_workers=args.num_workers)
    from .distributed import RayScorer

    return RayScorer(_spec(args, need_detector), address=args.ray, actors=args.ray_actors,
                     num_workers=args.num_workers)


def cmd_evaluate(args, ablation: bool = False) -> int:
    from .evaluate import evaluate
    from .report import ablation_table, header, metric_table, write_report

    names = list(ABLATION_VARIANTS) if ablation else (args.variant or ["saa", "saa_plus"])
    configs = _configs(args, names)
    dataset = _open(args)
    scorer = _scorer(args, need_detector=not all(c.saliency_only for c in configs))
    out = Path(args.out)
    t0 = time.perf_counter()
    try:
        runs = evaluate(dataset, None, configs, args.category or None, args.prompt, out, args.save_maps,
                        max_images=args.max_images, region_metrics=args.cal_pro, scorer=scorer)
    finally:
        scorer.close()
    where = "" if args.ray is None else f" Ray: {scorer.execution()['actors']} actor(s)."
    head = header(scorer.describe(), scorer.meaningful, f"{args.dataset} ({dataset.root})",
                  f"Behaviour: {args.behaviour}. Saliency backbone: {args.saliency_backbone}. "
                  f"Time: {time.perf_counter() - t0:.1f} s.{where}")
    ds = getattr(dataset, "table", None) or args.dataset
    sections = {"max-F1-pixel (%)": metric_table(runs, "pixel_max_f1", ds),
                "pixel AUROC (%)": metric_table(runs, "pixel_auroc"),
                "image AUROC (%)": metric_table(runs, "image_auroc"),
                "image max-F1 (%)": metric_table(runs, "image_max_f1")}
    if args.cal_pro:
        sections.update({"AUPRO@0.3 (%)": metric_table(runs, "aupro"), "region F1 (%)": metric_table(runs, "region_f1")})
    if ablation:
        sections = {"Table 2 layout: ablation, max-F1-pixel (%)": ablation_table(runs, "pixel_max_f1", ds),
                    **sections}
    name = "table2.md" if ablation else "table1.md"
    path = write_report(out / name, "SAA+ ablation" if ablation else "SAA / SAA+ evaluation", head, sections)
    print(path.read_text())
    print(f"wrote {path} and {out / 'metrics.csv'}")
    return 0


def cmd_synthetic(args) -> int:
    from .data.synthetic import generate_synthetic

    print(generate_synthetic(args.out, seed=args.seed))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(models=args.models, out=Path(args.out), device=args.device, data_root=Path(args.data))


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def cmd_report(args) -> int:
    from .report import run_report

    return run_report(dataset=args.dataset, root=args.root, categories=args.categories, models=args.models,
                      out=Path(args.out), device=args.device, max_images=args.max_images)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="saa", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("download", help="official checkpoints or datasets, hash-checked")
    d.add_argument("what", choices=["weights", "dataset"])
    d.add_argument("names", nargs="*", help="weights: zoo names (default all); dataset: mvtec | visa")
    d.add_argument("--root", default=None, help="dataset target (default data/<name>)")
    d.set_defaults(func=cmd_download)

    pr = sub.add_parser("predict", help="anomaly maps, overlays and region JSON for images")
    pr.add_argument("paths", nargs="+")
    pr.add_argument("--category", required=True, help="category name (object word if not in the tables)")
    pr.add_argument("--table", default=None, help="mvtec | visa | ksdd2 | mtd | synthetic (default: search all)")
    pr.add_argument("--out", required=True)
    _add_setting_args(pr)
    _add_model_args(pr)
    pr.set_defaults(func=cmd_predict)

    for name, help_ in (("evaluate", "metrics tables (Table 1 layout) over a dataset"),
                        ("ablation", "the five-variant ablation (Table 2 layout) from one cached pass")):
        e = sub.add_parser(name, help=help_)
        e.add_argument("--dataset", required=True, choices=["mvtec", "visa", "ksdd2", "mtd", "folder", "synthetic"])
        e.add_argument("--root", default=None)
        e.add_argument("--category", action="append", help="repeatable; default all")
        e.add_argument("--out", required=True)
        e.add_argument("--save-maps", action="store_true", help="also write every anomaly map (.npy)")
        e.add_argument("--max-images", type=int, default=None, help="per category (balanced), for quick runs")
        e.add_argument("--cal-pro", action="store_true", help="also AUPRO@0.3 and region F1 (slower)")
        x = e.add_argument_group("execution")
        x.add_argument("--num-workers", type=int, default=None,
                       help="image-decoding worker processes (torch DataLoader, pinned memory on CUDA); "
                            "default 2 on CUDA, 0 on CPU")
        x.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="shard each category's images over a Ray cluster: alone, a local Ray instance on this "
                            "machine's CPUs/GPUs; with ADDRESS (auto, ray://host:10001, host:6379) that cluster. "
                            "Needs pip install 'saa-workbook[ray]'")
        x.add_argument("--ray-actors", type=int, default=None, metavar="N",
                       help="Ray actors, each holding the models (default: one per GPU, else CPUs // 8)")
        _add_setting_args(e, variants=name == "evaluate")
        _add_model_args(e)
        e.set_defaults(func=cmd_evaluate if name == "evaluate" else (lambda a: cmd_evaluate(a, ablation=True)))

    de = sub.add_parser("demo", help="synthetic data + weights + SAA/SAA+ into results/demo")
    de.add_argument("--models", default="official")
    de.add_argument("--device", default="auto")
    de.add_argument("--out", default="results/demo")
    de.add_argument("--data", default="data/synthetic")
    de.set_defaults(func=cmd_demo)

    s = sub.add_parser("synthetic", help="write the synthetic data set (MVTec layout)")
    s.add_argument("--out", default="data/synthetic")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_synthetic)

    b = sub.add_parser("bench", help="per-stage latency and memory (JSON + markdown)")
    b.add_argument("--models", default="tiny")
    b.add_argument("--device", default="auto")
    b.add_argument("--images", type=int, default=4)
    b.add_argument("--out", default="results/bench")
    b.set_defaults(func=cmd_bench)

    r = sub.add_parser("report", help="run the notebook series with papermill (executed notebooks + HTML)")
    r.add_argument("--dataset", default="synthetic")
    r.add_argument("--root", default=None)
    r.add_argument("--categories", default=None, help="comma-separated")
    r.add_argument("--models", default="tiny")
    r.add_argument("--device", default="auto")
    r.add_argument("--max-images", type=int, default=None)
    r.add_argument("--out", default="results/report")
    r.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    from .distributed import RayNotInstalledError
    from .download import MissingFileError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (MissingFileError, RayNotInstalledError) as err:
        print(f"saa {args.command}: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as err:
        print(f"saa {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
