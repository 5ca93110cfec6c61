"""The public-key sub-commands (CONTRACT section 10): ``add-public-key``,
``remove-public-key``, ``public-keys``, ``key-source`` and ``generate-key-pair``; one value
on stdout, words on stderr, bad input a one-line error and a non-zero exit."""

from __future__ import annotations

import io
import json
import sys

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from trusted_identity.models import Platform, PlatformSecret, PublicKey, Role
from trusted_identity.publickeys import parse_public_key

from .factories import MembershipFactory, UserFactory
from .keytoken_helpers import private_keys, public_pem_of
from .test_cli import audit_events_for, fails, manage, run, value_of
from .test_cli import cli_env as cli_env

KEYS = private_keys()


@pytest.fixture
def pem_file(tmp_path):
    def write(alg="ES256", text=None, name="key.pem"):
        path = tmp_path / name
        path.write_text(text if text is not None else public_pem_of(KEYS[alg]))
        return str(path)

    return write


def add(path, *extra):
    return run("add-public-key", "acme", "ios", path, *extra)


# -------------------------------------------------------------- add-public-key


def test_add_prints_the_kid_alone_and_audits(platform, pem_file):
    out, err = add(pem_file())
    parsed = parse_public_key(public_pem_of(KEYS["ES256"]))
    assert value_of(out) == parsed.thumbprint
    assert f"Added public key {parsed.thumbprint!r} to acme/ios (EC P-256, ES256, " in err
    assert parsed.fingerprint in err
    assert "form_not_allowed until `key-source acme ios both`" in err
    assert audit_events_for(platform).last().message.startswith("Added public key")
    out, _ = add(pem_file("RS256"), "--kid", "2026-rsa", "--expires", "30d")
    assert value_of(out) == "2026-rsa"
    assert PublicKey.objects.get(kid="2026-rsa").expires_at is not None


def test_add_reads_a_jwk_file_and_stdin(platform, pem_file, monkeypatch):
    jwk = {**parse_public_key(public_pem_of(KEYS["EdDSA"])).jwk(), "kid": "ed-1"}
    out, _ = add(pem_file(text=json.dumps(jwk), name="key.json"))
    assert value_of(out) == "ed-1"
    stdin = io.TextIOWrapper(io.BytesIO(public_pem_of(KEYS["ES256"]).encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    out, _ = add("-", "--kid", "from-stdin")
    assert value_of(out) == "from-stdin"
    der = (
        KEYS["RS256"]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(der)))
    assert value_of(add("-", "--kid", "der")[0]) == "der"
    assert PublicKey.objects.count() == 3


def test_a_private_key_is_refused_in_one_line_and_never_echoed(platform, pem_file):
    private = (
        KEYS["ES256"]
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    message = fails("add-public-key", "acme", "ios", pem_file(text=private), match="private key")
    body = private.splitlines()[1]
    assert body[:16] not in message
    assert not PublicKey.objects.exists()
    assert not audit_events_for(platform).filter(action="add_public_key").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("/no/such/file.pem",), "cannot read /no/such/file.pem"),
        (("KEY", "--expires", "0"), "in the future"),
        (("KEY", "--expires", "30"), "needs a unit"),
        (("KEY", "--kid", "with space"), "printable ASCII"),
    ],
)
def test_add_errors_are_one_line(platform, pem_file, args, match):
    args = tuple(pem_file() if a == "KEY" else a for a in args)
    fails("add-public-key", "acme", "ios", *args, match=match)
    assert not PublicKey.objects.exists()


