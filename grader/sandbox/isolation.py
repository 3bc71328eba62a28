"""Isolation for student code during autograding (Linux, root, bubblewrap).

Two layers, both set up by trusted code before any student code runs:

* **The grading worker** (:mod:`grader.grading.pool`) moves itself into a new, empty network
  namespace (:func:`enter_network_namespace`): only a private loopback exists, so the
  kernel can talk to nbgrader over ``127.0.0.1`` but reaches no other machine.
* **The kernel** is started through a kernelspec whose ``argv`` runs
  ``python -m grader.sandbox kernel SPEC -- <ipykernel command>`` (:func:`kernel_main`).
  The wrapper builds the kernel's view of the machine with bubblewrap as an **allow-list**
  (:func:`bwrap_args`): an empty root holding only the system folders a Python process
  needs, a few ``/etc`` files (a ``passwd`` without the host's users), Python, the venv,
  the course library (the checkout's ``movierec/`` and ``grader/`` packages — never the
  checkout, which holds ``solutions/``, ``.git`` and ``build/``) and the MovieLens data,
  all read-only; a new ``/proc`` (new PID namespace), a minimal ``/dev``, and private,
  size-limited tmpfs ``/tmp`` and ``/dev/shm``. Nothing else of the host exists in it,
  and no host path is writable. Deny-listing (covering secrets with empty mounts) missed
  whatever the list did not name — another checkout's ``solutions/``, another student's
  file in fan-out mode, ``/run/lock``; an allow-list cannot. The kernel's memory and
  process count are limited per kernel by a cgroup (:mod:`grader.sandbox.cgroups`) when the
  machine allows it, on top of per-process ``RLIMIT``\\ s. Inside the view,
  :func:`inner_main` copies the working folder to ``/tmp/work``, writes the connection
  file, drops to the run's own unprivileged uid (:mod:`grader.sandbox.uids`) with
  ``no_new_privs``, and only then ``exec``\\ s ipykernel. The environment is rebuilt from
  scratch: fixed ``PYTHONHASHSEED``, one BLAS/TensorFlow thread, the course variables and
  this checkout on ``PYTHONPATH``, nothing else.

When isolation is not possible (not root, not Linux, bubblewrap missing, or a container
that forbids namespaces), :func:`isolation_problem` says why, the grader prints that as a
warning, and the wrapper only sets the resource limits and the clean environment; every
result records ``"sandbox": "limits-only"`` (``"isolated"`` otherwise) and which limits
held (``"limits"``: ``cgroup-v2``, ``cgroup-v1`` or ``rlimits``) so the instructor knows.

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
import struct
import sys
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

CLONE_NEWNET = 0x40000000
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
WORK_SRC = "/sandbox/src"  # the notebook's working folder, read-only, inside the view (copied to WORK)
LIBRARY_PACKAGES = ("movierec", "grader")  # of the checkout, all a kernel imports from it
# Read-only in every kernel's view: what a Python process (and the libraries it loads) needs of the system.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl", "ca-certificates", "ca-certificates.conf",
             "localtime", "timezone", "nsswitch.conf", "host.conf", "gai.conf", "alternatives", "mime.types",
             "fonts", "os-release")
# What :func:`inner_main` needs as root inside the view (copy, chown, drop the uid); gone once it has.
INNER_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID")
SHM_BYTES = 256 << 20  # /dev/shm (multiprocessing's semaphores, joblib), a tmpfs like /tmp
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
    limits: str = "rlimits"  # "cgroup-v2" / "cgroup-v1": a cgroup per kernel on top of the RLIMITs
    log_output: bool = True  # raw fd 1/2 to /tmp/kernel.log (off: to the wrapper's own, for diagnostics)

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


def prctl(option: int, value: int) -> None:
    _check(_libc().prctl(option, ctypes.c_ulong(value), 0, 0, 0), "prctl")


def loopback_up() -> None:
    """Bring up ``lo`` in the current network namespace (a new one starts with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _probe_namespaces() -> str | None:
    """Why this process cannot give a worker its own network namespace, or ``None`` (tried in a child)."""
    if sys.platform != "linux":
        return f"namespaces are Linux-only (this is {sys.platform})"
    if os.geteuid() != 0:
        return "the grader does not run as root (namespaces and switching uid need it)"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # try it in a throw-away child
        os.close(read)
        try:
            unshare(CLONE_NEWNET)
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


def _probe_bwrap() -> str | None:
    """Why bubblewrap cannot build a kernel's view here, or ``None`` (a real sandbox runs ``python -c pass``)."""
    bwrap = find_bwrap()
    if bwrap is None:
        return ("bubblewrap is not installed (no bwrap on PATH); install it, e.g. `apt-get install bubblewrap`, "
                "and run the grader as root")
    import subprocess

    args = bwrap_args(bwrap, SandboxSpec(), work_src=None, files={}) + ["--", sys.executable, "-S", "-c", "pass"]
    try:
        process = subprocess.run(args, capture_output=True, text=True, timeout=60,
                                 env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap ({bwrap}) could not run: {exc}"
    if process.returncode != 0:
        why = (process.stderr.strip().splitlines() or ["no message"])[-1][:300]
        return f"bubblewrap ({bwrap}) cannot build the sandbox: {why}; in a container, allow unshare and mount"
    return None


@cache
def isolation_problem() -> str | None:
    """``None`` when kernels can be isolated; otherwise the reason, for the instructor to read."""
    return _probe_namespaces() or _probe_bwrap()


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


def find_bwrap() -> str | None:
    """The ``bwrap`` executable (``GRADER_BWRAP`` overrides the lookup; pointing it nowhere simulates its absence)."""
    override = os.environ.get("GRADER_BWRAP")
    if override is not None:
        return override if override and os.access(override, os.X_OK) else None
    return shutil.which("bwrap") or ("/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def library_paths() -> list[str]:
    """The course library the kernel imports: only the checkout's packages, never the checkout itself.

    The checkout also holds ``solutions/`` (the hidden tests), ``.git`` and ``build/``
    (gradebooks, results); an allow-list of two packages cannot leak them.
    """
    return [str(COURSE_ROOT / name) for name in LIBRARY_PACKAGES if (COURSE_ROOT / name).is_dir()]


def needed_paths(spec: SandboxSpec) -> list[str]:
    """Folders the kernel must read, outside the system folders: Python, the venv, the course library, the data.

    Each is bound read-only at its own (symlink-resolved) path, wherever it lives — under
    ``/tmp`` (CI runners clone there) or under ``/root`` (pyenv) alike; nothing around it
    comes along.
    """
    candidates = [sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable)),
                  *library_paths(), data_dir(), *spec.expose]
    found = {os.path.realpath(p) for p in candidates if p and os.path.isdir(p)}
    found = {p for p in found if not any(_inside(p, s) for s in SYSTEM_DIRS)}
    # A folder inside another needed folder comes with it (binds are recursive).
    outer = [p for p in found if not any(p != q and _inside(p, q) for q in found)]
    return sorted(outer, key=lambda p: (p.count(os.sep), p))


def bwrap_args(bwrap: str, spec: SandboxSpec, work_src: str | None, files: dict[str, int]) -> list[str]:
    """bubblewrap's command line for one kernel: an allow-list view of the machine, nothing else.

    The view is an empty root (read-only once built) holding: the system folders a Python
    process needs and a few ``/etc`` files, read-only; :func:`needed_paths`, read-only; a
    new ``/proc`` (new PID namespace) and a minimal ``/dev``; private, size-limited tmpfs
    ``/tmp`` and ``/dev/shm`` (``/var/tmp`` points to ``/tmp``); the notebook's working
    folder read-only at :data:`WORK_SRC` (copied into ``/tmp/work`` by :func:`inner_main`);
    ``files`` (destination → readable fd: ``/etc/passwd`` without the host's users, …).
    Paths in ``spec.hide`` that fall inside a bound folder are covered again. The network
    namespace is the worker's (loopback only). bubblewrap sets ``no_new_privs`` and kills
    the sandbox when the wrapper dies; the command starts as root with only the
    capabilities :func:`inner_main` needs to prepare ``/tmp`` and drop to ``spec.uid``.
    """
    args = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "grader",
            "--unshare-cgroup-try", "--die-with-parent", "--cap-drop", "ALL"]
    for cap in INNER_CAPS:
        args += ["--cap-add", cap]
    for folder in SYSTEM_DIRS:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for dest, fd in files.items():
        args += ["--perms", "0644", "--ro-bind-data", str(fd), dest]
    tmp_bytes = max(1 << 20, min(spec.tmp_bytes, spec.memory_bytes) if spec.memory_bytes > 0 else spec.tmp_bytes)
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(tmp_bytes), "--tmpfs", "/tmp", "--chmod", "1777", "/tmp",
             "--size", str(min(tmp_bytes, SHM_BYTES)), "--tmpfs", "/dev/shm", "--chmod", "1777", "/dev/shm",
             "--symlink", "../tmp", "/var/tmp"]
    bound = needed_paths(spec)
    for path in bound:
        args += ["--ro-bind", path, path]
    if work_src is not None:
        args += ["--ro-bind", work_src, WORK_SRC]
    # bwrap makes the folders leading to a bind 0700 (root's): let the kernel's uid walk them, nothing more.
    targets = [*bound, *([WORK_SRC] if work_src is not None else [])]
    ancestors = {str(p) for path in targets for p in Path(path).parents if str(p) != "/"}
    for folder in sorted(ancestors - set(bound) - {"/tmp", "/dev"}, key=lambda p: (p.count(os.sep), p)):
        args += ["--chmod", "0755", folder]
    for path in spec.hide:  # a secret inside an allowed folder (e.g. a results folder in the data folder)
        if os.path.islink(path) or not os.path.exists(path) or not any(_inside(path, b) for b in bound):
            continue
        if os.path.isdir(path):
            args += ["--perms", "0000", "--tmpfs", path, "--remount-ro", path]
        else:
            args += ["--ro-bind", "/dev/null", path]
    return args + ["--remount-ro", "/", "--chdir", "/"]


