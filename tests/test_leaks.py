"""No secret leaks (SECURITY.md, "Leak checks").

Beyond the suite-wide check in ``conftest.py`` (every log record of the whole run is
searched for every secret the run stored), these tests look where else a plaintext
secret could end up: every admin page reachable by a crawl (with Django's template
engine logging at DEBUG, which logs the repr of a whole context), Django's debug
error page and the error e-mail of a failure in the middle of a reveal, JSON errors,
the ``repr()``/``str()`` of every object, audit entries, serialized data, the cache,
the session and cookies. The one place a secret may appear is the response to an
explicit, permitted reveal (or ``show-secret``/``rotate-secret`` on stdout).
"""

from __future__ import annotations

import html
import json
import logging
import pickle
import re
from datetime import timedelta
from io import StringIO
from urllib.parse import urlsplit

import django
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.sessions.models import Session
from django.core import mail, serializers
from django.core.cache import caches
from django.core.management import call_command
from django.forms.models import model_to_dict
from django.urls import reverse

from trusted_identity import runtime, signing
from trusted_identity.keyring import get_key_ring
from trusted_identity.models import (
    AuditEvent,
    OutcomeCount,
    Platform,
    PlatformSecret,
    PolicyChange,
    Role,
    Space,
)
from trusted_identity.services import access, figures, lookup, platform_secrets
from trusted_identity.signing import SecretStr

from . import hardening
from .factories import (
    MembershipFactory,
    OutcomeCountFactory,
    PlatformFactory,
    SpaceFactory,
    UserFactory,
)
from .hardening import failing_sql
from .settings import TEST_ENCRYPTION_KEY

SESSIONS = "/trusted-identity/v1/sessions"


def every_secret() -> list[str]:
    """Every plaintext stored now: current, in grace, revoked but not yet dropped."""
    return [row.get_secret() for row in PlatformSecret.objects.all()]


def assert_no_secret(text: str | bytes, secrets, where: str, allowed: str | None = None):
    hardening.count("leak_checks")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for secret in secrets:
        if secret == allowed:
            continue
        assert secret not in text, f"a secret leaked into {where}"
        assert secret[-hardening.TAIL :] not in text, f"a secret's random part leaked into {where}"


@pytest.fixture
def world(db, superuser):
    acme, globex = SpaceFactory(slug="acme", name="Acme"), SpaceFactory(slug="globex")
    ios = PlatformFactory(space=acme, kind="ios")
    web = PlatformFactory(space=acme, kind="web", enforced=True)
    roku = PlatformFactory(space=globex, kind="roku")
    actor = access.get_cli_actor()
    platform_secrets.rotate_secret(ios, actor, timedelta(hours=2))  # one in grace
    platform_secrets.rotate_secret(ios, actor, timedelta(0))  # one revoked
    platform_secrets.rotate_secret(roku, actor, timedelta(days=1))
    owner = UserFactory(username="olivia")
    MembershipFactory(space=acme, user=owner, role=Role.OWNER)
    MembershipFactory(space=acme, user=UserFactory(username="victor"), role=Role.VIEWER)
    for platform in (ios, web, roku):
        for outcome in ("valid", "invalid", "missing", "visitor", "rejected"):
            OutcomeCountFactory(platform=platform, outcome=outcome, count=3)
    return {"acme": acme, "globex": globex, "ios": ios, "web": web, "roku": roku, "owner": owner}


# --------------------------------------------------------------- the admin


HREF = re.compile(r'href="([^"#]+)')
SKIP = ("/admin/logout/", "/admin/password_change/", "/admin/jsi18n/")


def crawl(client, start="/admin/", limit=150):
    """GET every admin page reachable from ``start`` (one per path and set of query
    parameter names), yielding (url, response)."""
    queue, seen = [start], set()
    while queue and len(seen) < limit:
        url = queue.pop(0)
        parts = urlsplit(url)
        key = (parts.path, tuple(sorted(p.split("=")[0] for p in parts.query.split("&") if p)))
        if key in seen or not parts.path.startswith("/admin/") or parts.path.startswith(SKIP):
            continue
        seen.add(key)
        response = client.get(url)
        yield url, response
        if response.status_code == 200 and "html" in response.get("Content-Type", ""):
            for href in HREF.findall(response.content.decode()):
                href = html.unescape(href)
                if href.startswith("?"):
                    href = parts.path + href
                if href.startswith("/admin/"):
                    queue.append(href)


