"""The console knows public keys (CONTRACT section 10): each platform's key source with
its gated change, its public keys (kid, algorithm, fingerprint, who added them when,
expiry, use, "safe to remove"), the form that adds one (a private key pasted by mistake
refused, never stored, never sent back), Expire and Remove through a confirmation
page, and, once public-key only, why there is no secret, read from the audit record.
"""

from __future__ import annotations

import html
import json
import logging
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.urls import reverse

from trusted_identity import outcomes
from trusted_identity.formatting import moment
from trusted_identity.models import AuditEvent, PlatformSecret, PolicyChange, PublicKey
from trusted_identity.publickeys import parse_public_key
from trusted_identity.services import counting, key_sources, public_keys

from ..factories import MembershipFactory, UserFactory
from ..keytoken_helpers import private_keys, public_pem_of
from .helpers import action_url, messages_of, platform_log, settings_url

KEYS = private_keys()


def private_pem(private) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def text(body: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def section(body: str, kind: str = "ios") -> str:
    start = body.index(f'id="platform-{kind}"')
    end = body.find('<section class="module ti-platform"', start + 1)
    return body[start : end if end > 0 else len(body)]


def add(platform, alg, actor):
    return public_keys.add_public_key(platform, public_pem_of(KEYS[alg]), actor, kid=alg.lower())


def keys_url(space, **query):
    url = action_url(space, "public_keys", "ios")
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


@pytest.fixture
def keyed(platform, cli_actor):
    for alg in ("ES256", "EdDSA"):
        add(platform, alg, cli_actor)
    return platform


# ------------------------------------------------------------------- the list


def test_the_page_lists_each_key_with_fingerprint_use_and_safety(
    owner_client, space, keyed, cli_actor
):
    ec = PublicKey.objects.get(platform=keyed, kid="es256")
    for n in range(3):
        counting.record_start(keyed.pk, "valid", f"u{n}", form="public-key", key_id=ec.pk)
    outcomes.flush()
    body = section(owner_client.get(settings_url(space)).content.decode())
    words = text(body)
    fingerprint = parse_public_key(public_pem_of(KEYS["ES256"])).fingerprint
    assert '<code class="ti-fingerprint"' in body and fingerprint in body
    assert "es256 ES256, EC P-256" in words and "ed25519" not in words
    assert "eddsa EdDSA, Ed25519" in words
    assert "Added " in words and "by trusted-identity-cli; never expires." in words
    used = body[body.index('data-kid="es256"') : body.index('data-kid="eddsa"')]
    assert 'data-verified-24h="3"' in used and "It verified 3 starts in the last 24 hours" in (
        text(used)
    )
    assert 'data-usage="in-use"' in used  # used within the hour: not safe to remove
    unused = body[body.index('data-kid="eddsa"') :]
    assert 'data-usage="safe"' in unused and "Unused for an hour: safe to remove." in text(unused)
    assert "2 of at most 3 keys verify." in words
    # The JWKS URL's fact beside the key source, before the secret's facts.
    assert body.index('id="key-source-label-ios"') < body.index('id="jwks-ios"')
    assert body.index('id="jwks-ios"') < body.index('id="secret-label-ios"')


def test_an_expired_key_says_so_and_offers_only_remove(owner_client, space, keyed, cli_actor):
    public_keys.expire_public_key(keyed, "eddsa", cli_actor)
    body = section(owner_client.get(settings_url(space)).content.decode())
    expired = body[body.index('data-kid="eddsa"') :]
    assert 'data-key-state="expired"' in expired
    assert "counts as key_expired" in text(expired)
    assert "action=expire&amp;kid=eddsa" not in body and "action=remove&amp;kid=eddsa" in body
    assert "1 of at most 3 keys verify." in text(body)


def test_viewers_see_the_keys_but_no_controls(client, space, keyed):
    viewer = UserFactory(username="vic")
    MembershipFactory(space=space, user=viewer, role="viewer")
    client.force_login(viewer)
    body = section(client.get(settings_url(space)).content.decode())
    assert 'data-kid="es256"' in body and 'data-key-source="secret"' in body
    for control in ('name="key"', "Expire…", "Remove…", 'name="source"'):
        assert control not in body


# ------------------------------------------------------------------- adding


def test_adding_a_pem_key(owner_client, space, platform):
    response = owner_client.post(
        keys_url(space),
        {"action": "add", "key": public_pem_of(KEYS["RS256"]), "kid": "rsa-1", "expires": "90d"},
    )
    assert response.status_code == 302 and response["Location"].endswith("#platform-ios")
    row = PublicKey.objects.get(platform=platform)
    assert (row.kid, row.alg, row.added_by_name) == ("rsa-1", "RS256", "olivia")
    assert row.expires_at is not None
    message = " ".join(messages_of(owner_client.get(settings_url(space))))
    assert "Added public key 'rsa-1'" in message and "RSA 2,048 bits" in message
    assert "It expires " in message and "form_not_allowed" in message  # the secret only, still
    assert "Added public key 'rsa-1'" in platform_log(platform).last().change_message
    assert AuditEvent.objects.filter(platform=platform, action="add_public_key").count() == 1


def test_adding_a_jwk_takes_its_kid_or_the_thumbprint(owner_client, space, platform):
    parsed = parse_public_key(public_pem_of(KEYS["EdDSA"]))
    jwk = {**parsed.jwk(), "kid": "from-the-jwk"}
    owner_client.post(keys_url(space), {"action": "add", "key": json.dumps(jwk)})
    owner_client.post(keys_url(space), {"action": "add", "key": public_pem_of(KEYS["ES256"])})
    kids = set(PublicKey.objects.filter(platform=platform).values_list("kid", flat=True))
    assert kids == {"from-the-jwk", parse_public_key(public_pem_of(KEYS["ES256"])).thumbprint}


def refused(owner_client, space, key, **fields):
    response = owner_client.post(keys_url(space), {"action": "add", "key": key, **fields})
    assert response.status_code == 200
    body = response.content.decode()
    errors = re.search(r'<ul class="errorlist" id="key-errors-ios">(.*?)</ul>', body, re.S)
    assert errors, "the reason is drawn beside the form"
    textarea = re.search(r'<textarea name="key"[^>]*>(.*?)</textarea>', body, re.S)
    assert textarea.group(1) == "", "the key field is drawn empty"
    assert '<details class="ti-add-key" id="add-key-ios" open>' in body
    return text(errors.group(1)), body


def test_a_private_key_pasted_by_mistake_is_refused_and_never_echoed(
    owner_client, space, platform, caplog
):
    pem = private_pem(KEYS["ES256"])
    secret_lines = [line for line in pem.splitlines() if "-----" not in line]
    with caplog.at_level(logging.DEBUG):
        reason, body = refused(owner_client, space, pem, kid="oops", expires="30d")
    assert "This is a private key: it was not stored" in reason
    assert not PublicKey.objects.exists()
    for line in secret_lines:
        assert line not in body
        assert line not in caplog.text
    # The typed kid and expiry stay, for the next try with the public half.
    assert 'value="oops"' in body and 'value="30d"' in body
    # A JWK with its private member "d": the same.
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "a" * 43, "d": "SECRETVALUE" + "b" * 32}
    reason, body = refused(owner_client, space, json.dumps(jwk))
    assert "private" in reason and "SECRETVALUE" not in body
    assert not PublicKey.objects.exists()


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("weak-rsa", "too weak: RS256 needs at least 2,048 bits"),
        ("p384", "is not supported: ES256 needs P-256"),
        ("junk", "public key"),
        ("nul", "Null characters are not allowed."),
        ("too-long", "That is longer than 16 KiB: not one public key."),
        ("empty", "Paste the public key: PEM or JWK."),
    ],
)
def test_weak_unsupported_and_odd_keys_are_refused_with_a_message(
    owner_client, space, platform, key, said
):
    value = {
        "weak-rsa": lambda: public_pem_of(rsa.generate_private_key(65537, 1024)),
        "p384": lambda: public_pem_of(ec.generate_private_key(ec.SECP384R1())),
        "junk": lambda: "hello, I am not a key",
        "nul": lambda: public_pem_of(KEYS["ES256"]).replace("\n", "\x00\n", 1),
        "too-long": lambda: "A" * 20_000,
        "empty": lambda: "",
    }[key]()
    reason, _ = refused(owner_client, space, value)
    assert said.lower() in reason.lower()
    assert not PublicKey.objects.exists()


