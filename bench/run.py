"""``make bench``: how fast trusted-identity is against the floor a user could write by hand.

Prints a table and writes ``bench/results.json``. Sections:

- ``verify``: the app's verification with a warm lookup vs raw ``hmac`` + ``compare_digest``;
  the same for HS256 tokens: one seen before by the process (its verdict remembered),
  a different token each call (each checked in full), and a forged one (the shape check
  and the HMAC alone).
- ``session_start``: requests/s and p50/p99 through gunicorn (2 workers) under wrk,
  on the lean path (``LeanSessions``, as ``project/wsgi.py`` ships) and through Django
  (the view behind every middleware), vs the limit (``bench/bare.py``, a bare WSGI
  callable doing the same work, served by the same gunicorn config), a trivial JSON
  view and a hand-written verify view; and the queries one warm session start makes;
  each also with a token (HS256) instead of a plain signature.
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
  connections, 5 with connections that reconnect every 100 requests.

``serving`` takes about 10 minutes (21 targets, 5 rounds of 5 s, retries), ``hold``
about 1.5: run ``make bench`` on a quiet machine; ``--only`` picks sections.

Uses PostgreSQL and Redis when they answer on loopback (as on this project's
machines), else SQLite and local memory; the table says which.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform as platform_module
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.figures import spread

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
PYTHON = sys.executable


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    """A free port; within ``BENCH_PORTS`` (such as ``8350-8399``) when set."""
    if os.environ.get("BENCH_PORTS"):
        low, high = (int(n) for n in os.environ["BENCH_PORTS"].split("-"))
        for port in range(low, high + 1):
            if not _port_open(port):
                return port
        raise RuntimeError(f"no free port in {low}-{high}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


# ------------------------------------------------------------------------ verify


def bench_verify(platform, secret: str, quick: bool) -> dict:
    import hashlib
    import hmac

    from trusted_identity.services import (
        lookup,
        verification,
    )

    user_id = "user-1234567890"
    signature = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    snapshot = lookup.lookup_platform(platform.api_key)  # warm: cached, decrypted once
    assert verification.verify_signed(snapshot, user_id, signature).valid

    def raw() -> bool:
        expected = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    def app() -> bool:  # what session start calls
        return verification.verify_signed(snapshot, user_id, signature).valid

    number = 20_000 if quick else 100_000
    raw_runs, app_runs = [], []
    for _ in range(7):  # interleaved: each round's ratio against the raw HMAC beside it
        raw_runs.append(timeit.timeit(raw, number=number) / number)
        app_runs.append(timeit.timeit(app, number=number) / number)
    ratios = [a / r for a, r in zip(app_runs, raw_runs, strict=True)]
    return {
        "raw_hmac_us": round(statistics.median(raw_runs) * 1e6, 3),
        "app_verify_us": round(statistics.median(app_runs) * 1e6, 3),
        "verify_ratio": round(statistics.median(ratios), 3),
        "verify_ratio_spread": spread(ratios),
        "calls_per_run": number,
        **bench_token_verify(snapshot, user_id, raw, quick),
    }


def bench_token_verify(snapshot, user_id: str, raw: Callable[[], bool], quick: bool) -> dict:
    """HS256 tokens through ``verification.verify_signed``, as session start calls it.

    ``token_verify``: a token this process verified before (a client starting several
    sessions with one token): the remembered verdict, then the key, subject,
    lifetime and clock checks. ``token_first_verify``: a different token every call:
    the whole check each time. ``token_forged``: a wrong signature: the shape check
    and one HMAC per secret, no claim decoded (what an attacker can make us spend).
    """
    from trusted_identity import runtime
    from trusted_identity.services import (
        verification,
    )

    token = verification.sign_token(snapshot, user_id).token
    forged = token.rsplit(".", 1)[0] + "." + "A" * 43
    assert verification.verify_signed(snapshot, user_id, token).valid
    assert verification.verify_signed(snapshot, user_id, forged).reason == "no_match"
    number = 5_000 if quick else 20_000
    start = time.time()
    fresh = [  # all different, all valid for the next ten minutes at least
        verification.sign_token(
            snapshot, user_id, dt.timedelta(seconds=3600 - n // 1000), now=start - n % 1000
        ).token
        for n in range(number)
    ]
    assert all(verification.verify_signed(snapshot, user_id, t).valid for t in fresh[::997])

    def again() -> bool:
        return verification.verify_signed(snapshot, user_id, token).valid

    def first() -> bool:
        return verification.verify_signed(snapshot, user_id, next(pending)).valid

    def forgery() -> bool:
        return verification.verify_signed(snapshot, user_id, forged).valid

    runs: dict[str, list[float]] = {"raw": [], "again": [], "first": [], "forged": []}
    for _ in range(7):  # each round's ratios against the raw HMAC timed beside them
        runs["raw"].append(timeit.timeit(raw, number=number * 5) / (number * 5))
        runs["again"].append(timeit.timeit(again, number=number) / number)
        runtime.current().tokens.clear()  # every token unseen again
        pending = iter(fresh)
        runs["first"].append(timeit.timeit(first, number=number) / number)
        runs["forged"].append(timeit.timeit(forgery, number=number) / number)
    result: dict = {"token_calls_per_run": number}
    for name, key in (("again", "token_verify"), ("first", "token_first_verify"),
                      ("forged", "token_forged")):  # fmt: skip
        ratios = [t / r for t, r in zip(runs[name], runs["raw"], strict=True)]
        result[f"{key}_us"] = round(statistics.median(runs[name]) * 1e6, 3)
        result[f"{key}_ratio"] = round(statistics.median(ratios), 3)
        result[f"{key}_ratio_spread"] = spread(ratios)
    return result


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


def _start_gunicorn(
    env: dict[str, str], port: int, secret: str, app: str = "project.wsgi"
) -> subprocess.Popen:
    server_env = {
        **os.environ,
        **env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "BENCH_HANDWRITTEN_SECRET": secret,
    }
    process = subprocess.Popen(
        [str(Path(PYTHON).with_name("gunicorn")), "-c", "project/gunicorn.conf.py", app],
        cwd=ROOT,
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/trivial", data=b"{}", timeout=1)
            return process
        except urllib.error.HTTPError:  # it answers (bench/bare.py: 400 to this body)
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("gunicorn did not start: " + process.stderr.read().decode()[-2000:])


_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_PERCENTILE = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_STATUS = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_REQUESTS = re.compile(r"(\d+) requests in")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(
    url: str, api_key: str, body: str, seconds: int, connections: int, forged: bool = False
) -> dict:
    env = {**os.environ, "BENCH_BODY": body, "BENCH_API_KEY": api_key}
    if forged:
        env["BENCH_FORGED"] = "1"
    command = [
        "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
        "-s", str(ROOT / "bench" / "post.lua"), url,
    ]  # fmt: skip
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    percentiles = {p: float(v) * _UNITS[u] for p, v, u in _WRK_PERCENTILE.findall(output)}
    errors = _WRK_STATUS.search(output)
    return {
        "rps": float(_WRK_RPS.search(output).group(1)),
        "p50_ms": round(percentiles["50"], 3),
        "p99_ms": round(percentiles["99"], 3),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "requests": int(_WRK_REQUESTS.search(output).group(1)),
    }


def _worker_ticks(server: subprocess.Popen) -> dict[int, int]:
    """CPU ticks (user + system) used so far by a gunicorn master and each worker."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    pids = [server.pid, *map(int, children.read_text().split() if children.exists() else [])]
    ticks = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


