"""Metrics a lesson reports, collected by ``make course`` into the course report.

A lesson calls :func:`record` for each number its text quotes. The call prints the
value (so a student sees it) and, when ``COURSE_METRICS_FILE`` is set — as
``python -m grader course`` does — appends it to that JSON-lines file so the
course report and the site quote the same numbers the lesson produced.
"""

from __future__ import annotations

import json
import math
import os
from numbers import Real


def record(name: str, value: float | int, unit: str = "") -> float | int:
    """Print ``name = value`` and log it for the course report; returns ``value``."""
    if not name or any(ch.isspace() for ch in name):
        raise ValueError(f"metric name must be a non-empty dotted name without spaces, got {name!r}")
    if isinstance(value, bool) or not isinstance(value, Real):
        try:
            value = float(value)  # numpy and TensorFlow scalars
        except (TypeError, ValueError):
            raise TypeError(f"metric {name!r} must be a number, got {type(value).__name__}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"metric {name!r} is {value}; a reported metric must be finite")
    value = int(value) if float(value).is_integer() and not isinstance(value, float) else float(value)
    print(f"[metric] {name} = {value:.4g}{(' ' + unit) if unit else ''}")
    path = os.environ.get("COURSE_METRICS_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"name": name, "value": value, "unit": unit}) + "\n")
    return value


def read_records(path: str | os.PathLike) -> list[dict]:
    """The entries :func:`record` appended to ``path``, the last value of each name, in first-recorded order.

    The one reader of the metrics file: ``make course``'s report and the site both use it.
    """
    if not os.path.exists(path):
        return []
    latest: dict[str, dict] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                entry = json.loads(line)
                latest[entry["name"]] = entry
    return list(latest.values())
