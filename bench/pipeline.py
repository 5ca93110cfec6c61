"""``make bench-pipeline``: the count pipeline under a flood of distinct values (issue 19).

Three figures, printed and written to ``bench/pipeline-results.json``:

- ``statements``: database statements per 1,000 forged starts (each a new user id and
  a made-up signature), without and with a new ``X-App-Version``/``X-Sdk-Version``
  per start, flushed every 100 starts as the runtime's thread does every interval
  (counted in-process with ``connection.execute_wrapper``); on PostgreSQL also the
  commits (``xact_commit`` of ``pg_stat_database``) per 1,000 starts answered by
  gunicorn under wrk, which is how the issue measured 15,010 per 5,000.
- ``backlog``: a forged flood with a new version per start at the highest rate the
  server reaches (wrk, ``--seconds``, 45 by default), then the time from its end until
  the written counts equal the requests answered.
- ``graceful_stop``: a flood, then SIGTERM to gunicorn's master at once: the counts
  written once it has exited against the requests answered (lost = answered - written;
  wrk counts only the answers it read, so written may exceed answered by the requests
  in flight when it stopped).

Uses ``bench.run``'s set-up (PostgreSQL and Redis when they answer on loopback; or
``BENCH_DATABASE_URL``, ``BENCH_CACHE_URL``; ``BENCH_PORTS`` for the server's port).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.load import ROOT, _free_port, _start_gunicorn
from bench.run import prepare

RESULTS = ROOT / "bench" / "pipeline-results.json"
_REQUESTS = re.compile(r"(\d+) requests in")
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")


def flood(url: str, api_key: str, seconds: int, new_versions: bool, connections: int = 16):
    """wrk with bench/flood.lua: (requests answered, requests/s)."""
    env = {**os.environ, "BENCH_API_KEY": api_key, "BENCH_NEW_VERSIONS": str(int(new_versions))}
    command = [
        "wrk", "-t2", f"-c{connections}", f"-d{seconds}s",
        "-s", str(ROOT / "bench" / "flood.lua"), url,
    ]  # fmt: skip
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return int(_REQUESTS.search(output).group(1)), float(_RPS.search(output).group(1))


def written(platform) -> int:
    from django.db import connections
    from django.db.models import Sum

    from trusted_identity.models import OutcomeCount

    total = OutcomeCount.objects.filter(platform=platform).aggregate(n=Sum("count"))["n"] or 0
    connections.close_all()  # a new snapshot each time
    return total


def commits() -> int | None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(cursor.fetchone()[0])


def statements_per_thousand(platform, new_versions: bool) -> int:
    """Statements the flushes of 1,000 forged starts run, flushed every 100."""
    from django.db import connection

    from trusted_identity import outcomes
    from trusted_identity.services import counting, lookup, sessions

    snapshot = lookup.lookup_platform(platform.api_key)
    ran = []

    def count(execute, sql, params, many, context):
        ran.append(sql)
        return execute(sql, params, many, context)

    outcomes.flush()
    prefix = os.urandom(4).hex()
    for flush in range(10):
        for n in range(100):
            number = f"{prefix}-{flush * 100 + n}"
            client = (
                counting.ClientVersions(f"junk-{number}", f"sdk-{number}")
                if new_versions
                else counting.NO_CLIENT
            )
            body = {"userId": f"forger-{number}", "signed": "0" * 64}
            sessions.start_session(snapshot, body, client)
        with connection.execute_wrapper(count):
            outcomes.flush()
    return len(ran)


def bench_statements(env, platform, secret, seconds: int) -> dict:
    from django.conf import settings
    from django.test.utils import override_settings

    from trusted_identity import outcomes
    from trusted_identity.conf import app_settings

    ti = {**settings.TRUSTED_IDENTITY, "COUNT_FLUSH_INTERVAL": 3600}
    with override_settings(TRUSTED_IDENTITY=ti):
        assert app_settings.COUNT_FLUSH_INTERVAL == 3600
        outcomes.in_transaction = lambda: False  # as a serving process: buffered
        result = {
            "per_1000_without_versions": statements_per_thousand(platform, False),
            "per_1000_with_new_versions": statements_per_thousand(platform, True),
        }
    result["ratio"] = round(
        result["per_1000_with_new_versions"] / result["per_1000_without_versions"], 3
    )
    if commits() is not None:  # the measure: commits per 1,000 answered starts
        port = _free_port()
        server = _start_gunicorn(env, port, secret)
        url = f"http://127.0.0.1:{port}/trusted-identity/v1/sessions"
        try:
            for label, new_versions in (("without_versions", False), ("with_new_versions", True)):
                before = commits()
                answered, _rps = flood(url, platform.api_key, seconds, new_versions)
                time.sleep(1.5)  # the workers' last flush
                result[f"commits_per_1000_{label}"] = round(
                    (commits() - before) * 1000 / answered, 1
                )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=40)
    return result


def bench_backlog(env, platform, secret, seconds: int) -> dict:
    port = _free_port()
    server = _start_gunicorn(env, port, secret)
    url = f"http://127.0.0.1:{port}/trusted-identity/v1/sessions"
    try:
        base = written(platform)
        answered, rps = flood(url, platform.api_key, seconds, True)
        ended = time.monotonic()
        while written(platform) - base < answered and time.monotonic() - ended < 600:
            time.sleep(0.05)
        backlog = time.monotonic() - ended
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=40)
    return {"seconds": seconds, "answered": answered, "rps": rps, "backlog_s": round(backlog, 2)}


def bench_graceful_stop(env, platform, secret, seconds: int) -> dict:
    port = _free_port()
    server = _start_gunicorn(env, port, secret)
    url = f"http://127.0.0.1:{port}/trusted-identity/v1/sessions"
    base = written(platform)
    answered, rps = flood(url, platform.api_key, seconds, True)
    stopped = time.monotonic()
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=60)
    exit_s = time.monotonic() - stopped
    counted = written(platform) - base
    return {
        "seconds": seconds,
        "answered": answered,
        "written": counted,
        "lost": max(0, answered - counted),
        "exit_s": round(exit_s, 2),
        "rps": rps,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=45, help="the backlog flood's length")
    parser.add_argument("--stop-seconds", type=int, default=20, help="the flood before SIGTERM")
    parser.add_argument("--commit-seconds", type=int, default=10, help="each commit flood")
    parser.add_argument(
        "--only", nargs="*", choices=["statements", "backlog", "graceful_stop"], default=None
    )
    args = parser.parse_args()
    sections = set(args.only or ["statements", "backlog", "graceful_stop"])
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    results: dict = {}
    with tempfile.TemporaryDirectory() as workdir:
        env, platform, secret = prepare(Path(workdir), "pipeline")
        from django.db import connection

        results["database"] = connection.vendor
        if "statements" in sections:
            results["statements"] = bench_statements(env, platform, secret, args.commit_seconds)
        if "backlog" in sections:
            results["backlog"] = bench_backlog(env, platform, secret, args.seconds)
        if "graceful_stop" in sections:
            results["graceful_stop"] = bench_graceful_stop(env, platform, secret, args.stop_seconds)
    earlier = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results = {**earlier, **results}  # a section run alone keeps the others' figures
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
