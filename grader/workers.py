"""Grading workers: one (student, lesson) job at a time, each worker with its own gradebook.

A worker is a long-lived process (``python -m grader.workers serve``) that imports
nbgrader once and grades the jobs it is sent, one JSON line each, in-process:

1. read the submission (``invalid`` if it is not a notebook or percent script) and
   check its test cells against the released edition (:mod:`grader.integrity`);
2. lay out its own nbgrader course folder, ``WORKSPACE/slots/<n>/course``: a fresh copy
   of the released gradebook and this one submission, nothing else;
3. run nbgrader's ``Autograde`` converter with :class:`grader.preprocessors.SandboxedExecute`,
   which starts the kernel through the ``grader-sandbox`` kernelspec (:mod:`grader.sandbox`);
4. read the scores from the gradebook, keep the autograded notebook, render the feedback
   with nbgrader's ``GenerateFeedback`` (hidden tests scrubbed) and write
   ``RESULTS/<student>/<lesson>/result.json``.

With isolation on, the worker first moves itself into a new network namespace, so its
kernels have loopback only. :func:`run_jobs` runs a pool of such workers, one per core,
feeds them jobs, shows a progress bar with an ETA, and stops (then replaces) a worker
whose job exceeds the notebook time limit plus a grace period: that job is recorded as
``timeout``. Nothing a job does can stop the others.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from grader.lessons import ROOT
from grader.sandbox import SandboxSpec, can_isolate

RESULT = "result.json"
FEEDBACK = "feedback.html"
RESULT_VERSION = 1


@dataclass
class GradingConfig:
    """Everything that decides how a submission is graded (and so enters the resume key)."""

    cell_timeout: int = 900  # seconds one cell may run
    notebook_timeout: int = 3600  # seconds the whole notebook may run
    memory: int = 8 << 30  # bytes of address space for the kernel (RLIMIT_AS)
    max_output_bytes: int = 1_000_000  # output kept per cell
    seed: int = 42  # PYTHONHASHSEED, random, numpy; lessons' setup_lesson seeds TensorFlow
    threads: int = 1  # BLAS / TensorFlow threads per kernel: fixed, so results never depend on --jobs
    sandbox: bool = True  # namespaces + unprivileged uid when available (else limits only)
    guard: bool = True  # the kernel guard before every test cell
    env: dict[str, str] = field(default_factory=dict)  # extra kernel environment (e.g. COURSE_QUICK)
    # Not part of the key: how the grading is run, not what it computes.
    grace: int = 180  # seconds on top of notebook_timeout before a worker is stopped
    uid_base: int = 62000  # worker n runs its kernels as uid/gid uid_base + n

    KEY_EXCLUDES = ("grace", "uid_base")

    def key(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self.KEY_EXCLUDES}

    @classmethod
    def from_dict(cls, data: dict) -> GradingConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            known = ", ".join(sorted(names))
            raise ValueError(f"unknown grading settings: {', '.join(sorted(unknown))} (known: {known})")
        return cls(**data)

    @classmethod
    def from_toml(cls, path: Path) -> GradingConfig:
        import tomllib

        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        return cls.from_dict(data.get("autograde", data))


@dataclass
class Job:
    student: str
    lesson: str
    path: str
    key: str  # resume key: submission bytes + lesson source + grading config
    note: str = ""  # e.g. older files for the same lesson that were ignored


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def job_key(path: Path, lesson_hash: str, config: GradingConfig) -> str:
    blob = json.dumps([sha256_file(path), lesson_hash, config.key(), RESULT_VERSION], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def result_dir(results: Path, student: str, lesson: str) -> Path:
    return Path(results) / student / lesson


def read_result(results: Path, student: str, lesson: str) -> dict | None:
    path = result_dir(results, student, lesson) / RESULT
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_result(results: Path, result: dict) -> dict:
    folder = result_dir(results, result["student"], result["lesson"])
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{RESULT}.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    tmp.replace(folder / RESULT)  # atomic: a reader never sees half a result
    return result


def base_result(job: Job, max_points: float, sandbox: str) -> dict:
    return {
        "student": job.student, "lesson": job.lesson, "points": 0.0, "max_points": max_points,
        "status": "error", "reason": "", "key": job.key, "file": job.path, "note": job.note,
        "sandbox": sandbox, "cells": {}, "tampered": [], "timeouts": [], "unshadowed": [], "truncated": [],
        "seconds": 0.0, "execution_seconds": None, "graded_at": time.time(), "version": RESULT_VERSION,
    }


class Slot:
    """One worker's private state: its course folder, kernelspec and sandbox spec."""

    def __init__(self, index: int | str, workspace: Path, results: Path, config: GradingConfig, hide: list[str]):
        from grader.release import Release

        self.index = index
        self.workspace = Path(workspace)
        self.results = Path(results)
        self.config = config
        self.release = Release(self.workspace / "release")
        self.folder = self.workspace / "slots" / str(index)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.isolated = bool(config.sandbox and can_isolate())
        self.sandbox = "isolated" if self.isolated else "limits-only"
        number = index if isinstance(index, int) else 0
        uid = config.uid_base + number
        spec = SandboxSpec(isolate=self.isolated, uid=uid, gid=uid, hide=hide, memory_bytes=config.memory,
                           seed=config.seed, threads=config.threads, guard=config.guard, env=dict(config.env))
        spec_path = spec.write(self.folder / "sandbox.json")
        from grader.sandbox import write_kernelspec

        write_kernelspec(self.folder / "jupyter", spec_path)
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
            GetGrades,
            IgnorePattern,
            LimitOutput,
            SaveAutoGrades,
        )
        from traitlets.config import Config

        from grader.preprocessors import SandboxedExecute, ScrubFeedback
        from grader.sandbox import KERNEL_NAME

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
        c.GenerateFeedback.preprocessors = [ScrubFeedback, GetGrades, CSSHTMLHeaderPreprocessor]
        return c

    def prepare_course(self, job: Job, nb) -> None:
        import nbformat

        if self.course.exists():
            shutil.rmtree(self.course)
        (self.course / "source" / job.lesson).mkdir(parents=True)
        shutil.copy(self.release.gradebook, self.course / "gradebook.db")
        target = self.course / "submitted" / job.student / job.lesson / f"{job.lesson}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
        self.report.unlink(missing_ok=True)

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

    def grade(self, job: Job) -> dict:
        """Grade one job; always returns (and writes) a result, whatever the submission does."""
        from nbgrader.converters import Autograde

        from grader.integrity import InvalidSubmission, check_locked_cells, read_submission
        from grader.preprocessors import ReusableFeedback

        start = time.monotonic()
        out = result_dir(self.results, job.student, job.lesson)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        result = base_result(job, self.release.max_points(job.lesson), self.sandbox)
        try:
            result["sha256"] = sha256_file(Path(job.path))
            nb = read_submission(Path(job.path))
        except (InvalidSubmission, OSError) as exc:
            result.update(status="invalid", reason=str(exc))
            return self._finish(result, start)
        nb, problems = check_locked_cells(
            nb, self.release.student_notebook(job.lesson), self.release.source_notebook(job.lesson))
        result["tampered"] = list(problems)
        self.prepare_course(job, nb)
        timings = result["timings"] = {"prepare": round(time.monotonic() - start, 3)}
        mark = time.monotonic()
        outcome = self.run(Autograde, job)
        timings["autograde"] = round(time.monotonic() - mark, 3)
        report = json.loads(self.report.read_text()) if self.report.exists() else {}
        result["execution_seconds"] = report.get("seconds")
        result["tampered"] += report.get("tampered", [])
        for key in ("timeouts", "unshadowed", "truncated"):
            result[key] = report.get(key, [])
        if report.get("notebook_timeout"):
            result["timeouts"].append(f"notebook time limit of {self.config.notebook_timeout} s")
        if not outcome.get("success"):
            error = _last_error(outcome)
            timed_out = "Timeout" in error or result["timeouts"]
            result.update(status="timeout" if timed_out else "error", reason=error)
            return self._finish(result, start)
        result["points"], result["max_points"], result["cells"] = self.scores(job)
        autograded = self.course / "autograded" / job.student / job.lesson / f"{job.lesson}.ipynb"
        shutil.copy(autograded, out / f"{job.lesson}.ipynb")
        mark = time.monotonic()
        feedback = self.run(ReusableFeedback, job, keep=True)
        timings["feedback"] = round(time.monotonic() - mark, 3)
        html = self.course / "feedback" / job.student / job.lesson / f"{job.lesson}.html"
        if feedback.get("success") and html.exists():
            shutil.copy(html, out / FEEDBACK)
        else:
            result["feedback_error"] = _last_error(feedback)
        if result["tampered"]:
            result.update(status="tampered", reason="; ".join(result["tampered"]))
        elif result["timeouts"]:
            result.update(status="timeout", reason="timed out: " + ", ".join(result["timeouts"]))
        else:
            result["status"] = "graded"
            if result["unshadowed"]:
                result["reason"] = "builtins shadowed by the notebook were restored for the tests: " + ", ".join(
                    result["unshadowed"])
        if result["status"] != "graded" and result["truncated"]:
            result["reason"] += "; output truncated in " + ", ".join(result["truncated"])
        return self._finish(result, start)

    def _finish(self, result: dict, start: float) -> dict:
        if result.get("note"):
            result["reason"] = "; ".join(filter(None, [result["reason"], result["note"]]))
        result["reason"] = result["reason"][:1000]
        result["seconds"] = round(time.monotonic() - start, 3)
        result["graded_at"] = time.time()
        return write_result(self.results, result)


