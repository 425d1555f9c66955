"""Command line: ``saa download | predict | evaluate | ablation | demo | synthetic | bench | report | export-models``.

Every command calls the same library functions the notebooks call. A mistake of the user's (a bad path, image,
setting, output folder, checkpoint) ends with one line naming it and exit status 2, Ctrl-C with one line and 130;
warnings are printed one line each (see docs/reliability.md).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .config import ABLATION_VARIANTS, BEHAVIOURS, VARIANTS, variant_config
from .data.datasets import DATASET_NAMES
from .peers.config import DEEP_INPUT_SIZE, DEEP_WEIGHT, PeerConfig, with_peers
from .tables import TABLE_NAMES
from .weights.registry import SALIENCY_BACKBONES, SAM_VARIANTS


# ----- shared options -----------------------------------------------------------------------------------------------
def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument("--models", default="official",
                   help="official | tiny | random | auto (official when its weights are in the weights folder, "
                        "else tiny) | sam=PATH,gdino=PATH[,saliency=PATH] (local checkpoints) | "
                        "manifest=DIR/manifest.json (a set written by saa export-models). "
                        "tiny/random are random-weight models for tests and timing: their output is NOT meaningful")
    g.add_argument("--sam-variant", default="vit_h", choices=SAM_VARIANTS,
                   help="SAM image encoder of --models official (default vit_h, the paper's)")
    _add_backbone_arg(g)
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--seed", type=int, default=0, help="seed of tiny/random model weights")
    g.add_argument("--cache-dir", default=None, help="stage cache (default $SAA_HOME/cache)")
    g.add_argument("--no-cache", action="store_true", help="recompute every stage")
    g.add_argument("--no-download", action="store_true", help="never download weights; fail if missing")
    g.add_argument("--autocast", choices=["none", "bf16", "fp16"], default="none", help="CUDA mixed precision")


def _add_backbone_arg(g) -> None:
    g.add_argument("--saliency-backbone", default="auto", choices=("auto", *SALIENCY_BACKBONES),
                   help="P^S feature extractor. auto (default, as in the notebooks): wide_resnet50_2 (the paper's) "
                        "when its weights file is in the weights folder, else tf_efficientnet_lite0 (real ImageNet "
                        "weights installed with the package: offline). The one used is written in the results")


def _add_setting_args(p: argparse.ArgumentParser, variants: str = "saa and saa_plus") -> None:
    """The method's settings; ``variants``: the default variants, said in ``--variant``'s help ("": no option)."""
    g = p.add_argument_group("settings")
    if variants:
        g.add_argument("--variant", action="append", choices=VARIANTS,
                       help=f"variant to run (repeatable; default {variants}). saliency_only: the P^S map alone, "
                            "which needs neither the detector weights nor prompts (runs offline)")
    g.add_argument("--object", default=None, metavar="WORD",
                   help="the object in the images, the word the prompts use for it (GroundingDINO looks for it; P^L "
                        "and P^P read it). Default: the category's prompt table entry, else the category's name "
                        "(for --dataset folder: the folder's name)")
    g.add_argument("--behaviour", default="code", choices=BEHAVIOURS,
                   help="where the official code and the paper differ, follow which (default code: the published "
                        "numbers came from it)")
    g.add_argument("--prompt", action="append", default=[], metavar="TEXT",
                   help="defect prompt (repeatable), added to the category's prompt table entry; needed for a "
                        "category the tables do not have (not for --variant saliency_only)")
    g.add_argument("--box-threshold", type=float, default=0.1,
                   help="θ_box: GroundingDINO boxes less confident than this are dropped (default 0.1)")
    g.add_argument("--text-threshold", type=float, default=0.1,
                   help="θ_text: the tokens of a box scoring above this form its phrase, which P^L reads (default 0.1)")
    g.add_argument("--top-k", type=int, default=None, help="P^C's K for every category (default: per category)")
    g.add_argument("--single-caption", action="store_true", help="all prompts in one GroundingDINO caption")
    g.add_argument("--eval-resolution", type=int, default=400, metavar="PX",
                   help="side in pixels of the square anomaly maps and masks the scores and metrics are computed on "
                        "(default 400, the official code's)")
    g.add_argument("--saliency-source", default="image", choices=["image", "batch", "fewshot"],
                   help="P^S compares each pixel with: its own image (SAA+), the other test images of the category "
                        "(batch, zero-shot) or normal reference images (fewshot: train/good; predict: --reference)")
    g.add_argument("--shots", type=int, default=1, help="reference images of --saliency-source fewshot (default 1)")
    g.add_argument("--batch-rotations", type=int, default=None, choices=[1, 2, 4],
                   help="quarter turns --saliency-source batch compares each image under (default: 4 for categories "
                        "whose objects lie at any angle, screw / metal_nut / hazelnut, else 1)")
    g.add_argument("--saliency-pool", type=int, default=PeerConfig.pool, metavar="N",
                   help="--saliency-source batch / fewshot: average the features over N x N cells (default "
                        f"{PeerConfig.pool}: each cell as it is)")
    g.add_argument("--peer-quantile", type=_unit_number("a quantile", upper_closed=False, none_ok=True),
                   default=PeerConfig.peer_quantile, metavar="Q",
                   help="--saliency-source batch: divide the distances to each other image by their Q quantile over "
                        f"the image's patches ('none': as they are; default {PeerConfig.peer_quantile})")
    g.add_argument("--deep-weight", type=_unit_number("a weight", upper_closed=True), default=PeerConfig.deep_weight,
                   metavar="W",
                   help="--saliency-source batch / fewshot: share of the score taken on the backbone's stride-32 grid "
                        "(default "
                        f"{DEEP_WEIGHT} where the backbone holds that stage, tf_efficientnet_lite0; else 0)")
    g.add_argument("--deep-size", type=int, default=PeerConfig.deep_size, metavar="PX",
                   help="--saliency-source batch / fewshot: input size of that stride-32 level (default "
                        f"{DEEP_INPUT_SIZE})")
    g.add_argument("--exact", action="store_true",
                   help="--saliency-source batch: search every patch of every other image (the reference; default: "
                        "a patch index built once per category, whose cost per image grows slowly with its size)")
    g.add_argument("--nprobe", type=int, default=PeerConfig.nprobe, metavar="N",
                   help=f"--saliency-source batch: lists of the patch index probed per patch (default "
                        f"{PeerConfig.nprobe})")


def _unit_number(what: str, upper_closed: bool, none_ok: bool = False):
    """An argparse type: a number in [0, 1] (``upper_closed``) or [0, 1), or also 'none' (None) when ``none_ok``;
    anything else is an argparse error naming ``what`` and the range."""
    bounds = ("[0, 1]" if upper_closed else "[0, 1)") + (" or 'none'" if none_ok else "")

    def parse(text: str) -> float | None:
        if none_ok and text.strip().lower() == "none":
            return None
        try:
            x = float(text)
        except ValueError:
            x = -1.0
        if not (0.0 <= x <= 1.0 if upper_closed else 0.0 <= x < 1.0):
            raise argparse.ArgumentTypeError(f"expected {what} in {bounds}, got {text!r}")
        return x

    return parse


def configs_from_args(args, names) -> list:
    """The :class:`~saa_lib.config.SAAConfig` of each variant in ``names`` under the command line's settings."""
    over = dict(box_threshold=args.box_threshold, text_threshold=args.text_threshold, top_k=args.top_k,
                single_caption=args.single_caption, eval_resolution=args.eval_resolution,
                extra_prompts=tuple(args.prompt))
    over = {k: v for k, v in over.items() if v is not None}
    out = [variant_config(n, args.behaviour, **over).with_(saliency={"backbone": args.saliency_backbone})
           for n in names]
    if args.saliency_source == "image":
        return out
    return [with_peers(c, source=args.saliency_source, shots=args.shots, batch_rotations=args.batch_rotations,
                       pool=args.saliency_pool, peer_quantile=args.peer_quantile, deep_weight=args.deep_weight,
                       deep_size=args.deep_size, search="exact" if args.exact else "index", nprobe=args.nprobe)
            for c in out]


