"""How steady this machine's CPU is while nothing of ours runs: a yardstick for latency tails.

A p99 latency is set by the slowest 1% of requests, and on a virtual machine those can
come from the host rather than from the code: a neighbour's burst can make every
instruction of ours several times slower for a tenth of a second, with no steal time,
page faults or context switches to show for it. The probe runs one fixed piece of pure
Python work over and over on one core and records how long each repetition took. On a
steady CPU they all take about the median; ``slow_share`` is the share of the probe's
wall time spent in repetitions at least ``factor`` times slower than that median.

Its ``slow_share`` moves from one run to the next and from one machine to another, with
nothing else of ours running: the serving benchmark records it before and after its load,
so a p99 can be read next to the steadiness of the machine that produced it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

PROBE_SECONDS = 3.0
SLOW_FACTOR = 2.0


def _unit_of_work() -> int:
    """A fixed, allocation-free piece of interpreter work (about 0.2-0.3 ms here)."""
    total = 0
    for i in range(3000):
        total += i * i
    return total


def slow_share(durations: Sequence[float], factor: float = SLOW_FACTOR) -> float:
    """Share of the total time spent in repetitions at least ``factor`` times the median duration."""
    if not durations:
        raise ValueError("no durations: run the probe for longer than one repetition")
    if factor <= 1:
        raise ValueError(f"factor must be above 1 (a repetition slower than the median by it), got {factor}")
    median = statistics.median(durations)
    total = sum(durations)
    return sum(d for d in durations if d >= factor * median) / total if total > 0 else 0.0


def probe(seconds: float = PROBE_SECONDS, factor: float = SLOW_FACTOR) -> dict[str, float]:
    """Repeat the unit of work for ``seconds``; summarise how steady its duration was."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    durations: list[float] = []
    clock = time.perf_counter
    end = clock() + seconds
    while True:
        started = clock()
        if started >= end:
            break
        _unit_of_work()
        durations.append(clock() - started)
    median = statistics.median(durations)
    return {
        "seconds": round(seconds, 3),
        "repetitions": len(durations),
        "median_ms": round(1000 * median, 4),
        "worst_ratio": round(max(durations) / median, 2),
        "slow_factor": factor,
        "slow_share": round(slow_share(durations, factor), 4),
    }
