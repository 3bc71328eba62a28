"""The pinned environment keeps the grader's many short-lived processes cheap to start.

Every grading worker, ``python -m grader`` command and nbgrader command imports
``nbformat``, which imports ``jsonschema``. From 4.24, ``jsonschema`` imports
``rfc3987-syntax`` when it is installed, and that module compiles a Lark grammar at import
time (1.4–2.8 CPU seconds per process on the course machine). ``constraints.txt`` keeps
``jsonschema`` at 4.23.0, whose extras do not pull it in; this test fails if an upgrade
brings it back, instead of a slower test suite and autograder nobody can explain.
"""

from __future__ import annotations

import subprocess
import sys

SLOW_IMPORT = "rfc3987_syntax"


def test_importing_nbformat_does_not_compile_a_grammar():
    code = ("import sys, nbformat, jsonschema._format; "
            f"print({SLOW_IMPORT!r} in sys.modules, 'lark' in sys.modules)")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert process.stdout.split() == ["False", "False"], (
        f"importing nbformat now imports {SLOW_IMPORT} or lark (output: {process.stdout.strip()}): "
        "pin jsonschema below 4.24 in constraints.txt, or uninstall rfc3987-syntax")
