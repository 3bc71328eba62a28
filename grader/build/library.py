"""Export ``export``-tagged cells of a lesson into the ``movierec`` package.

This is d2l's ``#@save`` idea: a later lesson imports an earlier lesson's building
blocks (data split, towers, trained-model helpers) from ``movierec.<name>`` rather than
copying code or depending on the student's own answers. Imports are hoisted to the top
of the module and de-duplicated, so the generated module reads like a hand-written one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from grader.lessons import Lesson, is_exercise, read_source, tags
from grader.markers import block_provenance, module_header

EXPORT_TAG = "export"


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


def export_cells(lesson: Lesson) -> list[tuple[str, str]]:
    """``(section, source)`` of every export cell, ``section`` being the heading it sits under."""
    sources = []
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
        sources.append((section, cell.source.strip("\n")))
    return sources


def module_source(lesson: Lesson) -> str | None:
    """The text of ``movierec/<name>.py``, or None when the lesson exports nothing."""
    cells = export_cells(lesson)
    if not cells:
        return None
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
    header = (
        f"{module_header(lesson.slug)}\n"
        f'"""Building blocks from lesson {lesson.slug}: {lesson.title()}.\n\n'
        f"The cells tagged ``export`` in solutions/{lesson.slug}.py, in lesson order; each block\n"
        'names the section of the lesson that explains it.\n"""\n'
    )
    sections = ["\n".join(future + others)] if imports else []
    sections.append("\n\n\n".join(body))
    return sort_imports(header + "\n" + "\n\n\n".join(sections) + "\n", lesson.module)


def sort_imports(text: str, path: Path) -> str:
    """Let ruff order and space the hoisted imports exactly as the lint step expects."""
    process = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "I", "--fix-only", "--quiet",
         "--stdin-filename", str(path), "-"],
        input=text, capture_output=True, text=True, cwd=path.parent.parent,
    )
    if process.returncode != 0:
        raise ExportError(f"ruff could not sort the imports of {path}: {process.stderr.strip()}")
    return process.stdout