def parse_models(spec: str) -> tuple[str, dict | None]:
    """``(kind, checkpoints)`` of a ``--models`` value; ``ValueError`` naming the expected form if malformed."""
    from .weights.registry import parse_models as parse

    return parse(spec, "--models")


def check_device(device: str) -> None:
    """``ValueError`` for a ``--device`` that does not exist here (before any model is built)."""
    from .utils import device_problem

    why = device_problem(device)
    if why is not None:
        raise ValueError(f"--device {device}: {why}; use --device cpu or auto" if "GPU" in why
                         else f"--device {device!r}: {why}")


#: largest --eval-resolution: every candidate mask is held at R x R, so memory grows with R squared
MAX_EVAL_RESOLUTION = 4096


def check_settings(args) -> None:
    """``ValueError`` naming the first setting out of its range (before anything is read or built)."""
    from .pipeline import MIN_IMAGE_SIDE

    res = getattr(args, "eval_resolution", None)
    if res is not None and not MIN_IMAGE_SIDE <= res <= MAX_EVAL_RESOLUTION:
        raise ValueError(f"--eval-resolution {res}: must be between {MIN_IMAGE_SIDE} and {MAX_EVAL_RESOLUTION} "
                         "(pixels per side of the maps and masks the metrics are computed on; default 400)")
    for name in ("box_threshold", "text_threshold"):
        v = getattr(args, name, None)
        if v is not None and not 0.0 <= v <= 1.0:
            raise ValueError(f"--{name.replace('_', '-')} {v}: must be between 0 and 1")
    if getattr(args, "top_k", None) is not None and args.top_k < 1:
        raise ValueError(f"--top-k {args.top_k}: must be at least 1")
    if getattr(args, "max_images", None) is not None and args.max_images < 1:
        raise ValueError(f"--max-images {args.max_images}: must be at least 1")
    if getattr(args, "num_workers", None) is not None and args.num_workers < 0:
        raise ValueError(f"--num-workers {args.num_workers}: must be at least 0")
    if getattr(args, "ray_actors", None) is not None and args.ray is None:
        raise ValueError("--ray-actors needs --ray")
    if getattr(args, "object", None) is not None and not args.object.strip():
        raise ValueError("--object '': name the object in the images, e.g. --object screw")
    if getattr(args, "device", None) is not None:
        check_device(args.device)
    resolve_backbone(args)
    for name in ("variant", "category"):  # a repeated value would be scored, and listed, twice
        if isinstance(getattr(args, name, None), list):
            setattr(args, name, list(dict.fromkeys(getattr(args, name))))


