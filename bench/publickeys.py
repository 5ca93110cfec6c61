"""``make bench``'s ``public_keys`` section (issue 23): what the public-key token form costs.

- ``verify``: a public-key token through ``verification.verify_signed``, as session start
  calls it, per algorithm (ES256, EdDSA, RS256 with the 3,072-bit key
  ``generate-key-pair`` makes), against a raw HMAC-SHA256 and ``compare_digest`` of the
  same user id: seen for the first time (a different token each call: the whole check,
  one signature verification), seen again (the verified-token memo), and forged (the
  right shape and ``kid``, a signature that does not match: what an attacker makes us
  spend).
- ``session_start``: requests/s through gunicorn (2 workers) under wrk with a
  first-sight ES256 token in every start (a list of distinct tokens longer than a
  worker's memo, ``bench/bodies.lua``), against the trivial JSON view of the same
  deployment (target >= 0.7).
- ``flood``: the server's CPU per request for a flood of forged public-key tokens (each
  a new user id, a signature that does not match) against a flood of valid first-sight
  ones (each a new user id and its token; target <= 2), and against one valid token
  repeated.

The tokens are made with ``privatekeys.TokenSigner``, as the site's own producers make
them. ``calls``, ``seconds`` and ``rounds`` shrink a run to prove it works.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
import timeit
from pathlib import Path

from bench.run import (
    _UNITS,
    _WRK_PERCENTILE,
    _WRK_REQUESTS,
    _WRK_RPS,
    _WRK_STATUS,
    ROOT,
    _free_port,
    _measured,
    _server_cpu_seconds,
    _start_gunicorn,
    _wrk,
)

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
    """The token with a signature of the right length that does not match."""
    head, _, signature = token.rpartition(".")
    length = len(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    return head + "." + base64.urlsafe_b64encode(os.urandom(length)).rstrip(b"=").decode()


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

    raw_best = min(timeit.timeit(raw, number=20_000) / 20_000 for _ in range(5))
    number = calls or (300 if quick else 1_000)
    result: dict = {"raw_hmac_us": round(raw_best * 1e6, 3), "calls_per_run": number}
    for alg, signer in signers.items():
        best = _time_tokens(snapshot, signer, number, 3 if quick or calls else 5)
        for name, seconds in best.items():
            result[f"{alg}_{name}_us"] = round(seconds * 1e6, 3)
            result[f"{alg}_{name}_vs_hmac"] = round(seconds / raw_best, 2)
    return result


def _time_tokens(snapshot, signer, number: int, rounds: int) -> dict[str, float]:
    """The best time per call of one algorithm's tokens: seen again, first seen, forged."""
    from trusted_identity import runtime
    from trusted_identity.services import verification

    fresh = _tokens(signer, number)
    token, forged = fresh[0], _forged(fresh[0])
    assert verification.verify_signed(snapshot, USER_ID, token).form == "public-key"
    assert all(verification.verify_signed(snapshot, USER_ID, t).valid for t in fresh[::97])
    assert verification.verify_signed(snapshot, USER_ID, forged).reason == "no_match"
    pending = iter(fresh)

    def again() -> bool:
        return verification.verify_signed(snapshot, USER_ID, token).valid

    def first() -> bool:
        return verification.verify_signed(snapshot, USER_ID, next(pending)).valid

    def forgery() -> bool:
        return verification.verify_signed(snapshot, USER_ID, forged).valid

    runs: dict[str, list[float]] = {"repeat": [], "first": [], "forged": []}
    for _ in range(rounds):
        runs["repeat"].append(timeit.timeit(again, number=number) / number)
        runtime.current().tokens.clear()  # every token unseen again
        pending = iter(fresh)
        runs["first"].append(timeit.timeit(first, number=number) / number)
        runs["forged"].append(timeit.timeit(forgery, number=number) / number)
    return {name: min(values) for name, values in runs.items()}


def _wrk_bodies(url: str, api_key: str, bodies: Path, seconds: int, connections: int) -> dict:
    """One wrk round over a file of bodies (``bench/bodies.lua``), as ``run._wrk`` reads it."""
    env = {**os.environ, "BENCH_BODIES_FILE": str(bodies), "BENCH_API_KEY": api_key}
    command = [
        "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
        "-s", str(ROOT / "bench" / "bodies.lua"), url,
    ]  # fmt: skip
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    percentiles = {p: float(v) * _UNITS[u] for p, v, u in _WRK_PERCENTILE.findall(output)}
    errors = _WRK_STATUS.search(output)
    return {
        "rps": float(_WRK_RPS.search(output).group(1)),
        "p50_ms": round(percentiles["50"], 3),
        "p99_ms": round(percentiles["99"], 3),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "requests": int(_WRK_REQUESTS.search(output).group(1)),
    }


def _measured_bodies(server, *args) -> dict:
    before = _server_cpu_seconds(server)
    result = _wrk_bodies(*args)
    used = _server_cpu_seconds(server) - before
    return result | {"cpu_us_per_request": round(used * 1e6 / max(1, result["requests"]), 1)}


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
    server = _start_gunicorn(env, port, secret)
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
        try:
            _wrk_bodies(start_url, platform.api_key, bodies, 1, connections)  # warm
            _wrk(trivial_url, platform.api_key, plain, 1, connections)
            for index in range(rounds or (1 if quick else 3)):
                for name in (
                    ("es256_first", "trivial") if index % 2 == 0 else ("trivial", "es256_first")
                ):
                    if name == "trivial":
                        runs[name].append(
                            _measured(
                                server, trivial_url, platform.api_key, plain, seconds, connections
                            )
                        )
                    else:
                        runs[name].append(
                            _measured_bodies(
                                server, start_url, platform.api_key, bodies, seconds, connections
                            )
                        )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    ratios = [
        a["rps"] / b["rps"] for a, b in zip(runs["es256_first"], runs["trivial"], strict=True)
    ]
    result = {
        name: {
            key: round(statistics.median(run[key] for run in values), 3)
            for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")
        }
        | {"non_2xx": sum(run["non_2xx"] for run in values)}
        for name, values in runs.items()
    }
    result["session_start_es256_first_vs_trivial"] = round(statistics.median(ratios), 3)
    result["distinct_tokens"] = count
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
) -> dict:
    """Forged public-key tokens (new user ids, signatures that do not match) against valid
    first-sight ones (new user ids, their tokens), by the server's CPU per request."""
    port = _free_port()
    server = _start_gunicorn(env, port, secret)
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
        try:
            _wrk_bodies(url, platform.api_key, valid, 1, connections)  # warm
            first = _measured_bodies(server, url, platform.api_key, valid, seconds, connections)
            again = _measured(server, url, platform.api_key, repeated, seconds, connections)
            attack = _measured_bodies(server, url, platform.api_key, forged, seconds, connections)
            time.sleep(1.5)  # the workers' last flush
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    return {
        "valid_first_sight_flood": first,
        "valid_repeated_flood": again,
        "forged_flood": attack,
        "forged_vs_valid_cpu": round(attack["cpu_us_per_request"] / first["cpu_us_per_request"], 3),
        "forged_vs_repeated_cpu": round(
            attack["cpu_us_per_request"] / again["cpu_us_per_request"], 3
        ),
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
        ),
    }
