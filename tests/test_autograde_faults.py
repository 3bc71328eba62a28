"""Class-scale autograding under faults and hostile input, on lesson 01 (numpy only, seconds).

One parallel run (two workers) grades a crafted class; every fault of the issue is one
student whose row must have the expected status and points, and whose fault must not
disturb anyone else's row. A second, smaller class is graded in parallel, serially and
resumed, and the three ``grades.csv`` files must be byte-identical.
"""

from __future__ import annotations

import copy
import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from grader.build.editions import student_notebook, to_percent
from grader.grading.autograde import autograde
from grader.grading.config import GradingConfig
from grader.grading.course_data import data_dir
from grader.lessons import ROOT, find_lesson, is_exercise, nbgrader_meta, read_source
from grader.markers import BEGIN_HIDDEN, END_HIDDEN
from grader.sandbox.isolation import can_isolate

pytestmark = pytest.mark.grading
INTRO = find_lesson("01_intro")
TOTAL = 10.0
POINTS = {"test_affinity_scores": 2, "test_top_k": 2, "test_norm_weighted_scores": 2, "test_predict": 1,
          "test_fit_matrix_factorization": 3}
CONFIG = dict(cell_timeout=20, notebook_timeout=60, max_output_bytes=100_000)
SLEEP = 13  # seconds before each of the 5 exercises: the 5th starts past the notebook limit


# ----------------------------------------------------------------------------------- crafting


def solution_code(grade_id: str) -> str:
    for cell in read_source(INTRO.solution).cells:
        if nbgrader_meta(cell).get("grade_id") == grade_id:
            return re.sub(r"[ \t]*### (BEGIN|END) SOLUTION\n", "", cell.source)
    raise KeyError(grade_id)


def crafted(solve=("all",), prefix: dict[str, str] | None = None, replace: dict[str, str] | None = None,
            extra_cells: list[str] = (), added_cells: list[str] = ()) -> nbformat.NotebookNode:
    """The student edition with some exercises solved; ``prefix`` code goes before an exercise's code.

    Only answers are graded (the rest of the notebook is the release), so ``extra_cells`` —
    a student's own code — goes at the top of the first exercise cell, where it runs;
    ``added_cells`` become cells of their own, which the grader does not run.
    """
    nb = copy.deepcopy(student_notebook(INTRO))
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if is_exercise(cell) and ("all" in solve or gid in solve):
            cell.source = solution_code(gid)
        if gid in (prefix or {}):
            cell.source = prefix[gid] + "\n" + cell.source
        if gid in (replace or {}):
            cell.source = replace[gid]
    at = next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == "affinity_scores")
    if extra_cells:
        nb.cells[at].source = "\n".join([*extra_cells, nb.cells[at].source])
    for offset, code in enumerate(added_cells):
        nb.cells.insert(at + offset, nbformat.v4.new_code_cell(code))
    return nb


