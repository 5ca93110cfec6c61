"""``make bench``: how fast trusted-identity is against the floor a user could write by hand.

Prints a table and writes ``bench/results.json``. Sections:

- ``verify``: the app's verification with a warm lookup vs raw ``hmac`` + ``compare_digest``;
  the same for HS256 tokens: one seen before by the process (its verdict remembered),
  a different token each call (each checked in full), and a forged one (the shape check
  and the HMAC alone).
- ``session_start``: requests/s and p50/p99 through ``make serve``'s server (Granian,
  2 workers) under wrk, on the lean path (``LeanSessions``, as ``project/wsgi.py``
  ships) and through Django (the view behind every middleware), vs the limit
  (``bench/bare.py``, a bare WSGI callable doing the same work, served the same way), a
  trivial JSON view and a hand-written verify view; and the queries one warm session
  start makes; each also with a token (HS256) instead of a plain signature.
- ``admin``: queries of the settings page and the space list for few vs many rows,
  and the time to render the space list with 1,000 spaces.
- ``bulk``: rotating 1,000 platforms through the admin action and re-keying 10,000
  secrets, with peak memory.
- ``public_keys`` (``bench/publickeys.py``): public-key tokens per algorithm against a
  raw HMAC (first sight, repeat, forged), a session start with a first-sight ES256
  token against the trivial view, and a forged public-key flood's CPU against a valid
  one (``pk_verify``, ``pk_session_start``, ``pk_flood`` in the table).
- ``serving``: the servers side by side (``bench/serving.py``): gunicorn as shipped and
  tuned, Granian, uWSGI for WSGI; uvicorn, Granian, Hypercorn for ASGI; each serving the
  bare callable and the site, interleaved rounds, a round counted only when no worker
  did more than 65% of its work; every figure and ratio with its spread.
- ``hold``: ``make serve``'s steadiness: 10 consecutive 5 s rounds with keep-alive
  connections, 5 with connections that reconnect every 100 requests; each round with
  the workers' CPU use, their CPU per request and the hypervisor's steal
  (``bench/hold.py``), so a slow round says whether the server or the host moved.

Every section that loads a server (``session_start``, ``long_run``, ``flood``, the
public-key ones) serves through ``make serve``'s server (``bench.load.start_site``);
``serving`` compares it with the others, and ``make bench-pipeline`` and
``make bench-scale`` still serve with gunicorn.

``serving`` takes about 10 minutes (21 targets, 5 rounds of 5 s, retries), ``hold``
about 1.5: run ``make bench`` on a quiet machine; ``--only`` picks sections.

Uses PostgreSQL and Redis when they answer on loopback (as on this project's
machines), else SQLite and local memory; the table says which.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform as platform_module
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import hostspeed
from bench.admin import bench_admin, bench_bulk
from bench.figures import median_run, spread
from bench.load import (
    ROOT,
    SITE_WORKERS,
    _free_port,
    _port_open,
    _wrk,
    balanced_measured,
    descendants,
    start_site,
    stop_site,
)
from bench.serving import MAKE_SERVE
from bench.table import print_table
from bench.verify import bench_verify

RESULTS = ROOT / "bench" / "results.json"


def configure_environment(workdir: Path) -> dict[str, str]:
    """Database, cache and keys for this run, exported for the server processes too."""
    from trusted_identity.crypto import generate_key

    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_READ_DOT_ENV": "0",
        "DEBUG": "0",
        "SECRET_KEY": "bench-" + os.urandom(24).hex(),
        "TRUSTED_IDENTITY_ENCRYPTION_KEYS": generate_key(),
    }
    if os.environ.get("BENCH_DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
    elif _port_open(5432):
        env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/trusted_identity_bench"
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-U", "postgres", "trusted_identity_bench"],
            capture_output=True,
            check=False,
        )
    else:
        env["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    if os.environ.get("BENCH_CACHE_URL"):
        env["CACHE_URL"] = os.environ["BENCH_CACHE_URL"]
    elif _port_open(6379):
        env["CACHE_URL"] = "redis://127.0.0.1:6379/15"
    else:
        env["CACHE_URL"] = "locmemcache://bench"
    os.environ.update(env)
    return env


def setup_django() -> None:
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("flush", verbosity=0, interactive=False)
    cache.clear()


def make_platform(slug: str = "bench", kind: str = "web"):
    from trusted_identity.services import (
        access,
        platform_secrets,
        signature_forms,
    )
    from trusted_identity.services.spaces import add_platform, create_space

    space = create_space(slug)
    platform = add_platform(space, kind)
    signature_forms.set_signature_form(platform, "either", access.get_cli_actor())  # both forms
    secret = platform_secrets.reveal_secret(platform, access.get_cli_actor())
    return platform, secret


# ----------------------------------------------------------------- session start


def count_session_start_queries(platform, secret: str) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from trusted_identity.signing import sign

    client = Client()
    body = json.dumps({"userId": "q-user", "signed": sign(secret, "q-user")})
    headers = {"HTTP_X_API_KEY": platform.api_key}
    url = "/trusted-identity/v1/sessions"
    assert client.post(url, body, "application/json", **headers).status_code == 201  # warm
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url, body, "application/json", **headers)
    assert response.status_code == 201, response.content
    sql = [q["sql"] for q in queries.captured_queries]
    reads = [q for q in sql if q.lstrip().upper().startswith("SELECT")]
    # Over two seconds of back-to-back starts: the only reads are the verification
    # generation's, at most one per LOOKUP_CHECK_INTERVAL, whatever the request rate.
    starts = 0
    with CaptureQueriesContext(connection) as queries:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            client.post(url, body, "application/json", **headers)
            starts += 1
    sustained = [
        q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")
    ]
    return {
        "queries_per_session_start": len(sql),
        "read_queries_per_session_start": len(reads),
        "write_queries_per_session_start": len(sql) - len(reads),
        "sustained_starts": starts,
        "sustained_reads": len(sustained),
        "sustained_reads_are_generation": all("verificationgeneration" in q for q in sustained),
    }


def bench_session_start(
    env: dict[str, str], platform, secret: str, quick: bool, round_count: int | None = None
) -> dict:
    from trusted_identity.services import verification
    from trusted_identity.signing import sign

    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (make bench installs Debian's wrk)")
    port = _free_port()
    server = start_site(env, port, secret)
    bare_port = _free_port()
    bare = start_site(env, bare_port, secret, app="bare")
    seconds, connections = (3, 8) if quick else (10, 16)
    body = json.dumps({"userId": "load-user", "signed": sign(secret, "load-user")})
    token = verification.sign_token_for("bench", "web", "load-user").token
    token_body = json.dumps({"userId": "load-user", "signed": token})
    base = f"http://127.0.0.1:{port}"
    targets = {
        "bare": f"http://127.0.0.1:{bare_port}/",
        "session_start": f"{base}/trusted-identity/v1/sessions",
        "session_start_django": f"{base}/bench/django/v1/sessions",
        "session_start_token": f"{base}/trusted-identity/v1/sessions",
        "trivial": f"{base}/bench/trivial",
        "handwritten": f"{base}/bench/handwritten",
    }
    bodies = {name: token_body if name == "session_start_token" else body for name in targets}
    try:
        for name, url in targets.items():  # warm every worker's caches and connections
            _wrk(url, platform.api_key, bodies[name], 1, connections)
        rounds: dict[str, list[dict]] = {name: [] for name in targets}
        refused = dict.fromkeys(targets, 0)
        names = list(targets)
        round_count = round_count or (1 if quick else 3)
        for round_index in range(round_count):  # interleaved rounds, median of each
            # A different order each round, so no target always runs after another.
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                process = bare if name == "bare" else server
                run, refused[name] = balanced_measured(
                    process, refused[name],
                    targets[name], platform.api_key, bodies[name], seconds, connections,
                )  # fmt: skip
                rounds[name].append(run)
    finally:
        for process in (server, bare):
            stop_site(process)

    result = {name: median_run(rounds[name]) for name in targets}
    result["rounds_refused_unbalanced"] = refused

    def ratio(name: str, floor: str) -> float:
        """The median of the per-round ratios: the two ran seconds apart in each round,
        under the same background load, so this moves less than a ratio of medians on
        a shared machine."""
        pairs = [a["rps"] / b["rps"] for a, b in zip(rounds[name], rounds[floor], strict=True)]
        return round(statistics.median(pairs), 3)

    result["session_start_vs_bare"] = ratio("session_start", "bare")
    # The same comparison by server CPU per request (bare's over session start's).
    result["session_start_vs_bare_by_cpu"] = round(
        result["bare"]["cpu_us_per_request"] / result["session_start"]["cpu_us_per_request"], 3
    )
    result["session_start_django_vs_bare_by_cpu"] = round(
        result["bare"]["cpu_us_per_request"] / result["session_start_django"]["cpu_us_per_request"],
        3,
    )
    result["session_start_token_vs_trivial"] = ratio("session_start_token", "trivial")
    result["session_start_django_vs_bare"] = ratio("session_start_django", "bare")
    result["session_start_django_vs_trivial"] = ratio("session_start_django", "trivial")
    result["trivial_vs_bare"] = ratio("trivial", "bare")
    result["session_start_vs_trivial"] = ratio("session_start", "trivial")
    result["session_start_vs_handwritten"] = ratio("session_start", "handwritten")
    result["load"] = {
        "tool": "wrk",
        "connections": connections,
        "seconds": seconds,
        "rounds": round_count,
        "server": MAKE_SERVE,
        "workers": SITE_WORKERS,
    }
    return result


def _worker_rss_mib(server: subprocess.Popen) -> list[float]:
    """Resident memory of a server's workers (every process under its master), in MiB."""
    sizes = []
    for pid in descendants(server.pid):
        with contextlib.suppress(OSError):  # gone meanwhile
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(round(int(line.split()[1]) / 1024, 1))
    return sorted(sizes)


