"""The ASGI door's threads (``trusted_identity.asgi.HandOff``): every call handed over
comes back to the loop that asked, with its result or its exception, and nothing a
request does (leaving, its loop closing) stops the threads serving the next one."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.db import connections

from trusted_identity import runtime
from trusted_identity.asgi import HandOff, LeanSessions

from .lean_client import in_own_loop, scope_of
from .test_lean_path import environ, site, world  # noqa: F401


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


def test_a_failing_exit_is_logged_and_the_thread_still_ends(caplog):
    def fails() -> None:
        raise OSError("the database went away")

    pool = HandOff(1, "door", fails)
    assert ended(pool)
    assert [r.getMessage() for r in caplog.records if r.name == "trusted_identity"] == [
        "Trusted Identity's session-start thread could not finish"
    ]


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


@pytest.mark.django_db(transaction=True)
def test_the_threads_close_their_database_connections_when_the_door_stops(monkeypatch):
    """``CONN_MAX_AGE`` keeps each thread's connection open between starts, and only that
    thread can close it: at the lifespan's shutdown each closes its own, where before the
    connections were left to the garbage collector (psycopg's ResourceWarning)."""
    door = LeanSessions(ASGIHandler(), threads=2)
    release = threading.Barrier(2)
    used = []

    def query() -> None:
        release.wait(5)  # both threads hold a call, so both open a connection
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        used.append(connections["default"])

    async def main() -> None:
        await asyncio.gather(door._run(query), door._run(query))

    in_own_loop(main)
    pool = door._pool
    assert len({id(wrapper) for wrapper in used}) == 2
    assert all(wrapper.connection is not None for wrapper in used)  # open between calls
    monkeypatch.setattr(runtime.current(), "stop", lambda: None)
    in_own_loop(door._stop)
    for thread in pool.threads:
        thread.join(5)
    assert [wrapper.connection for wrapper in used] == [None, None]


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


@pytest.mark.django_db(transaction=True)
def test_starts_whose_bodies_never_end_hold_none_of_the_threads(site, world):
    """An attacker holding the app's API key opens many starts and never sends the end of
    their bodies: the door reads a body on the event loop before it hands the start to
    its two threads, so those stay free, and a real start is answered at once."""
    door = LeanSessions(ASGIHandler(), threads=2)
    stalled_scope, _ = scope_of(environ(body={}, api_key=world.web.api_key))
    stalled_scope["headers"] = [
        (k, v) for k, v in stalled_scope["headers"] if k != b"content-length"
    ]
    scope, body = scope_of(environ(body={}, api_key=world.web.api_key))
    handed: list[str] = []
    run = door._run

    async def counted_run(function, *args, **kwargs):
        handed.append(function.__name__)
        return await run(function, *args, **kwargs)

    door._run = counted_run

    async def never_ends() -> dict:
        await asyncio.sleep(0)
        if never_ends.sent:
            await asyncio.Event().wait()  # the rest of the body never comes
        never_ends.sent = True
        return {"type": "http.request", "body": b"{", "more_body": True}

    async def main() -> list[dict]:
        stalled = []
        for _ in range(20):
            never_ends.sent = False
            stalled.append(asyncio.ensure_future(door(stalled_scope, never_ends, _discard)))
            await asyncio.sleep(0)
        await asyncio.sleep(0.2)
        assert handed == []  # no stalled start reached the threads
        sent: list[dict] = []
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            return messages.pop() if messages else await asyncio.Event().wait()

        async def send(message: dict) -> None:
            sent.append(message)

        await asyncio.wait_for(door(scope, receive, send), 10)
        for request in stalled:
            request.cancel()
        await asyncio.gather(*stalled, return_exceptions=True)
        return sent

    sent = in_own_loop(main)
    assert ended(door._pool)
    assert sent[0]["status"] == 201, sent
    assert json.loads(sent[-1]["body"])["signature"] == "none"  # a visitor's start
    assert handed == ["respond"]  # the one start that ended its body, and only it


async def _discard(message: dict) -> None:
    pass
