"""Collecting: which file is which student's which lesson, and who is in the class.

The rule (also in the README's instructor section):

1. **Layout.** ``--layout exchange`` reads nbgrader's exchange folder,
   ``SUBMISSIONS/submitted/<student>/<lesson>/...``; ``--layout folders`` reads
   ``SUBMISSIONS`` itself (a folder named ``submitted`` is then a student like any other).
   ``--layout auto`` (the default) takes the exchange layout only when it is unambiguous:
   ``submitted`` is the only entry of ``SUBMISSIONS`` (hidden ones aside), and every entry
   of ``submitted/`` is a folder whose children are lesson-slug folders. A student who
   names their folder ``submitted`` can then no longer hide the rest of the class.
2. **Folder per student.** Each sub-folder of ``SUBMISSIONS`` is a student, named by the
   folder. Inside it, every ``.py`` or ``.ipynb`` file, at most one folder deep, whose
   name — or whose folder's name — contains a lesson slug (``04_retrieval``) is that
   lesson: ``alice/04_retrieval.ipynb``, ``alice/04_retrieval/04_retrieval.ipynb``
   (nbgrader's layout), ``alice/Copy of 04_retrieval.ipynb``.
3. **Flat folder** (a learning-management-system download). A file directly in
   ``SUBMISSIONS`` is ``<student><sep><lesson slug><anything>.py|.ipynb``, ``<sep>`` being
   ``_``, ``-``, ``.`` or a space: ``alice_04_retrieval.py``,
   ``bob-04_retrieval (1).ipynb``. The student is everything before the slug.
4. A student id is the name NFC-normalised (so a macOS zip's decomposed ``Zoë`` is the
   same student as a typed one); it keeps letters and digits of any script, marks, ``.``,
   ``_`` and ``-``; any other run of characters becomes ``_`` (``Alice Smith`` →
   ``Alice_Smith``). Names are never reduced to ASCII: ``Zoë`` and ``Zoé`` are two
   students. Two different names that become the same id (``Alice Smith`` and
   ``Alice_Smith``) are an error, not a silent merge of two students' work. Folders on
   disk use :func:`grader.grading.results.student_folder`, a separate file-system-safe name.
5. **Only real files are read.** The folder is walked without following links: a symbolic
   link (to ``solutions/``, to another student's file) and a special file (FIFO, socket,
   device) are never opened; each is rejected, and the student and lesson its name gives
   get an ``invalid`` row saying so (a student folder that is a link: every lesson). A
   file larger than ``max_file_size`` is rejected the same way, without being read.
   ``autograde-one FILE`` applies the same rule to its one file and the folder holding it
   (:func:`check_file`): an ``invalid`` row, never a job.
6. Two or more files for one student and lesson: the newest (modification time) wins;
   the others, and any rejected entries for that lesson, are listed in that row's ``reason``.
7. The roster is the set of students found (an empty folder counts: that student gets
   ``missing`` rows), or the ``student`` column of ``--roster roster.csv``; an optional
   ``aliases`` column lists other ids (separated by spaces or ``;``) whose files belong
   to that student. Files of students not on a given roster are graded and reported.

``.py`` files must be jupytext percent scripts, ``.ipynb`` files notebooks; whether they
are is checked when they are graded (a bad file is an ``invalid`` row, not a crash).
"""

from __future__ import annotations

import csv
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from grader.lessons import SLUG, Lesson

SUFFIXES = (".ipynb", ".py")
SEPARATORS = "_-. "
LAYOUTS = ("auto", "exchange", "folders")
DEFAULT_MAX_FILE_SIZE = 20 << 20  # a lesson notebook with outputs is well under 5 MB
EVERY_LESSON = "*"
ID_PUNCTUATION = "._-"


class CollectError(ValueError):
    """The submissions folder cannot be mapped to students safely (the message says how to fix it)."""


@dataclass(frozen=True)
class Rejected:
    """An entry that was not read: a link, a special file or an oversized file."""

    path: Path
    reason: str
    student: str = ""  # "" when its name gives no student
    lesson: str = ""  # "" when its name gives no lesson; EVERY_LESSON for a student folder that is not a folder


