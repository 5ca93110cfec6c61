"""The Python API for sites that sign in views of their own.

::

    import trusted_identity

    signed = trusted_identity.sign_user_id("my-space", "web", str(request.user.pk))

The sign view (``GET <mount>/sign/``) does the same for the logged-in user; this is
for a site that authenticates its own way (an API view, a GraphQL resolver, a page
it renders), or signs for several spaces. It signs as the sign view does, for any
space and whatever the platform's signature form: which users a site may sign for is
the site's own decision. A public-key platform's tokens are signed with the site's
private key (``TRUSTED_IDENTITY["PRIVATE_KEYS"]``, ``services.site_signing``).
"""

from __future__ import annotations

from .models import Space
from .services import site_signing


def sign_user_id(
    space: str | Space, kind: str, user_id: str | int, *, form: str | None = None
) -> str:
    """``user_id`` signed for a platform of a space, as the client sends it in ``signed``.

    ``space`` is a slug or a :class:`~trusted_identity.models.Space`; ``kind`` is
    ``web``, ``ios``, ...; ``user_id`` is signed exactly as given (an ``int`` as its
    decimal string): it must be the id the client sends as ``userId``.

    Without ``form``: the plain signature (64 lowercase hex digits) with the platform's
    current secret; on a platform that verifies public keys only, a token signed with
    the site's private key. ``form="token"``: an expiring token (``TOKEN_TTL``, at most
    the platform's maximum age), signed with the site's private key where the platform
    takes public-key tokens and ``PRIVATE_KEYS`` holds its key, else HS256 with the
    secret.

    Raises ``trusted_identity.exceptions.SpaceNotFound`` / ``PlatformNotFound``
    (code ``platform_not_found``) for an unknown space or platform,
    ``ServiceUnavailable`` when the secret can't be decrypted, ``PublicKeysOnly`` for a
    public-key platform the site holds no private key for, ``ImproperlyConfigured``
    for a private key that can't sign for it, ``TypeError`` or ``ValueError`` for a
    user id that is not a non-empty string or an integer, ``InvalidRequest`` for
    another ``form``.
    """
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)):
        raise TypeError(f"user_id must be a str (or an int), not {type(user_id).__name__}")
    user_id = str(user_id)
    if not user_id:
        raise ValueError("user_id is empty: visitors are anonymous and never signed")
    slug = space.slug if isinstance(space, Space) else space
    if not isinstance(slug, str):
        raise TypeError(f"space must be a slug or a Space, not {type(space).__name__}")
    return site_signing.sign_as_site(slug, kind, user_id, form).signed