def _server_cpu_seconds(server: subprocess.Popen) -> float:
    """CPU time used so far by a gunicorn master and its workers (user + system)."""
    return sum(_worker_ticks(server).values()) / os.sysconf("SC_CLK_TCK")


def _measured(server: subprocess.Popen, *args, run=None) -> dict:
    """A wrk round (``run``, else ``_wrk``, called with ``args``), with the server's CPU
    time per request, what a shared machine's other load changes least (requests/s fall
    when others take the cores; the work per request does not), and the busiest
    worker's share of it (a round one worker mostly served measures the balance)."""
    before = _worker_ticks(server)
    result = (run or _wrk)(*args)
    after = _worker_ticks(server)
    used = {pid: after[pid] - before.get(pid, 0) for pid in after if pid != server.pid}
    total = sum(after.values()) - sum(before.get(pid, 0) for pid in after)
    workers = sum(used.values())
    return result | {
        "cpu_us_per_request": round(
            total / os.sysconf("SC_CLK_TCK") * 1e6 / max(1, result["requests"]), 1
        ),
        "busiest_worker_share": round(max(used.values(), default=0) / workers, 3)
        if workers
        else 0.0,
    }


def bench_session_start(
    env: dict[str, str], platform, secret: str, quick: bool, round_count: int | None = None
) -> dict:
    from trusted_identity.services import verification
    from trusted_identity.signing import sign

    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (make bench installs Debian's wrk)")
    port = _free_port()
    server = _start_gunicorn(env, port, secret)
    bare_port = _free_port()
    bare = _start_gunicorn(env, bare_port, secret, app="bench.bare:application")
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
        names = list(targets)
        round_count = round_count or (1 if quick else 3)
        for round_index in range(round_count):  # interleaved rounds, median of each
            # A different order each round, so no target always runs after another.
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                process = bare if name == "bare" else server
                rounds[name].append(
                    _measured(
                        process, targets[name], platform.api_key, bodies[name], seconds, connections
                    )
                )
    finally:
        for process in (server, bare):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)

    def median_of(name: str) -> dict:
        runs = rounds[name]
        return {
            key: round(statistics.median(run[key] for run in runs), 3)
            for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")
        } | {"non_2xx": sum(run["non_2xx"] for run in runs)}

    result = {name: median_of(name) for name in targets}

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
        "workers": 2,
    }
    return result


