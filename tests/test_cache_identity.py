"""The shared cache's entries can't cross databases or time (issue 21).

A platform lookup is cached in Redis under the verification generation it was read at.
The generation's number repeats across databases (a site's tests on PostgreSQL, then on
SQLite, with one Redis db) and a database restored from a backup counts on from an
older number; so the key also carries the random token written with every bump. Each
step below is its own process (as the test runs and the servers would be), sharing only
the cache and the database files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .site_process import site_env

pytestmark = [pytest.mark.any_database, pytest.mark.end_to_end]  # the sites' own SQLite files

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "tik_the-same-key-in-both-databases"

SETUP = f"""
from trusted_identity.models import Platform
from trusted_identity.services import lookup, spaces
from django.db import transaction
with transaction.atomic():
    platform = spaces.add_platform(spaces.create_space(SLUG), "ios")
    Platform.objects.filter(pk=platform.pk).update(api_key={API_KEY!r})
    lookup.verification_changed()
"""
LOOKUP = f"""
from trusted_identity.services import lookup
snapshot = lookup.lookup_platform({API_KEY!r})
print(snapshot.space_slug, snapshot.enforced)
"""
ENFORCE = """
from trusted_identity.models import Platform
from trusted_identity.services import lookup
from django.db import transaction
with transaction.atomic():
    Platform.objects.update(enforced=ON)
    lookup.verification_changed()
"""


@pytest.fixture
def site(tmp_path, redis_namespace):
    """Each step a process of the example project on an SQLite file, all sharing one
    Redis cache: this test's own key prefix in the tests' Redis db (tests/isolation.py)."""
    base = site_env("cache-identity", CACHE_URL=redis_namespace.cache_url, PYTHONWARNINGS="ignore")

    def run(database: Path, code: str) -> str:
        env = {**base, "DATABASE_URL": f"sqlite:///{database}"}
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    def migrate(database: Path) -> None:
        env = {**base, "DATABASE_URL": f"sqlite:///{database}"}
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT, env=env, check=True, timeout=120,
        )  # fmt: skip

    run.migrate = migrate
    return run


def test_two_databases_sharing_one_cache_never_see_each_others_platforms(
    site, tmp_path, redis_namespace
):
    first, second = tmp_path / "first.sqlite3", tmp_path / "second.sqlite3"
    for database, slug in ((first, "first"), (second, "second")):
        site.migrate(database)
        site(database, f"SLUG = {slug!r}\n" + SETUP)  # the same generation number in both
    assert site(first, LOOKUP) == "first False"  # cached in the shared Redis
    assert redis_namespace.keys()  # ... under this test's prefix
    assert site(second, LOOKUP) == "second False"  # not the first database's entry
    assert site(first, LOOKUP) == "first False"


def test_a_restored_backup_never_meets_entries_of_the_state_it_lost(site, tmp_path):
    database, backup = tmp_path / "site.sqlite3", tmp_path / "backup.sqlite3"
    site.migrate(database)
    site(database, "SLUG = 'acme'\n" + SETUP)
    assert site(database, LOOKUP) == "acme False"
    shutil.copy(database, backup)  # the dump

    site(database, "ON = True\n" + ENFORCE)  # a change after the dump, then cached
    assert site(database, LOOKUP) == "acme True"

    shutil.copy(backup, database)  # the restore: enforcement is off again
    assert site(database, LOOKUP) == "acme False"
    # A change after the restore brings the number to where the lost state was; the
    # cache still holds that state's entry, with enforcement on: never read.
    site(database, "ON = False\n" + ENFORCE)
    assert site(database, LOOKUP) == "acme False"