@pytest.mark.parametrize("who", ["superuser", "owner"])
def test_no_secret_on_any_admin_page(client, world, superuser, settings, caplog, who):
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG, logger="django.template")  # logs repr(context)
    client.force_login(superuser if who == "superuser" else world["owner"])
    secrets = every_secret()
    pages = 0
    for url, response in crawl(client):
        assert response.status_code in (200, 302, 403, 404), (url, response.status_code)
        assert_no_secret(response.content, secrets, f"admin page {url}")
        pages += 1
    assert pages > 20, f"the crawl reached only {pages} pages"
    hardening.count("leak_admin_pages_crawled", pages)

    # Pages only a POST shows: the rotate action's confirmation, and the reveal.
    changelist = reverse("admin:trusted_identity_platform_changelist")
    confirm = client.post(
        changelist,
        {"action": "rotate_secrets", "_selected_action": [world["ios"].pk, world["web"].pk]},
    )
    assert confirm.status_code == 200
    assert_no_secret(confirm.content, secrets, "the rotate action's confirmation")

    reveal_url = reverse(
        "admin:trusted_identity_space_reveal_secret", args=[world["acme"].pk, "ios"]
    )
    current = platform_secrets.current_secret_row(world["ios"]).get_secret()
    revealed = client.post(reveal_url)
    assert revealed.status_code == 200 and current.encode() in revealed.content
    assert_no_secret(revealed.content, secrets, "the reveal response", allowed=current)
    again = client.get(
        reverse("admin:trusted_identity_space_trusted_identity", args=[world["acme"].pk])
    )
    assert_no_secret(again.content, secrets, "the settings page after a reveal")

    # Nor in the template engine's DEBUG records, the cookies, the session or messages.
    assert any(r.name == "django.template" for r in caplog.records)  # it did log contexts
    assert_no_secret(caplog.text, secrets, "the template engine's DEBUG log")
    assert_no_secret(str(client.cookies), secrets, "cookies")
    for session in Session.objects.all():
        assert_no_secret(json.dumps(session.get_decoded()), secrets, "the session")


# ------------------------------------------------------------ error pages


def reveal_that_fails_after_decrypting(client, world, owner):
    """A reveal whose page fails after the secret was decrypted (the figures query)."""
    client.force_login(owner)
    client.raise_request_exception = False
    url = reverse("admin:trusted_identity_space_reveal_secret", args=[world["acme"].pk, "ios"])
    with failing_sql(r'FROM "trusted_identity_outcomecount"'):
        return client.post(url, HTTP_ACCEPT="text/html")


def test_debug_error_page_of_a_failed_reveal_holds_no_secret(client, world, settings):
    settings.DEBUG = True
    secrets = every_secret()
    response = reveal_that_fails_after_decrypting(client, world, world["owner"])
    assert response.status_code == 500
    body = response.content.decode()
    assert "Traceback" in body and "injected fault" in body  # really the debug page
    assert_no_secret(body, secrets, "Django's debug error page")
    assert TEST_ENCRYPTION_KEY not in body


def test_error_email_of_a_failed_reveal_holds_no_secret(client, world, settings):
    settings.DEBUG = False
    # Django 6.0 takes plain addresses and deprecates (name, address) pairs.
    settings.ADMINS = (
        ["ops@example.com"] if django.VERSION >= (6, 0) else [("Ops", "ops@example.com")]
    )
    secrets = every_secret()
    response = reveal_that_fails_after_decrypting(client, world, world["owner"])
    assert response.status_code == 500
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    parts = [message.subject, message.body] + [str(a[0]) for a in message.alternatives]
    assert "injected fault" in message.body  # the report really has the traceback
    for part in parts:
        assert_no_secret(part, secrets, "the error e-mail")
        assert TEST_ENCRYPTION_KEY not in part


