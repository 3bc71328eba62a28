"""``make course`` (``python -m grader course``): the course's main job, end to end.

1. ``grader build``: student editions, library modules, notebooks.
2. Every lesson's reference solution is submitted as student ``reference`` and its
   untouched student edition as student ``stub``; nbgrader autogrades both. Grading the
   reference *is* the reference run: it executes the whole lesson on the real data, and
   the metrics the lesson records land in ``build/course/metrics/<lesson>.jsonl``.
3. The site is built with ``mkdocs build --strict``.
4. A per-lesson table is printed and written, with the quality bars, to
   ``build/course-report.json``. The exit status is non-zero if a reference loses a
   point, a stub earns one, a measured quality bar is missed or the site fails to build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from grader.autograde import Grade, Submission, grade_one, release, write_course, write_csv
from grader.build import build
from grader.lessons import BUILD, ROOT, Lesson, all_lessons
from grader.quality_bars import check_bars

COURSE = BUILD / "course"
REPORT = BUILD / "course-report.json"
EXECUTED = BUILD / "executed"


def read_metrics(path: Path) -> dict[str, float]:
    metrics: dict[str, float] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                metrics[entry["name"]] = entry["value"]
    return metrics


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


def grade_lesson(lesson: Lesson, course_dir: Path) -> tuple[Grade, Grade, float, dict[str, float]]:
    """Grade the reference (full budget, metrics recorded) and the stub (quick budget)."""
    metrics_file = COURSE / "metrics" / f"{lesson.slug}.jsonl"
    metrics_file.parent.mkdir(parents=True, exist_ok=True)
    metrics_file.unlink(missing_ok=True)
    start = time.perf_counter()
    reference = grade_one(
        course_dir,
        Submission("reference", lesson, lesson.solution),
        env={"COURSE_METRICS_FILE": str(metrics_file), "COURSE_QUICK": "0"},
    )
    seconds = time.perf_counter() - start
    stub = grade_one(course_dir, Submission("stub", lesson, lesson.student), env={"COURSE_QUICK": "1"})
    executed = course_dir / "autograded" / "reference" / lesson.slug / f"{lesson.slug}.ipynb"
    if executed.exists():
        EXECUTED.mkdir(parents=True, exist_ok=True)
        shutil.copy(executed, EXECUTED / f"{lesson.slug}.ipynb")
    return reference, stub, seconds, read_metrics(metrics_file)


def build_site() -> bool:
    process = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"], cwd=ROOT, capture_output=True, text=True
    )
    if process.returncode != 0:
        print(process.stdout + process.stderr)
    return process.returncode == 0


def format_table(rows: list[dict], bars: list[dict]) -> str:
    lines = [f"{'lesson':<18} {'seconds':>8} {'reference':>10} {'stub':>7}  metrics", "-" * 78]
    for row in rows:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in row["metrics"].items())
        lines.append(
            f"{row['lesson']:<18} {row['seconds']:>8.1f} {row['points']:>5g}/{row['max_points']:<4g}"
            f" {row['stub_points']:>5g}/{row['max_points']:<3g} {shown}"
        )
    lines += ["", f"{'quality bar':<32} {'bar':>10} {'value':>10}  status"]
    for bar in bars:
        value = "-" if bar["value"] is None else f"{bar['value']:.4g}"
        lines.append(f"{bar['metric']:<32} {bar['bar']:>10} {value:>10}  {bar['status']}")
    return "\n".join(lines)


def run_course(lessons: list[Lesson] | None = None) -> int:
    lessons = lessons or all_lessons()
    if build() != 0:
        return 1
    course_dir = (COURSE / "nbgrader").resolve()
    if course_dir.exists():
        shutil.rmtree(course_dir)
    write_course(course_dir, lessons, cell_timeout=1800)
    rows, grades, metrics = [], [], {}
    for lesson in lessons:
        release(course_dir, lesson)
        reference, stub, seconds, lesson_metrics = grade_lesson(lesson, course_dir)
        grades += [reference, stub]
        metrics.update(lesson_metrics)
        rows.append({
            "lesson": lesson.slug,
            "title": lesson.title(),
            "seconds": round(seconds, 1),
            "points": reference.points,
            "max_points": reference.max_points,
            "stub_points": stub.points,
            "status": reference.status,
            "metrics": lesson_metrics,
        })
        print(f"{lesson.slug}: reference {reference.points:g}/{reference.max_points:g} "
              f"({reference.status}), stub {stub.points:g} in {seconds:.0f} s", flush=True)
    write_csv(grades, COURSE / "grades.csv")
    site_ok = build_site()
    bars = check_bars(metrics)
    report = {
        **nest(metrics),
        "lessons": {row["lesson"]: row for row in rows},
        "metrics": metrics,
        "quality_bars": bars,
        "site_built": site_ok,
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print()
    print(format_table(rows, bars))
    print(f"\nwrote {REPORT.relative_to(ROOT)}; grades in {(COURSE / 'grades.csv').relative_to(ROOT)}")
    failures = [r["lesson"] for r in rows if r["points"] != r["max_points"] or r["stub_points"] != 0]
    failures += [b["metric"] for b in bars if b["status"] == "FAIL"]
    if not site_ok:
        failures.append("site")
    if failures:
        print(f"course FAILED: {', '.join(failures)}")
        return 1
    return 0