def resolve_backbone(args) -> None:
    """Replace ``--saliency-backbone auto`` by the backbone it stands for (``workbook.choose_saliency_backbone``)."""
    if getattr(args, "saliency_backbone", None) == "auto":
        from .workbook import choose_saliency_backbone

        args.saliency_backbone = choose_saliency_backbone("auto")


def check_cache(args) -> None:
    """The stage cache folder must be writable (unless ``--no-cache``), checked before any model loads."""
    from .cache import StageCache

    StageCache(args.cache_dir, enabled=not args.no_cache).check_writable()


def _spec(args, need_detector: bool = True):
    """The :class:`saa_lib.engine.distributed.PipelineSpec` of the model options (Ray actors rebuild the same pipeline)."""
    from .engine.distributed import PipelineSpec

    kind, paths = parse_models(args.models)
    return PipelineSpec(kind=kind, checkpoints=paths, sam_variant=args.sam_variant,
                        saliency_backbone=args.saliency_backbone, seed=args.seed, download=not args.no_download,
                        device=args.device, need_detector=need_detector, autocast=args.autocast,
                        cache_dir=args.cache_dir, cache=not args.no_cache)


def _pipeline(args, need_detector: bool = True):
    return _spec(args, need_detector).build()


# ----- commands -----------------------------------------------------------------------------------------------------
def cmd_download(args) -> int:
    if args.what == "weights":
        from .weights.zoo import CHECKPOINTS, download_weights

        unknown = [n for n in args.names if n not in CHECKPOINTS or CHECKPOINTS[n].embedded]
        if unknown:
            raise ValueError(f"unknown weights {', '.join(map(repr, unknown))}; the zoo holds "
                             f"{', '.join(n for n, c in CHECKPOINTS.items() if not c.embedded)}")
        for path in download_weights(args.names or None, progress=True, force=args.force):
            print(path)
    else:
        from .data import download_dataset

        for name in args.names or ["mvtec", "visa"]:
            print(download_dataset(name, args.root))
    return 0


def output_stems(paths: list[str]) -> list[str]:
    """Output name (without variant and ending) of each input path: its stem; if two inputs share a stem, each input's
    path relative to the inputs' common folder (folders mirrored), with the file ending kept where two files of one
    folder share a stem (``a.png`` -> ``a.png``, ``x/000.png`` -> ``x/000``)."""
    absolute = [os.path.normpath(os.path.abspath(p)) for p in paths]
    stems = [Path(p).stem for p in absolute]
    if len(set(stems)) == len(stems):
        return stems
    common = os.path.commonpath([os.path.dirname(p) for p in absolute])
    rel = [Path(os.path.relpath(p, common)) for p in absolute]
    keys = [r.parent / r.stem for r in rel]
    return [(r.parent / r.name if keys.count(k) > 1 else k).as_posix() for r, k in zip(rel, keys)]


def _check_size(path, where: str = "") -> None:
    """:class:`~saa_lib.data.sample.DatasetError` naming ``path`` if its header cannot be read or the image is smaller
    than the models take."""
    from .engine.evaluate import check_image_file

    check_image_file(path, where)


def _predict_inputs(paths: list[str], keep_going: bool) -> tuple[list[str], list[tuple[str, str]]]:
    """(readable input paths, in order and without repeats; [(path, why)] of those that are not usable images)."""
    from .data.sample import DatasetError

    seen, ok, failed = set(), [], []
    for p in paths:
        key = os.path.normpath(os.path.abspath(p))
        if key in seen:
            warnings.warn(f"{p} is given more than once; it is scored once")
            continue
        seen.add(key)
        try:
            if os.path.isdir(p):
                raise DatasetError(f"{p}: is a folder; pass image files (e.g. {p}/*.png), or use saa evaluate "
                                   "--dataset folder for a whole folder")
            _check_size(p)
        except DatasetError as err:
            if not keep_going:
                raise
            failed.append((p, str(err)))
            continue
        ok.append(p)
    return ok, failed