def tagged(nb, tag: str):
    """Every test cell tagged ``tag`` (``skip-execution`` makes nbgrader's executor skip a cell)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade"):
            cell.metadata.setdefault("tags", []).append(tag)
    return nb


def write_nb(path: Path, nb) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def write_py(path: Path, nb) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_percent(nb), encoding="utf-8")
    return path


def without(nb, grade_id: str):
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") != grade_id]
    return nb


def moved_to_end(nb, grade_id: str):
    nb = copy.deepcopy(nb)
    cell = next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == grade_id)
    nb.cells.remove(cell)
    nb.cells.append(cell)
    return nb


PROBE = r'''
import os, socket
def _probe(label, action):
    try:
        result = action()
        print(f"PROBE {label}: OK {str(result)[:60]!r}")
    except Exception as exc:
        print(f"PROBE {label}: BLOCKED {type(exc).__name__}")
def _listing(path):
    entries = os.listdir(path if os.path.isdir(path) else os.path.dirname(path))
    if not entries:
        raise FileNotFoundError("an empty folder")
    return entries
for _label, _path in PATHS.items():
    _probe(f"read {_label}", lambda p=_path: open(p, "rb").read(100))
    _probe(f"list {_label}", lambda p=_path: _listing(p))
for _label, _path in WRITES.items():
    _probe(f"write {_label}", lambda p=_path: open(p, "a").write("alice,01_intro,10,10,graded,\n"))
_probe("network", lambda: socket.create_connection(("1.1.1.1", 80), timeout=3))
print("INTERFACES", [name for _, name in socket.if_nameindex()])
print("UID", os.getuid())
print("DATA", os.path.isdir(os.path.join(os.environ.get("TFDS_DATA_DIR", "-"), "movielens")))
'''

NATIVE_LOG = r'''

_affinity_scores = affinity_scores
def affinity_scores(*args, **kwargs):
    import os
    os.write(2, b"E0000 native_library.cc:1] a compiled library logged this\n")
    return _affinity_scores(*args, **kwargs)
'''

HOSTILE = r'''
import builtins, math
import numpy
_ip = get_ipython()
_ip.showtraceback = lambda *a, **k: None            # hide every error...
_ip._showtraceback = lambda *a, **k: None
_ip.input_transformers_post.append(lambda lines: ["pass\n"] if any("assert" in l for l in lines) else lines)
numpy.allclose = lambda *a, **k: True               # ...and make every comparison succeed
numpy.array_equal = lambda *a, **k: True
math.isclose = lambda *a, **k: True
builtins.AssertionError = type("AssertionError", (Warning,), {})
isinstance = lambda *a, **k: True                   # shadows the builtin in the notebook's namespace
'''

# Patch what carries a test's outcome out of the kernel: its execute path, its session's send.
KERNEL_PATCH = r'''
_kernel = get_ipython().kernel
_real_do_execute = _kernel.do_execute
async def _do_execute(code, *args, **kwargs):
    return await _real_do_execute("pass" if "assert" in code else code, *args, **kwargs)
_kernel.do_execute = _do_execute
'''

SESSION_PATCH = r'''
_session = get_ipython().kernel.session
_real_send = _session.send
def _send(stream, msg_or_type, content=None, *args, **kwargs):
    if msg_or_type == "error":
        return None
    if isinstance(content, dict) and content.get("status") == "error":
        content = {**content, "status": "ok"}
    return _real_send(stream, msg_or_type, content, *args, **kwargs)
_session.send = _send
'''

# Read the running test cell (hidden tests included) and print it, with HTML a browser would run.
LEAK = r'''

_real_top_k = top_k
def top_k(*args, **kwargs):
    from IPython.display import HTML, display
    print(get_ipython().user_ns["In"][-1])
    print("<script>alert('owned')</script>")
    display(HTML("<script>alert('html')</script><b>bold</b>"))
    return _real_top_k(*args, **kwargs)
'''

# The kernel exits (os._exit) when the cell after the fourth test starts: four tests have run.
EXIT_LATER = r'''
def _exit_at_the_last_exercise(info):
    import os
    if "def fit_matrix_factorization" in (info.raw_cell or ""):
        os._exit(0)
get_ipython().events.register("pre_run_cell", _exit_at_the_last_exercise)
'''

# Wrong answers (zeros) that try to make the comparisons lie, three ways (issue 13, attacks 2a-2c).
LIAR = r'''
def affinity_scores(query, candidates, metric="dot"):
    class _Yes(np.ndarray):  # every comparison says "equal"
        def __array_ufunc__(self, *args, **kwargs):
            return True
        def __array_function__(self, *args, **kwargs):
            return True
        def __eq__(self, other):
            return True
    if metric not in ("dot", "cosine") or np.shape(query)[-1] != np.shape(candidates)[-1]:
        raise ValueError(metric)
    return np.zeros(len(candidates)).view(_Yes)
'''

MID_TEST_PATCH = r'''
def affinity_scores(query, candidates, metric="dot"):
    import math, numpy, movierec.checks  # patched while the test runs, after the guard's check
    numpy.allclose = lambda *a, **k: True
    math.isclose = lambda *a, **k: True
    movierec.checks.close = lambda *a, **k: True
    if metric not in ("dot", "cosine") or np.shape(query)[-1] != np.shape(candidates)[-1]:
        raise ValueError(metric)
    return np.zeros(len(candidates))
'''

INTERNAL_PATCH = r'''
import numpy._core.numeric as _numeric
_numeric.isclose = lambda *a, **k: numpy.ones(numpy.broadcast(*a[:2]).shape, dtype=bool)
import numpy
def affinity_scores(query, candidates, metric="dot"):
    if metric not in ("dot", "cosine") or np.shape(query)[-1] != np.shape(candidates)[-1]:
        raise ValueError(metric)
    return np.zeros(len(candidates))
'''


# A wrong answer (zeros) that sends a result value while its test runs: nbgrader reads a test cell's
# execute_result as its partial credit, and any text that is not a number as full marks.
DISPLAYHOOK = r'''
def affinity_scores(query, candidates, metric="dot"):
    import sys
    sys.displayhook("all good")  # an execute_result in the test cell that called this
    return np.zeros(len(candidates))
'''

RAW_RESULT = r'''
def affinity_scores(query, candidates, metric="dot"):
    kernel = get_ipython().kernel  # the real session and socket: nothing the guard sees replaced
    kernel.session.send(kernel.iopub_socket, "execute_result", {"data": {"text/plain": "2"}, "metadata": {},
                        "execution_count": 1}, parent=kernel.get_parent("shell"))
    return np.zeros(len(candidates))
'''

# A wrong answer that answers the running test's request itself — "ok", then "idle" — through the kernel's
# real session (nothing the guard watches is replaced), so nbclient stops waiting before the assertion fails.
FORGED_REPLY = r'''
def affinity_scores(query, candidates, metric="dot"):
    import sys
    frame = sys._getframe()
    while frame is not None and frame.f_code.co_name != "execute_request":
        frame = frame.f_back
    if frame is not None:
        kernel = get_ipython().kernel
        stream, ident, parent = (frame.f_locals[k] for k in ("stream", "ident", "parent"))
        kernel.session.send(stream, "execute_reply", {"status": "ok", "execution_count": 1, "user_expressions": {},
                            "payload": []}, parent, ident=ident)
        kernel.session.send(kernel.iopub_socket, "status", {"execution_state": "idle"}, parent=parent)
    return np.zeros(len(candidates))
'''

# A function that hangs only when a test calls it: the test cell is interrupted at its time limit, and the
# kernel's reply to the interrupt arrives after nbclient's own timeout error (no forgery).
SLOW_IN_TEST = r'''

_real_top_k = top_k
def top_k(*args, **kwargs):
    if "assert" in get_ipython().user_ns["In"][-1]:
        import time
        time.sleep(10**6)
    return _real_top_k(*args, **kwargs)
'''


@pytest.fixture(scope="session")
def fault_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    subs = root / "submissions"
    ws = root / "workspace"
    solved = crafted()
    shutil.copy(INTRO.solution, (subs / "reference").mkdir(parents=True) or subs / "reference" / "01_intro.py")
    write_nb(subs / "stub" / "01_intro" / "01_intro.ipynb", student_notebook(INTRO))  # nbgrader's layout
    write_py(subs / "loop" / "01_intro.py", crafted(prefix={"top_k": "while True:\n    pass"}))
    write_nb(subs / "sleepy" / "01_intro.ipynb", crafted(prefix={
        gid: f"import time\ntime.sleep({SLEEP})" for gid in ("affinity_scores", "top_k", "norm_weighted_scores",
                                                       "predict", "fit_matrix_factorization")}))
    write_nb(subs / "crash" / "01_intro.ipynb",  # a segfault kills the kernel mid-notebook
             crafted(extra_cells=["import ctypes\nctypes.string_at(0)"]))
    write_nb(subs / "hog" / "01_intro.ipynb",  # 12 GiB of address space, past the 8 GiB limit
             crafted(prefix={"top_k": "import numpy\n_hog = numpy.empty(3 << 29)"}))
    write_nb(subs / "native" / "01_intro.ipynb", crafted(replace={"affinity_scores": solution_code(
        "affinity_scores") + NATIVE_LOG}))  # a library logging to fd 2 while the test runs
    write_nb(subs / "exception" / "01_intro.ipynb",
             crafted(prefix={"top_k": "raise ValueError('my bug')"}))
    write_py(subs / "syntax" / "01_intro.py", crafted(prefix={"norm_weighted_scores": "def broken(:"}))
    (subs / "badjson").mkdir()
    (subs / "badjson" / "01_intro.ipynb").write_text('{"cells": [', encoding="utf-8")
    (subs / "plainpy").mkdir()
    (subs / "plainpy" / "01_intro.py").write_text("print('I exported my notebook the wrong way')\n", encoding="utf-8")
    (subs / "absent").mkdir()
    write_nb(subs / "edited" / "01_intro.ipynb", crafted(replace={"test_top_k": "pass  # my test now"}))
    write_nb(subs / "deleted" / "01_intro.ipynb", without(solved, "test_predict"))
    write_py(subs / "moved" / "01_intro.py", moved_to_end(solved, "test_affinity_scores"))
    write_nb(subs / "skipper" / "01_intro.ipynb", tagged(student_notebook(INTRO), "skip-execution"))
    skipper_py = to_percent(tagged(student_notebook(INTRO), "skip-execution"))
    assert 'tags=["skip-execution"]' in skipper_py  # the one-line edit of a .py header does the same
    (subs / "skippy").mkdir()
    (subs / "skippy" / "01_intro.py").write_text(skipper_py, encoding="utf-8")
    write_nb(subs / "added" / "01_intro.ipynb", crafted(added_cells=["print('ADDED CELL RAN')"]))
    write_nb(subs / "leaker" / "01_intro.ipynb", crafted(replace={"top_k": solution_code("top_k") + LEAK}))
    write_nb(subs / "exiter" / "01_intro.ipynb", crafted(extra_cells=[EXIT_LATER]))
    write_nb(subs / "liar" / "01_intro.ipynb", crafted(solve=(), replace={"affinity_scores": LIAR}))
    write_nb(subs / "midpatch" / "01_intro.ipynb", crafted(solve=(), replace={"affinity_scores": MID_TEST_PATCH}))
    write_nb(subs / "internal" / "01_intro.ipynb", crafted(solve=(), replace={"affinity_scores": INTERNAL_PATCH}))
    write_nb(subs / "displayhook" / "01_intro.ipynb", crafted(solve=(), replace={"affinity_scores": DISPLAYHOOK}))
    write_nb(subs / "rawresult" / "01_intro.ipynb", crafted(solve=(), replace={"affinity_scores": RAW_RESULT}))
    write_nb(subs / "slowtest" / "01_intro.ipynb", crafted(replace={"top_k": solution_code("top_k") + SLOW_IN_TEST}))
    write_nb(subs / "forger" / "01_intro.ipynb", crafted(solve=(), replace={"affinity_scores": FORGED_REPLY}))
    write_nb(subs / "kpatch" / "01_intro.ipynb", crafted(solve=(), extra_cells=[KERNEL_PATCH]))
    write_nb(subs / "spatch" / "01_intro.ipynb", crafted(solve=(), extra_cells=[SESSION_PATCH]))
    write_nb(subs / "flood" / "01_intro.ipynb", crafted(extra_cells=["print('x' * 5_000_000)\n" * 3]))
    write_nb(subs / "hostile" / "01_intro.ipynb", crafted(solve=(), extra_cells=[HOSTILE]))
    write_nb(subs / "patcher" / "01_intro.ipynb", crafted(
        replace={"affinity_scores": "def affinity_scores(query, candidates, metric='dot'):\n"
                                    "    return np.zeros(len(candidates))"},
        extra_cells=["import numpy\nnumpy.allclose = lambda *a, **k: True\nnp.isclose = lambda *a, **k: True"]))
    csv_path = root / "out" / "grades.csv"
    csv_path.parent.mkdir()
    csv_path.write_text("planted by the instructor\n", encoding="utf-8")  # replaced by the run; read by the probe
    secrets = {"solutions": str(INTRO.solution), "release gradebook": str(ws / "release" / "gradebook.db"),
               "worker gradebook": str(ws / "slots" / "0" / "course" / "gradebook.db"),
               "results": str(ws / "results" / "reference" / "01_intro" / "result.json"),
               "grades": str(csv_path), "git": str(ROOT / ".git" / "HEAD"),
               "submissions": str(subs / "reference" / "01_intro.py")}
    # Without isolation nothing stops these writes (that mode is for trusted work): probe them only when isolated.
    writes = {k: secrets[k] for k in ("release gradebook", "grades", "results")} if can_isolate() else {}
    write_nb(subs / "snoop" / "01_intro.ipynb",
             crafted(extra_cells=[f"PATHS = {secrets!r}\nWRITES = {writes!r}\n" + PROBE]))
    older = write_py(subs / "twofiles" / "01_intro.py", student_notebook(INTRO))
    newer = write_nb(subs / "twofiles" / "01_intro.ipynb", solved)
    os.utime(older, (time.time() - 3600, time.time() - 3600))
    write_nb(subs / "flat_01_intro.ipynb", solved)  # a flat, LMS-style file name: student "flat"
    assert newer.exists()
    # The data folder through a symlink under /tmp, as `make test` sets it (../shared): gone in a private /tmp.
    saved = os.environ.get("TFDS_DATA_DIR")
    (root / "data-link").symlink_to(data_dir())
    os.environ["TFDS_DATA_DIR"] = str(root / "data-link")
    start = time.monotonic()
    try:
        grades = autograde(subs, csv_path, workspace=ws, lessons=[INTRO], config=GradingConfig(**CONFIG), jobs=2,
                           progress=False)
    finally:
        if saved is None:
            os.environ.pop("TFDS_DATA_DIR", None)
        else:
            os.environ["TFDS_DATA_DIR"] = saved
    seconds = time.monotonic() - start
    rows = {r["student"]: r for r in csv.DictReader(open(csv_path, newline="", encoding="utf-8"))}
    return {"root": root, "ws": ws, "grades": grades, "rows": rows, "csv": csv_path, "seconds": seconds,
            "results": ws / "results", "feedback": csv_path.parent / "feedback"}


def row(fault_run, student):
    r = fault_run["rows"][student]
    return r["status"], float(r["points"]), r["reason"]


def cells(fault_run, student):
    data = json.loads((fault_run["results"] / student / "01_intro" / "result.json").read_text())
    return {gid: score for gid, (score, _) in data["cells"].items()}


def outputs(fault_run, student) -> str:
    nb = nbformat.read(fault_run["results"] / student / "01_intro" / "01_intro.ipynb", as_version=4)
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


# ----------------------------------------------------------------------------------- the faults


def test_every_student_gets_exactly_one_row(fault_run):
    expected = {"reference", "stub", "loop", "sleepy", "crash", "hog", "native", "exception", "syntax", "badjson",
                "plainpy", "absent", "edited", "deleted", "moved", "flood", "hostile", "patcher", "snoop", "twofiles",
                "flat", "skipper", "skippy", "added", "kpatch", "spatch", "leaker",
                "exiter", "liar", "midpatch", "internal", "displayhook", "rawresult", "forger", "slowtest"}
    assert set(fault_run["rows"]) == expected
    assert all(r["max_points"] == "10" for r in fault_run["rows"].values())


def test_reference_and_stub(fault_run):
    assert row(fault_run, "reference")[:2] == ("graded", TOTAL)
    assert row(fault_run, "stub")[:2] == ("graded", 0.0)
    assert row(fault_run, "flat")[:2] == ("graded", TOTAL)


def test_infinite_loop_times_out_only_its_own_tests(fault_run):
    status, points, reason = row(fault_run, "loop")
    assert (status, points) == ("timeout", TOTAL - POINTS["test_top_k"]), reason
    assert cells(fault_run, "loop")["test_top_k"] == 0 and "top_k" in reason


def test_notebook_time_limit_keeps_the_points_earned_before_it(fault_run):
    status, points, reason = row(fault_run, "sleepy")
    assert status == "timeout" and f"notebook time limit of {CONFIG['notebook_timeout']} s" in reason, reason
    assert 0 < points < TOTAL and cells(fault_run, "sleepy")["test_fit_matrix_factorization"] == 0


def test_a_run_records_its_kernels_cpu_time_beside_its_wall_time(fault_run):
    """A spinning cell costs CPU time, a sleeping one only wall time: the CPU seconds measure the lesson's work."""
    loop, sleepy, reference = (json.loads((fault_run["results"] / student / "01_intro" / "result.json").read_text())
                               for student in ("loop", "sleepy", "reference"))
    # The loop is the reference plus a cell that spins until its 20 s timeout: however busy the machine (CI runs
    # other tests beside it, so the spin may get half a core), that is seconds of CPU more than the reference.
    assert 0 < reference["execution_cpu_seconds"] < loop["execution_cpu_seconds"] - 2, (reference, loop)
    assert sleepy["execution_cpu_seconds"] < sleepy["execution_seconds"] - 3 * SLEEP, sleepy  # 4 sleeps ran