def bench_long_run(env: dict[str, str], platform, secret: str, quick: bool) -> dict:
    """Session start through ``make serve``'s server for a minute, in 10-second rounds
    back to back: throughput must hold (no worker left idle), memory must stay flat."""
    from trusted_identity.signing import sign

    port = _free_port()
    server = start_site(env, port, secret)
    body = json.dumps({"userId": "long-user", "signed": sign(secret, "long-user")})
    url = f"http://127.0.0.1:{port}/trusted-identity/v1/sessions"
    rounds = 2 if quick else 6
    try:
        _wrk(url, platform.api_key, body, 5, 16)  # warm every worker (5 s: both workers busy)
        memory_before = _worker_rss_mib(server)
        per_round = [_wrk(url, platform.api_key, body, 10, 16) for _ in range(rounds)]
        memory_after = _worker_rss_mib(server)
    finally:
        stop_site(server)
    rps = [round(r["rps"]) for r in per_round]
    return {
        "seconds": 10 * rounds,
        "rps_per_10s": rps,
        "worst_to_best": round(min(rps) / max(rps), 3),
        "non_2xx": sum(r["non_2xx"] for r in per_round),
        "worker_rss_mib_before": memory_before,
        "worker_rss_mib_after": memory_after,
    }


def bench_flood(env: dict[str, str], platform, secret: str, quick: bool) -> dict:
    """A flood of forged starts (each a new user id, a made-up signature) against a valid
    flood: server CPU per request, and the rows the failure log got (sampled and capped,
    so bounded whatever the flood)."""
    from trusted_identity.models import FailureRecord
    from trusted_identity.signing import sign

    port = _free_port()
    server = start_site(env, port, secret)
    url = f"http://127.0.0.1:{port}/trusted-identity/v1/sessions"
    body = json.dumps({"userId": "load-user", "signed": sign(secret, "load-user")})
    seconds, connections = (3, 8) if quick else (8, 16)
    FailureRecord.objects.filter(platform=platform).delete()
    runs: dict[str, list[dict]] = {"valid": [], "forged": []}
    refused = {"valid": 0, "forged": 0}
    try:
        _wrk(url, platform.api_key, body, 1, connections)  # warm
        # Interleaved rounds, each counted only when balanced (bench/balance.py).
        for index in range(1 if quick else 3):
            for name in ("valid", "forged") if index % 2 == 0 else ("forged", "valid"):
                run, refused[name] = balanced_measured(
                    server, refused[name],
                    url, platform.api_key, body, seconds, connections, name == "forged",
                )  # fmt: skip
                runs[name].append(run)
        time.sleep(1.5)  # the workers' last flush
    finally:
        stop_site(server)
    rows = FailureRecord.objects.filter(platform=platform).count()
    from trusted_identity.conf import app_settings

    # Per second and worker, over every clock second a forged round touched (a round of
    # n seconds touches n + 1 of them; the refused rounds count too).
    forged_seconds = (seconds + 1) * (len(runs["forged"]) + refused["forged"])
    bound = min(
        app_settings.FAILURE_LOG_MAX_ROWS, app_settings.FAILURE_LOG_PER_SECOND * 2 * forged_seconds
    )
    ratios = [
        forged["cpu_us_per_request"] / valid["cpu_us_per_request"]
        for forged, valid in zip(runs["forged"], runs["valid"], strict=True)
    ]

    return {
        "valid_flood": median_run(runs["valid"]),
        "forged_flood": median_run(runs["forged"]),
        "forged_starts": sum(run["requests"] for run in runs["forged"]),
        "forged_vs_valid_cpu": round(statistics.median(ratios), 3),
        "forged_vs_valid_cpu_spread": spread(ratios),
        "rounds_refused_unbalanced": refused,
        "failure_log_rows_written": rows,
        "failure_log_rows_bound": bound,
        "failure_log_bounded": rows <= bound,
    }


