"""Property-based fuzzing of public-key tokens (CONTRACT section 10), differential against
PyJWT as ``test_fuzz_tokens.py`` is for HS256: every token the verifier
(``keytokens.verify_key_token``, no PyJWT on its path) accepts is one ``jwt.decode``
accepts with the same public key, algorithm and subject; every token PyJWT refuses for
its signature, algorithm or encoding, it refuses too; and an independent model of the
rules (written from the contract) predicts which tokens are valid.

Tokens are built from generated headers (any ``alg``, any ``kid``, any member) and
claims, signed by the key the ``kid`` names, another key of its type, a key of another
type, ES256's DER form, HMAC keyed with the public key's PEM, or nothing; sometimes
changed by one character afterwards.
"""

from __future__ import annotations

import jwt
from hypothesis import given, note
from hypothesis import strategies as st

from trusted_identity import keytokens
from trusted_identity.tokens import TokenMemo

from . import hardening
from .keytoken_helpers import key_set, key_token, private_keys, public_pem_of
from .test_fuzz import case, examples, one_change
from .test_fuzz_tokens import B64URL, LEEWAY, MAX_AGE, NOW, claims_for, model_valid, user_ids

PRIVATE = private_keys()
WRONG = private_keys()
#: The platform's keys: one per algorithm, by kid.
KIDS = {"ES256": "ec-1", "EdDSA": "ed-1", "RS256": "rsa-1"}
KEYS = key_set(*((kid, PRIVATE[alg]) for alg, kid in KIDS.items()))
ONE_KEY = key_set(("ec-1", PRIVATE["ES256"]))

algs = st.sampled_from(
    [
        *("ES256", "ES256", "EdDSA", "EdDSA", "RS256", "RS256", "HS256", "none", "PS256"),
        *("ES384", "es256", "EdDSA ", "", "RS512"),
    ]
) | st.text(max_size=6)
kids = st.sampled_from([*KIDS.values(), "unknown", ""]) | st.text(max_size=8) | st.integers()
headers = st.fixed_dictionaries(
    {"alg": algs},
    optional={
        "typ": st.sampled_from(["JWT", "jwt", "at+jwt"]) | st.integers(),
        "kid": kids,
        "crit": st.lists(st.text(max_size=5), max_size=2),
        "jku": st.just("https://evil.example/keys"),
        "jwk": st.just({"kty": "OKP", "crv": "Ed25519", "x": "A" * 43}),
        "x5c": st.just(["MIIB"]),
        "b64": st.booleans(),
    },
)


def model_valid_key(header, claims, signer: str, signed_with: str, keys, user_id) -> bool:
    """The contract's rules for a public-key token: the HS256 form's claims and header
    members (``model_valid``, with the algorithm swapped), a key picked by ``kid`` (or
    the only key), of the header's algorithm, that made the signature."""
    alg = header.get("alg") if isinstance(header, dict) else None
    if signer != "right" or alg not in KIDS or signed_with != alg:
        return False
    as_hs256 = {**header, "alg": "HS256"}
    if not model_valid(as_hs256, claims, True, user_id):
        return False
    if "kid" in header:
        return header["kid"] == KIDS[alg] and KIDS[alg] in keys.by_kid
    return len(keys) == 1 and keys.keys[0].alg == alg


def pyjwt_accepts(token: str, key, alg: str, user_id: str) -> bool:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            # The times are the model's to judge, at the frozen NOW: PyJWT would judge
            # them by the wall clock (an nbf between today and NOW is not yet valid).
            options={
                "require": ["sub", "iat", "exp"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
        return False
    return claims["sub"] == user_id


@examples(500)
@given(
    header=headers,
    claims=claims_for(user_ids),
    user_id=user_ids,
    signer=st.sampled_from([*["right"] * 5, "wrong", "other-type", "der", "hmac", "none"]),
    signed_with=st.sampled_from(list(KIDS)),
    one_key=st.booleans(),
    plan=st.sampled_from(["generated", "near-valid", "near-valid", "near-valid-tweaked"]),
    mutate=st.sampled_from([False, False, True]),
    data=st.data(),
)
def test_the_verifier_agrees_with_the_model_and_never_goes_past_pyjwt(
    header, claims, user_id, signer, signed_with, one_key, plan, mutate, data
):
    case("keytoken-differential")
    keys = ONE_KEY if one_key else KEYS
    if one_key:
        signed_with = "ES256"
    if plan != "generated":  # around the edges of the rules, where mistakes hide
        lifetime = data.draw(st.sampled_from([MAX_AGE, 600, 1]) | st.integers(-1, MAX_AGE + 1))
        expires_in = data.draw(
            st.sampled_from([30, -LEEWAY - 1, -LEEWAY, -LEEWAY + 1])
            | st.integers(-MAX_AGE, MAX_AGE)
        )
        iat = NOW + expires_in - lifetime
        base = {"sub": user_id, "iat": iat, "exp": iat + lifetime}
        if plan == "near-valid-tweaked" and claims:
            name = data.draw(st.sampled_from(sorted(claims)))
            claims = {**base, name: claims[name]}
        else:
            claims = base
        if plan == "near-valid" or data.draw(st.booleans()):
            header = {"alg": signed_with, "typ": "JWT"}
            if not one_key or data.draw(st.booleans()):
                header["kid"] = KIDS[signed_with]
    other_type = {"ES256": "EdDSA", "EdDSA": "RS256", "RS256": "ES256"}[signed_with]
    private = {
        "right": PRIVATE[signed_with],
        "wrong": WRONG[signed_with],
        "other-type": PRIVATE[other_type],
        "der": PRIVATE["ES256"],
        "hmac": None,
        "none": None,
    }[signer]
    hmac_key = public_pem_of(PRIVATE[signed_with]).encode() if signer == "hmac" else None
    token = key_token(
        private,
        header=header,
        claims=claims,
        how="der" if signer == "der" else "jws",
        hmac_key=hmac_key,
    )
    expected = model_valid_key(header, claims, signer, signed_with, keys, user_id)
    if signer == "der":
        expected = False
    if mutate:
        changed = one_change(token, data, st.sampled_from(B64URL + ".=+/ é"))
        expected = expected and changed == token
        token = changed
    note(f"header={header!r} claims={claims!r} signer={signer} token={token!r}")
    found, key = keytokens.verify_key_token(
        keys, user_id, token, now=NOW, leeway=LEEWAY, max_age=MAX_AGE, memo=TokenMemo()
    )
    assert found in (None, *keytokens.REASONS)
    assert (found is None) == expected, found
    if found is None:
        hardening.count("fuzz_cases.keytoken-differential-valid")
        # What we accept, PyJWT accepts, with the key that verified it and its algorithm.
        assert pyjwt_accepts(token, key.key, key.alg, user_id)
        assert pyjwt_accepts(token, public_pem_of(PRIVATE[key.alg]), key.alg, user_id)
    for alg, kid in KIDS.items():  # what PyJWT refuses for its signature, we refuse
        try:
            jwt.decode(
                token,
                KEYS.by_kid[kid].key,
                algorithms=[alg],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.DecodeError):
            assert found is not None or key.alg != alg
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
            pass  # a claim PyJWT checks its way: the model decides above