def test_a_kernel_that_dies_is_an_error_row(fault_run):
    status, points, reason = row(fault_run, "crash")
    assert (status, points) == ("error", 0.0), reason
    assert "died" in reason.lower() or "dead" in reason.lower(), reason


def test_a_kernel_that_exits_after_some_tests_keeps_their_points_and_says_so(fault_run):
    status, points, reason = row(fault_run, "exiter")
    assert (status, points) == ("error", TOTAL - POINTS["test_fit_matrix_factorization"]), reason
    assert "kernel died while running fit_matrix_factorization" in reason


def test_memory_limit_fails_only_the_allocating_exercise(fault_run):
    status, points, reason = row(fault_run, "hog")
    assert (status, points) == ("graded", TOTAL - POINTS["test_top_k"]), reason
    assert cells(fault_run, "hog")["test_top_k"] == 0
    assert "MemoryError" in json.dumps(nbformat.read(
        fault_run["results"] / "hog" / "01_intro" / "01_intro.ipynb", as_version=4).cells)


def test_native_library_logs_on_stderr_cost_no_points(fault_run):
    """nbgrader scores a test cell with stderr output 0; a C++ log line is not the student's error."""
    assert row(fault_run, "native")[:2] == ("graded", TOTAL)
    assert "a compiled library logged this" not in outputs(fault_run, "native")


