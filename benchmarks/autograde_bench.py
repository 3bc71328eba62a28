"""How fast does the course's autograder grade a class, against plain nbgrader?

One run builds a synthetic class — N students × the lessons that exist, each student a
mix of reference solutions, untouched stubs, faulty notebooks (the first exercise
raises) and tampered ones (a test cell edited) — and measures, on this machine:

1. **execution alone**: every submission run top to bottom with nbclient in a plain
   kernel, one after the other (what no grader can avoid);
2. **serial nbgrader**: one nbgrader course folder, ``nbgrader autograde`` then
   ``nbgrader generate_feedback`` for each lesson, all students, one process at a time;
3. **this grader, one worker** (``--jobs 1``) and 4. **this grader, parallel**
   (``--jobs`` = cores), each from an empty results folder (the release is made once,
   before the clocks start, as nbgrader's ``generate_assignment`` is not timed either).

Phases 1 and 2 run with the grading kernel's computational environment (seeds, one
BLAS/TensorFlow thread, ``COURSE_QUICK=1``), so the comparison measures the grading
machinery and the parallelism, not different thread counts.

It reports seconds per submission, the speed-up of 4 over 2 (the bar: ≥ 1.7× on 2
cores) and over 3, and the per-submission overhead: the one-worker time per
submission minus the execution-alone time per submission (the bar: under 3 s), which
includes starting the worker, the sandbox and the kernel, the gradebook, the integrity
check and the feedback page. The load average is recorded before every phase: other
work on the machine slows every phase, and a parallel phase most (it needs the cores).

Usage (from the repository root)::

    nice -n 10 python -m benchmarks.autograde_bench                  # 8 students × every lesson
    nice -n 10 python -m benchmarks.autograde_bench --quick          # 6 students × lesson 01, 3 rounds, ~4 minutes

A short run moves by tens of percent with whatever else the machine does; ``--repeat N``
runs the four phases N times, interleaved, and reports each phase's median (and every
round's seconds). ``--quick`` defaults to 3 rounds.

Writes ``build/benchmarks/autograde_bench.json`` (``autograde_bench_quick.json`` with
``--quick``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from grader.build.editions import (
    instructor_notebook,  # noqa: E402
    student_notebook,  # noqa: E402
)
from grader.grading.autograde import autograde  # noqa: E402
from grader.grading.config import GradingConfig  # noqa: E402
from grader.grading.release import Release  # noqa: E402
from grader.lessons import BUILD, all_lessons, find_lesson, nbgrader_meta, read_source  # noqa: E402
from movierec.setup import usable_cores  # noqa: E402

KINDS = ("reference", "stub", "faulty", "tampered")


def make_class(folder: Path, lessons, students: int) -> list[tuple[str, str, Path]]:
    """``[(student, lesson, notebook path)]``, kinds cycling over students and lessons."""
    made = []
    for s in range(students):
        for index, lesson in enumerate(lessons):
            kind = KINDS[(s + index) % len(KINDS)]
            student = f"s{s:03d}_{kind}"
            if kind == "stub":
                nb = student_notebook(lesson)
            else:
                nb = read_source(lesson.solution)
                if kind == "faulty":
                    cell = next(c for c in nb.cells if nbgrader_meta(c).get("solution"))
                    cell.source = "raise RuntimeError('a bug in my first exercise')\n" + cell.source
                if kind == "tampered":
                    cell = next(c for c in nb.cells if nbgrader_meta(c).get("locked"))
                    cell.source = "pass  # I edited the test"
            path = folder / student / f"{lesson.slug}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, path)
            made.append((student, lesson.slug, path))
    return made


def baseline_env(config: GradingConfig) -> dict[str, str]:
    """The grading kernel's computational environment (seeds, thread counts, course flags).

    Both baselines run with it, so the comparison measures the grading machinery and the
    parallelism, not a different number of BLAS/TensorFlow threads.
    """
    from grader.sandbox.isolation import SandboxSpec, kernel_env

    spec = SandboxSpec(seed=config.seed, threads=config.threads, env=dict(config.env))
    private = ("PATH", "HOME", "TMPDIR", "IPYTHONDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "PYTHONPATH")
    return {k: v for k, v in kernel_env(spec, home="", tmp="").items() if k not in private}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def execute_alone(made, env: dict[str, str], cell_timeout: int) -> float:
    from nbclient import NotebookClient

    saved = dict(os.environ)
    os.environ.update(env)
    start = time.perf_counter()
    try:
        for _, _, path in made:
            nb = nbformat.read(path, as_version=4)
            nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
            with tempfile.TemporaryDirectory() as cwd:
                NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                               resources={"metadata": {"path": cwd}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return time.perf_counter() - start


NBGRADER_CONFIG = """\
c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "movierec"
c.Execute.timeout = {cell_timeout}
c.Execute.interrupt_on_timeout = True
"""


def write_course(folder: Path, lessons, cell_timeout: int) -> None:
    """Plain nbgrader's course folder, as an instructor sets one up by hand: the baseline we compare with."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(root=str(folder), cell_timeout=cell_timeout))
    for lesson in lessons:
        target = folder / "source" / lesson.slug / f"{lesson.slug}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(instructor_notebook(lesson), target)


