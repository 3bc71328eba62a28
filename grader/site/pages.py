"""Markdown pages for the course site, rendered from the student editions.

Pages are built from ``lessons/NN_name.py`` — never from ``solutions/`` — so no
reference answer or hidden test can reach the site. When ``make course`` has run,
figures and short text outputs of the executed reference lesson are shown under the
cells that produced them (those are results, not code), and the metrics the lesson
recorded are shown in a table at the top of its page. Without that run the page says
how to produce them.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.grading.course import EXECUTED, METRICS  # what `make course` keeps of each reference run
from grader.grading.quality_bars import BARS
from grader.lessons import LESSONS, Lesson, is_exercise, is_test, nbgrader_meta, read_source, tags
from grader.settings import CourseSettings
from grader.site.syllabus import SYLLABUS, Planned
from movierec.report import read_records

MAX_TEXT_LINES = 25
SHOWN_METRICS = 8  # a longer metrics table starts folded
NO_RESULTS = (
    '!!! info "Results of the reference run"\n'
    "    The figures and metric tables of the reference run are not in this build. Run\n"
    "    `make course` (it executes every lesson's reference solution), then `make site`\n"
    "    or `make serve`: they appear here, under the cells that produce them."
)
STALE_RESULTS = (
    '!!! info "Results of the reference run"\n'
    "    The lesson has changed since `make course` last ran it, so its figures are not shown.\n"
    "    Run `make course` again to bring them back."
)


@dataclass
class RenderedPage:
    markdown: str
    figures: dict[str, bytes] = field(default_factory=dict)  # site path -> PNG bytes


_TEX_SYMBOLS = {r"\cdot": "·", r"\times": "×", r"\le": "≤", r"\leq": "≤", r"\ge": "≥", r"\geq": "≥",
                r"\to": "→", r"\approx": "≈", r"\in": "∈", r"\ldots": "…", r"\dots": "…"}


def plain_math(text: str) -> str:
    """``top-\\(k\\)`` → ``top-k``: arithmatex's inline TeX as plain text, where MathJax does not run."""

    def detex(match: re.Match) -> str:
        tex = re.sub(r"\\[a-zA-Z]+", lambda m: _TEX_SYMBOLS.get(m.group(0), ""), match.group(1))
        return re.sub(r"\s+", " ", re.sub(r"[{}]|\\(?=[ ,;!])", "", tex)).strip()

    return re.sub(r"\\\((.+?)\\\)", detex, text)


def indent(text: str, spaces: int = 4) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line.strip() else "" for line in text.splitlines())


def fenced(code: str, lang: str = "python") -> str:
    return f"```{lang}\n{code.rstrip()}\n```"


def links(lesson: Lesson, settings: CourseSettings) -> str:
    """Open in Colab, and downloads of the student edition as a notebook and as a script."""
    notebook, script = f"{lesson.slug}.ipynb", f"{lesson.slug}.py"
    return (
        f"[:simple-googlecolab: Open in Colab]({settings.colab_url(notebook)})"
        '{ .md-button .md-button--primary .colab-link target="_blank" rel="noopener" } '
        f"[:material-download: Download notebook](../notebooks/{notebook}){{ .md-button download=\"{notebook}\" }} "
        f"[:material-language-python: Download .py](../notebooks/{script}){{ .md-button download=\"{script}\" }}"
    )


def read_metrics(lesson: Lesson) -> list[dict]:
    """The metrics the lesson's reference run recorded (``movierec.report.record``), in order."""
    return read_records(METRICS / f"{lesson.slug}.jsonl")


def metrics_table(metrics: list[dict]) -> str:
    """An admonition with one row per recorded metric, and the quality bar it must meet, if any."""
    bars = {bar.metric: bar for bar in BARS}
    with_bars = any(entry["name"] in bars for entry in metrics)
    rows = ["| metric | value |" + (" quality bar |" if with_bars else ""),
            "| --- | ---: |" + (" --- |" if with_bars else "")]
    for entry in metrics:
        value = entry["value"]
        shown = f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
        unit = f" {entry['unit']}" if entry.get("unit") else ""
        row = f"| `{entry['name']}` | {shown}{unit} |"
        if with_bars:
            bar = bars.get(entry["name"])
            row += f" {bar.op} {bar.threshold:g} ({bar.why}) |" if bar else " |"
        rows.append(row)
    intro = "What this lesson measured when `make course` ran its reference solution:"
    fold = "!!!" if len(metrics) <= SHOWN_METRICS else "???"  # a long table starts folded
    title = f"Results of the reference run ({len(metrics)} metrics)"
    return f'{fold} abstract "{title}"\n    {intro}\n\n' + indent("\n".join(rows))