def test_exception_or_syntax_error_costs_only_the_dependent_tests(fault_run):
    assert row(fault_run, "exception")[:2] == ("graded", TOTAL - POINTS["test_top_k"])
    assert cells(fault_run, "exception")["test_top_k"] == 0
    assert row(fault_run, "syntax")[:2] == ("graded", TOTAL - POINTS["test_norm_weighted_scores"])
    assert cells(fault_run, "syntax")["test_norm_weighted_scores"] == 0


def test_unreadable_files_are_invalid_rows(fault_run):
    status, points, reason = row(fault_run, "badjson")
    assert (status, points) == ("invalid", 0.0) and "invalid JSON" in reason
    status, points, reason = row(fault_run, "plainpy")
    assert (status, points) == ("invalid", 0.0) and "not a jupytext percent script" in reason


def test_missing_lesson(fault_run):
    assert row(fault_run, "absent") == ("missing", 0.0, "no file for this lesson")


@pytest.mark.parametrize("student, words", [("edited", "test_top_k was edited"),
                                            ("deleted", "test_predict was deleted"),
                                            ("moved", "moved")])
def test_tampered_test_cells_are_flagged_and_the_original_tests_run(fault_run, student, words):
    status, points, reason = row(fault_run, student)
    assert status == "tampered" and words in reason, reason
    assert points == TOTAL  # the released tests ran, in their places, on correct code
    assert set(cells(fault_run, student)) == set(POINTS)


@pytest.mark.parametrize("student", ["skipper", "skippy"])
def test_a_stub_with_skip_execution_tags_on_its_tests_scores_nothing(fault_run, student):
    """The tags come from the release, not the submission: the tests run (and fail on the stub)."""
    status, points, reason = row(fault_run, student)
    assert (status, points) == ("tampered", 0.0) and "tags of test cell" in reason, reason
    assert set(cells(fault_run, student)) == set(POINTS)


@pytest.mark.parametrize("student, words", [("kpatch", "the kernel.do_execute was replaced"),
                                            ("spatch", "the session.send was replaced")])
def test_a_stub_that_patches_the_kernel_or_its_messages_is_caught(fault_run, student, words):
    status, points, reason = row(fault_run, student)
    assert (status, points) == ("tampered", 0.0) and words in reason, reason


