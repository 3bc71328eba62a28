"""The worker pool: jobs in, results out, nothing a job does can stop the others.

A worker is a long-lived process (``python -m grader.grading.pool serve``) that imports
nbgrader once and grades the jobs it is sent, one JSON line each, in-process with a
:class:`~grader.grading.job.GradingSlot`. With isolation on, the worker first moves itself
into a new network namespace, so its kernels have loopback only. :func:`run_jobs` runs a
pool of such workers (one per core by default), feeds them jobs, shows a progress bar
with an ETA, and stops (then replaces) a worker whose job exceeds the notebook time limit
plus a grace period: that job is recorded as ``timeout``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

from grader.grading.config import GradingConfig
from grader.grading.job import GradingSlot, Job
from grader.grading.results import Result
from grader.lessons import ROOT
from grader.sandbox.isolation import can_isolate
from grader.sandbox.uids import lease_uids


def failed(job: Job, status: str, reason: str, sandbox: str, max_points: float = 0.0) -> Result:
    """The result of a job that could not be graded normally."""
    return Result(job.student, job.lesson, max_points=max_points, status=status, reason=reason, key=job.key,
                  file=job.path, note=job.note, sandbox=sandbox, edition=job.edition)


def die_with_parent() -> None:
    """Stop this worker (and so its kernel) when the grader that started it dies, even by SIGKILL.

    Workers run in their own session so a timed-out one can be stopped as a group; without
    this, an interrupted grader would leave them grading in slot folders that the resumed
    run reuses.
    """
    if sys.platform != "linux":
        return
    from grader.sandbox.isolation import PR_SET_PDEATHSIG, prctl

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
        from grader.sandbox.isolation import enter_network_namespace

        enter_network_namespace()
    worker = GradingSlot(slot, workspace, results, config, hide)
    protocol.write(json.dumps({"ready": worker.sandbox}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        job = Job(**json.loads(line))
        try:
            result = worker.grade(job)
        except Exception:  # noqa: BLE001 - a bug grading one job must not take the worker down
            result = failed(job, "error", "grader error: " + traceback.format_exc().splitlines()[-1], worker.sandbox)
            try:
                result.max_points = worker.releases[job.edition].max_points(job.lesson)
            except Exception:  # noqa: BLE001
                pass
            result.write(results)
            traceback.print_exc()
        protocol.write(json.dumps({"key": job.key, "status": result.status}) + "\n")
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
            [sys.executable, "-m", "grader.grading.pool", "serve", "--slot", str(slot), "--workspace", str(workspace),
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
) -> list[Result]:
    """Grade ``jobs`` on ``workers`` worker processes; returns their results (also on disk)."""
    from tqdm import tqdm

    todo: queue.Queue = queue.Queue()
    for job in jobs:
        todo.put(job)
    done: list[Result] = []
    lock = threading.Lock()
    counts: dict[str, int] = {}
    bar = tqdm(total=len(jobs), unit="nb", desc="autograde", disable=not progress or not jobs,
               file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
    budget = config.notebook_timeout + config.grace
    lease = lease_uids(max(1, workers), config.uid_base) if config.sandbox and can_isolate() else None
    if lease is not None:  # this run's own kernel uids (held until it ends): never another grader's
        config = replace(config, uid_base=lease.base)

    def record(result: Result) -> None:
        with lock:
            done.append(result)
            counts[result.status] = counts.get(result.status, 0) + 1
            bar.set_postfix_str(" ".join(f"{k}={v}" for k, v in sorted(counts.items())), refresh=False)
            bar.update(1)

    def fail(job: Job, status: str, reason: str, sandbox: str) -> Result:
        return failed(job, status, reason, sandbox, (max_points or {}).get(job.lesson, 0.0)).write(results)

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
            result = Result.read(results, job.student, job.lesson)
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
        if lease is not None:
            lease.release()
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.grading.pool")
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
