"""Answers to the exercises of notebook 02 (language prompts P^L), as code that runs.

Each answer is a function of the notebook's context (``case``, the hand-built known case) that returns what the
exercise asks for; ``WRONG`` holds a plausible wrong answer to each, which its check must refuse with a hint
(``tests/test_exercises.py`` runs both).
"""
import numpy as np

from saa_lib.scoring import score


def language_filter(**context):
    """02.1: a box's phrase is the caption tokens whose confidence is above θ_text; the paper drops the box when the
    phrase and the object word share a word. Dots are tokens too, but never words of the object."""
    def keep(tokens, token_conf, text_threshold, object_word):
        object_words = set(object_word.split())
        phrases = [{t for t, c in zip(tokens, row) if c > text_threshold} for row in np.asarray(token_conf)]
        return np.array([not (words & object_words) for words in phrases])
    return keep


def word_or_substring(**context):
    """02.2: the paper compares whole words, so it drops "screw" and "scratch on screw" and keeps "screws" and
    "screwdriver"; the official code tests whether the filter phrase occurs anywhere in the decoded phrase, so it also
    drops "screws" and "screwdriver" (a box phrased "screws" is most likely the object, so that is often right; one
    phrased after a tool or a longer word is not). "thread" survives both. The official filter phrase is the category
    key as written: for MVTec's ``metal_nut`` the decoded phrase reads "metal _ nut", which never holds
    "metal_nut", so there the official filter drops nothing."""
    return {"paper": ["screw", "scratch on screw"], "code": ["screws", "screw", "scratch on screw", "screwdriver"]}


def text_threshold(case, **context):
    """02.3: (code behaviour) the candidate "whole object, phrase 'washer'" (confidence 0.45) was removed by P^L.
    Its tokens are all below 0.5, so at θ_text = 0.5 its phrase is empty: an empty phrase names nothing, and P^L
    keeps it. It is still stopped, by P^P: its box is the whole washer, far above θ_area = 0.5 of it. The map does not
    change. P^L and P^P overlap on purpose, and a too-high θ_text silently turns P^L off. (In paper behaviour the
    class-agnostic prompts hold no object word, P^L removes nothing in the known case and no fate changes: {}.)"""
    before, after = (score(case.stages, case.prompts, case.config.with_(text_threshold=t)).regions
                     for t in (case.config.text_threshold, 0.5))
    return {name: b.removed_by or "kept" for name, a, b in zip(case.names, before, after)
            if a.removed_by != b.removed_by}


ANSWERS = {"02.1": language_filter, "02.2": word_or_substring, "02.3": text_threshold}
WRONG = {
    # every token in the phrase, whatever its confidence
    "02.1": lambda **context: lambda tokens, token_conf, text_threshold, object_word: np.array(
        [not (set(tokens) & set(object_word.split())) for _ in np.asarray(token_conf)]),
    "02.2": lambda **context: {"paper": ["screw", "scratch on screw"], "code": ["screw", "scratch on screw"]},
    "02.3": lambda case, **context: {case.names[1]: "kept"},  # the phrase is empty, but P^P is still there
}
