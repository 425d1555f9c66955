"""What both sides of the conformance harness record for one image, and how two records are compared.

Plain numpy and the standard library only: this module is imported by the process that runs the official code (whose
``groundingdino`` is the repository's vendored copy), by the process that runs the project, and by the golden tests.

A record (dict, JSON-able) holds:

- ``hw``: image height and width; ``image_sha256``: digest of the (H, W, 3) RGB uint8 array both sides were given;
- ``object``: the object prompt's boxes kept for P^P / multi-instance saliency (``boxes`` x0,y0,x1,y1 in pixels,
  ``scores``);
- ``candidates``: every defect region that passed the box threshold, P^L and P^P, in the side's own order, each with
  ``caption``, ``box`` (pixels), ``score`` (GroundingDINO confidence), ``phrase``, ``area`` (mask pixels / (H*W)),
  ``mask_sha1`` (of the full-resolution boolean mask, None if the side has no such mask) and ``rescore`` (after P^S);
- ``kept``: indices into ``candidates`` of the regions fused into the map (P^C's top-K);
- ``saliency_stats``: shape, min, max, mean and sha1 of the saliency map.

Arrays (``raw_map`` (400, 400) float32 and ``saliency``) travel beside the record in an ``.npz``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

#: tolerances of the comparison: boxes in pixels (the project reports boxes rounded to 0.01 px), scores and maps
BOX_TOL = 0.02
SCORE_TOL = 1e-4
MAP_TOL = 1e-4
AREA_TOL = 1e-6

STAGES = ("object boxes", "candidate boxes", "masks", "saliency", "rescored scores", "kept regions", "raw map")


# ---------------------------------------------------------------- cases
def _case(name, models, dataset, table, category, *images) -> dict:
    return {"name": name, "models": models, "dataset": dataset, "table": table, "category": category,
            "images": list(images)}


def sample_cases(samples: Path) -> list[dict]:
    """The golden cases on the shared sample set: two square greyscale (MVTec AD screw), two square colour (MVTec AD
    leather), two non-square (MTD), and two screw images side by side under a VisA category of several objects.
    ``models`` names the model set (see project_side.MODEL_SETS): multi-instance cases use ``tiny-q6``."""
    s = Path(samples)
    screw, leather, mtd = s / "mvtec_ad/screw/test", s / "mvtec_ad/leather/test", s / "mtd/magnetic_tile/test"
    return [
        _case("screw_scratch_head_001", "tiny", "mvtec", "mvtec", "screw", screw / "scratch_head/001.png"),
        _case("screw_thread_top_003", "tiny", "mvtec", "mvtec", "screw", screw / "thread_top/003.png"),
        _case("leather_glue_000", "tiny", "mvtec", "mvtec", "leather", leather / "glue/000.png"),
        _case("leather_poke_000", "tiny", "mvtec", "mvtec", "leather", leather / "poke/000.png"),
        _case("mtd_blowhole_exp3_num_346347", "tiny", "mtd", "mtd", "mtd", mtd / "blowhole/exp3_num_346347.png"),
        _case("mtd_crack_exp1_num_85781", "tiny", "mtd", "mtd", "mtd", mtd / "crack/exp1_num_85781.png"),
        _case("pair_screw_good_000_001_as_macaroni1", "tiny-q6", "visa_public", "visa", "macaroni1",
              screw / "good/000.png", screw / "good/001.png"),
    ]


def asset_cases(reference: Path) -> list[dict]:
    """Real images shipped with the official repository (not in the shared sample set)."""
    a = Path(reference) / "assets"
    return [_case("asset_candle", "tiny-q6", "visa_public", "visa", "candle", a / "candle.JPG"),
            _case("asset_capsule", "tiny-q6", "visa_public", "visa", "capsules", a / "capsule.JPG"),
            _case("asset_carpet", "tiny", "mvtec", "mvtec", "carpet", a / "carpet.png")]


def case_image(case: dict) -> np.ndarray:
    """The (H, W, 3) uint8 RGB array of a case: its images decoded with PIL and, when several, placed side by side
    (each padded at the bottom with zeros to the tallest)."""
    from PIL import Image

    arrays = []
    for p in case["images"]:
        with Image.open(p) as im:
            arrays.append(np.asarray(im.convert("RGB")))
    h = max(a.shape[0] for a in arrays)
    arrays = [np.pad(a, ((0, h - a.shape[0]), (0, 0), (0, 0))) for a in arrays]
    return np.ascontiguousarray(np.concatenate(arrays, axis=1))


def image_sha256(image: np.ndarray) -> str:
    return hashlib.sha256(f"{image.shape}|".encode() + np.ascontiguousarray(image).tobytes()).hexdigest()


def mask_sha1(mask: np.ndarray) -> str:
    mask = np.asarray(mask, bool)
    return hashlib.sha1(f"{mask.shape}|".encode() + np.packbits(mask).tobytes()).hexdigest()


def array_stats(a: np.ndarray | None) -> dict | None:
    if a is None:
        return None
    a = np.ascontiguousarray(a, np.float32)
    return {"shape": list(a.shape), "min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()),
            "sha1": hashlib.sha1(a.tobytes()).hexdigest()}


def block_mean(a: np.ndarray, side: int = 64) -> np.ndarray:
    """A small float32 summary of a map: means over a ``side`` x ``side`` grid of blocks (edges may be shorter)."""
    h, w = a.shape
    ys = np.linspace(0, h, min(side, h) + 1).astype(int)
    xs = np.linspace(0, w, min(side, w) + 1).astype(int)
    return np.array([[a[y0:y1, x0:x1].mean() for x0, x1 in zip(xs[:-1], xs[1:])] for y0, y1 in zip(ys[:-1], ys[1:])],
                    np.float32)


def caption_key(caption: str) -> str:
    """Captions compared without case, surrounding blanks and trailing full stops."""
    return caption.lower().strip().rstrip(".").strip()


def save_record(path: Path, record: dict, **arrays) -> None:
    """``path``.json and ``path``.npz, each written atomically."""
    path = Path(path)
    for suffix, write in ((".json", lambda f: f.write(json.dumps(record, indent=1).encode())),
                          (".npz", lambda f: np.savez_compressed(f, **arrays))):
        tmp = path.with_name(f".{path.name}{suffix}.tmp")
        with open(tmp, "wb") as fh:
            write(fh)
        tmp.replace(path.with_name(path.name + suffix))


def load_record(path: Path) -> tuple[dict, dict]:
    path = Path(path)
    record = json.loads(path.with_name(path.name + ".json").read_text())
    with np.load(path.with_name(path.name + ".npz")) as z:
        arrays = {k: z[k] for k in z.files}
    return record, arrays


# ---------------------------------------------------------------- comparison
def _pairs(left: list[dict], right: list[dict], same) -> tuple[list[tuple[int, int]], int]:
    """Greedy one-to-one matching of ``left`` to ``right`` items with ``same(a, b)`` (items whose phrases agree are
    preferred); returns the pairs and how many ``left`` items found no partner."""
    free = list(range(len(right)))
    pairs, missing = [], 0
    for a, item in enumerate(left):
        hits = [b for b in free if same(item, right[b])]
        best = next((b for b in hits if item.get("phrase") == right[b].get("phrase")), hits[0] if hits else None)
        if best is None:
            missing += 1
        else:
            free.remove(best)
            pairs.append((a, best))
    return pairs, missing


def _close(a, b, tol) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape == b.shape and (a.size == 0 or float(np.max(np.abs(a - b))) <= tol)


def same_region(a: dict, b: dict, with_rescore: bool = True) -> bool:
    return (caption_key(a["caption"]) == caption_key(b["caption"]) and _close(a["box"], b["box"], BOX_TOL)
            and (not with_rescore or a.get("rescore") is None or b.get("rescore") is None
                 or abs(a["rescore"] - b["rescore"]) <= SCORE_TOL))


def match_kept(official: dict, project: dict) -> tuple[bool, str]:
    """Do both records fuse the same regions (caption, box, rescored score)? (equal, explanation)"""
    left = [official["candidates"][i] for i in official["kept"]]
    right = [project["candidates"][i] for i in project["kept"]]
    unmatched = list(right)
    for region in left:
        hit = next((j for j, r in enumerate(unmatched) if same_region(region, r)), None)
        if hit is None:
            return False, f"official region {region['caption']!r} {region['box']} not kept by the project"
        unmatched.pop(hit)
    if unmatched:
        return False, f"project keeps {len(unmatched)} region(s) the official code does not"
    return True, f"{len(left)} equal"


def compare(official: dict, off_arrays: dict, project: dict, proj_arrays: dict) -> dict:
    """Stage-by-stage comparison; returns ``{"stages": {stage: (ok, detail)}, "first_diff": stage | None,
    "map_max_abs_diff": float, "kept_equal": bool}``."""
    st: dict[str, tuple[bool, str]] = {}
    ob, pb = official["object"], project.get("object")

    def same_box(a, b):
        return _close(a["box"], b["box"], BOX_TOL) and abs(a["score"] - b["score"]) <= SCORE_TOL

    if pb is None:
        st["object boxes"] = (False, "not available on the project side")
    else:
        oo = [{"box": b, "score": c} for b, c in zip(ob["boxes"], ob["scores"])]
        po = [{"box": b, "score": c} for b, c in zip(pb["boxes"], pb["scores"])]
        _, missing = _pairs(oo, po, same_box)
        st["object boxes"] = (missing == 0 and len(oo) == len(po),
                              f"{len(oo)} official / {len(po)} project" + (f", {missing} unmatched" if missing else ""))
    oc, pc = official["candidates"], project["candidates"]
    pairs, missing = _pairs(oc, pc, lambda a, b: same_region(a, b, with_rescore=False) and same_box(a, b))
    phrases = sum(oc[a]["phrase"] != pc[b]["phrase"] for a, b in pairs)
    st["candidate boxes"] = (missing == 0 and len(oc) == len(pc) and not phrases,
                             f"{len(oc)} official / {len(pc)} project" + (f", {missing} unmatched" if missing else "")
                             + (f", {phrases} phrase(s) differ" if phrases else ""))
    area = max((abs(oc[a]["area"] - pc[b]["area"]) for a, b in pairs), default=0.0)
    digests = [(oc[a].get("mask_sha1"), pc[b].get("mask_sha1")) for a, b in pairs]
    comparable = all(x is not None and y is not None for x, y in digests)
    differ = sum(x != y for x, y in digests) if comparable else 0
    st["masks"] = (area <= AREA_TOL and not differ,
                   f"max |area diff| {area:.2e}" + ("" if comparable else "; digests n/a (project masks not at image "
                                                    "resolution)") + (f"; {differ} digest(s) differ" if differ else ""))
    rs = max((abs(oc[a]["rescore"] - pc[b]["rescore"]) for a, b in pairs
              if oc[a].get("rescore") is not None and pc[b].get("rescore") is not None), default=0.0)
    st["rescored scores"] = (rs <= SCORE_TOL, f"max |diff| {rs:.2e} over {len(pairs)} matched candidates")
    osal, psal = off_arrays.get("saliency"), proj_arrays.get("saliency")
    if osal is None or psal is None:
        ostat, pstat = official.get("saliency_stats"), project.get("saliency_stats")
        ok = bool(ostat and pstat and ostat["sha1"] == pstat["sha1"])
        st["saliency"] = (ok, "digest " + ("equal" if ok else "differs"))
    elif osal.shape != psal.shape:
        st["saliency"] = (False, f"shape {tuple(osal.shape)} official / {tuple(psal.shape)} project")
    else:
        d = float(np.max(np.abs(osal.astype(np.float64) - psal)))
        st["saliency"] = (d <= MAP_TOL, f"max |diff| {d:.2e}")
    kept_equal, why = match_kept(official, project)
    st["kept regions"] = (kept_equal, why)
    om, pm = off_arrays["raw_map"], proj_arrays["raw_map"]
    if om.shape != pm.shape:
        diff = float("nan")
        st["raw map"] = (False, f"shape {om.shape} official / {pm.shape} project")
    else:
        diff = float(np.max(np.abs(om.astype(np.float64) - pm)))
        st["raw map"] = (diff <= MAP_TOL, f"max |diff| {diff:.2e}")
    first = next((s for s in STAGES if not st[s][0]), None)
    return {"stages": st, "first_diff": first, "map_max_abs_diff": diff, "kept_equal": kept_equal}