def _worker_rss_mib(server: subprocess.Popen) -> list[float]:
    """Resident memory of the gunicorn workers (children of the master), in MiB."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    sizes = []
    for pid in children.read_text().split() if children.exists() else []:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(round(int(line.split()[1]) / 1024, 1))
    return sorted(sizes)


def bench_long_run(env: dict[str, str], platform, secret: str, quick: bool) -> dict:
    """Session start through the shipped server config for a minute, in 10-second rounds
    back to back: throughput must hold (no worker left idle), memory must stay flat."""
    from trusted_identity.signing import sign

    port = _free_port()
    server = _start_gunicorn(env, port, secret)
    body = json.dumps({"userId": "long-user", "signed": sign(secret, "long-user")})
    url = f"http://127.0.0.1:{port}/trusted-identity/v1/sessions"
    rounds = 2 if quick else 6
    try:
        _wrk(url, platform.api_key, body, 5, 16)  # warm every worker (5 s: both workers busy)
        memory_before = _worker_rss_mib(server)
        per_round = [_wrk(url, platform.api_key, body, 10, 16) for _ in range(rounds)]
        memory_after = _worker_rss_mib(server)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    rps = [round(r["rps"]) for r in per_round]
    return {
        "seconds": 10 * rounds,
        "rps_per_10s": rps,
        "worst_to_best": round(min(rps) / max(rps), 3),
        "non_2xx": sum(r["non_2xx"] for r in per_round),
        "worker_rss_mib_before": memory_before,
        "worker_rss_mib_after": memory_after,
    }


# ------------------------------------------------------------------------- admin


def _count_queries(client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(queries.captured_queries)


def bench_admin(quick: bool) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from trusted_identity.models import PlatformKind, Space
    from trusted_identity.services.spaces import add_platform, create_space

    user_model = get_user_model()
    admin_user = user_model.objects.create_superuser("bench-admin", "b@example.com", "x")
    client = Client()
    client.force_login(admin_user)

    few = create_space("admin-few")
    for kind in PlatformKind.values[:2]:
        add_platform(few, kind)
    many = create_space("admin-many")
    for kind in PlatformKind.values:
        add_platform(many, kind)

    def settings_url(space) -> str:
        return f"/admin/trusted_identity/space/{space.pk}/trusted-identity/"

    result = {
        "settings_page_queries_2_platforms": _count_queries(client, settings_url(few)),
        "settings_page_queries_6_platforms": _count_queries(client, settings_url(many)),
    }
    result["space_list_queries_few_spaces"] = _count_queries(
        client, "/admin/trusted_identity/space/"
    )

    total = 1000
    existing = Space.objects.count()
    Space.objects.bulk_create(
        [Space(slug=f"bulk-{n}", name=f"Bulk {n}") for n in range(total - existing)]
    )
    result["space_list_queries_1000_spaces"] = _count_queries(
        client, "/admin/trusted_identity/space/"
    )
    timings = []
    for _ in range(3 if quick else 7):
        start = time.perf_counter()
        response = client.get("/admin/trusted_identity/space/?all=")
        timings.append(time.perf_counter() - start)
        assert response.status_code == 200
        rows = response.content.count(b'name="_selected_action"')  # a checkbox a row
        assert rows == total, f"Show all rendered {rows} rows, not {total}"
    result["space_list_1000_spaces_ms"] = round(statistics.median(timings) * 1000, 1)
    result["space_list_rows_rendered"] = rows
    return result


# -------------------------------------------------------------------------- bulk


def bench_bulk(quick: bool) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from trusted_identity.crypto import generate_key
    from trusted_identity.keyring import get_key_ring
    from trusted_identity.models import Platform, PlatformSecret, Space
    from trusted_identity.services.rekey import rekey
    from trusted_identity.services.spaces import add_platform

    result: dict = {}
    count = 200 if quick else 1000
    spaces = Space.objects.bulk_create([Space(slug=f"rot-{n}", name=f"R{n}") for n in range(count)])
    for space in spaces:
        add_platform(space, "web")
    ids = list(Platform.objects.filter(space__in=spaces).values_list("pk", flat=True))
    user_model = get_user_model()
    admin_user = user_model.objects.filter(
        is_superuser=True
    ).first() or user_model.objects.create_superuser("bulk-admin", "a@example.com", "x")
    client = Client()
    client.force_login(admin_user)
    tracemalloc.start()
    start = time.perf_counter()
    # "Select all N platforms" in the changelist, as a person would with this many
    # (a POST naming 1,000 ids is over Django's DATA_UPLOAD_MAX_NUMBER_FIELDS).
    response = client.post(
        "/admin/trusted_identity/platform/?q=rot-",
        {
            "action": "rotate_secrets",
            "select_across": "1",
            "index": "0",
            "_selected_action": ids[:1],
            "post": "yes",
            "grace": "0",
        },
    )
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert response.status_code in (200, 302), response.status_code
    rotated = PlatformSecret.objects.filter(platform_id__in=ids).count()
    assert rotated >= 2 * len(ids), "the admin action did not rotate every platform"
    result["rotate_platforms"] = len(ids)
    result["rotate_admin_action_s"] = round(elapsed, 2)
    result["rotate_peak_mib"] = round(peak / 2**20, 1)

    # Re-key: enough secrets under the old key, then a new key first in the ring.
    secrets_target = 2_000 if quick else 10_000
    ring = get_key_ring()
    platforms = list(Platform.objects.values_list("pk", flat=True))
    rows, index = [], 0
    existing = PlatformSecret.objects.count()
    now = dt.datetime.now(dt.timezone.utc)
    while existing + len(rows) < secrets_target:
        pid = platforms[index % len(platforms)]
        index += 1
        rows.append(
            PlatformSecret(
                platform_id=pid,
                ciphertext="",  # bound to the row: encrypted once the row has its key
                created_at=now,
                retired_at=now,
                valid_until=now + dt.timedelta(days=1),
            )
        )
    PlatformSecret.objects.bulk_create(rows, batch_size=1000)
    for number, row in enumerate(rows):
        row.ciphertext = ring.encrypt(
            f"tis_web_bench{number}", PlatformSecret.associated_data(row.platform_id, row.pk)
        )
    PlatformSecret.objects.bulk_update(rows, ["ciphertext"], batch_size=1000)
    old_key = os.environ["TRUSTED_IDENTITY_ENCRYPTION_KEYS"]
    from django.conf import settings
    from django.test.utils import override_settings

    new_ring = {**settings.TRUSTED_IDENTITY, "ENCRYPTION_KEYS": f"{generate_key()},{old_key}"}
    with override_settings(TRUSTED_IDENTITY=new_ring):  # fires setting_changed: a new ring
        tracemalloc.start()
        start = time.perf_counter()
        outcome = rekey(batch_size=500)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert not outcome.failed and outcome.rekeyed == outcome.total
    result["rekey_secrets"] = outcome.total
    result["rekey_s"] = round(elapsed, 2)
    result["rekey_peak_mib"] = round(peak / 2**20, 1)
    return result


def bench_flood(env: dict[str, str], platform, secret: str, quick: bool) -> dict:
    """A flood of forged starts (each a new user id, a made-up signature) against a valid
    flood: server CPU per request, and the rows the failure log got (sampled and capped,
    so bounded whatever the flood)."""
    from trusted_identity.models import FailureRecord
    from trusted_identity.signing import sign

    port = _free_port()
    server = _start_gunicorn(env, port, secret)
    url = f"http://127.0.0.1:{port}/trusted-identity/v1/sessions"
    body = json.dumps({"userId": "load-user", "signed": sign(secret, "load-user")})
    seconds, connections = (3, 8) if quick else (8, 16)
    FailureRecord.objects.filter(platform=platform).delete()
    try:
        _wrk(url, platform.api_key, body, 1, connections)  # warm
        valid = _measured(server, url, platform.api_key, body, seconds, connections)
        forged = _measured(server, url, platform.api_key, body, seconds, connections, True)
        time.sleep(1.5)  # the workers' last flush
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    rows = FailureRecord.objects.filter(platform=platform).count()
    from trusted_identity.conf import app_settings

    bound = min(
        app_settings.FAILURE_LOG_MAX_ROWS,
        app_settings.FAILURE_LOG_PER_SECOND * 2 * (seconds + 1),  # per second, per worker
    )
    return {
        "valid_flood": valid,
        "forged_flood": forged,
        "forged_starts": forged["requests"],
        "forged_vs_valid_cpu": round(forged["cpu_us_per_request"] / valid["cpu_us_per_request"], 3),
        "failure_log_rows_written": rows,
        "failure_log_rows_bound": bound,
        "failure_log_bounded": rows <= bound,
    }


# ------------------------------------------------------------------------ report


TARGETS = {
    ("verify", "verify_ratio"): ("<=", 1.2),
    ("session_start", "session_start_vs_trivial"): (">=", 0.9),
    # The lean path against the limit (issue 14): 0.6 with PostgreSQL and Redis, 0.5 in
    # the default set-up (SQLite, local memory); print_table picks the one that applies.
    ("session_start", "session_start_vs_bare"): (">=", 0.6),
    ("verify", "token_verify_ratio"): ("<=", 3.0),
    ("verify", "token_first_verify_ratio"): ("<=", 3.0),
    ("verify", "token_forged_ratio"): ("<=", 3.0),
    ("session_start", "session_start_token_vs_trivial"): (">=", 0.85),
    ("session_start", "read_queries_per_session_start"): ("<=", 0),
    ("session_start", "write_queries_per_session_start"): ("<=", 1),
    ("long_run", "worst_to_best"): (">=", 0.8),
    ("flood", "forged_vs_valid_cpu"): ("<=", 2.0),
    ("pk_session_start", "session_start_es256_first_vs_trivial"): (">=", 0.7),
    ("pk_flood", "forged_vs_valid_cpu"): ("<=", 2.0),
}


def signing_of(secret: str, user_id: str) -> str:
    from trusted_identity.signing import sign

    return sign(secret, user_id)


def results_file(only: list[str] | None) -> Path:
    """``bench/results.json`` for a whole run; a run of some sections alone writes
    ``bench/results-<sections>.json`` and leaves the whole run's figures alone."""
    if not only or set(only) == set(SECTIONS):
        return RESULTS
    return RESULTS.with_name(f"results-{'-'.join(sorted(set(only)))}.json")


