"""tests/cli_host.py answers as ``manage.py`` would: its output, its errors, its exit code,
command after command in one process (the cross-process tests rely on each)."""

from __future__ import annotations

import pytest

from .cli_host import CliHost
from .migrated import migrated_sqlite
from .site_process import site_env

pytestmark = pytest.mark.any_database  # a SQLite file of its own


def test_the_host_answers_like_manage_py_command_after_command(tmp_path):
    database = migrated_sqlite(tmp_path / "host.sqlite3")
    env = site_env("cli-host", database)
    host = CliHost(env)
    try:
        assert host("trusted_identity", "create-space", "acme")[0] == 0
        code, api_key, _ = host("trusted_identity", "add-platform", "acme", "web")
        assert code == 0 and api_key.strip().startswith("tik_")
        code, first, _ = host("trusted_identity", "show-secret", "acme", "web")
        code, rotated, _ = host("trusted_identity", "rotate-secret", "acme", "web", "--grace", "0")
        # The next command of the same process reads what the last one committed.
        assert host("trusted_identity", "show-secret", "acme", "web")[1] == rotated != first
        code, out, err = host("trusted_identity", "show-secret", "acme", "nope")
        assert code == 1 and out == "" and "nope" in err and len(err.strip().splitlines()) == 1
        assert host("no-such-command")[0] == 1
    finally:
        host.close()
    assert host.process.returncode == 0
