"""The capstone of the series: SAA+ on a category the prompt tables do not hold. :func:`defect_statistics` measures
what the property table must allow (how large a category's defects are against its object, how many an image holds);
:func:`unseen_category` writes a small folder data set of such a category when the user brings none.

Nothing here loads a model or touches the network at import time.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .parameters import CAPSTONE_DEFAULT_CATEGORY, CAPSTONE_OBJECT_AREAS

#: how the object's extent is measured: the whole image (textures) or its foreground (an object on a plain background)
OBJECT_AREAS = CAPSTONE_OBJECT_AREAS
#: the category :func:`unseen_category` writes by default (a washer the prompt tables know under another name)
UNSEEN_NAME = CAPSTONE_DEFAULT_CATEGORY
QUANTILES = (0.5, 0.9, 0.95, 1.0)


def foreground(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: the object of an image showing one object on a plain background, by Otsu's threshold of the grey
    levels; the object is the side that holds fewer of the image's border pixels. All True when the image is one
    grey level (nothing to separate)."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if grey.min() == grey.max():
        return np.ones(grey.shape, bool)
    _, bright = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = bright.astype(bool)
    border = np.concatenate([bright[0], bright[-1], bright[:, 0], bright[:, -1]])
    return bright if border.mean() < 0.5 else ~bright


def _box_area(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    return float((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)) if ys.size else 0.0


@dataclass(frozen=True)
class DefectStats:
    """The defects of one category, measured on its ground-truth masks.

    ``mask_ratios`` (D,): each defect's area / its image's object area (P^P in paper behaviour compares mask areas);
    ``box_ratios`` (D,): each defect's bounding-box area / the object's bounding-box area (P^P in code behaviour
    compares box areas); ``per_image`` (A,): the defects (8-connected regions of a mask) of each anomalous image.
    """

    category: str
    object_area: str
    n_images: int
    mask_ratios: np.ndarray
    box_ratios: np.ndarray
    per_image: np.ndarray

    def ratios(self, behaviour: str = "code") -> np.ndarray:
        """The area ratios P^P compares with θ_area in ``behaviour``: box areas (``code``) or mask areas (``paper``)."""
        return self.box_ratios if behaviour == "code" else self.mask_ratios

    def quantile(self, what: str, q: float, behaviour: str = "code") -> float:
        """Quantile ``q`` of ``"area"`` (the ratios of :meth:`ratios`) or ``"count"`` (defects per anomalous image);
        nan when there is no defect."""
        values = self.ratios(behaviour) if what == "area" else self.per_image
        return float(np.quantile(values, q)) if len(values) else float("nan")

    def table(self):
        """A DataFrame of the quantiles of both area ratios and of the defects per image: one row per measure, one
        column per quantile of :data:`QUANTILES` (``max`` for 1); the index is named after the category, its defect
        count and its object area. NaN (shown ``n/a``) when there is no defect."""
        from ..frames import table

        cols = [f"q{round(100 * q)}" if q < 1 else "max" for q in QUANTILES]
        name = (f"{self.category}: {len(self.mask_ratios)} defects in {len(self.per_image)} of {self.n_images} images "
                f"(object: {self.object_area})")
        rows = [[label, *(self.quantile(what, q, behaviour) for q in QUANTILES)]
                for label, what, behaviour in (("defect box / object box area (code)", "area", "code"),
                                               ("defect mask / object mask area (paper)", "area", "paper"),
                                               ("defects per anomalous image", "count", "code"))]
        return table(rows, [name, *cols], index=name, formats={c: ".4g" for c in cols})


def defect_statistics(dataset, category: str, object_area: str = "image") -> DefectStats:
    """Measure the defects of ``category`` in ``dataset`` (every test image with a mask): each 8-connected region of
    a mask is one defect. ``object_area``: ``"image"`` (a texture, or an object that fills the frame) or
    ``"foreground"`` (:func:`foreground`: one object on a plain background)."""
    from scipy import ndimage

    if object_area not in OBJECT_AREAS:
        raise ValueError(f"object_area must be one of {OBJECT_AREAS}, got {object_area!r}")
    samples = [s for s in dataset.samples(category) if s.label in (0, 1)]
    mask_ratios, box_ratios, per_image = [], [], []
    for s in samples:
        if s.label != 1:
            continue
        mask = s.load_mask()
        obj = np.ones(mask.shape, bool) if object_area == "image" else foreground(s.load_image()) | mask
        labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
        per_image.append(n)
        obj_area, obj_box = float(obj.sum()), _box_area(obj)
        for i in range(1, n + 1):
            region = labels == i
            mask_ratios.append(region.sum() / obj_area)
            box_ratios.append(_box_area(region) / obj_box)
    return DefectStats(category, object_area, len(samples), np.array(mask_ratios, float), np.array(box_ratios, float),
                       np.array(per_image, int))


def unseen_category(name: str = UNSEEN_NAME, source: str = "washer", seed: int = 0, n_good: int = 6, n_defect: int = 12,
                    root=None) -> Path:
    """A folder data set (MVTec AD layout) holding one category the prompt tables do not have, ``name``: the
    synthetic ``source`` images (:func:`saa_lib.data.generate_synthetic`) under that name. Written once, atomically,
    to ``root`` (default ``data/capstone-<name>`` beside the synthetic set); open it with
    ``open_dataset("folder", root)``."""
    from ..data import generate_synthetic
    from .series import synthetic_root

    root = Path(root).expanduser() if root is not None else synthetic_root(seed).parent / f"capstone-{name}"
    if (root / name / "test").is_dir():
        return root
    if root.exists():
        raise FileExistsError(f"{root}: exists and does not hold the category {name!r}; choose another root")
    work = root.parent / f".{root.name}.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        generate_synthetic(work / "source", seed=seed, n_good=n_good, n_defect=n_defect, categories=(source,))
        (work / "set").mkdir()
        (work / "source" / source).rename(work / "set" / name)
        os.replace(work / "set", root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return root
