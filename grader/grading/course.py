"""``make course`` (``python -m grader course``): the course's main job, end to end, incremental.

1. ``grader build``: student editions, library modules, notebooks.
2. Every lesson's reference solution is graded as student ``reference`` (full mode, the
   metrics it records kept in its result folder) and its untouched student edition as
   student ``stub`` (quick mode), by the same engine as ``autograde``
   (:func:`grader.grading.engine.grade`) with the sandbox off: these are the course's own
   trusted files. Grading the reference *is* the reference run. The references run one
   at a time, so a lesson's seconds are measured with nothing else running; the kernel's
   CPU seconds are recorded beside them. A lesson whose source,
   library and settings did not change since the last run is not run again: its stored
   result has the same content key.
3. The site is built with ``mkdocs build --strict``.
4. A per-lesson table is printed and written, with the quality bars, to
   ``build/course-report.json``. The exit status is non-zero if a reference loses a
   point, a stub earns one, a measured quality bar is missed or the site fails to build —
   never because of a wall-clock time, which machine load moves (time bars are reported).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from grader.grading.config import GradingConfig
from grader.grading.engine import Entry, grade
from grader.grading.quality_bars import check_bars
from grader.grading.results import Result, write_csv
from grader.lessons import BUILD, ROOT, Lesson, all_lessons
from movierec.report import read_records

COURSE = BUILD / "course"
RESULTS = COURSE / "results"
REPORT = BUILD / "course-report.json"
EXECUTED = BUILD / "executed"  # each reference run's executed notebook (the site shows its figures)
METRICS = COURSE / "metrics"  # each reference run's recorded metrics (the site shows them)
METRICS_FILE = "metrics.jsonl"
# Trusted runs: no sandbox, generous limits (full-mode lessons train for minutes).
COURSE_CONFIG = GradingConfig(cell_timeout=1800, notebook_timeout=3600, memory=16 << 30, sandbox=False)


def nest(flat: dict[str, float]) -> dict:
    """``{"a.b.c": 1}`` → ``{"a": {"b": {"c": 1}}}`` so ``report["a"]["b"]["c"]`` reads it."""
    tree: dict = {}
    for name, value in sorted(flat.items()):
        *parents, leaf = name.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"metric {name!r} nests under another metric's value")
        if isinstance(node.get(leaf), dict):
            raise ValueError(f"metric {name!r} is also a prefix of other metrics")
        node[leaf] = value
    return tree


def entries(lessons: list[Lesson]) -> list[Entry]:
    """The reference (full mode, metrics recorded) and the stub (quick mode) of every lesson."""
    out = []
    for lesson in lessons:
        metrics = Result.folder_of(RESULTS, "reference", lesson.slug) / METRICS_FILE
        out.append(Entry("reference", lesson, lesson.solution,
                         env={"COURSE_QUICK": "0", "COURSE_METRICS_FILE": str(metrics.resolve())}))
        out.append(Entry("stub", lesson, lesson.student, env={"COURSE_QUICK": "1"}))
    return out


def keep_outputs(lesson: Lesson) -> dict[str, float]:
    """Copy the reference run's notebook and metrics where the site reads them; return the metrics."""
    folder = Result.folder_of(RESULTS, "reference", lesson.slug)
    executed = folder / f"{lesson.slug}.ipynb"
    if executed.exists():
        EXECUTED.mkdir(parents=True, exist_ok=True)
        shutil.copy(executed, EXECUTED / f"{lesson.slug}.ipynb")
    METRICS.mkdir(parents=True, exist_ok=True)
    target = METRICS / f"{lesson.slug}.jsonl"
    if (folder / METRICS_FILE).exists():
        shutil.copy(folder / METRICS_FILE, target)
    else:
        target.unlink(missing_ok=True)
    return {entry["name"]: entry["value"] for entry in read_records(target)}


def build_site() -> bool:
    process = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"], cwd=ROOT, capture_output=True, text=True
    )
    if process.returncode != 0:
        print(process.stdout + process.stderr)
    return process.returncode == 0


def cpu_cell(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}"


