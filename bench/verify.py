"""``make bench`'s ``verify`` section: the app's verification against a raw HMAC, plain
signatures and HS256 tokens, each ratio per round with its spread.

Each round times its cases side by side in short blocks (:func:`interleaved`), so a
round's ratio compares calls made within milliseconds of each other: on a host whose
speed swings from one second to the next, two long runs one after the other measured
the swing as much as the code (a first sight's rounds ranged over 2.0 to 4.0 in one
process; in blocks, over 2.7 to 3.2)."""

from __future__ import annotations

import datetime as dt
import statistics
import time
import timeit
from collections.abc import Callable

from bench.figures import spread

# ------------------------------------------------------------------------ verify

#: Blocks a round is cut into: each case timed once a block, in turn.
BLOCKS = 20


def interleaved(
    cases: dict[str, tuple[Callable[[], object], int]],
    rounds: int,
    *,
    before_round: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Each round's time per call of every case (``{name: (function, calls a round)}``),
    the cases timed in turn in :data:`BLOCKS` blocks of a round, so that noise lasting
    a few milliseconds falls on all of them alike, and with the garbage collector on:
    what a case's objects make it collect is part of its cost in a server.
    ``before_round`` runs before each round, untimed."""
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        if before_round is not None:
            before_round()
        totals = dict.fromkeys(cases, 0.0)
        for block in range(BLOCKS):
            for name, (function, calls) in cases.items():
                share = calls // BLOCKS + (block < calls % BLOCKS)  # a round's calls, all
                if share:  # the collector on, as in a server (timeit turns it off)
                    totals[name] += timeit.timeit(function, "gc.enable()", number=share)
        for name, (_, calls) in cases.items():
            runs[name].append(totals[name] / calls)
    return runs


def bench_verify(platform, secret: str, quick: bool) -> dict:
    import hashlib
    import hmac

    from trusted_identity.services import (
        lookup,
        verification,
    )

    user_id = "user-1234567890"
    signature = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    snapshot = lookup.lookup_platform(platform.api_key)  # warm: cached, decrypted once
    assert verification.verify_signed(snapshot, user_id, signature).valid

    def raw() -> bool:
        expected = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    def app() -> bool:  # what session start calls
        return verification.verify_signed(snapshot, user_id, signature).valid

    number = 20_000 if quick else 100_000
    runs = interleaved({"raw": (raw, number), "app": (app, number)}, rounds=7)
    raw_runs, app_runs = runs["raw"], runs["app"]
    ratios = [a / r for a, r in zip(app_runs, raw_runs, strict=True)]
    return {
        "raw_hmac_us": round(statistics.median(raw_runs) * 1e6, 3),
        "app_verify_us": round(statistics.median(app_runs) * 1e6, 3),
        "verify_ratio": round(statistics.median(ratios), 3),
        "verify_ratio_spread": spread(ratios),
        "calls_per_run": number,
        **bench_token_verify(snapshot, user_id, raw, quick),
    }


def bench_token_verify(snapshot, user_id: str, raw: Callable[[], bool], quick: bool) -> dict:
    """HS256 tokens through ``verification.verify_signed``, as session start calls it.

    ``token_verify``: a token this process verified before (a client starting several
    sessions with one token): the remembered verdict, then the key, subject,
    lifetime and clock checks. ``token_first_verify``: a different token every call:
    the whole check each time. ``token_forged``: a wrong signature: the shape check
    and one HMAC per secret, no claim decoded (what an attacker can make us spend).
    """
    from trusted_identity.services import (
        verification,
    )

    token = verification.sign_token(snapshot, user_id).token
    forged = token.rsplit(".", 1)[0] + "." + "A" * 43
    assert verification.verify_signed(snapshot, user_id, token).valid
    assert verification.verify_signed(snapshot, user_id, forged).reason == "no_match"
    number = 5_000 if quick else 20_000
    start = time.time()
    fresh = [  # all different, all valid for the next ten minutes at least
        verification.sign_token(
            snapshot, user_id, dt.timedelta(seconds=3600 - n // 1000), now=start - n % 1000
        ).token
        for n in range(number)
    ]
    assert all(verification.verify_signed(snapshot, user_id, t).valid for t in fresh[::997])

    runs = time_token_cases(
        snapshot, user_id, token, fresh, forged, raw, number=number, rounds=7, raw_number=number * 5
    )
    result: dict = {"token_calls_per_run": number}
    for name, key in (("repeat", "token_verify"), ("first", "token_first_verify"),
                      ("forged", "token_forged")):  # fmt: skip
        ratios = [t / r for t, r in zip(runs[name], runs["raw"], strict=True)]
        result[f"{key}_us"] = round(statistics.median(runs[name]) * 1e6, 3)
        result[f"{key}_ratio"] = round(statistics.median(ratios), 3)
        result[f"{key}_ratio_spread"] = spread(ratios)
    return result


def time_token_cases(
    snapshot,
    user_id: str,
    token: str,
    fresh: list[str],
    forged: str,
    raw: Callable[[], bool],
    *,
    number: int,
    rounds: int,
    raw_number: int = 20_000,
) -> dict[str, list[float]]:
    """Each round's time per call through ``verify_signed`` (session start's check) of
    ``token`` seen again, of ``fresh`` tokens each seen for the first time and of
    ``forged``, and of the raw HMAC ``raw`` timed beside them in the same round."""
    from trusted_identity import runtime
    from trusted_identity.services import verification

    pending = iter(fresh)

    def again() -> bool:
        return verification.verify_signed(snapshot, user_id, token).valid

    def first() -> bool:
        return verification.verify_signed(snapshot, user_id, next(pending)).valid

    def forgery() -> bool:
        return verification.verify_signed(snapshot, user_id, forged).valid

    def unseen() -> None:
        nonlocal pending
        runtime.current().tokens.clear()  # every token unseen again
        pending = iter(fresh)

    cases = {
        "raw": (raw, raw_number),
        "repeat": (again, number),
        "first": (first, number),
        "forged": (forgery, number),
    }
    return interleaved(cases, rounds, before_round=unseen)
