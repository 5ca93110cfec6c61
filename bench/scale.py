"""``make bench-scale``: what the app costs as its data grows, and what ``prune`` keeps.

For each size (spaces x days of hourly counts, six platforms a space, five outcomes an
hour; ``--details`` adds four detail counts an hour), in a throw-away PostgreSQL
database: load the counts oldest first (``generate_series``, one statement a day),
measure the tables and indexes, every admin page (time and queries: the counts must be
the same at every size), ``status`` for one space and for all, a warm session start,
and a gunicorn worker's memory under load; then run ``prune`` (rows a second, and the
dead row versions it leaves: ``pg_stat_user_tables.n_dead_tup`` and ``pgstattuple``)
and measure again. Prints a table and writes ``bench/scale-results.json``.

The default sizes (10 spaces x 7 days, 200 x 90: 13 million rows) take about a quarter
of an hour here; the full sizes of the issue that asked for it are
``--sizes 10x7,200x90,1000x90`` (about 65 million rows at the largest; allow an hour
or two and 15 GB of disk).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "scale-results.json"
DATABASE = os.environ.get("BENCH_SCALE_DATABASE", "trusted_identity_scale")
KINDS = ["web", "ios", "android", "tvos", "androidtv", "roku"]
#: Targets of the issues: all-spaces status at 6,000 platforms x 90 days; prune's pace.
STATUS_ALL_TARGET_MS = 300
PRUNE_ROWS_PER_SECOND_TARGET = 100_000
COUNT_TABLES = (
    "trusted_identity_outcomecount",
    "trusted_identity_dailyoutcomecount",
    "trusted_identity_detailcount",
    "trusted_identity_dailydetailcount",
    "trusted_identity_dailyoutcometotal",
    "trusted_identity_dailydetailtotal",
)


def _psql(sql: str, database: str = "postgres") -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-q", "-c", sql],
        check=True,
        capture_output=True,
    )


def _timed(call, repeat: int = 5) -> float:
    """Median milliseconds of ``call()`` over ``repeat`` runs (after one warm-up)."""
    call()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        runs.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(runs), 1)


def _queries(call) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as context:
        call()
    return len(context.captured_queries)


def _sizes() -> dict:
    from django.db import connection

    result = {}
    with connection.cursor() as cursor:
        for table in COUNT_TABLES:
            cursor.execute(
                "SELECT pg_relation_size(%s), pg_indexes_size(%s), "
                "(SELECT COUNT(*) FROM " + table + ")",
                [table, table],
            )
            heap, indexes, rows = cursor.fetchone()
            name = table.removeprefix("trusted_identity_")
            result[name] = {
                "rows": rows,
                "heap_mib": round(heap / 2**20, 1),
                "indexes_mib": round(indexes / 2**20, 1),
            }
    return result


def load(spaces: int, days: int, details: bool = False) -> None:
    """Spaces, platforms with a current secret, and hourly counts oldest first: set-based
    (``generate_series``), one statement a day, so 65 million rows load in minutes."""
    from django.db import connection
    from django.utils import timezone

    from trusted_identity.models import Platform, PlatformSecret, Space

    # A few thousand rows: the ORM's bulk inserts (every column's default kept).
    Space.objects.bulk_create(
        [Space(slug=f"scale-{n:05d}", name=f"Scale {n}") for n in range(spaces)], batch_size=2000
    )
    Platform.objects.bulk_create(
        [
            Platform(space_id=space_id, kind=kind, api_key=f"tik_scale_{space_id}_{kind}")
            for space_id in Space.objects.values_list("pk", flat=True)
            for kind in KINDS
        ],
        batch_size=5000,
    )
    now = timezone.now()
    PlatformSecret.objects.bulk_create(
        [
            PlatformSecret(platform_id=pk, ciphertext="unused", created_at=now)
            for pk in Platform.objects.values_list("pk", flat=True)
        ],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")  # a throw-away database
        hours = (
            "generate_series(date_trunc('hour', now()) - make_interval(days => %s) "
            "- interval '23 hours', date_trunc('hour', now()) - make_interval(days => %s), "
            "interval '1 hour') h"
        )
        for day in range(days, -1, -1):  # oldest first, as a real install fills it
            cursor.execute(
                "INSERT INTO trusted_identity_outcomecount (platform_id, hour, outcome, count) "
                f"SELECT p.id, h, o, 1 + (random() * 50)::int FROM trusted_identity_platform p, "
                f"{hours}, unnest(ARRAY['valid','invalid','missing','visitor','rejected']) o",
                [day, day],
            )
            if details:
                cursor.execute(
                    "INSERT INTO trusted_identity_detailcount "
                    "(platform_id, hour, dimension, value, outcome, count) "
                    "SELECT p.id, h, d.dimension, d.value, d.outcome, 1 + (random() * 9)::int "
                    f"FROM trusted_identity_platform p, {hours}, (VALUES "
                    "('reason', 'no_match', 'invalid'), ('reason', 'malformed', 'invalid'), "
                    "('form', 'plain', 'valid'), ('secret', '1', 'valid')) "
                    "d(dimension, value, outcome)",
                    [day, day],
                )
        # The day totals the count writer keeps beside the hourly rows (daytotals.py):
        # the hourly rows by UTC day, stored day after day as a live install makes them
        # (a window's days are then the table's last pages, as they would be).
        cursor.execute(
            "INSERT INTO trusted_identity_dailyoutcometotal "
            "(platform_id, day, outcome, count, first_hour) "
            "SELECT platform_id, (hour AT TIME ZONE 'UTC')::date, outcome, sum(count), min(hour) "
            "FROM trusted_identity_outcomecount GROUP BY 1, 2, 3 ORDER BY 2, 1, 3"
        )
        if details:  # reasons and forms: daily totals too (versions are daily already)
            cursor.execute(
                "INSERT INTO trusted_identity_dailydetailtotal "
                "(platform_id, day, dimension, value, outcome, count) "
                "SELECT platform_id, (hour AT TIME ZONE 'UTC')::date, dimension, value, "
                "outcome, sum(count) FROM trusted_identity_detailcount GROUP BY 1, 2, 3, 4, 5 "
                "ORDER BY 2, 1, 3, 4, 5"
            )
        cursor.execute("SET synchronous_commit = on")
        for table in COUNT_TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")


def admin_pages(space, platform) -> dict[str, str]:
    """Every admin page a person reads (GET), for the first space and its web platform."""
    base = "/admin/trusted_identity"
    space_page = f"{base}/space/{space.pk}/trusted-identity"
    return {
        "admin_index": "/admin/",
        "app_index": f"{base}/",
        "settings_page": f"{space_page}/",
        "space_list": f"{base}/space/",
        "space_change": f"{base}/space/{space.pk}/change/",
        "platform_list": f"{base}/platform/",
        "platform_change": f"{base}/platform/{platform.pk}/change/",
        "membership_list": f"{base}/spacemembership/",
        "failure_log": f"{base}/failurerecord/",
        "audit_trail": f"{base}/auditevent/",
        "policy_history": f"{base}/policychange/",
        "enforcement_page": f"{space_page}/web/enforcement/?enabled=on",  # with the evidence
        "signature_form_page": f"{space_page}/web/signature-form/?form=token",
        "revoke_previous_page": f"{space_page}/web/revoke-previous/",
        "rotate_page": f"{space_page}/web/rotate/",
        "test_signature_page": f"{space_page}/web/test-signature/",
    }


def measure(label: str) -> dict:
    import json as json_module

    from django.contrib.auth import get_user_model
    from django.test import Client

    from trusted_identity.models import Space
    from trusted_identity.services import access, diagnostics, platform_secrets
    from trusted_identity.services.spaces import add_platform, create_space
    from trusted_identity.signing import sign

    user_model = get_user_model()
    admin_user = user_model.objects.filter(username="scale-admin").first()
    if admin_user is None:
        admin_user = user_model.objects.create_superuser("scale-admin", "s@example.com", "x")
    client = Client()
    client.force_login(admin_user)
    space = Space.objects.order_by("pk").first()
    web = space.platforms.get(kind="web")

    def get(url: str):
        def call():
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        return call

    live = create_space(f"live-{label}")
    platform = add_platform(live, "web")
    secret = platform_secrets.reveal_secret(platform, access.get_cli_actor())
    body = json_module.dumps({"userId": "u", "signed": sign(secret, "u")})

    def start():
        response = client.post(
            "/trusted-identity/v1/sessions",
            body,
            "application/json",
            HTTP_X_API_KEY=platform.api_key,
        )
        assert response.status_code == 201

    pages = {name: get(url) for name, url in admin_pages(space, web).items()}
    result: dict = {"tables": _sizes(), "pages": {}}
    for name, call in pages.items():
        result["pages"][name] = {"ms": _timed(call, repeat=3), "queries": _queries(call)}
    for name in ("settings_page", "space_list", "platform_list"):  # the table's columns
        result[f"{name}_ms"] = result["pages"][name]["ms"]
        result[f"{name}_queries"] = result["pages"][name]["queries"]
    result["status_one_space_ms"] = _timed(lambda: diagnostics.status(space.slug))
    result["status_all_spaces_ms"] = _timed(lambda: diagnostics.status(None), repeat=3)
    # What plain `status` reads (no reasons, forms or versions: it prints none).
    result["status_all_plain_ms"] = _timed(
        lambda: diagnostics.status(None, details=False), repeat=3
    )
    result["session_start_warm_ms"] = _timed(start, repeat=200 // 5)
    result["session_start_queries"] = _queries(start)
    return result


def worker_memory(env: dict[str, str]) -> dict:
    """A gunicorn worker's memory before and after 10 s of session starts (wrk)."""
    from bench.load import _free_port, _start_gunicorn, _wrk
    from bench.run import _worker_rss_mib
    from trusted_identity.services import access, platform_secrets
    from trusted_identity.services.spaces import add_platform, create_space
    from trusted_identity.signing import sign

    space = create_space(f"memory-{time.monotonic_ns()}")
    platform = add_platform(space, "web")
    secret = platform_secrets.reveal_secret(platform, access.get_cli_actor())
    port = _free_port()
    server = _start_gunicorn(env, port, secret)
    try:
        before = _worker_rss_mib(server)
        body = json.dumps({"userId": "m", "signed": sign(secret, "m")})
        url = f"http://127.0.0.1:{port}/trusted-identity/v1/sessions"
        run = _wrk(url, platform.api_key, body, 10, 16)
        after = _worker_rss_mib(server)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a loaded machine: don't lose the figures
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
    return {"rss_mib_before": before, "rss_mib_after": after, "rps": round(run["rps"])}


