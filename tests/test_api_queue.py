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