def test_a_fourth_key_and_a_kid_twice_are_refused(owner_client, space, keyed):
    reason, _ = refused(owner_client, space, public_pem_of(KEYS["ES256"]), kid="again")
    assert "already has this public key, as kid 'es256'" in reason
    reason, _ = refused(owner_client, space, public_pem_of(KEYS["RS256"]), kid="es256")
    assert "already has a public key with kid 'es256'" in reason
    owner_client.post(
        keys_url(space), {"action": "add", "key": public_pem_of(KEYS["RS256"]), "kid": "third"}
    )
    body = owner_client.get(settings_url(space)).content.decode()
    assert 'id="keys-full-ios"' in body and 'name="key"' not in section(body)
    fourth = private_keys()["ES256"]
    reason, _ = refused_without_form(owner_client, space, public_pem_of(fourth))
    assert "already has 3 active public keys" in reason
    assert PublicKey.objects.filter(platform=keyed).count() == 3


def refused_without_form(owner_client, space, key):
    """A POST the page no longer offers a form for (the platform is full): the reason is
    drawn all the same."""
    response = owner_client.post(keys_url(space), {"action": "add", "key": key})
    assert response.status_code == 200
    return text(section(response.content.decode())), response


def test_bad_kid_and_expiry_are_form_errors(owner_client, space, platform):
    reason, _ = refused(owner_client, space, public_pem_of(KEYS["ES256"]), kid="has space")
    assert "printable ASCII without spaces" in reason
    reason, _ = refused(owner_client, space, public_pem_of(KEYS["ES256"]), expires="5")
    assert "needs a unit" in reason
    reason, _ = refused(owner_client, space, public_pem_of(KEYS["ES256"]), expires="0")
    assert "in the future" in reason
    assert not PublicKey.objects.exists()


