"""The exercises answer back: every exercise of the series has a checker, a worked answer that passes it and a wrong
answer that fails it with a hint (never the answer); every notebook 01-09 asks at least two checked exercises."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from saa_lib.workbook.exercises import Verdict, check, close_to, load_checks

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
ANSWER_FILES = {p.name[:2]: p for p in sorted((NB_DIR / "answers").glob("[0-9][0-9]_answers.py"))}


def answers_of(notebook: str):
    """The answers module of notebook ``notebook`` ("01"), loaded from notebooks/answers/."""
    path = ANSWER_FILES[notebook]
    spec = importlib.util.spec_from_file_location(f"answers_{notebook}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def context():
    """What the notebooks' exercises see, computed once: the set-up record of the series' default run (tiny models,
    synthetic set, real lite0 saliency features), its data set and first category (notebook 00), and the known case
    built for SAA+ in code behaviour with the same saliency backbone (notebooks 01-05)."""
    import warnings

    from saa_lib import workbook
    from saa_lib.workbook import known_case as kc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = workbook.setup(models="tiny", saliency_backbone="tf_efficientnet_lite0", n_images=2, behaviour="code")
    case = kc.known_case(wb.models.saliency, workbook.make_config("saa_plus", "code", "tf_efficientnet_lite0"))
    return {"wb": wb, "data": wb.data, "category": wb.data.categories[0], "case": case}


EXERCISES = sorted(load_checks())


def test_the_verdict_says_right_or_gives_a_hint_and_never_the_answer():
    assert close_to(0.52, 0.5, 0.05) is True and close_to(0.7, 0.5, 0.05) == "your value is too high"
    assert close_to("x", 0.5, 0.05).startswith("your value should be a number")
    unanswered = check("01.1", ...)
    assert isinstance(unanswered, Verdict) and not unanswered and "replace the ..." in unanswered.message
    assert "returns nothing" in check("01.1", lambda masks, scores: None).message
    broken = check("01.1", lambda masks, scores: 1 / 0)
    assert not broken and "ZeroDivisionError" in broken.message
    with pytest.raises(ValueError, match="no exercise"):
        check("99.9", 1)


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_the_answer_passes_and_a_wrong_answer_fails_with_its_hint(exercise_id, context):
    module = answers_of(exercise_id[:2])
    assert exercise_id in module.ANSWERS and exercise_id in module.WRONG, f"{exercise_id}: answer or wrong one missing"
    right = check(exercise_id, module.ANSWERS[exercise_id](**context), **context)
    assert right, str(right)
    wrong = check(exercise_id, module.WRONG[exercise_id](**context), **context)
    assert not wrong and wrong.message, f"{exercise_id}: the wrong answer passed"
    assert str(wrong).startswith(f"✗ {exercise_id}: not yet. Hint: ")


def test_every_exercise_asked_in_a_notebook_is_checked():
    asked = set()
    for nb in sorted(NB_DIR.glob("0[0-9]_*.py")):
        ids = re.findall(r"""check\(\s*["'](\d\d\.\d+)["']""", nb.read_text(encoding="utf-8"))
        assert all(i.startswith(nb.name[:2]) for i in ids), f"{nb.name} checks another notebook's exercise"
        asked |= set(ids)
    assert asked <= set(EXERCISES), f"checked but not registered: {sorted(asked - set(EXERCISES))}"
    assert set(EXERCISES) <= asked, f"registered but never asked: {sorted(set(EXERCISES) - asked)}"
