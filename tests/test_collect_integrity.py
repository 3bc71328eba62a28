"""Collection under a hostile class (issue 13): links, special files, Unicode names, layouts, sizes.

Each attack of the audit is crafted in a temporary submissions folder and fed to
:func:`grader.grading.collect.collect` (no kernel), or to :func:`grader.grading.autograde.autograde` with
the release and the workers replaced by stand-ins, so that what is checked is the
collection and the rows it leads to. One slow test runs the real pipeline on Unicode names.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import stat
import unicodedata
from pathlib import Path

import pytest

from grader.grading.collect import CollectError, collect, normalise_id, read_roster
from grader.grading.config import GradingConfig
from grader.grading.results import Result, merge, student_folder
from grader.lessons import Lesson, find_lesson

INTRO = find_lesson("01_intro")
LESSONS = [INTRO, Lesson("04_retrieval"), Lesson("05_ranking")]
NFD_ZOE = unicodedata.normalize("NFD", "Zoë")  # as a macOS zip spells it


def touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def link(path: Path, target: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def pairs(found) -> set[tuple[str, str]]:
    return {(s.student, s.lesson.slug) for s in found.submissions}


@pytest.fixture
def secrets(tmp_path) -> Path:
    """A stand-in for the instructor's ``solutions/`` folder, outside the submissions."""
    folder = tmp_path / "solutions"
    touch(folder / "01_intro.py", "# %%\nSOLUTION = 1\n")
    touch(folder / "04_retrieval.py", "# %%\nSOLUTION = 4\n")
    return folder


# ------------------------------------------------------------------------------ 1. links, special files


def test_symbolic_links_anywhere_are_rejected_not_followed(tmp_path, secrets):
    subs = tmp_path / "subs"
    alice = touch(subs / "alice" / "01_intro.py")
    touch(subs / "alice" / "05_ranking.py")
    link(subs / "alice" / "05_ranking" / "05_ranking.ipynb", secrets / "01_intro.py")  # beside a real file
    link(subs / "mallory" / "01_intro.py", secrets / "01_intro.py")  # file link in a student folder
    link(subs / "trudy", secrets)  # a student folder that is a link to solutions/
    link(subs / "eve" / "04_retrieval", secrets)  # a lesson folder that is a link
    link(subs / "oscar_01_intro.py", alice)  # a flat file linked to another student's work
    link(subs / "peggy_04_retrieval.py", tmp_path / "nowhere.py")  # dangling: still a row
    link(subs / "linkdir" / "stuff", secrets)  # names no lesson: a note, no row
    found = collect(subs, LESSONS)

    assert pairs(found) == {("alice", "01_intro"), ("alice", "05_ranking")}
    assert all(not s.path.is_symlink() and subs in s.path.parents for s in found.submissions)
    ranking = next(s for s in found.submissions if s.lesson.slug == "05_ranking")
    assert ranking.path.name == "05_ranking.py"
    assert f"symbolic link rejected: {subs / 'alice' / '05_ranking' / '05_ranking.ipynb'}" in ranking.note()
    assert found.invalid[("mallory", "01_intro")] == f"symbolic link rejected: {subs / 'mallory' / '01_intro.py'}"
    assert {slug for student, slug in found.invalid if student == "trudy"} == {lesson.slug for lesson in LESSONS}
    assert found.invalid[("trudy", "04_retrieval")] == f"symbolic link rejected: {subs / 'trudy'}"
    assert found.invalid[("eve", "04_retrieval")].startswith("symbolic link rejected: ")
    assert found.invalid[("oscar", "01_intro")] == f"symbolic link rejected: {subs / 'oscar_01_intro.py'}"
    assert ("peggy", "04_retrieval") in found.invalid
    assert {"trudy", "oscar", "peggy", "mallory", "eve", "linkdir"} <= set(found.students)
    assert not any(key[0] == "linkdir" for key in found.invalid)
    assert any(r.path == subs / "linkdir" / "stuff" for r in found.rejected)
    assert len(found.rejected) == 7