# ------------------------------------------------------------ expire and remove


@pytest.mark.parametrize("action", ["expire", "remove"])
def test_expire_and_remove_go_through_a_confirmation(owner_client, space, keyed, action):
    page = owner_client.get(keys_url(space, action=action, kid="es256"))
    assert page.status_code == 200
    words = text(page.content.decode())
    assert ("key_expired" if action == "expire" else "unknown_key") in words
    assert parse_public_key(public_pem_of(KEYS["ES256"])).fingerprint in words
    assert "last public key" not in words  # eddsa still verifies
    assert PublicKey.objects.filter(platform=keyed).active().count() == 2  # nothing yet
    # A POST without post=yes is the confirmation again.
    again = owner_client.post(keys_url(space), {"action": action, "kid": "es256"})
    assert again.status_code == 200 and f'id="confirm-{action}-key"' in again.content.decode()
    done = owner_client.post(keys_url(space), {"action": action, "kid": "es256", "post": "yes"})
    assert done.status_code == 302
    row = PublicKey.objects.filter(platform=keyed, kid="es256").first()
    if action == "expire":
        assert row is not None and not row.is_active()
    else:
        assert row is None
    event = AuditEvent.objects.filter(platform=keyed).latest("at", "id")
    assert event.action == f"{action}_public_key" and event.actor_name == "olivia"
    assert "'es256'" in " ".join(messages_of(owner_client.get(settings_url(space))))


def test_the_last_key_is_named_as_such(owner_client, space, keyed, cli_actor):
    key_sources.set_key_source(keyed, "both", cli_actor)
    public_keys.remove_public_key(keyed, "eddsa", cli_actor)
    words = text(owner_client.get(keys_url(space, action="remove", kid="es256")).content.decode())
    assert "This is the last public key that verifies" in words
    owner_client.post(keys_url(space), {"action": "remove", "kid": "es256", "post": "yes"})
    message = " ".join(messages_of(owner_client.get(settings_url(space))))
    assert "no public key that verifies left" in message


def test_unknown_and_odd_kids_answer_in_the_section(owner_client, space, keyed):
    for kid in ("nope", "x" * 500, "\x00"):
        response = owner_client.get(keys_url(space, action="remove", kid=kid))
        assert response.status_code == 302
    response = owner_client.post(
        keys_url(space), {"action": "remove", "kid": "nope", "post": "yes"}
    )
    assert response.status_code == 302
    message = " ".join(messages_of(owner_client.get(settings_url(space))))
    assert "no public key with kid 'nope'" in message
    assert PublicKey.objects.filter(platform=keyed).count() == 2


# ----------------------------------------------------------------- key source


def key_source(owner_client, space, source, **data):
    return owner_client.post(action_url(space, "key_source", "ios"), {"source": source, **data})


def test_the_key_source_and_its_readiness_figure(owner_client, space, keyed):
    ec = PublicKey.objects.get(platform=keyed, kid="es256")
    for n in range(3):
        counting.record_start(keyed.pk, "valid", f"k{n}", form="public-key", key_id=ec.pk)
    counting.record_start(keyed.pk, "valid", "p0", form="plain")
    outcomes.flush()
    body = section(owner_client.get(settings_url(space)).content.decode())
    assert 'data-key-source="secret"' in body
    readiness = text(re.search(r'id="key-readiness-ios"[^>]*>(.*?)</p>', body, re.S).group(1))
    assert "Valid users who signed with a public key since " in readiness
    assert ": 3 of 4 (75.0%)." in readiness
    assert "needs 99.0% of them, out of at least 100 valid users (users, not starts)" in readiness


def test_both_needs_a_key_and_then_no_override(owner_client, space, platform):
    page = key_source(owner_client, space, "both")
    assert 'id="no-keys"' in page.content.decode()
    assert 'id="confirm-key-source"' not in page.content.decode()
    refused = key_source(owner_client, space, "both", post="yes")
    assert "has no public key that verifies" in text(refused.content.decode())
    platform.refresh_from_db()
    assert platform.key_source == "secret"


