"""Command line: ``python -m grader {build,check,autograde,autograde-one,merge,course,dist,deploy}``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)


def size(text: str) -> int:
    """``8G``, ``512M``, ``1000000`` → bytes (K, M, G, T are powers of 1024)."""
    match = SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 8G, 512M or a number of bytes)")
    number, unit = match.groups()
    return int(float(number) * 1024 ** ("KMGT".index(unit.upper()) + 1 if unit else 0))


def add_grading_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("grading settings (defaults: grader/grading/config.py GradingConfig)")
    g.add_argument("--config", type=Path, help="TOML file with an [autograde] table of the settings below")
    g.add_argument("--cell-timeout", type=int, help="seconds one cell may run (default 900)")
    g.add_argument("--notebook-timeout", type=int, help="seconds one notebook may run (default 3600)")
    g.add_argument("--memory", type=size, help="address-space limit of a kernel, e.g. 8G (default 8G)")
    g.add_argument("--max-output", type=size, dest="max_output_bytes", help="output kept per cell (default 1000000)")
    g.add_argument("--seed", type=int, help="seed for PYTHONHASHSEED, random and numpy (default 42)")
    g.add_argument("--threads", type=int, help="BLAS/TensorFlow threads per kernel (default 1)")
    g.add_argument("--no-sandbox", dest="sandbox", action="store_false", default=None,
                   help="run kernels without namespaces or a separate uid (resource limits still apply)")
    g.add_argument("--no-guard", dest="guard", action="store_false", default=None,
                   help="do not run the kernel guard before test cells")
    g.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment variable for the kernels (repeatable), e.g. COURSE_QUICK=1")
    g.add_argument("--workspace", type=Path, default=None, help="grading workspace (default build/autograde)")
    g.add_argument("--results", type=Path, default=None, help="per-job results (default WORKSPACE/results)")
    g.add_argument("--force", action="store_true", help="grade again what is already graded")


def grading_config(args: argparse.Namespace):
    from grader.grading.config import GradingConfig

    config = GradingConfig.from_toml(args.config) if args.config else GradingConfig()
    for name in ("cell_timeout", "notebook_timeout", "memory", "max_output_bytes", "seed", "threads", "sandbox",
                 "guard", "max_file_size"):
        value = getattr(args, name, None)  # max_file_size: only autograde(-one) read files
        if value is not None:
            setattr(config, name, value)
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--env takes NAME=VALUE, got {item!r}")
        config.env[name] = value
    return config


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="generate student editions, library modules and notebooks")
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")

    check = sub.add_parser("check", help="run your lesson and see which exercises pass")
    check.add_argument("path", type=Path, help="your lesson, e.g. lessons/01_intro.py or a downloaded .ipynb")
    check.add_argument("--cell-timeout", type=int, default=900, help="seconds one cell may run (default 900)")
    check.add_argument("--lesson", help="which lesson the file is (default: the NN_name in its file name)")

    grade = sub.add_parser("autograde", help="grade a folder of submissions with nbgrader, in parallel")
    grade.add_argument("submissions", type=Path, help="folder per student, a flat folder of files, or both")
    grade.add_argument("--out", type=Path, default=Path("grades.csv"), help="CSV to write (default grades.csv)")
    grade.add_argument("--feedback", type=Path, default=None,
                       help="where feedback/<student>/<lesson>.html go (default: 'feedback' beside --out)")
    grade.add_argument("--roster", type=Path, default=None, help="CSV with a 'student' column (optional 'aliases')")
    grade.add_argument("--lesson", action="append", help="grade only this lesson (repeatable)")
    grade.add_argument("--jobs", "-j", type=int, default=None, help="parallel workers (default: one per core)")
    grade.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    grade.add_argument("--layout", choices=("auto", "exchange", "folders"), default="auto",
                       help="exchange: nbgrader's SUBMISSIONS/submitted/<student>/<lesson>/; folders: a folder per "
                       "student and/or flat files; auto (default): exchange only when the folder is unambiguously one")
    grade.add_argument("--max-file-size", type=size, dest="max_file_size",
                       help="larger submission files are invalid rows, never read (default 20M)")
    grade.add_argument("--course-dir", type=Path, default=None, help=argparse.SUPPRESS)  # old name of --workspace
    add_grading_options(grade)

    one = sub.add_parser("autograde-one", help="grade one file as one student's lesson (for a scheduler's job)")
    one.add_argument("path", type=Path, help="the submitted .py or .ipynb")
    one.add_argument("--student", required=True)
    one.add_argument("--lesson", required=True, help="slug, name or number of the lesson")
    one.add_argument("--max-file-size", type=size, dest="max_file_size",
                     help="a larger file is an invalid row, never read (default 20M), as in autograde")
    add_grading_options(one)

    merge = sub.add_parser("merge", help="merge result folders into grades.csv and feedback/")
    merge.add_argument("results", type=Path, nargs="+", help="folders of <student>/<lesson>/result.json")
    merge.add_argument("--out", type=Path, default=Path("grades.csv"), help="CSV to write (default grades.csv)")
    merge.add_argument("--feedback", type=Path, default=None,
                       help="where feedback/<student>/<lesson>.html go (default: 'feedback' beside --out)")
    merge.add_argument("--roster", type=Path, default=None, help="CSV with a 'student' column: adds 'missing' rows")
    merge.add_argument("--lesson", action="append", help="only this lesson (repeatable; default: all lessons)")

    sub.add_parser("dist", help="build the student distribution into build/dist (site, notebooks, library wheel)")
    sub.add_parser("deploy", help="publish build/dist to the pages branch named in mkdocs.yml")

    course = sub.add_parser("course", help="build, run and grade every lesson; write build/course-report.json")
    course.add_argument("--lesson", action="append", help="only this lesson (repeatable)")
    course.add_argument("--force", action="store_true", help="run every lesson again, even if nothing changed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.command == "build":
        from grader.build.generate import build

        return build(check=args.check)
    if args.command == "dist":
        from grader.site.dist import build_dist

        build_dist()
        return 0
    if args.command == "deploy":
        from grader.site.dist import deploy

        return deploy()
    if args.command == "check":
        from grader.grading.check import main as check_main

        try:
            return check_main(args.path, args.cell_timeout, args.lesson)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            print(f"grader check: {exc}", file=sys.stderr)
            return 2
    from grader.lessons import all_lessons, find_lesson

    if args.command == "autograde-one":
        from grader.grading.autograde import DEFAULT_WORKSPACE, autograde_one

        result = autograde_one(args.path, args.student, find_lesson(args.lesson), args.workspace or DEFAULT_WORKSPACE,
                               args.results, grading_config(args), force=args.force)
        print(json.dumps({k: getattr(result, k) for k in ("student", "lesson", "points", "max_points", "status",
                                                          "reason", "seconds")}))
        return 0 if result.status else 1
    lessons = [find_lesson(name) for name in args.lesson] if args.lesson else None
    if args.command == "autograde":
        from grader.grading.autograde import DEFAULT_WORKSPACE, autograde
        from grader.grading.collect import CollectError

        try:
            grades = autograde(
                args.submissions, args.out, args.workspace or args.course_dir or DEFAULT_WORKSPACE, lessons,
                grading_config(args), jobs=args.jobs, force=args.force, roster=args.roster, results=args.results,
                feedback=args.feedback, progress=args.progress, layout=args.layout,
            )
        except CollectError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {args.out} ({len(grades)} rows)")
        return 0
    if args.command == "merge":
        from grader.grading.autograde import max_points
        from grader.grading.collect import read_roster
        from grader.grading.results import load_results, merge, summary

        students = sorted(set(read_roster(args.roster).values())) if args.roster else None
        totals = None
        if lessons or students is not None:  # missing rows need every lesson's maximum
            found = load_results(args.results)
            known = {lesson: r.max_points for (_, lesson), (r, _) in found.items()}
            totals = {}
            for lesson in lessons or all_lessons():
                totals[lesson.slug] = float(known[lesson.slug]) if lesson.slug in known else max_points(lesson)
        feedback = args.feedback or args.out.resolve().parent / "feedback"
        grades = merge(args.results, args.out, students=students, lessons=totals, feedback=feedback)
        print(summary(grades), file=sys.stderr)
        print(f"wrote {args.out} ({len(grades)} rows)")
        return 0
    from grader.grading.course import run_course

    return run_course(lessons, force=args.force)


if __name__ == "__main__":
    sys.exit(main())
