"""Environment set-up that every lesson's first cell runs.

TensorFlow Recommenders 0.7 is written for Keras 2, while TensorFlow 2.16+ ships
Keras 3. The ``tf-keras`` package provides Keras 2, and TensorFlow uses it only if
``TF_USE_LEGACY_KERAS=1`` is set *before* TensorFlow is first imported, so this
module sets it without importing TensorFlow itself.
"""

from __future__ import annotations

import os
import random
import sys

DEFAULT_SEED = 42
COURSE_THREADS = 1  # TensorFlow threads of every reference run (make course's kernels) and of every lesson


def usable_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def configure_environment() -> None:
    """Select Keras 2 and quieten TensorFlow's C++ start-up chatter."""
    if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise RuntimeError(
            "TensorFlow was imported before the lesson's setup cell ran, so it is "
            "using Keras 3 and TensorFlow Recommenders will fail. Restart the "
            "kernel/runtime and run the setup cell first."
        )
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("PYTHONHASHSEED", str(DEFAULT_SEED))


def seed_everything(seed: int = DEFAULT_SEED, tensorflow: bool = True) -> None:
    """Seed Python, NumPy and (optionally) TensorFlow so reported numbers repeat.

    ``tensorflow=False`` keeps numpy-only lessons fast: importing TensorFlow costs
    seconds. Op determinism makes TensorFlow's CPU kernels order their reductions
    the same way on every run, which is what makes a lesson's metrics repeatable.
    """
    random.seed(seed)
    import numpy as np

    np.random.seed(seed)
    if tensorflow:
        configure_environment()
        import tensorflow as tf

        tf.keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()


def pin_threads(threads: int = COURSE_THREADS) -> None:
    """Run TensorFlow's ops on ``threads`` threads, so a student's run prints the lesson's numbers.

    Op determinism fixes the order of a kernel's sums for one thread count, not across
    counts: a sum split over two threads rounds differently, and training amplifies the
    difference (a lesson 05 ranking model trained with the same seed ends with different
    weights on 1 and on 2 threads). The reference runs use ``COURSE_THREADS``; without
    this, a laptop or Colab would use one thread per core and print other numbers. A
    second thread gains little on the course's small models.

    Call it before TensorFlow runs its first op; later (the setup cell run again) it
    keeps the count already set, and raises only if that differs.
    """
    import tensorflow as tf

    for name, getter, setter in (
        ("intra-op", tf.config.threading.get_intra_op_parallelism_threads,
         tf.config.threading.set_intra_op_parallelism_threads),
        ("inter-op", tf.config.threading.get_inter_op_parallelism_threads,
         tf.config.threading.set_inter_op_parallelism_threads),
    ):
        try:
            setter(threads)
        except RuntimeError as exc:  # the runtime already started with another count
            raise RuntimeError(
                f"TensorFlow already runs {getter()} {name} threads and cannot switch to {threads} once it has run "
                "an op: restart the kernel/runtime and run the setup cell first"
            ) from exc


QUICK_TRAINING_ROWS = 16_384


def quick_mode() -> bool:
    """True when ``COURSE_QUICK=1``: the test suite runs lessons with small budgets.

    Lessons use it to shorten training (fewer epochs, and the course's trainers read at
    most ``QUICK_TRAINING_ROWS`` training rows) so ``make test`` stays fast: a quick run
    checks that every cell runs and every exercise is graded, not how good a model gets.
    ``make course`` runs the full budgets whose numbers the lesson text quotes.
    """
    return os.environ.get("COURSE_QUICK", "") == "1"


def training_slice(columns: dict) -> dict:
    """The training columns a trainer reads: all of them, or the first ``QUICK_TRAINING_ROWS`` in quick mode."""
    if not quick_mode():
        return columns
    return {key: value[:QUICK_TRAINING_ROWS] for key, value in columns.items()}


def setup_lesson(seed: int = DEFAULT_SEED, tensorflow: bool = True) -> None:
    """Everything a lesson's setup cell needs: Keras 2, quiet logs, the course's thread count, fixed seeds."""
    configure_environment()
    if tensorflow:
        pin_threads()
    seed_everything(seed, tensorflow=tensorflow)
    try:
        import matplotlib

        matplotlib.rcParams.update({"figure.figsize": (7, 4), "figure.dpi": 100})
    except ImportError:  # matplotlib is optional outside the lessons
        pass