# ------------------------------------------------------------------------ report


def signing_of(secret: str, user_id: str) -> str:
    from trusted_identity.signing import sign

    return sign(secret, user_id)


def load_body(secret: str) -> str:
    """The session-start body every load round posts: ``load-user`` signed."""
    return json.dumps({"userId": "load-user", "signed": signing_of(secret, "load-user")})


def prepare(workdir: Path, slug: str = "bench") -> tuple[dict[str, str], Any, str]:
    """A run's start: the database, cache and keys exported for the servers, Django set
    up on a migrated, empty database, and a platform (taking both forms) with its secret."""
    env = configure_environment(workdir)
    setup_django()
    platform, secret = make_platform(slug)
    return env, platform, secret


def results_file(only: list[str] | None) -> Path:
    """``bench/results.json`` for a whole run; a run of some sections alone writes
    ``bench/results-<sections>.json`` and leaves the whole run's figures alone."""
    if not only or set(only) == set(SECTIONS):
        return RESULTS
    return RESULTS.with_name(f"results-{'-'.join(sorted(set(only)))}.json")


SECTIONS = [
    "verify", "session_start", "flood", "long_run", "admin", "bulk", "public_keys", "serving",
    "hold",
]  # fmt: skip


def argument_parser() -> argparse.ArgumentParser:
    from bench.serving import MAKE_SERVE, SERVERS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (for a smoke test)")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=None)
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved load rounds per target (default 3, 1 with --quick); the median counts",
    )
    parser.add_argument(
        "--hold-server",
        default=MAKE_SERVE,
        choices=sorted(SERVERS),
        help=f"the server hold serves the site with (default make serve's: {MAKE_SERVE})",
    )
    return parser


