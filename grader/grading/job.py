"""One grading job: a submission graded by nbgrader in one worker's private course folder.

:class:`GradingSlot` is a worker's private state. For each :class:`Job` it

1. reads the submission (``invalid`` if it is not a notebook or percent script) and
   checks its locked test cells against the release (:mod:`grader.grading.integrity`);
2. lays out its own nbgrader course folder, ``WORKSPACE/slots/<n>/course``: a fresh copy
   of the release's gradebook and this one submission, nothing else;
3. runs nbgrader's ``Autograde`` converter with
   :class:`~grader.grading.preprocessors.SandboxedExecute`, whose kernel starts through the
   ``grader-sandbox`` kernelspec (:mod:`grader.sandbox.isolation`);
4. reads the scores nbgrader's ``determine_grade`` gave each test cell from the gradebook,
   a one-line reason for each lost test from the graded notebook, keeps that notebook,
   renders the feedback with nbgrader's ``GenerateFeedback`` and stores the
   :class:`~grader.grading.results.Result`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader.grading.config import GradingConfig
from grader.grading.results import FEEDBACK, Result, sha256_file
from grader.sandbox.cgroups import limits_mode
from grader.sandbox.isolation import SandboxSpec, can_isolate

EDITIONS = ("instructor", "student")


@dataclass
class Job:
    student: str
    lesson: str
    path: str
    key: str  # resume key: submission bytes + release + library + grading settings
    note: str = ""  # e.g. older files for the same lesson that were ignored
    edition: str = "instructor"  # which release to grade against (hidden tests only in "instructor")
    env: dict[str, str] = field(default_factory=dict)  # kernel environment on top of the config's


def release_folder(workspace: Path, edition: str) -> Path:
    """Where the release of one edition lives in a grading workspace."""
    if edition not in EDITIONS:
        raise ValueError(f"unknown edition {edition!r} (known: {', '.join(EDITIONS)})")
    return Path(workspace) / ("release" if edition == "instructor" else "release-student")


def explain(error_name: str | None, error_value: str) -> str:
    """Turn a test cell's exception into one line a student can act on."""
    if error_name is None:
        return ""
    if error_name == "NotImplementedError":
        return "not done yet: the exercise still raises NotImplementedError — replace that line with your code"
    first = error_value.strip().splitlines()[0] if error_value.strip() else ""
    if error_name == "AssertionError":
        return first or "an assertion failed (the test gives no message)"
    if error_name == "NameError":
        return f"NameError: {first} — run the cells above (or define the name) before this test"
    return f"{error_name}: {first}" if first else error_name


def failure_message(cell) -> str:
    """Why nbgrader's ``determine_grade`` gave a test cell less than full marks."""
    stderr = ""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return explain(output.get("ename", "Error"), output.get("evalue", ""))
        text = (output.get("text") or "").strip() if output.get("name") == "stderr" else ""
        if output.get("output_type") == "stream" and text and not stderr:
            stderr = text.splitlines()[0][:200]
    if cell.get("execution_count") is None:
        return "did not run (execution stopped before this cell)"
    return ("the test wrote to stderr, and a test with any stderr output scores 0"
            + (f": {stderr}" if stderr else "") + " — silence the warning in your code")


