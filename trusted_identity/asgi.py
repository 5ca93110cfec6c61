"""The lean path for session start over ASGI: an ASGI wrapper in front of Django.

In a site's ASGI file::

    from django.core.asgi import get_asgi_application
    from trusted_identity.asgi import LeanSessions

    application = LeanSessions(get_asgi_application())

``POST <mount>/v1/sessions`` and its CORS preflight are then answered here; every other
request (and websockets) goes to the wrapped application untouched. The lifespan's
shutdown writes the process's buffered counts first (see ``_lifespan``): serve with
the server's lifespan on (uvicorn's default ``auto``, Granian's ``asgi`` interface).
What is answered and how is ``lean.LeanDoor``'s, shared with the WSGI door
(``trusted_identity.wsgi``): the same request checks, the same decision
(``views.session_answer``), the same headers and bytes. This module only adapts ASGI.

Why it is worth a door of its own: Django's ASGI handler runs each request's
synchronous work (the middleware, the view) through ``sync_to_async`` inside a
per-request ``ThreadSensitiveContext``, which starts a new thread per request, so no
database connection is ever reused from one request to the next and the per-context
cache handles are made anew; a session start through it costs many times its own work.

Here the synchronous part of an answer (the lookup, the rate limits in the cache, the
HMAC, the counting) runs in a pool of ``threads`` threads owned by this wrapper, made
in the process that serves (after any fork) on its first session start: each thread
keeps its own database connection across requests, closed when ``CONN_MAX_AGE`` or a
failed health check says so (``close_old_connections`` before and after each answer,
as Django's handler does through its request signals) and by the thread itself when
the lifespan's shutdown ends it, and its own cache client.
Counts go to the runtime's buffer and its count thread, as under WSGI; the answer never
waits for them. ``threads=0`` runs the synchronous part where
``sync_to_async(thread_sensitive=True)`` would (under ``async_to_sync``, the calling
thread: what an in-process test needs to see its own transaction).

The body is read before the decision, as Django's handler reads it, but kept only up to
``MAX_BODY_BYTES`` + 1 bytes and the declared Content-Length (the rest is drained and
dropped): a larger body is refused with the same answer either way, and a body is read
as the WSGI door reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import os
import queue
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler, ASGIRequest, get_script_prefix

from . import runtime
from .conf import app_settings
from .lean import METHODS, LeanDoor

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T")
logger = logging.getLogger("trusted_identity")
#: A call handed to the door's threads: the call, its future, that future's loop.
Handed = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]

#: Threads answering session starts per process: two, so one start that waits (a cold
#: lookup in the database, a slow cache) does not hold up the worker's others; more only
#: fight over the GIL, which the rest of the work holds. Measured under uvicorn with the
#: hand-off below: 2 threads 0.37 of the bare ASGI callable, 4 threads 0.28 to 0.31, 1
#: thread 0.41; with a rate limit in Redis all alike (docs/performance.md).
DEFAULT_THREADS = 2


class LeanSessions:
    """ASGI middleware: session starts answered directly, everything else by ``application``."""

    def __init__(self, application: ASGIApp, threads: int = DEFAULT_THREADS) -> None:
        if threads < 0:
            raise ValueError("threads must be 0 or more")
        self.application = application
        self.threads = threads
        self.door = LeanDoor("ASGI")
        self._pool: HandOff | None = None
        self._pool_pid = 0

    @property
    def active(self) -> bool:
        return self.door.active

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(scope, receive, send)
        if not self._takes(scope):
            return await self.application(scope, receive, send)
        body_file = io.BytesIO()
        try:
            request = ASGIRequest(scope, body_file)
        except Exception:  # an undecodable query string: Django answers it
            return await self.application(scope, receive, send)
        if self.door.site_answers(request):  # headers only: the body is still unread
            return await self.application(scope, receive, send)
        body = await self._read_body(receive, request.META.get("CONTENT_LENGTH"))
        if body is None:
            return  # the client went away, as Django's handler leaves it
        body_file.write(body)
        body_file.seek(0)
        status, headers, content = await self._run(self.door.respond, request, scope=scope)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(n.encode("ascii"), v.encode("latin-1")) for n, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Write this process's buffered counts when the server says it stops.

        At exit is too late under uvicorn: it ends its process by raising the stop
        signal again once the server is down, and no ``atexit`` handler runs. Django's
        handler speaks HTTP alone (it refuses a lifespan scope), so the door answers
        the lifespan itself in front of it; any other application gets the messages,
        the counts written before it sees the shutdown.
        """

        async def receive_and_stop() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self._stop()
            return message

        if not isinstance(self.application, ASGIHandler):
            return await self.application(scope, receive_and_stop, send)
        while True:
            message = await receive_and_stop()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _stop(self) -> None:
        """The runtime's threads stopped and what they buffered written (in a thread:
        the database), then this door's pool shut down."""
        await asyncio.get_running_loop().run_in_executor(None, runtime.current().stop)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _takes(self, scope: Scope) -> bool:
        """Whether the request is the door's: a cookie-less POST or OPTIONS on the path."""
        if scope["type"] != "http" or not self.door.active or scope["method"] not in METHODS:
            return False
        prefix = get_script_prefix(scope)
        path = scope["path"].removeprefix(prefix) if prefix else scope["path"]
        if path not in self.door.paths:
            return False
        return not any(name == b"cookie" and value for name, value in scope.get("headers", ()))

    @staticmethod
    async def _read_body(receive: Receive, declared: str | None) -> bytes | None:
        """The body, at most ``MAX_BODY_BYTES`` + 1 bytes of it and no more than a
        Content-Length declares (as ``WSGIRequest`` reads it); None if the client left."""
        keep = app_settings.MAX_BODY_BYTES + 1
        with contextlib.suppress(ValueError):  # not a number: refused before the body is read
            keep = min(keep, max(int(declared or keep), 0))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            if size < keep and chunk:
                chunks.append(chunk[: keep - size])
            size += len(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function`` in this process's threads (``threads=0``: thread-sensitive)."""
        call = functools.partial(function, *args, **kwargs)
        if not self.threads:
            return await sync_to_async(call, thread_sensitive=True)()
        if self._pool is None or self._pool_pid != os.getpid():  # new, or forked since
            self._pool = HandOff(
                self.threads, "trusted-identity-lean", runtime.close_thread_connections
            )
            self._pool_pid = os.getpid()
        return await self._pool.run(call)


class HandOff:
    """Threads that run the door's synchronous calls, each result handed back to the
    event loop that asked for it.

    ``loop.run_in_executor`` with a ``ThreadPoolExecutor`` cost 18 to 28 µs of CPU a call
    under uvloop (a concurrent future and its condition, an asyncio future chained to
    it, the executor's idle semaphore): a tenth of a session start's. Here a call goes
    over with one queue put and comes back with one ``call_soon_threadsafe`` (4 to 6 µs;
    docs/performance.md). The threads are daemons: a server that stops without a
    lifespan shutdown does not wait for them, and one that has one ends them here, each
    thread calling ``on_exit`` last (the door's: close that thread's database
    connections, which no other thread can close and ``CONN_MAX_AGE`` keeps open).
    """

    def __init__(self, size: int, name: str, on_exit: Callable[[], None] | None = None) -> None:
        self._calls: queue.SimpleQueue[Handed | None] = queue.SimpleQueue()
        self._on_exit = on_exit
        self.threads = [
            threading.Thread(target=self._serve, name=f"{name}_{n}", daemon=True)
            for n in range(size)
        ]
        for thread in self.threads:
            thread.start()

    def run(self, call: Callable[[], T]) -> asyncio.Future[T]:
        """A future of the running loop, done with ``call()``'s result or exception."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._calls.put((call, future, loop))
        return future

    def shutdown(self) -> None:
        """Each thread ends after the calls already handed over."""
        for _ in self.threads:
            self._calls.put(None)

    def _serve(self) -> None:
        while (handed := self._calls.get()) is not None:
            call, future, loop = handed
            try:
                outcome = (call(), None)
            except BaseException as exc:  # the awaiting request sees it, as with an executor
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody awaits
                loop.call_soon_threadsafe(_settle, future, *outcome)
            del handed, call, future, outcome  # no reference kept while waiting
        if self._on_exit is not None:
            try:
                self._on_exit()
            except Exception:  # a connection that won't close: said, and the thread ends
                logger.exception("Trusted Identity's session-start thread could not finish")


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the request was cancelled (the client left): drop it
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