@dataclass(frozen=True)
class Submission:
    student: str
    lesson: Lesson
    path: Path
    ignored: tuple[Path, ...] = ()  # older files for the same student and lesson
    rejected: tuple[str, ...] = ()  # why other entries for the same student and lesson were not read

    def note(self) -> str:
        parts = []
        if self.ignored:
            older = ", ".join(p.name for p in self.ignored)
            parts.append(f"{len(self.ignored) + 1} files for this lesson: graded the newest, {self.path.name}; "
                         f"ignored {older}")
        parts += self.rejected
        return "; ".join(parts)


@dataclass
class Collection:
    submissions: list[Submission]
    students: list[str]  # the roster, sorted
    unmatched: list[Path] = field(default_factory=list)  # files that name no lesson
    notes: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)  # every entry that was not read
    invalid: dict[tuple[str, str], str] = field(default_factory=dict)  # (student, lesson) with nothing to grade
    layout: str = "folders"  # the layout that was read: "folders" or "exchange"
    root: Path | None = None  # the folder that was given

    def require_submissions(self) -> None:
        """Raise :class:`CollectError` when there is nothing to grade: a wrong folder or layout, not a result."""
        if self.submissions:
            return
        root = self.root or Path(".")
        entries = _listing(root)
        if entries:
            shown = ", ".join(entries[:10]) + (f" and {len(entries) - 10} more" if len(entries) > 10 else "")
            found = f"{root} holds {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} ({shown})"
        else:
            found = f"{root} is empty"
        if self.rejected:
            found += f"; {len(self.rejected)} rejected (e.g. {self.rejected[0].reason})"
        raise CollectError(
            f"no submission to grade: {found}; read as the '{self.layout}' layout. Accepted layouts: a folder per "
            "student (SUBMISSIONS/alice/04_retrieval.ipynb or SUBMISSIONS/alice/04_retrieval/04_retrieval.ipynb), "
            "flat LMS files (SUBMISSIONS/alice_04_retrieval.py), or nbgrader's exchange folder "
            "(SUBMISSIONS/submitted/alice/04_retrieval/04_retrieval.ipynb, chosen with --layout exchange). "
            "File names must contain a lesson slug such as 04_retrieval; check --lesson and --layout.")


