"""The browser client (``static/trusted_identity/client.js``) in a real Chromium against a
live server: same origin (a page of this site with ``{% trusted_identity_config %}``)
and cross-origin (a page served from a second loopback origin, the API on
``live_server``), with CORS from the platform's allow-list.

The second origin is a small HTTP server on ``127.0.0.1`` (a port the system picks); the
live server is ``http://localhost:<port>``: another host and port, so another origin.
That page plays a customer's site: its ``/sign`` answers signatures its server made.
"""

import os

# Playwright's sync API keeps an asyncio loop in this thread: Django's documented
# switch lets the test use the database anyway (as in tests/test_browser.py).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.cache import caches

from trusted_identity import signing
from trusted_identity.services import (
    access,
    enforcement,
    origins,
    platform_secrets,
    signature_forms,
)
from trusted_identity.services.figures import readiness

from .browser_urls import HARNESS
from .factories import PlatformFactory, SpaceFactory, UserFactory
from .support import wait_out_window_edge
from .test_browser import add_session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CLIENT_JS = (
    Path(__file__).resolve().parent.parent
    / "trusted_identity"
    / "static"
    / "trusted_identity"
    / "client.js"
).read_bytes()
TIMEOUT_MS = 15_000


# ------------------------------------------------------------- the second origin


class CustomerSite(ThreadingHTTPServer):
    """A customer's page on another origin: the client, a page, and its own /sign."""

    daemon_threads = True
    config: dict = {}
    signatures: dict = {}  # user id -> what the customer's server signs now
    sign_requests = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class CustomerHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, body: bytes, content_type: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        site = self.server
        if self.path == "/client.js":
            self._send(200, CLIENT_JS, "text/javascript; charset=utf-8")
        elif self.path == "/page.html":
            config = json.dumps(site.config).replace("<", "\\u003C")
            page = (
                "<!doctype html><html><head><meta charset='utf-8'><title>customer</title>"
                f"<script type='application/json' id='trusted-identity-web'>{config}</script>"
                "</head><body><script type='module'>import * as ti from '/client.js';"
                f"{HARNESS}</script></body></html>"
            )
            self._send(200, page.encode(), "text/html; charset=utf-8")
        elif self.path.startswith("/sign"):
            site.sign_requests += 1
            user_id = site.config.get("userId")
            body = {"userId": user_id, "platform": "web", "signed": site.signatures[user_id]}
            self._send(200, json.dumps(body).encode(), "application/json")
        else:
            self._send(404, b"{}", "application/json")


@pytest.fixture
def customer_site():
    site = CustomerSite(("127.0.0.1", 0), CustomerHandler)  # a free port, bound at once
    site.config, site.signatures, site.sign_requests = {}, {}, 0
    # shutdown() waits for the next poll: 0.5 s by default.
    thread = threading.Thread(
        target=site.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield site
    site.shutdown()
    site.server_close()


# ------------------------------------------------------------------- fixtures


@pytest.fixture
def space(db):
    return SpaceFactory(slug="acme", name="Acme")


@pytest.fixture
def web(space):
    return PlatformFactory(space=space, kind="web")


@pytest.fixture
def app_settings(settings):
    settings.ROOT_URLCONF = "tests.browser_urls"

    def update(**values):
        settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, **values}

    update(SIGNING_SPACE="acme")
    return update


@pytest.fixture
def context(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def open_page(context, url):
    page = context.new_page()
    errors, requests = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda request: requests.append((request.method, request.url)))
    page.goto(url)
    page.wait_for_function("window.ready === true")
    page.errors, page.requests = errors, requests
    return page


def run(page, **options):
    return page.evaluate("(options) => window.run(options)", options)


def log_in(context, live_server, user):
    add_session_cookie(context, live_server.url, user)


def posts(page, endpoint_part="/trusted-identity/v1/sessions"):
    return [url for method, url in page.requests if method == "POST" and endpoint_part in url]


def secret_of(platform):
    return platform_secrets.current_secret_row(platform).get_secret()


def rotate_now(platform):
    """A rotation with no grace: every signature made before it stops verifying."""
    from datetime import timedelta

    platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(0))


def figures(platform):
    return readiness(platform)


# --------------------------------------------------------------- same origin


def test_same_origin_user_from_the_template_tag(context, live_server, web, app_settings):
    user = UserFactory(username="ann", is_staff=False)
    log_in(context, live_server, user)
    page = open_page(context, "/client-page/")
    result = run(page, appVersion="3.2.1")
    assert result["ok"], result
    session = result["session"]
    assert session["userId"] == str(user.pk)
    assert (session["trusted"], session["signature"], session["anonymous"]) == (
        True,
        "valid",
        False,
    )
    assert (session["space"], session["platform"]) == ("acme", "web")
    assert len(posts(page)) == 1
    assert figures(web).valid == 1
    assert page.errors == []


