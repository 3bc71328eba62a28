"""Markdown pages for the course site, rendered from the student editions.

Pages are built from ``lessons/NN_name.py`` — never from ``solutions/`` — so no
reference answer or hidden test can reach the site. When ``make course`` has run,
figures (captioned, with an alt text from the plot's title) and short text outputs of
the executed reference lesson are shown under the cells that produced them (styled as
output, not code), and the numbers a cell recorded (``movierec.report.record``) follow
it as a small results table: a readable label, the value, and the quality bar with
pass/fail where the course sets one. ``[metric]`` lines and bare echoed values are not
repeated in the shown output. Without that run the page carries one short note.

A lesson runs to dozens of phone screens, so the rendered page is folded (:func:`fold_sections`,
called by the site hook on the page's HTML): the introduction stays open, every numbered
section's body is a ``<details>`` under its own, always visible heading, and an "In this lesson"
box lists the sections with what each holds. Headings, their ids and permalinks are unchanged,
so every link and anchor still resolves (a link into a folded section opens it).
"""

from __future__ import annotations

import base64
import html
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
NO_RESULTS = (
    '<p class="course-note">The figures and measured results of the reference run are not part of '
    "this build (they come from <code>make course</code>); the published course shows them under the "
    "cells that produce them.</p>"
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
                r"\to": "→", r"\approx": "≈", r"\in": "∈", r"\ldots": "…", r"\dots": "…",
                r"\langle": "⟨", r"\rangle": "⟩", r"\sum": "Σ", r"\log": "log", r"\exp": "exp",
                r"\lVert": "‖", r"\rVert": "‖", r"\|": "‖", r"\alpha": "α", r"\lambda": "λ", r"\sigma": "σ",
                r"\top": "ᵀ", r"\neq": "≠", r"\infty": "∞", r"\sqrt": "√", r"\quad": " ", r"\qquad": " "}


