"""The benchmarks' own arithmetic (their numbers are reports, not tests; how they are combined is tested)."""

from __future__ import annotations

from benchmarks.autograde_bench import combine, format_table


def _phase(seconds: float, load: float) -> dict:
    return {"seconds": seconds, "load": [load, load, load]}


def test_rounds_combine_to_each_phases_median_and_keep_every_round():
    rounds = [
        {"serial_nbgrader": _phase(23.6, 1.1), "ours_parallel": _phase(14.3, 1.0)},
        {"serial_nbgrader": _phase(18.4, 0.7), "ours_parallel": _phase(10.8, 0.8)},
        {"serial_nbgrader": _phase(20.0, 0.5), "ours_parallel": _phase(30.0, 3.0)},
    ]
    combined = combine(rounds)
    assert combined["serial_nbgrader"]["seconds"] == 20.0
    assert combined["ours_parallel"]["seconds"] == 14.3, "one slow round does not move the median"
    assert combined["ours_parallel"]["load"] == [1.0, 1.0, 1.0], "the median round's own load"
    assert combined["ours_parallel"]["rounds_seconds"] == [14.3, 10.8, 30.0]
    assert combined["ours_parallel"]["rounds_load"] == [1.0, 0.8, 3.0]
    assert combine(rounds[:1])["serial_nbgrader"]["seconds"] == 23.6
    assert combine(rounds[:2])["serial_nbgrader"]["seconds"] == 18.4, "an even count takes the lower middle"


def test_the_table_shows_the_rounds_behind_each_median():
    phases = {name: {**_phase(s, 0.5), "rounds_seconds": [s, s + 1, s + 2], "rounds_load": [0.5] * 3}
              for name, s in (("execution_alone", 10.0), ("serial_nbgrader", 20.0), ("ours_one_worker", 22.0),
                              ("ours_parallel", 11.0))}
    phases["ours_one_worker"]["in_job_overhead_mean"] = 0.9
    phases["ours_parallel"]["statuses"] = {"graded": 6}
    report = {"submissions": 6, "jobs": 2, "rounds": 3, "machine": {"cores": 2, "load_average_start": [0.5],
                                                                      "load_average_end": [0.6]},
              "phases": phases, "seconds_per_submission": {name: p["seconds"] / 6 for name, p in phases.items()},
              "speedup_parallel_vs_serial_nbgrader": 1.82, "speedup_parallel_vs_one_worker": 2.0,
              "overhead_per_submission": 2.0, "serial_and_parallel_grades_identical": True}
    table = format_table(report)
    assert "3 round(s): each phase's median" in table
    assert "rounds: 20.0, 21.0, 22.0" in table
    assert "1.82x" in table
