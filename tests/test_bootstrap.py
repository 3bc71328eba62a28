"""The Colab bootstrap obeys the rules that keep Colab's TensorFlow intact."""

from __future__ import annotations

import subprocess
import sys
import types

from grader.bootstrap import MARK_BEGIN, bootstrap_code
from grader.lessons import read_source, tags
from grader.settings import load_settings


def run_bootstrap(monkeypatch, tf_version: str, installed: bool = False) -> list[list[str]]:
    """Execute the bootstrap as if in Colab, recording the pip commands instead of running them."""
    calls: list[list[str]] = []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    import importlib.metadata
    import importlib.util

    monkeypatch.setattr(importlib.metadata, "version", lambda name: tf_version)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if installed and name == "movierec" else
                        (None if name == "movierec" else real_find_spec(name, *a)))
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    exec(compile(bootstrap_code(load_settings()), "bootstrap", "exec"), {})
    return calls


def test_colab_install_pins_tensorflow_and_matches_tf_keras(monkeypatch):
    calls = run_bootstrap(monkeypatch, "2.19.0")
    import os

    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    deps, course = calls
    assert "tf-keras==2.19.*" in deps, "tf-keras must match the runtime's TensorFlow minor version"
    constraint = deps[deps.index("-c") + 1]
    assert open(constraint).read().strip() == "tensorflow==2.19.0", "TensorFlow must be pinned to Colab's own"
    assert not any(a.startswith("tensorflow==") or a == "tensorflow" for a in deps), "never install TensorFlow"
    assert "--no-deps" in course and load_settings().pip_spec in course


def test_colab_install_runs_once_per_runtime(monkeypatch):
    assert run_bootstrap(monkeypatch, "2.19.0", installed=True) == []


def test_bootstrap_refuses_a_runtime_where_keras3_already_loaded(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    try:
        exec(compile(bootstrap_code(load_settings()), "bootstrap", "exec"), {})
    except RuntimeError as exc:
        assert "Restart the runtime" in str(exc)
    else:
        raise AssertionError("the bootstrap must ask for a restart when TensorFlow already runs Keras 3")


def test_locally_the_bootstrap_installs_nothing():
    probe = "\nimport sys, os\nprint('tensorflow' in sys.modules, os.environ['TF_USE_LEGACY_KERAS'])"
    code = bootstrap_code(load_settings()) + probe
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == ["False", "1"], out.stderr


def test_every_edition_starts_with_the_bootstrap(lesson):
    nb = read_source(lesson.student)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert "setup" in tags(setup) and setup.source.startswith(MARK_BEGIN)
    assert setup.source.index("TF_USE_LEGACY_KERAS") < setup.source.index("setup_lesson(")
