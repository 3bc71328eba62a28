"""nbgrader preprocessors the course's autograder plugs into nbgrader's own pipeline.

* :class:`SandboxedExecute` replaces nbgrader's ``Execute`` in ``autograde``: the same
  per-cell timeout with interrupt, plus a per-notebook time budget (cells that would
  start after it are not run and fail with ``NotebookTimeout``), a byte cap on each
  cell's output (a cell printing megabytes keeps its first ``max_output_bytes``), and
  the kernel guard of :mod:`grader.sandbox.kernel_guard` before every test cell. What happened
  is written to ``report_path`` as JSON for the grader.
* The worker's memory is bounded whatever the kernel sends (:class:`CappedKernelManager`):
  its ZMQ sockets refuse any message part over :func:`message_cap` bytes (libzmq drops the
  connection before reading the body, and reconnects) and queue at most
  :data:`QUEUED_MESSAGES` messages each, so one ``print('x' * 300_000_000)`` never reaches
  the worker's heap. A dropped message is seen through a socket monitor and reported as
  truncated output of its cell. Everything that is kept counts against the cell's
  ``max_output_bytes``: error outputs (cut to one), display updates (which nbclient copies
  into every output with that display id) and nothing of widget messages (comm messages
  are ignored: the grader is not a frontend).
* After every test cell the grader runs the guard again and reads every shell message up to
  its answer: a second reply to the test's request means student code answered it (``ok``,
  then ``idle``) before the assertion failed — the test fails and the row is ``tampered``;
  a patch made during the last test is found too.
* What decides a grade comes from the release, never from the kernel's messages: a test
  cell's ``execute_result`` (nbgrader reads one as partial credit, and student code can send
  one from inside a test with ``sys.displayhook``) is kept as display data only; the course's
  test cells end in statements, so a result value in one is reported as tampering.
* :class:`TrimTracebacks` runs in ``generate_feedback`` after nbgrader's ``ClearHiddenTests``:
  it cuts every traceback of a test cell down to its last line (``AssertionError:
  message``); nbgrader's own feedback quotes the failing hidden ``assert`` line by line.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import resource
import secrets
import time
from pathlib import Path
from queue import Empty

import zmq
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Integer, Unicode

TIMEOUT_ENAMES = {"CellTimeoutError", "NotebookTimeout"}
BUILTIN_NAMES = frozenset(dir(builtins))
MIN_MESSAGE_CAP = 4 << 20  # a plot as base64 PNG, a long traceback: well under this
QUEUED_MESSAGES = 8  # per socket, waiting to be read: with the cap, what a flood can make the worker hold
ERROR_TEXT_BYTES = 2000  # of an error's message and traceback, once the cell's output budget is spent
DROPPED_WAIT = 2  # seconds to wait for the rest of a cell's output once a message of it was dropped


def message_cap(max_output_bytes: int) -> int:
    """The largest message part (bytes) the worker accepts from a kernel; ``-1``: no cap.

    Twice the output kept per cell, and never under :data:`MIN_MESSAGE_CAP`: a message that
    large would be cut to ``max_output_bytes`` anyway, so refusing it loses nothing a
    grade or the feedback uses, and the worker never allocates it.
    """
    return -1 if max_output_bytes < 0 else max(MIN_MESSAGE_CAP, 2 * max_output_bytes)


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished (waited-for) child processes, and theirs.

    A grading worker runs one notebook at a time, so the change across a run is its kernel's
    CPU time when the kernel is its own child (no sandbox): a measure of the lesson's cost
    that, unlike wall time, does not grow when the host is busy with something else.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system, their finished children's included) of process ``root`` and its descendants.

    Read from ``/proc`` while they run: a sandboxed kernel is the sandbox's grandchild, whose
    time never reaches this process's ``RUSAGE_CHILDREN``. 0.0 where ``/proc`` cannot tell.
    """
    cpu: dict[int, float] = {}
    children: dict[int, list[int]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        except OSError:  # gone meanwhile, or not ours to read
            continue
        pid = int(entry.name)
        cpu[pid] = sum(int(value) for value in fields[11:15]) / tick  # utime, stime, cutime, cstime
        children.setdefault(int(fields[1]), []).append(pid)
    total, todo = 0.0, [root] if root in cpu else []
    while todo:  # a tree: every pid has one parent, so none is reached twice
        pid = todo.pop()
        total += cpu[pid]
        todo += children.get(pid, [])
    return total


def cap_context(context: zmq.Context, max_message_bytes: int) -> None:
    """Make every socket ``context`` creates from now on refuse large messages and queue few."""
    if max_message_bytes > 0:
        context.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        context.setsockopt(zmq.RCVHWM, QUEUED_MESSAGES)


class CappedKernelManager(AsyncKernelManager):
    """jupyter_client's kernel manager whose sockets (its own and its clients') bound what a kernel sends.

    libzmq checks ``MAXMSGSIZE`` against a frame's header, before reading its body, and
    drops that connection (it reconnects by itself); ``RCVHWM`` bounds how many messages
    wait in a socket, so a flood of messages just under the cap is held back in the
    kernel (its own memory, under its own limits), not in the worker.
    """

    max_message_bytes = Integer(-1, help="Largest message part accepted from the kernel (-1: no cap).").tag(
        config=True)

    def client(self, **kwargs):
        kc = super().client(**kwargs)
        if self.max_message_bytes > 0:
            kc.context = zmq.asyncio.Context()  # the client's own, so the caps touch no other socket
            kc._created_context = True  # ...and it is destroyed with the client
            cap_context(kc.context, self.max_message_bytes)
        return kc

    def _connect_control_socket(self) -> None:
        cap_context(self.context, self.max_message_bytes)
        super()._connect_control_socket()


def builtin_names_used(source: str) -> list[str]:
    """Builtin names a test cell reads (so the guard can un-shadow them for it)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in BUILTIN_NAMES})


def error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def ends_in_expression(source: str) -> bool:
    """Whether a cell's last statement is an expression (its value becomes an ``execute_result``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return bool(tree.body) and isinstance(tree.body[-1], ast.Expr)


def output_size(content: dict) -> int:
    """Bytes (characters) an output message's content adds to a notebook."""
    size = len(content.get("text") or "") + len(content.get("evalue") or "")
    size += sum(len(str(line)) for line in content.get("traceback") or [])
    return size + sum(len(str(v)) for v in (content.get("data") or {}).values())


class SocketWatch:
    """Monitors of a client's shell and IOPub sockets: a connection dropped over an oversized message is re-made.

    libzmq treats a message part over ``MAXMSGSIZE`` as a protocol error and never
    reconnects that connection by itself, so without this one large print would leave
    the rest of the notebook without output (IOPub) or replies (shell).
    """

    CHANNELS = ("shell", "iopub")

    def __init__(self, kc) -> None:
        self.watched = []
        shadow = zmq.Context.shadow(kc.context.underlying)  # a plain (blocking) view of the client's context
        for name in self.CHANNELS:
            socket = getattr(kc, f"{name}_channel").socket
            address = f"inproc://grader-{name}-monitor-{secrets.token_hex(8)}"
            socket.monitor(address, zmq.EVENT_DISCONNECTED)
            monitor = shadow.socket(zmq.PAIR)
            monitor.connect(address)
            self.watched.append((name, socket, monitor, kc._make_url(name)))

    def dropped(self) -> set[str]:
        """The channels that lost their connection since the last call; each is connected again."""
        lost = set()
        for name, socket, monitor, url in self.watched:
            while monitor.poll(0):
                monitor.recv_multipart()
                lost.add(name)
            if name in lost:
                try:
                    socket.disconnect(url)
                except zmq.ZMQError:
                    pass
                socket.connect(url)
        return lost

    def close(self) -> None:
        for _, socket, monitor, _ in self.watched:
            try:
                socket.disable_monitor()
            except zmq.ZMQError:
                pass
            monitor.close(linger=0)
        self.watched = []


def unreadable_reply(msg_id: str, cap: int) -> dict:
    """The execute reply the grader records when the kernel's own was too large to read: an error."""
    evalue = f"the kernel's reply to this cell was larger than {cap:,} bytes and was not read"
    return {"parent_header": {"msg_id": msg_id}, "header": {"msg_type": "execute_reply"}, "msg_type": "execute_reply",
            "metadata": {}, "content": {"status": "error", "ename": "OutputTooLarge", "evalue": evalue,
                                        "traceback": [f"OutputTooLarge: {evalue}"], "execution_count": None}}


class SandboxedExecute(Execute):
    notebook_timeout = Integer(0, help="Seconds the whole notebook may run (0: no limit).").tag(config=True)
    max_output_bytes = Integer(1_000_000, help="Output bytes kept per cell (-1: no limit).").tag(config=True)
    guard = Bool(False, help="Run grader.sandbox.kernel_guard.check before each test cell.").tag(config=True)
    report_path = Unicode("", help="Where to write the JSON report of timeouts and tampering.").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", CappedKernelManager)
        super().__init__(*args, **kwargs)
        self.store_widget_state = False  # widget state is kernel-made data the grader has no use for

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if isinstance(km, CappedKernelManager):
            km.max_message_bytes = message_cap(self.max_output_bytes)
        return km

    async def async_start_new_kernel_client(self):
        """Start the client, then watch its sockets for connections libzmq dropped over an oversized message."""
        kc = await super().async_start_new_kernel_client()
        get_output = kc.iopub_channel.get_msg

        async def get_output_verified(timeout: float | None = None) -> dict:
            """The next IOPub message that passes the session's signature check (others are skipped)."""
            while True:
                try:
                    return await get_output(timeout=timeout)
                except ValueError as exc:  # "Invalid Signature", a malformed message: the kernel's doing
                    self._unreadable(exc)

        kc.iopub_channel.get_msg = get_output_verified
        self._pending = ""
        execute, get_reply = kc.execute, kc.shell_channel.get_msg

        def execute_tracked(*args, **kwargs) -> str:
            self._pending = execute(*args, **kwargs)
            return self._pending

        kc.execute = execute_tracked
        self._watch = SocketWatch(kc) if message_cap(self.max_output_bytes) > 0 else None
        if self._watch is None:
            return kc

        async def get_reply_watched(timeout: float | None = None) -> dict:
            """The shell reply, in one-second slices: a dropped connection is re-made at once."""
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                step = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
                try:
                    msg = await get_reply(timeout=step)
                except ValueError as exc:
                    self._unreadable(exc)
                    continue
                except Empty:
                    if "shell" in self._dropped() and self._pending:  # the reply was what could not be read
                        self.iopub_timeout = min(self._iopub_timeout, DROPPED_WAIT)
                        return unreadable_reply(self._pending, message_cap(self.max_output_bytes))
                    if deadline is not None and time.monotonic() >= deadline:
                        raise
                    continue
                if "iopub" in self._dropped():  # the cell's idle status may be lost: wait less for it
                    self.iopub_timeout = min(self._iopub_timeout, DROPPED_WAIT)
                return msg

        kc.shell_channel.get_msg = get_reply_watched
        return kc

    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def _unreadable(self, exc: Exception) -> None:
        """A message from the kernel failed to verify or parse: skipped, and said in the report (once per cell)."""
        cell = getattr(self, "_running_cell", None)
        note = f"cell {cell}: a kernel message that failed its signature check was ignored ({str(exc)[:80]})"
        if note.split(" (")[0] not in " ".join(self._report["unverified"]):
            self._report["unverified"].append(note)

    def _dropped(self) -> set[str]:
        """Channels whose connection dropped since the cell started (each is connected again at once)."""
        watch = getattr(self, "_watch", None)
        if watch is not None:
            self._drops |= watch.dropped()
        return set(self._drops)

    async def _async_cleanup_kernel(self) -> None:
        watch, self._watch = getattr(self, "_watch", None), None
        if watch is not None:
            watch.close()  # before the client destroys its context, which waits for every socket
        pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
        if pid:  # the kernel's CPU time, read before it stops
            self._kernel_cpu = tree_cpu_seconds(pid)
        await super()._async_cleanup_kernel()

    _cleanup_kernel = run_sync(_async_cleanup_kernel)

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = time.monotonic() + self.notebook_timeout if self.notebook_timeout > 0 else None
        self._bytes: dict[int, int] = {}
        self._drops: set[str] = set()
        self._iopub_timeout = self.iopub_timeout
        self._report = {"timeouts": [], "notebook_timeout": False, "tampered": [], "unshadowed": [],
                        "truncated": [], "unverified": [], "seconds": 0.0, "cpu_seconds": None, "died": ""}
        start, children, self._kernel_cpu = time.monotonic(), children_cpu_seconds(), 0.0
        try:
            return super().preprocess(nb, resources, km)
        finally:
            self._report["seconds"] = round(time.monotonic() - start, 3)
            # The kernel's CPU time: what the run cost, whatever else the host ran. A kernel that is this
            # worker's child is counted once reaped; a sandboxed one (the sandbox's grandchild) only by the
            # /proc sample taken just before it stopped. Each can miss time, neither counts any twice: the larger.
            self._report["cpu_seconds"] = round(max(children_cpu_seconds() - children, self._kernel_cpu), 3)
            if self.report_path:
                Path(self.report_path).write_text(json.dumps(self._report, indent=1), encoding="utf-8")

    def _remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _get_timeout(self, cell):
        timeout = super()._get_timeout(cell)
        remaining = self._remaining()
        if remaining is None:
            return timeout
        budget = max(1, int(remaining + 0.999))
        return budget if timeout is None else min(timeout, budget)

    @staticmethod
    def _label(cell: NotebookNode, index: int) -> str:
        return cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if self._report["died"]:
            cell.outputs = [error_output("DeadKernelError", f"not run: the kernel died in {self._report['died']}")]
            return cell
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            self._report["notebook_timeout"] = True
            cell.outputs = [error_output(
                "NotebookTimeout", f"not run: the notebook used up its {self.notebook_timeout} s time limit")]
            return cell
        if self._dropped() and getattr(self, "_running_cell", None) is not None:  # late: the cell before's
            self._truncated(self._running_cell)
        self._drops = set()
        self._running_cell = cell_index
        self.iopub_timeout = self._iopub_timeout
        try:
            if self.guard and utils.is_grade(cell):
                await self._guard(cell, cell_index)
            self._pending = ""
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            if utils.is_grade(cell) and self._pending:
                await self._after_test(cell, cell_index, self._pending)
        except DeadKernelError:
            # A crash in compiled code, os._exit(): this cell and the ones after it fail; the tests
            # that already ran keep their points, and the grader reports the death as an error.
            self._report["died"] = self._label(cell, cell_index)
            cell.outputs = [error_output("DeadKernelError", "the kernel died while running this cell")]
            return cell
        if self._dropped():
            self._truncated(cell_index)
            cell.outputs.append(self._notice(
                f"a message of more than {message_cap(self.max_output_bytes):,} bytes was not read"))
            self._drops = set()
        if any(o.get("output_type") == "error" and o.get("ename") in TIMEOUT_ENAMES for o in cell.outputs):
            self._report["timeouts"].append(self._label(cell, cell_index))
            remaining = self._remaining()
            if remaining is not None and remaining <= 1:
                self._report["notebook_timeout"] = True
        return cell

    execute_cell = run_sync(async_execute_cell)

    def _guard_request(self, cell: NotebookNode) -> tuple[str, dict]:
        """A fresh nonce and the silent request's ``user_expressions`` (none when the guard is off)."""
        nonce = secrets.token_hex(8)
        if not self.guard:
            return nonce, {}
        expression = (f"__import__('grader.sandbox.kernel_guard', fromlist=['check'])"
                      f".check({nonce!r}, {builtin_names_used(cell.source)!r})")
        return nonce, {"guard": expression}

    def _guard_answer(self, reply: dict, nonce: str, where: str) -> None:
        """Record what the guard's answer says it restored (or that it did not answer as itself)."""
        try:
            answer = reply["content"]["user_expressions"]["guard"]
            report = json.loads(ast.literal_eval(answer["data"]["text/plain"]))
        except Exception:  # noqa: BLE001
            content = (reply or {}).get("content", {})
            self._report["tampered"].append(f"{where}: the kernel guard did not run ({content.get('status')})")
            return
        if report.get("nonce") != nonce:
            self._report["tampered"].append(f"{where}: the kernel guard's answer was forged")
        for problem in report.get("tampered", []):
            self._report["tampered"].append(f"{where}: {problem}")
        for name in report.get("unshadowed", []):
            self._report["unshadowed"].append(f"{where.split(' ', 1)[-1]}: {name}")

    async def _guard(self, cell: NotebookNode, index: int) -> None:
        """Ask the kernel guard to restore the test's world; record what it had to restore."""
        nonce, expressions = self._guard_request(cell)
        label = self._label(cell, index)
        msg_id = await ensure_async(self.kc.execute(
            "", silent=True, store_history=False, user_expressions=expressions, allow_stdin=False))
        try:
            reply = await self.async_wait_for_reply(msg_id)
        except Exception as exc:  # noqa: BLE001 - a kernel that cannot answer the guard is suspect
            self._report["tampered"].append(f"before {label}: the kernel guard did not answer ({exc})")
            return
        self._guard_answer(reply, nonce, f"before {label}")

    async def _after_test(self, cell: NotebookNode, index: int, test_msg_id: str) -> None:
        """After a test cell: the guard again, and every shell message up to its reply read.

        The kernel answers requests in order, so any reply to the test's request that arrives
        now is a second one: the first was sent by student code while the test ran (an
        ``execute_reply`` saying ``ok`` and an ``idle`` status end nbclient's wait before the
        assertion fails). That is tampering, and the test fails. The guard, run again, finds
        what was patched during the test (the last test has no test after it to notice).
        """
        label = self._label(cell, index)
        # A test interrupted at its time limit ends without the kernel's reply (nbclient makes up its own
        # error); the kernel's real one, to the interrupt, comes now and is no forgery.
        interrupted = any(o.get("output_type") == "error" and o.get("ename") in TIMEOUT_ENAMES for o in cell.outputs)
        nonce, expressions = self._guard_request(cell)
        sync = await ensure_async(self.kc.execute(
            "", silent=True, store_history=False, user_expressions=expressions, allow_stdin=False))
        deadline = time.monotonic() + max(10, min(self.timeout or 60, 60))
        late: list[dict] = []
        reply = None
        while reply is None:
            remaining = deadline - time.monotonic()
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=max(0.0, min(1.0, remaining))))
            except Empty:
                if not await ensure_async(self.km.is_alive()):
                    return  # died after the test: the next cell reports it, the test keeps its result
                if remaining <= 0:
                    self._report["tampered"].append(f"after {label}: the kernel did not answer the grader's check")
                    return
                continue
            parent = (msg.get("parent_header") or {}).get("msg_id")
            if parent == sync:
                reply = msg
            elif parent == test_msg_id and msg.get("msg_type") == "execute_reply":
                late.append(msg)
        if late and not interrupted:
            self._report["tampered"].append(
                f"{label}: the kernel answered the test's request twice (a reply was forged while the test ran)")
            statuses = {m.get("content", {}).get("status") for m in late}
            cell.outputs.append(error_output("ForgedReply", "the test's outcome was reported twice; the test fails"
                                             + (" (the kernel's own reply was an error)" if "error" in statuses
                                                else "")))
        if self.guard:
            self._guard_answer(reply, nonce, f"after {label}")

    def _truncated(self, cell_index: int) -> None:
        label = f"cell {cell_index}"
        if label not in self._report["truncated"]:
            self._report["truncated"].append(label)

    def _notice(self, what: str) -> NotebookNode:
        """The grader's note in a cell whose output it cut: on stdout, so it never costs a test its points."""
        return NotebookNode(output_type="stream", name="stdout", text=(
            f"\n... output truncated by the grader: {what} ...\n"))

    def _is_test(self, cell_index: int) -> bool:
        cell = self.nb.cells[cell_index]
        return utils.is_grade(cell) and not utils.is_solution(cell)

    def output(self, outs, msg, display_id, cell_index):
        msg_type = msg.get("msg_type")
        content = msg.get("content", {})
        if msg_type == "execute_result" and self._is_test(cell_index):
            msg = self._as_display_data(msg, cell_index)
            msg_type, content = "display_data", msg["content"]
        if self.max_output_bytes < 0:
            return super().output(outs, msg, display_id, cell_index)
        size = output_size(content)
        used = self._bytes.get(cell_index, 0)
        self._bytes[cell_index] = used + size
        if used + size <= self.max_output_bytes:
            return super().output(outs, msg, display_id, cell_index)
        if msg_type == "error":  # an error decides the grade: one is always kept, cut short
            self._truncated(cell_index)
            if not any(o.get("output_type") == "error" for o in outs):
                outs.append(NotebookNode(
                    output_type="error", ename=str(content.get("ename", "Error"))[:200],
                    evalue=str(content.get("evalue", ""))[:ERROR_TEXT_BYTES],
                    traceback=["\n".join(map(str, content.get("traceback") or []))[-ERROR_TEXT_BYTES:]]))
            return None
        if used <= self.max_output_bytes:  # the first output over the cap: keep what fits, say so
            self._truncated(cell_index)
            kept = max(0, self.max_output_bytes - used)
            if msg_type == "stream" and kept:
                outs.append(NotebookNode(output_type="stream", name=content.get("name", "stdout"),
                                         text=content.get("text", "")[:kept]))
            outs.append(self._notice(f"this cell printed more than {self.max_output_bytes:,} bytes"))
        return None

    def _as_display_data(self, msg: dict, cell_index: int) -> dict:
        """A test cell's result value as plain display data: nbgrader would read it as the test's points."""
        cell = self.nb.cells[cell_index]
        if not ends_in_expression(cell.source):
            problem = (f"{self._label(cell, cell_index)} received a result value its test code does not produce "
                       "(student code sent it while the test ran; nbgrader would read it as partial credit)")
            if problem not in self._report["tampered"]:
                self._report["tampered"].append(problem)
        content = {k: v for k, v in msg.get("content", {}).items() if k != "execution_count"}
        return {**msg, "msg_type": "display_data", "header": {**msg.get("header", {}), "msg_type": "display_data"},
                "content": content}

    def _update_display_id(self, display_id, msg):
        """A display update is copied into every output with its id: count every copy against this cell."""
        if self.max_output_bytes < 0 or display_id not in self._display_id_map:
            return super()._update_display_id(display_id, msg)
        copies = sum(len(indices) for indices in self._display_id_map[display_id].values())
        cell_index = self._current_cell_index()
        size = output_size(msg.get("content", {})) * max(1, copies)
        used = self._bytes.get(cell_index, 0)
        if used + size > self.max_output_bytes:
            self._truncated(cell_index)
            self._bytes[cell_index] = used + size
            return None
        self._bytes[cell_index] = used + size
        return super()._update_display_id(display_id, msg)

    def _current_cell_index(self) -> int:
        return getattr(self, "_running_cell", -1)

    def clear_output(self, outs, msg, cell_index):
        """Cleared outputs are gone: the cell's budget starts again (progress bars redraw this way)."""
        super().clear_output(outs, msg, cell_index)
        if not msg.get("content", {}).get("wait"):
            self._bytes[cell_index] = 0

    def handle_comm_msg(self, outs, msg, cell_index):
        """Comm (widget) messages are ignored: no output widget can collect outputs past the caps."""
        return None