@pytest.mark.parametrize("student", ["liar", "midpatch", "internal"])
def test_wrong_answers_that_fake_the_comparison_earn_nothing(fault_run, student):
    """A subclass whose comparisons always agree, comparisons patched mid-test, NumPy's internal isclose:
    the tests compare plain data with functions bound before the student's code ran (movierec.checks)."""
    status, points, reason = row(fault_run, student)
    assert points == 0.0 and cells(fault_run, student)["test_affinity_scores"] == 0, (status, reason)
    if student == "midpatch":
        assert status == "tampered" and "movierec.checks.close" in reason, reason


@pytest.mark.parametrize("student", ["displayhook", "rawresult"])
def test_a_result_value_sent_during_a_test_is_not_its_points(fault_run, student):
    """nbgrader scores a test cell by its first execute_result (non-numbers: full marks); only the release's
    test code may produce one, and the course's end in statements — so it is display data, and tampering."""
    status, points, reason = row(fault_run, student)
    assert points == 0.0 and cells(fault_run, student)["test_affinity_scores"] == 0, (status, reason)
    assert status == "tampered" and "test_affinity_scores received a result value" in reason, reason
    graded = nbformat.read(fault_run["results"] / student / "01_intro" / "01_intro.ipynb", as_version=4)
    test = next(c for c in graded.cells if nbgrader_meta(c).get("grade_id") == "test_affinity_scores")
    kinds = [o.output_type for o in test.outputs]
    assert "display_data" in kinds and "execute_result" not in kinds and "error" in kinds, kinds


def test_a_reply_forged_while_a_test_runs_is_caught_and_the_test_fails(fault_run):
    """Scored 2/2, ``graded``, before the grader read every reply up to a check of its own after each test."""
    status, points, reason = row(fault_run, "forger")
    assert (status, points) == ("tampered", 0.0), reason
    assert "test_affinity_scores: the kernel answered the test's request twice" in reason, reason
    assert cells(fault_run, "forger")["test_affinity_scores"] == 0


def test_a_test_interrupted_at_its_time_limit_is_a_timeout_not_a_forgery(fault_run):
    status, points, reason = row(fault_run, "slowtest")
    assert status == "timeout" and "test_top_k" in reason and "twice" not in reason, reason
    assert cells(fault_run, "slowtest")["test_top_k"] == 0 and cells(fault_run, "slowtest")["test_affinity_scores"] == 2


def test_cells_a_student_adds_are_not_run_and_the_row_says_so(fault_run):
    status, points, reason = row(fault_run, "added")
    assert (status, points) == ("graded", TOTAL), reason
    assert "1 code cell you added or changed outside the exercises was not run" in reason
    assert "ADDED CELL RAN" not in outputs(fault_run, "added")


def test_megabytes_of_output_are_truncated(fault_run):
    assert row(fault_run, "flood")[:2] == ("graded", TOTAL)
    notebook = fault_run["results"] / "flood" / "01_intro" / "01_intro.ipynb"
    assert notebook.stat().st_size < 1_000_000  # 15 MB were printed
    assert "output truncated by the grader" in outputs(fault_run, "flood")


def test_in_kernel_tampering_is_undone_before_every_test(fault_run):
    """Errors hidden, asserts rewritten away, numpy and builtins patched: the tests still fail."""
    status, points, reason = row(fault_run, "hostile")
    assert (status, points) == ("tampered", 0.0), reason
    for words in ("showtraceback", "input_transformers_post", "numpy.allclose", "builtins.AssertionError",
                  "math.isclose"):
        assert words in reason
    status, points, reason = row(fault_run, "patcher")
    assert status == "tampered" and "numpy.allclose" in reason, reason
    assert points == TOTAL - POINTS["test_affinity_scores"]  # a wrong answer stays wrong


@pytest.mark.skipif(not can_isolate(), reason="isolation needs root and Linux namespaces")
def test_student_code_cannot_read_secrets_write_grades_or_reach_the_network(fault_run):
    text = outputs(fault_run, "snoop")
    probes = dict(re.findall(r"PROBE (.+?): (OK|BLOCKED)", text))
    assert probes and all(result == "BLOCKED" for result in probes.values()), probes
    assert "INTERFACES ['lo']" in text and "UID 0" not in text
    assert row(fault_run, "snoop")[:2] == ("graded", TOTAL)
    grades = fault_run["csv"].read_text(encoding="utf-8")
    assert "planted" not in grades and grades.count("\n") == 1 + len(fault_run["rows"])


def test_kernels_read_the_course_data_through_a_symlinked_data_folder(fault_run):
    """TFDS_DATA_DIR is a symlink under /tmp here; the kernel must still find MovieLens (read-only)."""
    assert "DATA True" in outputs(fault_run, "snoop")


def test_two_files_for_one_lesson_the_newest_wins(fault_run):
    status, points, reason = row(fault_run, "twofiles")
    assert (status, points) == ("graded", TOTAL)
    assert "graded the newest, 01_intro.ipynb; ignored 01_intro.py" in reason


def test_feedback_never_shows_hidden_tests(fault_run):
    hidden = hidden_test_lines()
    assert hidden
    pages = sorted(fault_run["feedback"].glob("*/01_intro.html"))
    assert len(pages) >= 12
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))  # code without markup
        assert "visible tests passed" in text or "NotImplementedError" in text  # the visible tests are shown
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{page}: {leaked[:3]}"
    full = (fault_run["results"] / "stub" / "01_intro" / "01_intro.ipynb").read_text(encoding="utf-8")
    assert any(json.dumps(line)[1:-1] in full for line in hidden)  # the instructor's copy has them


def test_feedback_drops_hidden_tests_a_student_printed_and_escapes_their_html(fault_run):
    """The leaker printed the running test cell, hidden tests included, and emitted <script> tags."""
    hidden = [line for line in hidden_test_lines() if line in test_cell_source("test_top_k")]
    assert hidden, "test_top_k has hidden tests to leak"
    graded = (fault_run["results"] / "leaker" / "01_intro" / "01_intro.ipynb").read_text(encoding="utf-8")
    assert any(json.dumps(line)[1:-1] in graded for line in hidden), "the attack did print the hidden tests"
    page = (fault_run["feedback"] / "leaker" / "01_intro.html").read_text(encoding="utf-8")
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert not [line for line in hidden if line in text]
    assert "<script>alert(" not in page and "<b>bold</b>" not in page
    assert row(fault_run, "leaker")[:2] == ("graded", TOTAL)


