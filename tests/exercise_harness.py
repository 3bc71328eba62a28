"""Run an exercise's real test cell against plausible wrong answers, one kernel per lesson.

Issue 15's rule for every exercise: the reference passes its tests, the stub fails them,
and so does each of the 2-4 mistakes a student is most likely to make (and the obvious
library shortcut, where one exists). Proving the last part by grading a whole notebook
per wrong answer would cost minutes each, so this harness walks the lesson's instructor
notebook once, in quick mode, in one kernel: just before a test cell that has wrong
answers registered, it runs each wrong answer in place of its solution cell, then the
test cell's own source, records whether the test cell raised, and restores the reference
by running the real solution cell again. The lesson then goes on as usual.

Wrong answers live next to the lesson's other test data, in ``tests/wrong_answers/`` —
one module per lesson with a ``WRONG_ANSWERS`` list — never in the lesson itself, so
they cannot reach a student.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import start_new_kernel

from grader.build.editions import instructor_notebook
from grader.lessons import Lesson, is_exercise, is_test, nbgrader_meta


@dataclass(frozen=True)
class WrongAnswer:
    """A plausible mistake: ``source`` replaces solution cell ``cell``; test cell ``test`` must then fail."""

    cell: str  # grade_id of the solution cell it stands in for
    test: str  # grade_id of the test cell that must catch it
    label: str  # the mistake, as a student would make it
    source: str  # the whole wrong cell


@dataclass
class Outcome:
    """What the test cell did with one wrong answer: ``caught`` when it raised."""

    answer: WrongAnswer
    caught: bool
    error: str = ""


@dataclass
class HarnessRun:
    outcomes: list[Outcome] = field(default_factory=list)
    reference_errors: list[str] = field(default_factory=list)  # reference cells that raised: the run is void

    def escaped(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.caught]


def _run(client: BlockingKernelClient, source: str, timeout: int) -> str:
    """Execute ``source`` in the client's kernel; return the error as ``Name: message`` or ``""``."""
    errors: list[str] = []

    def hook(msg: dict) -> None:
        if msg["header"]["msg_type"] == "error":
            errors.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

    reply = client.execute_interactive(source, timeout=timeout, output_hook=hook, allow_stdin=False)
    if reply["content"]["status"] == "error" and not errors:
        errors.append(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}")
    return "; ".join(errors)


def run_wrong_answers(lesson: Lesson, answers: list[WrongAnswer], workdir: Path, *, timeout: int = 900) -> HarnessRun:
    """Walk ``lesson``'s instructor notebook in quick mode, trying ``answers`` before their test cells."""
    nb = instructor_notebook(lesson)
    by_id = {nbgrader_meta(c).get("grade_id"): c for c in nb.cells if c.cell_type == "code"}
    for answer in answers:  # a typo in a grade_id must not silently test nothing
        if answer.cell not in by_id or not is_exercise(by_id[answer.cell]):
            raise ValueError(f"{lesson.slug}: {answer.cell!r} is not a solution cell of the lesson")
        if answer.test not in by_id or not is_test(by_id[answer.test]):
            raise ValueError(f"{lesson.slug}: {answer.test!r} is not a test cell of the lesson")
    workdir.mkdir(parents=True, exist_ok=True)
    run = HarnessRun()
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(workdir), env={**os.environ, "COURSE_QUICK": "1"})
    try:
        for cell in nb.cells:
            if cell.cell_type != "code" or "skip-execution" in cell.metadata.get("tags", []):
                continue
            grade_id = nbgrader_meta(cell).get("grade_id")
            for answer in (a for a in answers if a.test == grade_id):
                wrong = _run(client, answer.source, timeout)
                if wrong:  # it must define cleanly: a crash here says nothing about the test cell
                    raise ValueError(f"{lesson.slug} {answer.cell} {answer.label!r}: the wrong answer raised {wrong}")
                error = _run(client, cell.source, timeout)
                run.outcomes.append(Outcome(answer, caught=bool(error), error=error))
                restored = _run(client, by_id[answer.cell].source, timeout)
                if restored:
                    run.reference_errors.append(f"{answer.cell} (restoring): {restored}")
            error = _run(client, cell.source, timeout)
            if error:
                run.reference_errors.append(f"{grade_id or cell.source[:60]!r}: {error}")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return run
