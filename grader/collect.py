"""Collecting: which file is which student's which lesson, and who is in the class.

The rule (also in the README's instructor section):

1. If ``SUBMISSIONS/submitted/`` exists (nbgrader's exchange layout), it is used instead.
2. **Folder per student.** Each sub-folder of ``SUBMISSIONS`` is a student, named by the
   folder. Inside it, every ``.py`` or ``.ipynb`` file, at most one folder deep, whose
   name — or whose folder's name — contains a lesson slug (``04_retrieval``) is that
   lesson: ``alice/04_retrieval.ipynb``, ``alice/04_retrieval/04_retrieval.ipynb``
   (nbgrader's layout), ``alice/Copy of 04_retrieval.ipynb``.
3. **Flat folder** (a learning-management-system download). A file directly in
   ``SUBMISSIONS`` is ``<student><sep><lesson slug><anything>.py|.ipynb``, ``<sep>`` being
   ``_``, ``-``, ``.`` or a space: ``alice_04_retrieval.py``,
   ``bob-04_retrieval (1).ipynb``. The student is everything before the slug.
4. A student id keeps letters, digits, ``.``, ``_`` and ``-``; any other run of
   characters becomes ``_`` (``Alice Smith`` → ``Alice_Smith``).
5. Two or more files for one student and lesson: the newest (modification time) wins;
   the others are listed in that row's ``reason``.
6. The roster is the set of students found (an empty folder counts: that student gets
   ``missing`` rows), or the ``student`` column of ``--roster roster.csv``; an optional
   ``aliases`` column lists other ids (separated by spaces or ``;``) whose files belong
   to that student. Files of students not on a given roster are graded and reported.

``.py`` files must be jupytext percent scripts, ``.ipynb`` files notebooks; whether they
are is checked when they are graded (a bad file is an ``invalid`` row, not a crash).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.lessons import Lesson

SUFFIXES = (".ipynb", ".py")
SEPARATORS = "_-. "
INVALID_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Submission:
    student: str
    lesson: Lesson
    path: Path
    ignored: tuple[Path, ...] = ()  # older files for the same student and lesson

    def note(self) -> str:
        if not self.ignored:
            return ""
        older = ", ".join(p.name for p in self.ignored)
        return f"{len(self.ignored) + 1} files for this lesson: graded the newest, {self.path.name}; ignored {older}"


@dataclass
class Collection:
    submissions: list[Submission]
    students: list[str]  # the roster, sorted
    unmatched: list[Path] = field(default_factory=list)  # files that name no lesson
    notes: list[str] = field(default_factory=list)


def normalise_id(raw: str) -> str:
    return INVALID_ID_CHARS.sub("_", raw.strip()).strip("_.-")


def lesson_in_name(name: str, lessons: list[Lesson]) -> tuple[str, Lesson] | None:
    """``(prefix, lesson)`` for the first lesson slug in ``name`` that starts a token."""
    best = None
    for lesson in lessons:
        for match in re.finditer(re.escape(lesson.slug), name):
            start = match.start()
            if start == 0 or name[start - 1] in SEPARATORS:
                if best is None or start < best[0]:
                    best = (start, lesson)
                break
    if best is None:
        return None
    return name[: best[0]].rstrip(SEPARATORS), best[1]


def read_roster(path: Path) -> dict[str, str]:
    """``{id or alias: student}`` from a CSV with a ``student`` column (and optional ``aliases``)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "student" not in reader.fieldnames:
            raise ValueError(f"{path}: a roster is a CSV with a 'student' column (got {reader.fieldnames})")
        ids: dict[str, str] = {}
        for row in reader:
            student = normalise_id(row.get("student") or "")
            if not student:
                continue
            ids[student] = student
            for alias in re.split(r"[;\s]+", row.get("aliases") or ""):
                if alias.strip():
                    ids[normalise_id(alias)] = student
        return ids


def _skip(path: Path) -> bool:
    return path.name.startswith(".") or path.name.startswith("__") or ".ipynb_checkpoints" in path.parts


def _student_files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.iterdir()):
        if _skip(path):
            continue
        if path.is_file() and path.suffix in SUFFIXES:
            files.append(path)
        elif path.is_dir():
            files += [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix in SUFFIXES and not _skip(p)]
    return files


def collect(root: Path, lessons: list[Lesson], roster: Path | None = None) -> Collection:
    """Map every file under ``root`` to (student, lesson) by the rule above."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder of submissions (see the README, 'For instructors')")
    if (root / "submitted").is_dir():
        root = root / "submitted"
    aliases = read_roster(roster) if roster else {}
    found: dict[tuple[str, str], list[Path]] = {}
    students: set[str] = set()
    unmatched: list[Path] = []
    notes: list[str] = []

    def student_id(raw: str) -> str:
        student = normalise_id(raw)
        if student != raw:
            notes.append(f"student id {raw!r} written as {student!r}")
        return aliases.get(student, student)

    for entry in sorted(root.iterdir()):
        if _skip(entry):
            continue
        if entry.is_dir():
            student = student_id(entry.name)
            if not student:
                unmatched.append(entry)
                continue
            students.add(student)
            for path in _student_files(entry):
                hit = lesson_in_name(path.stem, lessons) or (
                    lesson_in_name(path.parent.name, lessons) if path.parent != entry else None)
                if hit is None:
                    unmatched.append(path)
                else:
                    found.setdefault((student, hit[1].slug), []).append(path)
        elif entry.is_file() and entry.suffix in SUFFIXES:
            hit = lesson_in_name(entry.stem, lessons)
            student = student_id(hit[0]) if hit else ""
            if not hit or not student:
                unmatched.append(entry)
                continue
            students.add(student)
            found.setdefault((student, hit[1].slug), []).append(entry)
        elif entry.is_file():
            unmatched.append(entry)

    by_slug = {lesson.slug: lesson for lesson in lessons}
    submissions = []
    for (student, slug), paths in sorted(found.items()):
        ordered = sorted(paths, key=lambda p: (p.stat().st_mtime, p.suffix == ".ipynb", p.name), reverse=True)
        submissions.append(Submission(student, by_slug[slug], ordered[0], tuple(ordered[1:])))
    if roster:
        on_roster = set(aliases.values())
        for student in sorted(students - on_roster):
            notes.append(f"{student} is not on the roster {roster}; graded anyway")
        students |= on_roster
    return Collection(submissions, sorted(students), unmatched, notes)