def format_table(rows: list[dict], bars: list[dict]) -> str:
    lines = [f"{'lesson':<18} {'seconds':>8} {'CPU s':>7} {'reference':>10} {'stub':>7}  {'run':<6} metrics", "-" * 92]
    for row in rows:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in row["metrics"].items())
        lines.append(
            f"{row['lesson']:<18} {row['seconds']:>8.1f} {cpu_cell(row.get('cpu_seconds')):>7}"
            f" {row['points']:>5g}/{row['max_points']:<4g}"
            f" {row['stub_points']:>5g}/{row['max_points']:<3g} {row['run']:<6} {shown}"
        )
    lines += ["", f"{'quality bar':<32} {'bar':>10} {'value':>10}  status"]
    for bar in bars:
        value = "-" if bar["value"] is None else f"{bar['value']:.4g}"
        lines.append(f"{bar['metric']:<32} {bar['bar']:>10} {value:>10}  {bar['status']}")
    return "\n".join(lines)


def run_course(lessons: list[Lesson] | None = None, force: bool = False, site: bool = True) -> int:
    from grader.build.generate import build

    lessons = lessons or all_lessons()
    if build() != 0:
        return 1

    def plan(what: str):
        def show(todo: int, reused: int, workers: int) -> None:
            print(f"course: {todo} {what} runs to do on {workers} worker{'s' * (workers > 1)}, "
                  f"{reused} unchanged since the last run", flush=True)
        return show

    # The reference runs go one at a time, so each lesson's seconds are its time on this machine with nothing
    # else running (two at once on two cores made lesson 04 take 184 s instead of 142 s); the stubs, quick
    # runs of seconds each, then share the workers.
    everything = entries(lessons)
    options = dict(workspace=COURSE, results=RESULTS, config=COURSE_CONFIG, force=force, progress=sys.stderr.isatty())
    runs = [grade([e for e in everything if e.student == "reference"], jobs=1, on_plan=plan("reference"), **options),
            grade([e for e in everything if e.student != "reference"], on_plan=plan("stub"), **options)]
    started = runs[0].started
    found = {(r.student, r.lesson): r for run in runs for r in run.results}
    rows, grades, metrics = [], [], {}
    for lesson in lessons:
        reference, stub = found.get(("reference", lesson.slug)), found.get(("stub", lesson.slug))
        missing = Result(lesson=lesson.slug, student="?", status="error", reason="no result was stored")
        reference, stub = reference or missing, stub or missing
        grades += [reference.grade(), stub.grade()]
        lesson_metrics = keep_outputs(lesson)
        metrics.update(lesson_metrics)
        rows.append({
            "lesson": lesson.slug,
            "title": lesson.title(),
            "seconds": round(reference.execution_seconds or reference.seconds, 1),
            # The kernel's CPU time: unlike the wall time above, it does not grow with the host's other load
            # (a cloud VM shares its cores).
            "cpu_seconds": None if (cpu := reference.execution_cpu_seconds) is None else round(cpu, 1),
            "points": reference.points,
            "max_points": reference.max_points,
            "stub_points": stub.points,
            "status": reference.status,
            "reason": reference.reason,
            "run": "reused" if reference.graded_at < started else "ran",
            "metrics": lesson_metrics,
        })
        print(f"{lesson.slug}: reference {reference.points:g}/{reference.max_points:g} ({reference.status}"
              f"{': ' + reference.reason[:200] if reference.reason else ''}), stub {stub.points:g}", flush=True)
    write_csv(grades, COURSE / "grades.csv")
    site_ok = build_site() if site else True
    bars = check_bars(metrics)
    report = {
        **nest(metrics),
        "lessons": {row["lesson"]: row for row in rows},
        "metrics": metrics,
        "quality_bars": bars,
        "site_built": site_ok,
        "runs": {"ran": sum(run.graded for run in runs), "reused": sum(run.reused for run in runs)},
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print()
    print(format_table(rows, bars))
    print(f"\nwrote {REPORT.relative_to(ROOT)}; grades in {(COURSE / 'grades.csv').relative_to(ROOT)}")
    failures = [r["lesson"] for r in rows
                if r["status"] != "graded" or r["points"] != r["max_points"] or r["stub_points"] != 0]
    failures += [b["metric"] for b in bars if b["status"] == "FAIL"]
    if not site_ok:
        failures.append("site")
    if failures:
        print(f"course FAILED: {', '.join(failures)}")
        return 1
    return 0

