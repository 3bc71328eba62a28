"""Export ``export``-tagged cells of a lesson into the ``movierec`` package.

This is d2l's ``#@save`` idea: a later lesson imports an earlier lesson's building
blocks (data split, towers, trained-model helpers) from ``movierec.<name>`` rather than
copying code or depending on the student's own answers. Imports are hoisted to the top
of the module and de-duplicated, so the generated module reads like a hand-written one.

An export cell goes to the lesson's own module, ``movierec/<name>.py``, unless its first
line names another target, as nbdev's ``#|export module`` does::

    # %% tags=["export"]
    #| export serving.clients

sends the cell to ``movierec/serving/clients.py`` (a package folder is created with the
module; its ``__init__.py`` is hand-written). One lesson may fill several modules, so that
no generated module mixes roles; every module keeps the ``DO NOT EDIT`` header and the
per-block provenance, and the directive line itself is not copied.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from grader.lessons import LIBRARY, Lesson, is_exercise, read_source, tags
from grader.markers import block_provenance, module_header

EXPORT_TAG = "export"
TARGET_DIRECTIVE = re.compile(r"^#\|\s*export\s+([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)\s*$")


class ExportError(ValueError):
    """An export cell breaks a rule from site/authoring.md."""


def _is_definition(node: ast.stmt) -> bool:
    """Functions, classes, constants and docstrings: nothing that runs work on import."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)):
        return True
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)


def section_title(markdown: str) -> str | None:
    """The last heading in a markdown cell (``## 4. Buckets for time`` → ``4. Buckets for time``)."""
    heads = [line.lstrip("#").strip() for line in markdown.splitlines() if line.startswith("#")]
    return heads[-1] if heads else None


def target_of(source: str) -> tuple[str | None, str]:
    """``(dotted module or None, source without the directive)`` of an export cell."""
    lines = source.strip("\n").splitlines()
    if lines and lines[0].lstrip().startswith("#|"):
        match = TARGET_DIRECTIVE.match(lines[0].strip())
        if not match:
            raise ExportError(f"an export directive reads '#| export package.module', not {lines[0].strip()!r}")
        return match.group(1), "\n".join(lines[1:])
    return None, source


def module_path(dotted: str) -> Path:
    """``movierec/serving/clients.py`` for ``serving.clients``."""
    return LIBRARY.joinpath(*dotted.split(".")).with_suffix(".py")


def export_cells(lesson: Lesson) -> list[tuple[str, str]]:
    """``(section, source)`` of every export cell for the lesson's own module (see :func:`targeted_cells`)."""
    return targeted_cells(lesson).get(lesson.module, [])


def targeted_cells(lesson: Lesson) -> dict[Path, list[tuple[str, str]]]:
    """``{module path: [(section, source), ...]}`` of every export cell, ``section`` being its heading."""
    targets: dict[Path, list[tuple[str, str]]] = {}
    section = ""
    for index, cell in enumerate(read_source(lesson.solution).cells):
        if cell.cell_type == "markdown":
            section = section_title(cell.source) or section
            continue
        if cell.cell_type != "code" or EXPORT_TAG not in tags(cell):
            continue
        if is_exercise(cell):
            raise ExportError(
                f"{lesson.solution} cell {index}: an exercise cell cannot be exported "
                "(the movierec library must not contain answers)"
            )
        if any(line.lstrip().startswith(("%", "!")) for line in cell.source.splitlines()):
            raise ExportError(f"{lesson.solution} cell {index}: export cells must be plain Python (no magics)")
        try:
            dotted, source = target_of(cell.source)
        except ExportError as exc:
            raise ExportError(f"{lesson.solution} cell {index}: {exc}") from None
        path = module_path(dotted) if dotted else lesson.module
        targets.setdefault(path, []).append((section, source.strip("\n")))
    return targets


def module_source(lesson: Lesson) -> str | None:
    """The text of ``movierec/<name>.py``, or None when the lesson exports nothing there."""
    return module_sources(lesson).get(lesson.module)


def module_sources(lesson: Lesson) -> dict[Path, str]:
    """``{path: text}`` of every module the lesson's export cells fill."""
    return {path: _render(lesson, path, cells) for path, cells in targeted_cells(lesson).items()}


def _render(lesson: Lesson, path: Path, cells: list[tuple[str, str]]) -> str:
    imports: list[str] = []
    body: list[str] = []
    for section, cell in cells:
        tree = ast.parse(cell)
        lines = cell.splitlines()
        import_lines: set[int] = set()
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                segment = "\n".join(lines[node.lineno - 1 : node.end_lineno])
                if segment not in imports:
                    imports.append(segment)
                import_lines.update(range(node.lineno - 1, node.end_lineno))
            elif not _is_definition(node):
                raise ExportError(
                    f"{lesson.solution}: export cells may only define functions, classes and "
                    f"constants; line {node.lineno} does work at import time"
                )
        kept = [line for i, line in enumerate(lines) if i not in import_lines]
        text = "\n".join(kept).strip("\n")
        if text:
            body.append(f"{block_provenance(lesson.slug, section)}\n{text}")
    future = [imp for imp in imports if imp.startswith("from __future__")]
    others = [imp for imp in imports if imp not in future]
    if path == lesson.module:
        origin = f"The cells tagged ``export`` in solutions/{lesson.slug}.py"
    else:
        dotted = ".".join(path.relative_to(LIBRARY).with_suffix("").parts)
        origin = (f"The cells of solutions/{lesson.slug}.py tagged ``export`` whose first line\n"
                  f"is ``#| export {dotted}``")
    header = (
        f"{module_header(lesson.slug)}\n"
        f'"""Building blocks from lesson {lesson.slug}: {lesson.title()}.\n\n'
        f"{origin}, in lesson order; each block\n"
        'names the section of the lesson that explains it.\n"""\n'
    )
    sections = ["\n".join(future + others)] if imports else []
    sections.append("\n\n\n".join(body))
    return sort_imports(header + "\n" + "\n\n\n".join(sections) + "\n", path)


def sort_imports(text: str, path: Path) -> str:
    """Let ruff order and space the hoisted imports exactly as the lint step expects."""
    process = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "I", "--fix-only", "--quiet",
         "--stdin-filename", str(path), "-"],
        input=text, capture_output=True, text=True, cwd=LIBRARY.parent,
    )
    if process.returncode != 0:
        raise ExportError(f"ruff could not sort the imports of {path}: {process.stderr.strip()}")
    return process.stdout
