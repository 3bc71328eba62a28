"""No typed-in results: a figure the prose states is backed by the code next to it (site/authoring.md).

A decimal figure or a percentage in a lesson's markdown is a *claim* about a result unless
the lesson's code contains the same number (a setting such as ``learning_rate=0.1``, or an
``assert`` that fails when a run disagrees, e.g. ``assert round(mean_rating, 1) == 3.5``), or
the code cell just above records it with ``record(...)`` (which prints the value the
sentence reads). What is left must be in :data:`NOT_RESULTS` with the reason it is not a
result. A heuristic: math spans, inline code, headings, links, section numbers and the References
section are not read.
"""

from __future__ import annotations

import re

import nbformat

from grader.lessons import read_source

FIGURE = re.compile(r"(?<![\w./-])(\d+\.\d+%?|\d+(?:\.\d+)?%)(?!\w|\.\d)")
MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$", re.S)
INLINE_CODE = re.compile(r"`[^`]*`")

# (lesson, figure) -> why the figure is not a result of the lesson's own code.
NOT_RESULTS = {
    ("01_intro", "80%"): "Netflix's published share of hours streamed from recommendations (cited)",
    ("03_preprocessing", "23.97"): "clock arithmetic: 23:58 is 23.97 hours after midnight",
    ("03_preprocessing", "0.02"): "clock arithmetic: 00:01 is 0.02 hours after midnight",
    ("05_ranking", "5.3"): "an impossible rating, as an example of what clipping removes",
    ("05_ranking", "0.89"): "a published RMSE on another split (Han et al., 2021, cited)",
    ("05_ranking", "0.93"): "the TFRS deep & cross network tutorial's published RMSE on its own split (cited)",
}


def spellings(figure: str) -> list[str]:
    """The ways code may write a figure: ``0.4`` for ``40%`` as well as ``40``."""
    number = figure.rstrip("%")
    forms = [number]
    if figure.endswith("%"):
        fraction = float(number) / 100
        forms += [f"{fraction:g}", f"{fraction:.2f}", f"{fraction:.3f}"]
    return forms


def in_code(figure: str, code: str) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(form)}(?![\w.]|\.\d)", code) for form in spellings(figure))


def unbacked_figures(nb: nbformat.NotebookNode) -> list[tuple[int, str, str]]:
    """``(cell index, figure, line)`` of every claim the code does not back."""
    cells = nb.cells
    code = "\n".join(cell.source for cell in cells if cell.cell_type == "code")
    found = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "markdown" or re.search(r"^#+ References", cell.source, re.M):
            continue
        above = next((cells[j] for j in range(index - 1, -1, -1) if cells[j].cell_type == "code"), None)
        if above is not None and "record(" in above.source:
            continue
        for line in MATH.sub(" ", cell.source).splitlines():
            if line.lstrip().startswith("#") or re.search(r"doi|arxiv|https?://", line, re.I):
                continue
            text = INLINE_CODE.sub(" ", line)
            for match in FIGURE.finditer(text):
                if re.search(r"(sections?|§)\s*$", text[:match.start()], re.I):  # "section 2.1" names a place
                    continue
                if not in_code(match.group(1), code):
                    found.append((index, match.group(1), line.strip()))
    return found


def test_every_figure_in_the_prose_is_backed_by_the_code(lesson):
    unbacked = [(index, figure, line) for index, figure, line in unbacked_figures(read_source(lesson.solution))
                if (lesson.slug, figure) not in NOT_RESULTS]
    assert not unbacked, "\n".join(
        [f"{lesson.slug}: figures stated in the prose that no code backs (add an assert, print it from a "
         "record(...) in the cell above, or list it in NOT_RESULTS with the reason):"]
        + [f"  cell {index}: {figure!r} in: {line}" for index, figure, line in unbacked])


def test_the_figure_check_catches_a_typed_in_result():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("model.fit(x, learning_rate=0.1)"),
        nbformat.v4.new_markdown_cell("With learning rate 0.1 the model reaches an RMSE of 0.91, 12% better."),
        nbformat.v4.new_code_cell("rmse = record('x.rmse', evaluate())"),
        nbformat.v4.new_markdown_cell("The RMSE above is 0.87; the formula $0.5 x$ and `0.25` are not claims."),
        nbformat.v4.new_code_cell("assert share > 0.40"),
        nbformat.v4.new_markdown_cell("Over 40% of ratings; section 2.1 is\n## 2.1 Not a figure"),
    ])
    assert [(index, figure) for index, figure, _ in unbacked_figures(nb)] == [(1, "0.91"), (1, "12%")]
    assert NOT_RESULTS and all(reason for reason in NOT_RESULTS.values())
