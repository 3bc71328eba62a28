"""Command line: ``python -m grader {build,check,autograde,course}``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="generate student editions, library modules and notebooks")
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")

    check = sub.add_parser("check", help="run your lesson and see which exercises pass")
    check.add_argument("path", type=Path, help="your lesson, e.g. lessons/01_intro.py or a downloaded .ipynb")
    check.add_argument("--cell-timeout", type=int, default=900, help="seconds one cell may run (default 900)")

    grade = sub.add_parser("autograde", help="grade a folder of submissions with nbgrader")
    grade.add_argument("submissions", type=Path, help="folder with one sub-folder per student")
    grade.add_argument("--out", type=Path, default=Path("grades.csv"), help="CSV to write (default grades.csv)")
    grade.add_argument("--course-dir", type=Path, default=None, help="nbgrader course folder (default build/nbgrader)")
    grade.add_argument("--lesson", action="append", help="grade only this lesson (repeatable)")
    grade.add_argument("--cell-timeout", type=int, default=900, help="seconds one cell may run (default 900)")

    course = sub.add_parser("course", help="build, run and grade every lesson; write build/course-report.json")
    course.add_argument("--lesson", action="append", help="only this lesson (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.command == "build":
        from grader.build import build

        return build(check=args.check)
    if args.command == "check":
        from grader.check import main as check_main

        return check_main(args.path, args.cell_timeout)
    from grader.lessons import find_lesson

    lessons = [find_lesson(name) for name in args.lesson] if args.lesson else None
    if args.command == "autograde":
        from grader.autograde import DEFAULT_COURSE_DIR, autograde

        grades = autograde(
            args.submissions, args.out, args.course_dir or DEFAULT_COURSE_DIR, lessons, args.cell_timeout
        )
        print(f"wrote {args.out} ({len(grades)} rows)")
        return 0
    from grader.course import run_course

    return run_course(lessons)


if __name__ == "__main__":
    sys.exit(main())
