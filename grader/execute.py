"""Run a notebook in a fresh Jupyter kernel and report what each cell did.

Execution goes through nbclient (the engine under nbconvert and nbgrader) with
``allow_errors`` on, so one failing exercise does not hide the results of the rest.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from grader.lessons import KERNELSPEC


@dataclass
class CellOutcome:
    index: int
    error_name: str | None = None
    error_value: str = ""

    @property
    def ok(self) -> bool:
        return self.error_name is None


@dataclass
class Execution:
    notebook: nbformat.NotebookNode
    seconds: float
    outcomes: dict[int, CellOutcome] = field(default_factory=dict)
    aborted: str | None = None  # why execution stopped early (timeout, dead kernel)


def cell_error(cell: nbformat.NotebookNode) -> tuple[str, str] | None:
    """The (name, message) of the error a code cell raised, if any."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return output.get("ename", "Error"), output.get("evalue", "")
    return None


def run_notebook(
    nb: nbformat.NotebookNode,
    cwd: Path,
    cell_timeout: int = 900,
    env: dict[str, str] | None = None,
) -> Execution:
    """Execute ``nb`` in ``cwd`` and collect one outcome per code cell."""
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    saved = dict(os.environ)
    os.environ.update(env or {})  # the kernel inherits this process's environment
    client = NotebookClient(
        nb,
        timeout=cell_timeout,
        kernel_name=KERNELSPEC["name"],
        allow_errors=True,
        resources={"metadata": {"path": str(cwd)}},
    )
    start = time.perf_counter()
    aborted = None
    try:
        client.execute()
    except CellTimeoutError as exc:
        aborted = f"a cell ran longer than {cell_timeout} s: {str(exc).splitlines()[0]}"
    except DeadKernelError as exc:
        aborted = f"the kernel died: {exc}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    seconds = time.perf_counter() - start
    outcomes = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            error = cell_error(cell)
            outcomes[index] = CellOutcome(index, *(error or (None, "")))
    return Execution(nb, seconds, outcomes, aborted)
