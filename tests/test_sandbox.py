"""The kernel sandbox from outside: the allow-list view (bubblewrap), per-kernel limits, per-run uids.

Most tests start the real wrapper, ``python -m grader.sandbox kernel SPEC -- python -c CODE
-f CONNECTION``, with a short program instead of ipykernel (same view, uid, limits and
cgroup as a grading kernel; seconds instead of a grading run), and read what it printed
(``log_output=False`` sends its fd 1/2 to the test instead of the private ``/tmp``). Each
attack of issue 13 has a control in the test's own process (the file is there, the
write works, the memory is available without the cgroup), so a test that passes says
the sandbox stopped the attack, not that the attack was broken.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from grader.sandbox import cgroups
from grader.sandbox.cgroups import KernelCgroup, limits_mode, own_cgroups, parent_folders
from grader.sandbox.isolation import (
    COURSE_ROOT,
    SandboxSpec,
    _probe_bwrap,
    bwrap_args,
    find_bwrap,
    isolation_problem,
)
from grader.sandbox.uids import STRIDE, lease_uids

MB = 1 << 20


def _need_isolation() -> None:
    """Skip (with the reason) where the sandbox cannot exist; under CI a missing bwrap is a failure."""
    if os.environ.get("CI") == "true" and find_bwrap() is None:
        pytest.fail("CI must install bubblewrap (.ci/run does): the sandbox tests would all be skipped")
    problem = isolation_problem()
    if problem:
        pytest.skip(f"kernels cannot be isolated here: {problem}")


def _need_cgroup() -> str:
    _need_isolation()
    mode = limits_mode()
    if mode == "rlimits":
        pytest.skip("no writable memory cgroup here (cgroup v2 delegation or cgroup v1 memory+pids): rlimits only")
    return mode


@pytest.fixture
def uid():
    """A kernel uid of this test's own, leased like a grading run's: never one a real grader uses meanwhile."""
    with lease_uids(1) as lease:
        yield lease.base


def sandboxed(tmp_path: Path, uid: int, code: str, timeout: float = 120, dry: bool = False, **spec: object):
    """Run ``code`` as a grading kernel would run: through the wrapper, in the view, as ``uid``.

    Returns the finished process (``dry``: only the command).
    """
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (work / "01_intro.ipynb").write_text("{}", encoding="utf-8")  # the kernel's working copy
    connection = tmp_path / "kernel.json"
    connection.write_text('{"key": "secret-of-this-kernel"}', encoding="utf-8")
    settings = {"isolate": True, "uid": uid, "gid": uid, "log_output": False, "limits": limits_mode(), **spec}
    spec_path = SandboxSpec(**settings).write(tmp_path / "sandbox.json")
    command = [sys.executable, "-m", "grader.sandbox", "kernel", str(spec_path), "--",
               sys.executable, "-c", textwrap.dedent(code), "-f", str(connection)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(COURSE_ROOT),
           "TFDS_DATA_DIR": os.environ.get("TFDS_DATA_DIR", "")}
    if not env["TFDS_DATA_DIR"]:
        env.pop("TFDS_DATA_DIR")
    if dry:
        return command
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


PROBE = r'''
import json, os, sys
def probe(action):
    try:
        action()
        return "OK"
    except Exception as exc:
        return f"BLOCKED {type(exc).__name__}"
def write(path):
    with open(path, "a") as fh:
        fh.write("x" * 1000)
results = {}
for path in json.loads(sys.argv[1]):
    results["read " + path] = probe(lambda p=path: open(p, "rb").read(10))
for path in json.loads(sys.argv[2]):
    results["list " + path] = probe(lambda p=path: os.listdir(p) or (_ for _ in ()).throw(FileNotFoundError("empty")))
for path in json.loads(sys.argv[3]):
    results["write " + path] = probe(lambda p=path: write(p))
print("RESULTS " + json.dumps(results))
print("UID", os.getuid(), "CWD", os.getcwd(), "WORK", sorted(os.listdir(".")))
'''


def probe(tmp_path: Path, uid: int, reads=(), lists=(), writes=()) -> tuple[dict[str, str], str]:
    code = f"import sys; sys.argv[1:] = {json.dumps([json.dumps(list(map(str, x))) for x in (reads, lists, writes)])}\n"
    process = sandboxed(tmp_path, uid, code + PROBE)
    assert process.returncode == 0, process.stderr[-2000:]
    line = next(x for x in process.stdout.splitlines() if x.startswith("RESULTS "))
    return json.loads(line[len("RESULTS "):]), process.stdout


@pytest.fixture
def other_checkout():
    """Another checkout of the course elsewhere on the machine, with its hidden tests (outside /tmp)."""
    base = next((Path(p) for p in ("/srv", "/opt", "/var/tmp") if os.access(p, os.W_OK)), None)
    if base is None:
        pytest.skip("no writable /srv, /opt or /var/tmp to plant another checkout in")
    root = base / f"grader-test-{uuid.uuid4().hex[:8]}"
    (root / "solutions").mkdir(parents=True)
    (root / "solutions" / "01_intro.py").write_text("assert top_k(...) == HIDDEN\n", encoding="utf-8")
    (root / "class" / "bob").mkdir(parents=True)
    (root / "class" / "bob" / "01_intro.ipynb").write_text("bob's answers\n", encoding="utf-8")
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------- the view (allow-list)


@pytest.mark.grading
def test_the_kernel_reads_nothing_of_the_host_but_its_allow_list(tmp_path, uid, other_checkout):
    _need_isolation()
    planted_root = Path("/root") / f".grader-secret-{uuid.uuid4().hex[:8]}"
    planted_home = Path("/home") / f"grader-secret-{uuid.uuid4().hex[:8]}"
    planted_root.write_text("root's secret\n", encoding="utf-8")
    planted_home.mkdir()
    (planted_home / "notes.txt").write_text("someone's secret\n", encoding="utf-8")
    secrets = [other_checkout / "solutions" / "01_intro.py", other_checkout / "class" / "bob" / "01_intro.ipynb",
               COURSE_ROOT / "solutions" / "01_intro.py", COURSE_ROOT / "pyproject.toml", COURSE_ROOT / "README.md",
               planted_root, planted_home / "notes.txt", "/etc/shadow", "/etc/machine-id"]
    try:
        for path in secrets[:-2]:
            assert Path(path).read_bytes()  # the control: each one is there for the grader
        results, out = probe(tmp_path, uid, reads=secrets,
                             lists=["/home", COURSE_ROOT / "solutions", other_checkout, "/run", "/sys"])
        listing, _ = probe(tmp_path, uid, reads=[], lists=[])
        root_view = subprocess_listing(tmp_path, uid, "/root")
    finally:
        planted_root.unlink()
        shutil.rmtree(planted_home)
    assert results and all(r.startswith("BLOCKED") for r in results.values()), results
    assert planted_root.name not in root_view and ".bashrc" not in root_view, root_view
    # What /root shows is only the way to a bound folder (pyenv's Python, the data), never its contents.
    assert set(root_view) <= {".pyenv", "tensorflow_datasets"}, root_view
    assert "WORK ['01_intro.ipynb']" in out and "CWD /tmp/work" in out  # the working copy is there


def subprocess_listing(tmp_path: Path, uid: int, folder: str) -> list[str]:
    process = sandboxed(tmp_path, uid, f"import os, json; print('LIST', json.dumps(sorted(os.listdir({folder!r}))))")
    assert process.returncode == 0, process.stderr[-2000:]
    return json.loads(next(x for x in process.stdout.splitlines() if x.startswith("LIST "))[5:])


@pytest.mark.grading
def test_the_kernel_reads_what_it_needs(tmp_path, uid):
    """The library, numpy from the venv, the data (read-only), the connection file (its own)."""
    _need_isolation()
    code = """
    import os, numpy, movierec, grader.sandbox.kernel_guard
    print("DATA", os.path.isdir(os.path.join(os.environ["TFDS_DATA_DIR"], "movielens")))
    print("CONNECTION", open("/tmp/kernel.json").read())
    print("UID", os.getuid(), os.getgid(), os.getgroups())
    print("CAPS", [l.split()[1] for l in open("/proc/self/status") if l.startswith(("CapEff", "CapPrm"))])
    print("NNP", [l.split()[1] for l in open("/proc/self/status") if l.startswith("NoNewPrivs")])
    print("PIDS", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
    """
    process = sandboxed(tmp_path, uid, code)
    assert process.returncode == 0, process.stderr[-2000:]
    out = process.stdout
    assert "DATA True" in out and "secret-of-this-kernel" in out, out
    assert f"UID {uid} {uid} []" in out and "CAPS ['0000000000000000', '0000000000000000']" in out, out
    assert "NNP ['1']" in out, out
    pids = json.loads(next(x for x in out.splitlines() if x.startswith("PIDS "))[5:])
    assert max(pids) < 10, pids  # a new PID namespace: only the sandbox's own processes


@pytest.mark.grading
def test_no_host_path_is_writable(tmp_path, uid):
    """``/run/lock`` (host tmpfs, world-writable) and every bound folder are out of reach; only private tmpfs."""
    _need_isolation()
    lock = Path("/run/lock")
    marker = f"grader-test-{uuid.uuid4().hex[:8]}"
    targets = [lock / marker, Path("/var/lock") / marker, Path("/dev/shm") / marker, COURSE_ROOT / "grader" / marker,
               Path(sys.prefix) / marker, Path(sys.base_prefix) / marker, Path("/usr") / marker, Path("/etc") / marker,
               Path("/") / marker, Path("/tmp/work") / marker]
    results, _ = probe(tmp_path, uid, writes=targets)
    for path in targets[:3] + targets[-1:]:
        assert not path.exists(), path  # nothing reached the host (/dev/shm and /tmp are the kernel's own)
    blocked = {k: v for k, v in results.items() if not k.endswith(("/dev/shm/" + marker, "/tmp/work/" + marker))}
    assert all(r.startswith("BLOCKED") for r in blocked.values()), results
    assert results[f"write /tmp/work/{marker}"] == "OK" and results[f"write /dev/shm/{marker}"] == "OK"
    code = """
    import os
    for line in open("/proc/self/mountinfo"):
        point = line.split()[4]
        if os.access(point, os.W_OK) and os.path.isdir(point):
            print("WRITABLE", point)
    """
    process = sandboxed(tmp_path, uid, code)
    writable = {line.split()[1] for line in process.stdout.splitlines() if line.startswith("WRITABLE ")}
    assert writable == {"/tmp", "/dev/shm"}, process.stdout + process.stderr


@pytest.mark.grading
def test_an_interrupt_reaches_the_kernel_and_only_the_kernel(tmp_path, uid):
    """jupyter_client interrupts a cell with SIGINT to the kernel's process group (a timed-out cell).

    The kernel must get its ``KeyboardInterrupt`` and live on; bwrap or the wrapper dying of
    the signal would kill the kernel and turn a timeout into an error.
    """
    _need_isolation()
    command = sandboxed(tmp_path, uid, "", dry=True)
    command[command.index("-c") + 1] = textwrap.dedent("""
    import time
    try:
        print("STARTED", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
    """)
    process = subprocess.Popen(command, cwd=tmp_path / "work", stdout=subprocess.PIPE, text=True,
                               start_new_session=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(COURSE_ROOT)})
    try:
        assert process.stdout.readline().strip() == "STARTED"
        os.killpg(process.pid, signal.SIGINT)
        assert process.stdout.readline().strip() == "INTERRUPTED"
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_the_view_is_an_allow_list():
    """No writable bind and no part of the checkout but its two packages, whatever the machine."""
    args = bwrap_args("/usr/bin/bwrap", SandboxSpec(hide=[str(COURSE_ROOT / "grader" / "sandbox")]), "/x/work", {})
    assert "--bind" not in args and "--dev-bind" not in args and "--bind-try" not in args
    sources = [args[i + 1] for i, a in enumerate(args) if a in ("--ro-bind", "--ro-bind-try")]
    inside = [s for s in sources if s == str(COURSE_ROOT) or s.startswith(str(COURSE_ROOT) + "/")]
    allowed = {str(COURSE_ROOT / "movierec"), str(COURSE_ROOT / "grader"), os.path.realpath(sys.prefix)}
    assert set(inside) <= allowed and str(COURSE_ROOT / "movierec") in inside, inside
    assert not any("/solutions" in s or "/.git" in s or "/build" in s for s in sources), sources
    assert "/" not in sources and "/home" not in sources and "/root" not in sources and "/run" not in sources
    tmp = args.index("/tmp")  # its first mention: the private tmpfs, with its size just before
    assert args[tmp - 1] == "--tmpfs" and args[tmp - 3] == "--size"
    # A secret inside an allowed folder is covered again, after the bind that exposed it.
    cover = args.index(str(COURSE_ROOT / "grader" / "sandbox"))
    assert args[cover - 1] == "--tmpfs" and cover > args.index(str(COURSE_ROOT / "grader"))
    assert args[-3:] == ["/", "--chdir", "/"] and args[-4] == "--remount-ro"


def test_a_missing_bwrap_is_the_reason_given(monkeypatch):
    monkeypatch.setenv("GRADER_BWRAP", "")
    assert find_bwrap() is None
    assert "bubblewrap is not installed" in _probe_bwrap()


def test_ci_has_bubblewrap():
    if os.environ.get("CI") != "true":
        pytest.skip("only CI must have bubblewrap (.ci/run installs it)")
    assert find_bwrap() is not None, "CI must install bubblewrap (.ci/run does)"


# ------------------------------------------------------------------------------- per-kernel limits

HOLD_AND_WRITE_TMP = """
import os
hold = b"h" * ({hold} << 20)  # the kernel's own memory
written = 0
try:
    with open("/tmp/fill", "wb") as fh:
        for _ in range({write}):
            fh.write(b"x" * (1 << 20))
            fh.flush()
            written += 1
            if written % 8 == 0:
                print("WROTE", written, flush=True)
except OSError as exc:
    print("ERROR", exc, flush=True)
print("WROTE", written, flush=True)
"""


@pytest.mark.grading
def test_tmpfs_writes_count_against_the_kernels_memory_limit(tmp_path, uid):
    """Under a 256 MiB limit, 128 MiB held plus /tmp writes (a 1 GiB tmpfs) stop near 128 MiB, not at 1 GiB."""
    _need_cgroup()
    process = sandboxed(tmp_path, uid, HOLD_AND_WRITE_TMP.format(hold=128, write=512), memory_bytes=256 * MB,
                        tmp_bytes=1 << 30)
    written = max([int(line.split()[1]) for line in process.stdout.splitlines() if line.startswith("WROTE")] or [0])
    assert 0 < written < 140, process.stdout[-500:] + process.stderr[-500:]
    assert process.returncode != 0 or "ERROR" in process.stdout  # killed (OOM) or refused, never completed
    # The control: with per-process limits only (a tmpfs as large as the limit) the same kernel holds 128 + 248 MiB.
    control = sandboxed(tmp_path, uid, HOLD_AND_WRITE_TMP.format(hold=128, write=512), memory_bytes=256 * MB,
                        tmp_bytes=1 << 30, limits="rlimits")
    assert "WROTE 25" in control.stdout and "No space left" in control.stdout, control.stdout[-300:]


FORK_CHILDREN = """
import os, select, time
ready_r, ready_w = os.pipe()
release_r, release_w = os.pipe()
pids = []
for _ in range({children}):
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(release_w)
        block = b"x" * ({each} << 20)  # touched: really held
        os.write(ready_w, b"1")
        os.read(release_r, 1)  # hold the block until the parent has counted
        os._exit(0)
    pids.append(pid)
os.close(ready_w)
deadline = time.monotonic() + 8
while time.monotonic() < deadline and select.select([ready_r], [], [], 0.5)[0]:
    if not os.read(ready_r, 1):
        break
time.sleep(1)
# A child the OOM killer ended is reaped here; the ones still alive hold their block at the same time.
alive = [pid for pid in pids if os.waitpid(pid, os.WNOHANG) == (0, 0)]
print("HELD", len(alive), flush=True)
os.close(release_w)
"""


@pytest.mark.grading
def test_forked_children_together_stay_within_the_memory_limit(tmp_path, uid):
    """8 children x 64 MiB under a 200 MiB limit: at most 3 hold theirs at once; without the cgroup all 8 do.

    Counted as the children still alive while all hold (the OOM killer ends the others), not as the children
    that ever held a block: a killed holder frees room for the next one, so "ever held" can exceed the limit.
    """
    mode = _need_cgroup()
    code = FORK_CHILDREN.format(children=8, each=64)
    limited = sandboxed(tmp_path, uid, code, memory_bytes=200 * MB, limits=mode)
    held = int(limited.stdout.split("HELD")[1].split()[0])
    assert 1 <= held and held * 64 <= 200, limited.stdout + limited.stderr[-500:]
    control = sandboxed(tmp_path, uid, code, memory_bytes=200 * MB, limits="rlimits")  # per-process limits only
    assert "HELD 8" in control.stdout, control.stdout + control.stderr[-500:]


@pytest.mark.grading
def test_each_kernel_runs_in_its_own_cgroup_removed_when_it_ends(tmp_path, uid):
    mode = _need_cgroup()
    command = sandboxed(tmp_path, uid, "", dry=True, memory_bytes=300 * MB, nproc=99)
    command[command.index("-c") + 1] = "import time; print('STARTED', flush=True); time.sleep(3)"
    process = subprocess.Popen(command, cwd=tmp_path / "work", stdout=subprocess.PIPE, text=True,
                               env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(COURSE_ROOT)})
    try:
        assert process.stdout.readline().strip() == "STARTED"
        folders = [parent / f"{cgroups.PREFIX}{process.pid}" for parent in parent_folders(mode)]
        limits = {p.name: p.read_text().strip() for f in folders for p in f.iterdir()
                  if p.name in ("memory.limit_in_bytes", "memory.max", "pids.max")}
        assert limits.get("pids.max") == "99" and str(300 * MB) in limits.values(), limits
        procs = [int(pid) for f in folders for pid in (f / "cgroup.procs").read_text().split()]
        assert procs and process.pid not in procs  # the sandbox is in it, the wrapper (which removes it) is not
    finally:
        assert process.wait(timeout=60) == 0
    assert not any(f.exists() for f in folders), folders


def test_a_kernel_cgroup_gets_the_limits_and_goes_away():
    mode = limits_mode()
    if mode == "rlimits":
        pytest.skip("no writable memory cgroup here")
    group = KernelCgroup.create(mode, 123 * MB, 77, name=f"{cgroups.PREFIX}{os.getpid()}-test")
    try:
        texts = {p.name: p.read_text().strip() for folder in group.folders for p in folder.iterdir()
                 if p.name in ("memory.limit_in_bytes", "memory.max", "pids.max")}
        assert texts.get("pids.max") == "77" and str(123 * MB) in texts.values(), texts
    finally:
        group.remove()
    assert not any(folder.exists() for folder in group.folders)


def test_cgroup_discovery_reads_v1_and_v2_lines(tmp_path):
    own = own_cgroups("12:pids:/a\n4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/user.slice/g\n")
    assert own == {"pids": "/a", "memory": "/process_api/x", "cpu": "/", "cpuacct": "/", "": "/user.slice/g"}
    v2 = tmp_path / "unified" / "user.slice" / "g"
    v2.mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("cpu memory pids\n")
    (v2 / "cgroup.subtree_control").write_text("memory pids\n")
    assert parent_folders("cgroup-v2", tmp_path, own, v2_mount=tmp_path / "unified") == [v2]
    (v2 / "cgroup.controllers").write_text("cpu\n")  # no memory controller delegated: not usable
    assert parent_folders("cgroup-v2", tmp_path, own, v2_mount=tmp_path / "unified") == []
    assert parent_folders("cgroup-v1", tmp_path, own) == []  # no such hierarchy under this root


# ------------------------------------------------------------------------------- per-run uids


def test_two_runs_lease_disjoint_uid_ranges(tmp_path):
    """A second grader (another process) takes the next range while the first holds its own."""
    with lease_uids(4, folder=tmp_path) as first:
        other = subprocess.run(
            [sys.executable, "-c", "import sys; from pathlib import Path; from grader.sandbox.uids import lease_uids; "
             f"print(lease_uids(4, folder=Path({str(tmp_path)!r})).base)"],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(COURSE_ROOT)}, check=True)
        second = int(other.stdout)
        assert set(range(first.base, first.base + 4)).isdisjoint(range(second, second + 4))
        with lease_uids(4, folder=tmp_path) as third:  # this process again: the other's lease ended with it
            assert third.base == second
    with lease_uids(4, folder=tmp_path) as again:  # released: the range is free again
        assert again.base == first.base
    with pytest.raises(ValueError):
        lease_uids(STRIDE + 1, folder=tmp_path)
