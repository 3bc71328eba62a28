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

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from grader.build.generate import write_notebooks  # noqa: E402
from grader.grading.autograde import Grade, autograde  # noqa: E402
from grader.lessons import Lesson, all_lessons  # noqa: E402

LESSONS = all_lessons()
HEAVY = ("lessons", "grading", "serving", "site", "browser")


# Session fixtures worth computing once. ``make test`` runs the suite on two pytest-xdist workers
# (``-n 2``); every test that needs one of these runs on the same worker, in this order of priority.
SHARED_FIXTURES = ("graded", "built_site", "fault_run", "small_class", "served_models")
GROUPS_FILE = "course_xdist_groups"  # workerinput key: where workers write {nodeid: group}


def xdist_group(item: pytest.Item) -> str | None:
    """The group a test must share a worker with: its costliest shared fixture, else its module's.

    A module-scoped fixture would be built again on every worker its tests reach, so a module
    that has one keeps its tests together; every other test runs wherever a worker is free.
    """
    for name in SHARED_FIXTURES:
        if name in item.fixturenames:
            return name
    definitions = getattr(item, "_fixtureinfo", None)
    for defs in (definitions.name2fixturedefs.values() if definitions else ()):
        if defs and defs[-1].scope == "module":
            return item.module.__name__
    return None


def pytest_collection_modifyitems(config, items):
    groups = {}
    for item in items:
        if "graded" in item.fixturenames:
            item.add_marker(pytest.mark.lessons)
        if "built_site" in item.fixturenames:
            item.add_marker(pytest.mark.site)
        groups[item.nodeid] = xdist_group(item) or item.nodeid
    target = getattr(config, "workerinput", {}).get(GROUPS_FILE)
    if target:  # an xdist worker: tell the controller's scheduler (both workers write the same map)
        partial = Path(f"{target}.{config.workerinput['workerid']}")
        partial.write_text(json.dumps(groups), encoding="utf-8")
        partial.replace(target)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Controller side of ``-n``: give each worker the path where it reports the groups."""
    node.workerinput[GROUPS_FILE] = str(groups_file(node.config))


def groups_file(config) -> Path:
    if not hasattr(config, "_course_groups"):
        config._course_groups = Path(tempfile.mkdtemp(prefix="course-xdist-")) / "groups.json"
    return config._course_groups


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Whole groups to one worker, the groups with most tests first, single tests wherever a worker is free.

    pytest-xdist's own ``--dist loadgroup`` cannot do this under pytest 9 (the node id it
    rewrites is no longer the one pytest reports), so the scheduler reads the workers' map.
    """
    from xdist.scheduler import LoadScopeScheduling

    path = groups_file(config)

    class SharedFixtureScheduling(LoadScopeScheduling):
        _groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._groups is None:
                self._groups = json.loads(path.read_text(encoding="utf-8"))
            return self._groups.get(nodeid, nodeid)

    return SharedFixtureScheduling(config, log)


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


@pytest.fixture(scope="session")
def served_models(tmp_path_factory) -> dict:
    """The course models trained with the quick budget and exported once: the serving and demo-page tests read them.

    Holds ``base`` (the export folder: SavedModels, Annoy index, ``models.config``), ``info``
    (what the export reports), the trained Keras models, the feature ``lookup`` and ``movies``.
    Tests must not write under ``base``; one that needs a changed copy copies it.
    """
    from movierec.setup import configure_environment, seed_everything

    configure_environment()  # Keras 2, before anything imports TensorFlow
    seed_everything()
    from movierec.api import train_course_models
    from movierec.serving import features
    from movierec.serving import index as annoy_export

    trained = train_course_models(quick=True)
    base = tmp_path_factory.mktemp("serving") / "models"
    info = annoy_export.export_models(base, **trained)
    train, movies = trained["train"], trained["movies"]
    lookup = features.FeatureLookup(features.user_feature_table(train), features.movie_feature_table(movies))
    return {"base": base, "info": info, "retrieval_model": trained["retrieval_model"],
            "ranking_model": trained["ranking_model"], "lookup": lookup, "movies": movies}
