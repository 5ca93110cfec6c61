"""One long-lived process that runs ``manage.py`` commands one after another, for the
tests that drive a deployment through a chain of CLI commands from outside its servers.

Each command run as its own ``manage.py`` process costs a Django start (about 0.6 s of a
processor here); the cross-process tests run dozens in a row. This process starts
Django once and runs each command as ``manage.py`` would (Django's
``execute_from_command_line``, the same argument parsing, system checks and exit
codes), in a process of its own apart from the servers, as an operator's shell or a
job runner is. Its database connections are closed after each command, as a
process's exit would close them.

The protocol: each line on stdin is a JSON list of arguments (what follows
``manage.py``); each answer on stdout is one JSON line, ``[exit code, stdout, stderr]``.
``python -m tests.cli_host`` from the repository's root, with the environment a
``manage.py`` process of the deployment would get.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def serve(commands: io.TextIOBase, answers: io.TextIOBase) -> None:
    """Run each command line of ``commands``; write its answer to ``answers``."""
    import django
    from django.core.management import execute_from_command_line
    from django.db import connections

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    django.setup()
    for line in commands:
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                execute_from_command_line(["manage.py", *json.loads(line)])
            except SystemExit as stop:  # CommandError's exit, argparse's
                code = stop.code if isinstance(stop.code, int) else 1
            except Exception as error:  # what an uncaught error's traceback would say
                print(f"{type(error).__name__}: {error}", file=sys.stderr)
                code = 1
            finally:
                connections.close_all()
        answers.write(json.dumps([code, out.getvalue(), err.getvalue()]) + "\n")
        answers.flush()


class CliHost:
    """A running host: ``host(*args)`` runs ``manage.py *args`` in it and returns
    ``(exit code, stdout, stderr)``; ``host.ok(*args)`` the output of one that must
    succeed; ``close()`` ends it."""

    def __init__(self, env: dict[str, str], timeout: float = 60) -> None:
        self.timeout = timeout
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.cli_host"],
            cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.process.stdin.write(json.dumps(args) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the CLI host exited ({self.process.poll()}) on {args}")
        code, out, err = json.loads(answer)
        return code, out, err

    def ok(self, *args: str) -> str:
        """``manage.py *args``'s output, stripped; the test fails with its errors unless it
        exits 0."""
        code, out, err = self(*args)
        assert code == 0, err
        return out.strip()

    def close(self) -> None:
        """End of input: the host ends; its pipes closed."""
        self.process.stdin.close()
        try:
            self.process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def cli_for(request, env: dict[str, str]) -> Callable[..., str]:
    """``CliHost.ok`` of a host started with ``env`` that ends with the test or fixture
    ``request`` is of: a chain of commands without a Django start for each."""
    host = CliHost(env)
    request.addfinalizer(host.close)
    return host.ok


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
