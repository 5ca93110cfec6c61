"""A platform's JWKS URL through the doors (CONTRACT sections 4, 5 and 10): session starts
verified with a JWKS key on both paths (the Django view and the lean WSGI path), a new
kid fetched in the start that names it, made-up kids fetching at most once a minute;
and ``jwks-url`` on the command line. The JWKS host is a local HTTPS server whose
certificate a test CA signed (``tests/jwks_server.py``)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from trusted_identity import runtime
from trusted_identity.models import AuditEvent, JwksSource, Role
from trusted_identity.services import (
    access,
    diagnostics,
    enforcement,
    jwks,
    key_sources,
    verification,
)

from .factories import MembershipFactory, UserFactory
from .jwks_server import certificates, jwk_of, jwks_host, no_proxy  # noqa: F401
from .keytoken_helpers import NOW, key_token, private_keys
from .test_cli import fails, run
from .test_http import assert_error, assert_json, start

KEYS = private_keys()
NEXT = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    monkeypatch.setattr(verification, "clock", lambda: NOW)


def token(private=None, kid="ec-1", alg="ES256", user_id="u-1"):
    claims = {"sub": user_id, "iat": NOW - 10, "exp": NOW + 600}
    return key_token(private or KEYS[alg], alg=alg, kid=kid, claims=claims)


def a_minute_passes(platform):
    JwksSource.objects.filter(pk=platform.pk).update(
        attempted_at=timezone.now() - timedelta(seconds=61)
    )
    runtime.current().reset()


@pytest.fixture
def published(platform, jwks_host, django_capture_on_commit_callbacks):
    """Public keys only, enforced, verified with a JWKS of an ES256 and an RS256 key."""
    cli = access.get_cli_actor()
    url = jwks_host.serve_keys(jwk_of(KEYS["ES256"], "ec-1"), jwk_of(KEYS["RS256"], "rsa-1"))
    with django_capture_on_commit_callbacks(execute=True):
        jwks.set_jwks_url(platform, url, cli)
        key_sources.set_key_source(platform, "public-key", cli, force=True, reason="test")
        enforcement.set_enforcement(platform, True, cli, force=True, reason="test")
    a_minute_passes(platform)
    return platform


# ------------------------------------------------------------------ session start


@pytest.mark.both_paths
@pytest.mark.parametrize(("alg", "kid"), [("ES256", "ec-1"), ("RS256", "rsa-1")])
def test_a_jwks_key_starts_a_trusted_session(client, published, alg, kid):
    body = assert_json(
        start(client, published.api_key, {"userId": "u-1", "signed": token(alg=alg, kid=kid)})
    )
    assert (body["trusted"], body["signature"], body["userId"]) == (True, "valid", "u-1")
    refused = start(client, published.api_key, {"userId": "u-2", "signed": token(alg=alg, kid=kid)})
    assert_error(refused, 403, "signature_invalid")


@pytest.mark.both_paths
def test_a_rotated_key_verifies_in_the_start_that_first_names_it(client, published, jwks_host):
    jwks_host.serve_keys(jwk_of(KEYS["ES256"], "ec-1"), jwk_of(NEXT, "ec-2"))
    signed = token(NEXT, kid="ec-2")
    body = assert_json(start(client, published.api_key, {"userId": "u-1", "signed": signed}))
    assert body["trusted"] is True
    assert jwks_host.hits["/jwks.json"] == 2  # the set, then the one fetch the new kid made
    assert AuditEvent.objects.filter(action="jwks_keys").count() == 1
    # The key the set dropped stops at once, and asks nothing more of the host.
    dropped = token(alg="RS256", kid="rsa-1")
    assert_error(
        start(client, published.api_key, {"userId": "u-1", "signed": dropped}),
        403,
        "signature_invalid",
    )
    assert jwks_host.hits["/jwks.json"] == 2


@pytest.mark.both_paths
def test_a_flood_of_made_up_kids_fetches_once_and_gets_one_answer(client, published, jwks_host):
    bodies = set()
    for n in range(30):
        response = start(client, published.api_key, {"userId": "u-1", "signed": token(kid=f"x{n}")})
        assert_error(response, 403, "signature_invalid")
        bodies.add(response.content)
    assert len(bodies) == 1
    assert jwks_host.hits["/jwks.json"] == 2  # the set, then one fetch for the whole flood
    runtime.current().reset()  # a second server process: the database's claim holds
    for n in range(10):
        start(client, published.api_key, {"userId": "u-1", "signed": token(kid=f"y{n}")})
    assert jwks_host.hits["/jwks.json"] == 2
    assert diagnostics.reasons_for([published.pk])[published.pk]["unknown_key"] == 40
    good = start(client, published.api_key, {"userId": "u-1", "signed": token()})
    assert assert_json(good)["trusted"] is True


@pytest.mark.both_paths
def test_the_last_good_set_serves_while_the_host_is_down(client, published, jwks_host):
    jwks_host.answer(status=502)
    response = start(client, published.api_key, {"userId": "u-1", "signed": token(kid="new")})
    assert_error(response, 403, "signature_invalid")
    assert JwksSource.objects.get().error == "the server answered HTTP 502"
    assert assert_json(start(client, published.api_key, {"userId": "u-1", "signed": token()}))[
        "trusted"
    ]


@pytest.mark.both_paths
def test_a_warm_jwks_start_reads_nothing_and_fetches_nothing(
    client, published, jwks_host, counts_as_served
):
    """The set is cached twice: in its row (every process), and with the snapshot and
    the parsed keys in each process, so a warm start neither queries nor fetches."""
    first = {"userId": "u-1", "signed": token()}
    assert start(client, published.api_key, first).status_code == 201
    fresh = {"userId": "u-2", "signed": token(alg="RS256", kid="rsa-1", user_id="u-2")}
    with CaptureQueriesContext(connection) as queries:
        assert assert_json(start(client, published.api_key, first))["trusted"]
        assert assert_json(start(client, published.api_key, fresh))["trusted"]
    assert queries.captured_queries == []
    assert jwks_host.hits["/jwks.json"] == 1  # only when the URL was set


# ------------------------------------------------------------------ jwks-url


def test_jwks_url_sets_shows_refreshes_and_clears(platform, jwks_host):
    url = jwks_host.serve_keys(jwk_of(KEYS["ES256"], "ec-1"), jwk_of(KEYS["EdDSA"], "ed-1"))
    out, err = run("jwks-url", "acme", "ios", url)
    assert "acme/ios now also verifies with the keys of its JWKS URL." in err
    assert f"JWKS URL: {url}" in err
    lines = out.splitlines()
    assert lines[0].split() == ["kid", "key", "alg", "fingerprint"]
    assert lines[1].split()[:4] == ["ec-1", "EC", "P-256", "ES256"]
    assert lines[2].startswith("ed-1") and "SHA256:" in lines[2]
    assert AuditEvent.objects.filter(action="jwks_url", door="cli").count() == 1

    out, _ = run("jwks-url", "acme", "ios", "--json")
    shown = json.loads(out)
    assert (shown["space"], shown["platform"], shown["jwks"]["url"]) == ("acme", "ios", url)
    assert [k["kid"] for k in shown["jwks"]["keys"]] == ["ec-1", "ed-1"]
    assert shown["jwks"]["error"] is None

    jwks_host.serve_keys(jwk_of(NEXT, "ec-2"))
    _, err = run("jwks-url", "acme", "ios", "--refresh")
    assert "Fetched acme/ios's JWKS: a new key set" in err
    _, err = run("jwks-url", "acme", "ios", "--refresh")
    assert "no change" in err
    jwks_host.answer(status=500)
    message = fails("jwks-url", "acme", "ios", "--refresh")
    assert message == (
        "fetching acme/ios's JWKS failed: the server answered HTTP 500; its last good set is kept"
    )
    out, err = run("jwks-url", "acme", "ios")
    assert "The last fetch" in err and "failed: the server answered HTTP 500" in err
    assert out.splitlines()[1].startswith("ec-2")

    _, err = run("public-keys", "acme", "ios")
    assert "It also verifies the 1 key of its JWKS URL (`jwks-url acme ios` lists them)." in err
    assert "No stored public keys" in err

    _, err = run("jwks-url", "acme", "ios", "none")
    assert "acme/ios no longer verifies with a JWKS URL." in err
    assert not JwksSource.objects.exists()
    _, err = run("jwks-url", "acme", "ios", "none")
    assert "had no JWKS URL; nothing changed" in err
    out, err = run("jwks-url", "acme", "ios")
    assert out == "" and "has no JWKS URL: set one with `jwks-url acme ios https://...`" in err


def test_jwks_url_refuses_what_has_no_usable_set_in_one_line(platform, jwks_host):
    message = fails("jwks-url", "acme", "ios", jwks_host.answer(status=404))
    assert message.endswith("the server answered HTTP 404; nothing was stored")
    fails("jwks-url", "acme", "ios", "http://keys.example.com/jwks", match="must use https://")
    fails("jwks-url", "acme", "ios", "https://u:p@keys.example.com/", match="user name or password")
    fails("jwks-url", "acme", "ios", jwks_host.url(), "--refresh", match="not both")
    fails("jwks-url", "acme", "ios", "--refresh", match="has no JWKS URL")
    fails("jwks-url", "acme", "nope", match="kind")
    assert not JwksSource.objects.exists() and not AuditEvent.objects.filter(action="jwks_url")


def test_jwks_url_checks_a_named_actor(platform, jwks_host, space):
    url = jwks_host.serve_keys(jwk_of(KEYS["ES256"], "ec-1"))
    viewer = UserFactory(username="vic")
    MembershipFactory(space=space, user=viewer, role=Role.VIEWER)
    fails("--actor", "vic", "jwks-url", "acme", "ios", url, match="permission|may not")
    assert jwks_host.hits["/jwks.json"] == 0
    run("jwks-url", "acme", "ios", url)
    out, _ = run("--actor", "vic", "jwks-url", "acme", "ios")  # a viewer may look
    assert out.splitlines()[1].startswith("ec-1")
    fails("--actor", "vic", "jwks-url", "acme", "ios", "none", match="permission|may not")
    fails("--actor", "vic", "jwks-url", "acme", "ios", "--refresh", match="permission|may not")
