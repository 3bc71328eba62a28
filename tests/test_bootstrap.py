"""The Colab bootstrap obeys the rules that keep Colab's TensorFlow intact.

Colab ships its own TensorFlow with Keras 3. The rules: install the ``tf-keras`` that
matches the runtime's TensorFlow *minor* version, never let pip install, upgrade or
downgrade TensorFlow itself, set ``TF_USE_LEGACY_KERAS=1`` before ``tf.keras`` is first
touched, and ask for a restart when TensorFlow already runs with Keras 3. The rules
are checked on the code the build generates, and on the setup cell of every notebook
the site publishes (what "Open in Colab" runs).
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import types

import pytest

from grader.build.bootstrap import (
    COLAB_FLOORS,
    COLAB_MATCHED,
    COLAB_PINNED,
    COLAB_PROVIDED,
    MARK_BEGIN,
    MARK_END,
    bootstrap_code,
    colab_requirements,
    needs_serving,
    pinned_versions,
)
from grader.build.editions import student_notebook
from grader.lessons import read_source, tags
from grader.settings import load_settings


def run_bootstrap(monkeypatch, tf_version: str, installed: bool = False, code: str | None = None,
                  tfds_probe_status: int = 0) -> list[list[str]]:
    """Execute the bootstrap as if in Colab, recording the pip commands instead of running them."""
    calls: list[list[str]] = []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    def run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, tfds_probe_status if cmd[1:2] == ["-c"] else 0)

    monkeypatch.setattr(subprocess, "run", run)
    import importlib.metadata
    import importlib.util

    monkeypatch.setattr(importlib.metadata, "version", lambda name: tf_version)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if installed and name == "movierec" else
                        (None if name == "movierec" else real_find_spec(name, *a)))
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    exec(compile(code or bootstrap_code(load_settings()), "bootstrap", "exec"), {})
    return calls


def assert_colab_rules(calls: list[list[str]], tf_version: str, serving: bool = True,
                       metadata_fix: bool = False) -> None:
    minor = ".".join(tf_version.split(".")[:2])
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    probes = [c for c in calls if c[1:2] == ["-c"]]
    assert len(probes) == 1 and "tensorflow_datasets" in probes[0][2], "the install checks that tfds imports"
    pips = [c for c in calls if c[1:3] == ["-m", "pip"]]
    assert len(pips) == 3 if metadata_fix else 2, calls
    deps, course = pips[:2]
    if metadata_fix:
        assert "tensorflow-metadata==1.17.3" in pips[2] and "-c" in pips[2]
    assert deps[:4] == [sys.executable, "-m", "pip", "install"] and course[:4] == deps[:4]
    assert f"tf-keras=={minor}.*" in deps, "tf-keras must match the runtime's TensorFlow minor version"
    constraint = deps[deps.index("-c") + 1]
    with open(constraint) as fh:
        assert fh.read().strip() == f"tensorflow=={tf_version}", "TensorFlow must be pinned to Colab's own"
    for command in calls:
        assert not any(a.split("==")[0].split("[")[0] in {"tensorflow", "tensorflow-cpu", "tf-nightly", "keras"}
                       for a in command), "never install TensorFlow or Keras 3 over Colab's"
        assert not {"-U", "--upgrade", "--force-reinstall", "--ignore-installed"} & set(command), "never upgrade"
    assert "--no-deps" in course and load_settings().pip_spec in course
    assert load_settings().pip_spec.endswith(".whl") and "git+" not in load_settings().pip_spec, \
        "the course library comes from the published wheel, never from the source repository"
    assert "-q" not in deps + course, "the student sees pip's progress"
    assert (f"tensorflow-serving-api=={minor}.*" in deps) == serving, "the TF Serving client matches TensorFlow"
    for requirement in colab_requirements(serving):
        assert requirement in deps, f"{requirement} (pinned in pyproject.toml) is not installed in Colab"
    for name, floor in COLAB_FLOORS.items():  # what Colab ships is kept, not upgraded to pyproject.toml's pin
        assert all(not a.startswith(f"{name}==") for a in deps), f"{name} pinned: Colab's copy would be replaced"
        assert (f"{name}>={floor}" in deps) == serving, f"{name} should be asked for as >= {floor} (Colab's version)"
    if not serving:
        assert not any(a.startswith(("fastapi", "uvicorn", "httpx2")) for a in deps), "no serving stack"


@pytest.mark.parametrize("tf_version", ["2.19.0", "2.20.1", "2.18.0"])
def test_colab_install_pins_tensorflow_and_matches_tf_keras(monkeypatch, tf_version):
    assert_colab_rules(run_bootstrap(monkeypatch, tf_version), tf_version)


def test_colab_install_leaves_out_the_serving_stack_when_the_lesson_needs_none(monkeypatch):
    calls = run_bootstrap(monkeypatch, "2.20.0", code=bootstrap_code(load_settings(), serving=False))
    assert_colab_rules(calls, "2.20.0", serving=False)


def test_colab_install_fixes_tensorflow_metadata_only_when_tfds_does_not_import(monkeypatch):
    calls = run_bootstrap(monkeypatch, "2.20.0", tfds_probe_status=1)
    assert_colab_rules(calls, "2.20.0", metadata_fix=True)


def test_colab_install_runs_once_per_runtime(monkeypatch):
    assert run_bootstrap(monkeypatch, "2.19.0", installed=True) == []


def _expect_restart(monkeypatch, tf_module: types.ModuleType, env: str | None) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", tf_module)
    if env is None:
        monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    else:
        monkeypatch.setenv("TF_USE_LEGACY_KERAS", env)
    with pytest.raises(RuntimeError, match="Restart the runtime"):
        exec(compile(bootstrap_code(load_settings()), "bootstrap", "exec"), {})


def test_bootstrap_refuses_a_runtime_where_keras3_already_loaded(monkeypatch):
    _expect_restart(monkeypatch, types.ModuleType("tensorflow"), env=None)


def test_bootstrap_refuses_keras3_even_if_the_variable_was_set_too_late(monkeypatch):
    """`%env TF_USE_LEGACY_KERAS=1` after `import tensorflow` does not switch Keras back."""
    tf = types.ModuleType("tensorflow")
    tf._tf_uses_legacy_keras = False  # what TensorFlow records at import time
    _expect_restart(monkeypatch, tf, env="1")


def test_bootstrap_accepts_a_runtime_where_it_already_ran(monkeypatch):
    tf = types.ModuleType("tensorflow")
    tf._tf_uses_legacy_keras = True
    monkeypatch.setitem(sys.modules, "tensorflow", tf)
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(bootstrap_code(load_settings()), "bootstrap", "exec"), {})


def test_locally_the_bootstrap_installs_nothing():
    probe = "\nimport sys, os\nprint('tensorflow' in sys.modules, os.environ['TF_USE_LEGACY_KERAS'])"
    code = bootstrap_code(load_settings()) + probe
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == ["False", "1"], out.stderr


def test_the_variable_selects_keras_2_in_tensorflow():
    """With the bootstrap run first, `tf.keras` in this TensorFlow is tf-keras (Keras 2)."""
    probe = "\nimport tensorflow as tf\nprint(tf.keras.layers.Dense.__module__.split('.')[0])"
    code = bootstrap_code(load_settings()) + probe
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0 and out.stdout.split()[-1:] == ["tf_keras"], out.stderr[-2000:]


def test_every_edition_starts_with_the_bootstrap(lesson):
    nb = read_source(lesson.student)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert "setup" in tags(setup) and setup.source.startswith(MARK_BEGIN)
    assert setup.source.index("TF_USE_LEGACY_KERAS") < setup.source.index("setup_lesson(")


def test_published_notebook_setup_cell_obeys_the_colab_rules(monkeypatch, lesson):
    """The first code cell of the notebook Colab opens is exactly the bootstrap, then the lesson's setup."""
    nb = student_notebook(lesson)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    setup = code_cells[0]
    assert "setup" in tags(setup), "the notebook's first code cell is the setup cell"
    serving = needs_serving([c.source for c in code_cells])
    assert serving == (lesson.number >= 7), "only the serving lesson installs the serving stack"
    expected = bootstrap_code(load_settings(), serving)
    assert setup.source.startswith(expected + "\n"), "the setup cell starts with the generated bootstrap"
    rest = setup.source[len(expected):]
    imported = [n.module if isinstance(n, ast.ImportFrom) else a.name
                for n in ast.walk(ast.parse(setup.source.split(MARK_END)[0] + MARK_END))
                if isinstance(n, (ast.Import, ast.ImportFrom)) for a in (n.names if isinstance(n, ast.Import) else [n])]
    assert not [m for m in imported if m and m.split(".")[0].startswith("tensorflow")], \
        "nothing imports TensorFlow (or TFDS) in the kernel before the switch"
    assert "setup_lesson(" in rest
    for cell in code_cells[1:]:
        assert MARK_BEGIN not in cell.source, "only the setup cell carries the bootstrap"
    block = setup.source.split(MARK_END)[0] + MARK_END
    assert_colab_rules(run_bootstrap(monkeypatch, "2.19.0", code=block), "2.19.0", serving=serving)