def plural(count: float, noun: str) -> str:
    return f"{count:g} {noun}" + ("" if count == 1 else "s")


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
                metrics = read_metrics(lesson)
                if ran is None and (EXECUTED / f"{lesson.slug}.ipynb").exists():
                    blocks.append(STALE_RESULTS)
                elif ran is None and not metrics:
                    blocks.append(NO_RESULTS)
                if metrics:
                    blocks.append(metrics_table(metrics))
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
            label = f"Exercise `{grade_id}`" + (f" — {plural(worth, 'point')}" if worth else "")
            blocks.append(f'!!! question "{label}"\n' + indent(fenced(cell.source)))
        elif is_test(cell):
            worth = plural(float(meta.get("points", 0)), "point")
            blocks.append(f'??? success "Tests for this exercise ({worth})"\n'
                          + indent(fenced(cell.source)))
        else:
            blocks.append(fenced(cell.source))
        if ran is not None and not is_test(cell) and not is_exercise(cell):
            blocks += render_outputs(ran[index], lesson.slug, index, figures)
    return RenderedPage("\n\n".join(blocks) + "\n", figures)


def placeholder_page(planned: Planned) -> str:
    """The page of a planned lesson: replaced by the real one as soon as its source lands."""
    number = int(planned.slug[:2])
    return (
        f"# Lesson {number:02d} — {planned.title}\n\n"
        f'!!! note "Coming soon"\n'
        f"    This lesson is not written yet; this page is replaced by the lesson itself, with\n"
        f"    its *Open in Colab* button and downloads, as soon as it is published.\n\n"
        f"**What it will cover:** {planned.summary}\n\n"
        f"**Estimated time:** {planned.minutes} minutes. See the [syllabus](../syllabus.md) for the whole plan.\n"
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
    rows += ["", f"In all about {total / 60:.0f} hours, plus the time the exercises take you.", "",
             "## What the finished course achieves", "",
             "`make course` runs every reference solution and checks these bars; the numbers come "
             "from the lessons themselves (`movierec.report.record`).", "",
             "| metric | bar | why it matters |", "| --- | --- | --- |"]
    rows += [f"| `{bar.metric}` | {bar.op} {bar.threshold:g} | {bar.why} |" for bar in BARS]
    return "\n".join(rows) + "\n"


def lesson_references(lesson: Lesson) -> str | None:
    """The body of the lesson's ``## References`` section (its list), or None."""
    for cell in read_source(lesson.student).cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for n, line in enumerate(lines):
            if line.strip().lower() == "## references":
                body = []
                for rest in lines[n + 1:]:
                    if rest.startswith("#"):
                        break
                    body.append(rest)
                return "\n".join(body).strip() or None
    return None


def references_section(existing: dict[str, Lesson]) -> str:
    """Every lesson's own References list, gathered for the references page (never copied by hand)."""
    parts = []
    for planned in SYLLABUS:
        lesson = existing.get(planned.slug)
        number = int(planned.slug[:2])
        if lesson is None:
            parts.append(f"### Lesson {number:02d} — {planned.title}\n\n*This lesson is not written yet.*")
            continue
        title = lesson.title().split("—", 1)[-1].strip()
        body = lesson_references(lesson) or "*This lesson cites no sources.*"
        parts.append(f"### [Lesson {number:02d} — {title}](lessons/{lesson.slug}.md)\n\n{body}")
    return "\n\n".join(parts) + "\n"


def student_files() -> dict[str, Path]:
    """Downloadable student editions (``.py``) for the site's ``notebooks/`` folder."""
    return {f"notebooks/{p.name}": p for p in sorted(LESSONS.glob("*.py"))}