def dead_rows() -> dict:
    """Dead row versions per count table: the statistics' ``n_dead_tup`` (after this
    connection's pending statistics are flushed) and ``pgstattuple``'s count of the
    dead tuples really in the pages."""
    from django.db import connection

    result = {}
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        cursor.execute("SELECT pg_stat_force_next_flush()")  # sent when this one ends
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        for table in COUNT_TABLES:
            cursor.execute(
                "SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE relname = %s",
                [table],
            )
            live, dead = cursor.fetchone()
            cursor.execute("SELECT dead_tuple_count FROM pgstattuple(%s)", [table])
            result[table.removeprefix("trusted_identity_")] = {
                "n_live_tup": live,
                "n_dead_tup": dead,
                "pgstattuple_dead": cursor.fetchone()[0],
            }
    return result


def run_size(spaces: int, days: int, env: dict[str, str], options: argparse.Namespace) -> dict:
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connections

    from trusted_identity import runtime
    from trusted_identity.services import retention

    # The last size's buffered counts are written to its own database before it goes,
    # not retried into the next one while it is made.
    runtime.current().stop()
    connections.close_all()
    _psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    _psql(f"CREATE DATABASE {DATABASE}")
    call_command("migrate", verbosity=0, interactive=False)
    cache.clear()
    runtime.current().reset()
    started = time.perf_counter()
    load(spaces, days, details=options.details)
    result: dict = {
        "spaces": spaces,
        "platforms": spaces * len(KINDS),
        "days": days,
        "details": options.details,
        "load_s": round(time.perf_counter() - started, 1),
    }
    result["before_prune"] = measure("before")
    dead_before = dead_rows()
    report = retention.prune()
    rate = report.hourly_rows_folded / report.seconds if report.seconds else 0.0
    result["prune"] = {
        "seconds": round(report.seconds, 2),
        "hourly_rows_folded": report.hourly_rows_folded,
        "rows_per_second": round(rate),
        "target_rows_per_second": PRUNE_ROWS_PER_SECOND_TARGET,
        "vacuumed": report.vacuumed,
        "dead_rows_before": dead_before,
        "dead_rows_after": dead_rows(),
    }
    result["after_prune"] = measure("after")
    again = retention.prune()
    result["prune_again_s"] = round(again.seconds, 2)
    if not options.no_server:
        result["worker_memory"] = worker_memory(env)
    return result


