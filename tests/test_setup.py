"""The lesson setup cell pins TensorFlow's thread count, so a student's run prints the lesson's numbers.

Each case runs in a fresh interpreter: TensorFlow's thread count can only be set before its
runtime starts, which is exactly what these tests are about.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):  # what a student's machine has: no pin
        env.pop(name, None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_the_setup_cell_runs_tensorflow_on_the_course_thread_count_and_can_run_again():
    process = run(
        "from movierec.setup import COURSE_THREADS, setup_lesson\n"
        "setup_lesson()\n"
        "import tensorflow as tf\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads(),"
        " tf.config.threading.get_inter_op_parallelism_threads(), COURSE_THREADS)\n"
        "print(float(tf.reduce_sum(tf.ones(3))))\n"
        "setup_lesson()  # the setup cell run again, after ops ran\n"
        "print('again')\n"
    )
    assert process.returncode == 0, process.stderr[-2000:]
    assert process.stdout.split() == ["1", "1", "1", "3.0", "again"]


def test_a_runtime_started_with_other_threads_is_an_error_that_says_to_restart():
    process = run(
        "import tensorflow as tf\n"
        "tf.config.threading.set_intra_op_parallelism_threads(2)\n"
        "print(float(tf.reduce_sum(tf.ones(3))))  # the runtime starts with 2 threads\n"
        "from movierec.setup import setup_lesson\n"
        "setup_lesson()\n"
    )
    assert process.returncode != 0
    assert "TensorFlow already runs 2 intra-op threads" in process.stderr
    assert "restart the kernel/runtime and run the setup cell first" in process.stderr


def test_numpy_only_lessons_do_not_import_tensorflow():
    process = run("import sys\nfrom movierec.setup import setup_lesson\nsetup_lesson(tensorflow=False)\n"
                  "print('tensorflow' in sys.modules)")
    assert process.returncode == 0, process.stderr[-2000:]
    assert process.stdout.split() == ["False"]
