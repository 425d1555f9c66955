"""P^L, language prompts: class-agnostic prompts, per-category expert prompts and user prompts.

The tables (MVTec AD, VisA, KSDD2, MTD and the workbook's synthetic set) are data in
``saa_lib/resources/saa_tables.yaml``, read by :mod:`saa_lib.tables`. A category the tables do not have needs
``extra`` prompts (unless no detector will read them: ``saliency_only``); its name, or the ``object_word`` given, is
then the object word and the default property settings apply.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from ..tables import find_table, known_categories, load_tables
#: other names of table categories (the MTD release calls its one category "magnetic tile")
ALIASES = {"magnetic_tile": "mtd", "magnetic-tile": "mtd", "mt": "mtd", "kolektorsdd2": "ksdd2"}
DEFAULT_PROPERTY = {"count": 1, "similar": False, "top_k": 5, "max_area_ratio": 0.9, "object_comma": True}


@dataclass(frozen=True)
class PromptEntry:
    """One GroundingDINO forward: ``caption`` (may hold several phrases ``"a. b."``) and the object phrase whose boxes
    are discarded. ``kind`` is ``"agnostic"``, ``"expert"`` or ``"user"``."""

    caption: str
    object_phrase: str
    kind: str


@dataclass(frozen=True)
class CategoryPrompts:
    """Everything the tables say about one category.

    ``object_word``: the inspected object, readable (``printed circuit board``); ``object_caption``: the object
    prompt sent to GroundingDINO. In ``code`` behaviour that is the word the official code reads from the property
    sentence (its 8th word, so it keeps the comma that follows it and any underscore: ``screw,``, sent as
    ``screw,.``); in ``paper`` behaviour it is ``object_word``.
    """

    category: str
    table: str | None
    object_word: str
    entries: tuple[PromptEntry, ...]
    count: int
    similar: bool
    top_k: int
    max_area_ratio: float
    object_caption: str = ""

    def __post_init__(self):
        if not self.object_caption:
            object.__setattr__(self, "object_caption", self.object_word)

    def select(self, use_language: bool) -> tuple[int, ...]:
        """Indices of the entries a variant uses: all of them with P^L, the class-agnostic ones without."""
        return tuple(i for i, e in enumerate(self.entries) if use_language or e.kind == "agnostic")


def prompts_identity(prompts: CategoryPrompts) -> str:
    """A digest naming a category's prompts (category, object caption, every entry): what stage outputs record, so
    that they are never scored with other prompts (another category, behaviour or prompt list)."""
    what = {"category": prompts.category, "object": prompts.object_caption,
            "entries": [asdict(e) for e in prompts.entries]}
    return hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()


class UnknownCategoryError(ValueError):
    """A category the tables don't have, and no prompts were given for it."""


def _clean(text: str) -> str:
    return " ".join(text.strip().split())


