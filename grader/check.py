"""``python -m grader check PATH``: immediate feedback on a student's lesson, no Jupyter needed.

The student's file (``.py`` or ``.ipynb``) runs top to bottom in a fresh kernel; each
test cell is then reported as passed or failed with its points and the first line of
the failing assertion's message. The exit status is 0 only when every test passes, so
the command also works in a student's own CI or pre-commit hook. Hidden tests are not
in the student edition, so a full score here is necessary but not sufficient.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from grader.execute import Execution, run_notebook
from grader.lessons import is_test, nbgrader_meta, read_source


@dataclass
class TestResult:
    grade_id: str
    points: float
    earned: float
    message: str

    @property
    def passed(self) -> bool:
        return self.earned == self.points


def explain(error_name: str | None, error_value: str) -> str:
    """Turn a test cell's exception into one line a student can act on."""
    if error_name is None:
        return ""
    if error_name == "NotImplementedError":
        return "not done yet: the exercise still raises NotImplementedError — replace that line with your code"
    first = error_value.strip().splitlines()[0] if error_value.strip() else ""
    if error_name == "AssertionError":
        return first or "an assertion failed (the test gives no message)"
    if error_name == "NameError":
        return f"NameError: {first} — run the cells above (or define the name) before this test"
    return f"{error_name}: {first}" if first else error_name


def results(execution: Execution) -> list[TestResult]:
    out = []
    for index, cell in enumerate(execution.notebook.cells):
        if not is_test(cell):
            continue
        meta = nbgrader_meta(cell)
        outcome = execution.outcomes.get(index)
        points = float(meta.get("points", 0))
        if outcome is None or cell.get("execution_count") is None:
            message = f"did not run ({execution.aborted or 'execution stopped before this cell'})"
            out.append(TestResult(meta.get("grade_id", f"cell {index}"), points, 0.0, message))
            continue
        earned = points if outcome.ok else 0.0
        out.append(TestResult(meta["grade_id"], points, earned, explain(outcome.error_name, outcome.error_value)))
    return out


def check(path: Path, cell_timeout: int = 900) -> tuple[list[TestResult], Execution]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass the lesson you worked on, e.g. lessons/01_intro.py")
    nb = read_source(path)
    if not any(is_test(cell) for cell in nb.cells):
        raise ValueError(f"{path} has no test cells; is it a lesson from lessons/ (or its notebook)?")
    with tempfile.TemporaryDirectory(prefix="grader-check-") as tmp:
        execution = run_notebook(nb, cwd=Path(tmp), cell_timeout=cell_timeout)
    return results(execution), execution


def format_report(path: Path, tests: list[TestResult], seconds: float) -> str:
    width = max([len(t.grade_id) for t in tests] + [4])
    lines = [f"{path}  ({seconds:.1f} s)", ""]
    for test in tests:
        mark = "PASS" if test.passed else "FAIL"
        lines.append(f"  {mark}  {test.grade_id:<{width}}  {test.earned:g}/{test.points:g}  {test.message}".rstrip())
    earned = sum(t.earned for t in tests)
    total = sum(t.points for t in tests)
    passed = sum(t.passed for t in tests)
    lines += ["", f"{passed} passed, {len(tests) - passed} failed — {earned:g}/{total:g} points (visible tests only)"]
    return "\n".join(lines)


def main(path: Path, cell_timeout: int = 900) -> int:
    tests, execution = check(path, cell_timeout)
    print(format_report(path, tests, execution.seconds))
    return 0 if tests and all(t.passed for t in tests) else 1
