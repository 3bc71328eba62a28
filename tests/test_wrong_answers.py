"""Every plausible wrong answer in ``tests/wrong_answers/`` fails its exercise's real test cell (issue 15).

One module per lesson (``tests/wrong_answers/lNN_<name>.py``, a ``WRONG_ANSWERS`` list of
``exercise_harness.WrongAnswer``); this test walks that lesson's instructor notebook once,
in quick mode, in one kernel, and runs each wrong answer followed by its test cell. It
fails when a wrong answer passes its test cell, and when any reference cell of the
lesson raises on the way (then the run proves nothing).
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
import wrong_answers
from exercise_harness import run_wrong_answers

from grader.lessons import all_lessons

MODULES = sorted(m.name for m in pkgutil.iter_modules(wrong_answers.__path__) if re.fullmatch(r"l\d\d_\w+", m.name))


def _lesson_of(module_name: str):
    number, name = module_name[1:3], module_name[4:]
    matches = [lesson for lesson in all_lessons() if lesson.slug == f"{number}_{name}"]
    assert matches, f"tests/wrong_answers/{module_name}.py names no lesson (expected solutions/{number}_{name}.py)"
    return matches[0]


@pytest.mark.lessons
@pytest.mark.parametrize("module_name", MODULES)
def test_every_wrong_answer_fails_its_test_cell(module_name, tmp_path):
    answers = importlib.import_module(f"wrong_answers.{module_name}").WRONG_ANSWERS
    assert answers, f"{module_name}: WRONG_ANSWERS is empty"
    run = run_wrong_answers(_lesson_of(module_name), answers, tmp_path)
    problems = "\n".join(run.reference_errors)
    assert not run.reference_errors, f"reference cells raised, so the run proves nothing:\n{problems}"
    assert len(run.outcomes) == len(answers), "some wrong answers were never tried (is their test cell skipped?)"
    escaped = [f"{o.answer.cell} / {o.answer.test}: {o.answer.label}" for o in run.escaped()]
    assert not escaped, "wrong answers that pass their test cell:\n" + "\n".join(escaped)