def _last_error(outcome: dict) -> str:
    text = (outcome.get("error") or "") + "\n" + (outcome.get("log") or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in ("CellTimeoutError", "DeadKernelError", "Kernel died", "RuntimeError", "Error", "ERROR"):
        hits = [line for line in lines if marker in line]
        if hits:
            return hits[-1][:300]
    return (lines[-1] if lines else "nbgrader failed without a message")[:300]


# --------------------------------------------------------------------------- the worker process


def die_with_parent() -> None:
    """Stop this worker (and so its kernel) when the grader that started it dies, even by SIGKILL.

    Workers run in their own session so a timed-out one can be stopped as a group; without
    this, an interrupted grader would leave them grading in slot folders that the resumed
    run reuses.
    """
    if sys.platform != "linux":
        return
    from grader.sandbox import PR_SET_PDEATHSIG, prctl

    parent = int(os.environ.get("GRADER_PARENT_PID", "0"))
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent and os.getppid() != parent:  # the grader died before prctl took effect
        os._exit(1)


def serve(slot: int | str, workspace: Path, results: Path, config: GradingConfig, hide: list[str]) -> int:
    """Read jobs (JSON lines) from stdin, grade each, answer ``{"key": ..., "status": ...}`` lines."""
    die_with_parent()
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed (nbgrader, kernels) goes to the log, not the protocol
    sys.stdout = sys.stderr
    if config.sandbox and can_isolate():
        from grader.sandbox import enter_network_namespace

        enter_network_namespace()
    worker = Slot(slot, workspace, results, config, hide)
    protocol.write(json.dumps({"ready": worker.sandbox}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        job = Job(**json.loads(line))
        try:
            result = worker.grade(job)
        except Exception:  # noqa: BLE001 - a bug grading one job must not take the worker down
            result = base_result(job, 0.0, worker.sandbox)
            result.update(status="error", reason="grader error: " + traceback.format_exc().splitlines()[-1])
            try:
                result["max_points"] = worker.release.max_points(job.lesson)
            except Exception:  # noqa: BLE001
                pass
            write_result(results, result)
            traceback.print_exc()
        protocol.write(json.dumps({"key": job.key, "status": result["status"]}) + "\n")
    return 0


class WorkerProcess:
    """A ``serve`` subprocess in its own session, so it (and its kernels) can be stopped as one."""

    def __init__(self, slot: int, workspace: Path, results: Path, config: GradingConfig, hide: list[str]):
        self.slot = slot
        folder = Path(workspace) / "slots" / str(slot)
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "worker.log"
        settings = folder / "worker.json"
        settings.write_text(json.dumps({"config": asdict(config), "hide": hide}), encoding="utf-8")
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "grader.workers", "serve", "--slot", str(slot), "--workspace", str(workspace),
             "--results", str(results), "--settings", str(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=ROOT,
            env={**os.environ, "GRADER_PARENT_PID": str(os.getpid())},
            start_new_session=True, text=True, bufsize=1,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)  # EOF: the worker exited

    def send(self, job: Job) -> None:
        self.process.stdin.write(json.dumps(asdict(job)) + "\n")
        self.process.stdin.flush()

    def receive(self, timeout: float) -> dict | None:
        """The next message, ``None`` at EOF; raises ``queue.Empty`` after ``timeout`` seconds."""
        line = self.lines.get(timeout=timeout)
        return None if line is None else json.loads(line)

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.log.close()

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.stop()
        self.log.close()


def run_jobs(
    jobs: list[Job],
    workers: int,
    workspace: Path,
    results: Path,
    config: GradingConfig,
    hide: list[str],
    progress: bool = True,
    max_points: dict[str, float] | None = None,
) -> list[dict]:
    """Grade ``jobs`` on ``workers`` worker processes; returns their results (also on disk)."""
    from tqdm import tqdm

    todo: queue.Queue = queue.Queue()
    for job in jobs:
        todo.put(job)
    done: list[dict] = []
    lock = threading.Lock()
    counts: dict[str, int] = {}
    bar = tqdm(total=len(jobs), unit="nb", desc="autograde", disable=not progress or not jobs,
               file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
    budget = config.notebook_timeout + config.grace

    def record(result: dict) -> None:
        with lock:
            done.append(result)
            counts[result["status"]] = counts.get(result["status"], 0) + 1
            bar.set_postfix_str(" ".join(f"{k}={v}" for k, v in sorted(counts.items())), refresh=False)
            bar.update(1)

    def fail(job: Job, status: str, reason: str, sandbox: str) -> dict:
        result = base_result(job, (max_points or {}).get(job.lesson, 0.0), sandbox)
        result.update(status=status, reason=reason)
        return write_result(results, result)

    live: dict[int, WorkerProcess] = {}  # stopped in ``finally`` when the grader is interrupted

    def slot_loop(slot: int) -> None:
        worker: WorkerProcess | None = None
        sandbox = "unknown"
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                break
            if worker is None:
                worker = live[slot] = WorkerProcess(slot, workspace, results, config, hide)
                try:
                    hello = worker.receive(timeout=config.grace)
                except queue.Empty:
                    hello = None
                if not hello:
                    worker.stop()
                    record(fail(job, "error", f"the grading worker did not start (see {worker.log_path})", sandbox))
                    worker = None
                    continue
                sandbox = hello.get("ready", sandbox)
            started = time.monotonic()
            worker.send(job)
            try:
                answer = worker.receive(timeout=budget)
            except queue.Empty:
                worker.stop()
                worker = None
                seconds = round(time.monotonic() - started)
                record(fail(job, "timeout", f"grading did not finish in {seconds} s (notebook limit "
                            f"{config.notebook_timeout} s + {config.grace} s grace): the worker was stopped", sandbox))
                continue
            if answer is None:
                worker.stop()
                log = worker.log_path
                worker = None
                record(fail(job, "error", f"the grading worker crashed (see {log})", sandbox))
                continue
            result = read_result(results, job.student, job.lesson)
            record(result or fail(job, "error", "the worker wrote no result", sandbox))
        if worker is not None:
            worker.close()

    threads = [threading.Thread(target=slot_loop, args=(i,), daemon=True) for i in range(max(1, workers))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:  # Ctrl-C or an error in the grader: no worker outlives it
        for worker in live.values():
            if worker.process.poll() is None:
                worker.stop()
        bar.close()
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.workers")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--slot", required=True)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--settings", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = json.loads(args.settings.read_text(encoding="utf-8"))
    slot = int(args.slot) if args.slot.isdigit() else args.slot
    return serve(slot, args.workspace, args.results, GradingConfig.from_dict(settings["config"]), settings["hide"])


if __name__ == "__main__":
    sys.exit(main())