def test_json_errors_hold_no_secret(client, world, settings):
    """Every error a client can cause, including decryption failures, answers without a
    secret (the 503 names the platform to the log, not the secret to the client)."""
    secrets = every_secret()
    ios, web = world["ios"], world["web"]
    # web's row now holds ios' ciphertext: bound to ios, it can't be decrypted for web.
    PlatformSecret.objects.filter(platform=web, retired_at__isnull=True).update(
        ciphertext=PlatformSecret.objects.filter(platform=ios, retired_at__isnull=True)
        .get()
        .ciphertext
    )
    runtime.current().reset()
    bodies = [
        b"{",
        b'{"userId": 5}',
        b'{"userId": "u", "signed": "' + b"0" * 64 + b'"}',
        b'{"userId": "u"}',
        b'{"signed": "ab"}',
        b"x" * 70000,
    ]
    for platform in (ios, web):
        for body in bodies:
            response = client.post(
                SESSIONS, body, content_type="application/json", HTTP_X_API_KEY=platform.api_key
            )
            assert_no_secret(response.content, secrets, "a JSON error")
    for query in ("?platform=ios&space=acme", "?platform=web&space=acme", "?platform=x"):
        client.force_login(world["owner"])
        response = client.get("/trusted-identity/sign/" + query)
        assert_no_secret(response.content, secrets, "a sign-view answer")


# --------------------------------------------------- objects, audit, dumps


def test_repr_and_str_of_every_object_hold_no_secret(client, world):
    secrets = every_secret()
    ios = world["ios"]
    # Warm every in-process structure that holds key material.
    signed = signing.sign(platform_secrets.current_secret_row(ios).get_secret(), "42")
    client.post(
        SESSIONS,
        json.dumps({"userId": "42", "signed": signed}),
        content_type="application/json",
        HTTP_X_API_KEY=ios.api_key,
    )
    snapshot = lookup.lookup_platform(ios.api_key)
    objects = [
        *Space.objects.all(),
        *Platform.objects.all(),
        *PlatformSecret.objects.all(),
        *OutcomeCount.objects.all(),
        *LogEntry.objects.all(),
        *world["acme"].memberships.all(),
        snapshot,
        *snapshot.secrets,
        get_key_ring(),
        access.get_cli_actor(),
        figures.readiness(ios),
    ]
    for obj in objects:
        assert_no_secret(repr(obj), secrets, f"repr of {type(obj).__name__}")
        assert_no_secret(str(obj), secrets, f"str of {type(obj).__name__}")
        if hasattr(obj, "_meta"):
            assert_no_secret(repr(model_to_dict(obj)), secrets, "model_to_dict")
            assert_no_secret(repr(vars(obj)), secrets, f"vars of {type(obj).__name__}")


def test_decrypted_secrets_are_masked_in_repr_but_work_as_strings(world):
    secret = platform_secrets.reveal_secret(world["ios"], access.get_cli_actor())
    assert isinstance(secret, SecretStr)
    assert repr(secret) == "<secret: masked>"
    assert repr({"secret": secret}) == "{'secret': <secret: masked>}"
    plain = str(secret)
    assert type(plain) is str and plain.startswith("tis_ios_") and len(plain) == 56
    assert f"{secret}" == plain and "%s" % secret == plain  # noqa: UP031
    assert json.dumps(secret) == json.dumps(plain)
    assert secret.encode() == plain.encode()
    assert signing.sign(secret, "42") == signing.sign(plain, "42")
    rotated = platform_secrets.rotate_secret(world["ios"], access.get_cli_actor())
    assert repr(rotated) == "<secret: masked>"


