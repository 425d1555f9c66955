"""Data set readers: MVTec AD layout (MVTec AD, converted VisA, folders, the synthetic set), KSDD2, MTD, flat folders.

``open_dataset(name, root)`` picks the reader; every reader turns every image file it finds into a :class:`Sample` or
raises :class:`DatasetError` naming the file — nothing is dropped silently. Hidden files (``.*``) and files that are
not images (by ending, see ``IMAGE_EXTENSIONS``) are not data and are skipped.

Layouts read:

- MVTec AD: ``<root>/<category>/{train/good, test/<defect>, ground_truth/<defect>/<stem>_mask.png}`` (``<stem>.png``
  in ``ground_truth/<defect>/`` is accepted too, as anomalib's VisA conversion writes it); ``test/good`` is normal.
  A root that itself holds ``test/`` is one category named after the folder.
- VisA: the MVTec layout written by :func:`prepare_visa` from the official archive and its 1-class split
  (``split_csv/1cls.csv``); defect type ``bad``.
- KSDD2: ``<root>/{train,test}/<id>.png`` with ``<id>_GT.png``; an image is anomalous iff its GT has a non-zero pixel.
  One category, ``ksdd2``.
- MTD: ``<root>/MT_<Defect>/Imgs/<name>.jpg`` with the mask ``<name>.png`` beside it; ``MT_Free`` is normal. No
  official split: everything is ``test``. One category, ``mtd``. A root in the MVTec layout is read as such.
- folder: the MVTec layout if the root has it, else a flat folder of images (one category named after the folder).
  A flat folder image's mask is ``masks/<stem>.png`` / ``masks/<stem>_mask.png`` or ``<stem>_mask.png`` beside it
  (:data:`FLAT_MASK_FORMS`; a sub-folder of images under any other name is refused naming these forms). With a mask
  an image is anomalous (mask has a non-zero pixel, defect type ``defect``) or normal (empty mask, ``good``). Once
  any image of the folder has a mask, an image without one is normal too (``good``; one warning per category gives
  how many); in a folder without any mask every image is unlabelled (``label=-1``, defect type ``unknown``), which
  metrics skip (``saa predict`` scores such images).

An all-zero mask means a normal image in every layout: an image of a defect folder (MVTec ``test/<defect>/``, MTD
``MT_<Defect>/``) whose mask has no defect pixel is counted as normal (label 0, its defect type kept), the same as a
flat folder's or KSDD2's image with an empty mask, and one warning per category names how many and the first file.
Counting it as anomalous would give an anomalous image without a single anomalous pixel.
"""
from __future__ import annotations

import csv
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .sample import (ANOMALOUS, NORMAL, UNLABELLED, DatasetError, Sample, check_nonempty, image_size,
                     is_image_file, read_mask)

DATASET_NAMES = ("mvtec", "visa", "ksdd2", "mtd", "folder", "synthetic")
#: the prompt table of ``saa_lib/resources/saa_tables.yaml`` that applies to each data set (None: look it up by name)
TABLES: dict[str, str | None] = {"mvtec": "mvtec", "visa": "visa", "ksdd2": "ksdd2", "mtd": "mtd", "folder": None,
                                 "synthetic": "synthetic"}
VISA_CATEGORIES = ("candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2",
                   "pcb3", "pcb4", "pipe_fryum")

