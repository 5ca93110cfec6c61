"""``make bench``'s ``public_keys`` section (issue 23): what the public-key token form costs.

- ``verify``: a public-key token through ``verification.verify_signed``, as session start
  calls it, per algorithm (ES256, EdDSA, RS256 with the 3,072-bit key
  ``generate-key-pair`` makes), against a raw HMAC-SHA256 and ``compare_digest`` of the
  same user id: seen for the first time (a different token each call: the whole check,
  one signature verification), seen again (the verified-token memo), and forged (the
  right shape and ``kid``, a signature that does not match: what an attacker makes us
  spend).
- ``session_start``: requests/s through ``make serve``'s server (2 workers) under wrk with a
  first-sight ES256 token in every start (a list of distinct tokens longer than a
  worker's memo, ``bench/bodies.lua``), against the trivial JSON view of the same
  deployment (target >= 0.7).
- ``flood``: the server's CPU per request for a flood of forged public-key tokens (20,000
  user ids, each with a signature that does not match) against a flood of valid
  first-sight ones (20,000 other user ids and their tokens; target <= 2), and against
  one valid token repeated. Each list is sent in turn (``bench/bodies.lua``), again
  and again: a round of 8 s sends it two or three times on a quiet machine, so a token
  comes back to a worker only after its memo let go of it (every valid one is a first
  sight), but a user id comes back every 20,000 starts or so.

The tokens are made with ``privatekeys.TokenSigner``, as the site's own producers make
them. ``calls``, ``seconds`` and ``rounds`` shrink a run to prove it works.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.balance import balanced
from bench.figures import median_run, spread
from bench.load import (
    _free_port,
    _measured,
    _wrk,
    balanced_measured,
    start_site,
    stop_site,
    wrk_round,
)
from bench.verify import time_token_cases

ALGORITHMS = ("ES256", "EdDSA", "RS256")
USER_ID = "load-user"


def add_keys(platform) -> dict:
    """A key pair per algorithm, the public halves added to the platform (which then takes
    public-key tokens too): ``{alg: TokenSigner}``."""
    from trusted_identity.privatekeys import TokenSigner, parse_private_key
    from trusted_identity.publickeys import generate_key_pair
    from trusted_identity.services import access, key_sources, public_keys

    cli = access.get_cli_actor()
    signers = {}
    for alg in ALGORITHMS:
        private_pem, public_pem = generate_key_pair(alg)
        row = public_keys.add_public_key(platform, public_pem, cli, kid=f"bench-{alg}")
        signers[alg] = TokenSigner(parse_private_key(private_pem.encode()), row.kid)
    key_sources.set_key_source(platform, "both", cli)
    return signers


def _tokens(signer, count: int, user_ids: list[str] | None = None) -> list[str]:
    """``count`` distinct valid tokens (a different ``iat`` each: EdDSA and RSA signatures
    are deterministic), valid for the next half hour at least."""
    now = int(time.time())
    return [
        signer.token(user_ids[n] if user_ids else USER_ID, now - n % 1800, now - n % 1800 + 3600)
        for n in range(count)
    ]


def _forged(token: str) -> str:
    """The token with a signature of the right length that does not match, and that the
    verifier must check in full, as an attacker who wants to cost us most would send:
    random bytes put inside the range each algorithm checks before any arithmetic (an
    RSA signature below the modulus, an EdDSA ``S`` below the group's order, ECDSA's
    ``r`` and ``s`` below theirs). Bare random bytes are refused by their size alone
    about half the time for RSA and 15 times in 16 for EdDSA, for a fraction of a
    verification's cost: a forgery's figure would then depend on the key drawn."""
    head, _, signature = token.rpartition(".")
    header = json.loads(base64.urlsafe_b64decode(head.split(".")[0] + "=="))
    length = len(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    forged = bytearray(os.urandom(length))
    if header["alg"] == "RS256":
        forged[0] = 0  # big-endian, as long as the modulus, whose top bit is set: below it
    elif header["alg"] == "EdDSA":
        forged[-1] &= 0x0F  # S, little-endian in the second half: below 2**252, below L
    else:  # ES256: r and s, big-endian halves, each below the curve's order and nonzero
        half = length // 2
        forged[0] &= 0x7F
        forged[half] &= 0x7F
        forged[half - 1] |= 1
        forged[-1] |= 1
    return head + "." + base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()


def bench_key_verify(
    platform, secret: str, signers: dict, quick: bool, calls: int | None = None
) -> dict:
    """Per algorithm: first sight, repeat and forgery against a raw HMAC."""
    from trusted_identity.services import lookup

    snapshot = lookup.lookup_platform(platform.api_key)
    signature = hmac.new(secret.encode(), USER_ID.encode(), hashlib.sha256).hexdigest()

    def raw() -> bool:
        expected = hmac.new(secret.encode(), USER_ID.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    number = calls or (300 if quick else 1_000)
    rounds = 3 if quick or calls else 7
    result: dict = {"calls_per_run": number, "rounds": rounds}
    raws: list[float] = []
    for alg, signer in signers.items():
        runs = _time_tokens(snapshot, signer, number, rounds, raw)
        raws += runs["raw"]
        for name in ("first", "repeat", "forged"):
            result[f"{alg}_{name}_us"] = spread([s * 1e6 for s in runs[name]])
            # Against the raw HMAC timed in the same round, next to it.
            result[f"{alg}_{name}_vs_hmac"] = spread(
                [s / r for s, r in zip(runs[name], runs["raw"], strict=True)]
            )
    result["raw_hmac_us"] = spread([r * 1e6 for r in raws])
    return result


def _time_tokens(
    snapshot, signer, number: int, rounds: int, raw: Callable[[], bool]
) -> dict[str, list[float]]:
    """Each round's time per call of one algorithm's tokens (seen again, first seen,
    forged) and of the raw HMAC, timed in the same round."""
    from trusted_identity.services import verification

    fresh = _tokens(signer, number)
    token, forged = fresh[0], _forged(fresh[0])
    assert verification.verify_signed(snapshot, USER_ID, token).form == "public-key"
    assert all(verification.verify_signed(snapshot, USER_ID, t).valid for t in fresh[::97])
    assert verification.verify_signed(snapshot, USER_ID, forged).reason == "no_match"
    return time_token_cases(
        snapshot, USER_ID, token, fresh, forged, raw, number=number, rounds=rounds
    )


def _wrk_bodies(url: str, api_key: str, bodies: Path, seconds: int, connections: int) -> dict:
    """One wrk round over a file of bodies, one a request in turn (``bench/bodies.lua``)."""
    return wrk_round(
        url, api_key, "bodies.lua", {"BENCH_BODIES_FILE": str(bodies)}, seconds, connections
    )


def _measured_bodies(server, *args) -> dict:
    return _measured(server, *args, run=_wrk_bodies)


def _write_bodies(path: Path, pairs) -> Path:
    path.write_text(
        "".join(
            json.dumps({"userId": u, "signed": s}, separators=(",", ":")) + "\n" for u, s in pairs
        )
    )
    return path


def bench_key_session_start(
    env: dict,
    platform,
    secret: str,
    signers: dict,
    quick: bool,
    *,
    tokens: int | None = None,
    seconds: int | None = None,
    rounds: int | None = None,
) -> dict:
    """Session start with a first-sight ES256 token, against the trivial view."""
    port = _free_port()
    server = start_site(env, port, secret)
    seconds = seconds or (3 if quick else 10)
    connections = 8 if quick else 16
    count = tokens or 20_000  # > 2 x 4,096: a token comes back to a worker after its memo let go
    base = f"http://127.0.0.1:{port}"
    start_url, trivial_url = f"{base}/trusted-identity/v1/sessions", f"{base}/bench/trivial"
    with tempfile.TemporaryDirectory() as workdir:
        bodies = _write_bodies(
            Path(workdir) / "es256.jsonl", ((USER_ID, t) for t in _tokens(signers["ES256"], count))
        )
        plain = json.dumps({"userId": USER_ID, "signed": "0" * 64})
        runs: dict[str, list[dict]] = {"es256_first": [], "trivial": []}
        skipped = 0
        try:
            _wrk_bodies(start_url, platform.api_key, bodies, 1, connections)  # warm
            _wrk(trivial_url, platform.api_key, plain, 1, connections)
            # Interleaved pairs; a pair counts when no worker did more than 65% of either
            # run's work (an unbalanced round measures the server's accepts, not the token).
            wanted = rounds or (1 if quick else 5)
            for index in range(wanted * 2):
                pair = {}
                for name in (
                    ("es256_first", "trivial") if index % 2 == 0 else ("trivial", "es256_first")
                ):
                    if name == "trivial":
                        pair[name] = _measured(
                            server, trivial_url, platform.api_key, plain, seconds, connections
                        )
                    else:
                        pair[name] = _measured_bodies(
                            server, start_url, platform.api_key, bodies, seconds, connections
                        )
                if all(balanced(run) for run in pair.values()):
                    for name, run in pair.items():
                        runs[name].append(run)
                else:
                    skipped += 1
                if len(runs["trivial"]) == wanted:
                    break
        finally:
            stop_site(server)
    ratios = [
        a["rps"] / b["rps"] for a, b in zip(runs["es256_first"], runs["trivial"], strict=True)
    ]
    result = {
        name: median_run(values) | {"rps_spread": spread([run["rps"] for run in values])}
        for name, values in runs.items()
    }
    result["session_start_es256_first_vs_trivial"] = round(statistics.median(ratios), 3)
    result["session_start_es256_first_vs_trivial_spread"] = spread(ratios)
    result["distinct_tokens"] = count
    result["unbalanced_pairs_skipped"] = skipped
    return result


def bench_key_flood(
    env: dict,
    platform,
    secret: str,
    signers: dict,
    quick: bool,
    *,
    tokens: int | None = None,
    seconds: int | None = None,
    rounds: int | None = None,
) -> dict:
    """Forged public-key tokens (signatures that do not match) against valid first-sight
    ones, by the server's CPU per request: 20,000 user ids of each, sent in turn and
    again (a token is a first sight each time, a user id a returning one after the
    first 20,000 starts)."""
    port = _free_port()
    server = start_site(env, port, secret)
    seconds = seconds or (3 if quick else 8)
    connections = 8 if quick else 16
    count = tokens or 20_000
    url = f"http://127.0.0.1:{port}/trusted-identity/v1/sessions"
    prefix = os.urandom(4).hex()
    users = [f"flood-{prefix}-{n}" for n in range(count)]
    valid_tokens = _tokens(signers["ES256"], count, users)
    forged_users = [f"forged-{prefix}-{n}" for n in range(count)]
    forged_tokens = [_forged(t) for t in _tokens(signers["ES256"], count, forged_users)]
    with tempfile.TemporaryDirectory() as workdir:
        valid = _write_bodies(Path(workdir) / "valid.jsonl", zip(users, valid_tokens, strict=True))
        forged = _write_bodies(
            Path(workdir) / "forged.jsonl", zip(forged_users, forged_tokens, strict=True)
        )
        repeated = json.dumps({"userId": users[0], "signed": valid_tokens[0]})
        runs: dict[str, list[dict]] = {"valid": [], "repeated": [], "forged": []}
        refused = dict.fromkeys(runs, 0)
        try:
            _wrk_bodies(url, platform.api_key, valid, 1, connections)  # warm
            # Interleaved rounds, each counted only when balanced (bench/balance.py).
            for index in range(rounds or (1 if quick else 3)):
                order = ("valid", "repeated", "forged")
                for name in order if index % 2 == 0 else order[::-1]:
                    if name == "repeated":
                        run, refused[name] = balanced_measured(
                            server, refused[name],
                            url, platform.api_key, repeated, seconds, connections,
                        )  # fmt: skip
                    else:
                        run, refused[name] = balanced_measured(
                            server, refused[name],
                            url, platform.api_key, valid if name == "valid" else forged,
                            seconds, connections, run=_wrk_bodies,
                        )  # fmt: skip
                    runs[name].append(run)
            time.sleep(1.5)  # the workers' last flush
        finally:
            stop_site(server)

    def cpu_ratios(over: str) -> list[float]:
        return [
            a["cpu_us_per_request"] / b["cpu_us_per_request"]
            for a, b in zip(runs["forged"], runs[over], strict=True)
        ]

    return {
        "valid_first_sight_flood": median_run(runs["valid"]),
        "valid_repeated_flood": median_run(runs["repeated"]),
        "forged_flood": median_run(runs["forged"]),
        "forged_vs_valid_cpu": round(statistics.median(cpu_ratios("valid")), 3),
        "forged_vs_valid_cpu_spread": spread(cpu_ratios("valid")),
        "forged_vs_repeated_cpu": round(statistics.median(cpu_ratios("repeated")), 3),
        "forged_vs_repeated_cpu_spread": spread(cpu_ratios("repeated")),
        "rounds_refused_unbalanced": refused,
    }


def bench_public_keys(env: dict, platform, secret: str, quick: bool, **sizes) -> dict:
    """The three parts, on a platform given a key pair per algorithm."""
    signers = add_keys(platform)
    return {
        "verify": bench_key_verify(platform, secret, signers, quick, sizes.get("calls")),
        "session_start": bench_key_session_start(
            env,
            platform,
            secret,
            signers,
            quick,
            tokens=sizes.get("tokens"),
            seconds=sizes.get("seconds"),
            rounds=sizes.get("rounds"),
        ),
        "flood": bench_key_flood(
            env,
            platform,
            secret,
            signers,
            quick,
            tokens=sizes.get("tokens"),
            seconds=sizes.get("seconds"),
            rounds=sizes.get("rounds"),
        ),
    }
