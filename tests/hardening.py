"""What the hardening tests share: the secrets the run generated, the log records it
wrote, and the figures SECURITY.md quotes (cases fuzzed, leak checks, faults injected).

``tests/conftest.py`` fills ``SECRETS`` and ``LOG`` for the whole run and, at the end,
searches every captured log record for every secret and prints the figures.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from contextlib import contextmanager

from django.db import OperationalError, connections

TAIL = 48  # random letters and digits at the end of every generated secret
_RUN = re.compile(f"[A-Za-z0-9]{{{TAIL},}}")

#: Plaintext of every platform secret the run stored (collected before each rollback).
SECRETS: set[str] = set()

#: Figures of the run, printed at the end (``pytest_terminal_summary``).
FIGURES: Counter[str] = Counter()


def is_generated(plaintext: str) -> bool:
    """Shaped like a secret the app generates: a prefix, then 48 letters and digits.

    (Tests also store the published Node vectors' secrets, such as ``s3cr3t``:
    those are public, and would match ordinary words in the logs.)
    """
    tail = plaintext[-TAIL:]
    return len(tail) == TAIL and tail.isascii() and tail.isalnum()


def remember_secret(plaintext: str) -> None:
    if isinstance(plaintext, str) and is_generated(plaintext):
        SECRETS.add(plaintext)


def count(name: str, n: int = 1) -> None:
    FIGURES[name] += n


class CollectingHandler(logging.Handler):
    """Keeps every formatted record (message, arguments, traceback) of every logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a record that can't be formatted is still searched
            text = f"{record.msg!r} {record.args!r}"
        self.texts.append(text)


LOG = CollectingHandler()


def find_leaks(secrets: set[str], texts: list[str]) -> list[str]:
    """The secrets whose random tail occurs in any of ``texts``.

    Every run of at least 48 letters and digits in the texts is cut into each of its
    48-character windows, and each window is looked up in a set of the secrets'
    tails: exact (a tail is in every copy of its secret), and fast however many
    secrets and records there are.
    """
    tails = {secret[-TAIL:]: secret for secret in secrets}
    leaked = set()
    for text in texts:
        for match in _RUN.finditer(text):
            run = match.group()
            for start in range(len(run) - TAIL + 1):
                secret = tails.get(run[start : start + TAIL])
                if secret is not None:
                    leaked.add(secret)
    return sorted(leaked)


def leaking_records(secrets: set[str], texts: list[str], limit: int = 5) -> list[str]:
    """Up to ``limit`` records holding a secret, the secret masked: for the failure report."""
    tails = {secret[-TAIL:] for secret in secrets}
    found = []
    for text in texts:
        hits = [tail for tail in tails if tail in text]
        if hits:
            for tail in hits:
                text = text.replace(tail, "<SECRET>")
            found.append(text[:600])
            if len(found) >= limit:
                break
    return found


@contextmanager
def failing_sql(pattern: str, *, nth: int = 1, times: int = 1, alias: str = "default"):
    """Make the ``nth`` (and up to ``times``) statement matching ``pattern`` fail.

    Django's own hook (``connection.execute_wrapper``) raises an OperationalError in
    place of running the statement, as a dropped connection or a full disk would.
    Yields a list that records the statements it failed.
    """
    regex = re.compile(pattern, re.IGNORECASE | re.DOTALL)
    seen = 0
    failed: list[str] = []

    def wrapper(execute, sql, params, many, context):
        nonlocal seen
        if regex.search(sql):
            seen += 1
            if nth <= seen < nth + times:
                failed.append(sql)
                count("faults_injected")
                raise OperationalError(f"injected fault: {sql[:60]}")
        return execute(sql, params, many, context)

    with connections[alias].execute_wrapper(wrapper):
        yield failed
    if failed:
        count("fault_scenarios")
