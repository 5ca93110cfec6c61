"""A platform's JWKS URL (``services.jwks``, CONTRACT section 10) against a local HTTPS
host whose certificate a test CA signed: set only when it answers with a usable set,
cleared, audited; fetched again on an unknown kid at most once a minute per platform
across processes, the last good set kept when a fetch fails, timeouts bounded, an old
set fetched again in the background."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.cache import caches
from django.utils import timezone

from tests.jwks_server import (  # noqa: F401
    JwksHost,
    certificates,
    jwk_of,
    jwks_body,
    jwks_host,
    no_proxy,
)
from tests.keytoken_helpers import NOW, key_token, private_keys, public_pem_of
from tests.support import read_generation
from trusted_identity import runtime
from trusted_identity.exceptions import InvalidRequest, PermissionDenied
from trusted_identity.models import AuditEvent, JwksSource, Role
from trusted_identity.services import (
    access,
    jwks,
    key_sources,
    lookup,
    public_keys,
    verification,
)

from ..factories import MembershipFactory, UserFactory

KEYS = private_keys()
NEXT = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    monkeypatch.setattr(verification, "clock", lambda: NOW)


@pytest.fixture
def cli(db):
    return access.get_cli_actor()


@pytest.fixture
def published(platform, jwks_host, cli, commit):
    """The platform verifying public keys (``both``) with a JWKS of an ES256 and an EdDSA key."""
    url = jwks_host.serve_keys(jwk_of(KEYS["ES256"], "ec-1"), jwk_of(KEYS["EdDSA"], "ed-1"))
    with commit():
        jwks.set_jwks_url(platform, url, cli)
        key_sources.set_key_source(platform, "both", cli)
    return platform


def token(private=None, kid="ec-1", alg="ES256", user_id="u-1"):
    claims = {"sub": user_id, "iat": NOW - 10, "exp": NOW + 600}
    return key_token(private or KEYS[alg], alg=alg, kid=kid, claims=claims)


def verdict(platform, signed, user_id="u-1"):
    return verification.verify_signed(lookup.lookup_platform(platform.api_key), user_id, signed)


def events(platform, action):
    return list(
        AuditEvent.objects.filter(platform=platform, action=action)
        .order_by("pk")
        .values_list("message", flat=True)
    )


def another_process():
    """What a second serving process sees: nothing of this one's memory, the same database."""
    runtime.current().reset()


def a_minute_passes(platform):
    JwksSource.objects.filter(pk=platform.pk).update(
        attempted_at=timezone.now() - timedelta(seconds=61)
    )
    another_process()


# ------------------------------------------------------------------ set, clear


def test_setting_a_url_fetches_it_stores_its_keys_and_audits(platform, jwks_host, cli, commit):
    url = jwks_host.serve_keys(jwk_of(KEYS["ES256"], "ec-1"), jwk_of(KEYS["RS256"]))
    before = read_generation()
    with commit():
        row = jwks.set_jwks_url(platform, url, cli)
    assert jwks_host.hits["/jwks.json"] == 1
    assert row.url == url and row.error == "" and row.fetched_at is not None
    assert [k["kid"] for k in row.keys] == [
        "ec-1",
        jwks.ParsedKey.from_der(jwks.base64.b64decode(row.keys[1]["spki"])).thumbprint,
    ]
    assert all(set(k) == {"kid", "alg", "spki"} for k in row.keys)  # public material only
    assert read_generation() > before
    (message,) = events(platform, "jwks_url")
    assert message.startswith(f"Set the JWKS URL to {url}: 2 keys; added 'ec-1' (ES256, SHA256:")
    # Its keys count as keys that verify: the platform may take public-key tokens.
    assert public_keys.has_public_keys(platform)
    key_sources.set_key_source(platform, "both", cli)
    assert verdict(platform, token()).valid


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ({"status": 404}, "HTTP 404"),
        ({"body": b"<html>login</html>"}, "not JSON"),
        ({"body": jwks_body(jwk_of(KEYS["ES256"], "x", use="enc"))}, "no key usable"),
        ({"body": jwks_body(jwk_of(KEYS["ES256"], "x", d="AQAB"))}, "private or secret key"),
    ],
)
def test_a_url_without_a_usable_set_is_refused_and_nothing_stored(
    platform, jwks_host, cli, answer, words
):
    url = jwks_host.answer(**answer)
    with pytest.raises(InvalidRequest, match=f"{url}: .*{words}.*; nothing was stored"):
        jwks.set_jwks_url(platform, url, cli)
    assert not JwksSource.objects.exists() and not events(platform, "jwks_url")


def test_changing_to_a_broken_url_keeps_the_old_one(published, jwks_host, cli):
    broken = jwks_host.answer("/broken", status=500)
    with pytest.raises(InvalidRequest, match="HTTP 500"):
        jwks.set_jwks_url(published, broken, cli)
    assert JwksSource.objects.get().url == jwks_host.url()
    assert verdict(published, token()).valid


