"""Merging per-job results into ``grades.csv``, the feedback folder and a summary.

Each graded (student, lesson) pair leaves ``RESULTS/<student>/<lesson>/result.json``
(plus the autograded notebook and ``feedback.html``). ``python -m grader merge`` reads
any number of such folders — from this machine or copied back from CI jobs, Kubernetes
Jobs or JupyterHub servers — and writes one row per student and lesson: the roster's
students (or everyone with a result) times the lessons, ``missing`` where no result
exists. When a pair has results in several folders, the most recently graded wins.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

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

    @classmethod
    def from_result(cls, result: dict) -> Grade:
        return cls(result["student"], result["lesson"], float(result["points"]), float(result["max_points"]),
                   result["status"], result.get("reason", ""))


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


def load_results(folders: list[Path]) -> dict[tuple[str, str], tuple[dict, Path]]:
    """``{(student, lesson): (result, its folder)}``; the newest result wins on duplicates."""
    found: dict[tuple[str, str], tuple[dict, Path]] = {}
    for root in folders:
        for path in sorted(Path(root).glob("*/*/result.json")):
            try:
                result = json.loads(path.read_text(encoding="utf-8"))
                key = (result["student"], result["lesson"])
            except (OSError, ValueError, KeyError):
                continue
            if key not in found or result.get("graded_at", 0) > found[key][0].get("graded_at", 0):
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
            lessons.setdefault(result["lesson"], float(result.get("max_points", 0)))
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
            grades.append(Grade.from_result(result))
            html = folder / "feedback.html"
            if feedback is not None and html.exists():
                target = Path(feedback) / student / f"{lesson}.html"
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