def _pipe_with(data: bytes) -> int:
    """A readable fd that yields ``data`` (at most a pipe's buffer, written before anyone reads)."""
    if len(data) > 60_000:
        raise ValueError(f"{len(data)} bytes do not fit a pipe's buffer")
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    os.set_inheritable(read, True)
    return read


def _etc_files(spec: SandboxSpec) -> dict[str, bytes]:
    """``/etc/passwd``, ``/etc/group`` and ``/etc/hosts`` of the view: the kernel's user, no host users."""
    return {
        "/etc/passwd": (f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
                        f"student:x:{spec.uid}:{spec.gid}:student:{HOME}:/usr/sbin/nologin\n"
                        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n").encode(),
        "/etc/group": f"root:x:0:\nstudent:x:{spec.gid}:\nnogroup:x:65534:\n".encode(),
        "/etc/hosts": b"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    }


def _connection_index(argv: list[str]) -> int:
    for i, arg in enumerate(argv[:-1]):
        if arg == "-f":
            return i + 1
    raise SystemExit("grader.sandbox.isolation: the kernel command has no '-f {connection_file}'")


def _exec(argv: list[str], env: dict[str, str]) -> None:
    os.execve(argv[0], argv, env)


def _wait_forwarding(child: int) -> int:
    """Wait for ``child``, forwarding termination to it; its exit status.

    jupyter_client signals the kernel's whole process group (SIGINT reaches the kernel
    directly, so the wrapper ignores it) and SIGKILLs the group on shutdown.
    """
    def forward(signum: int, _frame) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:  # the kernel has just ended: waitpid below returns its status
            pass

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            return os.waitstatus_to_exitcode(status) & 0xFF
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise


def kernel_main(spec_path: str, argv: list[str]) -> None:
    """Start the kernel ``argv`` inside the sandbox described by ``spec_path``; never returns.

    Isolated (``spec.isolate``, decided by the worker): create the kernel's cgroup when
    ``spec.limits`` names one, then fork bubblewrap (:func:`bwrap_args`) into it and wait;
    when the sandbox ends, whatever is left in the cgroup is killed and the cgroup removed.
    A sandbox that cannot be built fails the kernel (never a silent downgrade: the result
    says ``isolated``). Otherwise (``limits-only``): the resource limits and the clean
    environment, then ``exec`` the kernel as the grader's own user.
    """
    spec = SandboxSpec.read(spec_path)
    conn_at = _connection_index(argv)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the grader (worker) dies → so does the kernel
    parent = int(os.environ.get("JPY_PARENT_PID") or 0)  # jupyter_client's pid, set when it launched us
    if parent and os.getppid() != parent:  # it died before prctl: nobody would ever stop this kernel
        os._exit(1)
    if not spec.isolate:
        set_limits(spec)
        env = kernel_env(spec, home=os.environ.get("HOME", "/tmp"), tmp=os.environ.get("TMPDIR", "/tmp"))
        _exec(argv, env)
    bwrap = find_bwrap()
    if bwrap is None:
        print("grader.sandbox.isolation: cannot start the kernel: bwrap (bubblewrap) is missing", file=sys.stderr)
        os._exit(127)
    connection = Path(argv[conn_at]).read_text(encoding="utf-8")
    env = kernel_env(spec, home=HOME, tmp="/tmp")  # resolves symlinks (the data folder) on the host
    argv = list(argv)
    argv[conn_at] = CONNECTION
    plan = {"spec": asdict(spec), "argv": argv, "env": env, "connection": connection}
    plan_fd = _pipe_with(json.dumps(plan).encode())
    files = {dest: _pipe_with(data) for dest, data in _etc_files(spec).items()}
    args = bwrap_args(bwrap, spec, work_src=os.getcwd(), files=files)
    args += ["--", sys.executable, "-s", "-B", "-m", "grader.sandbox", "inner", str(plan_fd)]
    group = None
    if spec.limits in ("cgroup-v1", "cgroup-v2"):
        from grader.sandbox.cgroups import KernelCgroup

        try:
            group = KernelCgroup.create(spec.limits, spec.memory_bytes, spec.nproc)
        except OSError as exc:
            print(f"grader.sandbox.isolation: cannot create the kernel's {spec.limits} cgroup: {exc}", file=sys.stderr)
            os._exit(127)
    child = os.fork()
    if child == 0:
        try:
            if group is not None:
                group.join()  # before bwrap: the sandbox, the kernel and all it forks are charged here
            # jupyter_client interrupts a kernel by SIGINT to its whole process group: bwrap must not die
            # of it (that kills the sandbox); inner_main restores the default for the kernel itself.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            os.execve(bwrap, args, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(COURSE_ROOT)})
        except BaseException as exc:  # noqa: BLE001 - report and die, never fall through
            print(f"grader.sandbox.isolation: cannot start bwrap: {exc}", file=sys.stderr)
        os._exit(127)
    for fd in (plan_fd, *files.values()):
        os.close(fd)
    status = _wait_forwarding(child)
    if group is not None:
        group.remove()
    os._exit(status)


def inner_main(plan_fd: int) -> None:
    """Inside bubblewrap, as root with a few capabilities: prepare ``/tmp``, drop to the kernel's uid, exec.

    Copies the working folder into the private ``/tmp/work``, writes the connection file
    (readable by the kernel's uid only), sets the ``RLIMIT``\\ s, drops to ``spec.uid``
    (which clears every capability) with ``no_new_privs``, sends raw fd 1/2 to
    ``/tmp/kernel.log`` and ``exec``\\ s the kernel with the environment of :func:`kernel_env`.
    """
    with os.fdopen(plan_fd, "rb") as fh:
        plan = json.loads(fh.read())
    spec = SandboxSpec(**plan["spec"])
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.path.isdir(WORK_SRC):
            shutil.copytree(WORK_SRC, WORK, symlinks=True, dirs_exist_ok=True)
        os.makedirs(WORK, exist_ok=True)
        os.makedirs(HOME, exist_ok=True)
        Path(CONNECTION).write_text(plan["connection"], encoding="utf-8")
        for root in (WORK, HOME):
            for dirpath, dirnames, filenames in os.walk(root):
                for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                    os.lchown(name, spec.uid, spec.gid)
        os.chown(CONNECTION, spec.uid, spec.gid)
        os.chmod(CONNECTION, 0o600)
        set_limits(spec)
        os.setgroups([])
        os.setgid(spec.gid)
        os.setuid(spec.uid)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # cleared by setuid, so set again
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        os.chdir(WORK)
        if spec.log_output:
            log = os.open("/tmp/kernel.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(log, 1)  # raw writes to fd 1/2 stay in the sandbox's size-limited /tmp
            os.dup2(log, 2)
            os.close(log)
        os.closerange(3, 65536)  # nothing of the grader's open files reaches student code
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # ignored by bwrap (see kernel_main): the kernel's own again
        _exec(plan["argv"], plan["env"])
    except BaseException as exc:  # noqa: BLE001 - report and die, never fall through
        print(f"grader.sandbox.isolation: cannot start the kernel: {exc}", file=sys.stderr)
    os._exit(127)


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
    if len(argv) == 2 and argv[0] == "inner" and argv[1].isdigit():
        inner_main(int(argv[1]))
    raise SystemExit("usage: python -m grader.sandbox kernel SPEC.json -- KERNEL-COMMAND... "
                     "(any command with '-f CONNECTION-FILE')")


if __name__ == "__main__":
    main(sys.argv[1:])