def test_same_origin_visitor(context, web, app_settings):
    page = open_page(context, "/client-page/")
    assert "userId" not in page.evaluate("() => window.ti.readConfig('web')")
    result = run(page)
    assert result["ok"], result
    assert result["session"]["anonymous"] is True
    assert result["session"]["signature"] == "none"
    assert figures(web).visitor == 1


def test_same_origin_403_fetches_a_fresh_signature_once_and_retries(
    context, live_server, web, app_settings
):
    enforcement.set_enforcement(web, True, access.get_cli_actor(), force=True, reason="test")
    user = UserFactory(username="ann", is_staff=False)
    log_in(context, live_server, user)
    page = open_page(context, "/client-page/")  # its config is signed with the current secret
    rotate_now(web)  # ... which no longer verifies
    result = run(page)
    assert result["ok"], result
    assert result["session"]["trusted"] is True
    sign_calls = [url for method, url in page.requests if "/trusted-identity/sign/" in url]
    assert len(sign_calls) == 1
    assert len(posts(page)) == 2
    assert (figures(web).rejected, figures(web).valid) == (1, 1)


def test_same_origin_403_without_a_login_gives_the_typed_error(
    context, live_server, web, app_settings
):
    enforcement.set_enforcement(web, True, access.get_cli_actor(), force=True, reason="test")
    page = open_page(context, "/client-page/")
    result = run(page, userId="42", signed="0" * 64)
    assert not result["ok"]
    assert result["isTyped"] and result["name"] == "TrustedIdentityError"
    assert (result["code"], result["status"]) == ("signature_invalid", 403)
    assert result["cause"] == "not_authenticated"  # the sign view refused: nobody logged in
    assert result["message"]


def test_same_origin_429_waits_and_retries(context, web, app_settings):
    # An hour's window: a ten-second margin before its edge is rarely waited out.
    app_settings(RATE_LIMIT="1/h")
    page = open_page(context, "/client-page/")
    wait_out_window_edge(3600, margin=10)  # no roll-over between the starts below
    assert run(page)["ok"]

    # Over the limit, retries exhausted: the typed error with Retry-After.
    started = time.monotonic()
    result = run(page, maxRetries=1, maxRetryAfter=0.5)
    assert not result["ok"]
    assert (result["code"], result["status"]) == ("rate_limited", 429)
    assert 1 <= result["retryAfter"] <= 3600
    assert 0.5 <= time.monotonic() - started < 10  # waited the capped 0.5 s, not a minute
    assert len(posts(page)) == 1 + 2

    # Over the limit, then the window passes during the wait (the cache is emptied).
    with page.expect_response(lambda response: response.status == 429):
        page.evaluate("() => { window.pending = window.run({ maxRetryAfter: 1 }); }")
    caches["default"].clear()
    result = page.evaluate("() => window.pending")
    assert result["ok"], result
    assert len(posts(page)) == 3 + 2
    assert page.errors == []


# ---------------------------------------------------- same origin, token form


def set_form(platform, form):
    signature_forms.set_signature_form(
        platform, form, access.get_cli_actor(), force=True, reason="t"
    )


def sign_calls(page):
    return [url for method, url in page.requests if method == "GET" and "/sign/" in url]


def test_same_origin_token_is_refreshed_before_it_ends(context, live_server, web, app_settings):
    """A page of {% trusted_identity_config 'web' form='token' %} with two-minute tokens:
    sent as rendered while fresh; a minute and a half later (the page's clock moved on),
    a fresh token from the sign view first, and that one is sent."""
    app_settings(TOKEN_TTL=120)
    set_form(web, "token")
    enforcement.set_enforcement(web, True, access.get_cli_actor(), force=True, reason="test")
    log_in(context, live_server, UserFactory(username="ann", is_staff=False))
    page = open_page(context, "/client-page-token/")
    config = page.evaluate("() => window.ti.readConfig('web')")
    assert config["form"] == "token" and config["expiresAt"].endswith("Z")
    sent = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.method == "POST" else None)

    result = run(page)
    assert result["ok"] and result["session"]["trusted"] is True, result
    assert sign_calls(page) == [] and sent[-1]["signed"] == config["signed"]

    time.sleep(1.1)  # a token made in another second: another token
    page.evaluate("() => { const real = Date.now; Date.now = () => real() + 90_000; }")
    result = run(page)
    assert result["ok"] and result["session"]["trusted"] is True, result
    (url,) = sign_calls(page)
    assert url.endswith("/trusted-identity/sign/?platform=web&space=acme&form=token")
    assert sent[-1]["signed"] != config["signed"] and sent[-1]["signed"].count(".") == 2
    assert len(posts(page)) == 2  # no refusal on the way
    assert (figures(web).valid, figures(web).rejected) == (2, 0)
    assert page.errors == []


