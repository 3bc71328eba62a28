"""What a run costs: the kernel's CPU seconds beside its wall seconds, in results and in make course's table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from grader.grading.course import format_table


def test_course_table_shows_each_lessons_wall_and_cpu_seconds():
    """The kernel's CPU seconds stand beside the wall seconds; a result stored before they existed shows a dash."""
    base = {"points": 10, "max_points": 10, "stub_points": 0, "run": "ran", "metrics": {}}
    rows = [dict(base, lesson="04_retrieval", seconds=184.1, cpu_seconds=150.2),
            dict(base, lesson="05_ranking", seconds=166.2, cpu_seconds=None)]
    lines = format_table(rows, []).splitlines()
    assert lines[0].split()[:3] == ["lesson", "seconds", "CPU"]
    assert lines[2].split()[:3] == ["04_retrieval", "184.1", "150.2"]
    assert lines[3].split()[:3] == ["05_ranking", "166.2", "-"]


def test_a_kernels_cpu_time_is_found_below_the_process_that_started_it():
    """A sandboxed kernel is the sandbox's child: the grader walks /proc down from the process it started."""
    from grader.grading.preprocessors import tree_cpu_seconds

    spin = ("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"
            "print('spun', flush=True)\ntime.sleep(60)")
    middle = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {spin!r}])"
    parent = subprocess.Popen([sys.executable, "-c", middle], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert parent.stdout.readline().strip() == "spun"
        assert tree_cpu_seconds(parent.pid) >= 0.6  # the grandchild's spin (and both interpreters' start-up)
        assert tree_cpu_seconds(parent.pid) > 0.5 + tree_cpu_seconds(parent.pid + 10**7)  # no such process: 0
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
