"""The course's datasets: found, and downloaded if need be, by the grader before any kernel runs.

A sandboxed grading kernel has no network, a private home folder and a read-only view of
the data folder (:mod:`grader.sandbox.isolation`), so a lesson's ``tfds.load(...)`` inside it can
only read what is already there. The grader, which is trusted and online, therefore
makes sure the datasets the course library loads are in the data folder first: TFDS's
own ``TFDS_DATA_DIR`` when set (the Makefile points it at ``../shared/tensorflow_datasets``
when that exists), else TFDS's default ``~/tensorflow_datasets``. This module imports
nothing heavy; the download, when needed, runs in a subprocess (it imports TensorFlow).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from grader.lessons import LIBRARY, ROOT

DATASET_MODULE = LIBRARY / "dataset.py"  # generated from lesson 02: RATINGS_NAME, MOVIES_NAME


def data_dir() -> Path:
    """The TFDS data folder kernels read, symlinks resolved (a symlink under /tmp would be hidden)."""
    configured = os.environ.get("TFDS_DATA_DIR") or str(Path.home() / "tensorflow_datasets")
    return Path(os.path.realpath(configured))


def dataset_names(module: Path = DATASET_MODULE) -> list[str]:
    """The ``*_NAME`` string constants of the course's dataset module, e.g. ``movielens/100k-ratings``."""
    if not module.exists():
        return []
    names = []
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            if any(isinstance(t, ast.Name) and t.id.endswith("_NAME") for t in node.targets):
                names.append(node.value.value)
    return names


def missing(folder: Path | None = None) -> list[str]:
    folder = folder or data_dir()
    return [name for name in dataset_names() if not (folder / name).is_dir()]


def ensure_datasets() -> Path:
    """Download whatever dataset is missing into :func:`data_dir`; return that folder.

    Raises ``RuntimeError`` with the way out when the download fails (e.g. offline).
    """
    folder = data_dir()
    absent = missing(folder)
    if not absent:
        return folder
    print(f"downloading {', '.join(absent)} into {folder} (grading kernels have no network)", file=sys.stderr)
    code = "import movierec.dataset as d; d.load_ratings(); d.load_movies()"
    env = {**os.environ, "TFDS_DATA_DIR": str(folder), "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": str(ROOT)}
    process = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    still = missing(folder)
    if process.returncode != 0 or still:
        tail = (process.stderr or process.stdout).strip().splitlines()[-3:]
        raise RuntimeError(
            f"the course data ({', '.join(still or absent)}) is not in {folder} and could not be downloaded: "
            f"{' | '.join(tail) or 'no message'}. Grading kernels have no network: set TFDS_DATA_DIR to a folder "
            "that has MovieLens 100k (e.g. ../shared/tensorflow_datasets), or run once online.")
    return folder
