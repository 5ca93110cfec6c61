"""The site's own private keys (``TRUSTED_IDENTITY["PRIVATE_KEYS"]``): which platform
each signs for, and as which of its public keys (CONTRACT section 10).

A site that signs for its own users (the sign view, the template tag,
``trusted_identity.sign_user_id``) signs a public-key platform's tokens with the
private key the setting maps to ``"space/kind"``: PEM text or a PEM file's path, from
the environment (``TRUSTED_IDENTITY_PRIVATE_KEYS``). Nothing of it is stored, logged or
shown; a message names the entry, never its value.

- **When**: only where the platform's key source takes public-key tokens (``both``,
  ``public-key``): on a ``secret`` platform such a token would be
  ``form_not_allowed``, so the key can be configured before the move and is used from
  the moment the platform accepts it.
- **As which key**: the platform key (stored, or any other source
  ``key_tables.public_key_set`` joins) whose public half is the private key's, by its
  DER: its ``kid`` goes in the header. A key matching none of them, or only expired
  ones, can't sign: an ImproperlyConfigured naming the entry on a ``public-key``
  platform (nothing else could sign), and on a ``both`` platform the site keeps
  signing with the secret, said once per process in the log.
- **Cost**: a key is parsed once per process (``runtime.private_keys``) and matched
  once per key set (``runtime.key_signers``); a token is then one signature.

:func:`entry_problems` and :func:`platform_problems` are what the system checks say
(``trusted_identity.E012``, ``E013``, ``W004``, ``W005``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization
from django.core.exceptions import ImproperlyConfigured
from django.core.validators import slug_re
from django.views.decorators.debug import sensitive_variables

from .. import runtime
from ..conf import app_settings
from ..formatting import moment
from ..keytokens import KeySet, VerifyingKey
from ..models import KeySource, Platform, PlatformKind
from ..privatekeys import PrivateKeyError, SigningKey, TokenSigner, load_private_key
from .key_tables import public_key_set
from .lookup import PlatformSnapshot, lookup_platform

logger = logging.getLogger("trusted_identity")

SECRET = KeySource.SECRET.value
BOTH = KeySource.BOTH.value
PUBLIC_KEY_ONLY = KeySource.PUBLIC_KEY.value


def entry_name(space_slug: str, kind: str) -> str:
    """The ``PRIVATE_KEYS`` entry of a platform: ``"space/kind"``."""
    return f"{space_slug}/{kind}"


def _entry(name: str) -> str:
    return f"TRUSTED_IDENTITY['PRIVATE_KEYS'][{name!r}]"


@sensitive_variables()
def _load(name: str) -> SigningKey:
    return load_private_key(app_settings.PRIVATE_KEYS[name])


def private_key(name: str) -> SigningKey | None:
    """The site's key for ``"space/kind"``, parsed once per process; None when
    ``PRIVATE_KEYS`` has no entry for it; ImproperlyConfigured naming the entry (never
    its value) when it can't sign."""
    if name not in app_settings.PRIVATE_KEYS:
        return None
    try:
        return runtime.current().private_keys.get(name, _load, name)
    except Exception as exc:  # whatever failed, no frame that held the key is kept
        why = str(exc) if isinstance(exc, PrivateKeyError) else "it can't be read as a key"
        raise ImproperlyConfigured(f"{_entry(name)}: {why}") from None


class KeyMatch(NamedTuple):
    """What a private key signs as in one key set: the signer and the platform key it
    is (``verifying``), or, when none matched, ``problem``."""

    signer: TokenSigner | None
    verifying: VerifyingKey | None
    problem: str | None


def _spki(key: VerifyingKey) -> bytes:
    return key.key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _match(name: str, key: SigningKey, keys: KeySet) -> KeyMatch:
    """The platform key whose public half ``key`` is (the one that expires last, if
    several sources hold it); made once per key set."""
    found = [k for k in keys.keys if _spki(k) == key.public.spki_der]
    if not found:
        return KeyMatch(
            None,
            None,
            f"{_entry(name)} is the private half of none of the platform's public keys "
            f"(its public key is {key.public.description}, {key.public.fingerprint})",
        )
    verifying = max(found, key=lambda k: float("inf") if k.expires_at is None else k.expires_at)
    return KeyMatch(TokenSigner(key, verifying.kid), verifying, None)


def key_match(snapshot: PlatformSnapshot, name: str, key: SigningKey) -> KeyMatch:
    """:func:`_match` of ``key`` in the snapshot's key set, remembered per key set."""
    keys = public_key_set(snapshot)
    return runtime.current().key_signers.get((name, keys), _match, name, key, keys)


def _expired(name: str, verifying: VerifyingKey) -> str:
    ended = datetime.fromtimestamp(verifying.expires_at or 0, tz=dt_timezone.utc)
    return (
        f"{_entry(name)} signs as the platform key {verifying.kid!r}, which expired {moment(ended)}"
    )


