"""Run a command with the database behind PgBouncer in transaction pooling.

``python -m tests.pgbouncer [POSTGRES_URL] -- COMMAND...`` (``make test-pgbouncer``):
starts Debian's ``pgbouncer`` on a free loopback port with its configuration in a
temporary folder, runs COMMAND with ``DATABASE_URL`` pointing through it, then stops it
and removes the folder; the exit status is COMMAND's.

Every database name is passed through to the PostgreSQL of POSTGRES_URL (a wildcard
entry), so pytest-django's test databases (``test_..._r<pid>_gw0``) need no entry of
their own. The URL carries what Django needs behind a transaction pooler:
``disable_server_side_cursors`` (a named cursor lives in one server session; the next
transaction may get another). psycopg 3 prepares no statement under Django unless
OPTIONS asks it to (``prepare_threshold``): none is asked for. docs/deploying.md has
the same settings for a site.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from tests.isolation import free_port

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/trusted_identity"
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"

CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
admin_users = {user}
pool_mode = transaction
; the suite's threads and server processes, a few connections each, per worker
max_client_conn = 400
default_pool_size = 40
; Django's connections send these at start; PgBouncer would refuse them otherwise
ignore_startup_parameters = extra_float_digits,options
server_reset_query =
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""


def through_pgbouncer(postgres_url: str, port: int) -> str:
    """``postgres_url`` with PgBouncer's address, and Django's setting for it."""
    parts = urllib.parse.urlsplit(postgres_url)
    user = f"{parts.username}@" if parts.username else ""
    query = urllib.parse.parse_qsl(parts.query)
    query.append(("disable_server_side_cursors", "True"))
    return parts._replace(
        netloc=f"{user}127.0.0.1:{port}", query=urllib.parse.urlencode(query)
    ).geturl()


def start(postgres_url: str, folder: Path) -> tuple[subprocess.Popen, int]:
    """PgBouncer serving ``postgres_url``'s server, answering on the returned port."""
    if not Path(PGBOUNCER).exists():
        sys.exit("pgbouncer is not installed: apt-get install pgbouncer (.ci/run does)")
    parts = urllib.parse.urlsplit(postgres_url)
    user = parts.username or "postgres"
    (folder / "userlist.txt").write_text(f'"{user}" ""\n')
    # PgBouncer refuses to run as root: it becomes the postgres user, who must read here.
    as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
        for path in folder.iterdir():
            shutil.chown(path, "postgres")
    for _attempt in range(5):  # the free port may be taken before PgBouncer binds it
        port = free_port()
        config = folder / "pgbouncer.ini"
        config.write_text(
            CONFIG.format(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 5432,
                listen_port=port,
                folder=folder,
                user=user,
            )
        )
        if as_user:
            shutil.chown(config, "postgres")
        server = subprocess.Popen(
            [PGBOUNCER, *as_user, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while server.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return server, port
            except OSError:
                time.sleep(0.1)
        stop(server)
    log = folder / "pgbouncer.log"
    sys.exit("pgbouncer did not start:\n" + (log.read_text() if log.exists() else ""))


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)  # immediate shutdown: the command has ended
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main(argv: list[str]) -> int:
    if "--" not in argv:
        sys.exit("usage: python -m tests.pgbouncer [POSTGRES_URL] -- COMMAND...")
    split = argv.index("--")
    postgres_url = (argv[:split] or [DEFAULT_POSTGRES_URL])[0]
    command = argv[split + 1 :]
    folder = Path(tempfile.mkdtemp(prefix="ti-pgbouncer-"))
    try:
        server, port = start(postgres_url, folder)
        try:
            url = through_pgbouncer(postgres_url, port)
            print(f"PgBouncer (transaction pooling) on 127.0.0.1:{port} for {postgres_url}")
            env = {**os.environ, "DATABASE_URL": url, "TEST_PGBOUNCER_PORT": str(port)}
            return subprocess.call(command, env=env)
        finally:
            stop(server)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
