"""``bench/hold.py``: the hold's rounds, and what tells a slow round's cause."""

from __future__ import annotations

import os

import pytest

from bench import hold
from bench.hold import rounds_apart
from bench.load import ROOT
from bench.table import print_table

TICK = os.sysconf("SC_CLK_TCK")


def a_round(
    rps: float, busy_cores: float, cpu_us: float, steal: float | None = None, seconds: int = 5
) -> dict:
    """What ``bench.serving.measure`` gives for a round, trimmed to what the hold reads,
    with what ``with_host_steal`` adds."""
    ticks = round(busy_cores * seconds * TICK)
    return {
        "rps": rps,
        "worker_ticks": [ticks // 2, ticks - ticks // 2],
        "busiest_worker_share": 0.5,
        "cpu_us_per_request": cpu_us,
        "non_2xx": 0,
        "host_steal": steal,
    }


def test_a_round_slowed_by_the_host_costs_more_cpu_a_request_with_the_workers_as_busy():
    runs = [a_round(10_000, 1.9, 190.0), a_round(7_000, 1.9, 271.0), a_round(9_800, 1.9, 194.0)]
    apart = rounds_apart(runs, 5)
    assert apart["workers_busy"] == pytest.approx([1.9, 1.9, 1.9], abs=0.01)
    assert apart["cpu_us_per_request"] == [190.0, 271.0, 194.0]
    assert apart["worst_round"] == pytest.approx(
        {
            "round": 2,
            "best_round": 1,
            "workers_busy_over_best": 1.0,
            "cpu_per_request_over_best": 1.426,
        },
        abs=0.01,
    )


def test_a_round_slowed_by_an_idle_worker_shows_the_workers_less_busy_at_the_same_cost():
    runs = [a_round(10_000, 1.9, 190.0), a_round(5_300, 1.0, 189.0)]
    worst = rounds_apart(runs, 5)["worst_round"]
    assert worst["round"] == 2 and worst["best_round"] == 1
    assert worst["workers_busy_over_best"] == pytest.approx(0.526, abs=0.01)
    assert worst["cpu_per_request_over_best"] == pytest.approx(0.995, abs=0.01)


def test_no_round_gives_the_lists_empty_and_no_worst_round():
    assert rounds_apart([], 5) == {"workers_busy": [], "cpu_us_per_request": [], "host_steal": []}


def test_a_round_is_measured_with_the_share_of_the_machine_the_hypervisor_took(monkeypatch):
    ticks = iter([(100, 10_000), (350, 12_000)])  # 250 of 2,000 ticks stolen meanwhile
    monkeypatch.setattr(hold, "machine_ticks", lambda: next(ticks))
    run = hold.with_host_steal(lambda *args: {"rps": 1.0, "args": args}, "target", 5)
    assert run == {"rps": 1.0, "args": ("target", 5), "host_steal": 0.125}
    monkeypatch.setattr(hold, "machine_ticks", lambda: None)  # no /proc/stat
    assert hold.with_host_steal(lambda: {"rps": 1.0})["host_steal"] is None


def test_the_machine_ticks_are_read_from_proc_stat_where_there_is_one():
    ticks = hold.machine_ticks()
    if not os.path.exists("/proc/stat"):
        assert ticks is None
    else:
        steal, total = ticks
        assert 0 <= steal < total


def printed_hold(runs: list[dict], capsys) -> str:
    """The table ``make bench`` prints for a keep-alive hold of ``runs``."""
    rps = [run["rps"] for run in runs]
    keepalive = {
        "rps": rps,
        "worst_to_best": round(min(rps) / max(rps), 3),
        "busiest_worker_share": [run["busiest_worker_share"] for run in runs],
        "max_share": 0.5,
        "non_2xx": 0,
        **rounds_apart(runs, 5),
    }
    results = {
        "date": "2026-12-08 01:00 UTC",
        "machine": {"summary": "2 cores"},
        "database": "postgresql",
        "cache": "redis",
        "hold": {"keepalive": keepalive},
    }
    print_table(results, ROOT / "bench" / "results.json")  # a path to name, not written
    return capsys.readouterr().out


def test_the_table_prints_the_worst_round_beside_the_best(capsys):
    runs = [a_round(10_000, 1.9, 190.0, 0.01), a_round(7_000, 1.9, 271.0, 0.125)]
    out = printed_hold(runs, capsys)
    assert "worst/best 0.7 [target >= 0.85]" in out
    assert (
        "worst round 2 against the best (1): workers on the CPU 1.9 cores against 1.9, "
        "CPU per request 271.0 us against 190.0, "
        "the hypervisor took 12.5% of the machine against 1.0%"
    ) in out


def test_the_table_says_nothing_of_the_hypervisor_where_its_share_is_unknown(capsys):
    runs = [a_round(10_000, 1.9, 190.0), a_round(7_000, 1.9, 271.0)]  # no /proc/stat
    out = printed_hold(runs, capsys)
    assert "CPU per request 271.0 us against 190.0\n" in out and "hypervisor" not in out