class TrimTracebacks(NbGraderPreprocessor):
    """Test cells in feedback: every traceback cut to its last line (``AssertionError: message``).

    nbgrader's feedback shows whole tracebacks, and a traceback quotes the failing test
    line by line — hidden ones too. The hidden regions themselves are removed by
    nbgrader's own ``ClearHiddenTests``, which runs before this.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    ename, evalue = output.get("ename", "Error"), output.get("evalue", "")
                    output.traceback = [f"{ename}: {evalue}" if evalue else ename]
        return cell, resources


SAFE_MIMETYPES = ("text/plain", "image/png", "image/jpeg")  # data a browser shows as text or a picture, never runs


def hidden_test_lines(nb: NotebookNode, min_length: int = 8) -> set[str]:
    """The stripped lines inside the hidden-test regions of the notebook's test cells."""
    from grader.markers import BEGIN_HIDDEN, END_HIDDEN

    lines: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code" or not utils.is_grade(cell):
            continue
        inside = False
        for line in cell.source.splitlines():
            if BEGIN_HIDDEN in line:
                inside = True
            elif END_HIDDEN in line:
                inside = False
            elif inside and len(line.strip()) >= min_length:
                lines.add(line.strip())
    return lines


def _scrub(text: str, hidden: set[str]) -> str:
    if not hidden or not text:
        return text
    kept = [line for line in text.splitlines(keepends=True) if not any(h in line for h in hidden)]
    return "".join(kept)


