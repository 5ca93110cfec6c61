"""gunicorn settings for ``make serve SERVER=gunicorn`` (and the tests that serve with
gunicorn); each can be overridden from the environment."""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads give HTTP keep-alive (sync workers close every connection).
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# At most this many connections per worker (gthread): with a cap near the client's
# connection count over the workers, a burst of new connections can't pile on one worker.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
keepalive = 5
timeout = 30
graceful_timeout = 30
# No worker recycling by default. With keep-alive gthread workers, a recycled worker
# drops its connections, the clients reconnect to the worker still running, and they
# stay there: after the first recycle one worker served all 16 connections of a load
# test while the other idled, and throughput fell by up to 60%. A worker's memory is
# flat under load (make bench-scale measures it), so recycling buys nothing here. A
# site that wants it anyway (GUNICORN_MAX_REQUESTS) should put a proxy in front that
# spreads connections again (nginx with upstream keep-alive).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10

# Keep-alive connections are closed after this many requests (as nginx's
# keepalive_requests does, 1,000 by default), so clients reconnect now and then and
# land on whichever worker is free: a burst of new connections that happened to pile
# on one worker (measured: a 10-second round at 40% of the others) does not stay
# piled. A reconnect every thousand requests costs nothing measurable. 0 turns it off.
keepalive_requests = int(os.environ.get("GUNICORN_KEEPALIVE_REQUESTS", "1000"))


def pre_request(worker, req):
    if keepalive_requests and req.req_number >= keepalive_requests:
        req.must_close = True  # answered with Connection: close


accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


# ---------------------------------------------------------------------------
# gunicorn answers requests it can't parse as HTTP (a garbled request line, a NUL
# in a header, a line or header block over its limits) itself, before Django, with
# an HTML page. This server is a JSON API and an admin: answer those with the
# contract's JSON error body instead. Same signature as gunicorn.util.write_error,
# which gunicorn looks up at call time (gunicorn/workers/base.py, handle_error).
import json  # noqa: E402

import gunicorn.util  # noqa: E402


def write_json_error(sock, status_int, reason, mesg):
    code = "internal_error" if status_int == 500 else "invalid_request"
    message = f"{reason}: {mesg}"[:300] if mesg else reason
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn.util.write_error = write_json_error
