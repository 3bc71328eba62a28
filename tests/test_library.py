"""The movierec library: generated modules import cleanly and hold no answers."""

from __future__ import annotations

import ast
import importlib
import json

import pytest

from grader.build import library
from grader.lessons import LIBRARY, all_lessons, is_exercise, nbgrader_meta, read_source
from movierec.report import record


def test_generated_modules_import_and_define_only(lesson):
    paths = sorted(library.module_sources(lesson))
    if not paths:
        pytest.skip(f"{lesson.slug} exports nothing")
    exercises = {nbgrader_meta(c)["grade_id"] for c in read_source(lesson.solution).cells if is_exercise(c)}
    for path in paths:
        assert path.exists(), f"{path} is missing: run python -m grader build"
        dotted = ".".join(path.relative_to(LIBRARY).with_suffix("").parts)
        module = importlib.import_module(f"movierec.{dotted}")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert all(hasattr(module, name) for name in defined)
        assert not defined & exercises, f"exercise answers exported to {path.name}: {defined & exercises}"


def test_an_export_cell_can_name_its_module(monkeypatch):
    lesson = all_lessons()[0]
    nb = read_source(lesson.solution)
    cell = nb.cells[1].__class__
    nb.cells.append(cell(cell_type="markdown", source="## 9. Elsewhere", metadata={}))
    source = "#| export toolbox.extra\nimport math\n\n\ndef half(x):\n    return x / 2"
    nb.cells.append(cell(cell_type="code", source=source,
                         metadata={"tags": ["export"]}, outputs=[], execution_count=None))
    monkeypatch.setattr(library, "read_source", lambda path: nb)
    sources = library.module_sources(lesson)
    target = LIBRARY / "toolbox" / "extra.py"
    assert set(sources) == {lesson.module, target}, "the directive sends the cell to its own module"
    text = sources[target]
    assert text.startswith("# DO NOT EDIT"), "a targeted module keeps the generated header"
    assert "# --- from solutions/" in text and "section: 9. Elsewhere" in text, "and the per-block provenance"
    assert "\n#| export" not in text and "def half" in text and "import math" in text
    assert "def half" not in sources[lesson.module], "the cell is not also in the lesson's own module"


def test_a_malformed_export_directive_is_refused(monkeypatch):
    lesson = all_lessons()[0]
    nb = read_source(lesson.solution)
    nb.cells.append(nb.cells[1].__class__(cell_type="code", source="#| export ../escape\nX = 1",
                                          metadata={"tags": ["export"]}, outputs=[], execution_count=None))
    monkeypatch.setattr(library, "read_source", lambda path: nb)
    with pytest.raises(library.ExportError, match="export directive"):
        library.module_sources(lesson)


def test_exporting_an_exercise_is_refused(monkeypatch):
    lesson = all_lessons()[0]
    nb = read_source(lesson.solution)
    exercise = next(c for c in nb.cells if is_exercise(c))
    exercise.metadata["tags"] = ["export"]
    monkeypatch.setattr(library, "read_source", lambda path: nb)
    with pytest.raises(library.ExportError, match="cannot be exported"):
        library.module_source(lesson)


def test_export_cells_may_not_do_work_at_import(monkeypatch):
    lesson = all_lessons()[0]
    nb = read_source(lesson.solution)
    nb.cells.append(nb.cells[1].__class__(cell_type="code", source="print('hi')", metadata={"tags": ["export"]},
                                          outputs=[], execution_count=None))
    monkeypatch.setattr(library, "read_source", lambda path: nb)
    with pytest.raises(library.ExportError, match="import time"):
        library.module_source(lesson)


def test_record_prints_and_logs(tmp_path, monkeypatch, capsys):
    log = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("COURSE_METRICS_FILE", str(log))
    assert record("demo.top_10", 0.25) == 0.25
    assert "demo.top_10 = 0.25" in capsys.readouterr().out
    assert json.loads(log.read_text()) == {"name": "demo.top_10", "value": 0.25, "unit": ""}


@pytest.mark.parametrize("name, value, error", [
    ("has space", 1.0, ValueError), ("", 1.0, ValueError), ("x", float("nan"), ValueError), ("x", "high", TypeError),
])
def test_record_rejects_bad_metrics(name, value, error):
    with pytest.raises(error):
        record(name, value)


def test_nest_builds_readable_keys():
    from grader.grading.course import nest

    assert nest({"a.b": 1, "a.c.d": 2}) == {"a": {"b": 1, "c": {"d": 2}}}
    with pytest.raises(ValueError):
        nest({"a.b": 1, "a.b.c": 2})