def main() -> int:
    parser = argument_parser()
    args = parser.parse_args()
    sections = set(args.only or SECTIONS)
    probe_seconds = 1.0 if args.quick else 3.0  # the host's probes (bench.hostspeed)
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as workdir:
        env, platform, secret = prepare(Path(workdir))
        from django.db import connection

        results: dict = {
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": {
                "summary": f"{platform_module.machine()}, {os.cpu_count()} cores, "
                f"Python {platform_module.python_version()}",
                "python": platform_module.python_version(),
                "cores": os.cpu_count(),
            },
            "database": connection.vendor,
            "cache": env["CACHE_URL"].split(":")[0],
            "quick": args.quick,
            "host": {"start": hostspeed.probe(probe_seconds)},
        }
        try:
            if "verify" in sections:
                results["verify"] = bench_verify(platform, secret, args.quick)
            if "session_start" in sections:
                results["session_start"] = {
                    **count_session_start_queries(platform, secret),
                    **bench_session_start(env, platform, secret, args.quick, args.rounds),
                }
            if "flood" in sections:
                results["flood"] = bench_flood(env, platform, secret, args.quick)
            if "long_run" in sections:
                results["long_run"] = bench_long_run(env, platform, secret, args.quick)
            if "admin" in sections:
                results["admin"] = bench_admin(args.quick)
            if "bulk" in sections:
                results["bulk"] = bench_bulk(args.quick)
            if "public_keys" in sections:
                from bench.publickeys import bench_public_keys

                keyed, keyed_secret = make_platform("bench-keys")
                for part, values in bench_public_keys(env, keyed, keyed_secret, args.quick).items():
                    results[f"pk_{part}"] = values
            if "serving" in sections or "hold" in sections:
                from bench import serving

                body = load_body(secret)
            if "serving" in sections:
                results["serving"] = serving.compare(
                    env, platform.api_key, secret, body,
                    servers=[n for n in serving.SERVERS if serving.installed(n)],
                    rounds=args.rounds or (1 if args.quick else 5),
                    seconds=2 if args.quick else 5, connections=8 if args.quick else 16,
                )  # fmt: skip
            if "hold" in sections:
                from bench.hold import hold

                results["hold"] = hold(
                    env, platform.api_key, secret, body, server=args.hold_server,
                    keepalive_rounds=2 if args.quick else 10,
                    reconnect_rounds=1 if args.quick else 5, seconds=2 if args.quick else 5,
                )  # fmt: skip
        except Exception as error:  # the sections measured so far are kept, with why it stopped
            results["stopped_by"] = f"{type(error).__name__}: {error}"
            results["host"]["end"] = hostspeed.probe(probe_seconds)
            results_file(args.only).write_text(json.dumps(results, indent=2) + "\n")
            raise
    results["host"]["end"] = hostspeed.probe(probe_seconds)
    written = results_file(args.only)
    written.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results, written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