HOW_TO_GET = {
    "mvtec": "Download it with saa_lib.data.download_dataset('mvtec', root=...), or pass the folder that holds "
             "bottle/, cable/, ... of an extracted mvtec_anomaly_detection.tar.xz.",
    "visa": "Download and convert it with saa_lib.data.download_dataset('visa', root=...), or convert an extracted "
            "VisA_20220922.tar with saa_lib.data.prepare_visa(raw_root, out_root=...).",
    "ksdd2": "Download KolektorSDD2 (https://www.vicos.si/resources/kolektorsdd2/) and unzip it so that <root>/train "
             "and <root>/test exist.",
    "mtd": "Get the Magnetic Tile Defect data set (https://github.com/abin24/Magnetic-tile-defect-datasets.) and put "
           "its MT_* folders under <root>.",
    "folder": "Pass the folder that holds your images (flat, or in the MVTec AD layout).",
    "synthetic": "Generate it with saa_lib.data.generate_synthetic(root).",
}
_MVTEC_LAYOUT = ("<root>/<category>/test/<defect>/<image> with masks <root>/<category>/ground_truth/<defect>/"
                 "<stem>_mask.png and normal images in test/good/ and train/good/")
_OBJECT_WORD = (". A folder's category is also the object word of the prompts; name another object with --object "
                "WORD (object_word=)")
#: where a flat folder's masks may be, in the words the error messages use
FLAT_MASK_FORMS = "masks/<stem>.png, masks/<stem>_mask.png or <stem>_mask.png beside the image"


def default_root(name: str) -> Path:
    """``data/<name>``, relative to the current working directory."""
    return Path("data") / name


def _entries(folder: Path) -> list[Path]:
    """The non-hidden entries of a folder, sorted by name."""
    try:
        return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
    except OSError as err:
        raise DatasetError(f"{folder}: cannot list the folder ({err.strerror or err}).") from err


class AnomalyDataset:
    """A data set on disk: ``name``, ``root``, ``categories``, ``splits``, ``table`` and ``samples(category, split)``.

    ``table`` names the prompt table that applies (``"mvtec"``, ``"visa"``, ``"ksdd2"``, ``"mtd"``, ``"synthetic"``)
    or is ``None`` (look the category up in every table).
    """

    splits: tuple[str, ...] = ("test", "train")

    def __init__(self, name: str, root: str | os.PathLike, table: str | None = None,
                 categories: Iterable[str] | str | None = None):
        self.name = name
        self.root = Path(root).expanduser().absolute()
        self.table = table
        found = self._discover()
        self.categories: list[str] = _select(found, categories, self.root, self.categories_rule())
        self._cache: dict[tuple[str, str], list[Sample]] = {}

    # -- to implement -------------------------------------------------------------------------------------------------
    def _discover(self) -> list[str]:
        """Every category under ``root``; raise :class:`DatasetError` on a wrong layout."""
        raise NotImplementedError

    def _list(self, category: str, split: str) -> list[Sample]:
        raise NotImplementedError

    def categories_rule(self) -> str:
        """Why the categories of ``root`` are what they are (for messages); ``""`` when fixed by the data set."""
        return ""

    # -- public -------------------------------------------------------------------------------------------------------
    def samples(self, category: str, split: str = "test") -> list[Sample]:
        """Every image of one category and split, sorted by path. Raises :class:`DatasetError` for an unknown
        category or split, an empty category, a defect image without a mask, an empty file."""
        if category not in self.categories:
            raise DatasetError(unknown_categories([category], self.categories, self.root, self.categories_rule()))
        if split not in self.splits:
            raise DatasetError(f"the {self.name} data set has no split {split!r}; splits: {', '.join(self.splits)}")
        key = (category, split)
        if key not in self._cache:
            found = sorted(self._list(category, split), key=lambda s: s.image_path.as_posix())
            if not found:
                raise DatasetError(f"{self.root}: category {category!r} has no images in split {split!r}. "
                                   "Add images, or leave the category out (categories=...).")
            self._cache[key] = found
        return list(self._cache[key])

    def check(self, splits: Iterable[str] | None = None) -> int:
        """Read every image header and every mask of the selected categories; raise on the first problem.

        Returns the number of samples checked."""
        n = 0
        for category in self.categories:
            for split in splits or self.splits:
                if split != "test" and split not in self._present_splits(category):
                    continue
                for s in self.samples(category, split):
                    if s.mask_path is not None:
                        s.load_mask()  # reads the image header, the mask, and compares their sizes
                    else:
                        image_size(s.image_path)
                    n += 1
        return n

    def _present_splits(self, category: str) -> tuple[str, ...]:
        return self.splits

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, root={str(self.root)!r}, table={self.table!r}, "
                f"categories={self.categories!r})")