def signer_for(snapshot: PlatformSnapshot, now: float) -> TokenSigner | None:
    """The site's signer for the platform at ``now``, or None: its key source is
    ``secret``, or ``PRIVATE_KEYS`` has no key for it.

    A key that can't sign for it (unreadable, matching none of its keys, or only an
    expired one) raises ImproperlyConfigured on a ``public-key`` platform; on a
    ``both`` platform it is None (the site keeps signing with the secret), logged once
    per process and problem.
    """
    if snapshot.key_source == SECRET:
        return None
    name = entry_name(snapshot.space_slug, snapshot.kind)
    try:
        key = private_key(name)
        if key is None:
            return None
        match = key_match(snapshot, name, key)
        if match.verifying is not None and match.verifying.expired(now):
            raise ImproperlyConfigured(_expired(name, match.verifying))
        if match.signer is None:
            raise ImproperlyConfigured(str(match.problem))
        return match.signer
    except ImproperlyConfigured as exc:
        if snapshot.key_source == PUBLIC_KEY_ONLY:
            raise
        runtime.current().key_signers.get(("logged", name, str(exc)), _log_fallback, str(exc))
        return None


def _log_fallback(problem: str) -> bool:
    logger.error(
        "Trusted Identity signs with the platform's secret instead of the site's private key: %s",
        problem,
    )
    return True


# ------------------------------------------------------------------ the checks


class Problem(NamedTuple):
    """One thing a system check says: its id (``trusted_identity.E013``...) and message."""

    check_id: str
    message: str


def _name_problem(name: str) -> str | None:
    space, slash, kind = name.partition("/")
    if not slash or not slug_re.match(space) or kind not in PlatformKind.values:
        return (
            f"TRUSTED_IDENTITY['PRIVATE_KEYS'] has an entry named {name!r}: name each "
            f'"space/kind", the kind one of {", ".join(PlatformKind.values)}'
        )
    return None


def entry_problems() -> list[str]:
    """Why each ``PRIVATE_KEYS`` entry that can't sign can't: its name, or its key
    (``trusted_identity.E012``). Reads every key (parsed once per process)."""
    problems = []
    for name in app_settings.PRIVATE_KEYS:
        problem = _name_problem(name)
        if problem is None:
            try:
                private_key(name)
            except ImproperlyConfigured as exc:
                problem = str(exc)
        if problem is not None:
            problems.append(problem)
    return problems


def platform_problems() -> list[Problem]:
    """What the database check says of the site's keys and the platforms it signs for:

    - ``E013``: a ``public-key`` platform's entry matches none of its active keys;
    - ``W004``: a platform of ``SIGNING_SPACES`` that takes public keys and has no
      entry (``public-key``: the sign view and the tag can't sign for it; ``both``:
      they keep signing with the secret);
    - ``W005``: the entry of a ``secret`` or ``both`` platform matches none of its
      active keys, or names no platform.
    """
    entries = {
        name: name.partition("/") for name in app_settings.PRIVATE_KEYS if not _name_problem(name)
    }
    signing = app_settings.SIGNING_SPACES
    spaces = set(signing) | {space for space, _, _ in entries.values()}
    platforms = {
        entry_name(p.space.slug, p.kind): p
        for p in Platform.objects.select_related("space").filter(space__slug__in=spaces)
    }
    problems = [
        Problem(
            "trusted_identity.W005",
            f"{_entry(name)} names no platform: space {name.partition('/')[0]!r} has no "
            f"{name.partition('/')[2]} platform.",
        )
        for name in entries
        if name not in platforms
    ]
    for name, platform in sorted(platforms.items()):
        if name in entries:
            problem = _key_problem(name, platform)
            if problem is not None:
                problems.append(problem)
        elif platform.space.slug in signing and platform.key_source != SECRET:
            problems.append(Problem("trusted_identity.W004", _missing(name, platform)))
    return problems


def _key_problem(name: str, platform: Platform) -> Problem | None:
    try:
        key = private_key(name)
    except ImproperlyConfigured:
        return None  # E012 says so
    if key is None:
        return None
    match = key_match(lookup_platform(platform.api_key), name, key)
    problem = match.problem
    now = datetime.now(tz=dt_timezone.utc).timestamp()
    if match.verifying is not None and match.verifying.expired(now):
        problem = _expired(name, match.verifying)
    if problem is None:
        return None
    if platform.key_source == PUBLIC_KEY_ONLY:
        return Problem(
            "trusted_identity.E013",
            f"{problem}: {platform} verifies public keys only, so the sign view, the "
            "template tag and sign_user_id can't sign for it.",
        )
    if platform.key_source == BOTH:
        then = f"the site signs {platform}'s tokens with its secret instead"
    else:
        then = f"once {platform} takes public keys, the site will go on signing with its secret"
    return Problem("trusted_identity.W005", f"{problem}: {then}.")


def _missing(name: str, platform: Platform) -> str:
    if platform.key_source == PUBLIC_KEY_ONLY:
        return (
            f"{platform} verifies public keys only and TRUSTED_IDENTITY['PRIVATE_KEYS'] has "
            f"no {name!r}: the sign view and the template tag can't sign for it (409 "
            "public_keys_only)."
        )
    return (
        f"{platform} takes public-key tokens and TRUSTED_IDENTITY['PRIVATE_KEYS'] has no "
        f"{name!r}: the sign view and the template tag keep signing with its secret, so "
        "only your other signers move it towards public keys."
    )
