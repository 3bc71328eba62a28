"""`grader check`: a student's immediate feedback, exercise by exercise."""

from __future__ import annotations

import copy
import re

import pytest

from grader.__main__ import main
from grader.build.editions import student_notebook, to_percent
from grader.grading.check import check, explain
from grader.lessons import find_lesson, is_exercise, is_test, nbgrader_meta, read_source

pytestmark = pytest.mark.grading
INTRO = find_lesson("01_intro")


def test_reference_passes_and_exits_zero(capsys):
    assert main(["check", str(INTRO.solution)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and " 0 failed" in out


def test_untouched_student_edition_fails_every_test_with_advice(capsys):
    assert main(["check", str(INTRO.student)]) == 1
    results, _ = check(INTRO.student)
    assert results and not any(r.passed for r in results)
    assert all("NotImplementedError" in r.message for r in results)


def test_one_solved_exercise_passes_alone(tmp_path):
    """Solve only the first exercise: exactly its tests pass, the others still fail."""
    solution = read_source(INTRO.solution)
    nb = copy.deepcopy(student_notebook(INTRO))
    index, cell = next((i, c) for i, c in enumerate(nb.cells) if is_exercise(c))
    solved = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION\n", "", solution.cells[index].source, flags=re.M)
    nb.cells[index].source = solved
    exercise = nbgrader_meta(cell)["grade_id"]
    path = tmp_path / "partly_solved.py"
    path.write_text(to_percent(nb), encoding="utf-8")
    results, _ = check(path)
    for result in results:
        mine = result.grade_id == f"test_{exercise}" or result.grade_id.startswith(f"test_{exercise}_")
        assert result.passed == mine, f"{result.grade_id}: passed={result.passed}, {result.message}"
    assert sum(is_test(c) for c in nb.cells) == len(results)


def test_each_check_grades_in_its_own_folder_and_shares_the_cached_releases(tmp_path):
    from grader.grading.check import private_workspace
    from grader.grading.job import EDITIONS, release_folder

    shared = tmp_path / "check"
    with private_workspace(shared) as first, private_workspace(shared) as second:
        assert first != second and first.parent == second.parent == shared / "runs"
        for edition in EDITIONS:
            assert release_folder(first, edition).resolve() == release_folder(shared, edition).resolve()
            assert release_folder(second, edition).resolve() == release_folder(shared, edition).resolve()
    assert not first.exists() and not second.exists(), "a run's own folder is removed when it ends"
    assert release_folder(shared, "student").is_dir(), "the shared releases stay"


def test_two_checks_at_once_both_grade(tmp_path):
    """Two terminals (or two test processes) checking at once: before each run had its own
    folder, one wiped the other's slot mid-run, and both reported 0/0 with a bare FileNotFoundError."""
    import subprocess
    import sys

    code = ("import sys; from grader.grading.check import check, format_report; from pathlib import Path; "
            "tests, result = check(Path(sys.argv[1]), workspace=Path(sys.argv[2])); "
            "print(format_report(Path(sys.argv[1]), tests, result))")
    command = [sys.executable, "-c", code, str(INTRO.solution), str(tmp_path / "check")]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    for run in runs:
        out, _ = run.communicate(timeout=600)
        assert run.returncode == 0 and re.search(r"[1-9]\d* passed, 0 failed", out), out[-2000:]


def test_check_reports_a_missing_file_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check(tmp_path / "nope.py")


def test_explain_messages():
    assert "not done yet" in explain("NotImplementedError", "")
    assert explain("AssertionError", "top_k must return 3 ids\nmore") == "top_k must return 3 ids"
    assert explain(None, "") == ""
    assert "run the cells above" in explain("NameError", "name 'x' is not defined")


def solved_edition(tmp_path, extra: dict[str, str] | None = None):
    """The student edition with every exercise solved by the reference; ``extra`` appends code to exercises."""
    solution = read_source(INTRO.solution)
    nb = copy.deepcopy(student_notebook(INTRO))
    for index, cell in enumerate(nb.cells):
        if is_exercise(cell):
            body = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION\n", "", solution.cells[index].source, flags=re.M)
            cell.source = body + (extra or {}).get(nbgrader_meta(cell)["grade_id"], "")
    path = tmp_path / "01_intro.py"
    path.write_text(to_percent(nb), encoding="utf-8")
    return path


def test_check_gives_exactly_the_points_autograde_gives_even_for_a_test_that_warns(tmp_path):
    """nbgrader scores a test cell with any stderr output 0; check runs the same engine, so it agrees.

    One exercise is solved correctly but prints a warning to stderr whenever it is called,
    so its test cell (which calls it) has stderr output: 0 points in both, with a message
    in check saying why. Every other test cell gets the same points in both as well.
    """
    from grader.grading.autograde import autograde, cell_scores

    warn = "\nimport sys as _sys\nprint('warning: deprecated call', file=_sys.stderr)\n"
    path = solved_edition(tmp_path)
    nb = read_source(path)  # the warning goes inside predict's body, so it prints when the test calls predict
    for cell in nb.cells:
        if is_exercise(cell) and nbgrader_meta(cell)["grade_id"] == "predict":
            head, sep, body = cell.source.partition(":\n")
            indent = re.match(r"\s*", body).group(0)
            cell.source = head + sep + "".join(f"{indent}{line}\n" for line in warn.strip().splitlines()) + body
    path.write_text(to_percent(nb), encoding="utf-8")

    tests, result = check(path, workspace=tmp_path / "check")
    by_id = {t.grade_id: t for t in tests}
    assert by_id["test_predict"].earned == 0 and "stderr" in by_id["test_predict"].message
    assert all(t.passed for gid, t in by_id.items() if gid != "test_predict"), tests

    subs = tmp_path / "subs" / "ann"
    subs.mkdir(parents=True)
    (subs / "01_intro.py").write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    autograde(tmp_path / "subs", tmp_path / "grades.csv", workspace=tmp_path / "ws", lessons=[INTRO],
              env={"COURSE_QUICK": "1"}, jobs=1, progress=False, verbose=False)
    graded = cell_scores(tmp_path / "ws" / "results", "ann", INTRO)
    assert {gid: score for gid, (score, _) in graded.items()} == {t.grade_id: t.earned for t in tests}


def test_grading_is_incremental_and_force_grades_again(tmp_path):
    """The same file, lesson, library and settings are graded once: ``make course``'s second run does nothing."""
    from grader.grading.config import GradingConfig
    from grader.grading.engine import Entry, grade

    entries = [Entry("stub", INTRO, INTRO.student, env={"COURSE_QUICK": "1"})]
    config = GradingConfig(sandbox=False)
    first = grade(entries, workspace=tmp_path, results=tmp_path / "results", config=config, progress=False)
    again = grade(entries, workspace=tmp_path, results=tmp_path / "results", config=config, progress=False)
    assert (first.graded, first.reused, again.graded, again.reused) == (1, 0, 0, 1)
    assert again.results[0].graded_at == first.results[0].graded_at
    other = [Entry("stub", INTRO, INTRO.student, env={"COURSE_QUICK": "1", "EXTRA": "1"})]
    changed = grade(other, workspace=tmp_path, results=tmp_path / "results", config=config, progress=False)
    forced = grade(other, workspace=tmp_path, results=tmp_path / "results", config=config, progress=False,
                   force=True)
    assert (changed.graded, forced.graded) == (1, 1), "a changed setting, or --force, grades again"
