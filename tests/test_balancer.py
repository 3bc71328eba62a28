"""`serve --processes N`: the parent hands each connection to the process with the fewest open ones.

The processes here serve a tiny ASGI app that answers with its pid (no models), through the
same balancer, uvicorn protocol and limits as the API.
"""

from __future__ import annotations

import collections
import http.client
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from movierec.balancer import CLOSED, READY, LeastConnections, dispatch, listen

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def free_port() -> int:
    with socket.socket() as sock:  # not movierec.serving.launch's: that package imports TensorFlow
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_config(host: str, port: int):
    """Each spawned process's server: answers every request with its own pid."""
    from movierec.api import server_config

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = str(os.getpid()).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return server_config(app, host=host, port=port)


def test_least_connections_waits_for_every_process_then_spreads_and_refills():
    choice = LeastConnections(3)
    choice.message(0, READY)
    choice.message(1, READY)
    assert choice.choose() is None, "a process still loading its models would miss the first clients"
    choice.message(2, READY)
    assert [choice.choose() for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    choice.message(1, CLOSED + CLOSED)
    assert choice.open == [2, 0, 2]
    assert [choice.choose() for _ in range(3)] == [1, 1, 0]  # refill process 1, then the longest unpicked
    choice.message(2, CLOSED * 5)
    assert choice.open[2] == 0, "more closes than connections never goes negative"


def broken_config(host: str, port: int):
    """A process whose app cannot be built (as with a bad model folder)."""
    raise RuntimeError("no models here")


def start(config: str) -> tuple[int, subprocess.Popen]:
    """A two-process balanced server running ``test_balancer.<config>`` in a child process."""
    port = free_port()
    code = (f"import sys; from test_balancer import {config}; from movierec.balancer import serve; "
            f"sys.exit(serve({config}, {{'host': '127.0.0.1', 'port': {port}}}, host='127.0.0.1', port={port}, "
            "processes=2))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # its own process group, as a terminal's job is
    return port, process


def test_a_channel_drained_by_the_hand_out_is_not_mistaken_for_an_exit():
    """One select() reports a new connection and a process's message; handing out reads the message first.

    The channel then has nothing left by its turn. Reading that as "the process exited"
    stopped a healthy two-process server under load (CI: connection reset on the next request).
    """
    listener = listen("127.0.0.1", 0, backlog=8)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
    parents = [parent for parent, _ in pairs]
    for parent in parents:
        parent.setblocking(False)
    choice = LeastConnections(2)
    choice.message(0, READY)
    choice.message(1, READY)
    choice.choose(), choice.choose()  # one open connection each
    client = socket.create_connection(listener.getsockname(), timeout=5)
    pairs[1][1].send(CLOSED)  # process 1's connection closed: it should get the new one
    time.sleep(0.05)
    key = {fileobj: selectors.SelectorKey(fileobj, fileobj.fileno(), selectors.EVENT_READ, data)
           for fileobj, data in [(listener, "listen"), (parents[1], 1)]}
    try:
        events = [(key[listener], selectors.EVENT_READ), (key[parents[1]], selectors.EVENT_READ)]
        assert dispatch(events, listener, parents, choice, backlog=8) is None, "a live process was taken for dead"
        message, fds, _, _ = socket.recv_fds(pairs[1][1], 16, 4)
        assert message == b"s" and len(fds) == 1, "the new connection goes to the process that just freed a slot"
        os.close(fds[0])
        assert choice.open == [1, 1]
        pairs[0][1].close()  # process 0 really exits: its channel reads empty
        assert dispatch([(selectors.SelectorKey(parents[0], parents[0].fileno(), selectors.EVENT_READ, 0),
                          selectors.EVENT_READ)], listener, parents, choice, backlog=8) == 0
    finally:
        client.close()
        listener.close()
        for parent, child in pairs:
            parent.close()
            child.close()


@pytest.fixture
def balanced():
    """A two-process balanced server in a child process: ``(port, process)``."""
    port, process = start("pid_config")
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:  # the parent binds the port first thing
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except ConnectionRefusedError:
            time.sleep(0.05)
    yield port, process
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


def open_sockets(pid: int) -> int:
    """Sockets process ``pid`` holds open (Linux /proc)."""
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


def served_by(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/")
    response = connection.getresponse()
    assert response.status == 200
    return int(response.read())


def test_keep_alive_connections_spread_evenly_and_a_closed_slot_is_refilled(balanced):
    port, process = balanced
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(4)]
    pids = [served_by(c) for c in connections]  # the first waits until both processes are ready
    assert sorted(collections.Counter(pids).values()) == [2, 2], pids
    assert [served_by(c) for c in connections] == pids, "a keep-alive connection stays with its process"
    first = pids[0]
    before = open_sockets(first)
    for connection, pid in zip(connections, pids):
        if pid == first:
            connection.close()
    deadline = time.monotonic() + 60  # a bound, not a measurement
    while open_sockets(first) > before - 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # asyncio reports a lost connection (our CLOSED message) before it closes the socket
    fresh = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(2)]
    assert [served_by(c) for c in fresh] == [first, first], "new connections go to the process with fewer"
    for connection in connections + fresh:
        connection.close()
    process.terminate()
    assert process.wait(timeout=30) == 0
    for pid in set(pids):
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_process_that_dies_stops_the_server_with_a_message(balanced):
    port, process = balanced
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    victim = served_by(connection)
    connection.close()
    os.kill(victim, signal.SIGKILL)
    assert process.wait(timeout=30) == 1
    stderr = process.stderr.read()
    assert f"(pid {victim}) exited; stopping the server" in stderr, stderr


def test_ctrl_c_to_the_whole_group_stops_it_cleanly(balanced):
    """A terminal's Ctrl-C sends SIGINT to every process of the job: only the parent acts on it."""
    port, process = balanced
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    served_by(connection)  # both processes are up
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) == 0
    stderr = process.stderr.read()
    assert "Traceback" not in stderr and "exited" not in stderr, stderr


def test_a_process_that_cannot_start_stops_the_server_before_it_serves():
    _, process = start("broken_config")
    assert process.wait(timeout=60) == 1
    stderr = process.stderr.read()
    assert "RuntimeError: no models here" in stderr and "exited before it was ready" in stderr, stderr
