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


def test_checks_compare_plain_data_and_refuse_lookalikes():
    """What test cells compare goes through movierec.checks: exact Python types, or a TypeError."""
    import numpy as np

    from movierec import checks

    class AlwaysEqualDict(dict):
        def __eq__(self, other):
            return True

    class AlwaysEqualFloat(float):
        def __eq__(self, other):
            return True

    class AlwaysEqualArray(np.ndarray):
        def __eq__(self, other):
            return np.ones(self.shape, bool)

    assert checks.plain_value({np.float64(1.0): np.int64(3), b"t": [np.array([b"a", b"b"]), (1, 2)]}) == {
        1.0: 3, b"t": [[b"a", b"b"], [1, 2]]}
    assert type(next(iter(checks.plain_value({np.float32(2.0): 1})))) is float
    for lookalike in (AlwaysEqualDict(a=1), [AlwaysEqualFloat(1.0)], np.zeros(3).view(AlwaysEqualArray),
                      {"nested": AlwaysEqualDict()}, np.ma.array([1.0])):
        with pytest.raises(TypeError, match="expected plain Python data"):
            checks.plain_value(lookalike)
    assert checks.number(np.float32(0.5)) == 0.5 and type(checks.number(AlwaysEqualFloat(2.0))) is float
    assert checks.number(AlwaysEqualFloat(2.0)) != 3.0  # its own __eq__ is gone
    with pytest.raises(TypeError, match="one number"):
        checks.number([1.0, 2.0])
    assert not checks.close(np.zeros(3).view(AlwaysEqualArray), [1.0, 1.0, 1.0])


def test_read_features_pads_lists_across_batches_as_a_ragged_read_would():
    """``read_features`` batches with ``padded_batch`` (each batch as wide as its own longest
    list) and widens every batch to the longest overall: the same columns as the slower
    ``ragged_batch`` + ``to_tensor``, even when the longest list sits in a later batch."""
    import numpy as np
    import tensorflow as tf

    from movierec.preprocessing import GENRE_PAD, read_features

    n = 45_000  # three batches of read_features' 20,000
    lengths = np.where(np.arange(n) == 41_234, 7, np.arange(n) % 3)  # the one 7-long list in the last batch
    genres = tf.RaggedTensor.from_row_lengths(np.arange(lengths.sum(), dtype=np.int64) % 19, lengths)
    data = tf.data.Dataset.from_tensor_slices({
        "movie_genres": genres, "user_id": tf.constant([str(i).encode() for i in range(n)]),
        "user_gender": tf.constant(np.arange(n) % 2 == 0), "timestamp": tf.constant(np.arange(n, dtype=np.int64)),
    })
    columns = read_features(data)
    assert columns["movie_genres"].shape == (n, 7) and columns["movie_genres"].dtype == tf.int64
    np.testing.assert_array_equal(columns["movie_genres"].numpy(), genres.to_tensor(default_value=GENRE_PAD).numpy())
    assert columns["user_id"].numpy()[41_234] == b"41234"
    assert columns["user_gender"].numpy()[:3].tolist() == [True, False, True]
    np.testing.assert_array_equal(columns["timestamp"].numpy(), np.arange(n))
    assert set(read_features(data, ["timestamp"])) == {"timestamp"}
