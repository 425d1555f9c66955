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
def context(tmp_path_factory):
    """What the notebooks' exercises see, computed once: the set-up record of the series' default run (tiny models,
    synthetic set, real lite0 saliency features), its data set and first category (00), the known case and its
    configuration (01-07), the real saliency backbone, the runs of Table 1 and of P^S alone (08), and the capstone
    category's defect statistics (09)."""
    import warnings

    from saa_lib import workbook
    from saa_lib.data import open_dataset
    from saa_lib.workbook import known_case as kc
    from saa_lib.workbook.capstone import defect_statistics, unseen_category

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = workbook.setup(models="tiny", saliency_backbone="tf_efficientnet_lite0", n_images=2, behaviour="code")
    backbone = wb.models.saliency  # tf_efficientnet_lite0 with its ImageNet weights
    config = workbook.make_config("saa_plus", "code", backbone.name)
    capstone = open_dataset("folder", unseen_category(root=tmp_path_factory.mktemp("capstone") / "set"))
    return {"wb": wb, "data": wb.data, "category": wb.data.categories[0], "backbone": backbone, "config": config,
            "behaviour": "code",
            "case": kc.known_case(backbone, config, category="washer", defect="hole", seed=0),
            "runs": wb.runs([wb.config("saa"), wb.config("saa_plus")]),
            "real_runs": wb.runs([wb.config("saliency_only")]),
            "stats": defect_statistics(capstone, "gasket", object_area="foreground")}


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


@pytest.mark.parametrize("notebook", [f"{i:02d}" for i in range(1, 10)])
def test_every_notebook_asks_at_least_two_checked_exercises(notebook):
    """Notebooks 01-09 each ask at least two exercises that answer back: a ``check("NN.k", ...)`` call for each,
    registered, with an answer and a wrong answer (run by the test above)."""
    (nb,) = NB_DIR.glob(f"{notebook}_*.py")
    ids = set(re.findall(r"""check\(\s*["'](\d\d\.\d+)["']""", nb.read_text(encoding="utf-8")))
    assert len(ids) >= 2, f"{nb.name} asks {len(ids)} checked exercise(s): {sorted(ids)}"
    assert ids <= set(EXERCISES), f"{nb.name}: not registered: {sorted(ids - set(EXERCISES))}"
    module = answers_of(notebook)
    assert ids <= set(module.ANSWERS) & set(module.WRONG), f"{nb.name}: an exercise without its answer or wrong one"


def test_every_exercise_asked_in_a_notebook_is_checked():
    asked = set()
    for nb in sorted(NB_DIR.glob("0[0-9]_*.py")):
        ids = re.findall(r"""check\(\s*["'](\d\d\.\d+)["']""", nb.read_text(encoding="utf-8"))
        assert all(i.startswith(nb.name[:2]) for i in ids), f"{nb.name} checks another notebook's exercise"
        asked |= set(ids)
    assert asked <= set(EXERCISES), f"checked but not registered: {sorted(asked - set(EXERCISES))}"
    assert set(EXERCISES) <= asked, f"registered but never asked: {sorted(set(EXERCISES) - asked)}"


def test_smallest_on_grid_on_a_hand_built_threshold():
    """``holds`` becomes true from 3 on a grid of 1: 3 is right, 2 too low, 4 too high; from ``lowest`` nothing lower is
    tried (a predicate true everywhere makes ``lowest`` the answer)."""
    from saa_lib.workbook.exercises import smallest_on_grid

    verdicts = {v: smallest_on_grid(v, 1, lambda t: t >= 3, "low", "high") for v in range(6)}
    assert verdicts == {0: "low", 1: "low", 2: "low", 3: True, 4: "high", 5: "high"}
    assert smallest_on_grid(1, 1, lambda t: True, "low", "high", lowest=1) is True
    assert smallest_on_grid(1, 1, lambda t: True, "low", "high", lowest=0) == "high"
