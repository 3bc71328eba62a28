"""Isolation for student code during autograding (Linux; full isolation needs root).

Two layers, both set up by trusted code before any student code runs:

* **The grading worker** (:mod:`grader.grading.pool`) moves itself into a new, empty network
  namespace (:func:`enter_network_namespace`): only a private loopback exists, so the
  kernel can talk to nbgrader over ``127.0.0.1`` but reaches no other machine.
* **The kernel** is started through a kernelspec whose ``argv`` runs
  ``python -m grader.sandbox kernel SPEC -- <ipykernel command>`` (:func:`kernel_main`).
  Still as root, the wrapper enters new mount, PID and IPC namespaces and mounts empty
  private ``/tmp``, ``/var/tmp`` and ``/dev/shm``. What the kernel needs — this
  checkout, the venv, Python, the MovieLens data (:func:`needed_paths`) — is then bound
  back, read-only, at its own path, wherever it lives: a checkout under ``/tmp`` (CI
  runners clone there) or under ``/root`` works like one anywhere else. The wrapper
  copies the notebook's working folder into ``/tmp/work`` (the kernel's private working
  copy), covers every path listed in the spec's ``hide`` (the instructor's
  ``solutions/``, ``build/``, ``.git/``, the grading workspace with its gradebooks and
  results, the submissions folder, the grades file, the feedback folder) with an empty
  read-only mount, mounts a ``/proc`` that shows only the kernel's own processes, sets
  resource limits (address space, file size, process count, no core dumps), drops to
  an unprivileged uid of its own with ``no_new_privs``, and only then ``exec``\\ s
  ipykernel. The environment is rebuilt from scratch: fixed ``PYTHONHASHSEED``, one
  BLAS/TensorFlow thread, the course variables and this checkout on ``PYTHONPATH``,
  nothing else.

When isolation is not possible (not root, not Linux, or a container that forbids
``unshare``/``mount``), :func:`isolation_problem` says why, the grader prints that as a
warning, and the wrapper only sets the resource limits and the clean environment; every
result records ``"sandbox": "limits-only"`` (``"isolated"`` otherwise) so the instructor
knows.

This module is imported by the kernel wrapper, so it imports nothing heavy.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import resource
import shutil
import signal
import socket
import stat
import struct
import sys
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

KERNEL_NAME = "grader-sandbox"
# What compiled libraries write straight to file descriptors 1 and 2 (TensorFlow's C++ log:
# "E0000 ... node_def_util.cc ...") stays in the kernel's log instead of becoming notebook
# output: nbgrader scores a test cell with any stderr output 0, so a library's log line
# during a test would cost the student its points. What Python code prints still shows.
NATIVE_OUTPUT_OFF = "--IPKernelApp.capture_fd_output=False"
COURSE_ROOT = Path(__file__).resolve().parents[2]  # the checkout this grader runs from
WORK = "/tmp/work"  # the kernel's working folder inside its namespace
HOME = "/tmp/home"
CONNECTION = "/tmp/kernel.json"
# Variables passed from the grader's environment to the kernel (everything else is dropped).
PASSED_ENV = ("COURSE_QUICK", "LANG", "LC_ALL", "TZ")


@dataclass
class SandboxSpec:
    """What the kernel wrapper does; written as JSON next to the kernelspec."""

    isolate: bool = True
    uid: int = 62000
    gid: int = 62000
    hide: list[str] = field(default_factory=list)
    memory_bytes: int = 8 << 30  # RLIMIT_AS: TensorFlow alone maps about 3 GB
    file_bytes: int = 1 << 30  # RLIMIT_FSIZE: the largest file the kernel may write
    nproc: int = 4096  # RLIMIT_NPROC for the kernel's uid (threads count too)
    tmp_bytes: int = 1 << 30  # size of the private /tmp (a tmpfs, so it is memory)
    seed: int = 42
    threads: int = 1
    guard: bool = True
    env: dict[str, str] = field(default_factory=dict)
    expose: list[str] = field(default_factory=list)  # more folders the kernel must be able to read

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: str | Path) -> SandboxSpec:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc().unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    _check(_libc().mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def prctl(option: int, value: int) -> None:
    _check(_libc().prctl(option, ctypes.c_ulong(value), 0, 0, 0), "prctl")


def loopback_up() -> None:
    """Bring up ``lo`` in the current network namespace (a new one starts with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")  # replaced by empty tmpfs mounts inside the sandbox


def _probe_namespaces() -> str | None:
    """Why this process cannot build the sandbox, or ``None`` when it can (tried in a child)."""
    if sys.platform != "linux":
        return f"namespaces are Linux-only (this is {sys.platform})"
    if os.geteuid() != 0:
        return "the grader does not run as root (mount namespaces and switching uid need it)"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # try it in a throw-away child
        os.close(read)
        try:
            unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET)
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=4k")
            loopback_up()
            os._exit(0)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write, str(exc).encode()[:500])
            os._exit(1)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        message = fh.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return f"creating namespaces failed ({message or 'no message'}); in a container, allow unshare and mount"


