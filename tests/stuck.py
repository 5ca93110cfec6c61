"""When a server told to stop does not: what the failure says of it. Its signal masks
(a stop signal blocked or ignored is inherited across ``fork`` and ``exec``), then
every thread's stack: the server runs with ``PYTHONFAULTHANDLER=1``, so ``SIGABRT``
makes it write them to its stderr before it dies."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def signal_masks(pid: int) -> str:
    """The process's state and its blocked, ignored and caught signals, as /proc says."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        return f"no /proc status ({exc})"
    wanted = ("State", "SigBlk", "SigIgn", "SigCgt")
    return ", ".join(line.replace("\t", " ") for line in lines if line.startswith(wanted))


def abort_for_stacks(server: subprocess.Popen) -> str:
    """Abort a server that did not stop (its stacks go to its stderr), killed if it is
    still there 5 s later; returns its signal masks as they were, for the failure."""
    masks = signal_masks(server.pid)
    server.send_signal(signal.SIGABRT)
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    return masks


@contextmanager
def interruptible() -> Iterator[None]:
    """Servers started inside take Ctrl-C (SIGINT) as a terminal gives it, even when
    this process ignores it (a background job of a non-interactive shell ignores SIGINT,
    and an ignored signal stays ignored across ``exec``: such a runserver never stops).
    A caught signal is reset to its default in the child, so it is caught here while
    they start; only the main thread may set a handler."""
    if (
        signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