def test_plain_http_only_to_loopback_with_debug_or_the_setting(platform, cli, settings, no_proxy):
    server = JwksHost(None)
    try:
        url = server.serve_keys(jwk_of(KEYS["ES256"], "ec-1"))
        with pytest.raises(InvalidRequest, match="only to this machine with DEBUG on"):
            jwks.set_jwks_url(platform, url, cli)
        assert server.hits["/jwks.json"] == 0  # refused before any request
        settings.DEBUG = True
        assert jwks.set_jwks_url(platform, url, cli).url == url
        settings.DEBUG = False
        settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "JWKS_ALLOW_HTTP_LOOPBACK": True}
        assert jwks.set_jwks_url(platform, url, cli).url == url
    finally:
        server.close()


def test_only_those_who_manage_keys_change_the_url(platform, jwks_host, space):
    url = jwks_host.serve_keys(jwk_of(KEYS["ES256"], "ec-1"))
    viewer = UserFactory()
    MembershipFactory(space=space, user=viewer, role=Role.VIEWER)
    with pytest.raises(PermissionDenied):
        jwks.set_jwks_url(platform, url, access.Actor.admin(viewer))
    assert jwks_host.hits["/jwks.json"] == 0  # nothing fetched for a refused actor
    admin = UserFactory()
    MembershipFactory(space=space, user=admin, role=Role.ADMIN)
    jwks.set_jwks_url(platform, url, access.Actor.admin(admin))
    for call in (jwks.clear_jwks_url, jwks.refresh_jwks):
        with pytest.raises(PermissionDenied):
            call(platform, access.Actor.admin(viewer))


def test_clearing_the_url_stops_its_keys_at_once_audited(published, cli, commit):
    assert verdict(published, token()).valid
    with commit():
        assert jwks.clear_jwks_url(published, cli) is True
    assert verdict(published, token()).reason == "unknown_key"
    (message,) = events(published, "jwks_url")[1:]
    assert message.startswith(f"Removed the JWKS URL {jwks.jwks_state(published) or ''}")
    assert "its 2 keys no longer verify" in message
    assert "No public key that verifies is left" in message
    assert jwks.clear_jwks_url(published, cli) is False  # nothing to clear: nothing written
    assert len(events(published, "jwks_url")) == 2


# ------------------------------------------------------------------ the keys together


def test_stored_keys_and_jwks_keys_verify_together_the_stored_one_wins_a_kid(
    published, jwks_host, cli
):
    public_keys.add_public_key(published, public_pem_of(KEYS["RS256"]), cli, kid="rsa-stored")
    assert verdict(published, token(alg="RS256", kid="rsa-stored")).valid
    assert verdict(published, token(alg="EdDSA", kid="ed-1")).valid
    # A stored key of the JWKS's kid: the stored key verifies that kid, not the fetched one.
    public_keys.add_public_key(published, public_pem_of(NEXT), cli, kid="ec-1")
    assert verdict(published, token(NEXT, kid="ec-1")).valid
    assert verdict(published, token(kid="ec-1")).reason == "no_match"
    state = jwks.jwks_state(published)
    assert [(k.kid, k.shadowed) for k in state.keys] == [("ec-1", True), ("ed-1", False)]


# ------------------------------------------------------------------ unknown kid


def test_a_new_kid_is_fetched_at_once_and_verifies_in_the_same_start(published, jwks_host):
    a_minute_passes(published)  # setting the URL was this minute's fetch
    before = read_generation()
    jwks_host.serve_keys(jwk_of(KEYS["ES256"], "ec-1"), jwk_of(NEXT, "ec-2"))
    result = verdict(published, token(NEXT, kid="ec-2"))
    assert result.valid and result.form == "public-key"
    assert jwks_host.hits["/jwks.json"] == 2  # set, then the one fetch
    assert read_generation() > before
    (message,) = events(published, "jwks_keys")
    assert message.startswith(
        f"New key set from the JWKS URL {jwks_host.url()}: 2 keys; added 'ec-2'"
    )
    assert "removed 'ed-1'" in message
    event = AuditEvent.objects.get(action="jwks_keys")
    assert (event.actor_name, event.door, event.detail) == (
        "jwks-refresh",
        "code",
        "a token named an unknown kid",
    )
    assert verdict(published, token(alg="EdDSA", kid="ed-1")).reason == "unknown_key"


def test_made_up_kids_fetch_at_most_once_a_minute_per_platform_across_processes(
    published, jwks_host
):
    a_minute_passes(published)
    for n in range(20):
        assert verdict(published, token(kid=f"made-up-{n}")).reason == "unknown_key"
    assert jwks_host.hits["/jwks.json"] == 2  # set, then one fetch for the first made-up kid
    attempted = JwksSource.objects.get().attempted_at
    another_process()  # its own memory is empty: the database's claim still holds
    for n in range(20):
        assert verdict(published, token(kid=f"again-{n}")).reason == "unknown_key"
    assert jwks_host.hits["/jwks.json"] == 2
    assert JwksSource.objects.get().attempted_at == attempted
    a_minute_passes(published)
    verdict(published, token(kid="later"))
    assert jwks_host.hits["/jwks.json"] == 3
    assert not events(published, "jwks_keys")  # the same set: nothing new, nothing audited


