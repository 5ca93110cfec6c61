"""When a round of load counts: the one rule of every section measured through a server
with several workers (``serving``, ``hold``, ``session_start``, ``flood``,
``pk_session_start``, ``pk_flood``).

A round in which one worker did most of the work measures how the server spread its
connections (gunicorn's gthread workers accept unevenly), not the code: three ``make
bench`` runs in a row moved by up to 48% on such rounds while every balanced section held
within 8%. So a round counts only when no worker did more than ``MAX_WORKER_SHARE`` of
the server's CPU time in it; a refused round is run again, at most ``RETRIES`` times, and
every refusal is reported beside the figures.
"""

from __future__ import annotations

from collections.abc import Callable

#: A round counts only if no worker did more than this share of the server's CPU time.
MAX_WORKER_SHARE = 0.65
#: Refused rounds run again at most this many times; then the next round counts as it is.
RETRIES = 3


def busiest_share(ticks: list[int]) -> float:
    """The busiest worker's share of the CPU ticks the workers used in a round."""
    total = sum(ticks)
    return round(max(ticks) / total, 3) if total else 0.0


def balanced(run: dict) -> bool:
    """Whether a round counts: the server runs one worker, or none of its ``workers`` did
    more than ``MAX_WORKER_SHARE`` of the work. A worker that took no tick while another
    did all the work is the worst imbalance, not a one-process server: the count is of
    the workers the server was started with, not of those that worked."""
    return run["workers"] < 2 or run["busiest_worker_share"] <= MAX_WORKER_SHARE


def balanced_round(measure: Callable[[], dict], refused: int = 0) -> tuple[dict, int]:
    """The first of up to ``RETRIES`` + 1 rounds of ``measure`` that counts (the last one
    whatever its balance, so rounds still pair one to one), and ``refused`` plus the
    rounds refused on the way."""
    for _attempt in range(RETRIES):
        run = measure()
        if balanced(run):
            return run, refused
        refused += 1
    return measure(), refused