class SafeFeedbackOutputs(NbGraderPreprocessor):
    """Outputs in feedback are plain data, and no line of a hidden test survives anywhere in them.

    Runs first in ``generate_feedback``, while the test cells still hold their hidden regions:
    it learns those lines, then rewrites every output of every cell. Rich outputs a browser
    would interpret (HTML, SVG, JavaScript, Markdown, LaTeX, widgets) are reduced to their
    ``text/plain`` form, which the HTML exporter escapes; a student's ``<script>`` shows as
    text. Any output line that contains a hidden-test line — a notebook can read the test
    being run (``In``, the calling frame) and print it — is dropped, as are such lines in
    error messages.
    """

    def preprocess(self, nb, resources):
        hidden = hidden_test_lines(nb)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            for output in cell.get("outputs", []):
                kind = output.get("output_type")
                if kind == "stream":
                    output.text = _scrub(output.get("text", ""), hidden)
                elif kind in ("display_data", "execute_result"):
                    data = output.get("data", {})
                    if "text/plain" not in data and not any(m in data for m in SAFE_MIMETYPES):
                        data["text/plain"] = f"[{', '.join(sorted(data)) or 'an output'} not shown in feedback]"
                    output.data = NotebookNode({m: data[m] for m in SAFE_MIMETYPES if m in data})
                    if "text/plain" in output.data:
                        output.data["text/plain"] = _scrub(output.data["text/plain"], hidden)
                    output.metadata = NotebookNode({})
                elif kind == "error":
                    output.evalue = _scrub(output.get("evalue", ""), hidden)
                    output.traceback = [_scrub(line, hidden) for line in output.get("traceback", [])]
        return nb, resources
