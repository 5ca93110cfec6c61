"""A migrated SQLite file for the tests that run the example site in other processes.

Those tests (real servers, the CLI in a second process) each need the example project's
schema in a file of their own. ``manage.py migrate`` costs a Django start and every
migration, about 1.7 s of a processor each time; the result is the same file every time.
So each test process migrates once, into its own temporary directory, and every test
copies that file: the servers and the CLI still meet a database that ``migrate`` made.
The tests whose subject is the migration itself (the runbooks, the adoption, the cache
identity's restored backup) still run it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .site_process import site_env

ROOT = Path(__file__).resolve().parent.parent

#: The template of this process, made on first use (each xdist worker has its own).
_template: Path | None = None


def _make_template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="ti-migrated-"))
    database = folder / "migrated.sqlite3"
    # With a new encryption key (migrate's checks want one; the schema holds nothing
    # encrypted with it).
    env = site_env("migrated-template", database)
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"manage.py migrate failed:\n{done.stderr}")
    return database


def migrated_sqlite(destination: Path) -> Path:
    """``destination``, a copy of a database ``manage.py migrate`` made (once per process)."""
    global _template
    if _template is None or not _template.exists():
        _template = _make_template()
    shutil.copyfile(_template, destination)
    return destination


def remove_template() -> None:
    """The template's directory removed (at the end of the test process)."""
    global _template
    if _template is not None:
        shutil.rmtree(_template.parent, ignore_errors=True)
        _template = None
