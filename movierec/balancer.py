"""Spreading the API's connections evenly over its processes (hand-written, not generated).

``python -m movierec.api serve --processes N`` runs N server processes, each with its own
models, so that two cores serve two requests' Python code at once (one process is held to
one core by the GIL). How connections reach the processes decides whether that helps.
When the processes share one listening socket (uvicorn's own multi-process mode), the
first to wake accepts every connection waiting, so four keep-alive clients that connect
together can all land in one process while the other idles: measured on this machine,
p99 24.1 ms in one run and 52.8 ms in the next, with nothing changed.

Here the parent process owns the listening socket. It accepts each connection and hands
the open socket (its file descriptor, sent over a Unix socket with ``SCM_RIGHTS``) to the
process that holds the fewest open connections; each process tells the parent when
one of its connections closes. Node.js's ``cluster`` module hands connections out from its
primary process in the same spirit (round-robin). A process serves what it is handed with
uvicorn's own HTTP protocol, limits and app, exactly as a single-process server would.

The messages a process sends the parent are single bytes: :data:`READY` once its models
are loaded and its event loop runs (the parent accepts nothing until every process is),
:data:`CLOSED` for each connection that ended. A process that exits stops the server (the
parent ends the others and exits with status 1): better a clear failure than a server
that silently runs at half its capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import selectors
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

READY = b"r"
CLOSED = b"c"
CONNECTION = b"s"  # the byte that carries a handed-over descriptor


class LeastConnections:
    """Which process gets the next connection: the one with the fewest open, the longest unpicked on ties."""

    def __init__(self, processes: int) -> None:
        self.open = [0] * processes
        self.ready = [False] * processes
        self._handed = [0] * processes  # when each process last got a connection (a counter, not a clock)
        self._count = 0

    def choose(self) -> int | None:
        """The process for the next connection; ``None`` until every process is ready.

        Waiting for all keeps the first clients from piling onto the process that loaded its
        models first (they would stay there: keep-alive connections are never moved).
        """
        if not all(self.ready):
            return None
        chosen = min(range(len(self.open)), key=lambda i: (self.open[i], self._handed[i]))
        self._count += 1
        self.open[chosen] += 1
        self._handed[chosen] = self._count
        return chosen

    def message(self, process: int, data: bytes) -> None:
        """Apply the bytes ``process`` sent: :data:`READY` and :data:`CLOSED` messages."""
        for byte in data:
            if byte == READY[0]:
                self.ready[process] = True
            elif byte == CLOSED[0]:
                self.open[process] = max(0, self.open[process] - 1)


def listen(host: str, port: int, backlog: int) -> socket.socket:
    """The server's listening TCP socket (IPv6 when ``host`` is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.setblocking(False)
    return sock


def serve(make_config: Callable[..., Any], options: dict[str, Any], *, host: str, port: int, processes: int,
          backlog: int = 128) -> int:
    """Run ``processes`` server processes behind one listening socket until SIGINT/SIGTERM; an exit status.

    ``make_config(**options)`` runs in each process (spawned, so it must be importable by
    name) and returns the ``uvicorn.Config`` of that process's server, app loaded.
    """
    listener = listen(host, port, backlog)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per process: no forked TensorFlow state
    channels, workers = [], []
    for number in range(processes):
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        worker = context.Process(target=run_process, args=(make_config, options, child_end),
                                 name=f"movierec-api-{number}", daemon=False)
        worker.start()
        child_end.close()
        parent_end.setblocking(False)
        channels.append(parent_end)
        workers.append(worker)
    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda s, _f: stopping.append(s))
    choice = LeastConnections(processes)
    status = 0
    with selectors.DefaultSelector() as selector:
        selector.register(listener, selectors.EVENT_READ, "listen")
        for number, channel in enumerate(channels):
            selector.register(channel, selectors.EVENT_READ, number)
        try:
            while not stopping:
                exited = dispatch(selector.select(timeout=0.5), listener, channels, choice, backlog)
                if exited is not None and not stopping:
                    stopping.append(None)
                    status = 1
                    report_exit(workers[exited], exited, choice.ready[exited])
        finally:
            listener.close()
            for channel in channels:
                channel.close()  # each process stops when its channel closes
            for worker in workers:
                worker.join(timeout=10)
                if worker.is_alive():
                    worker.terminate()
                    worker.join(timeout=5)
    return status