def cmd_predict(args) -> int:
    from PIL import Image

    from .data.sample import DatasetError, read_image
    from .engine.evaluate import check_prompt_lengths
    from .fusion import resize_map
    from .pipeline import check_image
    from .prompts.language import category_prompts
    from .safeio import RUN_RECORD, ResultFolder, save_image, save_npy, write_bytes, write_text
    from .workbook import viz

    check_settings(args)
    if not (args.category or args.object):
        raise ValueError("name the object in the images with --object WORD (e.g. --object screw), or a category of "
                         "the prompt tables with --category NAME")
    category = args.category or args.object.strip()
    names = args.variant or ["saa_plus"]
    configs = configs_from_args(args, names)
    need_detector = not all(c.saliency_only for c in configs)
    prompts = category_prompts(category, args.table, extra=args.prompt, behaviour=args.behaviour,
                               object_word=args.object, for_detector=need_detector)
    spec = _spec(args, need_detector=need_detector)
    paths, failed = _predict_inputs(args.paths, args.keep_going)  # before any model is built
    for p, why in failed:
        print(f"saa predict: skipped {p}: {why}", file=sys.stderr)
    if not paths:
        raise ValueError(f"none of the {len(args.paths)} input(s) is a usable image; nothing was written")
    stems = dict(zip(paths, output_stems(paths)))
    with ResultFolder(args.out) as folder:
        check_cache(args)
        pipe = spec.build()
        check_prompt_lengths(pipe, prompts, configs)
        peers = None
        if any(c.saliency.peers is not None for c in configs):  # the given images are the batch
            from .peers import PeerSaliency

            peers = PeerSaliency(pipe.models, pipe.cache, category=prompts.category, autocast=pipe.autocast,
                                 batch=[lambda p=p: read_image(p) for p in paths],
                                 references=[lambda p=p: read_image(p) for p in args.reference[:args.shots]])
        out, done = folder.path, []
        for path in paths:
            try:
                image = read_image(path)
                check_image(image, path)
            except (DatasetError, ValueError) as err:
                if not args.keep_going:
                    raise
                failed.append((path, str(err)))
                print(f"saa predict: skipped {path}: {err}", file=sys.stderr)
                continue
            for cfg, res in zip(configs, pipe.run_variants(image, prompts, configs, peers)):
                stem = f"{stems[path]}_{cfg.variant}"
                amap = resize_map(res.anomaly_map, image.shape[:2])
                save_npy(out / f"{stem}_map.npy", amap)
                scale = float(max(amap.max(), 1e-12))
                png16 = np.round(np.clip(amap / scale, 0, 1) * 65535).astype(np.uint16)
                save_image(out / f"{stem}_map.png", Image.fromarray(png16))
                write_bytes(out / f"{stem}_overlay.png", viz.png_bytes(overlay_figure(image, amap, res, path, cfg,
                                                                                      pipe.models, prompts)))
                write_text(out / f"{stem}_regions.json", json.dumps({
                    "image": str(path), "category": category, "object_word": prompts.object_word,
                    "variant": cfg.variant, "models": pipe.models.describe(), "meaningful": pipe.models.meaningful,
                    "image_score": res.image_score, "image_score_note": IMAGE_SCORE_NOTE, "map_png_scale": scale,
                    "map_png_note": "map = png / 65535 * map_png_scale", "regions": res.regions_json()}, indent=1))
                print(f"{path} [{cfg.variant}] image score {res.image_score:.4f} ({IMAGE_SCORE_NOTE}) -> "
                      f"{Path(args.out) / stem}_*")
            done.append(path)
        if not done:
            raise ValueError(f"none of the {len(args.paths)} input(s) could be scored; nothing was written")
        write_text(out / RUN_RECORD, json.dumps({
            "command": "predict", "category": category, "object_word": prompts.object_word, "variants": names,
            "saliency_backbone": args.saliency_backbone, "models": pipe.models.describe(),
            "meaningful": pipe.models.meaningful, "outputs": {p: stems[p] for p in done},
            "failed": [{"image": p, "error": why} for p, why in failed]}, indent=1))
    if folder.replaced:
        print(f"saa predict: replaced the earlier results in {folder.out}", file=sys.stderr)
    if failed:
        print(f"saa predict: {len(done)} of {len(done) + len(failed)} image(s) scored; {len(failed)} failed "
              f"(listed in {folder.out / RUN_RECORD}): " + ", ".join(p for p, _ in failed), file=sys.stderr)
        return 2
    return 0


#: what the printed image score is, and what it may be compared with
IMAGE_SCORE_NOTE = "max of the anomaly map; compare it between images scored with the same variant and models"


def overlay_figure(image: np.ndarray, amap: np.ndarray, result, path, config, models, prompts):
    """The figure ``saa predict`` writes as ``<stem>_<variant>_overlay.png``: the image, the anomaly map ``amap``
    (H, W) over it with a colour bar and the image score; titled with the file, the variant, the object and the
    models."""
    import textwrap

    from .workbook import viz
    from .workbook.report import VARIANT_LABELS

    label = f"{VARIANT_LABELS.get(config.variant, config.variant)} ({config.variant})"
    title = "\n".join([f"{Path(path).name}: {label}, object {prompts.object_word!r}",
                       *textwrap.wrap(models.describe(), 80)])
    return viz.map_panels(image, {label: amap}, title=title, scores={label: result.image_score},
                          label="anomaly score (image score: its max)")


