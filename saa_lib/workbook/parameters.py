"""The notebooks' parameters, checked before any work: :func:`check_parameters` is the first thing the set-up cell of
every notebook does (``workbook.check_parameters(globals())``), and :func:`saa_lib.workbook.report.run_report` (``saa
report``) checks the values it passes before any notebook runs.

A bad value is one :class:`ParameterError`: one line naming the parameter, its value and the fix, shown in a notebook
without a traceback. The checks read no image and load no model: the data set is opened (its folders listed) only to
check ``root`` and ``categories``; torch is imported only to check a CUDA ``device``.
"""
from __future__ import annotations

import os
import re
from numbers import Integral
from pathlib import Path


#: what notebook 09's capstone measures θ_area against (``capstone_object``), and the category it writes when
#: ``capstone_root`` is None (:func:`saa_lib.workbook.capstone.unseen_category`)
CAPSTONE_OBJECT_AREAS = ("image", "foreground")
CAPSTONE_DEFAULT_CATEGORY = "gasket"


class ParameterError(ValueError):
    """A parameter whose value cannot work; the message names it, its value and the fix."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the message, on one line."""
        return [f"{type(self).__name__}: {self}"]


def _whole(value, low: int) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= low


def _path_like(value) -> bool:
    return isinstance(value, (str, os.PathLike))


def _writable_folder(path: Path) -> str | None:
    """Why ``path`` cannot be (made into) a folder this process writes, or None."""
    if path.exists():
        if not path.is_dir():
            return "is a file, not a folder"
        return None if os.access(path, os.W_OK | os.X_OK) else "is a folder you cannot write to"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be created ({parent} is a file)"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"cannot be created ({parent} is not writable)"


# -------------------------------------------------------------------------------------------- one check per parameter
# Each takes (value, every value given) and returns None or (what is wrong, the fix).
def _dataset(value, _):
    from ..data.datasets import DATASET_NAMES

    if value not in DATASET_NAMES:
        return "not a data set", f"use one of {', '.join(DATASET_NAMES)}"
    return None


def _root(value, given):
    from ..data.datasets import default_root

    dataset = given.get("dataset", "synthetic")
    if value is None:
        if dataset == "synthetic" or default_root(dataset).is_dir():
            return None
        return (f"the {dataset} data set is not at its default place {default_root(dataset)}",
                "set root to the data set's folder")
    if not _path_like(value) or not str(value).strip():
        return "not a folder name", "give the data set's folder as a string, or None for the synthetic set"
    path = Path(value).expanduser()
    if dataset == "synthetic" and not path.exists():
        why = _writable_folder(path)  # the synthetic set is generated there
        return None if why is None else (f"the synthetic set {why}", "use a folder you can write to, or None")
    if not path.is_dir():
        return ("no such folder" if not path.exists() else "a file, not a folder"), "give the data set's folder"
    return None


def _categories(value, given):
    if value is None:
        return None
    if isinstance(value, str):
        names = [c.strip() for c in value.split(",") if c.strip()]
    elif isinstance(value, (list, tuple)) and all(isinstance(c, str) for c in value):
        names = [c.strip() for c in value if c.strip()]
    else:
        return "not a list of category names", 'give a list such as ["washer"], or None for every category'
    if not names:
        return "names no category", "give at least one category, or None for every category"
    known = _known_categories(given)
    if isinstance(known, tuple):  # the data set cannot be opened: said about root (checked first)
        return None
    unknown = [c for c in names if c not in known]
    if unknown:
        dataset = given.get("dataset", "synthetic")
        return (f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not in the {dataset} data set",
                f"use some of {', '.join(known)}, or None for every category")
    return None


def _known_categories(given):
    """The categories of the data set ``given`` names (a list), or ``(message,)`` when it cannot be opened."""
    from ..data.datasets import DatasetError, open_dataset
    from ..data.synthetic import SYNTHETIC_CATEGORIES

    dataset, root = given.get("dataset", "synthetic"), given.get("root")
    if dataset == "synthetic" and (root is None or not Path(root).expanduser().exists()):
        return list(SYNTHETIC_CATEGORIES)
    try:
        return open_dataset(dataset, root).categories
    except DatasetError as err:
        return (str(err),)


def _variant(value, _):
    from ..config import VARIANTS

    return None if value in VARIANTS else ("not a variant", f"use one of {', '.join(VARIANTS)}")


def _behaviour(value, _):
    from ..config import BEHAVIOURS

    return None if value in BEHAVIOURS else ("not a behaviour", "use 'code' (the official code) or 'paper'")


