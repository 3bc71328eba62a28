"""Shared fixtures: the lessons, and one nbgrader grading run that many tests read.

Executing lessons is the expensive part of the suite, so it happens once per session:
every lesson's reference solution (submitted as a ``.py``) and its untouched student
edition (submitted as an ``.ipynb``) are autograded by nbgrader with ``COURSE_QUICK=1``,
through the same parallel, sandboxed pipeline an instructor uses.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from grader.autograde import Grade, autograde  # noqa: E402
from grader.build import write_notebooks  # noqa: E402
from grader.lessons import Lesson, all_lessons  # noqa: E402

LESSONS = all_lessons()


def pytest_generate_tests(metafunc):
    if "lesson" in metafunc.fixturenames:
        metafunc.parametrize("lesson", LESSONS, ids=[lesson.slug for lesson in LESSONS])


@dataclass
class GradingRun:
    course_dir: Path  # the nbgrader course folder of the release (its release/ holds what nbgrader made)
    results: Path  # <student>/<lesson>/result.json, the autograded notebook and feedback.html
    grades: list[Grade]
    csv: Path
    lessons: list[Lesson]

    def grade(self, student: str, lesson: Lesson) -> Grade:
        return next(g for g in self.grades if g.student == student and g.lesson == lesson.slug)


@pytest.fixture(scope="session")
def graded(tmp_path_factory) -> GradingRun:
    root = tmp_path_factory.mktemp("grading")
    submissions = root / "submissions"
    notebooks = write_notebooks(LESSONS, root / "notebooks")
    for lesson in LESSONS:
        (submissions / "reference").mkdir(parents=True, exist_ok=True)
        shutil.copy(lesson.solution, submissions / "reference" / f"{lesson.slug}.py")
        stub_dir = submissions / "stub" / lesson.slug  # nbgrader's own nested layout
        stub_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(next(p for p in notebooks if p.match(f"student/{lesson.slug}.ipynb")), stub_dir)
    (submissions / "absent").mkdir()  # a student who handed nothing in
    csv = root / "grades.csv"
    grades = autograde(submissions, csv, workspace=root / "workspace", lessons=LESSONS, env={"COURSE_QUICK": "1"},
                       progress=False)
    return GradingRun(root / "workspace" / "release", root / "workspace" / "results", grades, csv, LESSONS)
