"""``python -m grader check PATH``: immediate feedback on a student's lesson, no Jupyter needed.

The student's file (``.py`` or ``.ipynb``) is graded by the same engine as ``autograde``
(:func:`grader.grading.engine.grade`: nbgrader's ``Autograde`` and its ``determine_grade``),
without the sandbox, against the release of the student edition (the visible tests): so
every test gets exactly the points ``autograde`` would give it, and a test that only
warns on stderr scores 0 here as it does there. An author checking ``solutions/NN_name.py``
is graded against the instructor release, hidden tests included. Each test is reported
as passed or failed with its points and one line saying why; the exit status is 0 only
when every test passes, so the command also works in a student's own CI or pre-commit hook.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from grader.grading.config import GradingConfig
from grader.grading.engine import Entry, grade
from grader.grading.job import EDITIONS, explain, release_folder  # noqa: F401 - explain: part of check's interface
from grader.grading.results import Result
from grader.lessons import BUILD, SOLUTIONS, Lesson, UnreadableLesson, all_lessons, is_test, read_source

WORKSPACE = BUILD / "check"
STUDENT = "you"


@dataclass
class TestResult:
    grade_id: str
    points: float
    earned: float
    message: str

    @property
    def passed(self) -> bool:
        return self.earned == self.points


def lesson_of(path: Path, nb, lesson: str | None = None) -> Lesson:
    """The lesson a file is: named by ``--lesson``, by the ``NN_name`` in its file name, or by its tests."""
    from grader.grading.collect import lesson_in_name
    from grader.lessons import find_lesson, nbgrader_meta

    if lesson:
        return find_lesson(lesson)
    found = lesson_in_name(path.stem, all_lessons())
    if found is not None:
        return found[1]
    mine = {nbgrader_meta(c).get("grade_id") for c in nb.cells if is_test(c)}
    overlap = {item: len(mine & {nbgrader_meta(c).get("grade_id") for c in read_source(item.student).cells
                                 if is_test(c)}) for item in all_lessons() if item.student.exists()}
    best = max(overlap, key=overlap.get, default=None)
    if best is None or overlap[best] == 0:
        known = ", ".join(item.slug for item in all_lessons())
        raise ValueError(f"cannot tell which lesson {path.name} is: keep the lesson's name in the file name "
                         f"(one of {known}) or pass --lesson")
    return best


def edition_of(path: Path) -> str:
    """Authors' references (in ``solutions/``) are checked with the hidden tests; everything else without."""
    return "instructor" if Path(path).resolve().is_relative_to(SOLUTIONS.resolve()) else "student"


def tests_of(result: Result) -> list[TestResult]:
    out = []
    for gid, (score, points) in result.cells.items():
        out.append(TestResult(gid, points, score, result.messages.get(gid, "") if score < points else ""))
    return out


def check(path: Path, cell_timeout: int = 900, lesson: str | None = None,
          workspace: Path = WORKSPACE) -> tuple[list[TestResult], Result]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass the lesson you worked on, e.g. lessons/01_intro.py")
    try:
        nb = read_source(path)
    except UnreadableLesson as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not any(is_test(cell) for cell in nb.cells):
        raise ValueError(f"{path} has no test cells; is it a lesson from lessons/ (or its notebook)?")
    config = GradingConfig(cell_timeout=cell_timeout, sandbox=False)
    with private_workspace(Path(workspace)) as run_folder:
        run = grade([Entry(STUDENT, lesson_of(path, nb, lesson), path)], workspace=run_folder,
                    results=run_folder / "results", config=config, edition=edition_of(path), jobs=1, force=True,
                    progress=False)
    result = run.results[0]
    return tests_of(result), result


@contextmanager
def private_workspace(shared: Path) -> Iterator[Path]:
    """A grading workspace of this run's own that reuses the releases cached in ``shared``.

    Two checks at once (two terminals, or two test processes) must not share the slot and
    results folders: one wiped the other's kernel files mid-run (a bare ``FileNotFoundError``
    in CI). The releases are shared: building them is the slow part, and
    :class:`~grader.grading.release.Release` locks them while it does.
    """
    runs = shared / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="check-", dir=runs) as private:
        for edition in EDITIONS:
            cached = release_folder(shared, edition)
            cached.mkdir(parents=True, exist_ok=True)
            release_folder(Path(private), edition).symlink_to(cached.resolve(), target_is_directory=True)
        yield Path(private)


def format_report(path: Path, tests: list[TestResult], result: Result) -> str:
    width = max([len(t.grade_id) for t in tests] + [4])
    cpu = "" if result.execution_cpu_seconds is None else f", {result.execution_cpu_seconds:.1f} CPU s"
    lines = [f"{path}  ({result.execution_seconds or result.seconds:.1f} s{cpu})", ""]
    if result.status != "graded":
        lines += [f"  {result.status.upper()}: {result.reason}", ""]
    for test in tests:
        mark = "PASS" if test.passed else "FAIL"
        lines.append(f"  {mark}  {test.grade_id:<{width}}  {test.earned:g}/{test.points:g}  {test.message}".rstrip())
    earned = sum(t.earned for t in tests)
    total = sum(t.points for t in tests)
    passed = sum(t.passed for t in tests)
    which = "visible and hidden tests" if result.edition == "instructor" else "visible tests only"
    lines += ["", f"{passed} passed, {len(tests) - passed} failed — {earned:g}/{total:g} points ({which})"]
    return "\n".join(lines)


def main(path: Path, cell_timeout: int = 900, lesson: str | None = None) -> int:
    tests, result = check(path, cell_timeout, lesson)
    print(format_report(path, tests, result))
    return 0 if tests and result.status == "graded" and all(t.passed for t in tests) else 1