def print_table(results: dict, written: Path = RESULTS) -> None:
    print()
    print(f"trusted-identity benchmarks  {results['date']}  {results['machine']['summary']}")
    print(f"database: {results['database']}   cache: {results['cache']}")
    print("-" * 78)
    for section in (
        "verify", "session_start", "flood", "long_run", "admin", "bulk",
        "pk_verify", "pk_session_start", "pk_flood",
    ):  # fmt: skip
        values = results.get(section)
        if not values:
            continue
        for key, value in values.items():
            if isinstance(value, dict) and "rps" in value:
                value = (
                    f"{value['rps']:.0f} req/s, p50 {value['p50_ms']:.2f} ms, "
                    f"p99 {value['p99_ms']:.2f} ms, non-2xx {value['non_2xx']}"
                ) + (
                    f", {value['cpu_us_per_request']:.0f} µs CPU/req"
                    if "cpu_us_per_request" in value
                    else ""
                )
            elif isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            target = TARGETS.get((section, key))
            if key == "session_start_vs_bare" and results["cache"] != "redis":
                target = (">=", 0.5)
            mark = ""
            if target:
                op, limit = target
                ok = value <= limit if op == "<=" else value >= limit
                mark = f"  [target {op} {limit}: {'met' if ok else 'MISSED'}]"
            print(f"{section:<14} {key:<38} {value}{mark}")
    if results.get("serving"):
        from bench import serving

        print("serving (req/s median [min-max] of the counted rounds; ratios per round):")
        serving.print_table(results["serving"])
    if results.get("hold"):
        hold = results["hold"]
        for mode in [k for k in hold if k.startswith(("keepalive", "reconnect"))]:
            verdict = hold[mode]
            print(
                f"hold {mode:<22} req/s {verdict['rps']} worst/best {verdict['worst_to_best']} "
                f"[target >= 0.85], busiest worker {verdict['max_share']} [target <= 0.65]"
            )
    print("-" * 78)
    print(f"written to {written.relative_to(ROOT)}")


