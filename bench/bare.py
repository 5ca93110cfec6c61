"""The limit: a bare WSGI (and ASGI) callable doing a session start's essential work, no Django.

Parse the JSON body, HMAC-SHA256 the user id with the secret, compare in constant
time, answer JSON. Served by the same gunicorn config as the site
(``gunicorn -c project/gunicorn.conf.py bench.bare:application``), so the
difference to session start is what the app and Django cost, not the server.
"""

import hashlib
import hmac
import json
import os

SECRET = os.environ.get("BENCH_HANDWRITTEN_SECRET", "").encode()


def application(environ, start_response):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = json.loads(environ["wsgi.input"].read(length))
        user_id, signed = data["userId"], data["signed"]
        expected = hmac.new(SECRET, user_id.encode(), hashlib.sha256).hexdigest()
        trusted = hmac.compare_digest(expected, signed.lower())
        status, payload = "201 Created", {"userId": user_id, "trusted": trusted}
    except (ValueError, KeyError, TypeError, AttributeError):
        status, payload = "400 Bad Request", {"error": "bad request"}
    body = json.dumps(payload).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


async def asgi_application(scope, receive, send):
    """The same work as a bare ASGI callable (``bench.bare:asgi_application``), for the
    ASGI servers: the limit the ASGI door is measured against."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    try:
        data = json.loads(b"".join(chunks))
        user_id, signed = data["userId"], data["signed"]
        expected = hmac.new(SECRET, user_id.encode(), hashlib.sha256).hexdigest()
        trusted = hmac.compare_digest(expected, signed.lower())
        status, payload = 201, {"userId": user_id, "trusted": trusted}
    except (ValueError, KeyError, TypeError, AttributeError):
        status, payload = 400, {"error": "bad request"}
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