def _models(value, _):
    from ..weights.registry import MODEL_KINDS, MODELS_FORM, parse_models

    if not isinstance(value, str) or "=" not in value and value.strip() not in set(MODEL_KINDS) - {"paths"}:
        return "not a model set", f"use {MODELS_FORM}"
    if value.strip() == "auto":
        return None
    try:
        _, paths = parse_models(value, "models")
    except ValueError as err:
        return str(err).split(": ", 1)[1], "or use 'auto'"
    missing = [p for p in (paths or {}).values() if not Path(p).expanduser().exists()]
    if missing:
        return f"{', '.join(missing)}: no such file", "give the checkpoints' paths, or models='auto'"
    return None


def _device(value, _):
    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        return "not a device", "use 'auto', 'cpu', 'cuda' or 'cuda:N'"
    if value in ("auto", "cpu"):
        return None
    from ..utils import device_problem

    why = device_problem(value)
    return None if why is None else (why, "use 'cpu' or 'auto'")


def _n_images(value, _):
    return None if _whole(value, 1) else ("not a whole number >= 1", "give the images per category, e.g. 2")


def _out_dir(value, _):
    if value is None or value == "":
        return None
    if not _path_like(value):
        return "not a folder name", "give a folder as a string, or None (figures shown only)"
    why = _writable_folder(Path(value).expanduser())
    return None if why is None else (why, "use a folder you can write to, or None (figures shown only)")


def _seed(value, _):
    return None if _whole(value, 0) else ("not a whole number >= 0", "use e.g. 0")


def _saliency_backbone(value, _):
    from ..weights.registry import SALIENCY_BACKBONES

    if value == "auto" or value in SALIENCY_BACKBONES:
        return None
    return "not a saliency backbone", f"use 'auto' or one of {', '.join(SALIENCY_BACKBONES)}"


def _capstone_root(value, _):
    if value is None:
        return None
    if not _path_like(value) or not str(value).strip():
        return "not a folder name", "give your folder data set as a string, or None for the synthetic gasket set"
    path = Path(value).expanduser()
    if not path.is_dir():
        return ("no such folder" if not path.exists() else "a file, not a folder"), \
            "give the folder holding your category (README, \"Your own images\"), or None"
    known = _known_categories({"dataset": "folder", "root": value})
    if isinstance(known, tuple):  # not a folder data set: the reader's message says what it expects
        return known[0].rstrip("."), "or None for the synthetic gasket set"
    return None


def _capstone_category(value, given):
    if value is None:
        return None
    root = given.get("capstone_root")
    if root is None:
        known = [CAPSTONE_DEFAULT_CATEGORY]
    else:
        if _capstone_root(root, given) is not None:  # said about capstone_root (checked first)
            return None
        known = _known_categories({"dataset": "folder", "root": root})
    if value not in known:
        where = "the synthetic capstone set" if root is None else f"the folder data set {root}"
        return f"not a category of {where}", f"use one of {', '.join(known)}, or None for the first"
    return None


def _capstone_object(value, _):
    if value in CAPSTONE_OBJECT_AREAS:
        return None
    return "not an object area", "use 'foreground' (one object on a background) or 'image' (a texture)"


#: every parameter a notebook of the series may have, in the order they are checked, and its check; a notebook's
#: own parameter is added here (``tests/test_notebooks_meta.py`` holds every parameters cell to this list)
PARAMETERS = {
    "variant": _variant,
    "behaviour": _behaviour,
    "models": _models,
    "device": _device,
    "n_images": _n_images,
    "seed": _seed,
    "saliency_backbone": _saliency_backbone,
    "out_dir": _out_dir,
    "dataset": _dataset,
    "root": _root,
    "categories": _categories,
    "capstone_root": _capstone_root,  # notebook 09's capstone
    "capstone_category": _capstone_category,
    "capstone_object": _capstone_object,
}


def check_parameters(namespace: dict | None = None, /, *, labels: dict | None = None, **values) -> None:
    """Check every parameter of :data:`PARAMETERS` found in ``namespace`` (a notebook's ``globals()``) or given by
    keyword; raise :class:`ParameterError` for the first bad one: ``<name> = <value>: <what is wrong>; <the fix>``.

    ``labels``: how a parameter is named in the message when it is set otherwise (``{"n_images": "--max-images"}``:
    ``--max-images 0: ...``)."""
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise TypeError(f"check_parameters: no parameter {', '.join(unknown)}; known: {', '.join(PARAMETERS)}")
    given = {k: v for k, v in (namespace or {}).items() if k in PARAMETERS}
    given.update(values)
    labels = labels or {}
    for name, check in PARAMETERS.items():
        if name not in given:
            continue
        problem = check(given[name], given)
        if problem is not None:
            what, fix = problem
            value = given[name]
            said = f"{labels[name]} {value}" if name in labels else f"{name} = {value!r}"
            raise ParameterError(f"{said}: {what}; {fix}")
