"""Where lessons live and how their sources are read.

A lesson is identified by its slug ``NN_name`` (``01_intro``). Its single hand-written
source is ``solutions/NN_name.py``; everything else is derived from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
LESSONS = ROOT / "lessons"
LIBRARY = ROOT / "movierec"
BUILD = ROOT / "build"

SLUG = re.compile(r"^(\d\d)_([a-z][a-z0-9_]*)$")
STAMP_PREFIX = "# Student edition generated from "
PERCENT = "py:percent"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


@dataclass(frozen=True)
class Lesson:
    """One lesson and the paths of everything generated from it."""

    slug: str

    @property
    def number(self) -> int:
        return int(self.slug[:2])

    @property
    def name(self) -> str:
        """``intro`` for ``01_intro``: also the name of its ``movierec`` module."""
        return self.slug[3:]

    @property
    def solution(self) -> Path:
        return SOLUTIONS / f"{self.slug}.py"

    @property
    def student(self) -> Path:
        return LESSONS / f"{self.slug}.py"

    @property
    def module(self) -> Path:
        return LIBRARY / f"{self.name}.py"

    def title(self) -> str:
        """The first Markdown heading of the source, without the leading ``#``."""
        for cell in read_source(self.solution).cells:
            if cell.cell_type == "markdown":
                for line in cell.source.splitlines():
                    if line.startswith("# "):
                        return line[2:].strip()
        return self.slug


def all_lessons() -> list[Lesson]:
    """Every lesson that has a source in ``solutions/``, in course order."""
    slugs = sorted(p.stem for p in SOLUTIONS.glob("*.py") if SLUG.match(p.stem))
    return [Lesson(s) for s in slugs]


def find_lesson(name: str) -> Lesson:
    """Look a lesson up by slug (``04_retrieval``), name (``retrieval``) or number (``4``)."""
    for lesson in all_lessons():
        if name in (lesson.slug, lesson.name) or (name.isdigit() and int(name) == lesson.number):
            return lesson
    known = ", ".join(lesson.slug for lesson in all_lessons())
    raise KeyError(f"no lesson called {name!r}; the lessons are: {known}")


def read_source(path: Path) -> nbformat.NotebookNode:
    """Read a lesson (percent ``.py`` or ``.ipynb``) into a notebook, dropping the stamp line."""
    path = Path(path)
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
    elif path.suffix == ".py":
        nb = jupytext.reads(path.read_text(encoding="utf-8"), fmt=PERCENT)
    else:
        raise ValueError(f"{path}: a lesson is a jupytext percent .py file or an .ipynb notebook")
    if nb.cells and nb.cells[0].cell_type == "code" and nb.cells[0].source.startswith(STAMP_PREFIX):
        nb.cells.pop(0)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def nbgrader_meta(cell: nbformat.NotebookNode) -> dict:
    """The cell's nbgrader metadata, or an empty dict for ordinary cells."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_exercise(cell: nbformat.NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("solution")) and cell.cell_type == "code"


def is_test(cell: nbformat.NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("grade")) and cell.cell_type == "code"


def total_points(nb: nbformat.NotebookNode) -> float:
    """The points of all of a notebook's test cells: what a full score is."""
    return float(sum(nbgrader_meta(cell).get("points", 0) for cell in nb.cells if is_test(cell)))


def tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))
