"""The sandbox: what keeps a student's kernel from reaching what it must not.

- :mod:`grader.sandbox.isolation` — outside the kernel: the allow-list view (bubblewrap), an
  unprivileged uid, resource limits, the kernelspec that starts every grading kernel through
  the wrapper (``python -m grader.sandbox kernel ...``).
- :mod:`grader.sandbox.cgroups` — a memory and pids cgroup per kernel (tmpfs and children included).
- :mod:`grader.sandbox.uids` — each grading run leases its own range of kernel uids.
- :mod:`grader.sandbox.kernel_guard` — inside the kernel: seeds, and undoing tampering before each test.

Kept free of heavy imports: the kernel wrapper imports this package before it starts ipykernel.
"""