def test_cell_source(grade_id: str) -> str:
    return next(c.source for c in read_source(INTRO.solution).cells if nbgrader_meta(c).get("grade_id") == grade_id)


test_cell_source.__test__ = False  # a helper, not a test


def hidden_test_lines() -> list[str]:
    """Lines only the hidden tests have (a line the student edition also has is no secret)."""
    public = INTRO.student.read_text(encoding="utf-8")
    lines = []
    for cell in read_source(INTRO.solution).cells:
        inside = re.findall(f"{re.escape(BEGIN_HIDDEN)}\n(.*?){re.escape(END_HIDDEN)}", cell.source, re.S)
        for block in inside:
            lines += [line.strip() for line in block.splitlines() if len(line.strip()) >= 25]
    return [line for line in lines if line not in public]


def test_the_whole_class_ran_in_parallel_in_minutes(fault_run):
    results = [json.loads(p.read_text()) for p in fault_run["results"].glob("*/01_intro/result.json")]
    busy = sum(r["seconds"] for r in results)
    assert fault_run["seconds"] < busy  # two workers overlapped
    assert {r["sandbox"] for r in results} == {"isolated" if can_isolate() else "limits-only"}


# ----------------------------------------------------------------------------------- determinism, resume


@pytest.fixture(scope="session")
def small_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    subs = root / "submissions"
    shutil.copy(INTRO.solution, (subs / "ann").mkdir(parents=True) or subs / "ann" / "01_intro.py")
    write_nb(subs / "ben" / "01_intro.ipynb", crafted(solve=("affinity_scores", "predict")))
    write_nb(subs / "cat" / "01_intro.ipynb", crafted(
        extra_cells=["import random\nprint('DRAWS', hash('movierec'), random.random(), np.random.rand())"]))
    write_py(subs / "dan" / "01_intro.py", crafted(prefix={"predict": "raise RuntimeError('oops')"}))
    return subs


def grade_small(subs: Path, root: Path, jobs: int, name: str) -> Path:
    out = root / f"{name}.csv"
    autograde(subs, out, workspace=root / f"ws-{name}", lessons=[INTRO], config=GradingConfig(**CONFIG), jobs=jobs,
              progress=False)
    return out


def printed_draws(graded: Path) -> str:
    """What cat's extra cell printed, from its stream outputs joined: a loaded kernel may flush one print in parts."""
    cell = next(c for c in nbformat.read(graded, as_version=4).cells if "DRAWS" in c.source)
    return "".join(o.text for o in cell.outputs if o.output_type == "stream").strip()


def test_parallel_serial_and_resumed_runs_agree(small_class, tmp_path):
    parallel = grade_small(small_class, tmp_path, 2, "parallel")
    serial = grade_small(small_class, tmp_path, 1, "serial")
    assert parallel.read_bytes() == serial.read_bytes()
    rows = list(csv.DictReader(open(parallel, newline="", encoding="utf-8")))
    assert [(r["student"], r["points"]) for r in rows] == [("ann", "10"), ("ben", "3"), ("cat", "10"), ("dan", "9")]
    draws = [printed_draws(tmp_path / f"ws-{n}" / "results" / "cat" / "01_intro" / "01_intro.ipynb")
             for n in ("parallel", "serial")]
    assert draws[0].startswith("DRAWS ") and draws[0] == draws[1]  # hash seed and random seeds are fixed by the grader
    before = {p: p.stat().st_mtime for p in (tmp_path / "ws-parallel" / "results").glob("*/*/result.json")}
    resumed = grade_small(small_class, tmp_path, 2, "parallel")  # same workspace: nothing to do
    assert resumed.read_bytes() == serial.read_bytes()
    assert before == {p: p.stat().st_mtime for p in before}