def _imported_distributions(paths: list) -> dict[str, set[str]]:
    """``{distribution: {files}}`` for every third-party top-level import in ``paths``."""
    owners = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in {"movierec", "grader"}:
                    continue
                if top == "google":  # a namespace shared by several distributions
                    top = ".".join(name.split(".")[:2])
                    dists = {"protobuf"} if top == "google.protobuf" else {"google-colab"}
                else:
                    dists = set(owners.get(top, [top]))
                for dist in dists:
                    found.setdefault(dist.lower(), set()).add(path.name)
    return found


def _requirement_names(dist: str) -> set[str]:
    requires = importlib.metadata.requires(dist) or []
    return {re.split(r"[ ;<>=!~(\[]", r, maxsplit=1)[0].lower() for r in requires if "extra ==" not in r}


def test_every_package_the_lessons_import_reaches_colab():
    """An import the bootstrap does not install (nor Colab provide) fails only in Colab, where no test runs."""
    from grader.lessons import ROOT

    paths = sorted((ROOT / "movierec").glob("*.py")) + sorted((ROOT / "lessons").glob("*.py"))
    declared = set(pinned_versions())
    assert declared == set(COLAB_PINNED) | set(COLAB_FLOORS) | set(COLAB_MATCHED) | set(COLAB_PROVIDED)
    brought = set().union(*(_requirement_names(dist) for dist in declared))  # e.g. grpcio with tensorflow
    brought |= set().union(*(_requirement_names(dist) for dist in brought & {"fastapi", "starlette"}))
    undeclared = {dist: files for dist, files in _imported_distributions(paths).items()
                  if dist not in declared | brought | {"google-colab"}}
    assert not undeclared, f"imported, not declared in pyproject.toml nor brought by a declared one: {undeclared}"


