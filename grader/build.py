"""``python -m grader build``: write every file that is generated from the lesson sources.

Committed outputs (students browse them on GitHub, Colab installs the library from it):
``lessons/NN_name.py`` and ``movierec/<name>.py``. Build outputs under ``build/``:
the student and instructor notebooks. ``--check`` writes nothing and lists stale files;
the test suite uses it so a forgotten rebuild fails CI.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from grader.editions import instructor_notebook, student_notebook, student_script
from grader.lessons import BUILD, LIBRARY, ROOT, Lesson, all_lessons
from grader.library import module_source

GENERATED_MODULE_MARK = "Generated from the cells tagged ``export``"
NOTEBOOKS = BUILD / "notebooks"


def committed_outputs(lessons: list[Lesson] | None = None) -> dict[Path, str]:
    """Every committed generated file and the text it should have."""
    outputs: dict[Path, str] = {}
    for lesson in lessons or all_lessons():
        outputs[lesson.student] = student_script(lesson)
        module = module_source(lesson)
        if module is not None:
            outputs[lesson.module] = module
    return outputs


def orphans(expected: dict[Path, str]) -> list[Path]:
    """Generated files whose lesson no longer exists (or no longer exports anything)."""
    found = [p for p in LIBRARY.glob("*.py") if GENERATED_MODULE_MARK in p.read_text(encoding="utf-8")]
    found += list((ROOT / "lessons").glob("*.py"))
    return sorted(p for p in found if p not in expected)


def stale_files() -> list[Path]:
    """Committed generated files that differ from what the sources produce now."""
    expected = committed_outputs()
    stale = [p for p, text in expected.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    return sorted(stale + orphans(expected))


def write_notebooks(lessons: list[Lesson], out: Path = NOTEBOOKS) -> list[Path]:
    """Student and instructor ``.ipynb`` files: build outputs, never committed."""
    written = []
    for lesson in lessons:
        for edition, make in (("student", student_notebook), ("instructor", instructor_notebook)):
            path = out / edition / f"{lesson.slug}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(make(lesson), path)
            written.append(path)
    return written


def build(check: bool = False) -> int:
    """Regenerate everything (or, with ``check``, report what is stale). Returns an exit code."""
    if check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)}")
        if stale:
            print("Run `python -m grader build` and commit the result.")
        return 1 if stale else 0
    expected = committed_outputs()
    for path in orphans(expected):
        path.unlink()
        print(f"removed {path.relative_to(ROOT)} (its lesson is gone)")
    for path, text in expected.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    notebooks = write_notebooks(all_lessons())
    print(f"{len(expected)} committed files up to date; {len(notebooks)} notebooks in {NOTEBOOKS.relative_to(ROOT)}/")
    return 0
