"""The ASGI door's threads (``trusted_identity.asgi.HandOff``): every call handed over
comes back to the loop that asked, with its result or its exception, and nothing a
request does (leaving, its loop closing) stops the threads serving the next one."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from django.core.handlers.asgi import ASGIHandler

from trusted_identity import runtime
from trusted_identity.asgi import HandOff, LeanSessions

from .lean_client import in_own_loop


def ended(pool: HandOff) -> bool:
    pool.shutdown()
    for thread in pool.threads:
        thread.join(5)
    return not any(thread.is_alive() for thread in pool.threads)


def test_results_and_exceptions_come_back_from_the_named_threads():
    pool = HandOff(2, "door")

    def fails() -> None:
        raise LookupError("from the thread")

    async def main() -> tuple[list[int], set[str]]:
        results = await asyncio.gather(*(pool.run(lambda n=n: n * n) for n in range(50)))
        where = [pool.run(lambda: threading.current_thread().name) for _ in range(20)]
        names = set(await asyncio.gather(*where))
        with pytest.raises(LookupError, match="from the thread"):
            await pool.run(fails)
        return results, names

    results, names = in_own_loop(main)
    assert results == [n * n for n in range(50)]
    assert names <= {"door_0", "door_1"} and names  # never the event loop's thread
    assert all(thread.daemon for thread in pool.threads)
    assert ended(pool)


def test_a_request_that_left_or_a_closed_loop_leaves_the_thread_serving():
    """A cancelled request's result is dropped, and so is one whose loop has closed
    (``call_soon_threadsafe`` refuses it): the one thread answers the next call."""
    pool = HandOff(1, "door")
    release = threading.Event()
    problems: list[dict] = []

    def slow() -> str:
        release.wait(10)
        return "late"

    async def leaves() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: problems.append(context))
        waiting = asyncio.ensure_future(pool.run(slow))
        await asyncio.sleep(0)
        waiting.cancel()
        release.set()
        await asyncio.sleep(0.2)  # the result arrives for a cancelled future

    in_own_loop(leaves)
    release.clear()

    async def abandons() -> None:
        pool.run(slow)  # never awaited: asyncio.run closes this loop first

    in_own_loop(abandons)
    release.set()

    async def next_request() -> int:
        return await pool.run(lambda: 7)

    assert in_own_loop(next_request) == 7
    assert problems == []
    assert ended(pool)


def test_the_door_makes_its_threads_in_the_process_that_serves(monkeypatch):
    """Made on the first start, anew after a fork (a server's workers are forked from a
    process that may have answered already), ended by the lifespan's shutdown."""
    door = LeanSessions(ASGIHandler(), threads=2)
    assert door._pool is None

    def where() -> str:
        return threading.current_thread().name

    assert in_own_loop(lambda: door._run(where)).startswith("trusted-identity-lean_")
    first = door._pool
    assert in_own_loop(lambda: door._run(where)) and door._pool is first
    door._pool_pid = os.getpid() + 1  # as a forked worker finds its parent's pool
    in_own_loop(lambda: door._run(where))
    second = door._pool
    assert second is not first and len(second.threads) == 2
    assert ended(first)  # in a real fork, the parent's threads are not in the child

    monkeypatch.setattr(runtime.current(), "stop", lambda: None)
    in_own_loop(door._stop)
    assert door._pool is None
    for thread in second.threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in second.threads)


def test_one_start_waiting_does_not_hold_up_the_next():
    """The door's default threads: a start waiting on the database or the cache leaves
    another thread for the next start of that worker."""
    door = LeanSessions(ASGIHandler())
    release = threading.Event()

    async def main() -> str:
        waiting = asyncio.ensure_future(door._run(release.wait, 10))
        answered = await asyncio.wait_for(door._run(lambda: "answered"), 5)
        release.set()
        await waiting
        return answered

    try:
        assert in_own_loop(main) == "answered"
    finally:
        release.set()
        if door._pool is not None:
            assert ended(door._pool)