SECTIONS = [
    "verify", "session_start", "flood", "long_run", "admin", "bulk", "public_keys", "serving",
    "hold",
]  # fmt: skip


def argument_parser() -> argparse.ArgumentParser:
    from bench.serving import SERVERS

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
        default="gunicorn",
        choices=sorted(SERVERS),
        help="the server the hold section runs the site under (default: make serve's, gunicorn)",
    )
    return parser


def main() -> int:
    parser = argument_parser()
    args = parser.parse_args()
    sections = set(args.only or SECTIONS)
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as workdir:
        env = configure_environment(Path(workdir))
        setup_django()
        from django.db import connection

        platform, secret = make_platform()
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
        }
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

            body = json.dumps({"userId": "load-user", "signed": signing_of(secret, "load-user")})
        if "serving" in sections:
            results["serving"] = serving.compare(
                env, platform.api_key, secret, body,
                servers=[n for n in serving.SERVERS if serving.installed(n)],
                rounds=args.rounds or (1 if args.quick else 5),
                seconds=2 if args.quick else 5, connections=8 if args.quick else 16,
            )  # fmt: skip
        if "hold" in sections:
            results["hold"] = serving.hold(
                env, platform.api_key, secret, body, server=args.hold_server,
                keepalive_rounds=2 if args.quick else 10, reconnect_rounds=1 if args.quick else 5,
                seconds=2 if args.quick else 5,
            )  # fmt: skip
    written = results_file(args.only)
    written.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results, written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
