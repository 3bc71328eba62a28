"""What of a submission is graded: its answers, put into the release; and what it tampered with.

:func:`answers_into_release` builds the notebook that runs: the release with only the
source of the student's solution cells put into it, so tags, metadata and every other cell
come from the instructor. :func:`check_locked_cells` reports what the student did to the
locked test cells (they never run from the submission either way).

The check compares every locked cell (the test cells), by ``grade_id``, with the student
edition that was handed out: its source (whitespace at line ends ignored), its type, its
tags and its nbgrader flags and points. A test cell that was edited, re-tagged (e.g.
``skip-execution``), deleted, duplicated or moved, or an exercise cell whose nbgrader
metadata was changed, makes the submission ``tampered`` — reported, never obeyed: the
graded notebook is the release, and nbgrader's ``OverwriteCells`` swaps in the
instructor's test cells (hidden tests included), so the tests that run are always the
original ones, in the original order.
"""

from __future__ import annotations

import copy

import nbformat

from grader.lessons import nbgrader_meta

FLAGS = ("grade", "solution", "locked", "points")


def _source(cell) -> str:
    return "\n".join(line.rstrip() for line in cell.get("source", "").strip("\n").split("\n"))


def _flags(cell) -> tuple:
    meta = nbgrader_meta(cell)
    points = meta.get("points")
    return (cell.get("cell_type"), *(bool(meta.get(k)) for k in FLAGS[:3]),
            float(points) if isinstance(points, (int, float)) else points)


def _grade_id(cell) -> str | None:
    gid = nbgrader_meta(cell).get("grade_id")
    return gid if isinstance(gid, str) else None