def unknown_categories(unknown: list[str], found: list[str], root: Path, rule: str = "") -> str:
    """The message for categories asked for that ``root`` does not hold: its categories, and ``rule`` (why they are
    these, and how to point at another)."""
    return (f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))} in {root}; its "
            f"categories: {', '.join(found)}" + (f". {rule}" if rule else ""))


def _select(found: list[str], wanted, root: Path, rule: str = "") -> list[str]:
    found = sorted(found)
    if wanted is None:
        return found
    if isinstance(wanted, str):
        wanted = [w.strip() for w in wanted.split(",") if w.strip()]
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        raise DatasetError(f"{root}: no category selected; known: {', '.join(found)}")
    unknown = [w for w in wanted if w not in found]
    if unknown:
        raise DatasetError(unknown_categories(unknown, found, root, rule))
    return sorted(wanted)


# ---------------------------------------------------------------------------------------------------------- MVTec AD
def _is_category_dir(path: Path) -> bool:
    return (path / "test").is_dir() or (path / "train").is_dir()


def has_mvtec_layout(root: Path) -> bool:
    """Whether ``root`` is one category (holds ``test/`` or ``train/``) or holds category folders."""
    return _is_category_dir(root) or any(d.is_dir() and _is_category_dir(d) for d in _entries(root))


class MVTecLayout(AnomalyDataset):
    """The MVTec AD folder layout; used by MVTec AD, converted VisA, folders in that layout and the synthetic set."""

    def _discover(self) -> list[str]:
        if _is_category_dir(self.root):
            self._dirs = {self.root.name: self.root}
        else:
            self._dirs = {d.name: d for d in _entries(self.root) if d.is_dir() and _is_category_dir(d)}
        if not self._dirs:
            hint = ""
            subs = [d for d in _entries(self.root) if d.is_dir()]
            if len(subs) == 1 and has_mvtec_layout(subs[0]):
                hint = f" The data seem to be one folder down: use root={subs[0]}."
            raise DatasetError(f"{self.root}: no category folders found for the {self.name} data set. Expected "
                               f"{_MVTEC_LAYOUT}.{hint}")
        return list(self._dirs)

    def _present_splits(self, category: str) -> tuple[str, ...]:
        return tuple(s for s in self.splits if (self._dirs[category] / s).is_dir())

    def categories_rule(self) -> str:
        if _is_category_dir(self.root):
            rule = (f"A root that holds test/ or train/ is one category, named after the folder ({self.root.name!r}): "
                    f"select it with --category (categories=) {self.root.name}, or point --root (root=) at the "
                    "folder that holds the category folders")
        else:
            rule = ("In the MVTec AD layout the categories are the root's sub-folders that hold test/ or train/: "
                    "select one with --category (categories=) NAME, or point --root (root=) at the folder that "
                    "holds them")
        return rule + (_OBJECT_WORD if self.name == "folder" else "")

    def _list(self, category: str, split: str) -> list[Sample]:
        cat_dir = self._dirs[category]
        split_dir = cat_dir / split
        if not split_dir.is_dir():
            raise DatasetError(f"{split_dir}: missing. Expected {_MVTEC_LAYOUT}.")
        out, empty = [], []
        for entry in _entries(split_dir):
            if entry.is_file():
                if is_image_file(entry):
                    raise DatasetError(f"{entry}: image directly in {split}/. Move it into {split}/good/ if it is "
                                       f"normal, or into {split}/<defect>/ with its mask in ground_truth/<defect>/.")
                continue
            defect = entry.name
            gt_dir = cat_dir / "ground_truth" / defect
            gts = {p.name: p for p in _entries(gt_dir)} if gt_dir.is_dir() else {}
            for f in _entries(entry):
                if f.is_dir():
                    raise DatasetError(f"{f}: unexpected folder inside {split}/{defect}/. Expected images only "
                                       f"({_MVTEC_LAYOUT}).")
                if not is_image_file(f):
                    continue
                check_nonempty(f, "image")
                if defect == "good":
                    out.append(Sample(f, None, NORMAL, category, "good", self.name))
                    continue
                mask = gts.get(f"{f.stem}_mask.png") or gts.get(f"{f.stem}.png")
                if mask is None:
                    raise DatasetError(
                        f"{f}: defect image without a mask; expected {gt_dir / (f.stem + '_mask.png')}. Add the "
                        f"mask, or move the image to {split}/good/ if it is normal.")
                out.append(_defect_sample(f, mask, category, defect, self.name, empty))
        _warn_empty_masks(empty, category)
        return out