def flat_queries(results: dict) -> dict[str, list[int]]:
    """The pages whose query count moved as the data grew: compared between sizes in the
    same phase (before any prune a page asks once more whether prune is overdue)."""
    seen: dict[tuple[str, str], set[int]] = {}
    for size in results["sizes"]:
        for phase in ("before_prune", "after_prune"):
            for name, page in size[phase]["pages"].items():
                seen.setdefault((phase, name), set()).add(page["queries"])
            seen.setdefault((phase, "session_start"), set()).add(
                size[phase]["session_start_queries"]
            )
    return {f"{p}:{n}": sorted(counts) for (p, n), counts in seen.items() if len(counts) > 1}


def print_table(results: dict, output: Path = RESULTS) -> None:
    print()
    print(f"trusted-identity scale benchmark  {results['date']}  {results['machine']}")
    header = (
        f"{'size':<16}{'phase':<8}{'hourly rows':>12}{'MiB heap+idx':>14}{'daily rows':>11}"
        f"{'settings':>9}{'spaces':>8}{'platfs':>8}{'status1':>8}{'statusA':>8}{'plainA':>8}"
        f"{'start':>7}"
    )
    print(header)
    print("-" * len(header))
    for size in results["sizes"]:
        label = f"{size['spaces']}x{size['days']}d"
        for phase in ("before_prune", "after_prune"):
            m = size[phase]
            hourly, daily = m["tables"]["outcomecount"], m["tables"]["dailyoutcomecount"]
            print(
                f"{label:<16}{phase.split('_')[0]:<8}{hourly['rows']:>12,}"
                f"{hourly['heap_mib'] + hourly['indexes_mib']:>14,.1f}{daily['rows']:>11,}"
                f"{m['settings_page_ms']:>9}{m['space_list_ms']:>8}{m['platform_list_ms']:>8}"
                f"{m['status_one_space_ms']:>8}{m['status_all_spaces_ms']:>8}"
                f"{m.get('status_all_plain_ms', '-'):>8}{m['session_start_warm_ms']:>7}"
            )
        prune = size["prune"]
        dead = prune["dead_rows_after"]["outcomecount"]
        print(
            f"{'':<16}prune {prune['seconds']} s ({prune['hourly_rows_folded']:,} rows folded, "
            f"{prune['rows_per_second']:,} rows/s, target {PRUNE_ROWS_PER_SECOND_TARGET:,}), "
            f"again {size['prune_again_s']} s; hourly dead rows after: n_dead_tup "
            f"{dead['n_dead_tup']:,}, pgstattuple {dead['pgstattuple_dead']:,}"
        )
        memory = size.get("worker_memory")
        if memory:
            print(
                f"{'':<16}worker RSS {memory['rss_mib_before']} -> {memory['rss_mib_after']} MiB "
                f"at {memory['rps']} req/s"
            )
    print(
        "(times in ms, medians; settings/spaces/platfs are admin pages; statusA is "
        "status --json of all spaces, plainA plain status)"
    )
    moved = results.get("queries_not_flat", {})
    pages = len(results["sizes"][0]["before_prune"]["pages"]) if results["sizes"] else 0
    print(
        f"queries per page ({pages} admin pages and a session start) flat across sizes: "
        + ("yes" if not moved else f"NO: {moved}")
    )
    slowest = max(
        (size[phase]["status_all_spaces_ms"] for size in results["sizes"]
         for phase in ("before_prune", "after_prune")),
        default=0,
    )  # fmt: skip
    plain = max(
        (size[phase].get("status_all_plain_ms", 0) for size in results["sizes"]
         for phase in ("before_prune", "after_prune")),
        default=0,
    )  # fmt: skip
    print(
        f"all-spaces status, slowest: --json {slowest} ms, plain {plain} ms "
        f"(target <= {STATUS_ALL_TARGET_MS} ms)"
    )
    print(f"written to {output}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="10x7,200x90",
        help="spaces x days of hourly counts, comma-separated (full: 10x7,200x90,1000x90)",
    )
    parser.add_argument(
        "--details", action="store_true", help="detail counts too (four rows an hour)"
    )
    parser.add_argument(
        "--no-server", action="store_true", help="skip the gunicorn worker's memory under load"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args()
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes.split(",")]
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    from trusted_identity.crypto import generate_key

    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_READ_DOT_ENV": "0",
        "DEBUG": "0",
        "SECRET_KEY": "scale-" + os.urandom(24).hex(),
        "TRUSTED_IDENTITY_ENCRYPTION_KEYS": generate_key(),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        "CACHE_URL": os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/15"),
    }
    os.environ.update(env)
    _psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    _psql(f"CREATE DATABASE {DATABASE}")
    import django

    django.setup()
    import platform as platform_module

    results = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform_module.machine()}, {os.cpu_count()} cores, "
        f"Python {platform_module.python_version()}, PostgreSQL + Redis",
        "sizes": [],
    }
    for spaces, days in sizes:
        print(f"size {spaces} spaces x {days} days...", flush=True)
        results["sizes"].append(run_size(spaces, days, env, args))
        results["queries_not_flat"] = flat_queries(results)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    from django.db import connections

    from trusted_identity import runtime

    runtime.current().stop()  # the last starts' counts written before the database goes
    connections.close_all()
    _psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    print_table(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
