"""``python -m grader autograde SUBMISSIONS --out grades.csv``: grade a whole class with nbgrader.

nbgrader does the grading; this module drives it the way an instructor works:

1. **Collect** (:mod:`grader.collect`): map the files to (student, lesson) pairs.
2. **Release** (:mod:`grader.release`): ``nbgrader generate_assignment`` once per lesson
   into ``WORKSPACE/release/``, whose gradebook every job copies.
3. **Grade** (:mod:`grader.workers`): every pair is a job, run on a pool of worker
   processes (one per core by default), each with its own nbgrader course folder and
   gradebook, each kernel in the sandbox of :mod:`grader.sandbox`. A progress bar shows
   the ETA. A job whose result is already in ``RESULTS`` for the same submission bytes,
   lesson source and grading settings is skipped (``--force`` grades it again).
4. **Merge** (:mod:`grader.results`): ``grades.csv``, ``feedback/<student>/<lesson>.html``
   and a summary line (graded, failed, timed out, tampered, missing).

``python -m grader autograde-one FILE --student S --lesson L`` is step 2 + 3 for one pair,
self-contained, for fanning a large class out over a scheduler; ``python -m grader merge``
is step 4 over the result folders they produce.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from grader.collect import Collection, Submission, collect
from grader.course_data import ensure_datasets
from grader.lessons import BUILD, ROOT, Lesson, all_lessons, read_source, total_points
from grader.release import nbgrader, release, write_course
from grader.results import CSV_FIELDS, Grade, merge, summary, write_csv
from grader.workers import GradingConfig, Job, job_key, read_result, result_dir, run_jobs

__all__ = [
    "CSV_FIELDS", "DEFAULT_WORKSPACE", "Grade", "GradingConfig", "Submission", "autograde", "autograde_one",
    "cell_scores", "grade_one", "max_points", "release", "write_course", "write_csv",
]

DEFAULT_WORKSPACE = BUILD / "autograde"
SECRET_PATHS = ("solutions", "build", ".git")  # in the repository: never visible to a kernel


def hidden_paths(*paths: Path | None) -> list[str]:
    """Everything a grading kernel must not see: instructor sources, gradebooks, results, others' work."""
    hide = [ROOT / name for name in SECRET_PATHS] + [Path(p) for p in paths if p is not None]
    unique = dict.fromkeys(str(p.resolve()) for p in hide)
    return [p for p in unique if p not in ("/", str(ROOT))]