def dispatch(events: list[tuple[selectors.SelectorKey, int]], listener: socket.socket,
             channels: list[socket.socket], choice: LeastConnections, backlog: int) -> int | None:
    """Act on one ``select()``'s events: hand out new connections, apply messages; the process that exited, if any.

    Handing out connections reads every channel first (:func:`read_messages`), so a channel
    the same ``select()`` reported readable may have nothing left by its turn: that is not
    an exit. (Treating it as one stopped a healthy server under load, a process "exited"
    with no exit status.)
    """
    for key, _ in events:
        if key.data == "listen":
            hand_out(listener, channels, choice, backlog)
            continue
        data = receive(key.fileobj)
        if data == b"":
            return key.data
        if data is not None:
            choice.message(key.data, data)
    return None


def receive(channel: socket.socket) -> bytes | None:
    """The messages waiting on a (non-blocking) channel: ``None`` if none, ``b""`` once the process is gone."""
    try:
        return channel.recv(4096)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:  # e.g. reset by a process that died
        return b""


def report_exit(worker: Any, number: int, ready: bool) -> None:
    """Say which process exited, and when, before the server stops."""
    worker.join(timeout=5)
    when = "" if ready else " before it was ready (see its messages above)"
    print(f"error: API process {number} (pid {worker.pid}) exited{when}; stopping the server "
          f"(exit status {worker.exitcode})", file=sys.stderr)


def hand_out(listener: socket.socket, channels: list[socket.socket], choice: LeastConnections, most: int) -> None:
    """Accept the connections waiting (at most ``most``) and send each to a process; close it here."""
    for _ in range(most):
        if not all(choice.ready):
            return  # until every process is ready, connections wait in the listen backlog
        try:
            connection, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        read_messages(channels, choice)  # closes reported since the last select count for this choice
        number = choice.choose()
        with connection:
            try:
                socket.send_fds(channels[number], [CONNECTION], [connection.fileno()])
            except OSError:
                choice.message(number, CLOSED)  # that process is gone: the selector reports it next


def read_messages(channels: list[socket.socket], choice: LeastConnections) -> None:
    """Apply every message waiting on the channels now (an exit is left for the selector to report)."""
    for number, channel in enumerate(channels):
        data = receive(channel)
        if data:
            choice.message(number, data)


def run_process(make_config: Callable[..., Any], options: dict[str, Any], channel: socket.socket) -> None:
    """One server process: build its uvicorn config, then serve the connections the parent hands it."""
    import uvicorn

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    config = make_config(**options)

    class HandedServer(uvicorn.Server):
        """A uvicorn server with no listening socket of its own: connections arrive over ``channel``."""

        @contextlib.contextmanager
        def capture_signals(self):
            yield  # the parent handles SIGINT/SIGTERM and stops this process by closing its channel

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])
            if self.should_exit:
                return
            loop = asyncio.get_running_loop()
            self.server_state.__dict__["on_connection_closed"] = lambda: _send(channel, CLOSED)
            channel.setblocking(False)
            loop.add_reader(channel.fileno(), self._receive, loop)
            _send(channel, READY)

        def _receive(self, loop: asyncio.AbstractEventLoop) -> None:
            try:
                message, fds, _, _ = socket.recv_fds(channel, 64, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message, fds = b"", []
            for fd in fds:
                sock = socket.socket(fileno=fd)
                sock.setblocking(False)
                loop.create_task(self._attach(loop, sock))
            if not message:  # the parent closed the channel (stopping) or died: finish what is in flight
                loop.remove_reader(channel.fileno())
                self.should_exit = True

        async def _attach(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
            def protocol() -> asyncio.Protocol:
                return self.config.http_protocol_class(config=self.config, server_state=self.server_state,
                                                       app_state=self.lifespan.state)

            try:
                await loop.connect_accepted_socket(protocol, sock)
            except OSError:
                sock.close()
                _send(channel, CLOSED)

    HandedServer(config).run()


def _send(channel: socket.socket, message: bytes) -> None:
    try:
        channel.send(message)
    except OSError:
        pass  # the parent is gone: this process stops when it sees its channel close