@cache
def isolation_problem() -> str | None:
    """``None`` when kernels can be isolated; otherwise the reason, for the instructor to read."""
    return _probe_namespaces()


def can_isolate() -> bool:
    """True when this process may create the namespaces (root on Linux, namespaces enabled)."""
    return isolation_problem() is None


def enter_network_namespace() -> None:
    """Move this process (and every process it starts later) into a new network namespace."""
    unshare(CLONE_NEWNET)
    loopback_up()


def kernel_env(spec: SandboxSpec, home: str, tmp: str) -> dict[str, str]:
    """The kernel's environment, built from scratch: nothing of the grader's leaks in."""
    bindir = str(Path(sys.executable).parent)
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    threads = str(spec.threads)
    env.update({
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        # The kernel imports the course library (and the guard) from the checkout that grades,
        # even when the venv's editable install points at another checkout.
        "PYTHONPATH": str(COURSE_ROOT),
        "HOME": home,
        "TMPDIR": tmp,
        "IPYTHONDIR": f"{home}/.ipython",
        "MPLCONFIGDIR": f"{home}/.matplotlib",
        "XDG_CACHE_HOME": f"{home}/.cache",
        "PYTHONHASHSEED": str(spec.seed),
        "COURSE_SEED": str(spec.seed),
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": threads,
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    })
    # The data folder by its real path (a symlink under /tmp is gone in the private /tmp),
    # and explicitly even when unset: the kernel's home is not the grader's.
    env["TFDS_DATA_DIR"] = str(data_dir())
    env.setdefault("LANG", "C.UTF-8")
    env.update(spec.env)
    return env


def set_limits(spec: SandboxSpec) -> None:
    limits = [
        (resource.RLIMIT_AS, spec.memory_bytes),
        (resource.RLIMIT_FSIZE, spec.file_bytes),
        (resource.RLIMIT_NPROC, spec.nproc),
        (resource.RLIMIT_CORE, 0),
    ]
    for which, value in limits:
        if value and value > 0:
            soft, hard = resource.getrlimit(which)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (value, value))


def data_dir() -> str:
    """TFDS's data folder, symlinks resolved (:func:`grader.grading.course_data.data_dir`, without its imports)."""
    return os.path.realpath(os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets"))


def needed_paths(spec: SandboxSpec) -> list[str]:
    """Folders the kernel must read: Python, the venv, the course checkout, the data.

    Any of them may live under ``/tmp`` (CI runners clone there) or under a folder other
    users cannot enter (``/root``): :func:`kernel_main` binds each one back, read-only,
    into the kernel's mount namespace, wherever it is.
    """
    candidates = [sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable)), str(COURSE_ROOT),
                  str(data_dir()), *spec.expose]
    found = {os.path.realpath(p) for p in candidates if p and os.path.isdir(p)}
    # A folder inside another needed folder comes back with it (binds are recursive).
    outer = [p for p in found if not any(p != q and p.startswith(q.rstrip(os.sep) + os.sep) for q in found)]
    return sorted(outer, key=lambda p: (p.count(os.sep), p))


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def blocking_ancestor(path: str) -> str | None:
    """The highest folder above ``path`` that other users cannot enter (e.g. ``/root``).

    Must be called before the private ``/tmp`` is mounted (it stats the real folders).
    """
    parts = Path(path).parts
    for i in range(2, len(parts)):
        ancestor = os.path.join(*parts[:i])
        if not os.stat(ancestor).st_mode & stat.S_IXOTH:
            return ancestor
    return None


def reveal(path: str, fd: int) -> None:
    """Bind the folder open as ``fd`` at ``path`` again, read-only, if a mount covered it."""
    try:
        here = os.stat(path)
        there = os.fstat(fd)
        if (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino):
            return
    except OSError:
        pass
    os.makedirs(path, mode=0o755, exist_ok=True)
    mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
    mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def hide_path(path: str) -> None:
    """Cover ``path`` with something empty and read-only (inside our mount namespace)."""
    if os.path.islink(path) or not os.path.exists(path):
        return
    if os.path.isdir(path):
        mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0755")
    else:
        mount("/dev/null", path, None, MS_BIND)


def _copy_tree(src: str, dst: str) -> None:
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)


def _connection_index(argv: list[str]) -> int:
    for i, arg in enumerate(argv[:-1]):
        if arg == "-f":
            return i + 1
    raise SystemExit("grader.sandbox.isolation: the kernel command has no '-f {connection_file}'")


def _exec(argv: list[str], env: dict[str, str]) -> None:
    os.execve(argv[0], argv, env)