def _listing(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return sorted(e.name + ("/" if e.is_dir(follow_symlinks=False) else "") for e in it)
    except OSError:
        return []


def normalise_id(raw: str) -> str:
    """The student id of a folder name, file prefix or roster entry (rule 4)."""
    out, bad = [], False
    for char in unicodedata.normalize("NFC", raw).strip():
        if char in ID_PUNCTUATION or unicodedata.category(char)[0] in "LMN":
            out.append(char)
            bad = False
        elif not bad:  # a run of other characters becomes one "_"
            out.append("_")
            bad = True
    return "".join(out).strip(ID_PUNCTUATION)


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


def format_size(size: int) -> str:
    """``41.9 MB`` for a message (powers of 1024, as ``--max-file-size`` reads them)."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{size:.1f} {unit}".replace(".0 ", " ")
        size /= 1024
    raise AssertionError("unreachable")


def too_large(path: str | Path, size: int, max_file_size: int | None) -> str:
    """Why a file of ``size`` bytes is not read under the cap (rule 5), or ``""`` when it fits."""
    if max_file_size is None or size <= max_file_size:
        return ""
    return (f"file too large: {path} is {format_size(size)}, over the {format_size(max_file_size)} cap "
            "(--max-file-size); it was not read")


def check_file(path: str | Path, max_file_size: int | None = DEFAULT_MAX_FILE_SIZE) -> str:
    """Why one named submission must not be read (rule 5, for ``autograde-one``), or ``""`` when it may.

    ``autograde`` walks a whole folder; a scheduler's job names one file. The same rule holds
    for it, decided from ``lstat`` without following anything: the file and the folder that
    holds it (the student's, or nbgrader's lesson folder) must be real, not links, and the
    file a regular file within the size cap. A FIFO would block the worker that opens it; a
    link could point at ``solutions/`` or at another student's work.
    """
    path = Path(os.path.abspath(path))  # made absolute without resolving a link
    for what, item in (("file", path), ("folder", path.parent)):
        try:
            mode = os.lstat(item).st_mode
        except OSError as exc:
            return f"cannot read the submitted {what} {item}: {exc.strerror or exc}"
        kind = _kind_of(mode)
        if kind != ("file" if what == "file" else "dir"):
            return f"{kind} rejected: {item}" if kind != "dir" else f"not a file: {item} is a folder"
    return too_large(path, os.lstat(path).st_size, max_file_size)


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


def _scan(folder: Path) -> list[os.DirEntry]:
    """The entries of ``folder``, sorted; ``os.scandir`` reports links as links, never as their target."""
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def _kind(entry: os.DirEntry) -> str:
    """``dir``, ``file``, or what else the entry is, from ``lstat`` (a link is never followed)."""
    return _kind_of(entry.stat(follow_symlinks=False).st_mode)


def _kind_of(mode: int) -> str:
    """``dir``, ``file``, ``symbolic link`` or which special file an ``lstat`` mode is."""
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "special file (FIFO)"
    if stat.S_ISSOCK(mode):
        return "special file (socket)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "special file (device)"
    return "special file"


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def exchange_layout(root: Path) -> bool:
    """Whether ``root`` is unambiguously nbgrader's exchange layout (rule 1, ``--layout auto``)."""
    top = [e for e in _scan(root) if not _hidden(e.name)]
    if [e.name for e in top] != ["submitted"] or _kind(top[0]) != "dir":
        return False
    lesson_folders = 0
    for student in _scan(root / "submitted"):
        if _hidden(student.name):
            continue
        if _kind(student) != "dir":
            return False
        for child in _scan(Path(student.path)):
            if _hidden(child.name):
                continue
            if _kind(child) != "dir" or not SLUG.match(child.name):
                return False
            lesson_folders += 1
    return lesson_folders > 0


def choose_layout(root: Path, layout: str) -> tuple[str, Path]:
    """``(layout, folder to read)`` for ``--layout``; raises :class:`CollectError` for an impossible choice."""
    if layout not in LAYOUTS:
        raise CollectError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    if layout == "exchange":
        if not _is_real_dir(root / "submitted"):
            raise CollectError(f"--layout exchange reads {root / 'submitted'}/<student>/<lesson>/, but there is no "
                               "such folder (a link is not accepted); use --layout folders for a folder per student")
        return "exchange", root / "submitted"
    if layout == "auto" and exchange_layout(root):
        return "exchange", root / "submitted"
    return "folders", root


def collect(
    root: Path,
    lessons: list[Lesson],
    roster: Path | None = None,
    layout: str = "auto",
    max_file_size: int | None = DEFAULT_MAX_FILE_SIZE,
) -> Collection:
    """Map every file under ``root`` to (student, lesson) by the rule above, reading no file's content."""
    top = Path(root)
    if not top.is_dir():
        raise NotADirectoryError(f"{top} is not a folder of submissions (see the README, 'For instructors')")
    layout, base = choose_layout(top, layout)
    aliases = read_roster(roster) if roster else {}
    by_slug = {lesson.slug: lesson for lesson in lessons}
    found: dict[tuple[str, str], list[tuple[Path, float]]] = {}
    rejected: list[Rejected] = []
    students: set[str] = set()
    unmatched: list[Path] = []
    notes: list[str] = []
    spelled: dict[str, str] = {}  # student id -> the (NFC) name it was first found as
    clashes: list[str] = []

    def student_id(raw: str) -> str:
        student = normalise_id(raw)
        written = unicodedata.normalize("NFC", raw).strip()
        if not student:
            return ""
        first = spelled.setdefault(student, written)
        if first != written:
            clash = f"{first!r} and {written!r} both become student id {student!r}"
            if clash not in clashes:
                clashes.append(clash)
        if student != written and f"student id {raw!r} written as {student!r}" not in notes:
            notes.append(f"student id {raw!r} written as {student!r}")
        return aliases.get(student, student)

    def lesson_of(name: str, folder_name: str | None = None) -> Lesson | None:
        stem = name[: len(name) - len(_suffix(name))]
        hit = lesson_in_name(stem, lessons) or (lesson_in_name(folder_name, lessons) if folder_name else None)
        return hit[1] if hit else None

    def reject(entry: os.DirEntry, kind: str, student: str = "", lesson: Lesson | str | None = None) -> None:
        slug = lesson.slug if isinstance(lesson, Lesson) else lesson or ""
        rejected.append(Rejected(Path(entry.path), f"{kind} rejected: {entry.path}", student, slug))

    def candidate(entry: os.DirEntry, student: str, lesson: Lesson) -> None:
        info = entry.stat(follow_symlinks=False)
        oversized = too_large(entry.path, info.st_size, max_file_size)
        if oversized:
            rejected.append(Rejected(Path(entry.path), oversized, student, lesson.slug))
            return
        found.setdefault((student, lesson.slug), []).append((Path(entry.path), info.st_mtime))

    def walk_student(folder: os.DirEntry, student: str) -> None:
        for entry in _scan(Path(folder.path)):
            kind = _kind(entry)
            if kind not in ("dir", "file"):
                reject(entry, kind, student, None if _hidden(entry.name) else lesson_of(entry.name))
                continue
            if _hidden(entry.name):
                continue
            if kind == "file":
                if _suffix(entry.name):
                    lesson = lesson_of(entry.name)
                    if lesson is None:
                        unmatched.append(Path(entry.path))
                    else:
                        candidate(entry, student, lesson)
                continue
            for inner in _scan(Path(entry.path)):  # one folder deep: nbgrader's <student>/<lesson>/<lesson>.ipynb
                inner_kind = _kind(inner)
                if inner_kind not in ("dir", "file"):
                    hidden = _hidden(inner.name)
                    reject(inner, inner_kind, student, None if hidden else lesson_of(inner.name, entry.name))
                    continue
                if inner_kind != "file" or _hidden(inner.name) or not _suffix(inner.name):
                    continue
                lesson = lesson_of(inner.name, entry.name)
                if lesson is None:
                    unmatched.append(Path(inner.path))
                else:
                    candidate(inner, student, lesson)

    for entry in _scan(base):
        kind = _kind(entry)
        if kind in ("dir", "file") and _hidden(entry.name):
            continue
        if kind == "dir":
            student = student_id(entry.name)
            if not student:
                unmatched.append(Path(entry.path))
                continue
            students.add(student)
            walk_student(entry, student)
            continue
        suffix = _suffix(entry.name)
        hit = lesson_in_name(entry.name[: -len(suffix)], lessons) if suffix else None
        student = student_id(hit[0]) if hit else ""
        if kind == "file":
            if not student:
                unmatched.append(Path(entry.path))
            else:
                students.add(student)
                candidate(entry, student, hit[1])
            continue
        # A link or special file: never followed, but its name still says whose row records it.
        if _hidden(entry.name):
            reject(entry, kind)
        elif student:  # a flat file name: that student's lesson
            students.add(student)
            reject(entry, kind, student, hit[1])
        elif not suffix and (student := student_id(entry.name)):  # a student folder: every lesson
            students.add(student)
            reject(entry, kind, student, EVERY_LESSON)
        else:
            reject(entry, kind)

    if clashes:
        raise CollectError(
            "two different names would be graded as one student: " + "; ".join(clashes) + ". Rename the folder or "
            f"file in {top} so that one student is always spelled the same way and two students never are.")

    submissions = []
    for (student, slug), paths in sorted(found.items()):
        ordered = sorted(paths, key=lambda p: (p[1], p[0].suffix == ".ipynb", p[0].name), reverse=True)
        why = tuple(r.reason for r in rejected if r.student == student and r.lesson in (slug, EVERY_LESSON))
        submissions.append(Submission(student, by_slug[slug], ordered[0][0], tuple(p for p, _ in ordered[1:]), why))
    graded = {(s.student, s.lesson.slug) for s in submissions}
    invalid: dict[tuple[str, str], str] = {}
    for item in rejected:  # rows for what was rejected where nothing else was found to grade
        slugs = list(by_slug) if item.lesson == EVERY_LESSON else [item.lesson] if item.lesson else []
        for key in [(item.student, slug) for slug in slugs if (item.student, slug) not in graded]:
            invalid[key] = "; ".join(filter(None, [invalid.get(key), item.reason]))
    if roster:
        on_roster = set(aliases.values())
        for student in sorted(students - on_roster):
            notes.append(f"{student} is not on the roster {roster}; graded anyway")
        students |= on_roster
    return Collection(submissions, sorted(students), unmatched, notes, rejected, invalid, layout, top)


def _suffix(name: str) -> str:
    """The submission suffix ``name`` ends with, or ``""``."""
    return next((s for s in SUFFIXES if name.endswith(s) and len(name) > len(s)), "")
