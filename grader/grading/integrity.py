"""Checking a submission's locked test cells against the released edition.

Before nbgrader sees a submission, every locked cell (the test cells) is compared, by
``grade_id``, with the student edition that was handed out: its source (whitespace at
line ends ignored), its type and its nbgrader flags and points. A test cell that was
edited, deleted, duplicated or moved, or an exercise cell whose nbgrader metadata was
changed, makes the submission ``tampered``, and the test cells are put back: every
locked cell of the student's notebook is removed and the released ones are inserted,
each right after the cell that precedes it in the released edition (or at the end, if
the student's notebook has no such cell). nbgrader's ``OverwriteCells`` then swaps in
the instructor's version (hidden tests included) as for any submission, so the tests
that run are always the original ones, in the original order.
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
    nb: nbformat.NotebookNode, released: nbformat.NotebookNode, source: nbformat.NotebookNode | None = None
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
    return restore_locked_cells(nb, released, set(locked)), problems


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
