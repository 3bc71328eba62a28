"""Per-run kernel uids: two graders on one machine never run kernels under the same uid.

A uid is what separates kernels outside their mount namespaces: ``RLIMIT_NPROC`` counts
per uid, signals and ``/proc`` access are checked per uid, and a file a kernel could leave
somewhere shared would carry it. Worker ``n`` of a run uses ``base + n``; the run leases
``base`` by holding an exclusive ``flock`` on ``/run/grader-uids/<base>.lock`` for as long
as it grades (the kernel drops the lock when the process dies, however it dies, so a
crashed grader never strands a range). Ranges are :data:`STRIDE` uids apart, below the
``nobody`` uid.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

STRIDE = 256  # uids per run: the most workers one run may have
CEILING = 65000  # ranges stay below 65534 (nobody) and 65535
LOCK_DIR = Path("/run/grader-uids")


def lock_dir() -> Path:
    """``/run/grader-uids`` (root, cleared at boot), else a folder under the system's temp folder."""
    for folder in (Path(os.environ.get("GRADER_UID_LOCKS") or LOCK_DIR),
                   Path(tempfile.gettempdir()) / "grader-uids"):
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            continue
    raise OSError("no writable folder for uid leases (/run/grader-uids or the temp folder)")


class UidLease:
    """A range ``[base, base + count)`` of uids held by this run until :meth:`release` (or exit)."""

    def __init__(self, base: int, count: int, fd: int | None):
        self.base = base
        self.count = count
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> UidLease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lease_uids(count: int, first: int = 62000, folder: Path | None = None) -> UidLease:
    """Lease the first free range of ``count`` (<= :data:`STRIDE`) uids at ``first + k * STRIDE``."""
    if count > STRIDE:
        raise ValueError(f"at most {STRIDE} workers per run (asked for {count})")
    folder = folder or lock_dir()
    base = first
    while base + STRIDE <= CEILING:
        fd = os.open(folder / f"{base}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # per open file: conflicts even within one process
        except BlockingIOError:
            os.close(fd)
            base += STRIDE
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return UidLease(base, count, fd)
    raise OSError(f"every uid range from {first} to {CEILING} is leased by another grading run "
                  f"(locks in {folder})")
