"""The grading engine's front door: a list of submissions in, stored results out.

Every caller grades through :func:`grade`: ``check`` (one file, sandbox off, the student
edition's release), ``course`` (the reference and the stub of each lesson, sandbox off,
the instructor release) and ``autograde`` / ``autograde-one`` (a class, sandboxed). It
releases what changed, skips every submission whose stored result has the same content key
(:func:`grader.grading.results.content_key`), fetches the course data once, and hands the
rest to the worker pool (:func:`grader.grading.pool.run_jobs`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader.grading.config import GradingConfig
from grader.grading.job import Job, release_folder
from grader.grading.release import Release
from grader.grading.results import Result, content_key
from grader.lessons import Lesson
from movierec.setup import usable_cores


@dataclass(frozen=True)
class Entry:
    """One file to grade as one student's lesson."""

    student: str
    lesson: Lesson
    path: Path
    note: str = ""
    env: dict[str, str] = field(default_factory=dict, hash=False)  # kernel environment for this file only


@dataclass
class Run:
    """What :func:`grade` did: every entry's result, and how many were reused from the store."""

    results: list[Result]
    graded: int
    reused: int
    started: float  # results graded before this were reused from the store


def default_jobs() -> int:
    """One grading worker per usable core."""
    return usable_cores()


def sandbox_mode(config: GradingConfig) -> tuple[str, str]:
    """``("isolated", "")`` or ``("limits-only", why)``: what every result of this run will say."""
    from grader.sandbox.isolation import isolation_problem

    if not config.sandbox:
        return "limits-only", "--no-sandbox was given"
    problem = isolation_problem()
    return ("limits-only", problem) if problem else ("isolated", "")


def warn_if_not_isolated(config: GradingConfig) -> None:
    """Say loudly when student code will run without the sandbox, and what that means."""
    mode, why = sandbox_mode(config)
    if mode != "isolated":
        print(f"WARNING: kernels run with resource limits only, not isolated: {why}. Student code can then read "
              "the hidden tests and write any file this user can; grade untrusted work only as root on Linux "
              "(see README, 'The sandbox').", file=sys.stderr)


def lesson_library_hash(lesson: Lesson) -> str:
    """The library modules the lesson's own code imports (its reference source; the stub imports the same)."""
    from grader.grading.results import library_hash
    from grader.lessons import read_source

    source = lesson.solution if lesson.solution.exists() else lesson.student
    return library_hash([c.source for c in read_source(source).cells if c.cell_type == "code"])


def job_for(entry: Entry, hashes: dict[str, str], config: GradingConfig, edition: str,
            library: str | None = None) -> Job:
    env = {**config.env, **entry.env}
    key = content_key(entry.path, hashes[entry.lesson.slug], {**config.key(), "env": env, "edition": edition},
                      library)
    return Job(entry.student, entry.lesson.slug, str(Path(entry.path).resolve()), key, entry.note, edition,
               dict(entry.env))


def grade(
    entries: list[Entry],
    *,
    workspace: Path,
    results: Path,
    config: GradingConfig,
    edition: str = "instructor",
    jobs: int | None = None,
    force: bool = False,
    hide: list[str] | None = None,
    progress: bool = True,
    on_plan=None,
) -> Run:
    """Grade ``entries`` (skipping those already graded with the same key) and return every result."""
    from grader.grading.course_data import ensure_datasets
    from grader.grading.pool import run_jobs

    started = time.time()
    workspace, results = Path(workspace).resolve(), Path(results).resolve()
    release = Release(release_folder(workspace, edition), edition)
    lessons = list({entry.lesson.slug: entry.lesson for entry in entries}.values())
    hashes = release.prepare(lessons)
    todo, reused = [], 0
    libraries = {lesson.slug: lesson_library_hash(lesson) for lesson in lessons}
    for entry in entries:
        job = job_for(entry, hashes, config, edition, libraries[entry.lesson.slug])
        previous = Result.read(results, job.student, job.lesson)
        if not force and previous is not None and previous.reusable(job.key):
            reused += 1
            continue
        todo.append(job)
    workers = max(1, min(jobs or default_jobs(), len(todo) or 1))
    if on_plan is not None:
        on_plan(len(todo), reused, workers)
    if todo:
        ensure_datasets()  # isolated kernels are offline: the grader fetches what they will load
    totals = {lesson.slug: release.max_points(lesson.slug) for lesson in lessons}
    run_jobs(todo, workers, workspace, results, config, list(hide or []), progress=progress, max_points=totals)
    found = [Result.read(results, entry.student, entry.lesson.slug) for entry in entries]
    return Run([r for r in found if r is not None], len(todo), reused, started)
