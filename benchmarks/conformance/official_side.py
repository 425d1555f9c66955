"""The official side of the conformance harness: the official ``SAA.model.Model`` on an exported model set.

Run as its own process (``harness.py`` starts it): the official code imports its vendored ``groundingdino`` and
``segment_anything`` under those names, so nothing of the project's detector stack may be loaded here. The official
code is imported from ``--reference`` (a checkout at 23acbd9); nothing of it is copied. Patches, all made at run time
and only to fit the exported model set:

- GroundingDINO's text encoder: ``get_pretrained_language_model`` accepts only hub names; it is replaced by
  ``BertModel.from_pretrained`` on the exported ``bert/`` folder (the tokenizer already loads from a local folder).
- ``SAA.model.build_sam`` (ViT-H only) builds SAM at the manifest's sizes from the vendored SAM classes and loads
  ``sam.pth`` strictly.
- ``SAA.modelinet.timm.create_model`` builds the manifest's saliency backbone with ``pretrained=False`` and loads
  ``saliency.pth`` strictly (the official code would download timm's weights).
- ``Model.transform``: GroundingDINO's resize uses the manifest's input sizes (the official 800 / 1333 for an
  official-size set).
- The config's ``text_encoder_type`` is pointed at the exported ``bert/`` folder wherever the folder now lies.

Intermediate values are captured by wrapping the model's methods on the instance (the call itself is unchanged).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _import_official(reference: Path, models_dir: Path, manifest: dict):
    """Import ``SAA`` from ``reference`` with the run-time patches; returns the ``SAA`` package."""
    for p in (reference / "SAM", reference / "GroundingDINO", reference):
        sys.path.insert(0, str(p))
    for name in ("groundingdino", "segment_anything"):
        if name in sys.modules:
            raise RuntimeError(f"{name} was imported before the official code; run this side in a fresh process")
    import timm
    import torch
    from transformers import BertModel

    import groundingdino
    from groundingdino.util import get_tokenlizer
    if not Path(groundingdino.__file__).resolve().is_relative_to(reference.resolve()):
        raise RuntimeError(f"groundingdino resolves to {groundingdino.__file__}, not the copy in {reference}")

    bert_dir = str(models_dir / manifest["groundingdino"].get("text_encoder_dir", "bert"))

    def language_model(text_encoder_type):
        if str(text_encoder_type) != bert_dir:
            raise ValueError(f"text encoder {text_encoder_type!r} is not the exported {bert_dir}")
        return BertModel.from_pretrained(bert_dir, local_files_only=True)

    get_tokenlizer.get_pretrained_language_model = language_model

    import SAA
    import SAA.model as official_model
    import SAA.modelinet as official_modelinet
    import SAM.segment_anything.modeling as sam_modeling

    sam_sizes = manifest["sam"]["sizes"]
    sys.path.insert(0, str(HERE.parents[1]))  # the project, for its size-driven SAM constructor only
    from saa_lib.models.sam import sam_from_sizes

    def build_sam(checkpoint=None):
        sam = sam_from_sizes(sam_sizes, modeling=sam_modeling).eval()
        if checkpoint is not None:
            sam.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True), strict=True)
        return sam

    official_model.build_sam = build_sam

    spec = manifest["saliency"]
    saliency_state = models_dir / spec["file"]

    def create_model(model_name, pretrained=False, checkpoint_path="", **kwargs):
        if model_name != spec["timm_name"]:
            raise ValueError(f"the official code asks for {model_name}, the model set holds {spec['timm_name']}")
        body = timm.create_model(model_name, pretrained=False, **kwargs, **spec.get("timm_kwargs", {}))
        body.load_state_dict(torch.load(saliency_state, map_location="cpu", weights_only=True), strict=True)
        return body

    official_modelinet.timm = types.SimpleNamespace(create_model=create_model)
    return SAA


def _config_file(models_dir: Path, manifest: dict, tmp: Path) -> Path:
    """The exported GroundingDINO config with ``text_encoder_type`` set to the ``bert/`` folder where it is now."""
    g = manifest["groundingdino"]
    text = (models_dir / g["config"]).read_text()
    text += f"\ntext_encoder_type = {str(models_dir / g.get('text_encoder_dir', 'bert'))!r}\n"
    path = tmp / "groundingdino_config.py"
    path.write_text(text)
    return path


def _property_sentence(SAA, dataset: str, category: str) -> tuple[str, str]:
    """The category's property sentence from the official table; (sentence, note). The official MTD table keeps its
    only sentence under the key 'ksdd2', so the lookup for 'mtd' fails there: that sentence is used (noted)."""
    table = SAA.property_prompts[dataset]
    if category in table:
        return table[category], ""
    if len(table) == 1:
        key, sentence = next(iter(table.items()))
        return sentence, f"official property table {dataset!r} has no {category!r}; used its only entry {key!r}"
    raise KeyError(f"official property table {dataset!r} has no {category!r}")


class Capture:
    """Wraps the instance's methods to record what each stage produced for one forward."""

    NAMES = ("ensemble_text_guided_mask_proposal", "bbox_suppression", "region_refine",
             "visual_saliency_calculation", "rescore", "confidence_prompting")

    def __init__(self, model):
        self.model = model
        self.reset()

    def reset(self):
        self.passes, self.saliency, self.rescores, self.kept, self.k = [], None, None, None, None

    def install(self):
        m = self.model
        for name in self.NAMES:
            setattr(m, name, getattr(self, "_" + name)(getattr(type(m), name).__get__(m)))

    def remove(self):
        for name in self.NAMES:
            self.model.__dict__.pop(name, None)

    def _ensemble_text_guided_mask_proposal(self, orig):
        def wrapped(*a, **k):
            self.passes.append({"suppressed": [], "refined": None})
            return orig(*a, **k)
        return wrapped

    def _bbox_suppression(self, orig):
        def wrapped(boxes, logits, object_phrase, filtered_phrase, *a, **k):
            out = orig(boxes, logits, object_phrase, filtered_phrase, *a, **k)
            b, lg, ph = out
            self.passes[-1]["suppressed"].append({
                "caption": object_phrase, "n": 0 if b is None else len(b),
                "scores": [] if lg is None else [float(v) for v in lg],
                "phrases": [] if ph is None else [p.rsplit("(", 1)[0] for p in ph]})
            return out
        return wrapped

    def _region_refine(self, orig):
        def wrapped(boxes, logits, H, W):
            boxes_px = boxes.detach().cpu().numpy().astype(np.float64).copy()
            masks, lg = orig(boxes, logits, H, W)
            self.passes[-1]["refined"] = {"boxes": boxes_px, "masks": np.asarray(masks, bool)}
            return masks, lg
        return wrapped

    def _visual_saliency_calculation(self, orig):
        def wrapped(*a, **k):
            self.saliency = np.asarray(orig(*a, **k), np.float32)
            return self.saliency
        return wrapped

    def _rescore(self, orig):
        def wrapped(*a, **k):
            masks, rescores = orig(*a, **k)
            self.rescores = np.asarray(rescores, np.float64).copy()
            return masks, rescores
        return wrapped

    def _confidence_prompting(self, orig):
        def wrapped(defect_masks, defect_scores, similarity_map):
            self.k = int(self.model.k_mask)
            # which regions the official top-K keeps: the same expression on the same array
            self.kept = [int(i) for i in np.asarray(defect_scores).argsort()[-self.k:]]
            return orig(defect_masks, defect_scores, similarity_map)
        return wrapped

    def record(self, hw) -> dict:
        """The record (see records.py) of the captured forward."""
        from records import array_stats, mask_sha1

        obj, defect = self.passes[0], self.passes[1]

        def candidates(p):
            rows = []
            if p["refined"] is None:
                return rows
            i = 0
            for s in p["suppressed"]:
                for score, phrase in zip(s["scores"], s["phrases"]):
                    rows.append({"caption": s["caption"], "box": [float(v) for v in p["refined"]["boxes"][i]],
                                 "score": score, "phrase": phrase, "_i": i})
                    i += 1
            return rows

        obj_rows = candidates(obj)
        cands = candidates(defect)
        masks = defect["refined"]["masks"] if defect["refined"] is not None else np.zeros((0,) + tuple(hw), bool)
        for row in cands:
            m = masks[row.pop("_i")]
            row.update(area=float(m.sum()) / float(hw[0] * hw[1]), mask_sha1=mask_sha1(m))
        for row, rs in zip(cands, self.rescores if cands else []):
            row["rescore"] = float(rs)
        return {"hw": list(hw), "object": {"boxes": [r["box"] for r in obj_rows],
                                           "scores": [r["score"] for r in obj_rows]},
                "candidates": cands, "kept": sorted(self.kept) if cands else [], "k": self.k,
                "saliency_stats": array_stats(self.saliency),
                "object_masks": [{"area": float(m.sum()) / float(hw[0] * hw[1]), "mask_sha1": mask_sha1(m)}
                                 for m in (obj["refined"]["masks"] if obj["refined"] is not None else [])]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, type=Path)
    ap.add_argument("--models", required=True, type=Path, help="folder written by saa export-models")
    ap.add_argument("--cases", required=True, type=Path, help="JSON list of cases (name, dataset, category, npy)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--repeat", type=int, default=1, help="timed forwards per image, the captured one included (best "
                                                          "is kept)")
    ap.add_argument("--five", action="store_true", help="also time five forwards per image (the five ablation runs)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from records import image_sha256, save_record

    import torch

    models_dir = args.models.resolve()
    manifest = json.loads((models_dir / "manifest.json").read_text())
    SAA = _import_official(args.reference.resolve(), models_dir, manifest)
    import GroundingDINO.groundingdino.datasets.transforms as T

    g = manifest["groundingdino"]
    with tempfile.TemporaryDirectory() as tmp:
        config = _config_file(models_dir, manifest, Path(tmp))
        t0 = time.perf_counter()
        model = SAA.Model(dino_config_file=str(config), dino_checkpoint=str(models_dir / g["file"]),
                          sam_checkpoint=str(models_dir / manifest["sam"]["file"]), box_threshold=0.1,
                          text_threshold=0.1, out_size=400, device="cpu")
        build_s = time.perf_counter() - t0
    if (g["min_size"], g["max_size"]) != (800, 1333):
        model.transform = T.Compose([T.RandomResize([g["min_size"]], max_size=g["max_size"]), T.ToTensor(),
                                     T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    cap = Capture(model)
    # ModelINet keeps the input size its last call set (the single-instance path sets 256); the official evaluation
    # runs one process per category, so every case starts from the size of a freshly built model
    initial_saliency_size = model.visual_saliency_extractor.img_size
    args.out.mkdir(parents=True, exist_ok=True)
    for case in json.loads(args.cases.read_text()):
        rgb = np.load(case["npy"])
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # what cv2.imread gives the official data loader
        textual = SAA.build_general_prompts(case["category"]) + SAA.manul_prompts[case["dataset"]][case["category"]]
        model.set_ensemble_text_prompts(textual, verbose=False)
        sentence, note = _property_sentence(SAA, case["dataset"], case["category"])
        model.set_property_text_prompts(sentence, verbose=False)
        model.visual_saliency_extractor.set_img_size(initial_saliency_size)
        cap.reset()
        cap.install()
        t0 = time.perf_counter()
        with torch.no_grad():
            amap, appendix = model(bgr)
        times = [time.perf_counter() - t0]  # the capture copies a few arrays: a hair slower than a plain run
        cap.remove()
        rec = cap.record(rgb.shape[:2])
        rec.update(name=case["name"], image_sha256=image_sha256(rgb), dataset=case["dataset"],
                   category=case["category"], note=note, captions=[t[0] for t in textual],
                   property_sentence=sentence)
        for _ in range(args.repeat - 1):
            model.visual_saliency_extractor.set_img_size(initial_saliency_size)
            t0 = time.perf_counter()
            model(bgr)
            times.append(time.perf_counter() - t0)
        rec["timing"] = {"forward_s": min(times), "build_s": build_s}
        if args.five:
            t0 = time.perf_counter()
            for _ in range(5):
                model.visual_saliency_extractor.set_img_size(initial_saliency_size)
                model(bgr)
            rec["timing"]["five_forwards_s"] = time.perf_counter() - t0
        save_record(args.out / case["name"], rec, raw_map=np.asarray(amap, np.float32), saliency=cap.saliency)
        print(f"official {case['name']}: {rec['timing']['forward_s']:.2f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