def test_public_key_only_below_the_rule_needs_the_override(owner_client, space, keyed):
    key_source(owner_client, space, "both", post="yes")
    page = key_source(owner_client, space, "public-key")
    body = page.content.decode()
    assert 'id="secrets-deletion"' in body and "secrets are deleted in the same step" in body
    assert 'name="override"' in body and 'data-verdict="too_little_data"' in body
    refused = key_source(owner_client, space, "public-key", post="yes")
    assert "Tick the override box" in refused.context["form"].errors["override"][0]
    no_reason = key_source(owner_client, space, "public-key", post="yes", override="on")
    assert no_reason.context["form"].errors["reason"]
    assert PlatformSecret.objects.filter(platform=keyed).exists()
    done = key_source(
        owner_client, space, "public-key", post="yes", override="on", reason="all on v4"
    )
    assert done.status_code == 302
    keyed.refresh_from_db()
    assert keyed.key_source == "public-key"
    assert not PlatformSecret.objects.filter(platform=keyed).exists()
    change = PolicyChange.objects.filter(platform=keyed, setting="key_source").latest("at", "id")
    assert (change.old_value, change.new_value, change.override_reason) == (
        "both",
        "public-key",
        "all on v4",
    )
    assert change.actor_name == "olivia"
    message = " ".join(messages_of(owner_client.get(settings_url(space))))
    assert "verifies public-key tokens only. Its secrets were deleted" in message
    # In the platform's history and the policy history, like the other changes.
    history = owner_client.get(
        reverse("admin:trusted_identity_platform_history", args=[keyed.pk])
    ).content.decode()
    assert "Key source: both -&gt; public-key." in history
    assert "override reason: all on v4" in history
    assert "Deleted the platform&#x27;s 1 secret" in history
    policy = owner_client.get(
        reverse("admin:trusted_identity_policychange_changelist"), {"setting": "key_source"}
    ).content.decode()
    assert "Key source" in policy and "public-key" in policy and "olivia" in policy


def test_once_public_key_only_the_page_says_why_there_is_no_secret(
    owner_client, space, keyed, cli_actor
):
    key_sources.set_key_source(keyed, "public-key", cli_actor, force=True, reason="moved")
    deletion = AuditEvent.objects.get(platform=keyed, action="delete_secrets")
    body = section(owner_client.get(settings_url(space)).content.decode())
    words = text(body)
    assert "None: this platform verifies public keys only" in words
    assert "no secret to reveal or rotate" in words
    deleted = text(re.search(r'id="secrets-deleted-ios"[^>]*>(.*?)</p>', body, re.S).group(1))
    assert deleted.startswith("Its secrets were deleted on ")
    assert "by trusted-identity-cli (Command line)" in deleted
    assert moment(deletion.at) in deleted
    for gone in (">Reveal<", ">Rotate<", "Secrets that verify", "End the grace now"):
        assert gone not in body
    assert "Last changed by trusted-identity-cli (Command line)" in words
    assert "Readiness overridden; reason: “moved”" in words
    # The tester stays: it tests public-key tokens.
    assert "Says which public key verified a token" in words
    # Leaving public keys makes a new secret, said on the way.
    key_source(owner_client, space, "both", post="yes")
    message = " ".join(messages_of(owner_client.get(settings_url(space))))
    assert "It has a new secret" in message
    assert PlatformSecret.objects.filter(platform=keyed).count() == 1


def test_going_back_to_the_secret_warns_of_public_key_users(owner_client, space, keyed, cli_actor):
    key_sources.set_key_source(keyed, "both", cli_actor)
    ec = PublicKey.objects.get(platform=keyed, kid="es256")
    counting.record_start(keyed.pk, "valid", "k1", form="public-key", key_id=ec.pk)
    outcomes.flush()
    words = text(key_source(owner_client, space, "secret").content.decode())
    assert "Public-key tokens stop verifying (they count as form_not_allowed)" in words
    assert "1 valid users signed with a public key (1 valid starts)" in words
    assert 'name="override"' not in key_source(owner_client, space, "secret").content.decode()


def test_an_unchanged_or_unknown_source_changes_nothing(owner_client, space, keyed):
    response = key_source(owner_client, space, "secret", post="yes")
    assert response.status_code == 302
    assert "already verifies with the secret" in " ".join(
        messages_of(owner_client.get(settings_url(space)))
    )
    for junk in ("", "rsa", "\x00", "x" * 5000):
        response = key_source(owner_client, space, junk, post="yes")
        assert response.status_code == 302
    assert not PolicyChange.objects.filter(platform=keyed, setting="key_source").exists()