def sandbox_mode(config: GradingConfig) -> tuple[str, str]:
    """``("isolated", "")`` or ``("limits-only", why)``: what every result of this run will say."""
    from grader.sandbox import isolation_problem

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


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def autograde(
    submissions: Path,
    out: Path,
    workspace: Path = DEFAULT_WORKSPACE,
    lessons: list[Lesson] | None = None,
    config: GradingConfig | None = None,
    *,
    jobs: int | None = None,
    force: bool = False,
    roster: Path | None = None,
    results: Path | None = None,
    feedback: Path | None = None,
    env: dict[str, str] | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> list[Grade]:
    """Grade every (student, lesson) pair found under ``submissions``; write ``out``; return the rows."""
    from grader.release import Release

    lessons = lessons or all_lessons()
    config = config or GradingConfig()
    if env:
        config.env = {**config.env, **env}
    workspace = Path(workspace).resolve()
    results = Path(results or workspace / "results").resolve()
    out = Path(out).resolve()
    feedback = Path(feedback).resolve() if feedback else out.parent / "feedback"
    collection: Collection = collect(submissions, lessons, roster)
    release_ = Release(workspace / "release")
    hashes = release_.prepare(lessons)
    totals = {lesson.slug: release_.max_points(lesson.slug) for lesson in lessons}
    todo, skipped = [], 0
    for sub in collection.submissions:
        job = Job(sub.student, sub.lesson.slug, str(sub.path.resolve()),
                  job_key(sub.path, hashes[sub.lesson.slug], config), sub.note())
        previous = read_result(results, job.student, job.lesson)
        if not force and previous and previous.get("key") == job.key and previous.get("status") != "error":
            skipped += 1
            continue
        todo.append(job)
    graded_pairs = {(s.student, s.lesson.slug) for s in collection.submissions}
    for student in collection.students:  # a stale result must not stand in for a file now gone
        for lesson in lessons:
            if (student, lesson.slug) not in graded_pairs and result_dir(results, student, lesson.slug).exists():
                shutil.rmtree(result_dir(results, student, lesson.slug))
    workers = max(1, min(jobs or default_jobs(), len(todo) or 1))
    if verbose:
        print(f"{len(collection.students)} students, {len(lessons)} lessons: {len(todo)} to grade on "
              f"{workers} worker{'s' * (workers > 1)}, {skipped} already graded", file=sys.stderr)
        warn_if_not_isolated(config)
        for note in collection.notes:
            print(f"note: {note}", file=sys.stderr)
        for path in collection.unmatched:
            print(f"ignored (names no lesson): {path}", file=sys.stderr)
    if todo:
        ensure_datasets()  # isolated kernels are offline: the grader fetches what they will load
    hide = hidden_paths(workspace, results, Path(submissions), out, feedback, roster)
    run_jobs(todo, workers, workspace, results, config, hide, progress=progress, max_points=totals)
    grades = merge([results], out, students=collection.students, lessons=totals, feedback=feedback)
    keep = {(s.student, s.lesson.slug) for s in collection.submissions}
    if verbose:
        for grade in grades:
            if grade.status not in ("graded", "missing") and (grade.student, grade.lesson) in keep:
                print(f"  {grade.student} {grade.lesson}: {grade.status} — {grade.reason[:160]}", file=sys.stderr)
        print(summary(grades), file=sys.stderr)
    return grades


def autograde_one(
    path: Path,
    student: str,
    lesson: Lesson,
    workspace: Path = DEFAULT_WORKSPACE,
    results: Path | None = None,
    config: GradingConfig | None = None,
    force: bool = False,
) -> dict:
    """Grade one file as (student, lesson): the self-contained unit for a scheduler's job."""
    from grader.collect import normalise_id
    from grader.release import Release

    config = config or GradingConfig()
    workspace = Path(workspace).resolve()
    results = Path(results or workspace / "results").resolve()
    path = Path(path).resolve()
    student = normalise_id(student)
    release_ = Release(workspace / "release")
    hashes = release_.prepare([lesson])
    job = Job(student, lesson.slug, str(path), job_key(path, hashes[lesson.slug], config))
    previous = read_result(results, student, lesson.slug)
    if not force and previous and previous.get("key") == job.key and previous.get("status") != "error":
        return previous
    warn_if_not_isolated(config)
    ensure_datasets()
    hide = hidden_paths(workspace, results, path.parent)
    run_jobs([job], 1, workspace, results, config, hide, progress=False,
             max_points={lesson.slug: release_.max_points(lesson.slug)})
    return read_result(results, student, lesson.slug) or {}


def max_points(lesson: Lesson) -> float:
    return total_points(read_source(lesson.solution))


def cell_scores(results: Path, student: str, lesson: Lesson) -> dict[str, tuple[float, float]]:
    """Score and maximum of every graded test cell of one graded submission, by grade id."""
    result = read_result(Path(results), student, lesson.slug) or {}
    return {gid: (float(s), float(m)) for gid, (s, m) in result.get("cells", {}).items()}


# ------------------------------------------------------------------ ``make course``: trusted reference runs


def submit(course_dir: Path, submission: Submission) -> None:
    """Copy one submission into nbgrader's ``submitted/`` folder as a notebook."""
    import nbformat

    folder = course_dir / "submitted" / submission.student / submission.lesson.slug
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    nbformat.write(read_source(submission.path), folder / f"{submission.lesson.slug}.ipynb")


def last_error(process) -> str:
    lines = [line for line in (process.stderr + process.stdout).splitlines() if "ERROR" in line or "Error" in line]
    return (lines[-1] if lines else f"nbgrader exited with status {process.returncode}")[:300]


def read_grade(course_dir: Path, student: str, lesson: Lesson) -> tuple[float, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(lesson.slug, lesson.slug, student)
        return float(notebook.score), float(notebook.max_score)


def grade_one(course_dir: Path, submission: Submission, env: dict[str, str] | None = None) -> Grade:
    """Grade the course's own reference/stub in one shared course folder, without a sandbox.

    ``make course`` uses this for the instructor's trusted files (the reference run records
    metrics into ``build/``); student submissions go through :func:`autograde`.
    """
    slug = submission.lesson.slug
    try:
        submit(course_dir, submission)
    except Exception as exc:  # unreadable file: a row, not a crash
        return Grade(submission.student, slug, 0, max_points(submission.lesson), "invalid", str(exc)[:300])
    process = nbgrader(course_dir, "autograde", slug, "--student", submission.student, "--force", env=env)
    if process.returncode != 0:
        return Grade(submission.student, slug, 0, max_points(submission.lesson), "error", last_error(process))
    points, total = read_grade(course_dir, submission.student, submission.lesson)
    return Grade(submission.student, slug, points, total, "graded")
