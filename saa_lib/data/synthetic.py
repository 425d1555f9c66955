"""The workbook's own data set: procedural images with planted defects and exact masks (MVTec AD layout).

Categories (usable as prompt words; the ``synthetic`` prompt table of ``saa_tables.yaml`` has them):

- ``washer``: a shaded grey metal ring on a dark background (an object);
- ``fabric``: a woven texture filling the image.

Defect types, planted only where they lie on the object (``allowed``: the ring shrunk by a margin, or the fabric away
from the border):

- ``scratch``: a thin curved line, bright on dark metal / dark on bright metal;
- ``hole``: a dark ellipse;
- ``stain``: a coloured blob with a soft edge; its mask is where some channel changed by more than
  ``STAIN_THRESHOLD`` grey levels (the faint rim below that is not a defect);
- ``missing_part`` (washer only): a sector of the ring's rim cut out and filled with background; the mask is the
  removed object pixels.

For ``scratch``, ``hole`` and ``missing_part`` the mask is exactly the set of pixels the defect changed (the planted
values always differ from the clean ones there). Everything is drawn from ``numpy`` generators seeded by ``(seed,
category, split, defect type, index)``: the same arguments give byte-identical files, and one category's images do
not depend on which other categories are generated.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .sample import DatasetError

#: defect types per category, in the order they are assigned round-robin
SYNTHETIC_CATEGORIES: dict[str, tuple[str, ...]] = {
    "washer": ("scratch", "hole", "stain", "missing_part"),
    "fabric": ("scratch", "hole", "stain"),
}
#: a stain pixel is in the mask where some channel changed by more than this many grey levels
STAIN_THRESHOLD = 12
FORMAT_VERSION = 1
_SPLITS = {"test": 0, "train": 1}
_MAX_TRIES = 500


@dataclass(frozen=True)
class SyntheticImage:
    """One generated image and how it was made (all arrays ``(H, W, ...)`` with ``H = W = size``)."""

    image: np.ndarray    # (H, W, 3) uint8, the image written to disk
    clean: np.ndarray    # (H, W, 3) uint8, the same image before the defect was planted
    mask: np.ndarray     # (H, W) bool, the defect (all False for "good")
    support: np.ndarray  # (H, W) bool, object pixels of ``clean`` (all True for a texture)
    allowed: np.ndarray  # (H, W) bool, where scratch / hole / stain may lie (the object minus a margin)
    category: str
    defect_type: str


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) float in [-1, 1]: a random ``cells``-cell grid, bilinearly interpolated."""
    g = rng.uniform(-1.0, 1.0, (cells + 1, cells + 1))
    u = np.linspace(0.0, cells, size, endpoint=False) + cells / (2 * size)
    i = np.minimum(u.astype(int), cells - 1)
    f = u - i
    rows = g[i] * (1 - f)[:, None] + g[i + 1] * f[:, None]             # (size, cells + 1)
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]  # (size, size)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return yy + 0.5, xx + 0.5


# ------------------------------------------------------------------------------------------------------- renderers
def _render_washer(rng: np.random.Generator, size: int) -> dict:
    s = size
    yy, xx = _grid(s)
    cy, cx = s / 2 + rng.uniform(-0.04, 0.04, 2) * s
    outer = rng.uniform(0.33, 0.39) * s
    inner = outer * rng.uniform(0.36, 0.46)
    d = np.hypot(yy - cy, xx - cx)
    theta = np.arctan2(yy - cy, xx - cx)
    support = (d <= outer) & (d >= inner)
    # background: dark, a vertical gradient and smooth blotches; every channel stays in [0, 70]
    bg = 24 + 16 * (yy / s) + 5 * _smooth_noise(rng, s, 5) + rng.normal(0, 1.5, (s, s))
    background = np.clip(bg[..., None] * np.array([0.94, 1.0, 1.08]), 0, 70)
    # metal: directional light, a rounded profile, bevelled edges, fine concentric machining marks
    t = (d - inner) / (outer - inner)
    light = rng.uniform(-np.pi, np.pi)
    v = (148 + 26 * np.cos(theta - light) + 16 * np.sin(np.pi * np.clip(t, 0, 1))
         - 22 * (np.exp(-(t / 0.07) ** 2) + np.exp(-((1 - t) / 0.07) ** 2))
         + 4 * np.sin(d * rng.uniform(1.1, 1.7) + rng.uniform(0, 2 * np.pi))
         + rng.normal(0, 2.0, (s, s)))
    metal = np.clip(v[..., None] * np.array([0.99, 1.0, 1.03]), 100, 205)  # every channel in [100, 205]
    clean = np.where(support[..., None], metal, background)
    margin = 0.035 * s
    allowed = (d <= outer - margin) & (d >= inner + margin)
    return dict(clean=np.rint(clean).astype(np.uint8), background=np.rint(background).astype(np.uint8),
                support=support, allowed=allowed, d=d, theta=theta, inner=inner, outer=outer)


