"""One memory (and process-count) cgroup per grading kernel, so limits hold for the kernel as a whole.

``RLIMIT_AS`` bounds one process's address space, not what a kernel costs the machine: an
audit under ``--memory 1G`` had tmpfs writes take 1.6 GiB of host RAM (tmpfs pages belong to
no process) and 8 forked children 1.4 GiB. A memory cgroup charges every page the kernel's
processes touch — heap, page cache and the tmpfs pages they write — to one budget.

Where the grader runs decides what is possible, so :func:`limits_mode` probes once:

* ``"cgroup-v2"``: the unified hierarchy with its ``memory`` and ``pids`` controllers
  available in this process's own cgroup (a delegated sub-tree); one child per kernel with
  ``memory.max``, ``memory.swap.max = 0`` and ``pids.max``;
* ``"cgroup-v1"``: the ``memory`` and ``pids`` hierarchies mounted writable; one child per
  kernel under this process's own cgroup in each, with ``memory.limit_in_bytes`` (and the
  swap-inclusive ``memory.memsw.limit_in_bytes``) and ``pids.max``;
* ``"rlimits"``: neither is writable (not root, a container without cgroup delegation);
  the kernel keeps only its per-process ``RLIMIT``\\ s and the size limit of its tmpfs.

The wrapper (:func:`grader.sandbox.isolation.kernel_main`) creates the kernel's cgroup,
starts the sandbox inside it and removes it when the kernel ends; a cgroup left behind by a
wrapper that was killed is removed by the next one. Imported by the kernel wrapper: no
heavy imports.
"""

from __future__ import annotations

import os
import signal
import time
from functools import cache
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "grader-kernel-"  # + the wrapper's pid: a cgroup whose wrapper is gone is stale
MODES = ("cgroup-v2", "cgroup-v1", "rlimits")


def own_cgroups(text: str | None = None) -> dict[str, str]:
    """This process's cgroup per hierarchy, from ``/proc/self/cgroup``: ``{"memory": "/a/b", "": "/"}``.

    The cgroup v2 entry is keyed ``""`` (its line is ``0::/path``).
    """
    if text is None:
        text = Path("/proc/self/cgroup").read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            found[controller] = parts[2]
    return found


def cgroup2_mount(mountinfo: str | None = None) -> Path | None:
    """Where the unified (v2) hierarchy is mounted, if it is."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
        except OSError:
            return None
    for line in mountinfo.splitlines():
        fields = line.split(" - ", 1)
        if len(fields) == 2 and fields[1].split(" ", 1)[0] == "cgroup2":
            return Path(fields[0].split(" ")[4])
    return None


def _write(path: Path, value: str | int) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(str(value))


class KernelCgroup:
    """The cgroup(s) of one kernel: created with its limits, joined by the sandbox, removed at the end."""

    def __init__(self, mode: str, folders: list[Path]):
        self.mode = mode
        self.folders = folders

    @classmethod
    def create(cls, mode: str, memory_bytes: int, pids: int, root: Path = CGROUP_ROOT,
               name: str | None = None) -> KernelCgroup:
        """Make this kernel's cgroup in ``mode`` (``cgroup-v2`` / ``cgroup-v1``); raises ``OSError`` if it cannot."""
        name = name or f"{PREFIX}{os.getpid()}"
        parents = parent_folders(mode, root)
        if not parents:
            raise OSError(f"no writable {mode} hierarchy")
        folders = []
        try:
            for parent in parents:
                sweep_stale(parent)
                folder = parent / name
                folder.mkdir()
                folders.append(folder)
            group = cls(mode, folders)
            group._set_limits(memory_bytes, pids)
            return group
        except OSError:
            cls(mode, folders).remove()
            raise

    def _set_limits(self, memory_bytes: int, pids: int) -> None:
        # 0 or less means no limit (as for the RLIMITs): never a cgroup that kills the kernel at once.
        memory: str | int = memory_bytes if memory_bytes > 0 else ("max" if self.mode == "cgroup-v2" else -1)
        pids_max: str | int = pids if pids > 0 else "max"
        for folder in self.folders:
            if self.mode == "cgroup-v2":
                _write(folder / "memory.max", memory)
                if (folder / "memory.swap.max").exists():
                    _write(folder / "memory.swap.max", 0)  # the limit is RAM + swap, not RAM only
                _write(folder / "pids.max", pids_max)
            elif (folder / "memory.limit_in_bytes").exists():
                _write(folder / "memory.limit_in_bytes", memory)
                if (folder / "memory.memsw.limit_in_bytes").exists():  # after the RAM limit (must be >= it)
                    _write(folder / "memory.memsw.limit_in_bytes", memory)
            else:
                _write(folder / "pids.max", pids_max)

    def join(self, pid: int = 0) -> None:
        """Move ``pid`` (0: this process) into the cgroup; what it starts later is charged there too."""
        for folder in self.folders:
            _write(folder / "cgroup.procs", pid or os.getpid())

    def peak_bytes(self) -> int | None:
        """The most memory the kernel held at once (diagnostics and tests)."""
        for folder in self.folders:
            for name in ("memory.peak", "memory.max_usage_in_bytes"):
                try:
                    return int((folder / name).read_text())
                except (OSError, ValueError):
                    continue
        return None

    def remove(self) -> None:
        """Kill whatever is still in the cgroup and remove it (a kernel's leftovers never outlive it)."""
        for folder in reversed(self.folders):
            for _ in range(50):
                try:
                    pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)  # the killed processes are still exiting


