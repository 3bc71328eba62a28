"""The markers the course writes and reads, spelled in one place.

nbgrader's delimiters of reference answers and hidden tests, the stub that replaces an
answer in the student edition, and the headers that say a file is generated. Everything
that looks for one of them — the build, the leak tests, feedback scrubbing, the reader of
submissions — imports it from here.
"""

from __future__ import annotations

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
SECRET_BLOCKS = ((BEGIN_SOLUTION, END_SOLUTION), (BEGIN_HIDDEN, END_HIDDEN))
ALL = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
# What nbgrader's ClearSolutions puts where a reference answer was (nbgrader's own default, pinned here).
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"

DO_NOT_EDIT = "DO NOT EDIT"
BUILD_COMMAND = "`python -m grader build`"
# The first line of a student edition. Older editions began with LEGACY_STAMP; both are read as a stamp.
STAMP_PREFIX = f"# {DO_NOT_EDIT} (authors): generated from "
LEGACY_STAMP = "# Student edition generated from "
STAMPS = (STAMP_PREFIX, LEGACY_STAMP)
# The first line of a generated ``movierec`` module.
MODULE_PREFIX = f"# {DO_NOT_EDIT} — generated from "
LEGACY_MODULE_MARK = "Generated from the cells tagged ``export``"  # the docstring of modules built before the header


def source_path(slug: str) -> str:
    return f"solutions/{slug}.py"


def student_stamp(slug: str) -> str:
    """The first line of ``lessons/NN_name.py``: generated, but the student's to fill in."""
    return f"{STAMP_PREFIX}{source_path(slug)} by {BUILD_COMMAND}. Students: this copy is yours to fill in."


def module_header(slug: str) -> str:
    """The first line of a generated ``movierec/<name>.py``."""
    return f"{MODULE_PREFIX}{source_path(slug)} by {BUILD_COMMAND}: edit the lesson instead."


def is_stamp(text: str) -> bool:
    return text.startswith(STAMPS)


def block_provenance(slug: str, section: str) -> str:
    """The comment in front of each exported block: where in which lesson it was written."""
    return f"# --- from {source_path(slug)}, section: {section}" if section else f"# --- from {source_path(slug)}"
