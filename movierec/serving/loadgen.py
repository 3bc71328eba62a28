"""The closed-loop load generator of the serving lessons (hand-written, not generated).

:func:`load_test` runs ``concurrency`` client threads against ``GET /recommend/{user_id}``
of an API on the loopback; each sends a request, waits for the answer and sends the next,
for a fixed time or number of requests. It refuses any host but the loopback, warms the
connections up first, and counts, given each user's training ratings, the returned titles
the user had already rated. :func:`latency_summary` is the reference summary (count,
mean, p50, p95, p99, max) that lesson 08 asks students to understand, and
:func:`plot_latency` draws lesson 08's two figures of a set of runs (the latency
distribution, and where a request spends its time).
"""

from __future__ import annotations

import collections
import http.client
import itertools
import json
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlparse

import numpy as np

__all__ = ["LOOPBACK_HOSTS", "latency_summary", "load_test", "plot_latency"]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    """Count, mean, p50, p95, p99 and max of a list of latencies in milliseconds."""
    values = np.asarray(latencies_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no latencies to summarise")
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "n": int(values.size),
        "mean_ms": float(values.mean()),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(values.max()),
    }


def load_test(
    base_url: str,
    user_ids: Sequence[str],
    *,
    concurrency: int,
    duration_s: float,
    k: int = 10,
    max_requests: int = 200_000,
    timeout_s: float = 5.0,
    warmup_requests: int = 20,
    seen: Mapping[str, Collection[str]] | None = None,
) -> dict[str, Any]:
    """Closed-loop load on ``GET /recommend/{user_id}?k=k`` of an API on the loopback.

    ``concurrency`` threads each send a request, wait for it, and send the next, cycling
    through ``user_ids``, until ``duration_s`` has passed or ``max_requests`` were sent.
    Returns the latency summary of successful requests, throughput, error count, and the
    server's mean time per stage (from ``timings_ms``). With ``seen`` (user id -> titles
    the user rated in training) it also counts the returned titles and how many of them
    the user had rated: ``returned_titles``, ``seen_titles`` and ``seen_share``.
    """
    host = urlparse(base_url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"load tests only target this machine's loopback, not {host!r}")
    if concurrency < 1 or duration_s <= 0 or not user_ids:
        raise ValueError("need concurrency >= 1, duration_s > 0 and at least one user id")
    parsed = urlparse(base_url)
    port = parsed.port or 80
    paths = [f"{parsed.path.rstrip('/')}/recommend/{quote(str(user_id), safe='')}?k={k}" for user_id in user_ids]

    def get(connection: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read()

    warm = http.client.HTTPConnection(host, port, timeout=timeout_s)  # connections, caches, first calls
    for path in itertools.islice(itertools.cycle(paths), warmup_requests):
        get(warm, path)
    warm.close()
    counter = itertools.count()
    lock = threading.Lock()
    errors: list[str] = []
    answered: list[tuple[float, bytes]] = []  # (milliseconds, response body) of each successful request
    start = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def client() -> None:
        # http.client with keep-alive: a lean client, so that the load generator's own CPU
        # use (it shares the machine with the server) disturbs the measurement little.
        connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        start.wait()
        while True:
            with lock:
                i = next(counter)
            if i >= max_requests or time.monotonic() >= deadline[0]:
                break
            sent = time.perf_counter()
            try:
                status, payload = get(connection, paths[i % len(paths)])
                elapsed = 1000 * (time.perf_counter() - sent)
                problem = None if status == 200 else f"HTTP {status}"
            except (OSError, http.client.HTTPException) as exc:
                problem = type(exc).__name__
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
            if problem is None:  # parsed after the run: the clients do as little Python as possible meanwhile
                answered.append((elapsed, payload))  # list.append is atomic: no lock needed
            else:
                errors.append(problem)
        connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + duration_s
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join(timeout=duration_s + 2 * timeout_s + 5)
    seconds = time.perf_counter() - began
    latencies = [elapsed for elapsed, _ in answered]
    bodies = [json.loads(payload) for _, payload in answered]
    stages = [body["timings_ms"] for body in bodies]
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "requests": len(latencies),
        "errors": len(errors),
        "error_kinds": dict(collections.Counter(errors)),  # e.g. {"ConnectionResetError": 2, "HTTP 503": 1}
    }
    if latencies:
        result.update(latency_summary(latencies))
        result["throughput_rps"] = len(latencies) / seconds
        result["server_mean_ms"] = {stage: float(np.mean([s[stage] for s in stages])) for stage in stages[0]}
    if seen is not None:
        returned = [[item["title"] for item in body["recommendations"]] for body in bodies]
        result["returned_titles"] = sum(len(titles) for titles in returned)
        result["seen_titles"] = sum(len(set(titles) & set(seen.get(body["user_id"], ())))
                                    for titles, body in zip(returned, bodies))
        result["seen_share"] = result["seen_titles"] / max(result["returned_titles"], 1)
    result["latencies_ms"] = latencies
    return result


STAGES = ("query_tower", "annoy", "ranker")  # the server-side stages each answer's timings_ms reports


def plot_latency(runs: Mapping[int, Mapping[str, Any]]) -> Any:
    """Two panels for ``{clients: load_test result}``: latency CDFs, and mean time per stage.

    The stage bars are the server's own ``timings_ms`` means; the grey remainder of each
    client-side mean is HTTP, the framework, JSON and waiting (for a thread or a core).
    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for clients, r in runs.items():
        values = np.sort(r["latencies_ms"])
        left.plot(values, np.arange(1, len(values) + 1) / len(values), label=f"{clients} client(s)")
    left.set(xscale="log", xlabel="latency of GET /recommend (ms, log scale)", ylabel="fraction of requests")
    left.set_title("Latency distribution on the loopback")
    left.axhline(0.99, color="grey", linestyle=":", linewidth=1)
    left.legend()
    for position, r in enumerate(runs.values()):
        bottom = 0.0
        rest = r["mean_ms"] - sum(r["server_mean_ms"][stage] for stage in STAGES)
        values = [*(r["server_mean_ms"][stage] for stage in STAGES), rest]
        for stage, value, color in zip([*STAGES, "HTTP + framework"], values, ["C0", "C1", "C2", "C7"]):
            right.bar(position, value, bottom=bottom, color=color, label=stage if position == 0 else None)
            bottom += value
    right.set_xticks(range(len(runs)), [f"{c} client(s)" for c in runs])
    right.set_ylabel("mean time per request (ms)")
    right.set_title("Where a request spends its time")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig
