import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
from django.core.cache import caches
from django.db.models.signals import post_delete, post_save
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from trusted_identity import outcomes, runtime
from trusted_identity.models import PlatformSecret
from trusted_identity.services import access

from . import hardening, isolation, migrated
from .factories import PlatformFactory, SpaceFactory, SuperuserFactory
from .lean_client import LeanASGIClient, LeanClient
from .spread import end_to_end_modules, end_to_end_name

# Property-based tests (tests/test_fuzz.py). "ci" is reproducible: the same
# examples every run, no example database, no deadline (CI machines vary). Each
# test sets its own max_examples; FUZZ_SCALE=10 multiplies them for a longer hunt,
# HYPOTHESIS_PROFILE=explore also randomises.
hypothesis_settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # fixtures set up once per test, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
hypothesis_settings.register_profile(
    "explore", parent=hypothesis_settings.get_profile("ci"), derandomize=False
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

VECTORS_FILE = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "node-hmac-sha256.json"
LOCAL_VECTORS_FILE = Path(__file__).resolve().parent / "data" / "node-hmac-sha256.json"


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test starts with empty caches and a fresh runtime: no state leaks between tests.
    A Redis cache is emptied under its own key prefix only (tests/isolation.py)."""
    for alias in caches:
        isolation.clear_cache(caches[alias])
    runtime.current().reset()
    yield
    for alias in caches:
        isolation.clear_cache(caches[alias])


# ------------------------------------------------------------ runs kept apart
#
# tests/isolation.py says how: two runs at once on one machine, and the pytest-xdist
# workers of one run, share no database, Redis key, port or temporary file.


#: Modules whose tests start servers, compilers or whole sites in other processes and use
#: no test database: they run first, so that pytest-xdist's workers end the run on
#: short tests instead of one waiting on a long one (pytest-django runs the database
#: tests in Django's order, and puts the others last).
START_FIRST = {
    "test_multiprocess.py",
    "test_multiprocess_keys.py",
    "test_graceful_stop.py",
    "test_deployment.py",
    "test_cache_identity.py",
    "test_adoption.py",
    "test_signing_examples.py",
    "test_token_interop.py",
}


def _uses_test_database(item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    database_fixtures = _DB_FIXTURES | {"django_db_setup"}
    return bool(item.get_closest_marker("django_db") or database_fixtures & fixtures)


def pytest_itemcollected(item):
    """A test that can't reach the test database (no ``django_db`` mark, no database
    fixture: pytest-django refuses it any query) answers the same whatever
    ``DATABASE_URL`` says, unless it is marked ``postgres`` (it reaches PostgreSQL its
    own way): it is ``any_database``, and ``make test-postgres`` leaves it to ``make test``."""
    if not _uses_test_database(item) and not item.get_closest_marker("postgres"):
        item.add_marker(pytest.mark.any_database)


def pytest_addoption(parser):
    parser.addoption(
        "--server-setups",
        default="",
        help="the server set-ups the cross-process tests run, comma-separated: "
        "tests/test_multiprocess.py's (runserver-locmem, gunicorn-locmem, gunicorn-redis, "
        "uwsgi-threads, uwsgi-no-threads) and tests/test_graceful_stop.py's (make-serve, "
        "gthread, sync); all of them when empty. The version matrix spreads them.",
    )
    parser.addoption(
        "--end-to-end",
        default="",
        help="the modules whose end_to_end tests run, comma-separated, each named "
        "without its test_ prefix (deployment, cli, ...); all of them when empty. The "
        "version matrix spreads them.",
    )


def _deselect(config, items, dropped_when) -> list:
    """The items ``dropped_when`` does not drop; the dropped ones reported to pytest."""
    kept, dropped = [], []
    for item in items:
        (dropped if dropped_when(item) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    return kept


def _deselect_server_setups(config, items) -> list:
    """The items left once the set-ups ``--server-setups`` does not name are out."""
    chosen = {name for name in config.getoption("server_setups").split(",") if name}
    if not chosen:
        return items
    from .site_process import server_setups

    known = server_setups()
    if unknown := chosen - set(known):
        raise pytest.UsageError(f"--server-setups: no set-up named {', '.join(sorted(unknown))}")
    params = {module: param for module, param in known.values()}

    def unchosen(item) -> bool:
        setup = getattr(getattr(item, "callspec", None), "params", {}).get(
            params.get(item.path.name)
        )
        return setup is not None and setup not in chosen

    return _deselect(config, items, unchosen)


def _deselect_end_to_end(config, items) -> list:
    """The items left once the ``end_to_end`` tests of modules ``--end-to-end`` does not
    name are out."""
    chosen = {name for name in config.getoption("end_to_end").split(",") if name}
    if not chosen:
        return items
    if unknown := chosen - end_to_end_modules():
        raise pytest.UsageError(
            f"--end-to-end: no module of end-to-end tests named {', '.join(sorted(unknown))}"
        )
    return _deselect(
        config,
        items,
        lambda item: (
            item.get_closest_marker("end_to_end") is not None
            and end_to_end_name(item.path) not in chosen
        ),
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    items[:] = _deselect_end_to_end(config, _deselect_server_setups(config, items))
    items.sort(
        key=lambda item: not (item.path.name in START_FIRST and not _uses_test_database(item))
    )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist: every worker knows its run by the controlling process."""
    node.workerinput["ti_run_pid"] = os.getpid()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request, django_db_blocker):
    """Test databases on a server are named for the run and the worker
    (``test_trusted_identity_r4242_gw0``): two runs at once never share one. The
    databases of runs that died are dropped first (pytest-django drops a run's own)."""
    from django.conf import settings

    worker = getattr(request.config, "workerinput", {}).get("workerid")
    run = isolation.run_suffix(request.config)
    for alias, db in settings.DATABASES.items():
        name = db.get("TEST", {}).get("NAME")
        if db["ENGINE"] == "django.db.backends.sqlite3" and (
            not name or name == ":memory:" or "mode=memory" in name
        ):
            continue  # in memory: each process has its own
        base = name or f"test_{db['NAME']}"
        with django_db_blocker.unblock():
            isolation.drop_stale_test_databases(alias, base)
        db.setdefault("TEST", {})["NAME"] = "_".join(filter(None, [base, run, worker]))


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, and behind PgBouncer (make test-pgbouncer) the pooler's idle
    server sessions on the test databases ended first, or PostgreSQL refuses the drop."""
    yield
    if os.environ.get("TEST_PGBOUNCER_PORT"):
        with django_db_blocker.unblock():
            isolation.end_pooled_sessions()


@pytest.fixture
def redis_namespace():
    """A key prefix of this test's own in the tests' Redis db, emptied afterwards; skips
    without Redis (fails when CI is set)."""
    isolation.need_redis()
    namespace = isolation.RedisNamespace()
    yield namespace
    namespace.clear()


@pytest.fixture
def compare_digest_calls(monkeypatch):
    """Every ``hmac.compare_digest`` call, as the lengths it compared: constant-time
    comparison against every key, without stopping at a match, is asserted on it."""
    import hmac

    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    return calls


# ------------------------------------------------------ both session-start paths
#
# Tests marked ``both_paths`` run on every path: with Django's test client (the view
# behind the site's middleware) and with tests/lean_client.py's two clients (the WSGI
# and the ASGI ``LeanSessions`` in front of Django, called as a server calls them).
# Same assertions, every path.


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("both_paths") and "client" in metafunc.fixturenames:
        metafunc.parametrize("session_path", ["django", "lean", "lean_asgi"], indirect=True)


@pytest.fixture
def session_path(request):
    return getattr(request, "param", "django")


@pytest.fixture
def client(session_path):
    from django.test import Client

    if session_path == "lean_asgi":
        return LeanASGIClient()
    return LeanClient() if session_path == "lean" else Client()


# --------------------------------------------------------------- the browser
#
# One Chromium for the whole run, shared by every browser test module
# (Playwright's sync API can run only one instance per thread): Debian's
# /usr/bin/chromium, no Playwright browser download.

CHROMIUM = Path(os.environ.get("TRUSTED_IDENTITY_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing_browser(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        _missing_browser(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        _missing_browser("Playwright for Python is not installed")
    executable = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium"))
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def node_vectors():
    """The vectors computed with Node's crypto (shared/, or the copy kept in tests/data/)."""
    path = VECTORS_FILE if VECTORS_FILE.exists() else LOCAL_VECTORS_FILE
    return json.loads(path.read_text(encoding="utf-8"))["vectors"]


@pytest.fixture
def space(db):
    return SpaceFactory(slug="acme", name="Acme")


@pytest.fixture
def platform(space):
    return PlatformFactory(space=space, kind="ios")


@pytest.fixture
def superuser(db):
    return SuperuserFactory(username="root")


@pytest.fixture
def cli_actor(db):
    return access.get_cli_actor()


@pytest.fixture
def counts_as_served(settings, monkeypatch):
    """Counts kept as a serving process keeps them: no transaction around a start (the
    test's own is hidden from the counting), buffered for ``COUNT_FLUSH_INTERVAL`` (60 s
    here, so the writer thread writes nothing during the test); reading the figures
    writes what is buffered first, as in production. For tests that send thousands of
    starts: inside the test's transaction each start's counts are written at once (13
    statements, about 1 ms on SQLite), which the counting tests cover."""
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "COUNT_FLUSH_INTERVAL": 60}
    monkeypatch.setattr(outcomes, "in_transaction", lambda: False)


# ------------------------------------------------------- suite-wide leak check
#
# Every log record of every logger, at every level, is kept for the whole run;
# every platform secret the run stores is decrypted and remembered (when saved,
# when deleted, and before each test's rollback). At the end each secret is
# searched for in every record (tests/hardening.py) and the figures are printed.

_DB_FIXTURES = {
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
    "live_server",
}


def _remember_row(row: PlatformSecret) -> None:
    try:
        hardening.remember_secret(row.get_secret())
    except Exception:  # tests break ciphertexts and swap keys on purpose
        hardening.count("leak_rows_undecryptable")


def _remember_saved(sender, instance, **kwargs):
    _remember_row(instance)


@pytest.fixture(scope="session", autouse=True)
def _capture_every_log_record():
    root = logging.getLogger()
    changed = {}
    for name in ("", "trusted_identity", "trusted_identity.audit", "django"):
        logger = logging.getLogger(name)
        changed[name] = (logger.level, logger.propagate)
        logger.setLevel(logging.DEBUG)
        if name:
            logger.propagate = True
    # Except the template engine's DEBUG records: each failed variable lookup logs the
    # repr() of the whole context, which runs the querysets in it (the admin's query
    # count tests would see them) and costs a traceback each. tests/test_leaks.py
    # turns them on around every admin page, the reveal included.
    template_logger = logging.getLogger("django.template")
    changed["django.template"] = (template_logger.level, template_logger.propagate)
    template_logger.setLevel(logging.INFO)
    root.addHandler(hardening.LOG)
    post_save.connect(_remember_saved, sender=PlatformSecret, weak=False, dispatch_uid="ti-leaks")
    post_delete.connect(
        _remember_saved, sender=PlatformSecret, weak=False, dispatch_uid="ti-leaks-del"
    )
    yield
    post_save.disconnect(sender=PlatformSecret, dispatch_uid="ti-leaks")
    post_delete.disconnect(sender=PlatformSecret, dispatch_uid="ti-leaks-del")
    root.removeHandler(hardening.LOG)
    for name, (level, propagate) in changed.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).propagate = propagate


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Before the test's rollback: remember every secret its database holds."""
    uses_db = item.get_closest_marker("django_db") or _DB_FIXTURES & set(item.fixturenames)
    if not uses_db:
        return
    try:
        rows = list(PlatformSecret.objects.only("pk", "platform_id", "ciphertext"))
    except Exception:  # the test broke the connection on purpose (tests/test_faults.py)
        return
    hardening.count("leak_sweeps")
    for row in rows:
        _remember_row(row)


def _hardening_report() -> dict:
    """This process's figures, and how many of its secrets its logs hold (with up to
    five of those records, the secret masked)."""
    texts = hardening.LOG.texts
    leaked = hardening.find_leaks(hardening.SECRETS, texts)
    hardening.FIGURES["leak_secrets_checked"] = len(hardening.SECRETS)
    hardening.FIGURES["leak_log_records_searched"] = len(texts)
    hardening.FIGURES["leak_log_chars_searched"] = sum(map(len, texts))
    hardening.FIGURES["leaks_found"] = len(leaked)
    records = hardening.leaking_records(set(leaked), texts) if leaked else []
    return {"figures": dict(hardening.FIGURES), "leaked": len(leaked), "records": records}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist's controller: each worker's secrets were searched for in its own logs
    (a secret lives in one test, on one worker); its report comes back here."""
    report = getattr(node, "workeroutput", {}).get("ti_hardening")
    if report:
        node.config.__dict__.setdefault("_ti_reports", []).append(report)


def pytest_sessionfinish(session, exitstatus):
    migrated.remove_template()  # this process's migrated SQLite file (tests/migrated.py)
    config = session.config
    if hasattr(config, "workeroutput"):  # a pytest-xdist worker: the controller adds up
        config.workeroutput["ti_hardening"] = _hardening_report()
        return
    reports = getattr(config, "_ti_reports", None) or [_hardening_report()]
    figures = Counter()
    for report in reports:
        figures.update(report["figures"])
    leaked = sum(report["leaked"] for report in reports)
    records = [record for report in reports for record in report["records"]]
    config._ti_hardening = (figures, leaked, records)
    if leaked and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    figures, leaked, records = getattr(config, "_ti_hardening", (Counter(), 0, []))
    if not figures.get("leak_secrets_checked"):
        return
    write = terminalreporter.write_line
    terminalreporter.section("hardening figures")
    for name in sorted(figures):
        write(f"{name}: {figures[name]}")
    if leaked:
        write(f"LEAK: {leaked} secrets appear in the logs (tails shown): ", red=True)
        for text in records:
            write("  in: " + text.replace("\n", "\n      "), red=True)
    else:
        write(
            f"no leak: {figures['leak_secrets_checked']} secrets searched for in "
            f"{figures['leak_log_records_searched']} log records",
            green=True,
        )


@pytest.fixture(scope="session")
def built_dist(tmp_path_factory):
    """The sdist and the wheel, built once per run (tests/packaging.py)."""
    from . import packaging

    return packaging.build(tmp_path_factory.mktemp("dist"))
