"""Markdown pages for the course site, rendered from the student editions.

Pages are built from ``lessons/NN_name.py`` — never from ``solutions/`` — so no
reference answer or hidden test can reach the site. When ``make course`` has run,
figures and short text outputs of the executed reference lesson are shown under the
cells that produced them (those are results, not code).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.lessons import BUILD, LESSONS, Lesson, is_exercise, is_test, nbgrader_meta, read_source, tags
from grader.settings import CourseSettings
from grader.syllabus import SYLLABUS, Planned

EXECUTED = BUILD / "executed"
MAX_TEXT_LINES = 25


@dataclass
class RenderedPage:
    markdown: str
    figures: dict[str, bytes] = field(default_factory=dict)  # site path -> PNG bytes


def indent(text: str, spaces: int = 4) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line.strip() else "" for line in text.splitlines())


def fenced(code: str, lang: str = "python") -> str:
    return f"```{lang}\n{code.rstrip()}\n```"


def links(lesson: Lesson, settings: CourseSettings) -> str:
    notebook = f"{lesson.slug}.ipynb"
    return (
        f"[:simple-googlecolab: Open in Colab]({settings.colab_url(notebook)}){{ .md-button .md-button--primary }} "
        f"[:material-download: Notebook](../notebooks/{notebook}){{ .md-button }} "
        f"[:material-language-python: .py](../notebooks/{lesson.slug}.py){{ .md-button }}"
    )


def test_points(nb: nbformat.NotebookNode) -> dict[str, float]:
    """Points per exercise: the sum over its ``test_<id>`` cells."""
    points: dict[str, float] = {}
    for cell in nb.cells:
        if is_test(cell):
            grade_id = nbgrader_meta(cell).get("grade_id", "")
            exercise = grade_id.removeprefix("test_").rsplit("_", 1)
            key = exercise[0] if len(exercise) == 2 and exercise[1].isdigit() else grade_id.removeprefix("test_")
            points[key] = points.get(key, 0) + float(nbgrader_meta(cell).get("points", 0))
    return points


def render_outputs(cell: nbformat.NotebookNode, slug: str, index: int, figures: dict[str, bytes]) -> list[str]:
    parts = []
    text_lines: list[str] = []
    for n, output in enumerate(cell.get("outputs", [])):
        kind = output.get("output_type")
        data = output.get("data", {})
        if kind in ("display_data", "execute_result") and "image/png" in data:
            name = f"figures/{slug}-{index}-{n}.png"
            figures[f"lessons/{name}"] = base64.b64decode(data["image/png"])
            parts.append(f"![Figure from the reference run]({name})")
        elif kind == "stream" and output.get("name") == "stdout":
            text_lines += output.get("text", "").splitlines()
        elif kind == "execute_result" and "text/plain" in data:
            text_lines += data["text/plain"].splitlines()
    if text_lines:
        if len(text_lines) > MAX_TEXT_LINES:
            text_lines = text_lines[:MAX_TEXT_LINES] + [f"... ({len(text_lines) - MAX_TEXT_LINES} more lines)"]
        parts.insert(0, fenced("\n".join(text_lines), "text"))
    return parts


def executed_outputs(lesson: Lesson, student: nbformat.NotebookNode) -> list | None:
    """Cells of the executed reference run, if it exists and lines up with the student edition."""
    path = EXECUTED / f"{lesson.slug}.ipynb"
    if not path.exists():
        return None
    executed = nbformat.read(path, as_version=4)
    if len(executed.cells) != len(student.cells):
        return None
    if any(a.cell_type != b.cell_type for a, b in zip(executed.cells, student.cells)):
        return None
    return executed.cells


def lesson_page(lesson: Lesson, settings: CourseSettings, student_path: Path | None = None) -> RenderedPage:
    nb = read_source(student_path or lesson.student)
    points = test_points(nb)
    ran = executed_outputs(lesson, nb)
    figures: dict[str, bytes] = {}
    blocks: list[str] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            blocks.append(cell.source)
            if index == 0:
                blocks.append(links(lesson, settings))
                if ran is None:
                    blocks.append(
                        '!!! info "Results"\n    Figures and printed results appear on this page after '
                        "`make course` has run the reference lessons."
                    )
            continue
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        meta = nbgrader_meta(cell)
        if "setup" in tags(cell):
            blocks.append('??? info "Setup cell — run it first (in Colab it installs the course packages)"\n'
                          + indent(fenced(cell.source)))
        elif is_exercise(cell):
            grade_id = meta.get("grade_id", "")
            worth = points.get(grade_id)
            label = f"Exercise `{grade_id}`" + (f" — {worth:g} points" if worth else "")
            blocks.append(f'!!! question "{label}"\n' + indent(fenced(cell.source)))
        elif is_test(cell):
            blocks.append(f'??? success "Tests for this exercise ({meta.get("points", 0):g} points)"\n'
                          + indent(fenced(cell.source)))
        else:
            blocks.append(fenced(cell.source))
        if ran is not None and not is_test(cell) and not is_exercise(cell):
            blocks += render_outputs(ran[index], lesson.slug, index, figures)
    return RenderedPage("\n\n".join(blocks) + "\n", figures)


def placeholder_page(planned: Planned) -> str:
    number = int(planned.slug[:2])
    return (
        f"# Lesson {number:02d} — {planned.title}\n\n"
        f'!!! note "Coming soon"\n    This lesson is being written. It will cover: {planned.summary}\n'
    )


def syllabus_page(existing: dict[str, Lesson]) -> str:
    rows = ["# Syllabus", "",
            "Each lesson is one idea, runnable top to bottom on its own, and ends with autograded exercises.", "",
            "| # | lesson | time | what you learn |", "| --- | --- | --- | --- |"]
    total = 0
    for planned in SYLLABUS:
        total += planned.minutes
        lesson = existing.get(planned.slug)
        title = lesson.title().split("—", 1)[-1].strip() if lesson else f"{planned.title} *(coming soon)*"
        rows.append(f"| {planned.slug[:2]} | [{title}](lessons/{planned.slug}.md) | "
                    f"{planned.minutes} min | {planned.summary} |")
    rows += ["", f"In all about {total / 60:.0f} hours, plus the time the exercises take you."]
    return "\n".join(rows) + "\n"


def student_files() -> dict[str, Path]:
    """Downloadable student editions (``.py``) for the site's ``notebooks/`` folder."""
    return {f"notebooks/{p.name}": p for p in sorted(LESSONS.glob("*.py"))}