def test_audit_entries_hold_no_secret(client, world, superuser):
    """Every audited operation through the admin and the CLI, then every entry."""
    owner, acme, ios = world["owner"], world["acme"], world["ios"]
    client.force_login(owner)
    for name, data in (
        ("reveal_secret", {}),
        ("rotate_secret", {"post": "yes", "grace": "1h"}),
        ("enforcement", {"post": "yes", "enabled": "on", "override": "on", "reason": "test"}),
        ("enforcement", {"post": "yes", "enabled": "off"}),
    ):
        url = reverse(f"admin:trusted_identity_space_{name}", args=[acme.pk, "ios"])
        assert client.post(url, data).status_code in (200, 302)
    client.post(
        reverse("admin:trusted_identity_platform_changelist"),
        {"action": "rotate_secrets", "_selected_action": [ios.pk], "post": "yes", "grace": "0"},
    )
    out = StringIO()
    for args in (
        ("show-secret", "acme", "ios"),
        ("rotate-secret", "acme", "ios", "--grace", "0"),
        ("enforce", "acme", "web", "off"),
        ("grant", "acme", "victor", "--role", "owner"),
        ("grant", "acme", "olivia", "--role", "admin"),  # victor owns acme now
        ("revoke", "acme", "olivia"),
        ("add-platform", "acme", "roku"),
    ):
        call_command("trusted_identity", *args, stdout=out, stderr=StringIO())
    secrets = every_secret() + [line for line in out.getvalue().split() if line.startswith("tis_")]
    entries = list(LogEntry.objects.all())
    assert len(entries) >= 5  # the admin's; the CLI's own actor has no user for one
    for entry in entries:
        text = f"{entry.change_message} {entry.object_repr} {entry.get_change_message()}"
        assert_no_secret(text, secrets, "an audit entry")
    events = list(AuditEvent.objects.all())
    assert len(events) >= 12  # the admin's and the CLI's
    for event in events:
        text = f"{event.message} {event.object_repr} {event.detail}"
        assert_no_secret(text, secrets, "an audit event")
    for change in PolicyChange.objects.all():
        text = f"{change.old_value} {change.new_value} {change.override_reason} {change.detail}"
        assert_no_secret(text, secrets, "a policy change")


def test_serialized_data_holds_ciphertexts_only(world):
    secrets = every_secret()
    out = StringIO()
    call_command("dumpdata", "trusted_identity", "admin", "sessions", stdout=out)
    dump = out.getvalue()
    assert "v1:" in dump  # the ciphertexts are there
    assert_no_secret(dump, secrets, "dumpdata")
    for fmt in ("json", "xml", "python"):
        data = serializers.serialize(fmt, PlatformSecret.objects.all())
        assert_no_secret(str(data), secrets, f"the {fmt} serializer")


# ---------------------------------------------------------------- caches


def test_cache_holds_no_secret(client, world, settings):
    """After session starts, signing and admin pages, with rate limits on, every value
    and key in the cache is free of plaintext (the platform cache holds ciphertexts)."""
    settings.TRUSTED_IDENTITY = {
        **settings.TRUSTED_IDENTITY,
        "RATE_LIMIT": "1000/m",
        "SIGN_RATE_LIMIT": "1000/m",
    }
    secrets = every_secret()
    for platform in (world["ios"], world["web"], world["roku"]):
        secret = platform_secrets.current_secret_row(platform).get_secret()
        for user_id in ("1", "2"):
            client.post(
                SESSIONS,
                json.dumps({"userId": user_id, "signed": signing.sign(secret, user_id)}),
                content_type="application/json",
                HTTP_X_API_KEY=platform.api_key,
            )
    client.force_login(world["owner"])
    client.get("/trusted-identity/sign/", {"platform": "ios", "space": "acme"})
    client.get(reverse("admin:trusted_identity_space_trusted_identity", args=[world["acme"].pk]))

    cache = caches["default"]
    stored = list(cache._cache.items())  # LocMemCache: key -> pickled value
    assert any(b"v1:" in value for _key, value in stored)  # the snapshots are there
    for key, value in stored:
        assert_no_secret(key, secrets, "a cache key")
        assert_no_secret(value, secrets, "a cache value")
        assert_no_secret(repr(pickle.loads(value)), secrets, "an unpickled cache value")


# ------------------------------------------------------------ the CLI


def test_cli_prints_secrets_on_stdout_only_when_asked(world):
    out, err = StringIO(), StringIO()
    for args in (
        ("status",),
        ("status", "--json"),
        ("sign", "acme", "ios", "42"),
        ("enforce", "acme", "ios", "on", "--force", "--reason", "x"),
        ("rekey",),
        ("grant", "acme", "victor", "--role", "admin"),  # olivia stays acme's owner
    ):
        call_command("trusted_identity", *args, stdout=out, stderr=err)
    secrets = every_secret()
    assert_no_secret(out.getvalue(), secrets, "the CLI's stdout")
    assert_no_secret(err.getvalue(), secrets, "the CLI's stderr")
    shown, err = StringIO(), StringIO()
    call_command("trusted_identity", "show-secret", "acme", "ios", stdout=shown, stderr=err)
    assert shown.getvalue().strip() in secrets
    assert_no_secret(err.getvalue(), secrets, "show-secret's stderr")