def test_a_failed_fetch_keeps_the_last_good_set_and_says_why(published, jwks_host):
    jwks_host.answer(body=b"SERVER-SAYS-SOMETHING", status=503)
    a_minute_passes(published)
    generation = read_generation()
    assert verdict(published, token(kid="ec-new")).reason == "unknown_key"
    row = JwksSource.objects.get()
    assert row.error == "the server answered HTTP 503"
    assert len(row.keys) == 2 and read_generation() == generation
    assert verdict(published, token()).valid  # the last good set still verifies
    # A set with a private key in it is a failed fetch too: nothing of it is taken.
    jwks_host.serve_keys(jwk_of(NEXT, "ec-new", d="AQAB"))
    a_minute_passes(published)
    assert verdict(published, token(NEXT, kid="ec-new")).reason == "unknown_key"
    assert "private or secret key (kid 'ec-new')" in JwksSource.objects.get().error
    # Fixed: the next fetch stores the set and clears the error.
    jwks_host.serve_keys(jwk_of(NEXT, "ec-new"))
    a_minute_passes(published)
    assert verdict(published, token(NEXT, kid="ec-new")).valid
    assert JwksSource.objects.get().error == ""


def test_a_host_that_hangs_holds_one_start_for_at_most_the_timeout(published, jwks_host, settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "JWKS_TIMEOUT": 0.5}
    jwks_host.answer(body=jwks_body(jwk_of(NEXT, "ec-2")), delay=5)
    a_minute_passes(published)
    started = time.monotonic()
    assert verdict(published, token(NEXT, kid="ec-2")).reason == "unknown_key"
    assert time.monotonic() - started < 2
    assert JwksSource.objects.get().error == "no whole answer within 0.5 s (JWKS_TIMEOUT)"
    started = time.monotonic()  # the next unknown kid does not wait at all
    assert verdict(published, token(NEXT, kid="ec-3")).reason == "unknown_key"
    assert time.monotonic() - started < 0.3
    assert verdict(published, token()).valid


def test_refreshing_by_hand_ignores_the_minute_and_reports(published, jwks_host, cli):
    jwks_host.serve_keys(jwk_of(NEXT, "ec-2"))
    done = jwks.refresh_jwks(published, cli)
    assert (done.fetched, done.changed, done.error) == (True, True, "")
    assert events(published, "jwks_keys")[0].startswith("New key set")
    assert AuditEvent.objects.get(action="jwks_keys").actor_name == cli.display_name
    done = jwks.refresh_jwks(published, cli)  # within the minute: fetched all the same
    assert (done.fetched, done.changed) == (True, False)
    jwks_host.answer(status=500)
    assert jwks.refresh_jwks(published, cli).error == "the server answered HTTP 500"
    assert jwks_host.hits["/jwks.json"] == 4
    assert verdict(published, token(NEXT, kid="ec-2")).valid


def test_refreshing_a_platform_without_a_url_is_refused(platform, cli):
    with pytest.raises(InvalidRequest, match="has no JWKS URL"):
        jwks.refresh_jwks(platform, cli)


def test_a_secret_only_platform_with_a_jwks_counts_its_tokens_as_a_refused_form(
    platform, jwks_host, cli
):
    jwks.set_jwks_url(platform, jwks_host.serve_keys(jwk_of(KEYS["ES256"], "ec-1")), cli)
    assert verdict(platform, token()).reason == "form_not_allowed"


# ------------------------------------------------------------------ grown old


@pytest.mark.django_db(transaction=True)
def test_a_set_grown_old_is_fetched_again_in_the_background(space, jwks_host, settings):
    from ..factories import PlatformFactory

    cli = access.get_cli_actor()
    platform = PlatformFactory(space=space, kind="android")
    jwks.set_jwks_url(platform, jwks_host.serve_keys(jwk_of(KEYS["ES256"], "ec-1")), cli)
    key_sources.set_key_source(platform, "both", cli)
    assert verdict(platform, token()).valid
    assert jwks_host.hits["/jwks.json"] == 1  # fresh: no fetch
    old = timezone.now() - timedelta(minutes=11)
    JwksSource.objects.filter(pk=platform.pk).update(fetched_at=old, attempted_at=old)
    caches["default"].clear()  # the snapshot as read now (time passing would make it old too)
    another_process()
    jwks_host.serve_keys(jwk_of(KEYS["ES256"], "ec-1"), jwk_of(NEXT, "ec-2"))
    assert verdict(platform, token()).valid  # answered at once, with the set it had
    runtime.current().jwks_refreshes.wait()
    assert jwks_host.hits["/jwks.json"] == 2
    row = JwksSource.objects.get()
    assert row.fetched_at > old and [k["kid"] for k in row.keys] == ["ec-1", "ec-2"]
    assert (
        AuditEvent.objects.get(action="jwks_keys").detail == "the set was older than JWKS_MAX_AGE"
    )
    another_process()
    assert verdict(platform, token(NEXT, kid="ec-2")).valid
    assert jwks_host.hits["/jwks.json"] == 2  # the new kid was known: no fetch
