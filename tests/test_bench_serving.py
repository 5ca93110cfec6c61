"""The serving harness's own logic (bench/serving.py): command lines, the balance rule,
the per-round ratios with their spread. The load itself runs in `make bench` only."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench import serving

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(serving.SERVERS))
def test_every_candidate_has_a_command_line_binding_its_port(name):
    server = serving.SERVERS[name]
    app, _ = serving.APPS[server.interface, "site"]
    command = server.command(app, 8299, workers=2, threads=4)
    env = server.env(8299, workers=2, threads=4)
    assert Path(command[0]).name == server.executable
    assert "8299" in " ".join(command) or env["PORT"] == "8299"
    assert any(app.split(":")[0] in part for part in command)


def test_the_tuned_gunicorn_caps_connections_per_worker_and_reconnects_often():
    env = serving.SERVERS["gunicorn-tuned"].env(8299, workers=2, threads=8)
    assert env["GUNICORN_KEEPALIVE_REQUESTS"] == "100"
    assert int(env["GUNICORN_WORKER_CONNECTIONS"]) < 1000
    assert "--reuse-port" in serving.SERVERS["gunicorn-tuned"].command("project.wsgi", 1, 2, 8)


@pytest.mark.parametrize(
    ("workers", "ticks", "share", "counted"),
    [
        (2, [60, 40], 0.6, True),
        (2, [70, 30], 0.7, False),
        (2, [100, 0], 1.0, False),  # one of two workers did it all: the worst round, refused
        (3, [100, 0, 0], 1.0, False),
        (1, [5], 1.0, True),  # a one-worker server can't be unbalanced
    ],
)
def test_a_run_counts_only_when_no_worker_did_more_than_65_percent(workers, ticks, share, counted):
    from bench.balance import balanced, busiest_share

    assert busiest_share(ticks) == share
    run = {"workers": workers, "worker_ticks": ticks, "busiest_worker_share": share}
    assert balanced(run) is counted


def _running(server: str, app: str, rps: list[float]) -> serving.Running:
    target = serving.Running(serving.SERVERS[server], app, 0, None, "")
    target.runs = [
        {"round": n, "rps": r, "cpu_us_per_request": 1, "p99_ms": 1, "busiest_worker_share": 0.5,
         "non_2xx": 0}
        for n, r in enumerate(rps)
    ]  # fmt: skip
    return target


def test_ratios_are_per_round_with_their_spread_and_against_the_fastest_bare():
    result = serving.summarise(
        [
            _running("gunicorn", "bare", [10_000, 8_000, 9_000]),
            _running("gunicorn", "site", [5_000, 6_000, 4_500]),
            _running("granian-wsgi", "bare", [40_000, 44_000, 45_000]),
            _running("granian-wsgi", "site", [20_000, 22_000, 18_000]),
        ],
        rounds=3,
    )
    own = result["ratios"]["gunicorn/site vs gunicorn/bare"]
    assert (own["median"], own["min"], own["max"], own["n"]) == (0.5, 0.5, 0.75, 3)
    fastest = result["ratios"]["gunicorn/site vs granian-wsgi/bare (fastest bare)"]
    assert fastest["min"] == 0.1 and fastest["n"] == 3
    assert result["targets"]["granian-wsgi/bare"]["rps"]["median"] == 44_000


def test_worker_ticks_reads_the_processes_cpu_time():
    child = subprocess.Popen(["sleep", "5"])
    try:
        ticks = serving.worker_ticks(serving.Running(serving.SERVERS["uvicorn"], "site", 0,
                                                     child, ""))  # fmt: skip
        assert list(ticks) == [child.pid] and ticks[child.pid] >= 0
    finally:
        child.kill()
        child.wait()


def test_make_serve_refuses_an_unknown_server():
    done = subprocess.run(
        ["make", "-n", "serve", "SERVER=nginx"], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "MAKEFLAGS": ""},
    )  # fmt: skip
    assert "SERVER must be gunicorn, uwsgi or granian" in done.stdout


def test_a_round_wrk_cannot_run_is_kept_with_its_reason_and_the_servers_last_words(capsys):
    """A server that died mid-run costs its rounds, not the whole benchmark's figures."""
    import tempfile
    from types import SimpleNamespace

    with tempfile.TemporaryFile() as log:
        log.write(b"booting\nOSError: [Errno 24] Too many open files\n")
        target = _running("uwsgi", "bare", [9000.0])
        target.process = SimpleNamespace(poll=lambda: 3, log=log)
        refused = "unable to connect to 127.0.0.1:1 Connection refused\n"
        error = subprocess.CalledProcessError(1, ["wrk"], output="", stderr=refused)
        serving.failed(target, 2, error)
    [why] = target.failed
    assert why.startswith("round 2: wrk exited 1: unable to connect")
    assert "the server exited 3" in why and "Too many open files" in why
    assert "uwsgi/bare: round 2" in capsys.readouterr().err
    summary = serving.summarise([target], rounds=3)["targets"]["uwsgi/bare"]
    assert summary["runs_failed"] == [why] and summary["rps"]["n"] == 1