_FABRIC_COLOURS = np.array([(196, 172, 128), (72, 96, 150), (150, 62, 60), (92, 128, 90), (168, 168, 174)], float)


def _render_fabric(rng: np.random.Generator, size: int) -> dict:
    s = size
    yy, xx = _grid(s)
    base = _FABRIC_COLOURS[rng.integers(len(_FABRIC_COLOURS))] * rng.uniform(0.9, 1.1)
    period = rng.uniform(6.0, 10.0) * s / 256
    rot = rng.uniform(-0.15, 0.15)
    u = (xx * np.cos(rot) + yy * np.sin(rot)) / period
    w = (-xx * np.sin(rot) + yy * np.cos(rot)) / period
    warp_on_top = (np.floor(u) + np.floor(w)) % 2 == 0
    thread = np.where(warp_on_top, np.sin(np.pi * (u % 1.0)), np.sin(np.pi * (w % 1.0)))
    shade = 0.68 + 0.32 * thread + 0.06 * _smooth_noise(rng, s, 4) + rng.normal(0, 0.02, (s, s))
    clean = np.clip(shade[..., None] * base, 35, 235)  # every channel in [35, 235]
    support = np.ones((s, s), bool)
    margin = 0.06 * s
    allowed = (yy > margin) & (yy < s - margin) & (xx > margin) & (xx < s - margin)
    return dict(clean=np.rint(clean).astype(np.uint8), support=support, allowed=allowed)


_RENDERERS = {"washer": _render_washer, "fabric": _render_fabric}


# ------------------------------------------------------------------------------------------------------ defects
def _random_point(rng: np.random.Generator, allowed: np.ndarray) -> tuple[float, float]:
    idx = np.flatnonzero(allowed)
    k = idx[rng.integers(len(idx))]
    return k // allowed.shape[1] + 0.5, k % allowed.shape[1] + 0.5


def _centres(rng: np.random.Generator, allowed: np.ndarray, size: int):
    """The pixel grid and a random allowed point per placement try (at most ``_MAX_TRIES``): yields (yy, xx, cy, cx)."""
    yy, xx = _grid(size)
    for _ in range(_MAX_TRIES):
        yield (yy, xx, *_random_point(rng, allowed))


