"""The AES-GCM key ring that encrypts platform secrets at rest (plain Python)."""

import ast
import base64
import subprocess
import sys
from pathlib import Path

import pytest

from trusted_identity.crypto import (
    KEY_BYTES,
    DecryptionError,
    KeyRing,
    KeyRingError,
    UnknownKeyError,
    generate_key,
    key_id_for,
)

AD = b"trusted_identity.platformsecret:platform=1"
OTHER_AD = b"trusted_identity.platformsecret:platform=2"
PLAINTEXT = "tis_ios_0123456789abcdefghijABCDEFGHIJ0123456789"


@pytest.fixture
def key_a():
    return generate_key()


@pytest.fixture
def key_b():
    return generate_key()


def _raw(key: str) -> bytes:
    return base64.urlsafe_b64decode(key)


def _with_blob(token: str, change) -> str:
    version, key_id, body = token.split(":")
    blob = bytearray(base64.urlsafe_b64decode(body))
    change(blob)
    return f"{version}:{key_id}:{base64.urlsafe_b64encode(bytes(blob)).decode()}"


def test_round_trip(key_a):
    ring = KeyRing([key_a])
    token = ring.encrypt(PLAINTEXT, AD)
    assert ring.decrypt(token, AD) == PLAINTEXT
    assert PLAINTEXT not in token
    assert token.startswith(f"v1:{ring.primary_key_id}:")
    # Non-ASCII plaintexts come back unchanged too.
    assert ring.decrypt(ring.encrypt("clé-secrète 🚀", AD), AD) == "clé-secrète 🚀"


def test_each_encryption_uses_a_fresh_nonce(key_a):
    ring = KeyRing([key_a])
    tokens = {ring.encrypt(PLAINTEXT, AD) for _ in range(20)}
    assert len(tokens) == 20
    nonces = {base64.urlsafe_b64decode(t.split(":")[2])[:12] for t in tokens}
    assert len(nonces) == 20


def test_associated_data_mismatch_raises(key_a):
    ring = KeyRing([key_a])
    token = ring.encrypt(PLAINTEXT, AD)
    with pytest.raises(DecryptionError) as excinfo:
        ring.decrypt(token, OTHER_AD)
    assert not isinstance(excinfo.value, UnknownKeyError)
    assert PLAINTEXT not in str(excinfo.value)
    with pytest.raises(DecryptionError):
        ring.decrypt(token, b"")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda blob: blob.__setitem__(0, blob[0] ^ 1), id="nonce-bit"),
        pytest.param(lambda blob: blob.__setitem__(15, blob[15] ^ 0x80), id="ciphertext-bit"),
        pytest.param(lambda blob: blob.__setitem__(-1, blob[-1] ^ 1), id="tag-bit"),
        pytest.param(lambda blob: blob.__delitem__(slice(-1, None)), id="tag-cut-short"),
        pytest.param(lambda blob: blob.extend(b"\x00"), id="byte-appended"),
    ],
)
def test_tampered_token_raises(key_a, change):
    ring = KeyRing([key_a])
    token = ring.encrypt(PLAINTEXT, AD)
    tampered = _with_blob(token, change)
    assert tampered != token
    with pytest.raises(DecryptionError):
        ring.decrypt(tampered, AD)


def test_unknown_key_id_names_the_key_id(key_a, key_b):
    token = KeyRing([key_b]).encrypt(PLAINTEXT, AD)
    missing_id = key_id_for(_raw(key_b))
    with pytest.raises(UnknownKeyError) as excinfo:
        KeyRing([key_a]).decrypt(token, AD)
    assert excinfo.value.key_id == missing_id
    assert missing_id in str(excinfo.value)
    assert isinstance(excinfo.value, DecryptionError)
    assert key_b not in str(excinfo.value)


