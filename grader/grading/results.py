"""The result store: one :class:`Result` per graded (student, lesson), and ``grades.csv`` made from them.

Each graded pair leaves ``RESULTS/<student>/<lesson>/result.json`` (plus the autograded
notebook and ``feedback.html``); :class:`Result` is the only code that writes or reads
that file. Its ``key`` hashes everything the grade depends on — the submitted bytes, the
lesson's release, the course library modules the lesson uses, the grading engine's code,
the grading settings — so a caller skips a job
whose stored result has the same key: that is how ``autograde`` resumes and how ``make
course`` is incremental. ``python -m grader merge`` reads
any number of such folders — from this machine or copied back from CI jobs, Kubernetes
Jobs or JupyterHub servers — and writes one row per student and lesson: the roster's
students (or everyone with a result) times the lessons, ``missing`` where no result
exists. When a pair has results in several folders, the most recently graded wins.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import time
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from grader.lessons import LIBRARY

RESULT = "result.json"
FEEDBACK = "feedback.html"
RESULT_VERSION = 2
PLAIN_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
CSV_FIELDS = ("student", "lesson", "points", "max_points", "status", "reason")
STATUSES = ("graded", "timeout", "tampered", "invalid", "error", "missing")


@dataclass
class Grade:
    student: str
    lesson: str
    points: float
    max_points: float
    status: str
    reason: str = ""

    def row(self) -> dict[str, str]:
        return {
            "student": self.student,
            "lesson": self.lesson,
            "points": f"{self.points:g}",
            "max_points": f"{self.max_points:g}",
            "status": self.status,
            "reason": self.reason,
        }


def student_folder(student: str) -> str:
    """A file-system-safe folder name for ``student``, distinct for distinct students.

    Student ids keep any script (``Zoë``, ``李雷``, ``Ольга``). A plain ASCII id is its own
    folder (so existing results and feedback folders keep their names); any other id is an
    ASCII slug plus ``~`` and a hash of the NFC name. ``~`` never occurs in a plain id, so a
    hashed folder cannot be another student's plain one, and the slug alone never decides
    (``Zoë`` and ``Zoé`` are ``Zoe~…`` with different hashes).
    """
    if PLAIN_FOLDER.fullmatch(student) and len(student) <= 100:
        return student
    name = unicodedata.normalize("NFC", student)
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_).strip("._-")[:40] or "student"
    return f"{slug}~{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


@dataclass
class Result:
    """What grading one (student, lesson) pair produced; stored as ``result.json``."""

    student: str
    lesson: str
    points: float = 0.0
    max_points: float = 0.0
    status: str = "error"
    reason: str = ""
    key: str = ""  # the resume key (:func:`content_key`)
    file: str = ""  # the submitted file
    note: str = ""  # e.g. older files for the same lesson that were ignored
    sandbox: str = ""  # "isolated" or "limits-only"
    limits: str = ""  # per-kernel limits in force: "cgroup-v2", "cgroup-v1" (memory + pids) or "rlimits"
    edition: str = "instructor"  # the release graded against: "instructor" (hidden tests) or "student"
    cells: dict[str, list[float]] = field(default_factory=dict)  # grade id -> [score, max]
    messages: dict[str, str] = field(default_factory=dict)  # grade id -> why the test failed, one line
    tampered: list[str] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)
    unshadowed: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    seconds: float = 0.0  # the whole job
    execution_seconds: float | None = None  # running the notebook
    execution_cpu_seconds: float | None = None  # the kernel's CPU time (user + system) running it
    timings: dict[str, float] = field(default_factory=dict)
    sha256: str = ""
    feedback_error: str = ""
    graded_at: float = field(default_factory=time.time)
    version: int = RESULT_VERSION

    @staticmethod
    def folder_of(results: Path, student: str, lesson: str) -> Path:
        return Path(results) / student_folder(student) / lesson

    def folder(self, results: Path) -> Path:
        return self.folder_of(results, self.student, self.lesson)

    def write(self, results: Path) -> Result:
        folder = self.folder(results)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{RESULT}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")
        tmp.replace(folder / RESULT)  # atomic: a reader never sees half a result
        return self

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def read(cls, results: Path, student: str, lesson: str) -> Result | None:
        return cls.read_file(cls.folder_of(results, student, lesson) / RESULT)

    @classmethod
    def read_file(cls, path: Path) -> Result | None:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def reusable(self, key: str) -> bool:
        """A stored result that stands for a new job with this key (errors are always retried)."""
        return self.key == key and self.status != "error" and self.version == RESULT_VERSION

    def grade(self) -> Grade:
        return Grade(self.student, self.lesson, float(self.points), float(self.max_points), self.status, self.reason)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _movierec_imports(source: str) -> set[str]:
    """The ``movierec`` modules a piece of Python source imports, dotted below the package.

    ``movierec.serving.clients`` gives ``serving.clients`` and its package ``serving``;
    ``movierec`` itself gives ``__init__``.
    """
    from grader.lessons import imported_modules

    found = set()
    for name in imported_modules(source):
        parts = name.split(".")
        if parts[0] != "movierec":
            continue
        found.add("__init__")
        found |= {".".join(parts[1:end]) for end in range(2, len(parts) + 1)}
    return found


def library_modules() -> dict[str, Path]:
    """Every module of the course library by dotted name below ``movierec`` (a package by its own name)."""
    modules = {}
    for path in LIBRARY.rglob("*.py"):
        parts = path.relative_to(LIBRARY).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def library_hash(sources: list[str] | None = None) -> str:
    """The part of the course library that ``sources`` import, followed through the library's own imports.

    A lesson is graded again when a module it uses changes, not when any module changes:
    editing lesson 05's exported code does not re-run lesson 01. Modules of subpackages
    (``movierec/serving/*.py``) count like top-level ones. ``None`` hashes the whole library.
    """
    modules = library_modules()
    if sources is None:
        wanted = set(modules)
    else:
        wanted, todo = {"__init__"}, set().union(*(_movierec_imports(s) for s in sources)) if sources else set()
        while todo:
            name = todo.pop()
            if name in wanted or name not in modules:
                continue
            wanted.add(name)
            todo |= _movierec_imports(modules[name].read_text(encoding="utf-8"))
    digest = hashlib.sha256()
    for name in sorted(wanted & set(modules)):
        digest.update(name.encode() + b"\0" + modules[name].read_bytes())
    return digest.hexdigest()[:32]


def engine_hash() -> str:
    """The grading engine's own code (grading and sandbox): a grader that changed grades again."""
    from grader.lessons import ROOT

    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "grader" / "grading").glob("*.py"), *(ROOT / "grader" / "sandbox").glob("*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:32]


def content_key(path: Path, lesson_hash: str, config_key: dict, library: str | None = None) -> str:
    """The resume key of grading ``path`` against a release with these settings, library and engine."""
    library = library if library is not None else library_hash()
    blob = json.dumps([sha256_file(path), lesson_hash, library, engine_hash(), config_key, RESULT_VERSION],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def write_csv(grades: list[Grade], out: Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for grade in sorted(grades, key=lambda g: (g.student, g.lesson)):
            writer.writerow(grade.row())
    tmp.replace(out)


def load_results(folders: list[Path]) -> dict[tuple[str, str], tuple[Result, Path]]:
    """``{(student, lesson): (result, its folder)}``; the newest result wins on duplicates."""
    found: dict[tuple[str, str], tuple[Result, Path]] = {}
    for root in folders:
        for path in sorted(Path(root).glob(f"*/*/{RESULT}")):
            result = Result.read_file(path)
            if result is None:
                continue
            key = (result.student, result.lesson)
            if key not in found or result.graded_at > found[key][0].graded_at:
                found[key] = (result, path.parent)
    return found


def merge(
    folders: list[Path],
    out: Path,
    students: list[str] | None = None,
    lessons: dict[str, float] | None = None,
    feedback: Path | None = None,
) -> list[Grade]:
    """Write ``out`` (and copy feedback to ``feedback/<student>/<lesson>.html``); return the rows.

    ``students`` (the roster) and ``lessons`` (each lesson's maximum points, for the
    ``missing`` rows) default to everyone and every lesson that has a result.
    """
    found = load_results(folders)
    if lessons is None:  # every lesson that has a result
        lessons = {}
        for result, _ in found.values():
            lessons.setdefault(result.lesson, float(result.max_points))
    if students is None:  # everyone who has a result
        students = {student for student, _ in found}
    students = sorted(set(students))
    grades = []
    for student in students:
        for lesson, total in sorted(lessons.items()):
            hit = found.get((student, lesson))
            if hit is None:
                grades.append(Grade(student, lesson, 0, total, "missing", "no file for this lesson"))
                continue
            result, folder = hit
            grades.append(result.grade())
            html = folder / FEEDBACK
            if feedback is not None and html.exists():
                target = Path(feedback) / student_folder(student) / f"{lesson}.html"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(html, target)
    write_csv(grades, out)
    return grades


def summary(grades: list[Grade]) -> str:
    """One line a human reads at the end of a run."""
    count = {status: sum(g.status == status for g in grades) for status in STATUSES}
    failed = count["invalid"] + count["error"]
    parts = [f"{count['graded']} graded", f"{failed} failed", f"{count['timeout']} timed out",
             f"{count['tampered']} tampered", f"{count['missing']} missing"]
    detail = f" (failed: {count['invalid']} invalid, {count['error']} error)" if failed else ""
    return f"{len(grades)} rows: " + ", ".join(parts) + detail
