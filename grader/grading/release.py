"""The released lessons as nbgrader knows them: one course folder per edition, made once, copied per job.

nbgrader's ``GenerateAssignment`` runs (in-process, configured in code) on each lesson's
source notebook in ``WORKSPACE/release/`` and records the locked test cells in its
``gradebook.db``; its ``release/`` folder then holds the student notebook nbgrader made.
Every grading job starts from a copy of that gradebook, so workers never share a database.

Two editions can be released:

* ``instructor`` — the source is the lesson's instructor notebook (from ``solutions/``),
  so the gradebook holds the hidden tests. ``autograde`` and ``course`` grade against it.
* ``student`` — the source is the committed student edition (``lessons/NN_name.py``),
  visible tests only, so ``check`` works on a student's machine without ``solutions/``
  and scores exactly as ``autograde`` would on those tests. nbgrader's ``ClearSolutions``
  is left out: the stubs are already there.

A lesson is released again only when its source changes (``manifest.json`` keeps a hash
of each); a file lock keeps two graders from doing it at once in one workspace.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import nbformat

from grader.lessons import Lesson, read_source, total_points
from grader.markers import CODE_STUB

COURSE_ID = "movierec"


def source_notebook(lesson: Lesson, edition: str) -> nbformat.NotebookNode:
    """What nbgrader's ``source/`` holds for this lesson and edition."""
    from grader.build.editions import finish_notebook, instructor_notebook

    if edition == "instructor":
        return instructor_notebook(lesson)
    return finish_notebook(read_source(lesson.student))


def lesson_hash(lesson: Lesson, edition: str = "instructor") -> str:
    """A hash of the source notebook's content (cell ids are random on every read: left out)."""
    nb = source_notebook(lesson, edition)
    cells = [{k: v for k, v in cell.items() if k != "id"} for cell in nb.cells]
    text = json.dumps({"edition": edition, "cells": cells, "metadata": nb.metadata}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def nbgrader_config(root: Path, edition: str):
    """nbgrader's configuration for a release folder, as a traitlets ``Config`` (no config file)."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import ClearSolutions
    from traitlets.config import Config

    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = COURSE_ID
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    if edition == "student":
        default = GenerateAssignment.class_traits()["preprocessors"].default()
        c.GenerateAssignment.preprocessors = [p for p in default if p is not ClearSolutions]
    return c


def generate_assignment(root: Path, lesson: Lesson, edition: str) -> None:
    """nbgrader's ``generate_assignment`` for one lesson, in this process."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    target = Path(root) / "source" / lesson.slug / f"{lesson.slug}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(source_notebook(lesson, edition), target)
    # nbgrader runs ``alembic`` from its own environment to create the gradebook, venv activated or not.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
    config = nbgrader_config(Path(root), edition)
    app = GenerateAssignment(coursedir=CourseDirectory(config=config), config=config)
    app.force = True
    app.coursedir.assignment_id = lesson.slug
    outcome = capture_log(app)
    if not outcome.get("success"):
        raise RuntimeError(f"nbgrader generate_assignment {lesson.slug} ({edition} edition) failed:\n"
                           f"{outcome.get('error', '')}\n{outcome.get('log', '')}")


class Release:
    """One edition's release folder in a grading workspace."""

    def __init__(self, folder: Path, edition: str = "instructor"):
        self.folder = Path(folder)
        self.edition = edition
        self.gradebook = self.folder / "gradebook.db"
        self.manifest = self.folder / "manifest.json"

    @contextmanager
    def _locked(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def hashes(self) -> dict[str, str]:
        try:
            return json.loads(self.manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def prepare(self, lessons: list[Lesson]) -> dict[str, str]:
        """Release every lesson whose source changed since the last run; ``{slug: hash}``."""
        with self._locked():
            known = self.hashes()
            for lesson in lessons:
                digest = lesson_hash(lesson, self.edition)
                if known.get(lesson.slug) == digest and (self.folder / "release" / lesson.slug).is_dir():
                    continue
                generate_assignment(self.folder, lesson, self.edition)
                known[lesson.slug] = digest
                self.manifest.write_text(json.dumps(known, indent=1), encoding="utf-8")
            return {lesson.slug: known[lesson.slug] for lesson in lessons}

    @cache  # noqa: B019 - one Release per workspace, for the life of the process
    def student_notebook(self, slug: str) -> nbformat.NotebookNode:
        return nbformat.read(self.folder / "release" / slug / f"{slug}.ipynb", as_version=4)

    @cache  # noqa: B019
    def source_notebook(self, slug: str) -> nbformat.NotebookNode:
        return nbformat.read(self.folder / "source" / slug / f"{slug}.ipynb", as_version=4)

    def max_points(self, slug: str) -> float:
        return total_points(self.student_notebook(slug))