def category_prompts(category: str, table: str | None = None, extra: tuple[str, ...] | list[str] = (),
                     behaviour: str = "code", object_word: str | None = None,
                     for_detector: bool = True) -> CategoryPrompts:
    """Prompts and property settings of ``category``.

    ``extra`` adds user defect prompts (one GroundingDINO forward each). ``behaviour="code"`` uses the official code's
    class-agnostic prompts, filled with the dataset's category key as written and filtered by it ("defect on
    metal_nut", filter phrase "metal_nut"; for a category the tables lack, the object word), ``"paper"`` the paper's
    ("anomaly", "defect", filtered by the object word). ``object_word`` overrides the table's object (both forms).
    ``for_detector=False`` (the prompts reach no detector: ``saliency_only``): a category the tables lack needs no
    ``extra``; it gets the class-agnostic prompts and the default property settings.
    """
    tables = load_tables()
    extra = tuple(p for p in (_clean(p) for p in extra) if p)
    key = category if find_table(category, table) else ALIASES.get(category.lower(), category)
    found = find_table(key, table)
    if found is None and not extra and for_detector:
        listing = "\n".join(f"  {t}: {', '.join(c)}" for t, c in known_categories().items())
        raise UnknownCategoryError(
            f"category {category!r} is not in the prompt tables and no prompts were given.\n"
            f"Known categories:\n{listing}\n"
            f"For a new category pass defect prompts, e.g. --prompt 'scratch' --prompt 'black hole' "
            f"(or extra=('scratch', 'black hole') in Python); {category!r} is then used as the object word "
            "(another with --object WORD). The variant saliency_only needs no prompts.")
    prop = dict(DEFAULT_PROPERTY, object=category)
    expert: list[PromptEntry] = []
    if found is not None:
        prop.update(tables["property"][found].get(key, {}))
        expert = [PromptEntry(_clean(c), _clean(o), "expert") for c, o in tables["language"][found][key]]
    written = _clean(object_word or str(prop["object"]))
    obj = written.replace("_", " ")
    templates = tables["templates"]["paper" if behaviour == "paper" else "code"]
    if behaviour == "paper":
        agnostic = [PromptEntry(t.format(object=obj), obj, "agnostic") for t in templates]
        object_caption = obj
    else:  # official: templates and filter phrase take the category key; the object prompt keeps its comma
        name = key if found is not None else _clean(object_word or category)
        agnostic = [PromptEntry(t.format(object=name), name, "agnostic") for t in templates]
        object_caption = written + ("," if prop["object_comma"] else "")
    user = [PromptEntry(p, obj, "user") for p in extra]
    entries = tuple(agnostic + expert + user)
    if not entries:
        raise ValueError(f"empty prompt set for category {category!r}")
    return CategoryPrompts(category=category, table=found, object_word=obj, entries=entries,
                           count=int(prop["count"]), similar=bool(prop["similar"]), top_k=int(prop["top_k"]),
                           max_area_ratio=float(prop["max_area_ratio"]), object_caption=object_caption)


def phrase_names_object(phrase: str, object_phrase: str) -> bool:
    """Whether a box's phrase names the inspected object itself (such boxes are the object, not a defect)."""
    obj_words = set(object_phrase.lower().replace("_", " ").split())
    return bool(obj_words & set(phrase.lower().replace(".", " ").split()))


def language_keep(phrases: list[str], object_phrases: list[str], substring: bool = False) -> np.ndarray:
    """(M,) bool: candidates whose phrase does not name the object. ``substring=False``: no word of the object phrase
    is a word of the phrase; ``True`` (official code): the object phrase is not a substring of the phrase (the
    phrase then being the tokenizer's decoding, :meth:`saa_lib.generator.Detections.official_phrases`)."""
    if substring:
        return np.array([o not in p for p, o in zip(phrases, object_phrases)], dtype=bool)
    return np.array([not phrase_names_object(p, o) for p, o in zip(phrases, object_phrases)], dtype=bool)


class PromptTooLongError(ValueError):
    """A caption longer than the text encoder reads; GroundingDINO would cut it off without a word."""


def check_caption_lengths(captions, count_tokens, limit: int = 256, joined: bool = False) -> None:
    """Raise :class:`PromptTooLongError` naming the first caption of ``captions`` whose ``count_tokens(caption)``
    (tokens as the model sees them, ``[CLS]``/``[SEP]`` included) exceeds ``limit`` (GroundingDINO: 256).
    ``joined``: the captions are the prompts joined into one (``single_caption``)."""
    for caption in captions:
        n = int(count_tokens(caption))
        if n > limit:
            shown = caption if len(caption) <= 80 else caption[:77] + "..."
            what = ("the prompts joined into one caption (--single-caption)" if joined else f"the prompt {shown!r}")
            fix = ("run without --single-caption, or use fewer prompts" if joined
                   else "shorten it, or split it into several prompts (--prompt A --prompt B)")
            raise PromptTooLongError(f"{what} is {n} tokens long; GroundingDINO's text encoder reads at most "
                                     f"{limit} tokens and would silently cut the rest: {fix}.")
