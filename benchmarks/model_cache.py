"""A cache of exported course models, used only by the benchmarks (not by any lesson).

:func:`cached_course_models` trains and exports the course models once
(:func:`movierec.api.export_course_models`) and reuses the export while the
library sources, TensorFlow's version, the budget and the seed stay the same. It lives
here, not in the ``movierec`` library, because no lesson and no student needs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from movierec.api import export_course_models
from movierec.serving.export import model_config_text


def _library_fingerprint(quick: bool, seed: int) -> str:
    """A hash of everything an export depends on: library sources, versions, budget, seed."""
    import movierec

    package = Path(movierec.__file__).resolve().parent
    digest = hashlib.sha256(f"{quick}|{seed}|{_tensorflow_version()}|{sys.version_info[:2]}".encode())
    for name in ("dataset.py", "preprocessing.py", "retrieval.py", "ranking.py", "annoy.py"):
        source = package / name
        digest.update(source.read_bytes() if source.is_file() else b"-")
    for source in sorted((package / "serving").glob("*.py")):  # the serving package, every module
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def cached_course_models(cache_root: str | Path | None = None, *, quick: bool, seed: int = 42) -> Path:
    """A model base exported by :func:`movierec.api.export_course_models`, reused while nothing changed.

    The cache key hashes the library sources, TensorFlow's version, the budget and the
    seed, so an edit to any lesson's exported code retrains. Default location:
    ``build/cache/serving/`` beside the ``movierec`` package (``MOVIEREC_CACHE`` overrides).
    """
    import movierec

    default = Path(movierec.__file__).resolve().parent.parent / "build" / "cache" / "serving"
    root = Path(cache_root or os.environ.get("MOVIEREC_CACHE") or default)
    target = root / f"{'quick' if quick else 'full'}-{_library_fingerprint(quick, seed)}"
    if (target / "complete.json").is_file():
        return target
    staging = root / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    started = time.perf_counter()
    info = export_course_models(staging, quick=quick, seed=seed)
    seconds = round(time.perf_counter() - started, 1)
    meta = {"version": info["version"], "seconds": seconds, "quick": quick, "seed": seed}
    (staging / "complete.json").write_text(json.dumps(meta), encoding="utf-8")
    try:
        os.replace(staging, target)
    except OSError:  # another process finished the same export first; keep theirs
        shutil.rmtree(staging, ignore_errors=True)
    # The absolute paths in models.config were written for the staging directory.
    (target / "models.config").write_text(model_config_text(str(target.resolve())), encoding="utf-8")
    return target


def _tensorflow_version() -> str:
    import tensorflow as tf

    return tf.__version__
