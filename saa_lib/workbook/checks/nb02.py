"""Checkers of notebook 02 (language prompts P^L)."""
from __future__ import annotations

import numpy as np

from ...prompts.language import language_keep
from ...records import Detections
from ..exercises import agrees_with, exercise, same_set

#: the caption of the from-scratch cases: defect words, dots and the object word (and a longer word holding it)
CAPTION_TOKENS = ["scratch", ".", "hole", ".", "washer", ".", "washers", "rim", ".", "stain"]
#: the phrases of exercise 02.2 and the object they are checked against
PHRASES = ("screws", "screw", "scratch on screw", "screwdriver", "thread")
OBJECT = "screw"
#: what a student may call the steps that remove a candidate (the fate table's names are the values)
FATES = {"P^L": "language", "P^P": "property", "P^C": "confidence", "θ_box": "threshold", "box threshold": "threshold",
         "None": "kept"}


def _language_cases(n_cases: int = 4, boxes: int = 12):
    rng = np.random.default_rng(2)
    cases = []
    for i in range(n_cases):
        conf = rng.random((boxes, len(CAPTION_TOKENS))).astype(np.float32)
        cases.append((list(CAPTION_TOKENS), conf, float(rng.choice([0.1, 0.3, 0.5, 0.8])),
                      "washer" if i % 2 == 0 else "washer rim"))
    return cases


def library_language_filter(tokens, token_conf, text_threshold, object_word):
    """The library's P^L on one caption's boxes: their phrases (:meth:`saa_lib.records.Detections.phrases`), then the
    paper's word rule (:func:`saa_lib.prompts.language.language_keep`). (M,) bool."""
    m = len(token_conf)
    det = Detections(boxes=np.zeros((m, 4), np.float32), scores=np.ones(m, np.float32), entry=np.zeros(m, np.int32),
                     token_conf=np.asarray(token_conf, np.float32), captions=[" ".join(tokens)], tokens=[list(tokens)],
                     image_hw=(8, 8))
    return language_keep(det.phrases(text_threshold), [object_word] * m)


@exercise("02.1", "P^L from scratch: a box's phrase (its tokens above θ_text) and the paper's rule (drop the box when "
          "its phrase shares a word with the object word)",
          "a box's phrase is the caption tokens whose confidence is above θ_text (strictly); keep the box when no word "
          "of the object word (split on spaces) is among them")
def language_from_scratch(keep) -> bool | str:
    return agrees_with(lambda *case: np.asarray(keep(*case), bool), library_language_filter, _language_cases())


@exercise("02.2", "word or substring: the phrases the paper's rule and the official code's rule drop for the object "
          f"{OBJECT!r}",
          "the paper drops a phrase that holds the object word as a whole word; the official code drops a phrase that "
          "holds it anywhere, even inside a longer word")
def word_or_substring(answer) -> bool | str:
    if not isinstance(answer, dict) or set(answer) != {"paper", "code"}:
        return 'hand in a dict {"paper": [the phrases it drops], "code": [the phrases it drops]}'
    for rule, substring in (("paper", False), ("code", True)):
        kept = language_keep(list(PHRASES), [OBJECT] * len(PHRASES), substring)
        dropped = [p for p, k in zip(PHRASES, kept) if not k]
        verdict = same_set(answer[rule], dropped, "phrases")
        if verdict is not True:
            return f"{rule}: {verdict}"
    return True


@exercise("02.3", "text threshold: on the known case, which candidate changes its fate when θ_text rises to 0.5, and "
          "what removes it then",
          "θ_text decides which tokens make a box's phrase: a token whose confidence is not above 0.5 drops out of it. "
          "Find the candidate P^L removed whose tokens are all below 0.5, then follow it through the next prompts")
def text_threshold(answer, case) -> bool | str:
    from ...scoring import score
    from ..known_case import candidate_regions

    if not isinstance(answer, dict):
        return 'hand in a dict {candidate name: what removes it now} (an empty dict when no fate changes)'
    before, after = (candidate_regions(case, score(case.stages, case.prompts, case.config.with_(text_threshold=t)))
                     for t in (case.config.text_threshold, 0.5))
    changed = {case.names[i]: after[i].removed_by or "kept" for i in before
               if before[i].removed_by != after[i].removed_by}
    verdict = same_set(answer, changed, "candidates")
    if verdict is not True:
        return verdict
    wrong = [name for name, fate in changed.items() if FATES.get(str(answer[name]).strip(), answer[name]) != fate]
    return True if not wrong else f"right candidate, but something else removes it now ({', '.join(wrong)})"