def test_one_job_is_a_self_contained_command_and_merge_combines_results(small_class, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = tmp_path / "shard-results"  # as if copied back from two CI jobs
    for student, name in (("ben", "01_intro.ipynb"), ("dan", "01_intro.py")):
        process = subprocess.run(
            [sys.executable, "-m", "grader", "autograde-one", str(small_class / student / name), "--student", student,
             "--lesson", "01_intro", "--workspace", str(tmp_path / "ws-one"), "--results", str(results),
             "--cell-timeout", "30", "--notebook-timeout", "120", "--max-output", "100000"],
            capture_output=True, text=True, env=env, cwd=ROOT)
        assert process.returncode == 0, process.stderr[-2000:]
        assert json.loads(process.stdout.splitlines()[-1])["status"] == "graded"
    roster = tmp_path / "roster.csv"
    roster.write_text("student,aliases\nben,\ndan,\neve,\n", encoding="utf-8")
    out = tmp_path / "merged" / "grades.csv"
    process = subprocess.run([sys.executable, "-m", "grader", "merge", str(results), "--out", str(out),
                              "--roster", str(roster), "--lesson", "01_intro"], capture_output=True, text=True,
                             env=env, cwd=ROOT)
    assert process.returncode == 0, process.stderr
    rows = list(csv.DictReader(open(out, newline="", encoding="utf-8")))
    assert [(r["student"], r["points"], r["status"]) for r in rows] == [
        ("ben", "3", "graded"), ("dan", "9", "graded"), ("eve", "0", "missing")]
    assert (out.parent / "feedback" / "ben" / "01_intro.html").exists()
    assert "3 graded" not in process.stderr and "2 graded" in process.stderr


def grader_processes(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker`` (a workspace path): workers, kernels."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_a_killed_run_resumes_to_the_grades_of_a_fresh_run(small_class, tmp_path):
    """SIGKILL the grader after its first result; the rerun grades only what is left, to the same CSV."""
    fresh = grade_small(small_class, tmp_path, 1, "fresh")
    workspace, out = tmp_path / "ws-killed", tmp_path / "killed.csv"
    command = [sys.executable, "-m", "grader", "autograde", str(small_class), "--out", str(out), "--workspace",
               str(workspace), "--lesson", "01_intro", "--jobs", "1", "--no-progress", "--cell-timeout",
               str(CONFIG["cell_timeout"]), "--notebook-timeout", str(CONFIG["notebook_timeout"]), "--max-output",
               str(CONFIG["max_output_bytes"])]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = workspace / "results"
    deadline = time.monotonic() + 300
    while not list(results.glob("*/01_intro/result.json")):
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no result after 300 s"
        time.sleep(0.1)
    process.kill()
    process.wait()
    finished = {p: p.stat().st_mtime_ns for p in results.glob("*/01_intro/result.json")}
    assert 1 <= len(finished) < 4 and not out.exists()
    deadline = time.monotonic() + 30
    while grader_processes(str(workspace)) and time.monotonic() < deadline:  # the worker dies with the grader
        time.sleep(0.2)
    assert not grader_processes(str(workspace)), "a grading worker outlived the killed grader"
    resumed = grade_small(small_class, tmp_path, 2, "killed")  # same workspace and results: a resume
    assert resumed.read_bytes() == fresh.read_bytes()
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # finished work was not graded again


def test_without_the_sandbox_grading_still_works_and_says_so(tmp_path, capsys):
    """The degraded mode (no namespaces): same points, a warning, and ``limits-only`` on the result."""
    subs = tmp_path / "submissions"
    shutil.copy(INTRO.solution, (subs / "ann").mkdir(parents=True) or subs / "ann" / "01_intro.py")
    grades = autograde(subs, tmp_path / "grades.csv", workspace=tmp_path / "ws", lessons=[INTRO],
                       config=GradingConfig(**CONFIG, sandbox=False), jobs=1, progress=False)
    assert [(g.status, g.points) for g in grades] == [("graded", TOTAL)]
    result = json.loads((tmp_path / "ws" / "results" / "ann" / "01_intro" / "result.json").read_text())
    assert result["sandbox"] == "limits-only"
    assert "WARNING: kernels run with resource limits only, not isolated: --no-sandbox" in capsys.readouterr().err


def test_course_runs_also_keep_native_library_logs_out_of_test_cells(tmp_path, monkeypatch):
    """``make course`` grades the reference without the sandbox; a library's fd-2 log must not cost it points.

    ipykernel stops capturing file descriptors when it sees ``PYTEST_CURRENT_TEST`` in its
    environment, which would hide the problem here; the kernel must run as under ``make course``.
    """
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    from grader.grading.course import COURSE_CONFIG
    from grader.grading.engine import Entry, grade

    submission = tmp_path / "native.py"
    write_py(submission, crafted(replace={"affinity_scores": solution_code("affinity_scores") + NATIVE_LOG}))
    config = COURSE_CONFIG.with_env(COURSE_QUICK="1")
    run = grade([Entry("native", INTRO, submission)], workspace=tmp_path / "course", results=tmp_path / "results",
                config=config, jobs=1, progress=False)
    result = run.results[0]
    assert (result.status, result.points, result.sandbox) == ("graded", TOTAL, "limits-only"), result
    graded = nbformat.read(tmp_path / "results" / "native" / "01_intro" / "01_intro.ipynb", as_version=4)
    assert "a compiled library logged this" not in json.dumps([c.get("outputs", []) for c in graded.cells])


# ----------------------------------------------------------------------------------- the sandbox from outside


def test_every_result_says_which_limits_held(fault_run):
    from grader.sandbox.cgroups import limits_mode

    results = [json.loads(p.read_text()) for p in fault_run["results"].glob("*/01_intro/result.json")]
    graded = [r for r in results if r["sandbox"] != "not run"]
    assert graded and {r["limits"] for r in graded} == {limits_mode() if can_isolate() else "rlimits"}


@pytest.mark.skipif(not can_isolate(), reason="isolation needs root, Linux namespaces and bubblewrap")
def test_fan_out_kernels_see_no_other_student_no_other_checkout_and_get_their_own_uids(tmp_path):
    """``autograde-one`` with the class outside /tmp, while another grader holds the first uid range.

    The audit's kernel read another student's file next to its own and another checkout's
    ``solutions/``: with the allow-list neither exists in its view, nor does ``/run/lock``.
    """
    from grader.sandbox.cgroups import limits_mode
    from grader.sandbox.uids import STRIDE, lease_uids

    base = next((Path(p) for p in ("/srv", "/opt") if os.access(p, os.W_OK)), None)
    if base is None:
        pytest.skip("no writable /srv or /opt for a class outside /tmp")
    root = base / f"grader-fanout-{os.getpid()}-{time.time_ns()}"
    try:
        other = root / "other-checkout" / "solutions" / "01_intro.py"
        other.parent.mkdir(parents=True)
        shutil.copy(INTRO.solution, other)
        bob = write_nb(root / "class" / "bob" / "01_intro.ipynb", crafted())
        # (/root is not probed here: it lists as the way to pyenv's Python; tests/test_sandbox.py checks it.)
        secrets = {"another student": str(bob), "another checkout": str(other), "homes": "/home/anyone",
                   "host run": "/run/lock"}
        writes = {"run lock": f"/run/lock/grader-{os.getpid()}", "class": str(root / "class" / "planted.csv")}
        alice = write_nb(root / "class" / "alice" / "01_intro.ipynb",
                         crafted(extra_cells=[f"PATHS = {secrets!r}\nWRITES = {writes!r}\n" + PROBE]))
        assert bob.read_bytes() and other.read_bytes()  # the control: both are there for anyone outside
        with lease_uids(1) as held:  # another grading run on this machine
            process = subprocess.run(
                [sys.executable, "-m", "grader", "autograde-one", str(alice), "--student", "alice", "--lesson",
                 "01_intro", "--workspace", str(tmp_path / "ws"), "--cell-timeout", "30", "--notebook-timeout", "120"],
                capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
        assert process.returncode == 0, process.stderr[-2000:]
        result = json.loads((tmp_path / "ws" / "results" / "alice" / "01_intro" / "result.json").read_text())
        assert (result["status"], result["points"]) == ("graded", TOTAL), result["reason"]
        assert (result["sandbox"], result["limits"]) == ("isolated", limits_mode())
        nb = nbformat.read(tmp_path / "ws" / "results" / "alice" / "01_intro" / "01_intro.ipynb", as_version=4)
        text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        probes = dict(re.findall(r"PROBE (.+?): (OK|BLOCKED)", text))
        assert len(probes) == 2 * len(secrets) + len(writes) + 1, probes
        assert not [k for k, v in probes.items() if v != "BLOCKED"], probes
        assert not Path(writes["run lock"]).exists() and not Path(writes["class"]).exists()
        uid = int(re.search(r"UID (\d+)", text).group(1))
        assert uid not in range(held.base, held.base + STRIDE), (uid, held.base)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------------- the worker's memory, processes


def worker_peaks(marker: str, peaks: dict[int, int], stop) -> None:
    """Record the peak RSS (``VmHWM``, MiB) of every grading worker whose command line mentions ``marker``."""
    while not stop.is_set():
        for pid in grader_processes(marker):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            if b"grader.grading.pool" in command:
                hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
                if hwm:
                    peaks[pid] = max(peaks.get(pid, 0), int(hwm.group(1)) >> 10)
        stop.wait(0.05)


# One print of 300 MB, one display_data of 100 MB while a test runs, an exception whose message (and so the
# kernel's reply) is 6 MB: each larger than anything the worker keeps of a cell.
HUGE_DISPLAY = r'''

_real_top_k = top_k
def top_k(*args, **kwargs):
    from IPython.display import display
    display({"text/plain": "y" * 100_000_000}, raw=True)
    return _real_top_k(*args, **kwargs)
'''


def test_worker_memory_stays_bounded_whatever_the_kernel_prints(tmp_path):
    """The audit's 400 MB print took the worker to 1.3 GiB. Now no message over the cap is read at all:
    the worker's peak RSS stays under the size of the one print, and the grade is the tests' (truncated
    output costs nothing; the 6 MB exception costs only the test of its exercise)."""
    import threading

    subs = tmp_path / "submissions"
    write_nb(subs / "huge" / "01_intro.ipynb", crafted(
        extra_cells=["print('x' * 300_000_000)"], replace={"top_k": solution_code("top_k") + HUGE_DISPLAY},
        prefix={"predict": "raise ValueError('z' * 6_000_000)"}))
    peaks: dict[int, int] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=worker_peaks, args=(str(tmp_path), peaks, stop), daemon=True)
    watcher.start()
    try:
        grades = autograde(subs, tmp_path / "grades.csv", workspace=tmp_path / "ws", lessons=[INTRO], jobs=1,
                           config=GradingConfig(cell_timeout=300, notebook_timeout=900, max_output_bytes=100_000),
                           progress=False)
    finally:
        stop.set()
        watcher.join()
    assert peaks, "no grading worker was seen"
    assert max(peaks.values()) < 300, f"worker peak RSS {peaks} MiB: it held the 300 MB print"
    [grade] = grades
    assert (grade.status, grade.points) == ("graded", TOTAL - POINTS["test_predict"]), grade.reason
    result = json.loads((tmp_path / "ws" / "results" / "huge" / "01_intro" / "result.json").read_text())
    assert {k: v[0] for k, v in result["cells"].items()} == {**POINTS, "test_predict": 0}
    assert len(result["truncated"]) >= 3, result["truncated"]  # the print, the display, the exception
    notebook = tmp_path / "ws" / "results" / "huge" / "01_intro" / "01_intro.ipynb"
    assert notebook.stat().st_size < 2_000_000
    graded = nbformat.read(notebook, as_version=4)
    test = next(c for c in graded.cells if nbgrader_meta(c).get("grade_id") == "test_top_k")
    assert "output truncated by the grader" in json.dumps(test.outputs)  # said on stdout: the test kept its points
    predict = next(c for c in graded.cells if nbgrader_meta(c).get("grade_id") == "predict")
    assert any(o.get("ename") == "OutputTooLarge" for o in predict.outputs), predict.outputs


FORK_BOMB = r'''
import os, signal, time
if os.fork() == 0:  # a fork bomb: every process forks until it cannot, then holds its slot
    while True:
        try:
            os.fork()
        except OSError:
            signal.pause()
time.sleep(5)
print("PROCESSES", sum(name.isdigit() for name in os.listdir("/proc")), "UID", os.getuid(), flush=True)
'''


@pytest.mark.skipif(not can_isolate(), reason="without isolation a root kernel has no process limit (README)")
def test_a_fork_bomb_is_held_by_its_kernels_limit_and_the_class_still_grades(tmp_path):
    """A kernel forks without end while another student's notebook grades beside it: the bomb stops at the
    kernel's process limit, that student's tests still run, the neighbour is graded, nothing outlives it."""
    from grader.sandbox.cgroups import limits_mode

    subs = tmp_path / "submissions"
    write_nb(subs / "bomber" / "01_intro.ipynb", crafted(extra_cells=[FORK_BOMB]))
    shutil.copy(INTRO.solution, (subs / "ann").mkdir(parents=True) or subs / "ann" / "01_intro.py")
    limit = 100
    grades = autograde(subs, tmp_path / "grades.csv", workspace=tmp_path / "ws", lessons=[INTRO], jobs=2,
                       config=GradingConfig(**{**CONFIG, "cell_timeout": 120, "notebook_timeout": 300},
                                            processes=limit), progress=False)
    rows = {g.student: (g.status, g.points) for g in grades}
    assert rows == {"ann": ("graded", TOTAL), "bomber": ("graded", TOTAL)}, [g.reason for g in grades]
    result = json.loads((tmp_path / "ws" / "results" / "bomber" / "01_intro" / "result.json").read_text())
    assert (result["sandbox"], result["limits"]) == ("isolated", limits_mode())
    text = outputs({"results": tmp_path / "ws" / "results"}, "bomber")
    count, uid = map(int, re.search(r"PROCESSES (\d+) UID (\d+)", text).groups())
    assert 20 < count <= limit, count  # it forked, and was stopped at the limit
    assert not processes_of(uid), f"processes of the kernel's uid {uid} outlived it"


def processes_of(uid: int) -> list[int]:
    """Pids of the processes running as ``uid`` (real uid)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if re.search(rf"^Uid:\s+{uid}\s", status.read_text(), re.M):
                found.append(int(status.parent.name))
        except OSError:
            continue  # it ended meanwhile
    return found