def test_special_files_are_rejected_without_being_opened(tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    os.mkfifo(subs / "alice" / "01_intro.py")  # opening it for reading would block the grader
    monkeypatch.chdir(subs)  # a relative socket path stays under the AF_UNIX length limit
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("bob_01_intro.ipynb")
    try:
        device = subs / "carol" / "04_retrieval.py"
        device.parent.mkdir()
        try:
            os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null
        except PermissionError:
            device = None  # only root makes devices; the FIFO and socket still count
        found = collect(subs, LESSONS)
    finally:
        server.close()
    assert found.submissions == []
    assert found.invalid[("alice", "01_intro")].startswith("special file (FIFO) rejected: ")
    assert found.invalid[("bob", "01_intro")].startswith("special file (socket) rejected: ")
    if device is not None:
        assert found.invalid[("carol", "04_retrieval")] == f"special file (device) rejected: {device}"


def test_an_exchange_lesson_folder_that_is_a_link_is_rejected(tmp_path, secrets):
    subs = tmp_path / "exchange"
    touch(subs / "submitted" / "u1" / "04_retrieval" / "04_retrieval.ipynb")
    link(subs / "submitted" / "u1" / "01_intro", secrets)
    found = collect(subs, LESSONS, layout="exchange")
    assert pairs(found) == {("u1", "04_retrieval")}
    assert found.invalid == {("u1", "01_intro"): f"symbolic link rejected: {subs / 'submitted' / 'u1' / '01_intro'}"}
    assert collect(subs, LESSONS).layout == "folders"  # auto: a linked lesson folder makes it ambiguous


# ------------------------------------------------------------------------------ 2. Unicode names


def test_unicode_names_are_kept_and_never_merged(tmp_path):
    subs = tmp_path / "subs"
    touch(subs / "李雷" / "01_intro.py")
    touch(subs / "Ольга-04_retrieval (1).ipynb")
    touch(subs / "Zoë" / "01_intro.py")
    touch(subs / "Zoé" / "01_intro.py")
    touch(subs / "अनु" / "05_ranking.py")  # Devanagari vowel signs are marks, not letters
    touch(subs / "alice_04_retrieval.py")
    touch(subs / "bob-04_retrieval (1).ipynb")
    found = collect(subs, LESSONS)
    assert pairs(found) == {("李雷", "01_intro"), ("Ольга", "04_retrieval"), ("Zoë", "01_intro"),
                            ("Zoé", "01_intro"), ("अनु", "05_ranking"), ("alice", "04_retrieval"),
                            ("bob", "04_retrieval")}
    assert found.unmatched == []


def test_decomposed_and_composed_spellings_are_one_student_in_nfc(tmp_path):
    subs = tmp_path / "subs"
    touch(subs / NFD_ZOE / "01_intro.py")
    touch(subs / "Zoë_04_retrieval.py")
    roster = touch(tmp_path / "roster.csv", f"student\n{NFD_ZOE}\n")
    found = collect(subs, LESSONS, roster)
    assert pairs(found) == {("Zoë", "01_intro"), ("Zoë", "04_retrieval")}
    assert found.students == ["Zoë"] and unicodedata.is_normalized("NFC", found.students[0])
    assert read_roster(roster) == {"Zoë": "Zoë"}
    assert not any("not on the roster" in note for note in found.notes)


def test_two_names_that_become_one_id_are_an_error_naming_both(tmp_path):
    subs = tmp_path / "subs"
    touch(subs / "Alice Smith" / "01_intro.py")
    touch(subs / "Alice_Smith_04_retrieval.py")
    with pytest.raises(CollectError, match=r"'Alice Smith' and 'Alice_Smith' both become student id 'Alice_Smith'.*"
                                           r"Rename"):
        collect(subs, LESSONS)


def test_ids_and_folders_of_unicode_names():
    assert normalise_id("Alice Smith") == "Alice_Smith"
    assert normalise_id(f" {NFD_ZOE} ") == "Zoë"
    assert normalise_id("李雷") == "李雷" and normalise_id("a/b\nc") == "a_b_c"
    assert student_folder("alice") == "alice"  # existing results and feedback folders keep their names
    folders = {name: student_folder(name) for name in ("Zoë", "Zoé", "李雷", "Ольга", "Zoe")}
    assert len(set(folders.values())) == len(folders)
    assert folders["Zoë"].startswith("Zoe~") and folders["Zoe"] == "Zoe"
    assert student_folder(NFD_ZOE) == folders["Zoë"]
    assert all(f.isascii() and "/" not in f and not f.startswith(".") for f in folders.values())


def test_results_and_feedback_of_zoe_and_zoe_stay_apart(tmp_path):
    results, feedback = tmp_path / "results", tmp_path / "feedback"
    for student, points in (("Zoë", 10), ("Zoé", 0)):
        result = Result(student, "01_intro", points, 10, "graded", sandbox="isolated").write(results)
        (result.folder(results) / "feedback.html").write_text(student, encoding="utf-8")
    grades = merge([results], tmp_path / "grades.csv", feedback=feedback)
    assert [(g.student, g.points) for g in grades] == [("Zoé", 0), ("Zoë", 10)]
    with open(tmp_path / "grades.csv", newline="", encoding="utf-8") as fh:
        assert [r["student"] for r in csv.DictReader(fh)] == ["Zoé", "Zoë"]
    for student in ("Zoë", "Zoé"):
        assert (feedback / student_folder(student) / "01_intro.html").read_text(encoding="utf-8") == student


# ------------------------------------------------------------------------------ 3. layouts


def test_a_student_named_submitted_does_not_hide_the_class(tmp_path):
    subs = tmp_path / "subs"
    touch(subs / "submitted" / "01_intro.py")
    touch(subs / "alice" / "01_intro.py")
    touch(subs / "bob_01_intro.py")
    found = collect(subs, LESSONS)
    assert found.layout == "folders"
    assert pairs(found) == {("submitted", "01_intro"), ("alice", "01_intro"), ("bob", "01_intro")}


def test_exchange_layout_is_taken_only_when_unambiguous(tmp_path):
    subs = tmp_path / "subs"
    touch(subs / "submitted" / "u1" / "01_intro" / "01_intro.ipynb")
    touch(subs / "submitted" / "u2" / "04_retrieval" / "04_retrieval.ipynb")
    touch(subs / ".DS_Store")
    assert collect(subs, LESSONS).layout == "exchange"
    assert pairs(collect(subs, LESSONS)) == {("u1", "01_intro"), ("u2", "04_retrieval")}
    assert collect(subs, LESSONS, layout="folders").students == ["submitted"]

    touch(subs / "submitted" / "u2" / "notes.txt")  # not only lesson folders: ambiguous
    assert collect(subs, LESSONS).layout == "folders"
    assert collect(subs, LESSONS, layout="exchange").layout == "exchange"
    (subs / "submitted" / "u2" / "notes.txt").unlink()
    touch(subs / "alice" / "01_intro.py")  # a second top-level entry: ambiguous
    assert collect(subs, LESSONS).layout == "folders"


def test_explicit_exchange_layout_without_its_folder_is_an_error(tmp_path):
    touch(tmp_path / "subs" / "alice" / "01_intro.py")
    with pytest.raises(CollectError, match="no such folder.*--layout folders"):
        collect(tmp_path / "subs", LESSONS, layout="exchange")


def test_nothing_to_grade_is_an_error_saying_what_was_found(tmp_path):
    subs = tmp_path / "subs"
    touch(subs / "notes.txt")
    touch(subs / "alice" / "readme.md")
    found = collect(subs, LESSONS)
    with pytest.raises(CollectError) as error:
        found.require_submissions()
    message = str(error.value)
    assert "no submission to grade" in message and "alice/" in message and "notes.txt" in message
    assert "--layout exchange" in message and "alice_04_retrieval.py" in message
    touch(subs / "alice" / "01_intro.py")
    collect(subs, LESSONS).require_submissions()  # something to grade: no error


def test_the_command_line_exits_non_zero_when_nothing_is_graded(tmp_path, capsys):
    from grader.__main__ import main

    subs = tmp_path / "subs"
    touch(subs / "submitted" / "readme.md")
    out = tmp_path / "grades.csv"
    code = main(["autograde", str(subs), "--out", str(out), "--lesson", "01_intro", "--no-sandbox",
                 "--workspace", str(tmp_path / "ws"), "--no-progress"])
    assert code != 0 and not out.exists()
    assert "no submission to grade" in capsys.readouterr().err
    assert main(["autograde", str(subs), "--out", str(out), "--layout", "exchange", "--lesson", "01_intro",
                 "--workspace", str(tmp_path / "ws")]) != 0  # submitted/ holds no student folder


# ------------------------------------------------------------------------------ 4. size cap


def test_oversized_files_are_invalid_rows_and_never_read(tmp_path):
    subs = tmp_path / "subs"
    big = subs / "alice" / "01_intro.ipynb"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as fh:
        fh.truncate(40 << 20)  # 40 MB, sparse
    touch(subs / "bob_01_intro.py", "x" * 2048)
    found = collect(subs, LESSONS)  # the default cap, 20 MB
    assert pairs(found) == {("bob", "01_intro")}
    assert found.invalid[("alice", "01_intro")] == (
        f"file too large: {big} is 40 MB, over the 20 MB cap (--max-file-size); it was not read")
    small_cap = collect(subs, LESSONS, max_file_size=1024)
    assert pairs(small_cap) == set()
    assert "is 2 KB, over the 1 KB cap" in small_cap.invalid[("bob", "01_intro")]


def test_the_size_cap_comes_from_the_command_line_or_toml_and_not_the_resume_key(tmp_path):
    from grader.__main__ import grading_config, parse

    config_file = touch(tmp_path / "grading.toml", "[autograde]\nmax_file_size = 4096\n")
    assert grading_config(parse(["autograde", "subs", "--config", str(config_file)])).max_file_size == 4096
    args = parse(["autograde", "subs", "--config", str(config_file), "--max-file-size", "5M", "--layout", "folders"])
    assert (grading_config(args).max_file_size, args.layout) == (5 << 20, "folders")
    assert grading_config(parse(["autograde", "subs"])).max_file_size == 20 << 20
    assert GradingConfig(max_file_size=1).key() == GradingConfig().key()
    with pytest.raises(SystemExit):
        parse(["autograde", "subs", "--layout", "zip"])


# ------------------------------------------------------------------------------ the rows autograde writes


@pytest.fixture
def fake_grading(monkeypatch):
    """``autograde`` with a stand-in release and workers: a job scores 10 if its file says so, else 0."""
    import grader.grading.engine as engine
    import grader.grading.pool as pool

    jobs: list = []

    class Release:
        def __init__(self, folder, edition="instructor"):
            pass

        def prepare(self, lessons):
            return {lesson.slug: "hash" for lesson in lessons}

        def max_points(self, slug):
            return 10.0

    def run_jobs(todo, workers, workspace, results, config, hide, progress=True, max_points=None):
        for job in todo:
            jobs.append(job)
            points = 10.0 if Path(job.path).read_text(encoding="utf-8") == "full" else 0.0
            result = Result(job.student, job.lesson, points, 10.0, "graded", key=job.key, sandbox="fake").write(results)
            (result.folder(results) / "feedback.html").write_text(job.student, encoding="utf-8")

    monkeypatch.setattr(engine, "Release", Release)
    monkeypatch.setattr(pool, "run_jobs", run_jobs)
    monkeypatch.setattr("grader.grading.course_data.ensure_datasets", lambda: None)
    return jobs


def test_autograde_rows_for_unicode_students_and_rejected_entries(tmp_path, secrets, fake_grading):
    from grader.grading.autograde import autograde

    subs = tmp_path / "subs"
    touch(subs / "Zoë" / "01_intro.py", "full")
    touch(subs / "Zoé" / "01_intro.py", "stub")
    touch(subs / "李雷_01_intro.py", "full")
    link(subs / "mallory" / "01_intro.py", secrets / "01_intro.py")
    link(subs / "trudy", secrets)
    out = tmp_path / "grades.csv"
    autograde(subs, out, tmp_path / "ws", [INTRO], GradingConfig(sandbox=False), progress=False, verbose=False)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert {name: (r["points"], r["status"]) for name, r in rows.items()} == {
        "Zoë": ("10", "graded"), "Zoé": ("0", "graded"), "李雷": ("10", "graded"),
        "mallory": ("0", "invalid"), "trudy": ("0", "invalid")}
    assert rows["mallory"]["reason"] == f"symbolic link rejected: {subs / 'mallory' / '01_intro.py'}"
    assert rows["trudy"]["reason"] == f"symbolic link rejected: {subs / 'trudy'}"
    assert sorted(job.student for job in fake_grading) == ["Zoé", "Zoë", "李雷"]  # links never became jobs
    assert all(Path(job.path).resolve().is_relative_to(subs.resolve()) for job in fake_grading)
    for student in ("Zoë", "Zoé", "李雷"):
        html = out.parent / "feedback" / student_folder(student) / "01_intro.html"
        assert html.read_text(encoding="utf-8") == student
    result = json.loads((Result.folder_of(tmp_path / "ws" / "results", "mallory", "01_intro") / "result.json")
                        .read_text())
    assert result["sandbox"] == "not run" and result["file"] == ""


# ------------------------------------------------------------------------------ autograde-one: the same rule


def test_check_file_applies_the_collection_rule_to_one_named_file(tmp_path, secrets):
    """``autograde-one`` names one file; links, special files and oversized files fail as in a folder walk."""
    from grader.grading.collect import check_file

    real = touch(tmp_path / "class" / "alice" / "01_intro.py", "x" * 2048)
    assert check_file(real) == ""
    assert check_file(link(tmp_path / "class" / "mallory" / "01_intro.py", secrets / "01_intro.py")) == (
        f"symbolic link rejected: {tmp_path / 'class' / 'mallory' / '01_intro.py'}")
    through = link(tmp_path / "class" / "trudy", tmp_path / "class" / "alice") / "01_intro.py"
    assert through.read_text() and check_file(through) == (  # the control: the link works for anyone following it
        f"symbolic link rejected: {tmp_path / 'class' / 'trudy'}")
    fifo = tmp_path / "class" / "bob" / "01_intro.py"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    assert check_file(fifo) == f"special file (FIFO) rejected: {fifo}"
    assert check_file(real, max_file_size=1024) == (
        f"file too large: {real} is 2 KB, over the 1 KB cap (--max-file-size); it was not read")
    assert check_file(real, max_file_size=None) == ""
    assert check_file(real.parent).startswith("not a file: ")
    assert check_file(tmp_path / "nowhere.py").startswith("cannot read the submitted file ")
    os.chdir(real.parent.parent)  # a relative path is checked as given, not resolved
    try:
        assert check_file(Path("mallory") / "01_intro.py").startswith("symbolic link rejected: ")
    finally:
        os.chdir(tmp_path)


def test_autograde_one_rejects_what_autograde_rejects_and_grades_the_rest(tmp_path, secrets, fake_grading, capsys):
    """Through the command line: a link, a FIFO (which would block a worker) and an oversized file are
    ``invalid`` rows that never became a job; a real file is graded; a stale grade does not survive."""
    from grader.__main__ import main

    said: list[str] = []

    def one(path: Path, student: str, *extra: str) -> dict:
        code = main(["autograde-one", str(path), "--student", student, "--lesson", "01_intro", "--workspace",
                     str(tmp_path / "ws"), "--no-sandbox", *extra])
        assert code == 0
        out, err = capsys.readouterr()
        said.append(err)
        return json.loads(out.splitlines()[-1])

    full = touch(tmp_path / "class" / "alice" / "01_intro.py", "full")
    assert (one(full, "alice")["status"], one(full, "alice", "--force")["points"]) == ("graded", 10)
    stale = Result.folder_of(tmp_path / "ws" / "results", "alice", "01_intro")
    (stale / "feedback.html").write_text("an earlier grade", encoding="utf-8")
    assert len(fake_grading) == 2
    linked = link(tmp_path / "class" / "mallory" / "01_intro.py", secrets / "01_intro.py")
    fifo = tmp_path / "class" / "bob" / "01_intro.py"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    cases = {"mallory": (linked, f"symbolic link rejected: {linked}"),
             "bob": (fifo, f"special file (FIFO) rejected: {fifo}"),
             "alice": (full, f"file too large: {full} is 4 bytes, over the 3 bytes cap")}
    for student, (path, reason) in cases.items():
        row = one(path, student, "--max-file-size", "3")
        assert (row["status"], row["points"], row["max_points"]) == ("invalid", 0.0, 10.0), row
        assert row["reason"].startswith(reason), row
        assert f"rejected (not read): {reason}" in said[-1]
        result = json.loads((Result.folder_of(tmp_path / "ws" / "results", student, "01_intro") / "result.json")
                            .read_text())
        assert (result["status"], result["sandbox"]) == ("invalid", "not run")
    assert len(fake_grading) == 2  # nothing rejected reached a worker
    assert not (stale / "feedback.html").exists()
    config = tmp_path / "grading.toml"
    config.write_text("[autograde]\nmax_file_size = 2\n", encoding="utf-8")
    assert one(full, "alice", "--config", str(config))["status"] == "invalid"  # the TOML cap holds too


# ------------------------------------------------------------------------------ end to end (kernel)


@pytest.mark.grading
def test_zoe_and_zoe_get_two_rows_from_real_grading(tmp_path):
    """The real pipeline (nbgrader, workers) with Unicode student ids: two students, two scores."""
    from grader.__main__ import main

    subs = tmp_path / "subs"
    (subs / "Zoë").mkdir(parents=True)
    (subs / "Zoé").mkdir(parents=True)
    shutil.copy(INTRO.solution, subs / "Zoë" / "01_intro.py")
    shutil.copy(INTRO.student, subs / "Zoé" / "01_intro.py")
    out = tmp_path / "grades.csv"
    code = main(["autograde", str(subs), "--out", str(out), "--lesson", "01_intro", "--no-sandbox", "--env",
                 "COURSE_QUICK=1", "--workspace", str(tmp_path / "ws"), "--no-progress", "--jobs", "1"])
    assert code == 0
    with open(out, newline="", encoding="utf-8") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"Zoë", "Zoé"}
    assert (rows["Zoë"]["status"], rows["Zoë"]["points"]) == ("graded", rows["Zoë"]["max_points"])
    assert (rows["Zoé"]["status"], rows["Zoé"]["points"]) == ("graded", "0")
    assert (out.parent / "feedback" / student_folder("Zoë") / "01_intro.html").exists()