def test_same_origin_token_403_fetches_a_fresh_token_once_and_retries(
    context, live_server, web, app_settings
):
    set_form(web, "token")
    enforcement.set_enforcement(web, True, access.get_cli_actor(), force=True, reason="test")
    log_in(context, live_server, UserFactory(username="ann", is_staff=False))
    page = open_page(context, "/client-page-token/")  # its token: the current secret's
    rotate_now(web)  # ... which no longer verifies
    result = run(page)
    assert result["ok"], result
    assert result["session"]["trusted"] is True
    (url,) = sign_calls(page)
    assert url.endswith("&form=token")
    assert len(posts(page)) == 2
    assert (figures(web).rejected, figures(web).valid) == (1, 1)


# -------------------------------------------------------------- cross-origin


def customer_page(context, site, web, user_id=None, signed=None, **extra):
    site.config = {
        "apiKey": web.api_key,
        "endpoint": f"{context.live_server_url}/trusted-identity/v1/sessions",
        "signEndpoint": "/sign",
        **({"userId": user_id, "signed": signed} if user_id else {}),
        **extra,
    }
    return open_page(context, f"{site.origin}/page.html")


@pytest.fixture
def cross(context, live_server):
    context.live_server_url = live_server.url
    return context


def test_cross_origin_allowed_starts_a_session(cross, customer_site, web):
    origins.allow_origin(web, customer_site.origin, access.get_cli_actor())
    user_id = "customer-42"
    page = customer_page(cross, customer_site, web, user_id, signing.sign(secret_of(web), user_id))
    assert page.evaluate("() => location.origin") == customer_site.origin
    result = run(page, appVersion="1.0.0")
    assert result["ok"], result
    assert result["session"]["userId"] == user_id
    assert result["session"]["trusted"] is True
    assert run(page, visitor=True)["session"]["anonymous"] is True
    assert (figures(web).valid, figures(web).visitor) == (1, 1)
    assert page.errors == []


def test_cross_origin_not_allowed_is_blocked_by_the_browser(cross, customer_site, web):
    page = customer_page(cross, customer_site, web)
    result = run(page)
    assert not result["ok"]
    assert result["isTyped"] and (result["code"], result["status"]) == ("network_error", 0)
    assert "CORS" in result["message"]
    assert figures(web).visitor == 0  # the preflight failed: the POST was never sent

    # Allowed: the same page starts sessions, without reloading (the POST is the authority).
    origins.allow_origin(web, customer_site.origin, access.get_cli_actor())
    assert run(page)["ok"]
    # Denied again: blocked again.
    origins.deny_origin(web, customer_site.origin, access.get_cli_actor())
    assert run(page)["code"] == "network_error"


def test_cross_origin_allowed_for_another_platform_only_is_blocked(cross, customer_site, web):
    """The preflight passes (the origin is on a list), the answer is not readable."""
    other = PlatformFactory(space=SpaceFactory(slug="other"), kind="web")
    origins.allow_origin(other, customer_site.origin, access.get_cli_actor())
    page = customer_page(cross, customer_site, web)
    result = run(page)
    assert result["code"] == "network_error"
    assert figures(web).visitor == 1  # sent and counted, but the page could not read it


def test_cross_origin_403_refreshes_from_the_customer_server(cross, customer_site, web):
    origins.allow_origin(web, customer_site.origin, access.get_cli_actor())
    enforcement.set_enforcement(web, True, access.get_cli_actor(), force=True, reason="test")
    user_id = "customer-7"
    stale = signing.sign(secret_of(web), user_id)
    rotate_now(web)
    customer_site.signatures[user_id] = signing.sign(secret_of(web), user_id)
    page = customer_page(cross, customer_site, web, user_id, stale)
    result = run(page)
    assert result["ok"], result
    assert result["session"]["trusted"] is True
    assert customer_site.sign_requests == 1
    assert (figures(web).rejected, figures(web).valid) == (1, 1)


def test_cross_origin_429_exposes_retry_after(cross, customer_site, web, settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "RATE_LIMIT": "1/h"}
    origins.allow_origin(web, customer_site.origin, access.get_cli_actor())
    page = customer_page(cross, customer_site, web)
    wait_out_window_edge(3600, margin=10)  # two starts from a page in Chromium
    assert run(page)["ok"]
    result = run(page, maxRetries=0)
    assert (result["code"], result["status"]) == ("rate_limited", 429)
    assert 1 <= result["retryAfter"] <= 3600  # readable: Access-Control-Expose-Headers
