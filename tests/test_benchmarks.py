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


def test_slow_share_counts_the_time_of_repetitions_at_least_twice_the_median():
    from benchmarks.host_noise import slow_share

    assert slow_share([1.0, 1.0, 1.0, 1.0]) == 0.0
    # median 1; the 2.0 and the 5.0 are slow: (2 + 5) / (1 + 1 + 1 + 2 + 5)
    assert abs(slow_share([1.0, 1.0, 1.0, 2.0, 5.0]) - 0.7) < 1e-12
    assert slow_share([1.0, 1.0, 1.9]) == 0.0  # below the factor
    assert abs(slow_share([1.0, 1.0, 1.9], factor=1.5) - 1.9 / 3.9) < 1e-12


def test_slow_share_refuses_what_it_cannot_measure():
    import pytest

    from benchmarks.host_noise import probe, slow_share

    with pytest.raises(ValueError, match="no durations"):
        slow_share([])
    with pytest.raises(ValueError, match="factor must be above 1"):
        slow_share([1.0], factor=1.0)
    with pytest.raises(ValueError, match="seconds must be positive"):
        probe(0)


def test_a_short_probe_reports_a_share_between_zero_and_one():
    from benchmarks.host_noise import probe

    result = probe(0.2)
    assert result["repetitions"] >= 1  # at least one repetition, however slow the machine is right now
    assert 0.0 <= result["slow_share"] <= 1.0
    assert result["worst_ratio"] >= 1.0 and result["median_ms"] > 0


def test_the_steadiness_line_names_each_probe():
    from benchmarks.serving_bench import steadiness_line

    line = steadiness_line({
        "before": {"slow_share": 0.05, "slow_factor": 2.0, "median_ms": 0.2, "worst_ratio": 6.5},
        "after": {"slow_share": 0.0, "slow_factor": 2.0, "median_ms": 0.19, "worst_ratio": 1.4},
    })
    assert "before: 5.0% of its time" in line and "after: 0.0% of its time" in line and "worst 6.5x" in line
