"""`grader check`: a student's immediate feedback, exercise by exercise."""

from __future__ import annotations

import copy
import re

import pytest

from grader.__main__ import main
from grader.build.editions import student_notebook, to_percent
from grader.grading.check import check, explain
from grader.lessons import find_lesson, is_exercise, is_test, nbgrader_meta, read_source

pytestmark = pytest.mark.grading
INTRO = find_lesson("01_intro")


def test_reference_passes_and_exits_zero(capsys):
    assert main(["check", str(INTRO.solution)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and " 0 failed" in out


def test_untouched_student_edition_fails_every_test_with_advice(capsys):
    assert main(["check", str(INTRO.student)]) == 1
    results, _ = check(INTRO.student)
    assert results and not any(r.passed for r in results)
    assert all("NotImplementedError" in r.message for r in results)


def test_one_solved_exercise_passes_alone(tmp_path):
    """Solve only the first exercise: exactly its tests pass, the others still fail."""
    solution = read_source(INTRO.solution)
    nb = copy.deepcopy(student_notebook(INTRO))
    index, cell = next((i, c) for i, c in enumerate(nb.cells) if is_exercise(c))
    solved = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION\n", "", solution.cells[index].source, flags=re.M)
    nb.cells[index].source = solved
    exercise = nbgrader_meta(cell)["grade_id"]
    path = tmp_path / "partly_solved.py"
    path.write_text(to_percent(nb), encoding="utf-8")
    results, _ = check(path)
    for result in results:
        mine = result.grade_id == f"test_{exercise}" or result.grade_id.startswith(f"test_{exercise}_")
        assert result.passed == mine, f"{result.grade_id}: passed={result.passed}, {result.message}"
    assert sum(is_test(c) for c in nb.cells) == len(results)


def test_check_reports_a_missing_file_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check(tmp_path / "nope.py")


def test_explain_messages():
    assert "not done yet" in explain("NotImplementedError", "")
    assert explain("AssertionError", "top_k must return 3 ids\nmore") == "top_k must return 3 ids"
    assert explain(None, "") == ""
    assert "run the cells above" in explain("NameError", "name 'x' is not defined")