def kernel_main(spec_path: str, argv: list[str]) -> None:
    """Start the kernel ``argv`` inside the sandbox described by ``spec_path``; never returns."""
    spec = SandboxSpec.read(spec_path)
    conn_at = _connection_index(argv)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the grader (worker) dies → so does the kernel
    parent = int(os.environ.get("JPY_PARENT_PID") or 0)  # jupyter_client's pid, set when it launched us
    if parent and os.getppid() != parent:  # it died before prctl: nobody would ever stop this kernel
        os._exit(1)
    if not (spec.isolate and can_isolate()):
        set_limits(spec)
        env = kernel_env(spec, home=os.environ.get("HOME", "/tmp"), tmp=os.environ.get("TMPDIR", "/tmp"))
        _exec(argv, env)
    connection = Path(argv[conn_at]).read_text(encoding="utf-8")
    cwd_fd = os.open(os.getcwd(), os.O_RDONLY | os.O_DIRECTORY)
    env = kernel_env(spec, home=HOME, tmp="/tmp")  # resolves symlinks (the data folder) before /tmp is replaced
    needed = needed_paths(spec)
    blocked = sorted({a for a in map(blocking_ancestor, needed) if a and not _under(a, PRIVATE_TMP)})
    unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Opened in the new namespace (a bind mount's source must be in it), before anything covers them.
    needed_fds = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in needed}
    for tmp in PRIVATE_TMP:
        if os.path.isdir(tmp):
            mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec.tmp_bytes},mode=1777")
    for folder in blocked:  # e.g. /root: hides its contents; the needed folders inside come back below
        mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path, fd in needed_fds.items():  # the course checkout, the venv, Python, the data: read-only
        reveal(path, fd)
        os.close(fd)
    _copy_tree(f"/proc/self/fd/{cwd_fd}", WORK)  # the fd still reaches the now-covered folder
    os.close(cwd_fd)
    os.makedirs(HOME, exist_ok=True)
    Path(CONNECTION).write_text(connection, encoding="utf-8")
    for path in spec.hide:
        hide_path(path)
    for root in (WORK, HOME):
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                os.lchown(name, spec.uid, spec.gid)
    os.chown(CONNECTION, spec.uid, spec.gid)
    os.chmod(CONNECTION, 0o600)
    argv = list(argv)
    argv[conn_at] = CONNECTION
    child = os.fork()
    if child == 0:
        try:  # PID 1 of the new PID namespace: when it exits, everything it started dies
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            set_limits(spec)
            os.setgroups([])
            os.setgid(spec.gid)
            os.setuid(spec.uid)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # cleared by setuid, so set again
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            os.chdir(WORK)
            log = os.open("/tmp/kernel.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(log, 1)  # raw writes to fd 1/2 stay in the sandbox's size-limited /tmp
            os.dup2(log, 2)
            os.close(log)
            _exec(argv, env)
        except BaseException as exc:  # noqa: BLE001 - report and die, never fall through
            print(f"grader.sandbox.isolation: cannot start the kernel: {exc}", file=sys.stderr)
        os._exit(127)
    # The parent stays as a thin shim: jupyter_client signals the whole process group
    # (SIGINT reaches the kernel directly); forward termination, mirror the exit status.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, lambda s, _f: os.kill(child, s))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def write_kernelspec(folder: Path, spec_path: Path) -> Path:
    """A kernelspec ``grader-sandbox`` under ``folder/kernels/`` that starts ipykernel sandboxed.

    Put ``folder`` first on ``JUPYTER_PATH`` so jupyter_client finds it.
    """
    spec = SandboxSpec.read(spec_path)
    python = sys.executable
    argv = [python, "-m", "grader.sandbox", "kernel", str(spec_path), "--",
            python, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}",
            "--HistoryManager.hist_file=:memory:", NATIVE_OUTPUT_OFF]
    if spec.guard:
        argv.append(f"--IPKernelApp.exec_lines=__import__('grader.sandbox.kernel_guard', fromlist=['install'])"
                    f".install({spec.seed})")
    target = folder / "kernels" / KERNEL_NAME / "kernel.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    # The wrapper imports this module from the checkout that grades, whatever the venv's editable install says.
    kernel = {"argv": argv, "display_name": "Python 3 (grading sandbox)", "language": "python",
              "interrupt_mode": "signal", "metadata": {"debugger": False}, "env": {"PYTHONPATH": str(COURSE_ROOT)}}
    target.write_text(json.dumps(kernel, indent=1), encoding="utf-8")
    return target


def main(argv: list[str]) -> None:
    if len(argv) >= 3 and argv[0] == "kernel" and "--" in argv:
        split = argv.index("--")
        kernel_main(argv[1], argv[split + 1:])
    raise SystemExit("usage: python -m grader.sandbox kernel SPEC.json -- KERNEL-COMMAND...")


if __name__ == "__main__":
    main(sys.argv[1:])