# ---- `make colab-check` (grader/build/colab_check.py): its plumbing, without building a runtime ----

def test_colab_image_pins_parse_and_name_their_record():
    """Each pinned image says which recorded Colab image it copies, and pins what the setup cell meets."""
    from grader.build.colab_check import load_images

    images = load_images()
    assert [image.name for image in images] == ["current", "previous"]
    needed = {"pip", "tensorflow", "keras", "tf-keras", "numpy", "protobuf", "tensorflow-metadata",
              "tensorflow-datasets", "matplotlib", "requests", "ipykernel", "ipython", "jupyter-client"}
    for image in images:
        assert re.fullmatch(r"https://github\.com/googlecolab/backend-info/blob/[0-9a-f]{40}/pip-freeze\.txt",
                            image.record), f"{image.name}: the versions' source is one commit of Colab's record"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", image.date) and image.description
        assert not needed - set(image.packages), f"{image.name} lacks {needed - set(image.packages)}"
        assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+]*", v) for v in image.packages.values()), "exact versions"
        minor = ".".join(image.python.split(".")[:2])
        assert re.search(rf"python{re.escape(minor)}$|versions/{re.escape(minor)}\.", image.interpreter), \
            f"{image.name}: the local interpreter has the image's Python {minor}"
        assert image.requirements()[0] == f"pip=={image.packages['pip']}", "pip is installed first"
        assert f"tensorflow=={image.packages['tensorflow']}" in image.requirements()
    current, previous = images
    as_tuple = lambda v: tuple(int(p) for p in v.split(".")[:2])  # noqa: E731
    assert as_tuple(current.python) > as_tuple(previous.python), "current is the newer image"


