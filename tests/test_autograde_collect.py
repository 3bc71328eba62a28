"""Collecting, integrity checks, feedback scrubbing and merging: the autograder's pure parts (fast)."""

from __future__ import annotations

import copy
import csv
import json
import os
import time

import nbformat
import pytest

from grader.build.editions import student_notebook, to_percent
from grader.grading.collect import collect, lesson_in_name, normalise_id
from grader.grading.integrity import check_locked_cells
from grader.grading.preprocessors import TrimTracebacks, builtin_names_used
from grader.grading.results import merge, summary
from grader.lessons import ROOT, Lesson, UnreadableLesson, find_lesson, nbgrader_meta, read_source
from grader.markers import BEGIN_HIDDEN, END_HIDDEN

INTRO = find_lesson("01_intro")
LESSONS = [INTRO, Lesson("04_retrieval"), Lesson("05_ranking")]


def touch(path, text="x", age=0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if age:
        os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_flat_names_map_to_student_and_lesson():
    assert lesson_in_name("alice_04_retrieval", LESSONS) == ("alice", LESSONS[1])
    assert lesson_in_name("bob-04_retrieval (1)", LESSONS) == ("bob", LESSONS[1])
    assert lesson_in_name("smith_12345_05_ranking", LESSONS) == ("smith_12345", LESSONS[2])
    assert lesson_in_name("x104_retrieval", LESSONS) is None  # a slug must start a token
    assert normalise_id("Alice Smith") == "Alice_Smith"


def test_collect_both_layouts_roster_and_newest_wins(tmp_path):
    subs = tmp_path / "subs"
    touch(subs / "alice" / "04_retrieval.py", age=100)
    newer = touch(subs / "alice" / "04_retrieval" / "04_retrieval.ipynb")
    touch(subs / "bob_04_retrieval.ipynb")
    touch(subs / "Carol Jones-05_ranking.py")
    touch(subs / "notes.txt")
    touch(subs / "dave" / "readme.md")
    (subs / "erin").mkdir()
    roster = touch(tmp_path / "roster.csv", "student,aliases\nalice,\nbob,\nfrank,\nerin,\nCarol_Jones,\n")
    found = collect(subs, LESSONS, roster)
    pairs = {(s.student, s.lesson.slug): s for s in found.submissions}
    assert set(pairs) == {("alice", "04_retrieval"), ("bob", "04_retrieval"), ("Carol_Jones", "05_ranking")}
    assert pairs[("alice", "04_retrieval")].path == newer
    assert "ignored 04_retrieval.py" in pairs[("alice", "04_retrieval")].note()
    assert found.students == ["Carol_Jones", "alice", "bob", "dave", "erin", "frank"]
    assert any("dave is not on the roster" in note for note in found.notes)
    assert {p.name for p in found.unmatched} == {"notes.txt"}


def test_collect_reads_nbgrader_exchange_layout_and_aliases(tmp_path):
    subs = tmp_path / "exchange"
    touch(subs / "submitted" / "u123" / "01_intro" / "01_intro.ipynb")
    roster = touch(tmp_path / "roster.csv", "student,aliases\nalice,u123 a.smith\n")
    found = collect(subs, LESSONS, roster)
    assert [(s.student, s.lesson.slug) for s in found.submissions] == [("alice", "01_intro")]


def test_read_submission_rejects_what_is_not_a_lesson(tmp_path):
    with pytest.raises(UnreadableLesson, match="invalid JSON"):
        read_source(touch(tmp_path / "a.ipynb", '{"cells": ['))
    with pytest.raises(UnreadableLesson, match="no '# %%' cell markers"):
        read_source(touch(tmp_path / "b.py", "print(1)\n"))
    with pytest.raises(UnreadableLesson, match="not UTF-8"):
        (tmp_path / "c.py").write_bytes(b"\xff\xfe\x00garbage")
        read_source(tmp_path / "c.py")
    with pytest.raises(UnreadableLesson, match="percent .py file or an .ipynb notebook, not .txt"):
        read_source(touch(tmp_path / "d.txt"))
    nb = read_source(touch(tmp_path / "e.py", to_percent(student_notebook(INTRO))))
    assert check_locked_cells(nb, student_notebook(INTRO))[1] == []


def ids(nb):
    return [nbgrader_meta(c).get("grade_id") for c in nb.cells if nbgrader_meta(c).get("grade_id")]


def test_locked_cells_edited_deleted_moved_are_detected_and_put_back():
    released = student_notebook(INTRO)
    nb = copy.deepcopy(released)
    tests = [c for c in nb.cells if nbgrader_meta(c).get("locked")]
    tests[0].source = "pass"
    nb.cells.remove(tests[1])
    nb.cells.remove(tests[2])
    nb.cells.append(tests[2])
    fixed, problems = check_locked_cells(nb, released)
    assert any("test_affinity_scores was edited" in p for p in problems)
    assert any("test_top_k was deleted" in p for p in problems)
    assert "test cells were moved" in problems
    assert ids(fixed) == ids(released)
    originals = {nbgrader_meta(c)["grade_id"]: c.source for c in released.cells if nbgrader_meta(c).get("locked")}
    assert all(c.source == originals[nbgrader_meta(c)["grade_id"]] for c in fixed.cells
               if nbgrader_meta(c).get("locked"))


def test_metadata_tricks_are_detected():
    released = student_notebook(INTRO)
    nb = copy.deepcopy(released)
    test = next(c for c in nb.cells if nbgrader_meta(c).get("locked"))
    test.metadata["nbgrader"]["points"] = 100
    exercise = next(c for c in nb.cells if nbgrader_meta(c).get("solution"))
    exercise.metadata["nbgrader"]["grade"] = True
    _, problems = check_locked_cells(nb, released)
    assert any("metadata of test cell" in p for p in problems)
    assert any("metadata of cell affinity_scores" in p for p in problems)


def test_malformed_notebooks_are_unreadable_not_grader_errors(tmp_path):
    """Deeply nested JSON and nbgrader metadata that is not a mapping: ``invalid`` rows, never ``error``."""
    with pytest.raises(UnreadableLesson, match="nested too deeply"):
        read_source(touch(tmp_path / "deep.ipynb", '{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}"))
    nb = student_notebook(INTRO)
    nb.cells[3].metadata["nbgrader"] = "junk"
    path = tmp_path / "meta.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    with pytest.raises(UnreadableLesson, match="nbgrader metadata of cell 3 is not a mapping"):
        read_source(path)
    nb.cells[3].metadata = ["not", "a", "mapping"]
    path.write_text(json.dumps(nb), encoding="utf-8")
    with pytest.raises(UnreadableLesson, match="not a notebook"):
        read_source(path)


def test_feedback_scrub_removes_hidden_tests_and_tracebacks():
    cell = nbformat.v4.new_code_cell(f"assert f(1) == 2, 'f(1)'\n{BEGIN_HIDDEN}\nassert f(2) == 4\n{END_HIDDEN}")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "locked": True, "points": 1, "solution": False}
    cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="",
                                           traceback=["----> 3 assert f(2) == 4"])]
    from nbgrader.preprocessors import ClearHiddenTests

    nb = nbformat.v4.new_notebook(cells=[cell])
    for preprocessor in (ClearHiddenTests(), TrimTracebacks()):  # the feedback's order (grader/grading/job.py)
        nb, _ = preprocessor.preprocess(nb, {})
    scrubbed = nb.cells[0]
    assert scrubbed.source.strip() == "assert f(1) == 2, 'f(1)'"
    assert scrubbed.outputs[0].traceback == ["AssertionError"]


