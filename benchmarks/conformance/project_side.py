"""The project side of the conformance harness: ``saa_plus`` in ``code`` behaviour on an exported model set.

Run as its own process (``harness.py`` starts it; the project imports the installed ``groundingdino``). Writes, per
case, the record described in ``records.py`` and the timings of one run and of the five-variant ablation.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from records import array_stats, image_sha256, mask_sha1, save_record  # noqa: E402


#: the model sets of the cases. ``tiny``: the project's tiny models. ``tiny-q6``: the same with a GroundingDINO of 6
#: queries (seeded like tiny): random weights make almost every query an object box, and the official multi-instance
#: saliency compares each object with all the others at full feature resolution (about 40 GB for 90 objects), so the
#: multi-instance case uses a detector that proposes a handful of objects
MODEL_SETS = {"tiny": {}, "tiny-q6": {"num_queries": 6}}


def build_model_set(name: str):
    """The :class:`saa_lib.weights.zoo.Models` of ``MODEL_SETS[name]`` (built offline, seeded)."""
    from dataclasses import replace

    from saa_lib.models.gdino import build_gdino
    from saa_lib.models.text import tiny_text_encoder_dir
    from saa_lib.weights.zoo import load_models

    if name not in MODEL_SETS:
        raise ValueError(f"unknown model set {name!r}; choose one of {sorted(MODEL_SETS)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = load_models("tiny")
        over = MODEL_SETS[name]
        if over:
            gdino = build_gdino(tiny_text_encoder_dir(), tiny=True, seed=0, **over).to(models.device)
            tag = ",".join(f"{k}={v}" for k, v in sorted(over.items()))
            models = replace(models, gdino=gdino, identity=f"{models.identity}|gdino:{tag}")
    return models


def _pixel_boxes(det) -> np.ndarray:
    """(M, 4) xyxy pixel boxes of a ``Detections``: the unclipped ones where the detections keep them."""
    unclipped = getattr(det, "official_pixel_boxes", None)
    return np.asarray(unclipped() if unclipped is not None and getattr(det, "cxcywh", None) is not None
                      else det.boxes, np.float64)


def project_record(pipe, image: np.ndarray, table: str, category: str) -> tuple[dict, dict]:
    """(record, arrays) of the project's ``saa_plus`` (code behaviour) on ``image`` (H, W, 3) uint8 RGB."""
    from saa_lib.config import variant_config
    from saa_lib.prompts.property import found_objects
    from saa_lib.prompts.language import category_prompts

    prompts = category_prompts(category, table, behaviour="code")
    cfg = variant_config("saa_plus", "code")
    st = pipe.stages(image, prompts, cfg)
    res = pipe.score(st, prompts, cfg)
    hw = image.shape[:2]
    try:
        keep, _ = found_objects(st, prompts, cfg)
        obj = {"boxes": _pixel_boxes(st.object_detections)[keep].tolist(),
               "scores": np.asarray(st.object_detections.scores)[keep].astype(float).tolist()}
    except Exception as err:  # noqa: BLE001 - internals may change; the comparison then says n/a
        print(f"project: object boxes not available ({type(err).__name__}: {err})", file=sys.stderr)
        obj = None
    masks = None
    try:
        packed = st.packed_masks()
        if len(packed) == len(res.regions) and tuple(packed.shape[1:]) == tuple(hw):
            masks = packed
    except Exception:  # noqa: BLE001 - no full-resolution masks to digest
        masks = None
    det_boxes = _pixel_boxes(st.detections)
    raw_boxes = len(det_boxes) == len(res.regions)  # regions list every detection (saa_plus uses every prompt)
    cands, kept = [], []
    for i, r in enumerate(res.regions):
        if r.removed_by not in (None, "confidence"):
            continue
        if r.removed_by is None:
            kept.append(len(cands))
        box = det_boxes[i] if raw_boxes else r.box  # the region table shows boxes clipped and rounded
        cands.append({"caption": r.prompt, "box": [float(v) for v in box], "score": float(r.confidence),
                      "phrase": r.phrase, "area": float(r.mask_area),
                      "mask_sha1": None if masks is None else mask_sha1(masks[i]), "rescore": float(r.score)})
    sal = None if st.saliency is None else np.asarray(st.saliency, np.float32)
    rec = {"hw": list(hw), "object": obj, "candidates": cands, "kept": kept, "k": prompts.top_k,
           "saliency_stats": array_stats(sal), "image_sha256": image_sha256(image)}
    return rec, {"raw_map": np.asarray(res.anomaly_map, np.float32), "saliency": sal}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True, type=Path, help="folder written by saa export-models")
    ap.add_argument("--cases", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--export", default=None, metavar="SET", help="only write model set SET into --models")
    args = ap.parse_args(argv)
    if args.export:
        from saa_lib.weights.export import export_models

        print(export_models(build_model_set(args.export), args.models))
        return 0
    from saa_lib.config import ABLATION_VARIANTS, variant_config
    from saa_lib.weights.export import load_manifest
    from saa_lib.pipeline import SAAPipeline
    from saa_lib.prompts.language import category_prompts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = load_manifest(args.models / "manifest.json")
        warnings.simplefilter("ignore", FutureWarning)
    args.out.mkdir(parents=True, exist_ok=True)
    for case in json.loads(args.cases.read_text()):
        image = np.load(case["npy"])
        t0 = time.perf_counter()
        rec, arrays = project_record(SAAPipeline(models), image, case["table"], case["category"])  # nothing cached
        one, five = [time.perf_counter() - t0], []
        prompts = category_prompts(case["category"], case["table"], behaviour="code")
        cfg = variant_config("saa_plus", "code")
        ablation = [variant_config(v, "code") for v in ABLATION_VARIANTS]
        for i in range(max(args.repeat, 1)):
            if i:
                t0 = time.perf_counter()
                SAAPipeline(models).run(image, prompts, cfg)
                one.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            SAAPipeline(models).run_variants(image, prompts, ablation)
            five.append(time.perf_counter() - t0)
        rec.update(name=case["name"], timing={"forward_s": min(one), "ablation_s": min(five)})
        save_record(args.out / case["name"], rec, **{k: v for k, v in arrays.items() if v is not None})
        print(f"project {case['name']}: {rec['timing']['forward_s']:.2f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
