"""``bench/steadiness.py``: the ratios of several ``make bench`` runs side by side."""

from __future__ import annotations

import json

import pytest

from bench.steadiness import compare, main, ratios


def results(factor: float = 1.0, *, hold: float = 0.9) -> dict:
    """The shape ``make bench`` writes, trimmed to what names a ratio and what doesn't."""
    return {
        "date": "2026-12-06 01:00 UTC",
        "verify": {
            "raw_hmac_us": 1.2,
            "verify_ratio": 1.1 * factor,
            "verify_ratio_spread": {"median": 1.1, "min": 1.0, "max": 1.3, "n": 7},
            "token_first_verify_ratio": 3.0 * factor,
        },
        "session_start": {"bare": {"rps": 9000}, "session_start_vs_bare": 0.5 * factor},
        "pk_verify": {  # ratios given as their rounds' spread, and a time given so
            "RS256_forged_vs_hmac": {"median": 6.5 * factor, "min": 6.2, "max": 6.8, "n": 7},
            "RS256_forged_us": {"median": 11.6, "min": 11.0, "max": 12.0, "n": 7},
        },
        "serving": {
            "max_worker_share": 0.65,
            "ratios": {"gunicorn/site vs gunicorn/bare": {"median": 0.4 * factor, "n": 5}},
            "targets": {"gunicorn/site": {"rps": {"median": 4000, "n": 5}}},
        },
        "hold": {
            "keepalive": {
                "worst_to_best": hold,
                "rps": [4000, 4100],
                "workers_busy": [1.9, 1.9],  # bench.hold.rounds_apart: figures to read
                "cpu_us_per_request": [450.0, 440.0],
                "host_steal": [0.02, 0.01],
                "worst_round": {
                    "round": 1,
                    "best_round": 2,
                    "workers_busy_over_best": 1.0,
                    "cpu_per_request_over_best": 1.023,
                },
            },
            "targets": {"worst_to_best": 0.85, "max_share": 0.65},
        },
        "host": {  # bench.hostspeed's probes: the host's, not a ratio of the app's
            "start": {"loop_best_ms": 5.1, "loop_median_ms": 5.4, "median_over_best": 1.06},
            "end": {"loop_best_ms": 5.1, "loop_median_ms": 6.5, "median_over_best": 1.27 * factor},
        },
    }


def test_every_ratio_is_found_and_nothing_else():
    assert ratios(results()) == pytest.approx(
        {
            "verify.verify_ratio": 1.1,
            "verify.token_first_verify_ratio": 3.0,
            "session_start.session_start_vs_bare": 0.5,
            "pk_verify.RS256_forged_vs_hmac": 6.5,
            "serving.ratios.gunicorn/site vs gunicorn/bare": 0.4,
            "hold.keepalive.worst_to_best": 0.9,
        }
    )


def test_the_farthest_run_from_the_median_is_the_deviation():
    rows = {row.name: row for row in compare([ratios(results(f)) for f in (1.0, 1.05, 0.8)])}
    first = rows["verify.verify_ratio"]
    assert first.values == pytest.approx((1.1, 1.155, 0.88))
    assert first.median == pytest.approx(1.1)
    assert first.deviation == pytest.approx(0.2)  # the 0.8x run
    assert not first.within(0.10) and first.within(0.25)


def test_a_ratio_missing_from_a_run_is_left_out():
    partial = results()
    del partial["hold"]
    names = {row.name for row in compare([ratios(results()), ratios(partial)])}
    assert "hold.keepalive.worst_to_best" not in names and "verify.verify_ratio" in names


def _write(tmp_path, *runs):
    paths = []
    for n, run in enumerate(runs):
        path = tmp_path / f"run-{n}.json"
        path.write_text(json.dumps(run) if isinstance(run, dict) else run)
        paths.append(str(path))
    return paths


def test_steady_runs_pass_and_a_straying_one_fails_naming_it(tmp_path, capsys):
    steady = _write(tmp_path, results(1.0), results(1.04), results(0.97))
    assert main(steady) == 0
    assert "6 of 6 ratios within ±10% of their median" in capsys.readouterr().out

    straying = _write(tmp_path, results(1.0), results(1.0), results(1.0, hold=0.5))
    assert main(straying) == 1
    out = capsys.readouterr().out
    assert "hold.keepalive.worst_to_best" in out.split("<- outside")[0].splitlines()[-1]
    assert "5 of 6 ratios within ±10%" in out


def test_unreadable_files_are_one_line_errors(tmp_path, capsys):
    assert main([str(tmp_path / "missing.json"), str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(_write(tmp_path, "{not json", "{}")) == 2
    assert "is not JSON" in capsys.readouterr().err
    assert main(_write(tmp_path, "[]", "{}")) == 2
    assert main(_write(tmp_path, "{}", "{}")) == 2
    assert "share no ratio" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main([str(tmp_path / "run-0.json")])
    assert stopped.value.code == 2


def test_each_runs_host_is_printed_beside_the_ratios_and_never_judged(tmp_path, capsys):
    """A noisy host explains a straying ratio; it is not one: a host three times as
    noisy in one run moves no count, and each run's probes are printed."""
    assert main(_write(tmp_path, results(1.0), results(1.0), results(1.0))) == 0
    out = capsys.readouterr().out
    assert "6 of 6 ratios" in out
    start = "start 5.10 ms best, median 1.06x"
    assert f"run 3 host (a plain loop): {start}, end 5.10 ms best, median 1.27x" in out
    noisy = results(1.0)
    noisy["host"]["end"]["median_over_best"] = 3.8
    assert main(_write(tmp_path, results(1.0), noisy, results(1.0))) == 0
    printed = capsys.readouterr().out
    assert f"run 2 host (a plain loop): {start}, end 5.10 ms best, median 3.80x" in printed
