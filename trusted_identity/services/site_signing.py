"""What the site's own producers sign: the sign view, the template tag and
``trusted_identity.sign_user_id`` (and, through the sign view, the browser client).

Two forms, as the sign view's ``form`` names them (CONTRACT sections 4, 9 and 10):

- ``plain``: the HMAC of the user id with the platform's current secret;
- ``token``: an expiring token, ``expires_at`` with it. Signed with **the site's
  private key** (``site_keys.signer_for``: ES256, EdDSA or RS256 by the key's type,
  the ``kid`` of the platform key it is) where the platform's key source takes
  public-key tokens (``both``, ``public-key``) and ``PRIVATE_KEYS`` holds its key;
  else an HS256 token with the current secret. Either lives ``TOKEN_TTL``, at most
  the platform's maximum token age.

Without a form, ``plain``, except on a ``public-key`` platform, where nothing but a
token verifies. The policy (:func:`check_form`): a token the site's key signs is
accepted wherever the key source takes public keys, whatever the signature form
(which is the secret's forms'); a ``public-key`` platform takes nothing but tokens;
otherwise the signature form says. The template tag, whose client refreshes tokens,
asks for one by default wherever the site's key signs (:func:`default_form`), so
a platform's own pages move to public keys as soon as it takes them.
"""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from typing import NamedTuple

from ..exceptions import InvalidRequest
from ..models import KeySource
from ..privatekeys import TokenSigner
from . import signature_forms, verification
from .lookup import PlatformSnapshot, lookup_platform
from .signature_forms import PLAIN, TOKEN
from .site_keys import signer_for
from .spaces import get_platform

PUBLIC_KEY_ONLY = KeySource.PUBLIC_KEY.value


class Signed(NamedTuple):
    """A user id signed in either form: ``expires_at`` is None for the plain form."""

    signed: str
    expires_at: datetime | None = None


def check_form(snapshot: PlatformSnapshot, form: str, signer: TokenSigner | None) -> None:
    """An InvalidRequest unless the platform accepts ``form`` as this site signs it
    (``signer``: the site's key for it, or None), naming the form it does accept."""
    if form not in (PLAIN, TOKEN):
        raise InvalidRequest(f"form must be plain or token, not {form!r}")
    if form == TOKEN and signer is not None:
        return  # a public-key token, where the key source takes them
    if snapshot.key_source == PUBLIC_KEY_ONLY:
        if form == PLAIN:
            raise InvalidRequest(
                "this platform accepts only public-key tokens: ask with form=token"
            )
        return  # signing says why it can't (public_keys_only)
    signature_forms.check_form_accepted(snapshot.signature_form, form)


def default_form(snapshot: PlatformSnapshot) -> str:
    """The template tag's form when it names none: a token wherever the site's key signs
    or nothing else verifies, else what the signature form prefers (plain where accepted)."""
    signer = signer_for(snapshot, verification.clock())
    if signer is not None or snapshot.key_source == PUBLIC_KEY_ONLY:
        return TOKEN
    return signature_forms.default_form(snapshot.signature_form)


def sign_in_form(
    snapshot: PlatformSnapshot, user_id: str, form: str | None, *, policy: bool = True
) -> Signed:
    """``user_id`` signed in ``form`` (``plain``, ``token``; None: plain, or a token on a
    ``public-key`` platform): what the sign view answers.

    With ``policy`` (the sign view, the tag), a form the platform does not accept is an
    InvalidRequest naming the one it does (:func:`check_form`); without it
    (``sign_user_id``), whatever the policy. A ``public-key`` platform the site holds no
    key for is ``PublicKeysOnly``; a key that can't sign for it, ImproperlyConfigured.
    """
    now = verification.clock()
    signer = signer_for(snapshot, now)
    if form is None:
        form = TOKEN if snapshot.key_source == PUBLIC_KEY_ONLY else PLAIN
    if policy:
        check_form(snapshot, form, signer)
    elif form not in (PLAIN, TOKEN):
        raise InvalidRequest(f"form must be plain or token, not {form!r}")
    if form == PLAIN:
        return Signed(verification.sign_user_id(snapshot, user_id))
    if signer is None:
        return Signed(*verification.sign_token(snapshot, user_id, now=now))
    issued_at = int(now)
    expires_at = issued_at + verification.token_lifetime(snapshot)
    return Signed(
        signer.token(user_id, issued_at, expires_at),
        datetime.fromtimestamp(expires_at, tz=dt_timezone.utc),
    )


def sign_as_site(space_slug: str, kind: str, user_id: str, form: str | None = None) -> Signed:
    """``trusted_identity.sign_user_id``: ``user_id`` signed for a platform named by space
    slug and kind, as :func:`sign_in_form` without the policy. Not audited: the site
    signs its own users, as the sign view does."""
    verification.check_user_id(user_id)
    platform = get_platform(space_slug, kind)
    return sign_in_form(lookup_platform(platform.api_key), user_id, form, policy=False)