def test_builtin_names_used_by_a_test():
    assert builtin_names_used("assert isinstance(x, list) and len(x) == sum(y)") == ["isinstance", "len", "list", "sum"]
    assert builtin_names_used("%timeit x") == []


def test_merge_adds_missing_rows_and_keeps_the_newest_result(tmp_path):
    def result(folder, student, points, when):
        path = folder / student / "01_intro" / "result.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"student": student, "lesson": "01_intro", "points": points, "max_points": 10,
                                    "status": "graded", "reason": "", "graded_at": when}))

    result(tmp_path / "a", "ann", 4, 1.0)
    result(tmp_path / "b", "ann", 7, 2.0)
    result(tmp_path / "b", "bo", 10, 1.0)
    out = tmp_path / "grades.csv"
    grades = merge([tmp_path / "a", tmp_path / "b"], out, students=["ann", "bo", "cy"], lessons={"01_intro": 10})
    rows = list(csv.DictReader(open(out, newline="", encoding="utf-8")))
    assert [(r["student"], r["points"], r["status"]) for r in rows] == [
        ("ann", "7", "graded"), ("bo", "10", "graded"), ("cy", "0", "missing")]
    assert list(rows[0]) == ["student", "lesson", "points", "max_points", "status", "reason"]
    assert summary(grades) == "3 rows: 2 graded, 0 failed, 0 timed out, 0 tampered, 1 missing"


