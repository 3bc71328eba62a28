"""The student edition and the notebooks, made from a lesson's source.

The student edition is produced by nbgrader's own preprocessors — the same ones that
``nbgrader generate_assignment`` runs — so what students get is exactly what nbgrader
will later grade: solutions replaced by stubs, hidden tests removed, test cells locked
and checksummed, outputs cleared.
"""

from __future__ import annotations

import copy

import jupytext
import nbformat
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
)

from grader.build.bootstrap import needs_serving, with_bootstrap
from grader.lessons import KERNELSPEC, PERCENT, Lesson, read_source, tags
from grader.markers import SECRET_BLOCKS, student_stamp
from grader.settings import CourseSettings, load_settings

STUDENT_PREPROCESSORS = (
    CheckCellMetadata,
    LockCells,
    ClearSolutions,
    ClearOutput,
    ClearHiddenTests,
    ClearMarkScheme,
    ComputeChecksums,
)


def stamp(lesson: Lesson) -> str:
    return student_stamp(lesson.slug)


def add_bootstrap(nb: nbformat.NotebookNode, settings: CourseSettings) -> nbformat.NotebookNode:
    """Put the Colab bootstrap in front of the code of the cell tagged ``setup``."""
    nb = copy.deepcopy(nb)
    serving = needs_serving([c.source for c in nb.cells if c.cell_type == "code"])
    for cell in nb.cells:
        if cell.cell_type == "code" and "setup" in tags(cell):
            cell.source = with_bootstrap(cell.source, settings, serving)
            return nb
    raise ValueError("the lesson has no code cell tagged 'setup' (see site/authoring.md)")


def finish_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Notebook-level metadata every generated notebook carries (kernel, Colab hints)."""
    nb.metadata = {
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
    }
    nbformat.validator.normalize(nb)
    return nb


def instructor_notebook(lesson: Lesson, settings: CourseSettings | None = None) -> nbformat.NotebookNode:
    """The source with the bootstrap: what instructors run and nbgrader's ``source/`` holds."""
    nb = add_bootstrap(read_source(lesson.solution), settings or load_settings())
    return finish_notebook(nb)


def student_notebook(lesson: Lesson, settings: CourseSettings | None = None) -> nbformat.NotebookNode:
    """The student edition as a notebook, through nbgrader's release preprocessors."""
    nb = instructor_notebook(lesson, settings)
    resources: dict = {}
    for preprocessor in STUDENT_PREPROCESSORS:
        nb, resources = preprocessor().preprocess(nb, resources)
    for cell in nb.cells:  # jupytext bookkeeping that nbgrader carried along
        cell.metadata.pop("lines_to_next_cell", None)
    return finish_notebook(nb)


def to_percent(nb: nbformat.NotebookNode) -> str:
    """Write a notebook as a percent script, with only the cell metadata lessons use."""
    nb = copy.deepcopy(nb)
    nb.metadata = {
        "jupytext": {"notebook_metadata_filter": "-all", "cell_metadata_filter": "tags,nbgrader,-all"}
    }
    return jupytext.writes(nb, fmt=PERCENT)


def student_script(lesson: Lesson, settings: CourseSettings | None = None) -> str:
    """The committed ``lessons/NN_name.py``: the stamp line, then the student edition."""
    return f"{stamp(lesson)}\n\n{to_percent(student_notebook(lesson, settings))}"


def split_secrets(lesson: Lesson) -> tuple[set[str], str]:
    """The stripped lines inside the lesson's solution and hidden-test blocks, and all other text."""
    secret: set[str] = set()
    public = []
    for cell in read_source(lesson.solution).cells:
        text = cell.source
        for begin, end in SECRET_BLOCKS:
            while begin in text and end in text:
                head, rest = text.split(begin, 1)
                inside, text = rest.split(end, 1)
                secret |= {line.strip() for line in inside.splitlines()}
                text = head + text
        public.append(text)
    return secret, "\n".join(public)


def secret_lines(lessons: list[Lesson], min_length: int = 20) -> set[str]:
    """Lines that appear only inside solution blocks and hidden tests of these lessons.

    Used by the tests to prove that no answer reaches a student edition, a notebook
    or the site: a line that also appears in any lesson's public cells is not secret.
    """
    secret: set[str] = set()
    public = []
    for lesson in lessons:
        lines, text = split_secrets(lesson)
        secret |= lines
        public.append(text)
    everything_public = "\n".join(public)
    return {
        line for line in secret
        if len(line) >= min_length and not line.startswith("#") and line not in everything_public
    }
