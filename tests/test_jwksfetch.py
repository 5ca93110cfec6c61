"""The JWKS URL's plain-Python part (``trusted_identity.jwksfetch``): the URL checked, one
fetch against a local HTTPS server whose certificate a test CA signed (timeout, size
cap, redirects, status, trust), and the set read key by key."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from trusted_identity.jwksfetch import JwksError, check_url, fetch, read_jwks
from trusted_identity.publickeys import parse_public_key

from .jwks_server import JwksHost, certificates, jwk_of, jwks_body, no_proxy, raw_jwk  # noqa: F401
from .keytoken_helpers import private_keys, public_pem_of

KEYS = private_keys()


# ------------------------------------------------------------------ the URL


@pytest.mark.parametrize(
    "url",
    [
        "https://keys.example.com/.well-known/jwks.json",
        "  https://keys.example.com:8443/jwks?tenant=a  ",
        "HTTPS://KEYS.EXAMPLE.COM/jwks",
        "https://[2001:db8::1]/jwks",
    ],
)
def test_https_urls_are_taken(url):
    assert check_url(url) == url.strip()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://keys.example.com/jwks", "must use https://"),
        ("http://127.0.0.1:8000/jwks", "only to this machine with DEBUG on"),
        ("ftp://keys.example.com/jwks", "must start with https://"),
        ("file:///etc/passwd", "must start with https://"),
        ("keys.example.com/jwks", "must start with https://"),
        ("https:///jwks", "needs a host"),
        ("https://user:hunter2@keys.example.com/jwks", "user name or password"),
        ("https://keys.example.com/jwks#frag", "fragment"),
        ("https://keys.example.com:99999/jwks", "host or port"),
        ("https://keys.example.com/a b", "printable ASCII"),
        ("https://keys.example.com/\x00", "printable ASCII"),
        ("https://ключи.example/jwks", "printable ASCII"),
        ("https://keys.example.com/" + "a" * 2100, "at most 2,048"),
        ("", "no URL"),
    ],
)
def test_other_urls_are_refused_saying_why(url, words):
    with pytest.raises(JwksError, match=words) as info:
        check_url(url)
    assert "hunter2" not in str(info.value)  # a password is never repeated


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "[::1]", "localhost"])
def test_plain_http_only_to_loopback_and_only_when_allowed(host):
    url = f"http://{host}:8000/jwks"
    assert check_url(url, allow_http_loopback=True) == url
    with pytest.raises(JwksError):
        check_url(url)
    with pytest.raises(JwksError, match="must use https"):
        check_url("http://10.0.0.1/jwks", allow_http_loopback=True)


# ------------------------------------------------------------------ the set


def test_a_set_is_read_key_by_key_with_kids_or_thumbprints():
    entries = [
        jwk_of(KEYS["ES256"], "ec-1", use="sig", alg="ES256"),
        jwk_of(KEYS["EdDSA"]),  # no kid: its thumbprint
        jwk_of(KEYS["RS256"], "rsa-1", key_ops=["verify"]),
    ]
    read = read_jwks(jwks_body(*entries), max_keys=10)
    assert [k.kid for k in read.keys] == [
        "ec-1",
        parse_public_key(public_pem_of(KEYS["EdDSA"])).thumbprint,
        "rsa-1",
    ]
    assert [k.key.alg for k in read.keys] == ["ES256", "EdDSA", "RS256"]
    assert read.skipped == ()


def test_unusable_keys_are_left_out_each_with_a_note():
    weak = rsa.generate_private_key(65537, 1024)
    entries = [
        jwk_of(KEYS["ES256"], "good"),
        jwk_of(KEYS["ES256"], "enc", use="enc"),
        jwk_of(KEYS["RS256"], "ps", alg="PS256"),
        raw_jwk(ec.generate_private_key(ec.SECP384R1()), "p384"),
        raw_jwk(weak, "weak"),
        {"kty": "OKP", "crv": "Ed448", "x": "AA", "kid": "ed448"},
        {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "!!", "y": "AA"},
        jwk_of(KEYS["EdDSA"], "no-verify", key_ops=["encrypt"]),
        "not an object",
    ]
    read = read_jwks({"keys": entries}, max_keys=10)
    assert [k.kid for k in read.keys] == ["good"]
    notes = "\n".join(read.skipped)
    for kid in ("enc", "ps", "p384", "weak", "ed448", "broken", "no-verify"):
        assert f"kid '{kid}'" in notes
    assert "key #9: not a JSON object" in notes
    assert "not signatures" in notes and "1,024 bits is too weak" in notes
    assert "'P-384' is not supported" in notes and "'PS256'" in notes


def test_a_kid_naming_two_keys_uses_neither():
    entries = [
        jwk_of(KEYS["ES256"], "same"),
        jwk_of(KEYS["EdDSA"], "same"),
        jwk_of(KEYS["RS256"], "other"),
    ]
    read = read_jwks({"keys": entries}, max_keys=10)
    assert [k.kid for k in read.keys] == ["other"]
    assert read.skipped == ("kid 'same': names 2 keys, so none of them is used",)


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "k"])
def test_a_private_member_anywhere_refuses_the_whole_set(member):
    leaked = jwk_of(KEYS["RS256"], "leaked", **{member: "AQAB"})
    with pytest.raises(JwksError, match="private or secret key") as info:
        read_jwks({"keys": [jwk_of(KEYS["ES256"], "good"), leaked]}, max_keys=10)
    assert "AQAB" not in str(info.value)


def test_a_symmetric_key_refuses_the_whole_set():
    with pytest.raises(JwksError, match="private or secret key"):
        read_jwks({"keys": [{"kty": "oct", "kid": "hs", "k": "c2VjcmV0"}]}, max_keys=10)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"<html>hello</html>", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"keys": {}}', 'no "keys" list'),
        (b'{"keys": []}', "no key usable"),
        (jwks_body(jwk_of(KEYS["ES256"], "enc", use="enc")), "no key usable here \\(kid 'enc'"),
        (b"[" * 100_000, "not JSON"),
        (json.dumps({"keys": [{}] * 101}).encode(), "101 entries"),
    ],
)
def test_what_is_no_set_is_refused(data, words):
    with pytest.raises(JwksError, match=words):
        read_jwks(data, max_keys=10)


def test_more_usable_keys_than_the_cap_refuse_the_set():
    entries = [jwk_of(ec.generate_private_key(ec.SECP256R1()), f"k{n}") for n in range(4)]
    assert len(read_jwks({"keys": entries}, max_keys=4).keys) == 4
    with pytest.raises(JwksError, match="4 usable keys, more than the 3"):
        read_jwks({"keys": entries}, max_keys=3)


def test_a_bom_is_tolerated():
    body = "\ufeff".encode() + jwks_body(jwk_of(KEYS["ES256"], "a"))
    assert read_jwks(body, max_keys=1).keys[0].kid == "a"


# ------------------------------------------------------------------ the fetch


@pytest.fixture
def host(certificates, no_proxy):
    server = JwksHost(certificates)
    yield server
    server.close()


def get(url, certificates, **kw):
    kw.setdefault("timeout", 2.0)
    kw.setdefault("max_bytes", 64 * 1024)
    kw.setdefault("ca_bundle", certificates.ca_file)
    return fetch(url, **kw)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/jwk-set+json", "text/plain", None]
)
def test_a_set_is_fetched_over_https_whatever_its_content_type(host, certificates, content_type):
    body = jwks_body(jwk_of(KEYS["ES256"], "a"))
    headers = {"Content-Type": content_type} if content_type else {}
    url = host.answer(body=body, headers=headers)
    assert get(url, certificates) == body
    assert get(host.url(host="localhost"), certificates) == body  # by name too
    assert host.hits["/jwks.json"] == 2


def test_a_certificate_not_trusted_is_refused(host, certificates):
    url = host.answer(body=b"{}")
    with pytest.raises(JwksError, match="certificate is not trusted"):
        get(url, certificates, ca_bundle=None)  # the system's authorities never signed it


def test_an_answer_other_than_200_is_an_error_without_its_body(host, certificates):
    url = host.answer(body=b"SECRET-BODY-TEXT", status=500)
    with pytest.raises(JwksError) as info:
        get(url, certificates)
    assert str(info.value) == "the server answered HTTP 500"
    with pytest.raises(JwksError, match="HTTP 204, not 200"):
        get(host.answer("/empty", status=204), certificates)
    with pytest.raises(JwksError, match="HTTP 404"):
        get(host.url("/nowhere"), certificates)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(host, certificates, status):
    target = host.answer("/real", jwks_body(jwk_of(KEYS["ES256"], "a")))
    url = host.answer("/moved", b"", status=status, headers={"Location": target})
    with pytest.raises(JwksError, match=f"HTTP {status}, a redirect to '{target}'"):
        get(url, certificates)
    assert host.hits["/real"] == 0


def test_an_answer_over_the_size_cap_is_refused(host, certificates):
    big = b" " * 5000 + jwks_body(jwk_of(KEYS["ES256"], "a"))
    url = host.answer(body=big)
    with pytest.raises(JwksError, match="larger than 4,096 bytes"):
        get(url, certificates, max_bytes=4096)
    unsized = host.answer("/unsized", big, length=False)  # no Content-Length: counted as read
    with pytest.raises(JwksError, match="larger than 4,096 bytes"):
        get(unsized, certificates, max_bytes=4096)
    assert get(unsized, certificates, max_bytes=len(big)) == big


def test_a_server_too_slow_is_cut_off_at_the_timeout(host, certificates):
    url = host.answer(body=b"{}", delay=3)
    started = time.monotonic()
    with pytest.raises(JwksError, match=r"no whole answer within 0\.5 s"):
        get(url, certificates, timeout=0.5)
    assert time.monotonic() - started < 2


def test_a_server_that_trickles_is_cut_off_at_the_deadline(host, certificates):
    url = host.answer(body=b" " * 200 + b"{}", trickle=0.02)  # each byte well within the timeout
    started = time.monotonic()
    with pytest.raises(JwksError, match=r"no whole answer within 0\.5 s"):
        get(url, certificates, timeout=0.5)
    assert time.monotonic() - started < 1.5


def test_plain_http_is_fetched_only_when_allowed(no_proxy):
    server = JwksHost(None)
    try:
        url = server.answer(body=b"{}")
        with pytest.raises(JwksError, match="only to this machine"):
            fetch(url, timeout=2, max_bytes=1024)
        assert fetch(url, timeout=2, max_bytes=1024, allow_http_loopback=True) == b"{}"
        assert server.hits["/jwks.json"] == 1
    finally:
        server.close()


def test_nothing_listening_is_a_short_error(certificates, no_proxy):
    from .jwks_server import free_port

    url = f"https://127.0.0.1:{free_port()}/jwks.json"
    with pytest.raises(JwksError, match="connection was refused"):
        get(url, certificates)