def test_a_weak_key_a_fourth_key_and_a_duplicate_are_refused(platform, pem_file, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = public_pem_of(rsa.generate_private_key(65537, 1024))
    fails("add-public-key", "acme", "ios", pem_file(text=weak, name="weak.pem"), match="too weak")
    for n, alg in enumerate(("ES256", "EdDSA", "RS256")):
        add(pem_file(alg, name=f"{n}.pem"), "--kid", f"k{n}")
    fails("add-public-key", "acme", "ios", pem_file("ES256", name="a.pem"), match="already has")
    extra = public_pem_of(private_keys()["ES256"])
    fails("add-public-key", "acme", "ios", pem_file(text=extra, name="b.pem"), match="3 active")
    assert PublicKey.objects.count() == 3


def test_a_viewer_may_list_but_not_change(platform, pem_file):
    viewer = UserFactory(username="vic")
    MembershipFactory(space=platform.space, user=viewer, role=Role.VIEWER)
    fails("--actor", "vic", "add-public-key", "acme", "ios", pem_file(), match="may not|permission")
    add(pem_file(), "--kid", "k")
    out, _ = run("--actor", "vic", "public-keys", "acme", "ios", "--json")
    assert [k["kid"] for k in json.loads(value_of(out))["keys"]] == ["k"]
    fails("--actor", "vic", "remove-public-key", "acme", "ios", "k", match="may not|permission")
    fails("--actor", "vic", "key-source", "acme", "ios", "both", match="may not|permission")


# ---------------------------------------------------- remove-public-key, listing


def test_remove_and_list(platform, pem_file):
    add(pem_file(), "--kid", "ec")
    add(pem_file("RS256", name="r.pem"), "--kid", "rsa", "--expires", "7d")
    out, err = run("public-keys", "acme", "ios")
    lines = out.splitlines()
    assert lines[0].split() == [
        "kid", "key", "state", "expires", "last", "used", "24h", "fingerprint",
    ]  # fmt: skip
    assert lines[1].startswith("ec ") and "EC P-256" in lines[1] and "never" in lines[1]
    assert lines[2].startswith("rsa ") and "RSA 2,048 bits" in lines[2] and " UTC" in lines[2]
    assert "acme/ios verifies its secret only" in err
    listed = json.loads(value_of(run("public-keys", "acme", "ios", "--json")[0]))
    assert (listed["space"], listed["platform"], listed["key_source"]) == ("acme", "ios", "secret")
    assert [(k["kid"], k["alg"], k["state"]) for k in listed["keys"]] == [
        ("ec", "ES256", "unused"),
        ("rsa", "RS256", "unused"),
    ]
    out, err = run("remove-public-key", "acme", "ios", "ec")
    assert out == "" and "Removed public key 'ec' from acme/ios" in err
    fails("remove-public-key", "acme", "ios", "ec", match="has no public key with kid 'ec'")
    assert list(PublicKey.objects.values_list("kid", flat=True)) == ["rsa"]


def test_an_empty_list_says_how_to_add_one(platform):
    out, err = run("public-keys", "acme", "ios")
    assert out == "" and "add-public-key acme ios FILE" in err
    assert json.loads(value_of(run("public-keys", "acme", "ios", "--json")[0]))["keys"] == []
    fails("public-keys", "acme", "nope", match="unknown platform kind")


# ------------------------------------------------------------------ key-source


def test_key_source_staging(platform, pem_file):
    fails("key-source", "acme", "ios", "both", match="add one first")
    add(pem_file(), "--kid", "ec")
    out, err = run("key-source", "acme", "ios", "both")
    assert out == "" and "verifies its secret and its public keys" in err
    message = fails("key-source", "acme", "ios", "public-key", match="not enough starts to tell")
    assert message.endswith("(use --force with --reason)")
    fails("key-source", "acme", "ios", "public-key", "--force", match="--force needs --reason")
    fails("key-source", "acme", "ios", "keys-only", match="invalid choice")
    out, err = run("key-source", "acme", "ios", "public-key", "--force", "--reason", "all moved")
    assert "Its secrets were deleted" in err
    assert Platform.objects.get(pk=platform.pk).key_source == "public-key"
    assert not PlatformSecret.objects.filter(platform=platform).exists()
    assert (
        "override reason: all moved"
        in audit_events_for(platform).filter(action="key_source").last().message
    )
    for refused in (("show-secret",), ("rotate-secret",), ("revoke-previous",)):
        fails(*refused, "acme", "ios", match="verifies public keys only")
    fails("sign", "acme", "ios", "42", match="nothing stored here can sign for it")
    out, err = run("key-source", "acme", "ios", "secret")
    assert "It has a new secret" in err
    assert value_of(run("show-secret", "acme", "ios")[0]).startswith("tis_ios_")


def test_status_json_carries_the_key_source(platform, pem_file):
    add(pem_file(), "--kid", "ec")
    run("key-source", "acme", "ios", "both")
    (space,) = json.loads(value_of(run("status", "acme", "--json")[0]))["spaces"]
    assert space["platforms"][0]["key_source"] == "both"
    assert {"unknown_key", "key_expired"} <= set(space["platforms"][0]["reasons"])


# ------------------------------------------------------------ generate-key-pair


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_generate_key_pair_prints_the_private_key_and_stores_nothing(db, alg):
    out, err = run("generate-key-pair", "--alg", alg)
    assert out.startswith("-----BEGIN PRIVATE KEY-----") and out.endswith(
        "-----END PRIVATE KEY-----\n"
    )
    assert "PRIVATE" not in err and "-----BEGIN PUBLIC KEY-----" in err
    public = err[err.index("-----BEGIN PUBLIC KEY-----") :]
    private = serialization.load_pem_private_key(out.encode(), None)
    assert parse_public_key(public).spki_der == parse_public_key(public_pem_of(private)).spki_der
    assert not PublicKey.objects.exists()


@pytest.mark.end_to_end
def test_subprocess_from_a_new_pair_to_a_public_key_platform(cli_env, tmp_path):
    """What a script sees: the pair without a site, the kid alone on stdout, the
    platform moved, its secret gone, a token PyJWT makes with the private key verifiable
    with the listed key."""
    bare = {k: v for k, v in cli_env.items() if k != "DATABASE_URL"}
    pair = manage(
        {**bare, "DATABASE_URL": "sqlite:////nonexistent/dir/db.sqlite3"}, "generate-key-pair"
    )
    assert pair.returncode == 0, pair.stderr
    assert pair.stdout.startswith("-----BEGIN PRIVATE KEY-----")
    public = pair.stderr[pair.stderr.index("-----BEGIN PUBLIC KEY-----") :]
    (tmp_path / "pub.pem").write_text(public)
    assert manage(cli_env, "create-space", "pk").returncode == 0
    assert manage(cli_env, "add-platform", "pk", "web").returncode == 0
    added = manage(cli_env, "add-public-key", "pk", "web", str(tmp_path / "pub.pem"))
    assert added.returncode == 0, added.stderr
    kid = added.stdout.strip()
    assert added.stdout == kid + "\n" and kid == parse_public_key(public).thumbprint
    moved = manage(cli_env, "key-source", "pk", "web", "public-key", "--force", "--reason", "go")
    assert moved.returncode == 0, moved.stderr
    shown = manage(cli_env, "show-secret", "pk", "web")
    assert shown.returncode != 0 and shown.stdout == ""
    assert len(shown.stderr.strip().splitlines()) == 1 and "Traceback" not in shown.stderr
    listed = json.loads(manage(cli_env, "public-keys", "pk", "web", "--json").stdout)
    assert listed["key_source"] == "public-key" and listed["keys"][0]["kid"] == kid
    made = jwt.encode({"sub": "42", "iat": 1, "exp": 2}, pair.stdout, "ES256", {"kid": kid})
    assert jwt.decode(made, public, ["ES256"], options={"verify_exp": False})["sub"] == "42"
    usage = manage(cli_env, "generate-key-pair", "--alg", "HS256")
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