def _flat_image_files(folder: Path, where: str, name: str) -> list[Path]:
    """The image files in ``folder``, which keeps images and masks flat: a sub-folder is refused (``where`` and
    ``name``, the data set, go into the message)."""
    files = []
    for p in _entries(folder):
        if p.is_dir():
            raise DatasetError(f"{p}: unexpected folder in {where}; {name} keeps images and masks flat.")
        if is_image_file(p):
            files.append(p)
    return files


def _masked_sample(image: Path, mask: Path, category: str, dataset: str) -> Sample:
    """The sample of an image with a mask file: anomalous (``defect``) if the mask (read now, size checked against
    the image) has a defect pixel, else normal (``good``, an all-zero mask means normal)."""
    if read_mask(mask, image_size(image), image).any():
        return Sample(image, mask, ANOMALOUS, category, "defect", dataset)
    return Sample(image, None, NORMAL, category, "good", dataset)


def _defect_sample(image: Path, mask: Path, category: str, defect: str, dataset: str, empty: list) -> Sample:
    """The sample of an image in a defect folder: anomalous if its mask (read now, size checked against the image)
    has a defect pixel, else normal with its defect type kept, and the image appended to ``empty``."""
    if read_mask(mask, image_size(image), image).any():
        return Sample(image, mask, ANOMALOUS, category, defect, dataset)
    empty.append(image)
    return Sample(image, None, NORMAL, category, defect, dataset)


def _warn_empty_masks(empty: list, category: str) -> None:
    if empty:
        warnings.warn(f"{len(empty)} image(s) in defect folders of category {category!r} have an all-zero mask and "
                      f"are counted as normal (an empty mask means normal in every layout), first: {empty[0]}",
                      stacklevel=3)


# ------------------------------------------------------------------------------------------------------- flat folder
_MASK_SUFFIX = "_mask"