def nbgrader(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """One nbgrader CLI command in the course folder (its venv's bin first on PATH, for alembic)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=folder, capture_output=True, text=True,
                          env={**os.environ, "PATH": path, **(env or {})})


def serial_nbgrader(made, lessons, folder: Path, env: dict[str, str], cell_timeout: int) -> tuple[float, float]:
    """Plain nbgrader, one process at a time: (autograde seconds, generate_feedback seconds)."""
    write_course(folder, lessons, cell_timeout)
    for lesson in lessons:
        process = nbgrader(folder, "generate_assignment", lesson.slug, "--force")
        assert process.returncode == 0, process.stderr
    for student, slug, path in made:
        target = folder / "submitted" / student / slug / f"{slug}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    grading = feedback = 0.0
    for lesson in lessons:
        start = time.perf_counter()
        nbgrader(folder, "autograde", lesson.slug, "--force", env=env)
        grading += time.perf_counter() - start
        start = time.perf_counter()
        nbgrader(folder, "generate_feedback", lesson.slug, "--force", env=env)
        feedback += time.perf_counter() - start
    return grading, feedback


def ours(submissions: Path, workspace: Path, lessons, jobs: int, config: GradingConfig, name: str) -> dict:
    results = workspace / f"results-{name}"
    shutil.rmtree(results, ignore_errors=True)
    start = time.perf_counter()
    grades = autograde(submissions, workspace / f"{name}.csv", workspace, lessons, config, jobs=jobs,
                       results=results, progress=True, verbose=False)
    seconds = time.perf_counter() - start
    jobs_data = [json.loads(p.read_text()) for p in results.glob("*/*/result.json")]
    overheads = [r["seconds"] - r["execution_seconds"] for r in jobs_data if r.get("execution_seconds")]
    statuses: dict[str, int] = {}
    for grade in grades:
        statuses[grade.status] = statuses.get(grade.status, 0) + 1
    return {"seconds": round(seconds, 2), "statuses": statuses,
            "csv": (workspace / f"{name}.csv").read_text(encoding="utf-8"),
            "in_job_overhead_mean": round(sum(overheads) / max(1, len(overheads)), 3)}


def measure_round(made, lessons, work: Path, workspace: Path, jobs: int, config: GradingConfig, env: dict[str, str],
                  number: int) -> dict[str, dict]:
    """One round of the four phases, one after the other."""
    phases: dict[str, dict] = {}
    phases["execution_alone"] = {"load": load(), "seconds": round(execute_alone(made, env, 600), 2)}
    print(f"round {number + 1}: execution alone {phases['execution_alone']['seconds']} s", file=sys.stderr)
    grading, feedback = serial_nbgrader(made, lessons, work / f"nbgrader-{number}", env, 600)
    phases["serial_nbgrader"] = {"load": load(), "seconds": round(grading + feedback, 2),
                                 "autograde_seconds": round(grading, 2), "feedback_seconds": round(feedback, 2)}
    print(f"round {number + 1}: serial nbgrader {phases['serial_nbgrader']['seconds']} s", file=sys.stderr)
    phases["ours_one_worker"] = {"load": load(), **ours(work / "submissions", workspace, lessons, 1, config, "one")}
    phases["ours_parallel"] = {"load": load(), **ours(work / "submissions", workspace, lessons, jobs, config, "par")}
    return phases


def combine(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """Each phase's median over the rounds (``seconds``), with every round's seconds and load kept.

    A short run moves by tens of percent with whatever else the machine does for a few
    seconds; the median of interleaved rounds is what one phase costs, not one lucky run.
    """
    combined = {}
    for name in rounds[0]:
        runs = [one[name] for one in rounds]
        middle = sorted(runs, key=lambda phase: phase["seconds"])[(len(runs) - 1) // 2]
        combined[name] = {**middle, "rounds_seconds": [phase["seconds"] for phase in runs],
                          "rounds_load": [phase["load"][0] for phase in runs]}
    return combined


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=None, help="students in the class (default 8, quick 6)")
    parser.add_argument("--lesson", action="append", help="only these lessons (default: every lesson)")
    parser.add_argument("--jobs", type=int, default=None, help="parallel workers (default: cores)")
    parser.add_argument("--quick", action="store_true", help="6 students × lesson 01")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    parser.add_argument("--repeat", type=int, default=None,
                        help="rounds of the four phases; the report takes each phase's median (default 1, quick 3)")
    args = parser.parse_args(argv)
    lessons = [find_lesson(n) for n in args.lesson] if args.lesson else (
        [find_lesson("01_intro")] if args.quick else all_lessons())
    students = args.students or (6 if args.quick else 8)
    args.repeat = args.repeat or (3 if args.quick else 1)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    jobs = args.jobs or usable_cores()
    config = GradingConfig(cell_timeout=600, notebook_timeout=1800, env={"COURSE_QUICK": "1"})
    env = baseline_env(config)
    work = args.keep or Path(tempfile.mkdtemp(prefix="autograde-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report: dict = {"machine": {"cores": usable_cores(), "python": platform.python_version(),
                                "load_average_start": load()},
                    "students": students, "lessons": [lesson.slug for lesson in lessons], "jobs": jobs,
                    "rounds": args.repeat, "phases": {}}
    made = make_class(work / "submissions", lessons, students)
    n = len(made)
    report["submissions"] = n
    workspace = work / "workspace"
    Release(workspace / "release").prepare(lessons)  # not timed, like generate_assignment below

    print(f"{n} submissions ({students} students × {len(lessons)} lessons), {jobs} workers, "
          f"{args.repeat} round(s)", file=sys.stderr)
    rounds = [measure_round(made, lessons, work, workspace, jobs, config, env, r) for r in range(args.repeat)]
    csvs = {phase.pop("csv") for one in rounds for phase in one.values() if "csv" in phase}
    same_csv = len(csvs) == 1
    phases = report["phases"] = combine(rounds)
    per = {name: round(phase["seconds"] / n, 3) for name, phase in phases.items()}
    report["seconds_per_submission"] = per
    report["speedup_parallel_vs_serial_nbgrader"] = round(phases["serial_nbgrader"]["seconds"]
                                                          / phases["ours_parallel"]["seconds"], 2)
    report["speedup_parallel_vs_one_worker"] = round(phases["ours_one_worker"]["seconds"]
                                                     / phases["ours_parallel"]["seconds"], 2)
    report["overhead_per_submission"] = round(per["ours_one_worker"] - per["execution_alone"], 3)
    report["serial_and_parallel_grades_identical"] = same_csv
    report["machine"]["load_average_end"] = load()
    report["seconds"] = round(time.perf_counter() - started, 1)

    out = BUILD / "benchmarks" / f"autograde_bench{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(format_table(report))
    print(f"\nwrote {out.relative_to(ROOT)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def format_table(report: dict) -> str:
    phases, per = report["phases"], report["seconds_per_submission"]
    lines = [f"{report['submissions']} submissions, {report['jobs']} workers, {report['machine']['cores']} cores, "
             f"load average {report['machine']['load_average_start'][0]} → {report['machine']['load_average_end'][0]}",
             f"{report.get('rounds', 1)} round(s): each phase's median", "",
             f"{'phase':<22} {'seconds':>9} {'s/submission':>13} {'load':>6}", "-" * 54]
    rounds = report.get("rounds", 1)
    for name, phase in phases.items():
        spread = "  rounds: " + ", ".join(f"{x:.1f}" for x in phase["rounds_seconds"]) if rounds > 1 else ""
        lines.append(f"{name:<22} {phase['seconds']:>9.1f} {per[name]:>13.2f} {phase['load'][0]:>6.1f}{spread}")
    lines += [
        "",
        f"speed-up, parallel vs serial nbgrader: {report['speedup_parallel_vs_serial_nbgrader']:.2f}x  (bar: >= 1.7x)",
        f"speed-up, parallel vs one worker:        {report['speedup_parallel_vs_one_worker']:.2f}x",
        f"overhead per submission (one worker - execution alone): {report['overhead_per_submission']:.2f} s"
        f"  (bar: < 3 s; inside a job: {phases['ours_one_worker']['in_job_overhead_mean']:.2f} s)",
        f"statuses: {phases['ours_parallel']['statuses']}; serial and parallel grades identical: "
        f"{report['serial_and_parallel_grades_identical']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
