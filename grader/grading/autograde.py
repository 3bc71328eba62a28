"""``python -m grader autograde SUBMISSIONS --out grades.csv``: grade a whole class with nbgrader.

1. **Collect** (:mod:`grader.grading.collect`): map the files to (student, lesson) pairs.
2. **Grade** (:func:`grader.grading.engine.grade`): release what changed, then every pair is a
   job on the worker pool, each kernel in the sandbox; a pair already graded for the same
   file, lesson, library and settings is skipped (``--force`` grades it again).
3. **Merge** (:mod:`grader.grading.results`): ``grades.csv``, ``feedback/<student>/<lesson>.html``
   and a summary line (graded, failed, timed out, tampered, missing).

``python -m grader autograde-one FILE --student S --lesson L`` is step 2 for one pair,
self-contained, for fanning a large class out over a scheduler; ``python -m grader merge``
is step 3 over the result folders they produce.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grader.grading.collect import Collection, collect
from grader.grading.config import GradingConfig
from grader.grading.engine import Entry, grade, warn_if_not_isolated
from grader.grading.results import Grade, Result, merge, summary
from grader.lessons import BUILD, ROOT, Lesson, all_lessons, read_source, total_points

DEFAULT_WORKSPACE = BUILD / "autograde"
SECRET_PATHS = ("solutions", "build", ".git")  # in the repository: never visible to a kernel


def hidden_paths(*paths: Path | None) -> list[str]:
    """Everything a grading kernel must not see: instructor sources, gradebooks, results, others' work."""
    hide = [ROOT / name for name in SECRET_PATHS] + [Path(p) for p in paths if p is not None]
    unique = dict.fromkeys(str(p.resolve()) for p in hide)
    return [p for p in unique if p not in ("/", str(ROOT))]


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
    layout: str = "auto",
) -> list[Grade]:
    """Grade every (student, lesson) pair found under ``submissions``; write ``out``; return the rows.

    Raises :class:`grader.grading.collect.CollectError` when nothing can be graded (a wrong
    folder or ``layout`` must not pass for a class that submitted nothing).
    """
    lessons = lessons or all_lessons()
    config = config or GradingConfig()
    if env:
        config = config.with_env(**env)
    workspace = Path(workspace).resolve()
    results = Path(results or workspace / "results").resolve()
    out = Path(out).resolve()
    feedback = Path(feedback).resolve() if feedback else out.parent / "feedback"
    collection: Collection = collect(submissions, lessons, roster, layout=layout, max_file_size=config.max_file_size)
    collection.require_submissions()
    graded_pairs = {(s.student, s.lesson.slug) for s in collection.submissions}
    for student in collection.students:  # a stale result must not stand in for a file now gone
        for lesson in lessons:
            folder = Result.folder_of(results, student, lesson.slug)
            if (student, lesson.slug) not in graded_pairs and folder.exists():
                shutil.rmtree(folder)

    def plan(todo: int, reused: int, workers: int) -> None:
        if verbose:
            print(f"{len(collection.students)} students, {len(lessons)} lessons: {todo} to grade on "
                  f"{workers} worker{'s' * (workers > 1)}, {reused} already graded", file=sys.stderr)
            warn_if_not_isolated(config)
            for note in collection.notes:
                print(f"note: {note}", file=sys.stderr)
            for path in collection.unmatched:
                print(f"ignored (names no lesson): {path}", file=sys.stderr)
            for item in collection.rejected:
                print(f"rejected (not read): {item.reason}", file=sys.stderr)

    entries = [Entry(s.student, s.lesson, s.path, s.note()) for s in collection.submissions]
    hide = hidden_paths(workspace, results, Path(submissions), out, feedback, roster)
    grade(entries, workspace=workspace, results=results, config=config, jobs=jobs, force=force, hide=hide,
                progress=progress, on_plan=plan)
    totals = {lesson.slug: max_points(lesson) for lesson in lessons}
    for (student, slug), reason in collection.invalid.items():  # rejected unread: a row, never a job
        Result(student, slug, max_points=totals[slug], status="invalid", reason=reason[:1000],
               sandbox="not run").write(results)
    grades = merge([results], out, students=collection.students, lessons=totals, feedback=feedback)
    if verbose:
        for row in grades:
            if row.status not in ("graded", "missing") and (row.student, row.lesson) in graded_pairs | set(
                    collection.invalid):
                print(f"  {row.student} {row.lesson}: {row.status} — {row.reason[:160]}", file=sys.stderr)
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
) -> Result:
    """Grade one file as (student, lesson): the self-contained unit for a scheduler's job.

    The file passes the same collection rule as in ``autograde`` (:func:`grader.grading.collect.check_file`):
    a link, a special file or a file over ``config.max_file_size`` is never opened — its
    result is an ``invalid`` row saying why (a scheduler's job must not become the way
    around the checks of a class run).
    """
    from grader.grading.collect import check_file, normalise_id

    config = config or GradingConfig()
    workspace = Path(workspace).resolve()
    results = Path(results or workspace / "results").resolve()
    student = normalise_id(student)
    if not student:
        raise ValueError("--student gives no student id (it needs a letter or a digit)")
    rejected = check_file(path, config.max_file_size)
    if rejected:
        print(f"rejected (not read): {rejected}", file=sys.stderr)
        stale = Result.folder_of(results, student, lesson.slug)
        if stale.exists():  # an earlier grade's notebook and feedback must not outlive the file now rejected
            shutil.rmtree(stale)
        return Result(student, lesson.slug, max_points=max_points(lesson), status="invalid", reason=rejected[:1000],
                      sandbox="not run").write(results)
    path = Path(path).resolve()  # checked above: no link is followed here
    warn_if_not_isolated(config)
    run = grade([Entry(student, lesson, path)], workspace=workspace, results=results, config=config, jobs=1,
                force=force, hide=hidden_paths(workspace, results, path.parent), progress=False)
    return run.results[0]


def max_points(lesson: Lesson) -> float:
    return total_points(read_source(lesson.solution))


def cell_scores(results: Path, student: str, lesson: Lesson) -> dict[str, tuple[float, float]]:
    """Score and maximum of every graded test cell of one graded submission, by grade id."""
    result = Result.read(Path(results), student, lesson.slug)
    return {gid: (float(s), float(m)) for gid, (s, m) in (result.cells if result else {}).items()}