def _open(args):
    from .data import open_dataset

    return open_dataset(args.dataset, args.root, categories=args.category or None)


def _scorer(args, need_detector: bool):
    """Where ``evaluate`` runs the models: this process, or a Ray cluster (``--ray``)."""
    if args.num_workers is not None and args.num_workers < 0:
        raise ValueError(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.ray is None:
        from .engine.evaluate import LocalScorer

        if args.ray_actors is not None:
            raise ValueError("--ray-actors needs --ray")
        return LocalScorer(_pipeline(args, need_detector), num_workers=args.num_workers)
    from .engine.distributed import RayScorer

    return RayScorer(_spec(args, need_detector), address=args.ray, actors=args.ray_actors,
                     num_workers=args.num_workers)


def cmd_evaluate(args, ablation: bool = False) -> int:
    from .engine.evaluate import evaluate, plan_categories
    from .safeio import ResultFolder

    check_settings(args)
    names = list(ABLATION_VARIANTS) if ablation else (args.variant or ["saa", "saa_plus"])
    configs = configs_from_args(args, names)
    need_detector = not all(c.saliency_only for c in configs)
    _spec(args, need_detector)  # a malformed --models fails here
    dataset = _open(args)
    # every category's images, masks, prompts and few-shot references checked before any model is built
    categories = args.category or dataset.categories
    if args.object is not None and len(categories) > 1:
        raise ValueError(f"--object {args.object!r} names the object of one category, and {dataset.root} holds "
                         f"{len(categories)} ({', '.join(categories)}): choose one with --category NAME")
    plans = plan_categories(dataset, configs, categories, args.prompt, args.max_images, args.object)
    with ResultFolder(args.out) as folder:
        check_cache(args)
        out = folder.path
        scorer = _scorer(args, need_detector)
        t0 = time.perf_counter()
        try:
            runs = evaluate(dataset, None, configs, args.category or None, args.prompt, out, args.save_maps,
                            max_images=args.max_images, region_metrics=args.cal_pro, scorer=scorer,
                            object_word=args.object, plans=plans)
        finally:
            scorer.close()
        final = folder.out
        result = _write_tables(args, ablation, runs, scorer, dataset, out, t0)
    if folder.replaced:
        print(f"saa {args.command}: replaced the earlier results in {final}", file=sys.stderr)
    print((final / result).read_text(encoding="utf-8", errors="surrogateescape"))
    print(f"wrote {final / result} and {final / 'metrics.csv'}")
    return 0


def _write_tables(args, ablation: bool, runs, scorer, dataset, out: Path, t0: float) -> str:
    """Write the markdown table of an evaluate / ablation run into ``out``; return its file name."""
    from .workbook import saliency_line
    from .workbook.report import ablation_table, header, metric_table, write_report

    where = "" if args.ray is None else f" Ray: {scorer.execution()['actors']} actor(s)."
    head = header(scorer.describe(), scorer.meaningful, f"{args.dataset} ({dataset.root})",
                  f"Behaviour: {args.behaviour}. {saliency_line(args.saliency_backbone)}. "
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
    write_report(out / name, "SAA+ ablation" if ablation else "SAA / SAA+ evaluation", head, sections)
    return name


def cmd_synthetic(args) -> int:
    from .data.synthetic import generate_synthetic

    print(generate_synthetic(args.out, seed=args.seed))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(models=args.models, out=Path(args.out), device=args.device, data_root=Path(args.data))


def cmd_bench(args) -> int:
    if args.what == "scaling":
        from .engine.scaling import main as scaling_main

        if args.device == "auto":
            import torch

            args.device = "cuda" if torch.cuda.is_available() else "cpu"
        args.out = args.out or "results/scaling"
        return scaling_main(args)
    from .engine.bench import main as bench_main

    args.out = args.out or "results/bench"
    return bench_main(args)


def cmd_report(args) -> int:
    from .workbook.report import run_report

    labels = {"dataset": "--dataset", "root": "--root", "categories": "--categories", "models": "--models",
              "device": "--device", "n_images": "--max-images", "out_dir": "--out"}
    return run_report(dataset=args.dataset, root=args.root, categories=args.categories, models=args.models,
                      out=Path(args.out), device=args.device, max_images=args.max_images, labels=labels)


def cmd_export_models(args) -> int:
    from .weights.export import export_models

    resolve_backbone(args)
    pipe_args = argparse.Namespace(**{**vars(args), "device": "cpu", "autocast": "none", "cache_dir": None,
                                      "no_cache": True})
    models = _spec(pipe_args).build().models
    path = export_models(models, args.out)
    print(f"wrote {path.parent} ({models.describe()}); load it with --models manifest={path}")
    return 0


_FOLDER_LAYOUTS = """\
Layouts of --dataset folder --root DIR (your own images):
  DIR/001.png DIR/002.png ...         flat: one category, named after DIR
  DIR/masks/001.png                   its mask: masks/<stem>.png, masks/<stem>_mask.png, or <stem>_mask.png
                                      beside the image (PNG, 0 = normal, anything else = defect). Once any image
                                      has a mask, an image without one is normal (so is an all-zero mask); a
                                      folder without any mask is unlabelled: score it with saa predict
  DIR/<category>/test/good/*.png      the MVTec AD layout: one category per sub-folder (or DIR itself holds test/)
  DIR/<category>/test/<defect>/*.png  with masks DIR/<category>/ground_truth/<defect>/<stem>_mask.png
  DIR/<category>/train/good/*.png     optional normal references (--saliency-source fewshot)
Other data sets: mvtec and visa in the MVTec AD layout; ksdd2: DIR/{train,test}/<id>.png with <id>_GT.png;
mtd: DIR/MT_<Defect>/Imgs/<name>.jpg with <name>.png.

The category is the folder's name and also the object word of the prompts (--object WORD names another). Defect
prompts come from the category's prompt table, else from --prompt; --variant saliency_only (the P^S map alone)
needs neither prompts nor detector weights and runs offline:
  saa evaluate --dataset folder --root mine --object screw --out results/mine --variant saliency_only
"""

_PREDICT_EPILOG = """\
Inputs: image files (PNG, JPEG, BMP, TIFF, WebP, GIF), no masks. Written to --out for each image and variant:
  <stem>_<variant>_map.npy      the anomaly map at the image's size (float32)
  <stem>_<variant>_map.png      the same as a 16-bit PNG (scale in the regions file)
  <stem>_<variant>_overlay.png  the map over the image, with a colour bar, the image score and the models
  <stem>_<variant>_regions.json every candidate region and the prompt that removed it
and run.json. The image score is the max of the anomaly map: compare it between images scored with the same
variant and models. Images with masks (to measure): saa evaluate --dataset folder (see saa evaluate --help).

Offline (no detector weights): the P^S map alone:
  saa predict a.png b.png --object screw --out results/pred --variant saliency_only
"""


def _command(sub, name: str, summary: str, description: str = "", epilog: str = "") -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` starts with ``summary`` (one line), then ``description``; ``epilog`` is shown
    as written."""
    return sub.add_parser(name, help=summary, description=summary + (f"\n\n{description}" if description else ""),
                          epilog=epilog or None, formatter_class=argparse.RawDescriptionHelpFormatter)


def _ray_help() -> str:
    """``--ray``'s help: whether Ray is installed here (found without importing it)."""
    import importlib.util

    here = ("Ray is installed here" if importlib.util.find_spec("ray") is not None else
            "Ray is not installed here: pip install -r requirements.txt (it is pinned there) or "
            "pip install 'saa-workbook[ray]'")
    return ("shard each category's images over a Ray cluster: alone, a local Ray instance on this machine's "
            f"CPUs/GPUs; with ADDRESS (auto, ray://host:10001, host:6379) that cluster. {here}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="saa", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = _command(sub, "download", "fetch the official checkpoints or a data set, hash-checked",
                 "Files are written to a temporary name, checked against their published hash and only then renamed. "
                 "Offline, it fails within seconds naming every missing file, its URL and where to save it.")
    d.add_argument("what", choices=["weights", "dataset"],
                   help="weights: the official checkpoints into $SAA_HOME/weights; dataset: MVTec AD or VisA")
    d.add_argument("names", nargs="*", help="weights: zoo names (default all); dataset: mvtec | visa")
    d.add_argument("--root", default=None, help="dataset target (default data/<name>)")
    d.add_argument("--force", action="store_true",
                   help="weights: download again even if present (replaces a corrupt file once the new one is verified)")
    d.set_defaults(func=cmd_download)

    pr = _command(sub, "predict", "anomaly maps, overlay figures and region lists for single images (no masks)",
                  epilog=_PREDICT_EPILOG)
    pr.add_argument("paths", nargs="+", metavar="IMAGE", help="image files to score")
    pr.add_argument("--category", default=None,
                    help="category of the prompt tables whose prompts and settings to use (default: the --object "
                         "word); one of them, or --object, is needed")
    pr.add_argument("--table", default=None, choices=TABLE_NAMES,
                    help="prompt table to look the category up in first (default: search all)")
    pr.add_argument("--out", required=True, help="results folder: new, empty, or an earlier run's (then replaced)")
    pr.add_argument("--keep-going", action="store_true",
                    help="skip images that cannot be read or scored, score the rest and list the failures "
                         "(default: stop at the first one)")
    pr.add_argument("--reference", action="append", default=[],
                    help="normal reference image for --saliency-source fewshot (repeatable; the first --shots used)")
    _add_setting_args(pr, variants="saa_plus")
    _add_model_args(pr)
    pr.set_defaults(func=cmd_predict)

    for name, summary in (("evaluate", "metrics tables (the paper's Table 1 layout) over a data set with masks"),
                          ("ablation", "the five-variant ablation (the paper's Table 2 layout) from one cached pass")):
        e = _command(sub, name, summary, "Writes table1.md / table2.md, metrics.csv and run.json into --out.",
                     _FOLDER_LAYOUTS)
        e.add_argument("--dataset", required=True, choices=DATASET_NAMES,
                       help="data set reader; folder: your own images, flat or in the MVTec AD layout (see below)")
        e.add_argument("--root", default=None, metavar="DIR",
                       help="the data set's folder (default data/<dataset>); for folder: the flat folder itself, or "
                            "the folder that holds the category folders")
        e.add_argument("--category", action="append",
                       help="category to evaluate (repeatable; default all): a category folder's name, or a flat "
                            "folder's own name")
        e.add_argument("--out", required=True,
                       help="results folder: new, empty, or an earlier run's (then replaced as a whole)")
        e.add_argument("--save-maps", action="store_true", help="also write every anomaly map (.npy)")
        e.add_argument("--max-images", type=int, default=None, help="per category (balanced), for quick runs")
        e.add_argument("--cal-pro", action="store_true", help="also AUPRO@0.3 and region F1 (slower)")
        x = e.add_argument_group("execution")
        x.add_argument("--num-workers", type=int, default=None,
                       help="image-decoding worker processes (torch DataLoader, pinned memory on CUDA); "
                            "default 2 on CUDA, 0 on CPU")
        x.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS", help=_ray_help())
        x.add_argument("--ray-actors", type=int, default=None, metavar="N",
                       help="Ray actors, each holding the models (default: one per GPU, else CPUs // 8)")
        _add_setting_args(e, variants="saa and saa_plus" if name == "evaluate" else "")
        _add_model_args(e)
        e.set_defaults(func=cmd_evaluate if name == "evaluate" else (lambda a: cmd_evaluate(a, ablation=True)))

    de = _command(sub, "demo", "the synthetic data set, the weights and SAA / SAA+ on it, into results/demo",
                  "Without the detector weights it names every missing file and runs the P^S map alone "
                  "(saliency_only) on real ImageNet features instead, labelled as such.")
    de.add_argument("--models", default="official",
                    help="official (default; falls back to the P^S map alone when the detector weights are "
                         "missing) | tiny | random (random weights: NOT meaningful)")
    de.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    de.add_argument("--out", default="results/demo", help="results folder (default results/demo)")
    de.add_argument("--data", default="data/synthetic",
                    help="the synthetic data set's folder, generated there if missing (default data/synthetic)")
    de.set_defaults(func=cmd_demo)

    s = _command(sub, "synthetic", "write the synthetic data set (MVTec AD layout)",
                 "Two categories (fabric, washer) of generated images with exact defect masks.")
    s.add_argument("--out", default="data/synthetic", help="folder to write (default data/synthetic)")
    s.add_argument("--seed", type=int, default=0, help="seed of the generated images (default 0)")
    s.set_defaults(func=cmd_synthetic)

    b = _command(sub, "bench", "per-stage latency and memory (JSON + markdown); 'scaling': batch P^S at the size of a "
                 "category")
    b.add_argument("what", nargs="?", default="stages", choices=["stages", "scaling"],
                   help="stages (default): the pipeline's stages; scaling: batch P^S for categories of N images, "
                        "patch index vs exact search (real sample images, tf_efficientnet_lite0)")
    b.add_argument("--models", default="tiny", help="tiny (default) | random | official")
    b.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    b.add_argument("--images", type=int, default=4, help="images timed (default 4)")
    b.add_argument("--out", default=None, help="results folder (default results/bench; scaling: results/scaling)")
    sc = b.add_argument_group("scaling")
    sc.add_argument("--samples", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" /
                                             "samples"), help="the real sample images (default ../shared/data/samples)")
    sc.add_argument("--sizes", default="25,50,100,200", help="category sizes N (comma-separated)")
    sc.add_argument("--categories", default=None,
                    help="leather, screw, mtd (comma-separated; default leather); with --root, FOLDER[:CATEGORY] "
                         "(the prompt-table category whose prompts and quarter turns its images take)")
    sc.add_argument("--searches", default="index,exact", help="index, exact, image (the single-image map)")
    sc.add_argument("--exact-sizes", default=None, help="the sizes the exact search runs at (default: all)")
    sc.add_argument("--score", type=int, default=2, help="query images scored per category (real test images)")
    sc.add_argument("--nprobe", type=int, default=None, help="lists the patch index probes (default 16)")
    sc.add_argument("--threads", type=int, default=1, help="torch / faiss threads of each measurement (default 1)")
    sc.add_argument("--root", default=None, help="measure the categories of this folder as they are instead")
    sc.add_argument("--figure", default=None, help="also write the log-log figure of s / image against N here")
    b.set_defaults(func=cmd_bench)

    r = _command(sub, "report", "run the notebook series with papermill (executed notebooks + HTML)")
    r.add_argument("--dataset", default="synthetic",
                   help=f"data set the notebooks run on: {' | '.join(DATASET_NAMES)} (default synthetic)")
    r.add_argument("--root", default=None, help="the data set's folder (default data/<dataset>)")
    r.add_argument("--categories", default=None, help="comma-separated (default all)")
    r.add_argument("--models", default="auto",
                   help="the notebooks' models parameter: auto (default: official when their weights are in the "
                        "weights folder, else tiny) | official | tiny | random | sam=PATH,gdino=PATH[,saliency=PATH]"
                        "[,bert_vocab=PATH] (checked before any notebook runs)")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--max-images", type=int, default=None, help="images per category (default: the notebooks')")
    r.add_argument("--out", default="results/report", help="results folder (default results/report)")
    r.set_defaults(func=cmd_report)

    x = _command(sub, "export-models", "write a model set in the official file formats + manifest.json")
    x.add_argument("models", help="tiny | random | official | sam=PATH,gdino=PATH[,saliency=PATH] | manifest=PATH")
    x.add_argument("out", help="folder to write (sam.pth, groundingdino.pth, its config, bert/, saliency.pth, "
                               "manifest.json)")
    x.add_argument("--sam-variant", default="vit_h", choices=SAM_VARIANTS,
                   help="SAM image encoder (default vit_h, the paper's)")
    _add_backbone_arg(x)
    x.add_argument("--seed", type=int, default=0, help="seed of tiny/random model weights")
    x.add_argument("--no-download", action="store_true", help="never download weights; fail if missing")
    x.set_defaults(func=cmd_export_models)
    return p


@contextlib.contextmanager
def one_line_warnings(command: str):
    """Within the block: each warning printed as ``saa <command>: warning: <message on one line>`` (no source line);
    FutureWarning / DeprecationWarning of dependencies silenced."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category)
            warnings.filterwarnings("default", category=category, module=r"saa_lib(\.|$)")

        def show(message, category, filename, lineno, file=None, line=None):
            print(f"saa {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)

        warnings.showwarning = show
        yield


def error_line(err: BaseException) -> str:
    """The message of a user-caused error: an OSError as ``<file>: <reason>``, anything else as its text."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    return str(err) or type(err).__name__


#: options the offline form of a command line leaves out, each with its value: what needs the detector (variants,
#: models, prompts) and the backbone (auto then takes one whose weights are here)
_DETECTOR_OPTIONS = ("--variant", "--models", "--sam-variant", "--prompt", "--saliency-backbone")


def offline_command(command: str, argv: list[str]) -> str:
    """The command line ``argv`` (``saa`` left out; of ``command``: predict, evaluate or ablation) as the one that runs
    without the detector weights: the P^S map alone on real ImageNet features (``--variant saliency_only``, last),
    the options in :data:`_DETECTOR_OPTIONS` left out; an ablation becomes an evaluate."""
    words, skip = [], False
    for word in argv[argv.index(command) + 1:] if command in argv else argv:
        if skip:
            skip = False
            continue
        name, eq, _ = word.partition("=")
        if name in _DETECTOR_OPTIONS:
            skip = not eq
            continue
        words.append(word)
    prog = sys.argv[0] if Path(sys.argv[0]).name == "saa" else "saa"
    return shlex.join([prog, "predict" if command == "predict" else "evaluate", *words, "--variant", "saliency_only"])


def offline_hint(command: str, argv: list[str]) -> str:
    """What runs without the missing weights: for predict / evaluate / ablation the user's own command line in its
    offline form (:func:`offline_command`)."""
    what = "the saliency prompt alone (the P^S map on real ImageNet features) runs offline"
    if command in ("predict", "evaluate", "ablation"):
        return f"without these files, {what}: {offline_command(command, argv)}"
    return f"without these files, {what}: saa evaluate ... --variant saliency_only, saa predict ... --variant " \
           "saliency_only"


def main(argv: list[str] | None = None) -> int:
    from .engine.distributed import RayNotInstalledError
    from .weights.download import MissingFileError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # print file names that are not UTF-8 as their bytes, as ls does
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="surrogateescape")
    with one_line_warnings(args.command):
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print(f"saa {args.command}: interrupted; cached stages kept; re-run resumes", file=sys.stderr)
            return 130
        except (MissingFileError, RayNotInstalledError) as err:
            print(f"saa {args.command}: {err}", file=sys.stderr)
            if isinstance(err, MissingFileError):
                print(f"saa {args.command}: {offline_hint(args.command, argv)}", file=sys.stderr)
            return 2
        except (ValueError, OSError) as err:  # bad input, setting, path, checkpoint (HashMismatchError), full disk
            print(f"saa {args.command}: error: {error_line(err)}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