def plain_math(text: str) -> str:
    """``top-\\(k\\)`` → ``top-k``: arithmatex's inline TeX as plain text, where MathJax does not run."""

    def detex(match: re.Match) -> str:
        tex = re.sub(r"([_^])\{([^{}]*)\}", r"\1\2", match.group(1))
        for _ in range(3):  # \frac{a}{b} → a/b (nested ones too)
            tex = re.sub(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", r"\1/\2", tex)
        tex = re.sub(r"\\(?:begin|end)\{[a-z*]+\}|&|\\\\", " ", tex)
        tex = re.sub(r"\\[a-zA-Z]+|\\\|", lambda m: _TEX_SYMBOLS.get(m.group(0), ""), tex)
        return re.sub(r"\s+", " ", re.sub(r"[{}]|\\(?=[ ,;!])", "", tex)).strip()

    text = re.sub(r"\\\[(.+?)\\\]", detex, text, flags=re.S)
    return re.sub(r"\\\((.+?)\\\)", detex, text, flags=re.S)


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


# Human labels for the numbers a lesson records; any other key gets a prettified label.
LABELS = {
    "retrieval.baseline.top_100": "Retrieval, id-only model: top-100 accuracy",
    "retrieval.features.top_100": "Retrieval, feature-rich model: top-100 accuracy",
    "retrieval.features.seconds": "Retrieval, feature-rich model: training time",
    "retrieval.baseline.seconds": "Retrieval, id-only model: training time",
    "ranking.baseline.rmse": "Ranking, id-only model: test RMSE",
    "ranking.best.rmse": "Ranking, best model: test RMSE",
    "ranking.best.seconds": "Ranking, best model: training time",
    "annoy.recall_at_10": "Annoy index: recall@10",
}
_WORDS = {"rmse": "RMSE", "ndcg": "NDCG", "mae": "MAE", "qps": "queries/s", "seconds": "time", "mib": "MiB",
          "dcn": "DCN", "api": "API", "tf": "TF", "ids": "ids", "k": "k"}
METRIC_LINE = re.compile(r"^\[metric\] (\S+) = ")
ECHOED_VALUE = re.compile(  # what a cell's last expression echoes that is no result: 84.83563096500531, None
    r"^\s*(?:[-+]?(?:\d[\d_,]*\.?\d*|\.\d+)(?:e[-+]?\d+)?|nan|inf|None|<[^>\n]* at 0x[0-9a-f]+>)\s*$", re.I)


def metric_label(name: str) -> str:
    """``retrieval.popularity.top_10`` → ``Retrieval, popularity: top-10 accuracy``."""
    if name in LABELS:
        return LABELS[name]

    def word(part: str) -> str:
        top = re.fullmatch(r"top_(\d+)", part)
        if top:
            return f"top-{top[1]} accuracy"
        at = re.fullmatch(r"(\w+?)_at_(\d+)", part)
        if at:
            return f"{_WORDS.get(at[1], at[1])}@{at[2]}"
        return " ".join(_WORDS.get(w, w) for w in part.split("_"))

    parts = [word(p) for p in name.split(".")]
    head = ", ".join(parts[:-1]) if len(parts) > 1 else ""
    label = f"{head}: {parts[-1]}" if head else parts[-1]
    return label[:1].upper() + label[1:]


def format_value(value: float | int, unit: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = str(value)
    elif isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        shown = f"{int(value):,}"
    elif abs(value) >= 100:
        shown = f"{value:,.0f}"
    else:
        shown = f"{value:.4g}"
    return f"{shown} {unit}".strip()


_OP_SIGNS = {"<=": "≤", ">=": "≥", "<": "<", ">": ">"}


def bar_verdict(bar, value: float) -> str:
    status, _ = bar.check({bar.metric: value})
    if status == "pass":
        return '<span class="result-pass">✔ pass</span>'
    if status == "slow":  # wall-clock bars are reported, not gated: machine load moves them
        return '<span class="result-slow">◷ slow (not gated)</span>'
    return '<span class="result-fail">✘ fail</span>'


def results_table(entries: list[dict]) -> str:
    """The numbers one cell recorded, as a paper would show them: label, value, bar, verdict."""
    bars = {bar.metric: bar for bar in BARS}
    with_bars = any(entry["name"] in bars for entry in entries)
    head = "| result | value |" + (" target | |" if with_bars else "")
    rows = [head, "| --- | ---: |" + (" --- | --- |" if with_bars else "")]
    for entry in entries:
        unit = entry.get("unit") or ""
        row = f"| {metric_label(entry['name'])} | {format_value(entry['value'], unit)} |"
        bar = bars.get(entry["name"])
        if with_bars and bar:
            target = f"{html.escape(_OP_SIGNS.get(bar.op, bar.op))} {format_value(bar.threshold, unit)}"
            row += f" {target} | {bar_verdict(bar, entry['value'])} |"
        elif with_bars:
            row += " | |"
        rows.append(row)
    names = " ".join(entry["name"] for entry in entries)
    opening = f'<div class="course-results" markdown data-metrics="{html.escape(names)}">'
    return opening + "\n\n" + "\n".join(rows) + "\n\n</div>"


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


def shown_text(lines: list[str]) -> list[str]:
    """Printed output without ``[metric]`` lines (the results table shows those numbers)."""
    return [line for line in lines if not METRIC_LINE.match(line)]


_TITLE_CALL = re.compile(r"""\.(?:suptitle|set_title|title)\(\s*f?(["'])(.+?)\1""")


def figure_title(source: str) -> str | None:
    """The plot's own title, read from the cell's ``suptitle``/``set_title``/``title`` call."""
    titles = [m[2] for m in _TITLE_CALL.finditer(source) if "{" not in m[2]]
    if not titles:
        return None
    return titles[0] if len(titles) == 1 else "; ".join(dict.fromkeys(titles))


@dataclass
class FigureContext:
    """What names a figure: the section it appears in, and how many figures came before it."""

    heading: str = ""
    count: int = 0


def render_outputs(cell: nbformat.NotebookNode, slug: str, index: int, figures: dict[str, bytes],
                   context: FigureContext | None = None) -> list[str]:
    context = context or FigureContext()
    parts = []
    text_lines: list[str] = []
    for n, output in enumerate(cell.get("outputs", [])):
        kind = output.get("output_type")
        data = output.get("data", {})
        if kind in ("display_data", "execute_result") and "image/png" in data:
            name = f"figures/{slug}-{index}-{n}.png"
            png = figures[f"lessons/{name}"] = base64.b64decode(data["image/png"])
            context.count += 1
            title = figure_title(cell.get("source", ""))
            section = re.sub(r"^\d+\.\s*", "", plain_math(context.heading)) or "the lesson"
            alt = title or f"Plot of the reference run: {section}, figure {context.count}"
            caption = f"Figure {context.count}. " + (title or f"{section} — from the reference run")
            size = png_size(png)  # the page reserves the figure's space before it loads
            dims = f" width={size[0]} height={size[1]}" if size else ""
            image = f"![{escape_alt(alt)}]({name}){{ loading=lazy{dims} }}"
            parts.append(f'<figure class="course-figure" markdown>\n\n{image}\n\n'
                         f"<figcaption>{html.escape(caption)}</figcaption>\n\n</figure>")
        elif kind == "stream" and output.get("name") == "stdout":
            text_lines += output.get("text", "").splitlines()
        elif kind == "execute_result" and "text/plain" in data:
            if not ECHOED_VALUE.match(data["text/plain"]):  # a bare echoed number is no result
                text_lines += data["text/plain"].splitlines()
    text_lines = shown_text(text_lines)
    while text_lines and not text_lines[-1].strip():
        text_lines.pop()
    if text_lines:
        if len(text_lines) > MAX_TEXT_LINES:
            text_lines = text_lines[:MAX_TEXT_LINES] + [f"... ({len(text_lines) - MAX_TEXT_LINES} more lines)"]
        parts.insert(0, '<pre class="cell-output" title="Output of the reference run"><code>'
                     + html.escape("\n".join(text_lines)) + "</code></pre>")
    return parts


def png_size(png: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        return None
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def escape_alt(text: str) -> str:
    return re.sub(r"([\[\]\\])", r"\\\1", text).replace('"', "'")


def recorded_names(cell: nbformat.NotebookNode) -> list[str]:
    """The metric names a cell's output shows as ``[metric] name = value`` (``movierec.report.record``)."""
    names = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            names += [m[1] for m in map(METRIC_LINE.match, output.get("text", "").splitlines()) if m]
    return list(dict.fromkeys(names))


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
    metrics = {entry["name"]: entry for entry in read_metrics(lesson)}
    placed: set[str] = set()
    figures: dict[str, bytes] = {}
    context = FigureContext()
    blocks: list[str] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            blocks.append(cell.source)
            headings = [line.lstrip("#").strip() for line in cell.source.splitlines() if line.startswith("#")]
            if headings:
                context.heading = headings[-1]
            if index == 0:
                blocks.append(links(lesson, settings))
                if ran is None and (EXECUTED / f"{lesson.slug}.ipynb").exists():
                    blocks.append(STALE_RESULTS)
                elif ran is None and not metrics:
                    blocks.append(NO_RESULTS)
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
            blocks += render_outputs(ran[index], lesson.slug, index, figures, context)
        if ran is not None:  # the numbers this cell recorded, where the text discusses them
            here = [metrics.get(name) or parsed_metric(ran[index], name) for name in recorded_names(ran[index])
                    if name not in placed]
            here = [entry for entry in here if entry is not None]
            if here:
                placed.update(entry["name"] for entry in here)
                blocks.append(results_table(here))
    rest = [entry for name, entry in metrics.items() if name not in placed]
    if rest and ran is None and not (EXECUTED / f"{lesson.slug}.ipynb").exists():
        blocks.insert(2, "Measured when `make course` ran the reference solution:\n\n" + results_table(rest))
    elif rest:
        blocks.append("## Other measured results\n\n" + results_table(rest))
    return RenderedPage("\n\n".join(blocks) + "\n", figures)


def parsed_metric(cell: nbformat.NotebookNode, name: str) -> dict | None:
    """A recorded number read back from its ``[metric] name = value unit`` line (no metrics file)."""
    for output in cell.get("outputs", []):
        for line in output.get("text", "").splitlines() if output.get("output_type") == "stream" else []:
            match = re.match(rf"^\[metric\] {re.escape(name)} = (\S+)\s*(.*)$", line)
            if match:
                try:
                    value = float(match[1])
                except ValueError:
                    return None
                return {"name": name, "value": int(value) if value.is_integer() and "." not in match[1] else value,
                        "unit": match[2].strip()}
    return None


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
             ]
    measured = measured_metrics(existing)
    if measured:
        rows += ["| result | target | measured | | why it matters |", "| --- | --- | ---: | --- | --- |"]
    else:
        rows += ["| result | target | why it matters |", "| --- | --- | --- |"]
    for bar in BARS:
        entry = measured.get(bar.metric)
        unit = (entry or {}).get("unit") or ("s" if bar.metric.endswith(".seconds") else "")
        target = f"{html.escape(_OP_SIGNS.get(bar.op, bar.op))} {format_value(bar.threshold, unit)}"
        if entry is not None:
            rows.append(f"| {metric_label(bar.metric)} | {target} | {format_value(entry['value'], unit)} | "
                        f"{bar_verdict(bar, entry['value'])} | {bar.why} |")
        elif measured:
            rows.append(f"| {metric_label(bar.metric)} | {target} | — | | {bar.why} |")
        else:
            rows.append(f"| {metric_label(bar.metric)} | {target} | {bar.why} |")
    return "\n".join(rows) + "\n"


def measured_metrics(existing: dict[str, Lesson]) -> dict[str, dict]:
    """Every number the reference runs recorded (``make course``), by name; empty without a run."""
    return {entry["name"]: entry for lesson in existing.values() for entry in read_metrics(lesson)}


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


# ---- folding a rendered lesson page into its numbered sections -------------------------------------------

MIN_FOLDED_SECTIONS = 3  # a lesson shorter than this reads fine as one open page
_H2 = re.compile(r"<h2 id=\"([^\"]+)\"[^>]*>(.*?)</h2>", re.S)
_PERMALINK = re.compile(r"<a class=\"headerlink\".*?</a>", re.S)
_NUMBERED = re.compile(r"^(\d+)\.\s")


def heading_text(inner_html: str) -> str:
    """A heading's text as a reader sees it: no permalink sign, no tags."""
    text = re.sub(r"<[^>]+>", "", _PERMALINK.sub("", inner_html))
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


def section_facts(body: str) -> str:
    """What a folded section holds, for its bar and the contents box: ``2 exercises · 1 figure`` (or nothing)."""
    counts = (
        (body.count('class="admonition question"'), "exercise"),
        (body.count('<figure class="course-figure"'), "figure"),
        (body.count('class="mermaid"'), "diagram"),
        (body.count('<div class="course-results"'), "results table"),
    )
    facts = [plural(n, noun) for n, noun in counts if n]
    return " · ".join(facts)


def fold_sections(page_html: str, open_first: bool = True) -> str:
    """The lesson's HTML with each numbered ``<h2>`` section folded, and a contents box before the first.

    The cut points are the page's top-level ``<h2>`` headings (lesson sections are ``## N. Title``
    cells), so every fold holds whole elements. Unnumbered sections (Summary, References) stay open.
    """
    headings = list(_H2.finditer(page_html))
    numbered = [m for m in headings if _NUMBERED.match(heading_text(m[2]))]
    if len(numbered) < MIN_FOLDED_SECTIONS:
        return page_html
    parts = [page_html[:headings[0].start()]]
    entries = []
    opened = False
    for n, heading in enumerate(headings):
        end = headings[n + 1].start() if n + 1 < len(headings) else len(page_html)
        body = page_html[heading.end():end]
        title = heading_text(heading[2])
        number = _NUMBERED.match(title)
        facts = section_facts(body) if number else ""
        entries.append(f'<li><a href="#{heading[1]}">{html.escape(title)}</a>'
                       + (f' <span class="course-sections__facts">{html.escape(facts)}</span>' if facts else "")
                       + "</li>")
        if number is None:
            parts.append(heading[0] + body)
            continue
        state = " open" if open_first and not opened else ""
        opened = True
        parts.append(f'{heading[0]}\n<details class="course-section"{state}>'
                     f'<summary><span class="course-section__label">Section {number[1]}</span> '
                     f'<span class="course-section__facts">{html.escape(facts or "text and code")}</span></summary>\n'
                     f"{body.strip()}\n</details>\n")
    contents = (
        '<nav class="course-sections" aria-label="Sections of this lesson">\n'
        '<p class="course-sections__title"><strong>In this lesson</strong>: '
        f"{len(numbered)} sections, each folded under its heading{' (the first one open)' if open_first else ''}: "
        "click a section's bar, or its link here, to read it. "
        '<button type="button" class="md-button course-sections__toggle" hidden '
        'data-open="Open all sections" data-close="Fold all sections">Open all sections</button></p>\n'
        f'<ul>\n{chr(10).join(entries)}\n</ul>\n</nav>\n'
    )
    return parts[0] + contents + "".join(parts[1:])
