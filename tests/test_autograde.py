"""nbgrader grading: the reference earns every point, the stub none, test by test."""

from __future__ import annotations

import csv

import nbformat
import pytest

from grader.grading.autograde import cell_scores, max_points
from grader.lessons import is_test, nbgrader_meta, read_source

pytestmark = pytest.mark.lessons


def cell_error(cell) -> tuple[str, str] | None:
    """The (name, message) of the error a code cell raised, if any."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return output.get("ename", "Error"), output.get("evalue", "")
    return None


def test_reference_passes_every_test_cell(graded, lesson):
    scores = cell_scores(graded.results, "reference", lesson)
    test_ids = {nbgrader_meta(c)["grade_id"] for c in read_source(lesson.solution).cells if is_test(c)}
    assert set(scores) == test_ids
    failed = {gid: s for gid, s in scores.items() if s[0] != s[1]}
    assert not failed, f"the reference fails {failed}"
    grade = graded.grade("reference", lesson)
    assert (grade.status, grade.points) == ("graded", max_points(lesson))


def test_reference_runs_without_any_error(graded, lesson):
    """Not only the test cells: no cell of the reference run may raise."""
    executed = graded.results / "reference" / lesson.slug / f"{lesson.slug}.ipynb"
    nb = nbformat.read(executed, as_version=4)
    errors = [(i, cell_error(c)) for i, c in enumerate(nb.cells) if c.cell_type == "code" and cell_error(c)]
    assert not errors, f"cells that raised in the reference run: {errors}"


def test_stub_fails_every_test_cell(graded, lesson):
    scores = cell_scores(graded.results, "stub", lesson)
    passed = {gid: s for gid, s in scores.items() if s[0] != 0}
    assert scores and not passed, f"tests that the untouched student edition passes (they cannot fail): {passed}"
    assert graded.grade("stub", lesson).points == 0


def test_grades_csv_has_one_row_per_student_and_lesson(graded):
    with open(graded.csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    lessons = graded.lessons
    assert len(rows) == 3 * len(lessons)
    by_key = {(r["student"], r["lesson"]): r for r in rows}
    for lesson in lessons:
        total = f"{max_points(lesson):g}"
        assert by_key[("reference", lesson.slug)] | {} == {
            "student": "reference", "lesson": lesson.slug, "points": total, "max_points": total,
            "status": "graded", "reason": "",
        }
        assert by_key[("stub", lesson.slug)]["points"] == "0"
        assert by_key[("absent", lesson.slug)]["status"] == "missing"
