"""The code, the library and both editions of every lesson are ruff-clean."""

from __future__ import annotations

import subprocess
import sys

from grader.lessons import ROOT


def test_ruff_is_clean():
    process = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert process.returncode == 0, process.stdout + process.stderr