def parent_folders(mode: str, root: Path = CGROUP_ROOT, self_cgroups: dict[str, str] | None = None,
                   v2_mount: Path | None = None) -> list[Path]:
    """The folders under which this process may create a kernel's cgroup in ``mode`` (empty: none)."""
    own = self_cgroups if self_cgroups is not None else own_cgroups()
    if mode == "cgroup-v1":
        found = []
        for controller in ("memory", "pids"):
            if controller not in own:
                return []
            folder = root / controller / own[controller].lstrip("/")
            if not (folder / "cgroup.procs").exists() or not os.access(folder, os.W_OK):
                return []
            found.append(folder)
        return found
    if mode == "cgroup-v2":
        mount = v2_mount if v2_mount is not None else cgroup2_mount()
        if mount is None or "" not in own:
            return []
        folder = mount / own[""].lstrip("/")
        try:
            available = (folder / "cgroup.controllers").read_text().split()
            enabled = (folder / "cgroup.subtree_control").read_text().split()
        except OSError:
            return []
        if not {"memory", "pids"} <= set(available):
            return []
        missing = [c for c in ("memory", "pids") if c not in enabled]
        if missing:  # fails (EBUSY) when this cgroup holds processes itself and is not the root
            try:
                _write(folder / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
            except OSError:
                return []
        return [folder]
    return []


def sweep_stale(parent: Path) -> None:
    """Remove kernel cgroups whose wrapper died without cleaning up (e.g. its worker was SIGKILLed).

    Only empty ones go: ``rmdir`` of a cgroup that still holds a process fails, so a live
    kernel is never touched.
    """
    for folder in parent.glob(f"{PREFIX}*"):
        pid = folder.name[len(PREFIX):]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # its wrapper still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        try:
            folder.rmdir()
        except OSError:
            pass


@cache
def limits_mode() -> str:
    """What per-kernel limits this machine allows: ``cgroup-v2``, ``cgroup-v1`` or ``rlimits``.

    Probed by creating (and removing) a real cgroup with limits, so a read-only or
    undelegated hierarchy is found here, not when a kernel starts.
    """
    for mode in ("cgroup-v2", "cgroup-v1"):
        try:
            KernelCgroup.create(mode, 64 << 20, 16, name=f"{PREFIX}{os.getpid()}-probe").remove()
            return mode
        except OSError:
            continue
    return "rlimits"