class FlatFolder(AnomalyDataset):
    """A flat folder of images: one category named after the folder, split ``test`` only (see module docstring)."""

    splits = ("test",)

    def _discover(self) -> list[str]:
        if not any(f.is_file() and is_image_file(f) for f in _entries(self.root)):
            raise DatasetError(f"{self.root}: no images found. A folder data set is either flat (images directly in "
                               f"it, masks as {FLAT_MASK_FORMS}) or in the MVTec AD layout ({_MVTEC_LAYOUT}).")
        return [self.root.name]

    def categories_rule(self) -> str:
        return (f"A flat folder (images directly in it) is one category, named after the folder "
                f"({self.root.name!r}): select it with --category (categories=) {self.root.name} or leave the "
                "category out; for one category per sub-folder use the MVTec AD layout and point --root (root=) at "
                "the folder that holds them" + _OBJECT_WORD)

    def _list(self, category: str, split: str) -> list[Sample]:
        files, subdirs = [], []
        for p in _entries(self.root):
            (subdirs if p.is_dir() else files).append(p)
        images = [f for f in files if is_image_file(f) and not f.stem.endswith(_MASK_SUFFIX)]
        beside = {f.stem[:-len(_MASK_SUFFIX)]: f for f in files if is_image_file(f) and f.stem.endswith(_MASK_SUFFIX)}
        stems = {f.stem for f in images}
        in_masks: dict[str, Path] = {}
        for d in subdirs:
            if d.name == "masks":
                for m in _entries(d):
                    if m.is_file() and is_image_file(m):
                        stem = m.stem[:-len(_MASK_SUFFIX)] if m.stem.endswith(_MASK_SUFFIX) else m.stem
                        if stem in in_masks:
                            raise DatasetError(f"{m}: a second mask for {stem!r} (also {in_masks[stem]}). Keep one.")
                        in_masks[stem] = m
                continue
            inside = [f for f in _entries(d) if f.is_file() and is_image_file(f)]
            if not inside:
                continue
            if any(f.stem.removesuffix(_MASK_SUFFIX) in stems for f in inside):
                raise DatasetError(f"{d}: a folder of masks? A flat folder reads a mask only as {FLAT_MASK_FORMS}: "
                                   f"rename {d.name}/ to masks/.")
            raise DatasetError(f"{d}: sub-folder with images inside a flat folder data set; only images directly "
                               f"in {self.root} are read, and masks as {FLAT_MASK_FORMS}. Move the images up, or "
                               f"use the MVTec AD layout ({_MVTEC_LAYOUT}).")
        for stem, m in {**in_masks, **beside}.items():
            if stem not in stems:
                raise DatasetError(f"{m}: mask without an image (expected an image named {stem}.<ext> in "
                                   f"{self.root}; masks are {FLAT_MASK_FORMS}). Rename or remove it.")
        out, unmasked = [], []
        for f in images:
            check_nonempty(f, "image")
            if f.stem in beside and f.stem in in_masks:
                raise DatasetError(f"{f}: two masks ({beside[f.stem]} and {in_masks[f.stem]}). Keep one.")
            mask = beside.get(f.stem) or in_masks.get(f.stem)
            if mask is None:
                unmasked.append(f)
            else:
                out.append(_masked_sample(f, mask, category, self.name))
        if not out:  # no mask at all: an unlabelled folder (saa predict scores it)
            return [Sample(f, None, UNLABELLED, category, "unknown", self.name) for f in unmasked]
        if unmasked:
            n = len(unmasked)
            warnings.warn(f"{category}: {n} image{'s' if n > 1 else ''} without a mask {'are' if n > 1 else 'is'} "
                          "taken as normal (in a flat folder with masks, no mask means normal, as an all-zero mask "
                          f"does), first: {unmasked[0]}", stacklevel=3)
        return out + [Sample(f, None, NORMAL, category, "good", self.name) for f in unmasked]


# ------------------------------------------------------------------------------------------------------------ KSDD2
class KSDD2(AnomalyDataset):
    """KolektorSDD2: ``<root>/{train,test}/<id>.png`` + ``<id>_GT.png``; one category ``ksdd2``."""

    splits = ("test", "train")

    def _discover(self) -> list[str]:
        if not any((self.root / s).is_dir() for s in self.splits):
            raise DatasetError(f"{self.root}: not a KolektorSDD2 folder; expected <root>/train/ and <root>/test/ "
                               "holding <id>.png images and <id>_GT.png masks. " + HOW_TO_GET["ksdd2"])
        return ["ksdd2"]

    def _present_splits(self, category: str) -> tuple[str, ...]:
        return tuple(s for s in self.splits if (self.root / s).is_dir())

    def _list(self, category: str, split: str) -> list[Sample]:
        d = self.root / split
        if not d.is_dir():
            raise DatasetError(f"{d}: missing; a KolektorSDD2 folder has train/ and test/.")
        files = _flat_image_files(d, f"{split}/", "KolektorSDD2")
        gts = {f.stem[:-3]: f for f in files if f.stem.endswith("_GT")}
        images = [f for f in files if not f.stem.endswith("_GT")]
        orphans = sorted(set(gts) - {f.stem for f in images})
        if orphans:
            raise DatasetError(f"{gts[orphans[0]]}: mask without an image ({orphans[0]}.png is missing).")
        out = []
        for f in images:
            check_nonempty(f, "image")
            gt = gts.get(f.stem)
            if gt is None:
                raise DatasetError(f"{f}: no mask {d / (f.stem + '_GT.png')}; KolektorSDD2 has one for every image "
                                   "(empty for normal images). Restore it from the archive.")
            out.append(_masked_sample(f, gt, category, self.name))
        return out