class GradingSlot:
    """One worker's private state: its course folder, kernelspec and sandbox spec."""

    def __init__(self, index: int | str, workspace: Path, results: Path, config: GradingConfig, hide: list[str]):
        from grader.grading.release import Release
        from grader.sandbox.isolation import write_kernelspec

        self.index = index
        self.workspace = Path(workspace)
        self.results = Path(results)
        self.config = config
        self.releases = {edition: Release(release_folder(self.workspace, edition), edition) for edition in EDITIONS}
        self.folder = self.workspace / "slots" / str(index)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.isolated = bool(config.sandbox and can_isolate())
        self.sandbox = "isolated" if self.isolated else "limits-only"
        number = index if isinstance(index, int) else 0
        uid = config.uid_base + number
        self.spec = SandboxSpec(isolate=self.isolated, uid=uid, gid=uid, hide=hide, memory_bytes=config.memory,
                                nproc=config.processes,
                                seed=config.seed, threads=config.threads, guard=config.guard, env=dict(config.env),
                                limits=limits_mode() if self.isolated else "rlimits")
        self.spec_path = self.spec.write(self.folder / "sandbox.json")
        write_kernelspec(self.folder / "jupyter", self.spec_path)
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            [str(self.folder / "jupyter"), *filter(None, [os.environ.get("JUPYTER_PATH")])])
        self.course = self.folder / "course"
        self.report = self.folder / "execution.json"
        self._kept: dict = {}

    def nbgrader_config(self):
        from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
        from nbgrader.preprocessors import (
            AssignLatePenalties,
            CheckCellMetadata,
            ClearHiddenTests,
            GetGrades,
            IgnorePattern,
            LimitOutput,
            SaveAutoGrades,
        )
        from traitlets.config import Config

        from grader.grading.preprocessors import SafeFeedbackOutputs, SandboxedExecute, TrimTracebacks
        from grader.sandbox.isolation import KERNEL_NAME

        c = Config()
        c.CourseDirectory.root = str(self.course)
        c.CourseDirectory.course_id = "movierec"
        c.Autograde.autograde_preprocessors = [
            SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
            AssignLatePenalties, CheckCellMetadata,
        ]
        c.OverwriteCells.add_missing_cells = True
        c.SandboxedExecute.kernel_name = KERNEL_NAME
        c.SandboxedExecute.timeout = self.config.cell_timeout
        c.SandboxedExecute.interrupt_on_timeout = True
        c.SandboxedExecute.notebook_timeout = self.config.notebook_timeout
        c.SandboxedExecute.max_output_bytes = self.config.max_output_bytes
        c.SandboxedExecute.guard = self.config.guard
        c.SandboxedExecute.report_path = str(self.report)
        c.SandboxedExecute.startup_timeout = 120
        # Output still arriving after a cell's reply is cut off, not a failure of the whole notebook
        # (nbgrader raises on it by default, which scored a notebook whose tests all passed 0).
        c.SandboxedExecute.raise_on_iopub_timeout = False
        c.SandboxedExecute.iopub_timeout = 30
        # Outputs become plain data with no hidden-test line (learnt before nbgrader's own ClearHiddenTests
        # takes the hidden regions out of the test cells); tracebacks are cut to their last line.
        c.GenerateFeedback.preprocessors = [SafeFeedbackOutputs, ClearHiddenTests, TrimTracebacks, GetGrades,
                                            CSSHTMLHeaderPreprocessor]
        return c

    def path(self, kind: str, job: Job, ext: str = ".ipynb") -> Path:
        """nbgrader's own path for ``kind`` (``submitted``, ``autograded``, ``feedback``) of this job."""
        from nbgrader.coursedir import CourseDirectory

        coursedir = CourseDirectory(root=str(self.course))
        folder = coursedir.format_path(kind, job.student, job.lesson)
        return Path(folder) / f"{job.lesson}{ext}"

    def prepare_course(self, job: Job, nb) -> None:
        import nbformat

        if self.course.exists():
            shutil.rmtree(self.course)
        (self.course / "source" / job.lesson).mkdir(parents=True)
        shutil.copy(self.releases[job.edition].gradebook, self.course / "gradebook.db")
        target = self.path("submitted", job)
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
        self.report.unlink(missing_ok=True)
        spec = SandboxSpec(**{**self.spec.__dict__, "env": {**self.config.env, **job.env}})
        spec.write(self.spec_path)  # the kernel wrapper reads it when this job's kernel starts

    def run(self, converter_class, job: Job, keep: bool = False) -> dict:
        """Run one nbgrader converter on this job; ``keep`` reuses one instance for every job."""
        from nbgrader.coursedir import CourseDirectory
        from nbgrader.utils import capture_log

        app = self._kept.get(converter_class) if keep else None
        if app is None:
            config = self.nbgrader_config()
            app = converter_class(coursedir=CourseDirectory(config=config), config=config)
            app.force = True
            if hasattr(app, "create_student"):
                app.create_student = True
            if keep:
                self._kept[converter_class] = app
        app.coursedir.assignment_id = job.lesson
        app.coursedir.student_id = job.student
        return capture_log(app)

    def scores(self, job: Job) -> tuple[float, float, dict[str, list[float]]]:
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.course / 'gradebook.db'}") as gradebook:
            notebook = gradebook.find_submission_notebook(job.lesson, job.lesson, job.student)
            cells = {g.name: [float(g.score), float(g.max_score)] for g in notebook.grades}
            return float(notebook.score), float(notebook.max_score), cells

    @staticmethod
    def messages(graded, cells: dict[str, list[float]]) -> dict[str, str]:
        """One line per test that lost points, read from the graded notebook's outputs."""
        out = {}
        for cell in graded.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid in cells and cells[gid][0] < cells[gid][1]:
                out[gid] = failure_message(cell)
        return out

    def grade(self, job: Job) -> Result:
        """Grade one job; always returns (and stores) a result, whatever the submission does."""
        import nbformat
        from nbgrader.converters import Autograde

        from grader.grading.feedback import ReusableFeedback
        from grader.grading.integrity import answers_into_release, check_locked_cells
        from grader.lessons import UnreadableLesson, read_source

        start = time.monotonic()
        release = self.releases[job.edition]
        out = Result.folder_of(self.results, job.student, job.lesson)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        result = Result(job.student, job.lesson, max_points=release.max_points(job.lesson), key=job.key,
                        file=job.path, note=job.note, sandbox=self.sandbox, edition=job.edition,
                        limits=self.spec.limits)
        try:
            result.sha256 = sha256_file(Path(job.path))
            nb = read_source(Path(job.path))
        except (UnreadableLesson, OSError) as exc:
            result.status, result.reason = "invalid", str(exc)
            return self._finish(result, start)
        _, problems = check_locked_cells(  # reported only: what runs is built from the release below
            nb, release.student_notebook(job.lesson), release.source_notebook(job.lesson), restore=False)
        result.tampered = list(problems)
        nb, notes = answers_into_release(nb, release.student_notebook(job.lesson))
        result.note = "; ".join(filter(None, [result.note, *notes]))
        self.prepare_course(job, nb)
        timings = result.timings = {"prepare": round(time.monotonic() - start, 3)}
        mark = time.monotonic()
        outcome = self.run(Autograde, job)
        timings["autograde"] = round(time.monotonic() - mark, 3)
        report = json.loads(self.report.read_text()) if self.report.exists() else {}
        result.execution_seconds = report.get("seconds")
        result.execution_cpu_seconds = report.get("cpu_seconds")
        result.tampered += report.get("tampered", [])
        result.timeouts = report.get("timeouts", [])
        result.unshadowed = report.get("unshadowed", [])
        result.truncated = report.get("truncated", []) + report.get("unverified", [])
        died = report.get("died", "")
        if report.get("notebook_timeout"):
            result.timeouts.append(f"notebook time limit of {self.config.notebook_timeout} s")
        if not outcome.get("success"):
            error = last_error(outcome)
            timed_out = "Timeout" in error or result.timeouts
            result.status, result.reason = ("timeout" if timed_out else "error"), error
            return self._finish(result, start)
        result.points, result.max_points, result.cells = self.scores(job)
        autograded = self.path("autograded", job)
        shutil.copy(autograded, out / f"{job.lesson}.ipynb")
        result.messages = self.messages(nbformat.read(autograded, as_version=4), result.cells)
        mark = time.monotonic()
        feedback = self.run(ReusableFeedback, job, keep=True)
        timings["feedback"] = round(time.monotonic() - mark, 3)
        html = self.path("feedback", job, ".html")
        if feedback.get("success") and html.exists():
            shutil.copy(html, out / FEEDBACK)
        else:
            result.feedback_error = last_error(feedback)
        if result.tampered:
            result.status, result.reason = "tampered", "; ".join(result.tampered)
        elif died:
            result.status = "error"
            result.reason = (f"the kernel died while running {died} (a crash in compiled code, os._exit(), ...): "
                             "the tests before it kept their points, the ones after it scored 0")
        elif result.timeouts:
            result.status, result.reason = "timeout", "timed out: " + ", ".join(result.timeouts)
        else:
            result.status = "graded"
            if result.unshadowed:
                result.reason = "builtins shadowed by the notebook were restored for the tests: " + ", ".join(
                    result.unshadowed)
        if result.status != "graded" and result.truncated:
            result.reason += "; output truncated in " + ", ".join(result.truncated)
        return self._finish(result, start)

    def _finish(self, result: Result, start: float) -> Result:
        if result.note:
            result.reason = "; ".join(filter(None, [result.reason, result.note]))
        result.reason = result.reason[:1000]
        result.seconds = round(time.monotonic() - start, 3)
        result.graded_at = time.time()
        return result.write(self.results)


def last_error(outcome: dict) -> str:
    """The line of nbgrader's log that says why a converter failed."""
    text = (outcome.get("error") or "") + "\n" + (outcome.get("log") or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in ("CellTimeoutError", "DeadKernelError", "Kernel died", "RuntimeError", "Error", "ERROR"):
        hits = [line for line in lines if marker in line]
        if hits:
            return hits[-1][:300]
    return (lines[-1] if lines else "nbgrader failed without a message")[:300]
