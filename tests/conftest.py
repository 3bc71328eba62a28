"""Shared fixtures (the lessons, one grading run, one site build) and the resource markers.

Markers say what a test needs, so CI can run the groups as parallel jobs and
``make test-fast`` can leave out everything heavy: ``lessons`` (reads the shared grading
run of every lesson), ``grading`` (grades crafted submissions in kernels), ``serving``
(trains, exports and serves models), ``site`` (the strict mkdocs build), ``browser``
(Chromium over the built site). A test that uses the ``graded`` fixture is marked
``lessons`` and one that uses ``built_site`` is marked ``site`` automatically.

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

from grader.build.generate import write_notebooks  # noqa: E402
from grader.grading.autograde import Grade, autograde  # noqa: E402
from grader.lessons import Lesson, all_lessons  # noqa: E402

LESSONS = all_lessons()
HEAVY = ("lessons", "grading", "serving", "site", "browser")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "graded" in item.fixturenames:
            item.add_marker(pytest.mark.lessons)
        if "built_site" in item.fixturenames:
            item.add_marker(pytest.mark.site)


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


@pytest.fixture(scope="session")
def assets_fetched() -> bool:
    """Fetch MathJax and mermaid once (`make assets`) so the build serves its own copies."""
    from grader.site import assets as site_assets

    if site_assets.missing():
        try:
            site_assets.fetch()
        except RuntimeError:
            return False
    return True


@pytest.fixture(scope="session")
def built_site(tmp_path_factory, assets_fetched) -> Path:
    """The student distribution as ``make dist`` builds it — one strict site build per test run.

    The site is its root; ``wheels/`` holds the course library. Shared by the site and browser tests.
    """
    from grader.site.dist import build_dist

    return build_dist(tmp_path_factory.mktemp("dist") / "dist", quiet=True)
