"""Where lessons live and how their sources are read.

A lesson is identified by its slug ``NN_name`` (``01_intro``). Its single hand-written
source is ``solutions/NN_name.py``; everything else is derived from it.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat

from grader.markers import is_stamp

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
LESSONS = ROOT / "lessons"
LIBRARY = ROOT / "movierec"
BUILD = ROOT / "build"

SLUG = re.compile(r"^(\d\d)_([a-z][a-z0-9_]*)$")
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


class UnreadableLesson(ValueError):
    """A file that is not a lesson: not a notebook, or not a jupytext percent script."""


PERCENT_MARKER = re.compile(r"^# %%", re.M)


def read_source(path: Path) -> nbformat.NotebookNode:
    """Read a lesson (percent ``.py`` or ``.ipynb``) into a notebook, dropping the stamp line.

    The one reader of lessons, trusted or not: the build reads ``solutions/`` with it and
    the grader reads every submission with it, so a file the build accepts is a file the
    grader accepts. Anything else raises :class:`UnreadableLesson` saying what is wrong.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableLesson(f"cannot read the file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableLesson("not a text file (not UTF-8)") from None
    if path.suffix == ".ipynb":
        nb = _read_notebook(text)
    elif path.suffix == ".py":
        if not PERCENT_MARKER.search(text):
            raise UnreadableLesson("not a jupytext percent script: no '# %%' cell markers")
        nb = _parse_percent(text)
    else:
        kind = path.suffix or "a file without suffix"
        raise UnreadableLesson(f"a lesson is a jupytext percent .py file or an .ipynb notebook, not {kind}")
    if nb.cells and nb.cells[0].cell_type == "code" and is_stamp(nb.cells[0].source):
        nb.cells.pop(0)
    for cell in nb.cells:  # nbgrader rejects cells without the fields a code cell must have
        if cell.get("cell_type") == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
        cell.setdefault("metadata", {})
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def _parse_percent(text: str) -> nbformat.NotebookNode:
    """jupytext's parse of a percent script, a fresh copy each call (callers change what they get).

    A grading run reads the same lesson several times (its release, its library hash, its
    points); parsing a long lesson costs ~0.1 s, so recent parses of small texts are kept.
    """
    if len(text) > _PARSED_MAX_CHARS:
        return _jupytext_reads(text)
    return copy.deepcopy(_kept_parse(text))


_PARSED_MAX_CHARS = 1_000_000


@functools.lru_cache(maxsize=16)
def _kept_parse(text: str) -> nbformat.NotebookNode:
    return _jupytext_reads(text)


def _jupytext_reads(text: str) -> nbformat.NotebookNode:
    try:
        return jupytext.reads(text, fmt=PERCENT)
    except Exception as exc:  # noqa: BLE001 - jupytext raises many kinds
        raise UnreadableLesson(f"not a jupytext percent script: {str(exc).splitlines()[0][:200]}") from None


def _read_notebook(text: str) -> nbformat.NotebookNode:
    import json

    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableLesson(f"not a notebook: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise UnreadableLesson("not a notebook: its JSON is nested too deeply") from None
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds
        raise UnreadableLesson(f"not a notebook: {str(exc).splitlines()[0][:200]}") from None
    if not isinstance(nb.get("cells"), list) or not all(isinstance(c, dict) for c in nb.cells):
        raise UnreadableLesson("not a notebook: it has no list of cells")
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise UnreadableLesson(f"not a notebook: cell {index} has no valid cell_type")
        if not isinstance(cell.get("source", ""), str):
            raise UnreadableLesson(f"not a notebook: the source of cell {index} is not text")
        if not isinstance(cell.get("metadata", {}), dict):
            raise UnreadableLesson(f"not a notebook: the metadata of cell {index} is not a mapping")
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is not None and not isinstance(meta, dict):
            raise UnreadableLesson(f"not a notebook: the nbgrader metadata of cell {index} is not a mapping "
                                   "(re-download the lesson and copy your answers into it)")
    return nb


def imported_modules(source: str) -> set[str]:
    """Dotted module names a piece of Python source imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``).

    ``a.b.c`` is included because ``c`` may itself be a module; unparsable source imports nothing.
    """
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def nbgrader_meta(cell: nbformat.NotebookNode) -> dict:
    """The cell's nbgrader metadata, or an empty dict for ordinary cells (and for metadata that is not a mapping)."""
    metadata = cell.get("metadata", {})
    meta = metadata.get("nbgrader", {}) if isinstance(metadata, dict) else {}
    return meta if isinstance(meta, dict) else {}


def is_exercise(cell: nbformat.NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("solution")) and cell.cell_type == "code"


def is_test(cell: nbformat.NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("grade")) and cell.cell_type == "code"


def total_points(nb: nbformat.NotebookNode) -> float:
    """The points of all of a notebook's test cells: what a full score is."""
    return float(sum(nbgrader_meta(cell).get("points", 0) for cell in nb.cells if is_test(cell)))


def tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))