def check_locked_cells(
    nb: nbformat.NotebookNode, released: nbformat.NotebookNode, source: nbformat.NotebookNode | None = None,
    restore: bool = True,
) -> tuple[nbformat.NotebookNode, list[str]]:
    """``(notebook to grade, problems)``; with problems, the locked cells were put back.

    ``source`` is the instructor's notebook: a test cell identical to its version (hidden
    tests included, as in the course's own reference runs) is not an edit either.
    """
    locked = {_grade_id(c): c for c in released.cells if nbgrader_meta(c).get("locked") and _grade_id(c)}
    original = {_grade_id(c): _source(c) for c in (source.cells if source else []) if _grade_id(c) in locked}
    known = {_grade_id(c): c for c in released.cells if _grade_id(c)}
    order = [gid for gid in known if gid in locked]
    problems: list[str] = []
    seen: list[str] = []
    for cell in nb.cells:
        gid = _grade_id(cell)
        if gid is None:
            if nbgrader_meta(cell).get("grade"):
                problems.append("a cell claims to be a test cell but has no test id")
            continue
        if gid in locked:
            if gid in seen:
                problems.append(f"test cell {gid} appears more than once")
            seen.append(gid)
            if _source(cell) not in (_source(locked[gid]), original.get(gid)):
                problems.append(f"test cell {gid} was edited")
            elif _flags(cell) != _flags(locked[gid]):
                problems.append(f"the nbgrader metadata of test cell {gid} was changed")
            elif sorted(cell.get("metadata", {}).get("tags", [])) != sorted(locked[gid].metadata.get("tags", [])):
                problems.append(f"the tags of test cell {gid} were changed")
        elif gid in known:
            if _flags(cell) != _flags(known[gid]):
                problems.append(f"the nbgrader metadata of cell {gid} was changed")
                cell.metadata["nbgrader"] = copy.deepcopy(known[gid].metadata["nbgrader"])
        elif nbgrader_meta(cell).get("grade") or nbgrader_meta(cell).get("locked"):
            problems.append(f"cell {gid} claims to be a test cell but the lesson has no such test")
            cell.metadata.pop("nbgrader", None)
    missing = [gid for gid in order if gid not in seen]
    if missing:
        problems.append(f"test cell{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                        f"{'were' if len(missing) > 1 else 'was'} deleted (or lost their nbgrader metadata)")
    # Tests and exercises must keep their released order (a test moved after other code is not the same test).
    present = list(dict.fromkeys(g for g in map(_grade_id, nb.cells) if g in known))
    if [gid for gid in known if gid in present] != present:
        problems.append("test cells were moved")
    if not problems:
        return nb, []
    return (restore_locked_cells(nb, released, set(locked)) if restore else nb), problems


def restore_locked_cells(nb: nbformat.NotebookNode, released: nbformat.NotebookNode, locked: set[str]):
    """Remove the notebook's locked cells; insert the released ones after their released predecessor."""
    nb = copy.deepcopy(nb)
    cells = [c for c in nb.cells if _grade_id(c) not in locked]
    for index, cell in enumerate(released.cells):
        gid = _grade_id(cell)
        if gid not in locked:
            continue
        position = len(cells)
        for previous in reversed(released.cells[:index]):
            anchor = _grade_id(previous)
            hits = [i for i, c in enumerate(cells) if anchor and _grade_id(c) == anchor]
            if hits:
                position = hits[0] + 1
                break
        fresh = copy.deepcopy(cell)
        fresh.outputs, fresh.execution_count = [], None
        cells.insert(position, fresh)
    nb.cells = cells
    return nb


def _without_bootstrap(cell) -> str:
    """A cell's source without the generated Colab bootstrap (the instructor's source has none)."""
    from grader.build.bootstrap import MARK_BEGIN, MARK_END

    text = _source(cell)
    if MARK_BEGIN in text and MARK_END in text:
        head, rest = text.split(MARK_BEGIN, 1)
        text = (head + rest.split(MARK_END, 1)[1]).strip("\n")
    return text


def _first_line(source: str) -> str:
    return next((line.strip() for line in source.splitlines() if line.strip()), "")


def answers_into_release(
    nb: nbformat.NotebookNode, released: nbformat.NotebookNode
) -> tuple[nbformat.NotebookNode, list[str]]:
    """The notebook that is graded: the release, with only the student's answers put into it.

    Only the *source* of each solution cell is taken from the submission, matched by its
    ``grade_id`` (or, when a notebook tool lost the cell's nbgrader metadata, by the
    stub's first line, e.g. ``def top_k(scores, k):``). Every other cell, every tag
    (``skip-execution`` included), every metadata field and the cell order come from the
    release, so nothing else in a submission can change what runs. Returns the notebook
    and notes: cells the student added (not run), answers that are missing or whose cell
    type changed.
    """
    graded = copy.deepcopy(released)
    theirs = {gid: c for c in nb.cells if (gid := _grade_id(c)) is not None}
    solution_ids = {gid for c in released.cells if nbgrader_meta(c).get("solution") and (gid := _grade_id(c))}
    used: set[int] = set()
    notes: list[str] = []
    for cell in graded.cells:
        gid = _grade_id(cell)
        if gid not in solution_ids:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            continue
        answer = theirs.get(gid)
        if answer is None:  # metadata lost: the unique cell that starts like the stub
            first = _first_line(cell.source)
            hits = [c for c in nb.cells if first and _first_line(c.get("source", "")) == first
                    and _grade_id(c) is None and c.get("cell_type") == cell.cell_type]
            if len(hits) == 1:
                answer = hits[0]
                notes.append(f"answer {gid} was found by its first line (the cell had lost its nbgrader metadata)")
        if answer is None:
            notes.append(f"answer {gid} is missing from the submission: the stub was graded")
        elif answer.get("cell_type") != cell.cell_type:
            notes.append(f"answer {gid} became a {answer.get('cell_type')} cell: the stub was graded")
        else:
            cell.source = answer.get("source", "")
            used.add(id(answer))
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    released_sources = {_without_bootstrap(c) for c in released.cells}
    added = [c for c in nb.cells if id(c) not in used and _grade_id(c) is None and c.get("cell_type") == "code"
             and _without_bootstrap(c) and _without_bootstrap(c) not in released_sources]
    if added:
        notes.append(f"{len(added)} code cell{'s' * (len(added) > 1)} you added or changed outside the exercises "
                     f"{'were' if len(added) > 1 else 'was'} not run (put helper code inside an exercise cell)")
    return graded, notes
