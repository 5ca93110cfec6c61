"""``{% load trusted_identity %}``: what a page's JavaScript needs to start a session.

``{% trusted_identity_config "web" %}`` renders::

    <script type="application/json" id="trusted-identity-web">
      {"apiKey": "tik_...", "endpoint": "/trusted-identity/v1/sessions",
       "signEndpoint": "/trusted-identity/sign/?platform=web&space=my-space",
       "platform": "web", "space": "my-space", "userId": "42", "signed": "<64 hex>"}
    </script>

``userId`` and ``signed`` only for a logged-in user (``request.user``); a visitor's
page holds nothing of the user. The space is ``TRUSTED_IDENTITY["SIGNING_SPACE"]``
unless ``space="slug"`` is given.

``form="token"`` signs with the expiring form (CONTRACT section 9) instead: ``signed``
is a token, ``expiresAt`` says when it ends (as the sign view's ``&form=token``
does), ``form`` is ``"token"`` and the sign endpoint asks for tokens, so the client
refreshes in the same form. The token is signed with the site's private key
(``TRUSTED_IDENTITY["PRIVATE_KEYS"]``, CONTRACT section 10) where the platform takes
public-key tokens and the site holds its key, else it is an HS256 token with the
secret (``services.site_signing``). Without ``form``, the tag signs with a token
wherever the site's key signs or the platform verifies public keys only, else plain
where the platform accepts it and with a token where it accepts only tokens: a
platform moved to ``token``, ``both`` or ``public-key`` keeps its pages working, and
they move to public keys as soon as it takes them. A ``form`` spelt out that the
platform's policy refuses is an ImproperlyConfigured naming the one it accepts, with
the sign view's words, for visitors' pages too, as is a public-key platform the site
can't sign for: it fails where it is developed, not in its users' sessions.

The JSON is escaped as Django's ``json_script`` escapes it (``<``, ``>`` and ``&`` as
``\\u003C`` ...), and U+2028/U+2029 too, so nothing in it can close the element. The
static client (``trusted_identity/client.js``) reads it by its id.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.template.context import Context
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from ..conf import app_settings
from ..exceptions import InvalidRequest, NotFound, PublicKeysOnly
from ..services import lookup, site_keys, site_signing, spaces, verification
from ..services.signature_forms import TOKEN
from ..views import APP_NAMESPACE

register = template.Library()

#: As ``django.utils.html.json_script`` escapes, plus the two JavaScript line breaks.
JSON_ESCAPES = {
    ord(">"): "\\u003E",
    ord("<"): "\\u003C",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def element_id(kind: str) -> str:
    return f"trusted-identity-{kind}"


def client_config(
    request: Any, kind: str, space: str | None = None, form: str | None = None
) -> dict[str, Any]:
    """The client's configuration for ``kind`` in ``space``, signed for the request's user
    in ``form`` (``plain`` or ``token``; None: ``site_signing.default_form``)."""
    slug = space or app_settings.SIGNING_SPACE
    if not slug:
        raise ImproperlyConfigured(
            '{% trusted_identity_config %} needs a space: pass space="slug" or set '
            "TRUSTED_IDENTITY['SIGNING_SPACE']"
        )
    try:
        platform = spaces.get_platform(slug, kind)
    except NotFound as exc:
        raise ImproperlyConfigured(f"{{% trusted_identity_config %}}: {exc.message}") from None
    try:  # the sign view's own rules (the snapshot may be a moment behind the row)
        snapshot = lookup.lookup_platform(platform.api_key)
        if form is None:  # what the platform takes: a page must render whatever the policy
            form = site_signing.default_form(snapshot)
        signer = site_keys.signer_for(snapshot, verification.clock())
        site_signing.check_form(snapshot, form, signer)
        if signer is None and snapshot.key_source == site_keys.PUBLIC_KEY_ONLY:
            raise ImproperlyConfigured(
                f"it verifies public keys only and TRUSTED_IDENTITY['PRIVATE_KEYS'] has no "
                f"{site_keys.entry_name(slug, kind)!r}: nothing else can sign for it"
            )
    except (InvalidRequest, ImproperlyConfigured) as exc:
        message = exc.message if isinstance(exc, InvalidRequest) else str(exc)
        raise ImproperlyConfigured(
            f"{{% trusted_identity_config %}}: {slug}/{kind}: {message}"
        ) from None
    query = {"platform": kind, "space": slug}
    if form == TOKEN:
        query["form"] = form
    config: dict[str, Any] = {
        "apiKey": platform.api_key,
        "endpoint": reverse(f"{APP_NAMESPACE}:start-session"),
        "signEndpoint": reverse(f"{APP_NAMESPACE}:sign") + "?" + urlencode(query),
        "platform": kind,
        "space": slug,
    }
    if form == TOKEN:
        config["form"] = form
    user = getattr(request, "user", None)
    if getattr(user, "is_authenticated", False):
        user_id = str(getattr(user, app_settings.USER_ID_ATTRIBUTE))
        config["userId"] = user_id
        try:
            signed = site_signing.sign_in_form(snapshot, user_id, form)
        except (InvalidRequest, PublicKeysOnly) as exc:
            raise ImproperlyConfigured(
                f"{{% trusted_identity_config %}}: {slug}/{kind}: {exc.message}"
            ) from None
        config["signed"] = signed.signed
        if signed.expires_at is not None:
            config["expiresAt"] = verification.iso_utc(signed.expires_at)
    return config


def json_element(value: Any, element: str) -> SafeString:
    # Safe: JSON_ESCAPES leaves no "<", ">" or "&" that could end the element.
    data = mark_safe(json.dumps(value, cls=DjangoJSONEncoder).translate(JSON_ESCAPES))  # noqa: S308
    return format_html('<script type="application/json" id="{}">{}</script>', element, data)


@register.simple_tag(takes_context=True)
def trusted_identity_config(
    context: Context, kind: str = "web", space: str | None = None, form: str | None = None
) -> str:
    """The client configuration of platform ``kind`` as a JSON script element; with
    ``form="token"``, signed with an expiring token and its ``expiresAt``.

    Needs ``request`` in the context (``django.template.context_processors.request``,
    on in new projects) to sign for a logged-in user; without it, the page gets the
    visitor's configuration.
    """
    request = context.get("request")
    return json_element(client_config(request, kind, space, form), element_id(kind))
