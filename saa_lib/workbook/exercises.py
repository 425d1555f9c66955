"""Exercises that answer back.

An exercise of the series ends with ``check("03.1", answer, wb=wb)``: the :class:`Verdict` says right or wrong and,
when wrong, gives a hint; it never shows the expected answer. Each notebook's checkers live in
``saa_lib.workbook.checks.nbNN`` and are registered with :func:`exercise`; the answers, as code that runs, live in
``notebooks/answers/NN_answers.py`` (the tests run every answer against its check, and a wrong answer too).

A checker is ``fn(answer, **context) -> bool | str``: True when right; False (the exercise's hint is shown) or a
string (a hint about this particular answer) when not. From-scratch exercises hand in a function; the checker
compares it with the library on random inputs (:func:`agrees_with`).
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id (``"NN.k"``: notebook NN, exercise k), what it asks, its checker and its hint."""

    id: str
    title: str
    check: Callable
    hint: str


#: every registered exercise, by id (filled by the modules of ``saa_lib.workbook.checks``)
REGISTRY: dict[str, Exercise] = {}


def exercise(id: str, title: str, hint: str):
    """Register the decorated checker as exercise ``id``."""
    def register(fn):
        if id in REGISTRY and REGISTRY[id].check is not fn:
            raise ValueError(f"exercise {id} is registered twice")
        REGISTRY[id] = Exercise(id, title, fn, hint)
        return fn
    return register


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`check`: truthy when right; ``message`` says why not (a hint), never the answer."""

    exercise: str
    right: bool
    message: str

    def __bool__(self) -> bool:
        return self.right

    def __str__(self) -> str:
        if self.right:
            return f"✓ {self.exercise}: right." + (f" {self.message}" if self.message else "")
        return f"✗ {self.exercise}: not yet. Hint: {self.message}"

    def _repr_markdown_(self) -> str:
        colour = "#009E73" if self.right else "#D55E00"
        return f'<span style="color:{colour}"><b>{str(self).split(":", 1)[0]}</b>:{str(self).split(":", 1)[1]}</span>'


def load_checks() -> dict[str, Exercise]:
    """Import every checker module of ``saa_lib.workbook.checks`` (once) and return :data:`REGISTRY`."""
    checks = importlib.import_module(f"{__package__}.checks")  # (not `from . import`: that names the package)
    for info in pkgutil.iter_modules(checks.__path__):
        importlib.import_module(f"{checks.__name__}.{info.name}")
    return REGISTRY


def check(exercise_id: str, answer, **context) -> Verdict:
    """Check ``answer`` to exercise ``exercise_id`` (``context``: what the checker needs from the notebook, e.g.
    ``wb=wb``). An answer that makes the checker fail counts as wrong, with what went wrong as the hint."""
    known = load_checks()
    if exercise_id not in known:
        raise ValueError(f"no exercise {exercise_id!r}; the exercises are {', '.join(sorted(known))}")
    ex = known[exercise_id]
    if answer is None or answer is Ellipsis:
        return Verdict(exercise_id, False, "no answer yet: replace the ... with yours")
    try:
        outcome = ex.check(answer, **accepted(ex.check, context))
    except Exception as err:  # noqa: BLE001 - a student's function may fail in any way; that is the hint
        outcome = f"checking your answer raised {type(err).__name__}: {err}. {ex.hint}"
    if outcome is True:
        return Verdict(exercise_id, True, "")
    return Verdict(exercise_id, False, outcome if isinstance(outcome, str) and outcome else ex.hint)


def accepted(fn: Callable, context: dict) -> dict:
    """The entries of ``context`` that ``fn`` takes as keyword arguments (all of them when it takes ``**kwargs``)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(context)
    return {k: v for k, v in context.items() if k in params}


def agrees_with(fn: Callable, reference: Callable, cases, rtol: float = 1e-5, atol: float = 1e-6) -> bool | str:
    """Whether ``fn(*case)`` equals ``reference(*case)`` (arrays: within ``rtol`` / ``atol``) for every argument tuple
    of ``cases``; a hint naming the first case where it does not."""
    for i, case in enumerate(cases):
        got, want = fn(*case), reference(*case)
        if got is None:
            return "your function returns nothing yet: finish it and return the result"
        got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
        if got.shape != want.shape:
            return f"on test input {i + 1} your result has shape {got.shape}, the library's {want.shape}"
        if not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
            worst = float(np.nanmax(np.abs(got - want)))
            return f"on test input {i + 1} your result differs from the library's by up to {worst:.3g}"
    return True


def close_to(value, expected: float, tolerance: float, what: str = "your value") -> bool | str:
    """True when ``value`` is a number within ``tolerance`` of ``expected``; otherwise whether it is too high or too
    low (never by how much)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return f"{what} should be a number, got {type(value).__name__}"
    if not np.isfinite(v):
        return f"{what} is not a finite number"
    if abs(v - expected) <= tolerance:
        return True
    return f"{what} is too {'high' if v > expected else 'low'}"


def close_each(values, expected: dict, tolerance: float) -> bool | str:
    """True when ``values`` (a sequence, in the order of ``expected``'s keys) holds one number within ``tolerance``
    of each expected value; otherwise which one is too high or too low (never by how much)."""
    names = list(expected)
    try:
        got = list(values)
    except TypeError:
        return f"hand in {len(names)} numbers: ({', '.join(names)})"
    if len(got) != len(names):
        return f"hand in {len(names)} numbers: ({', '.join(names)}); you gave {len(got)}"
    for name, value in zip(names, got):
        verdict = close_to(value, expected[name], tolerance, what=f"your {name}")
        if verdict is not True:
            return verdict
    return True


def smallest_on_grid(value, step, holds: Callable, too_low: str, too_high: str, lowest=0) -> bool | str:
    """True when ``value`` is the smallest value on a grid of ``step`` (from ``lowest``) at which ``holds`` is true:
    ``holds(value)`` and not ``holds(value - step)``. Otherwise ``too_low`` or ``too_high`` (never by how much)."""
    if not holds(value):
        return too_low
    if value - step >= lowest and holds(value - step):
        return too_high
    return True


def same_set(answer, expected, what: str = "items") -> bool | str:
    """True when ``answer`` (a string or a collection of strings) names exactly the ``expected`` strings; otherwise
    whether one is missing or one too many (never which)."""
    given = {answer} if isinstance(answer, str) else set(answer)
    expected = set(expected)
    if given == expected:
        return True
    if given - expected:
        return f"at least one of your {what} should not be there"
    return f"at least one {what[:-1] if what.endswith('s') else what} is missing"