def _lum(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _plant_scratch(rng, scene, size):
    """A quadratic Bezier curve of half-width ~1 px. Every channel of an allowed pixel is in [35, 235]; the line is
    >= 240 or <= 20, so every line pixel changes."""
    clean, allowed = scene["clean"], scene["allowed"]
    yy, xx = _grid(size)
    for _ in range(_MAX_TRIES):
        p0 = np.array(_random_point(rng, allowed))
        length = rng.uniform(0.12, 0.25) * size
        a = rng.uniform(0, 2 * np.pi)
        p2 = p0 + length * np.array([np.sin(a), np.cos(a)])
        normal = np.array([np.cos(a), -np.sin(a)])
        p1 = (p0 + p2) / 2 + rng.uniform(-0.3, 0.3) * length * normal
        t = np.linspace(0, 1, int(4 * length) + 8)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2           # (N, 2) (y, x)
        half = rng.uniform(0.7, 1.3) * max(size / 256, 0.75)
        y0, x0 = np.floor(pts.min(0) - half - 1).astype(int)
        y1, x1 = np.ceil(pts.max(0) + half + 1).astype(int)
        if y0 < 0 or x0 < 0 or y1 > size or x1 > size:
            continue
        py, px = yy[y0:y1, x0:x1].ravel(), xx[y0:y1, x0:x1].ravel()
        dist2 = (py[:, None] - pts[None, :, 0]) ** 2 + (px[:, None] - pts[None, :, 1]) ** 2
        local = (dist2.min(1) <= half ** 2).reshape(y1 - y0, x1 - x0)
        mask = np.zeros((size, size), bool)
        mask[y0:y1, x0:x1] = local
        if mask.sum() >= 10 and not (mask & ~allowed).any():
            break
    else:
        raise RuntimeError("could not place a scratch on the object")  # not reached for size >= 64
    bright = _lum(clean)[mask].mean() < 150
    values = rng.uniform(240, 252, mask.sum()) if bright else rng.uniform(6, 20, mask.sum())
    image = clean.copy()
    image[mask] = np.rint(values)[:, None].astype(np.uint8)
    return image, mask


def _plant_hole(rng, scene, size):
    """A dark ellipse (every channel <= 30; allowed pixels have every channel >= 35)."""
    clean, allowed = scene["clean"], scene["allowed"]
    for yy, xx, cy, cx in _centres(rng, allowed, size):
        a = rng.uniform(0.025, 0.06) * size
        b = a * rng.uniform(0.5, 1.0)
        ang = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        r2 = ((dx * np.cos(ang) + dy * np.sin(ang)) / a) ** 2 + ((-dx * np.sin(ang) + dy * np.cos(ang)) / b) ** 2
        mask = r2 <= 1.0
        if mask.sum() >= 12 and not (mask & ~allowed).any():
            break
    else:
        raise RuntimeError("could not place a hole on the object")
    depth = rng.uniform(8, 20)
    values = np.clip(depth + 8 * np.sqrt(r2[mask]) + rng.normal(0, 1.0, mask.sum()), 0, 30)
    image = clean.copy()
    image[mask] = np.rint(values)[:, None].astype(np.uint8)
    return image, mask


_STAIN_COLOURS = np.array([(120, 70, 25), (55, 42, 30), (160, 128, 30), (95, 40, 95), (30, 90, 60)], float)


def _plant_stain(rng, scene, size):
    """A soft-edged blob of colour blended over the object; mask = change > STAIN_THRESHOLD in some channel."""
    clean, allowed = scene["clean"], scene["allowed"]
    for yy, xx, cy, cx in _centres(rng, allowed, size):
        r0 = rng.uniform(0.035, 0.075) * size
        amps = rng.uniform(0, 0.15, 3)
        phases = rng.uniform(0, 2 * np.pi, 3)
        soft = rng.uniform(0.3, 0.5) * r0
        opacity = rng.uniform(0.6, 0.85)
        colour = _STAIN_COLOURS[rng.integers(len(_STAIN_COLOURS))]
        reach = r0 * (1 + amps.sum()) + soft / 2 + 1  # alpha is 0 farther than this from the centre
        y0, x0 = max(int(cy - reach), 0), max(int(cx - reach), 0)
        y1, x1 = min(int(cy + reach) + 2, size), min(int(cx + reach) + 2, size)
        wy, wx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        th = np.arctan2(wy, wx)
        radius = r0 * (1 + sum(amps[k] * np.cos((k + 2) * th + phases[k]) for k in range(3)))
        alpha = np.zeros((size, size))
        alpha[y0:y1, x0:x1] = opacity * np.clip((radius - np.hypot(wy, wx)) / soft + 0.5, 0.0, 1.0)
        if (alpha > 0).sum() < 20 or ((alpha > 0) & ~allowed).any():
            continue
        blended = clean * (1 - alpha[..., None]) + colour * alpha[..., None]
        image = np.rint(blended).astype(np.uint8)
        change = np.abs(image.astype(np.int16) - clean.astype(np.int16)).max(axis=2)
        mask = change > STAIN_THRESHOLD
        if mask.sum() >= 20:
            return image, mask
    raise RuntimeError("could not place a stain on the object")


def _plant_missing_part(rng, scene, size):
    """A sector of the ring's rim replaced by background (metal channels >= 100, background <= 70)."""
    clean, d, theta = scene["clean"], scene["d"], scene["theta"]
    inner, outer = scene["inner"], scene["outer"]
    span = np.deg2rad(rng.uniform(20, 45))
    mid = rng.uniform(-np.pi, np.pi)
    cut_from = inner + rng.uniform(0.25, 0.6) * (outer - inner)
    off = np.abs((theta - mid + np.pi) % (2 * np.pi) - np.pi)
    mask = scene["support"] & (off <= span / 2) & (d >= cut_from)
    image = clean.copy()
    image[mask] = scene["background"][mask]
    return image, mask


_PLANTERS = {"scratch": _plant_scratch, "hole": _plant_hole, "stain": _plant_stain,
             "missing_part": _plant_missing_part}


# --------------------------------------------------------------------------------------------------------- public
def _check_args(category: str, defect_type: str, seed: int, index: int, size: int, split: str) -> None:
    if category not in SYNTHETIC_CATEGORIES:
        raise DatasetError(f"unknown synthetic category {category!r}; known: {', '.join(SYNTHETIC_CATEGORIES)}")
    if defect_type != "good" and defect_type not in SYNTHETIC_CATEGORIES[category]:
        raise DatasetError(f"{category} has no defect type {defect_type!r}; it has: good, "
                           f"{', '.join(SYNTHETIC_CATEGORIES[category])}")
    if split not in _SPLITS:
        raise DatasetError(f"split must be one of {', '.join(_SPLITS)}, got {split!r}")
    if split == "train" and defect_type != "good":
        raise DatasetError("training images are normal: defect_type must be 'good' for split 'train'")
    for name, value, low in (("seed", seed, 0), ("index", index, 0), ("size", size, 64)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise DatasetError(f"{name} must be an integer >= {low}, got {value!r}")


def synthesize(category: str, defect_type: str = "good", seed: int = 0, index: int = 0, size: int = 256,
               split: str = "test") -> SyntheticImage:
    """Render one image; ``generate_synthetic`` writes exactly these images (``test/<defect_type>/<index>.png``)."""
    _check_args(category, defect_type, seed, index, size, split)
    ss = np.random.SeedSequence([int(seed), _crc(category), _SPLITS[split], _crc(defect_type), int(index)])
    scene_ss, defect_ss = ss.spawn(2)
    scene = _RENDERERS[category](np.random.default_rng(scene_ss), size)
    clean = scene["clean"]
    if defect_type == "good":
        image, mask = clean, np.zeros(clean.shape[:2], bool)
    else:
        image, mask = _PLANTERS[defect_type](np.random.default_rng(defect_ss), scene, size)
    return SyntheticImage(image=image, clean=clean, mask=mask, support=scene["support"], allowed=scene["allowed"],
                          category=category, defect_type=defect_type)


def _settings(seed, n_good, n_defect, size, categories, train_good) -> dict:
    return {"format_version": FORMAT_VERSION, "seed": seed, "n_good": n_good, "n_defect": n_defect, "size": size,
            "categories": list(categories), "train_good": train_good}


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def generate_synthetic(root: str | os.PathLike, seed: int = 0, n_good: int = 4, n_defect: int = 8, size: int = 256,
                       categories: tuple[str, ...] = ("washer", "fabric"), train_good: int = 2,
                       overwrite: bool = False) -> Path:
    """Write the synthetic data set in the MVTec AD layout under ``root``; return ``root``.

    Per category: ``train/good/NNN.png`` (``train_good``), ``test/good/NNN.png`` (``n_good``) and ``n_defect``
    defect images assigned round-robin over the category's defect types, ``test/<defect>/NNN.png`` with
    ``ground_truth/<defect>/NNN_mask.png`` (0 / 255). ``<root>/dataset.json`` records the settings. Written to a
    temporary folder renamed to ``root`` when complete. An existing ``root`` generated with the same settings is
    returned as is; any other existing ``root`` raises unless ``overwrite``.
    """
    categories = tuple(categories)
    if not categories:
        raise DatasetError(f"no category given; known: {', '.join(SYNTHETIC_CATEGORIES)}")
    for c in categories:
        _check_args(c, "good", seed, 0, size, "test")
    if len(set(categories)) != len(categories):
        raise DatasetError(f"categories repeat: {categories}")
    for name, value in (("n_good", n_good), ("n_defect", n_defect), ("train_good", train_good)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise DatasetError(f"{name} must be an integer >= 0, got {value!r}")
    root = Path(root).expanduser()
    settings = _settings(int(seed), int(n_good), int(n_defect), int(size), categories, int(train_good))
    if root.exists():
        meta = root / "dataset.json"
        try:
            same = json.loads(meta.read_text())["settings"] == settings
        except (OSError, ValueError, KeyError, TypeError):
            same = False
        if same:
            return root
        if not overwrite:
            raise DatasetError(f"{root}: exists and is not the synthetic set with these settings. Delete it, choose "
                               "another root, or pass overwrite=True.")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.generating-", dir=root.parent))
    try:
        counts: dict[str, dict[str, int]] = {}
        for cat in categories:
            n: dict[str, int] = {}
            for i in range(train_good):
                s = synthesize(cat, "good", seed, i, size, "train")
                _save_png(s.image, tmp / cat / "train" / "good" / f"{i:03d}.png")
            n["train/good"] = train_good
            for i in range(n_good):
                _save_png(synthesize(cat, "good", seed, i, size).image, tmp / cat / "test" / "good" / f"{i:03d}.png")
            n["test/good"] = n_good
            types = SYNTHETIC_CATEGORIES[cat]
            for k in range(n_defect):
                dt, i = types[k % len(types)], k // len(types)
                s = synthesize(cat, dt, seed, i, size)
                _save_png(s.image, tmp / cat / "test" / dt / f"{i:03d}.png")
                _save_png(s.mask.astype(np.uint8) * 255, tmp / cat / "ground_truth" / dt / f"{i:03d}_mask.png")
                n[f"test/{dt}"] = n.get(f"test/{dt}", 0) + 1
            counts[cat] = n
        meta = {"name": "saa-workbook synthetic", "layout": "mvtec", "settings": settings,
                "defect_types": {c: list(SYNTHETIC_CATEGORIES[c]) for c in categories},
                "stain_threshold": STAIN_THRESHOLD, "counts": counts}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
