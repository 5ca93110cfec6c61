"""Hostile requests on the wire, against a live server with DEBUG off (SECURITY.md).

Raw bytes over a socket, so nothing in between tidies them up: Host headers Django
refuses, odd methods, encoded NULs and newlines, a lying or missing Content-Length,
chunked bodies, repeated headers, cookies and Accept headers asking for HTML. Every
answer under the mount is the contract's JSON; outside the mount Django's own pages
are left alone. ``test_deployment.py`` does the same against gunicorn, including
requests so malformed that gunicorn refuses them before Django.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from trusted_identity import signing
from trusted_identity.services import platform_secrets

from . import hardening
from .factories import PlatformFactory, SpaceFactory

MOUNT = "/trusted-identity/"


def send(base_url: str, raw: bytes, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """Send raw bytes; the status, headers (lower-case names) and body of the answer."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return status, headers, body


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def request(method: str, path: str, headers: dict[str, str] | list, body: bytes = b"") -> bytes:
    items = headers.items() if isinstance(headers, dict) else headers
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in items)]
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def assert_contract_json(status, headers, body, where):
    assert (status != 500 and status < 500) or status == 503, (where, status, body[:200])
    assert headers.get("content-type", "").startswith("application/json"), (where, headers)
    assert b"<html" not in body.lower() and b"<!doctype" not in body.lower(), where
    if body:
        answer = json.loads(body)
        if status >= 400:
            assert set(answer) == {"error"} and set(answer["error"]) == {"code", "message"}
    hardening.count("hostile_http_requests")


@pytest.fixture
def live(live_server, transactional_db, settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    space = SpaceFactory(slug="acme")
    platform = PlatformFactory(space=space, kind="ios", enforced=True)
    secret = platform_secrets.current_secret_row(platform).get_secret()
    host = urlsplit(live_server.url).netloc
    return {"url": live_server.url, "host": host, "platform": platform, "secret": secret}


def hostile_requests(host: str, key: str, secret: str) -> dict[str, bytes]:
    """Well-formed HTTP with hostile content, for the server at ``host``."""
    good = json.dumps({"userId": "42", "signed": signing.sign(secret, "42")}).encode()
    sessions = MOUNT + "v1/sessions"
    base = {"Host": host, "Connection": "close"}
    json_post = {**base, "Content-Type": "application/json", "X-Api-Key": key}
    return {
        "bad-host": request(
            "POST",
            sessions,
            {**json_post, "Host": "evil.example", "Content-Length": str(len(good))},
            good,
        ),
        "bad-host-sign": request("GET", MOUNT + "sign/?platform=ios", {**base, "Host": "a b"}),
        "bad-host-404": request("GET", MOUNT + "nope", {**base, "Host": "evil.example:99999"}),
        "no-host": request("GET", MOUNT + "sign/", {"Connection": "close"}),
        "odd-method": request("BREW", sessions, base),
        "lowercase-method": request("post", sessions, {**json_post, "Content-Length": "2"}, b"{}"),
        "encoded-nul": request("GET", MOUNT + "%00", base),
        "encoded-newline": request("GET", MOUNT + "%0A%0D", base),
        "bad-utf8-path": request("GET", MOUNT + "%ff%fe/%c0%af", base),
        "dot-dot": request("GET", MOUNT + "../admin/", base),
        "long-path": request("GET", MOUNT + "a" * 3000, base),
        "short-content-length": request(
            "POST", sessions, {**json_post, "Content-Length": "5"}, good
        ),
        "no-content-length": request("POST", sessions, json_post, b""),
        "negative-content-length": request(
            "POST", sessions, {**json_post, "Content-Length": "-1"}, b""
        ),
        "huge-content-length": request(
            "POST", sessions, {**json_post, "Content-Length": "9" * 20}, b""
        ),
        "chunked": request(
            "POST", sessions, {**json_post, "Transfer-Encoding": "chunked"}, b"2\r\n{}\r\n0\r\n\r\n"
        ),
        "two-api-keys": request(
            "POST",
            sessions,
            [*json_post.items(), ("X-Api-Key", "tik_x"), ("Content-Length", str(len(good)))],
            good,
        ),
        "wants-html": request(
            "POST", sessions, {**json_post, "Accept": "text/html", "Content-Length": "1"}, b"{"
        ),
        "garbage-cookie": request(
            "GET",
            MOUNT + "sign/?platform=ios",
            {**base, "Cookie": "sessionid=" + "\x7f" * 50 + "; csrftoken=;"},
        ),
        "long-header": request(
            "POST", sessions, {**json_post, "X-Pad": "p" * 20000, "Content-Length": "2"}, b"{}"
        ),
        "latin1-api-key": request(
            "POST",
            sessions,
            {**json_post, "X-Api-Key": "tik_\xe9\xff", "Content-Length": "2"},
            b"{}",
        ),
        "form-body": request(
            "POST",
            sessions,
            {
                **json_post,
                "Content-Type": "application/x-www-form-urlencoded",
                "Content-Length": "7",
            },
            b"userId=x",
        ),
        "many-params": request(
            "GET", MOUNT + "sign/?" + "&".join(f"p{i}=1" for i in range(1200)), base
        ),
        "options": request(
            "OPTIONS",
            sessions,
            {**base, "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        ),
        "head": request("HEAD", MOUNT + "sign/", base),
        "valid": request("POST", sessions, {**json_post, "Content-Length": str(len(good))}, good),
    }


def test_hostile_requests_on_the_wire_get_the_contract_json(live):
    answers = {}
    for name, raw in hostile_requests(
        live["host"], live["platform"].api_key, live["secret"]
    ).items():
        status, headers, body = send(live["url"], raw)
        assert_contract_json(status, headers, body, name)
        answers[name] = status
    assert answers["valid"] == 201
    assert answers["bad-host"] == answers["bad-host-sign"] == answers["bad-host-404"] == 400
    assert answers["odd-method"] == 405
    assert answers["many-params"] in (400, 401)
    assert answers["encoded-newline"] == 404


def test_outside_the_mount_django_pages_are_left_alone(live):
    status, headers, _body = send(
        live["url"], request("GET", "/no-such-page/", {"Host": live["host"], "Connection": "close"})
    )
    assert status == 404 and headers["content-type"].startswith("text/html")
    status, headers, _body = send(
        live["url"], request("GET", "/admin/", {"Host": "evil.example", "Connection": "close"})
    )
    assert status == 400 and headers["content-type"].startswith("text/html")
