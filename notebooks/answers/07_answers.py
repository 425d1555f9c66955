"""Answers to the exercises of notebook 07 (the ablation study), as code that runs.

Each answer is a function of the notebook's context (``backbone``: the real saliency backbone the known case is
built with) that returns what the exercise asks for; ``WRONG`` holds a plausible wrong answer to each, which its
check must refuse with a hint (``tests/test_exercises.py`` runs both).
"""
from functools import lru_cache

from saa_lib import metrics, workbook
from saa_lib.config import ABLATION_VARIANTS
from saa_lib.scoring import score
from saa_lib.workbook import known_case as kc


@lru_cache(maxsize=4)
def _case(backbone, behaviour):
    return kc.known_case(backbone, workbook.make_config("saa_plus", behaviour, backbone.name))


def _f1(backbone, behaviour, variant, **switches):
    cfg = workbook.make_config(variant, behaviour, backbone.name)
    case = _case(backbone, behaviour)
    res = score(case.stages, case.prompts, cfg.with_(**switches) if switches else cfg)
    return metrics.pixel_max_f1(res.anomaly_map[None], case.mask[None])


def verdict_changes(backbone, **context):
    """07.1: **{'saa_plus-no_property'}.** Which variants fuse the hole does not change, but SAA+ w/o P^P drops from
    max-F1-pixel 1.0 (code) to about 0.02 (paper). The paper's class-agnostic prompts ('anomaly', 'defect') hold no
    object word, so the whole-washer boxes are phrased 'anomaly' and P^L cannot remove them: only P^P can. Without it
    they are fused, and with γ = 1 their rescored confidence (0.45 e^0.34 ≈ 0.63) beats the hole's (0.30 e^0.66 ≈
    0.58), while δ = 0 gives a pixel covered by one region its full score: the map's maximum lies on intact metal. In
    code behaviour the phrase 'washer' lets P^L do that job. A prompt's contribution depends on what the others
    already cover."""
    return {v for v in ABLATION_VARIANTS
            if (_f1(backbone, "code", v) >= 0.5) != (_f1(backbone, "paper", v) >= 0.5)}


def below_baseline(backbone, **context):
    """07.2: **{'saa_plus-no_language', 'saa_plus-no_saliency'}.** On the known case (code behaviour): SAA+, w/o P^P
    and w/o P^C 1.0, SAA 0.024, w/o P^L and w/o P^S 0.008. Removing P^L or P^S alone is worse than removing every
    prompt: without P^S, P^C actively throws the hole away (it is ranked 7th), and without P^L the expert prompt that
    proposes the hole is never asked while P^P removes the only (whole-object) candidates, leaving an empty map. The
    contributions do not add up. (The case was built so that each prompt matters: this says how they interact, not how
    much each adds on real images — that is the data-set ablation with trained weights.)"""
    saa = _f1(backbone, "code", "saa")
    return {v for v in ABLATION_VARIANTS if _f1(backbone, "code", v) < saa}


def best_single(backbone, **context):
    """07.3: **language** (0.26). One prompt on at a time from SAA: P^L alone asks the expert prompts, so the hole is
    proposed, but nine regions are fused; P^S alone 0.024 and P^C alone 0.024 (they re-rank or cut the class-agnostic
    candidates, none of which is the hole); P^P alone 0.008 (it removes the whole-washer boxes, the only candidates).
    One prompt off at a time, P^L and P^S were essential and P^P, P^C cost nothing here: the two rankings disagree.
    P^S is useless alone and essential in combination — which is why the paper ablates by removing one prompt from
    the full method: it measures what each adds given the others."""
    scores = {p: _f1(backbone, "code", "saa", **{f"use_{p}": True}) for p in workbook.PROMPTS}
    return max(scores, key=scores.get)


ANSWERS = {"07.1": verdict_changes, "07.2": below_baseline, "07.3": best_single}
WRONG = {"07.1": lambda **context: {"saa_plus-no_saliency"},
         "07.2": lambda **context: {"saa_plus-no_language", "saa_plus-no_saliency", "saa_plus-no_property"},
         "07.3": lambda **context: "saliency"}
