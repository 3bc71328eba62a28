"""The authoring rules of site/authoring.md, checked on every lesson source."""

from __future__ import annotations

import re

from grader.lessons import is_exercise, is_test, nbgrader_meta, read_source, tags
from grader.markers import BEGIN_HIDDEN, BEGIN_SOLUTION, END_SOLUTION


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_setup_cell_comes_first(lesson):
    first = code_cells(read_source(lesson.solution))[0]
    assert "setup" in tags(first), "the first code cell must be tagged setup"
    assert "setup_lesson(" in first.source, "the setup cell must call movierec.setup.setup_lesson"
    assert "import tensorflow" not in first.source.split("setup_lesson(")[0], "TensorFlow before setup_lesson"


def test_every_exercise_has_tests_and_every_test_an_exercise(lesson):
    nb = read_source(lesson.solution)
    exercises = [nbgrader_meta(c)["grade_id"] for c in nb.cells if is_exercise(c)]
    tests = [nbgrader_meta(c)["grade_id"] for c in nb.cells if is_test(c)]
    assert exercises, "a lesson has at least one exercise"
    assert len(set(exercises + tests)) == len(exercises + tests), "grade ids must be unique"
    for exercise in exercises:
        pattern = re.compile(rf"^test_{re.escape(exercise)}(_\d+)?$")
        assert any(pattern.match(t) for t in tests), f"exercise {exercise} has no test_{exercise} cell"
    for test in tests:
        assert any(re.match(rf"^test_{re.escape(e)}(_\d+)?$", test) for e in exercises), f"{test} names no exercise"


def test_cells_are_well_formed(lesson):
    for index, cell in enumerate(read_source(lesson.solution).cells):
        meta = nbgrader_meta(cell)
        where = f"{lesson.solution.name} cell {index}"
        if is_exercise(cell):
            assert BEGIN_SOLUTION in cell.source and END_SOLUTION in cell.source, f"{where}: no solution markers"
            assert not meta.get("locked") and not meta.get("grade"), f"{where}: exercise cells are unlocked"
            assert "export" not in tags(cell), f"{where}: exercises must not be exported"
        else:
            assert BEGIN_SOLUTION not in cell.source, f"{where}: solution markers outside an exercise cell"
        if is_test(cell):
            assert meta.get("locked") and float(meta.get("points", 0)) > 0, f"{where}: tests are locked, worth points"
            assert "assert" in cell.source, f"{where}: a test cell must assert something"
        else:
            assert BEGIN_HIDDEN not in cell.source, f"{where}: hidden tests outside a test cell"


def test_lesson_cites_its_sources(lesson):
    markdown = "\n".join(c.source for c in read_source(lesson.solution).cells if c.cell_type == "markdown")
    assert re.search(r"^#+ References", markdown, re.M), "a lesson ends with a References section"
    assert "http" in markdown.split("References")[-1], "the References section links its sources"


# The serving lessons' size limits (issue "Serving as two lessons a student can finish"): at
# most about 1,000 lines of source and 3,500 words of prose (markdown cells, references
# included), and a stated time of at most two hours. Plumbing a student need not write lives
# in hand-written modules (movierec/serving/launch.py, transport.py, ...), not in the lesson.
# The other lessons are not held to these limits (yet): several are longer today.
SIZE_LIMITED = {"07_tf_serving", "08_service"}
MAX_LINES = 1_000
MAX_PROSE_WORDS = 3_500
MAX_MINUTES = 120


def test_serving_lessons_stay_within_their_size_limits(lesson):
    if lesson.slug not in SIZE_LIMITED:
        return
    from grader.site.syllabus import SYLLABUS

    lines = lesson.solution.read_text(encoding="utf-8").splitlines()
    markdown = [c.source for c in read_source(lesson.solution).cells if c.cell_type == "markdown"]
    words = sum(len(source.split()) for source in markdown)
    assert len(lines) <= MAX_LINES, (
        f"{lesson.solution.name} has {len(lines)} lines (limit {MAX_LINES}): move plumbing into a hand-written "
        "module shown by an import and a paragraph, or tighten the prose")
    assert words <= MAX_PROSE_WORDS, f"{lesson.solution.name} has {words} words of prose (limit {MAX_PROSE_WORDS})"
    planned = next(p for p in SYLLABUS if p.slug == lesson.slug)
    assert planned.minutes <= MAX_MINUTES, f"{lesson.slug}: the syllabus states {planned.minutes} min (limit 120)"
    stated = re.search(r"\*\*Time:\*\* about (\d+) hours?", "\n".join(markdown))
    assert stated and int(stated.group(1)) * 60 <= MAX_MINUTES, "the lesson states its time, at most 2 hours"
