"""``python -m grader.sandbox kernel SPEC -- KERNEL-COMMAND``: the kernelspec's wrapper (see :mod:`.isolation`)."""

import sys

from grader.sandbox.isolation import main

main(sys.argv[1:])