# -------------------------------------------------------------------------------------------------------------- MTD
class MTD(AnomalyDataset):
    """Magnetic Tile Defect, raw layout ``<root>/MT_<Defect>/Imgs/<name>.jpg`` + ``<name>.png``; one category ``mtd``,
    split ``test`` only (the data set has no official split)."""

    splits = ("test",)

    def _discover(self) -> list[str]:
        self._dirs = [d for d in _entries(self.root) if d.is_dir() and d.name.startswith("MT_")]
        if not self._dirs:
            raise DatasetError(f"{self.root}: not an MTD folder; expected MT_<Defect>/Imgs/ folders (MT_Free for "
                               "normal images). " + HOW_TO_GET["mtd"])
        return ["mtd"]

    def _list(self, category: str, split: str) -> list[Sample]:
        out, empty = [], []
        for d in self._dirs:
            imgs = d / "Imgs"
            if not imgs.is_dir():
                raise DatasetError(f"{imgs}: missing; every MTD folder MT_<Defect>/ holds its images in Imgs/.")
            defect = d.name[3:].lower()
            normal = defect == "free"
            files = _flat_image_files(imgs, str(imgs), "MTD")
            masks = {f.stem: f for f in files if f.suffix.lower() == ".png"}
            images = [f for f in files if f.suffix.lower() != ".png"]
            orphans = sorted(set(masks) - {f.stem for f in images})
            if orphans:
                raise DatasetError(f"{masks[orphans[0]]}: mask (.png) without an image ({orphans[0]}.jpg is missing).")
            for f in images:
                check_nonempty(f, "image")
                if normal:
                    out.append(Sample(f, None, NORMAL, category, "good", self.name))
                    continue
                mask = masks.get(f.stem)
                if mask is None:
                    raise DatasetError(f"{f}: defect image without a mask; expected {imgs / (f.stem + '.png')}.")
                out.append(_defect_sample(f, mask, category, defect, self.name, empty))
        _warn_empty_masks(empty, category)
        return out