def test_key_id_swapped_in_the_token_is_refused(key_a, key_b):
    """Relabelling a token with another key's id doesn't get it decrypted."""
    ring = KeyRing([key_a, key_b])
    token = ring.encrypt(PLAINTEXT, AD)
    _, _, body = token.split(":")
    relabelled = f"v1:{key_id_for(_raw(key_b))}:{body}"
    with pytest.raises(DecryptionError):
        ring.decrypt(relabelled, AD)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("not a token", id="words"),
        pytest.param("v1:abcd1234", id="two-parts"),
        pytest.param("v1:abcd1234:AAAA:AAAA", id="four-parts"),
        pytest.param("v2:abcd1234:" + "A" * 40, id="unknown-version"),
        pytest.param("v1:abcd1234:***not-base64***", id="not-base64"),
        pytest.param("v1:abcd1234:AAAA", id="truncated"),
        pytest.param("v1:abcd1234:é", id="non-ascii"),
        pytest.param(None, id="none"),
        pytest.param(b"v1:abcd1234:AAAA", id="bytes"),
    ],
)
def test_malformed_tokens_raise_decryption_error(key_a, token):
    ring = KeyRing([key_a])
    with pytest.raises(DecryptionError):
        ring.decrypt(token, AD)


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(["not base64 at all!"], id="not-base64"),
        pytest.param(["clé"], id="non-ascii"),
        pytest.param([base64.urlsafe_b64encode(b"\x01" * 16).decode()], id="16-bytes"),
        pytest.param([base64.urlsafe_b64encode(b"\x01" * 31).decode()], id="31-bytes"),
        pytest.param([base64.urlsafe_b64encode(b"\x01" * 64).decode()], id="64-bytes"),
        pytest.param([], id="none"),
        pytest.param(["", "  "], id="blank"),
    ],
)
def test_bad_keys_raise_key_ring_error(keys):
    with pytest.raises(KeyRingError):
        KeyRing(keys)


def test_a_bad_key_anywhere_in_the_list_is_refused(key_a):
    with pytest.raises(KeyRingError) as excinfo:
        KeyRing([key_a, "short"])
    assert "#2" in str(excinfo.value)
    assert key_a not in str(excinfo.value)


def test_keys_are_stripped_and_deduplicated(key_a, key_b):
    ring = KeyRing([f"  {key_a} ", key_b, key_a])
    assert ring.key_ids == [key_id_for(_raw(key_a)), key_id_for(_raw(key_b))]


def test_first_key_encrypts_and_every_key_decrypts(key_a, key_b):
    old_token = KeyRing([key_a]).encrypt(PLAINTEXT, AD)
    ring = KeyRing([key_b, key_a])
    assert ring.primary_key_id == key_id_for(_raw(key_b))
    new_token = ring.encrypt(PLAINTEXT, AD)
    assert ring.key_id_of(new_token) == key_id_for(_raw(key_b))
    assert ring.decrypt(old_token, AD) == PLAINTEXT
    assert ring.decrypt(new_token, AD) == PLAINTEXT
    # A ring holding only the old key can't read what the new one wrote.
    with pytest.raises(UnknownKeyError):
        KeyRing([key_a]).decrypt(new_token, AD)
    # And the new key alone can read its own tokens but not the old one's.
    assert KeyRing([key_b]).decrypt(new_token, AD) == PLAINTEXT
    with pytest.raises(UnknownKeyError):
        KeyRing([key_b]).decrypt(old_token, AD)


def test_needs_rekey(key_a, key_b):
    old_token = KeyRing([key_a]).encrypt(PLAINTEXT, AD)
    ring = KeyRing([key_b, key_a])
    assert ring.needs_rekey(old_token) is True
    assert ring.needs_rekey(ring.encrypt(PLAINTEXT, AD)) is False
    with pytest.raises(DecryptionError):
        ring.needs_rekey("garbage")


def test_generate_key_decodes_to_32_bytes():
    key = generate_key()
    assert len(base64.urlsafe_b64decode(key)) == KEY_BYTES == 32
    assert key.isascii()
    assert generate_key() != key
    # A generated key is accepted by the ring as is.
    assert len(KeyRing([key]).key_ids) == 1


def test_key_ids_reveal_nothing_of_the_key(key_a):
    ring = KeyRing([key_a])
    key_id = ring.primary_key_id
    assert key_id == key_id_for(_raw(key_a))
    assert len(key_id) == 8
    assert key_id not in _raw(key_a).hex()


def test_repr_holds_no_key_material(key_a, key_b):
    ring = KeyRing([key_a, key_b])
    text = repr(ring) + str(ring)
    for key in (key_a, key_b):
        raw = _raw(key)
        assert key not in text
        assert key.rstrip("=") not in text
        assert raw.hex() not in text
        assert base64.b64encode(raw).decode().rstrip("=") not in text
        assert repr(raw) not in text
    assert ring.primary_key_id in text


@pytest.mark.parametrize("module", ["crypto", "signing"])
def test_core_modules_import_nothing_from_django(module):
    path = Path(__file__).resolve().parents[1] / "trusted_identity" / f"{module}.py"
    tree = ast.parse(path.read_text("utf-8"))
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}.py imports from the package: {node.module}"
            imported.append(node.module or "")
    assert imported, "parsed no imports at all"
    assert not [name for name in imported if name.split(".")[0] == "django"]


def test_core_modules_load_without_django():
    """Importing them in a fresh interpreter loads no django module at all."""
    code = (
        "import sys, trusted_identity.crypto, trusted_identity.signing;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        env={"PATH": "", "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert result.stdout.strip() == "[]"
