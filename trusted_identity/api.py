"""The Python API for sites that sign in views of their own.

::

    import trusted_identity

    signed = trusted_identity.sign_user_id("my-space", "web", str(request.user.pk))

The sign view (``GET <mount>/sign/``) does the same for the logged-in user; this is
for a site that authenticates its own way (an API view, a GraphQL resolver, a page
it renders), or signs for several spaces. It signs with the platform's current
secret, exactly as the CLI's ``sign`` does, for any space: which users a site may
sign for is the site's own decision.
"""

from __future__ import annotations

from .models import Space
from .services import verification


def sign_user_id(space: str | Space, kind: str, user_id: str | int) -> str:
    """The signature (64 lowercase hex digits) of ``user_id`` for a platform of a space.

    ``space`` is a slug or a :class:`~trusted_identity.models.Space`; ``kind`` is
    ``web``, ``ios``, ...; ``user_id`` is signed exactly as given (an ``int`` as its
    decimal string): it must be the id the client sends as ``userId``.

    Raises ``trusted_identity.exceptions.SpaceNotFound`` / ``PlatformNotFound``
    (code ``platform_not_found``) for an unknown space or platform,
    ``ServiceUnavailable`` when the secret can't be decrypted, ``TypeError`` or
    ``ValueError`` for a user id that is not a non-empty string or an integer.
    """
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)):
        raise TypeError(f"user_id must be a str (or an int), not {type(user_id).__name__}")
    user_id = str(user_id)
    if not user_id:
        raise ValueError("user_id is empty: visitors are anonymous and never signed")
    slug = space.slug if isinstance(space, Space) else space
    if not isinstance(slug, str):
        raise TypeError(f"space must be a slug or a Space, not {type(space).__name__}")
    return verification.sign_for(slug, kind, user_id)