def test_grading_settings_come_from_a_toml_file_and_the_command_line(tmp_path):
    from grader.__main__ import grading_config, parse

    config_file = touch(tmp_path / "grading.toml", '[autograde]\ncell_timeout = 60\nnotebook_timeout = 600\n'
                        'memory = 4294967296\nenv = { COURSE_QUICK = "1" }\n')
    args = parse(["autograde", "subs", "--config", str(config_file), "--notebook-timeout", "900", "--memory", "6G",
                  "--env", "EXTRA=1"])
    config = grading_config(args)
    assert (config.cell_timeout, config.notebook_timeout, config.memory) == (60, 900, 6 << 30)
    assert config.env == {"COURSE_QUICK": "1", "EXTRA": "1"}
    with pytest.raises(ValueError, match="unknown grading settings: cell_timout"):
        from grader.grading.config import GradingConfig

        GradingConfig.from_dict({"cell_timout": 5})


def test_the_lesson_hash_that_keys_resumed_runs_is_stable():
    from grader.grading.release import lesson_hash

    assert lesson_hash(INTRO) == lesson_hash(INTRO)  # cell ids are random on every read


def test_the_sandbox_says_why_it_cannot_isolate(monkeypatch):
    from grader.sandbox import isolation as sandbox

    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    assert "does not run as root" in sandbox._probe_namespaces()
    monkeypatch.setattr(sandbox.sys, "platform", "darwin")
    assert "Linux-only" in sandbox._probe_namespaces()


def test_course_data_is_found_by_its_real_path_and_missing_sets_are_named(tmp_path, monkeypatch):
    from grader.grading.course_data import data_dir, dataset_names, missing

    names = dataset_names()
    assert "movielens/100k-ratings" in names and "movielens/100k-movies" in names
    real = tmp_path / "real"
    (real / names[0]).mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "link"))
    assert data_dir() == real  # a kernel cannot follow a symlink that lives under the private /tmp
    assert missing() == names[1:]


def test_a_lesson_is_regraded_when_a_library_module_it_uses_changes_and_only_then(tmp_path, monkeypatch):
    """``make course``'s incremental key follows the lesson's movierec imports, through the library's own."""
    import shutil

    import grader.grading.results as results

    library = tmp_path / "movierec"
    shutil.copytree(ROOT / "movierec", library)
    monkeypatch.setattr(results, "LIBRARY", library)
    uses_preprocessing = ["from movierec.ranking import MovieRanker"]  # ranking imports preprocessing
    plain = ["from movierec.setup import setup_lesson"]
    before = results.library_hash(uses_preprocessing), results.library_hash(plain)
    changed = library / "preprocessing.py"
    changed.write_text(changed.read_text() + "\n# changed\n")
    after = results.library_hash(uses_preprocessing), results.library_hash(plain)
    assert before[0] != after[0], "a change in a module imported through another one re-grades"
    assert before[1] == after[1], "a change in a module the lesson never imports does not"

    # Subpackages count too: lesson 08 uses movierec.serving.service, which imports serving.export (lesson 07).
    uses_service = ["from movierec.serving.service import create_app"]
    before = results.library_hash(uses_service), results.library_hash(plain)
    changed = library / "serving" / "export.py"
    changed.write_text(changed.read_text() + "\n# changed\n")
    after = results.library_hash(uses_service), results.library_hash(plain)
    assert before[0] != after[0], "a change in a subpackage module reached through imports re-grades"
    assert before[1] == after[1], "and leaves lessons that never import it alone"


