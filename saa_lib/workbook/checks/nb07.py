"""Checkers of notebook 07 (the ablation study), on the known case: what the prompts do together on candidates
built so that each one matters (real saliency features), not how much each adds on real data."""
from __future__ import annotations

from ...config import ABLATION_VARIANTS
from ..exercises import exercise
from ..series import PROMPTS
from .cases import base_config, case_f1, known_case_of

#: a variant "finds" the hole when its map's max-F1-pixel on the known case is at least this
FOUND = 0.5


def _variants(answer) -> set[str] | str:
    try:
        chosen = {str(v) for v in ([answer] if isinstance(answer, str) else answer)}
    except TypeError:
        return "answer with a set of variant names, e.g. {'saa_plus-no_language'}"
    unknown = chosen - set(ABLATION_VARIANTS)
    if unknown:
        return f"{sorted(unknown)} is not an ablation variant; the variants are {', '.join(ABLATION_VARIANTS)}"
    return chosen


def _f1s(backbone, behaviour: str, variants) -> dict[str, float]:
    case = known_case_of(backbone, behaviour)
    return {v: case_f1(case, base_config(backbone, behaviour, v)) for v in variants}


@exercise("07.1", "the ablation variants whose verdict on the hole (found: max-F1-pixel >= 0.5) changes from the code "
          "to the paper behaviour",
          "score every variant on the known case in both behaviours. In paper behaviour the class-agnostic prompts "
          "('anomaly', 'defect') hold no object word, γ = 1 and δ = 0: which prompt is then the only one that removes "
          "the whole-object boxes?")
def verdict_changes_with_behaviour(answer, backbone) -> bool | str:
    chosen = _variants(answer)
    if isinstance(chosen, str):
        return chosen
    code, paper = _f1s(backbone, "code", ABLATION_VARIANTS), _f1s(backbone, "paper", ABLATION_VARIANTS)
    changed = {v for v in ABLATION_VARIANTS if (code[v] >= FOUND) != (paper[v] >= FOUND)}
    if chosen == changed:
        return True
    if "saa_plus" in chosen:
        return "the full method finds the hole in both behaviours"
    return "not these: compare each variant's max-F1-pixel in the two behaviours and keep those that cross 0.5"


@exercise("07.2", "the ablation variants that score below the baseline SAA (every prompt off) on the known case "
          "(code behaviour)",
          "add wb.config('saa') (for the known case: make_config('saa', ...)) as a sixth row; a variant that keeps "
          "three of the four prompts can do worse than none when the missing one is what the others rely on")
def variants_below_the_baseline(answer, backbone) -> bool | str:
    chosen = _variants(answer)
    if isinstance(chosen, str):
        return chosen
    f1 = _f1s(backbone, "code", ABLATION_VARIANTS + ("saa",))
    below = {v for v in ABLATION_VARIANTS if f1[v] < f1["saa"]}
    if chosen == below:
        return True
    if not chosen:
        return "some variants do score below SAA here: compare their max-F1-pixel with SAA's"
    return "not these: list exactly the variants whose max-F1-pixel is below SAA's"


@exercise("07.3", "the one prompt that, switched on alone from SAA, gives the highest max-F1-pixel on the known case "
          "(code behaviour)",
          "start from the saa configuration and switch on one prompt at a time: .with_(use_language=True), ...; a "
          "prompt that only re-ranks or only removes cannot bring in the expert prompt that proposes the hole")
def best_single_prompt(answer, backbone) -> bool | str:
    if answer not in PROMPTS:
        return f"answer with one of {', '.join(PROMPTS)}"
    case, base = known_case_of(backbone, "code"), base_config(backbone, "code", "saa")
    f1 = {p: case_f1(case, base.with_(**{f"use_{p}": True})) for p in PROMPTS}
    best = max(f1.values())
    if f1[answer] >= best - 1e-9:
        return True
    return "another prompt alone does better: score all four and compare"