# -------------------------------------------------------------------------------------------------------- open_dataset
def open_dataset(name: str, root: str | os.PathLike | None = None,
                 categories: Iterable[str] | str | None = None) -> AnomalyDataset:
    """Open a data set: ``name`` in ``DATASET_NAMES``; ``root`` defaults to ``data/<name>`` (current directory).

    ``categories`` (list or comma-separated string) keeps only those; an unknown one raises :class:`DatasetError`
    listing the known ones. ``synthetic`` is generated with the default settings if its root does not exist yet.
    """
    if name not in DATASET_NAMES:
        raise DatasetError(f"unknown data set {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
    root = Path(root).expanduser() if root is not None else default_root(name)
    if name == "synthetic" and not root.exists():
        from .synthetic import generate_synthetic
        generate_synthetic(root)
    if not root.exists():
        raise DatasetError(f"{root}: the {name} data set root does not exist. {HOW_TO_GET[name]}")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; a data set root is a folder. {HOW_TO_GET[name]}")
    table = TABLES[name]
    if name == "ksdd2":
        cls = KSDD2
    elif name == "mtd":
        cls = MTD if any(d.is_dir() and d.name.startswith("MT_") for d in _entries(root)) else MVTecLayout
    elif name == "folder":
        cls = MVTecLayout if has_mvtec_layout(root) else FlatFolder
    else:
        cls = MVTecLayout
    return cls(name, root, table, categories)


# --------------------------------------------------------------------------------------------------------------- VisA
_VISA_COLUMNS = ("object", "split", "label", "image", "mask")


def prepare_visa(raw_root: str | os.PathLike, split_csv: str | os.PathLike | None = None,
                 out_root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Convert an extracted VisA archive to the MVTec AD layout with the official 1-class split; return ``out_root``.

    ``split_csv`` (default ``<raw_root>/split_csv/1cls.csv``) has the columns ``object,split,label,image,mask``
    (label ``normal``/``anomaly``, paths relative to ``raw_root``). Images are copied unchanged to
    ``<out_root>/<object>/<split>/{good,bad}/``; masks are binarised (any value > 0 → 255) and written as
    ``<out_root>/<object>/ground_truth/bad/<stem>_mask.png``. Everything is written to a temporary folder that is
    renamed to ``out_root`` (default ``data/visa``) only when complete.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    raw_root = Path(raw_root).expanduser()
    split_csv = Path(split_csv).expanduser() if split_csv is not None else raw_root / "split_csv" / "1cls.csv"
    out_root = Path(out_root).expanduser() if out_root is not None else default_root("visa")
    if not raw_root.is_dir():
        raise DatasetError(f"{raw_root}: the raw VisA folder does not exist. Extract VisA_20220922.tar there.")
    if not split_csv.is_file():
        raise DatasetError(f"{split_csv}: split file not found. It ships in the VisA archive as split_csv/1cls.csv.")
    if out_root.exists():
        raise DatasetError(f"{out_root}: already exists. Delete it to convert again, or open it with "
                           "open_dataset('visa', root=...).")
    with open(split_csv, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _VISA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{split_csv}: missing column(s) {', '.join(missing)}; a VisA split file has the "
                               f"columns {','.join(_VISA_COLUMNS)}.")
        rows = list(reader)
    if not rows:
        raise DatasetError(f"{split_csv}: no rows.")
    out_root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_root.name}.converting-", dir=out_root.parent))
    try:
        written: set[Path] = set()
        for line, row in enumerate(tqdm(rows, desc="VisA to MVTec layout", disable=not progress, unit="img"), 2):
            where = f"{split_csv}, line {line}"
            obj, split, label = row["object"].strip(), row["split"].strip(), row["label"].strip()
            if not obj or "/" in obj or obj.startswith("."):
                raise DatasetError(f"{where}: bad object name {obj!r}.")
            if split not in ("train", "test"):
                raise DatasetError(f"{where}: split must be train or test, got {split!r}.")
            if label not in ("normal", "anomaly"):
                raise DatasetError(f"{where}: label must be normal or anomaly, got {label!r}.")
            if split == "train" and label == "anomaly":
                raise DatasetError(f"{where}: anomalous training image; the 1-class split trains on normal images "
                                   "only. Use split_csv/1cls.csv.")
            image = raw_root / row["image"].strip()
            check_nonempty(image, "image")
            defect = "good" if label == "normal" else "bad"
            dst = tmp / obj / split / defect / image.name
            if dst in written:
                raise DatasetError(f"{where}: a second image named {image.name} for {obj}/{split}/{defect}.")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, dst)
            written.add(dst)
            if label == "anomaly":
                if not row["mask"].strip():
                    raise DatasetError(f"{where}: anomalous image {image} without a mask.")
                mask = read_mask(raw_root / row["mask"].strip(), image_size(image), image)
                mdst = tmp / obj / "ground_truth" / "bad" / f"{image.stem}_mask.png"
                mdst.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask.astype(np.uint8) * 255).save(mdst)
        os.replace(tmp, out_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_root
