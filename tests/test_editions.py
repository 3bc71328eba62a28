"""Generated files are up to date and really are what nbgrader would hand out."""

from __future__ import annotations

import jupytext
import nbformat

from grader.build.editions import secret_lines, student_notebook
from grader.build.generate import stale_files
from grader.lessons import PERCENT, all_lessons, is_exercise, is_test, nbgrader_meta, read_source
from grader.markers import ALL as MARKERS
from grader.markers import CODE_STUB, STAMP_PREFIX


def test_generated_files_are_up_to_date():
    stale = stale_files()
    assert not stale, f"stale generated files {[str(p) for p in stale]}: run `python -m grader build`"


def test_student_edition_has_stamp_and_no_answers(lesson):
    text = lesson.student.read_text(encoding="utf-8")
    assert text.startswith(STAMP_PREFIX + f"solutions/{lesson.slug}.py")
    for marker in MARKERS:
        assert marker.lstrip("# ") not in text, f"{marker} leaked into {lesson.student}"
    nb = read_source(lesson.student)
    for cell in nb.cells:
        if is_exercise(cell):
            assert CODE_STUB.splitlines()[-1] in cell.source


def test_solution_lines_never_reach_the_student(lesson):
    """No line that exists only in a solution block or hidden test is in the student edition."""
    student = lesson.student.read_text(encoding="utf-8")
    leaked = [line for line in secret_lines(all_lessons()) if line in student]
    assert not leaked, f"answer lines leaked into {lesson.student}: {leaked[:3]}"


def test_jupytext_round_trip_keeps_nbgrader_metadata(lesson):
    for path in (lesson.solution, lesson.student):
        nb = read_source(path)
        again = jupytext.reads(jupytext.writes(nb, fmt=PERCENT), fmt=PERCENT)
        assert [c.source for c in again.cells] == [c.source for c in nb.cells]
        assert [nbgrader_meta(c) for c in again.cells] == [nbgrader_meta(c) for c in nb.cells]
        assert any(is_test(c) for c in again.cells)


def test_student_notebook_matches_nbgrader_release(graded, lesson):
    """Our student edition equals what `nbgrader generate_assignment` released."""
    released = nbformat.read(graded.course_dir / "release" / lesson.slug / f"{lesson.slug}.ipynb", as_version=4)
    ours = student_notebook(lesson)
    assert [c.source for c in ours.cells] == [c.source for c in released.cells]
    assert [nbgrader_meta(c).get("checksum") for c in ours.cells] == [
        nbgrader_meta(c).get("checksum") for c in released.cells
    ]