# ---------------------------------------------------------------- what the worker keeps of a kernel's messages


def executor_on(cells: list, cap: int = 10_000):
    """A :class:`SandboxedExecute` fed messages by hand (no kernel): what the worker keeps of each."""
    from grader.grading.preprocessors import SandboxedExecute

    ep = SandboxedExecute(max_output_bytes=cap)
    ep.nb = nbformat.v4.new_notebook(cells=cells)
    ep.reset_execution_trackers()
    ep.clear_before_next_output = False
    ep._bytes, ep._drops, ep._running_cell = {}, set(), 0
    ep._report = {"timeouts": [], "notebook_timeout": False, "tampered": [], "unshadowed": [], "truncated": [],
                  "unverified": [], "seconds": 0.0, "died": ""}
    return ep


def message(msg_type: str, **content) -> dict:
    return {"msg_type": msg_type, "header": {"msg_type": msg_type}, "parent_header": {"msg_id": "run"},
            "metadata": {}, "content": content}


def test_errors_display_updates_and_widgets_count_against_the_output_cap():
    """Kernel messages a cell can repeat without end: the worker keeps a bounded amount of each."""
    cell = nbformat.v4.new_code_cell("work()")
    ep = executor_on([cell])
    for _ in range(1000):  # showtraceback() in a loop: 10 MB of errors
        ep.process_message(message("error", ename="ValueError", evalue="e" * 10_000, traceback=[]), cell, 0)
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert 1 <= len(errors) <= 2 and len(json.dumps(cell.outputs)) < 2 * 10_000 + 5000  # one error always kept
    assert ep._report["truncated"] == ["cell 0"]

    cell = nbformat.v4.new_code_cell("work()")
    ep = executor_on([cell])
    for _ in range(100):  # 100 small outputs sharing one display id...
        ep.process_message(message("display_data", data={"text/plain": "."}, metadata={},
                                   transient={"display_id": "d"}), cell, 0)
    update = message("update_display_data", data={"text/plain": "u" * 5_000}, metadata={},
                     transient={"display_id": "d"})
    ep.process_message(update, cell, 0)  # ...then one 5 kB update: nbclient would copy it into all 100
    assert len(json.dumps(cell.outputs)) < 20_000, len(json.dumps(cell.outputs))

    ep.process_message(message("comm_open", comm_id="c", target_name="jupyter.widget", data={
        "state": {"value": "w" * 50_000}}), cell, 0)
    assert not ep.widget_state and not ep.comm_objects  # widget messages are not kept


def test_a_result_value_in_a_test_cell_is_display_data_and_tampering():
    """nbgrader reads a test cell's execute_result as its points; only the release's test code could make one."""
    test = nbformat.v4.new_code_cell("assert f() == 2")
    test.metadata["nbgrader"] = {"grade": True, "grade_id": "test_f", "locked": True, "points": 2, "solution": False}
    ends_in_value = nbformat.v4.new_code_cell("x = f()\nx")  # an exercise or demo cell: its value is its own
    ep = executor_on([test, ends_in_value])
    ep.process_message(message("execute_result", data={"text/plain": "'all good'"}, metadata={}, execution_count=1),
                       test, 0)
    ep.process_message(message("execute_result", data={"text/plain": "2"}, metadata={}, execution_count=2),
                       ends_in_value, 1)
    assert [o.output_type for o in test.outputs] == ["display_data"]
    assert [o.output_type for o in ends_in_value.outputs] == ["execute_result"]
    assert ep._report["tampered"] == ["test_f received a result value its test code does not produce (student code "
                                      "sent it while the test ran; nbgrader would read it as partial credit)"]
    from nbgrader.utils import determine_grade

    test.outputs.append(nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[]))
    assert determine_grade(test) == (0, 2.0)  # the failed assertion decides, not the value sent before it


def test_the_message_cap_follows_the_output_cap():
    from grader.grading.preprocessors import MIN_MESSAGE_CAP, message_cap

    assert message_cap(1_000_000) == MIN_MESSAGE_CAP and message_cap(10 << 20) == 20 << 20
    assert message_cap(-1) == -1  # --max-output -1: no cap anywhere
