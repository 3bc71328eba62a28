"""The API's request queue (``movierec.api.ModelQueue``, ``--model-slots``): bounded, in arrival order."""

from __future__ import annotations

import anyio
import pytest

from movierec.api import ModelQueue, main


def run_requests(slots: int, n: int) -> tuple[int, list[int]]:
    """``n`` concurrent requests through ``ModelQueue(app, slots)``: (most inside at once, order of entry)."""
    inside, most, order = 0, 0, []

    async def app(scope, receive, send):
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        order.append(scope["number"])
        await anyio.sleep(0.02)  # a request doing work while others arrive
        inside -= 1

    queue = ModelQueue(app, slots)

    async def client(number: int) -> None:
        await queue({"type": "http", "number": number}, None, None)

    async def everyone() -> None:
        async with anyio.create_task_group() as group:
            for number in range(n):
                group.start_soon(client, number)
                await anyio.sleep(0.001)  # they arrive in this order

    anyio.run(everyone)
    return most, order


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_at_most_the_slots_run_at_once_and_the_rest_go_in_arrival_order(slots):
    most, order = run_requests(slots, 8)
    assert most == slots
    assert order == list(range(8))


def test_other_scopes_pass_straight_through():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    anyio.run(ModelQueue(app, 1), {"type": "lifespan"}, None, None)
    assert seen == ["lifespan"]


def test_zero_slots_is_refused_with_the_fix(capsys):
    with pytest.raises(ValueError, match="at least 1"):
        ModelQueue(lambda *a: None, 0)
    assert main(["serve", "--models", "/nonexistent", "--model-slots", "0"]) == 2
    assert "--model-slots must be at least 1, got 0" in capsys.readouterr().err


def test_zero_processes_is_refused_with_the_fix(capsys):
    assert main(["serve", "--models", "/nonexistent", "--processes", "0"]) == 2
    assert "--processes must be at least 1, got 0" in capsys.readouterr().err


def test_model_slots_default_to_one_per_core_in_all(monkeypatch):
    from movierec import api

    monkeypatch.setattr(api, "usable_cores", lambda: 2)
    assert [api.default_model_slots(n) for n in (1, 2, 4)] == [2, 1, 1]


def test_every_tcp_connection_sends_without_waiting_for_acks():
    """uvicorn's socket for --processes > 1 has protocol 0, so asyncio leaves Nagle on: the API turns it off."""
    import socket

    from movierec.api import no_delay

    class Transport:
        def __init__(self, sock):
            self.sock = sock

        def get_extra_info(self, name):
            return self.sock if name == "socket" else None

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:  # protocol 0, as uvicorn binds it
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as client, listener.accept()[0] as accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0, "the case this guards against"
            no_delay(Transport(accepted))
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert client.fileno() > 0
    no_delay(Transport(None))  # no socket (a test transport): nothing to do