def test_colab_stand_in_imports_beside_protobufs_google_package(tmp_path):
    """``google`` is a namespace (protobuf lives in it): the stand-in must not hide ``google.protobuf``."""
    from grader.build.colab_check import STARTUP, write_stand_in

    site, ipython = tmp_path / "site-packages", tmp_path / "ipython"
    write_stand_in(site, ipython)
    assert not (site / "google" / "__init__.py").exists(), "no google/__init__.py: it would shadow protobuf"
    startup = ipython / "profile_default" / "startup" / "00-google-colab.py"
    assert startup.read_text(encoding="utf-8") == STARTUP
    probe = (f"exec(open({str(startup)!r}).read())\nimport sys, google.protobuf, google.colab\n"
             "print('google.colab' in sys.modules, google.colab.STAND_IN)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(site)})
    assert out.returncode == 0 and out.stdout.split() == ["True", "True"], out.stderr


def test_colab_check_runs_the_published_notebook_with_the_reference_answers(lesson):
    """Only the exercise cells and the wheel's address differ from what "Open in Colab" opens."""
    from grader.build.colab_check import point_wheel_at, with_answers
    from grader.lessons import is_exercise
    from grader.settings import publish_settings

    published = student_notebook(lesson, publish_settings())
    notebook = point_wheel_at(with_answers(published, lesson), "http://127.0.0.1:8765/wheels/local.whl")
    reference = {c.metadata["nbgrader"]["grade_id"]: c.source for c in read_source(lesson.solution).cells
                 if is_exercise(c)}
    assert len(notebook.cells) == len(published.cells)
    answered = 0
    for mine, theirs in zip(notebook.cells, published.cells):
        if is_exercise(theirs):
            assert mine.source == reference[theirs.metadata["nbgrader"]["grade_id"]], "the reference answer"
            answered += 1
        elif "setup" in tags(theirs):
            expected = theirs.source.replace(publish_settings().wheel_url, "http://127.0.0.1:8765/wheels/local.whl")
            assert mine.source == expected != theirs.source, "the real setup cell, only the wheel's address changed"
        else:
            assert mine.source == theirs.source, "text, code and tests are the published ones"
    assert answered == len(reference) > 0


def test_colab_check_report_reads_per_lesson_and_keeps_other_images(tmp_path):
    from grader.build.colab_check import format_table, write_report

    def image(status: str) -> dict:
        result = {"status": status, "seconds": 12.5, "setup_seconds": 80.0, "failed_cell": None, "error": "",
                  "pip_conflict": False, "metadata_fix": True}
        if status == "failed":
            result.update(failed_cell=3, error="AttributeError: module 'tensorflow_datasets' has no attribute 'load'")
        return {"description": "d", "record": "r", "date": "2026-08-19", "python": "3.13.15", "interpreter": "i",
                "quick": True, "lessons": {"01_intro": result}}

    path, table = tmp_path / "colab-check.json", tmp_path / "colab-check.md"
    write_report({"previous": image("passed")}, path, table)
    report = write_report({"current": image("failed")}, path, table)
    assert list(report["images"]) == ["current", "previous"], "a later run of one image keeps the other's result"
    text = format_table(report)
    row = next(line for line in text.splitlines() if line.startswith("| 01_intro"))
    assert "FAIL" in row and "cell 3" in row and "has no attribute 'load'" in row and "PASS" in row
    assert "metadata fix" in row and table.read_text(encoding="utf-8") == text


def test_colab_check_reports_the_first_failing_cell_of_a_notebook(tmp_path):
    """The runner's kernel plumbing, with this environment standing in for a Colab runtime."""
    import nbformat

    from grader.build.colab_check import run_notebook

    runtime = tmp_path / "runtime"
    (runtime / "bin").mkdir(parents=True)
    python = runtime / "bin" / "python"  # a venv's python finds its packages by its own path: call ours
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    python.chmod(0o755)
    (runtime / "ipython").mkdir()
    cells = [nbformat.v4.new_code_cell("import os\nprint('quick', os.environ.get('COURSE_QUICK'), "
                                       "os.environ.get('TF_USE_LEGACY_KERAS'))"),
             nbformat.v4.new_code_cell("1 / 0"), nbformat.v4.new_code_cell("print('never')")]
    log = tmp_path / "kernel.log"
    result = run_notebook(nbformat.v4.new_notebook(cells=cells), runtime, quick=True, timeout=120, log=log)
    assert result["status"] == "failed" and result["failed_cell"] == 2, result
    assert "ZeroDivisionError" in result["error"] and result["cells"] == 3
    assert cells[0].outputs[0]["text"].split() == ["quick", "1", "None"], "Colab sets no TF_USE_LEGACY_KERAS"
    assert not cells[2].get("outputs"), "nothing runs after the failing cell"
    passed = run_notebook(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), runtime,
                          quick=False, timeout=120)
    assert passed["status"] == "passed" and passed["failed_cell"] is None


def test_colab_check_names_the_colab_packages_the_setup_cell_replaced():
    import nbformat

    from grader.build.colab_check import ColabImage, replaced_packages

    image = ColabImage("current", "d", "r", "2026-08-19", "3.13.15", "i",
                       {"fastapi": "0.141.1", "tensorflow-metadata": "1.21.0", "numpy": "2.1.3"})
    setup = nbformat.v4.new_code_cell("...")
    setup.outputs = [nbformat.v4.new_output("stream", name="stdout", text=(
        "Successfully installed annoy-1.17.3 fastapi-0.165.0 numpy-2.1.3\n"
        "Successfully installed tensorflow_metadata-1.17.3\n"))]
    notebook = nbformat.v4.new_notebook(cells=[setup])
    assert replaced_packages(notebook, image) == ["fastapi 0.141.1 -> 0.165.0",
                                                  "tensorflow_metadata 1.21.0 -> 1.17.3"]


def test_version_floors_admit_what_every_recorded_colab_image_ships():
    """A floor above Colab's own version would make the setup cell upgrade Colab's copy."""
    from packaging.version import Version

    from grader.build.colab_check import load_images

    for image in load_images():
        for name, floor in COLAB_FLOORS.items():
            assert name in image.packages, f"{image.name}: {name} is not in grader/build/colab_images.toml"
            assert Version(image.packages[name]) >= Version(floor), (
                f"{image.name} ships {name} {image.packages[name]}, below the floor {floor}")
