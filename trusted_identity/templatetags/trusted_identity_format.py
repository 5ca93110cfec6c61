"""``{% load trusted_identity_format %}``: the admin's filters for shares, counts and
moments, the same wording as the CLI's (``trusted_identity.formatting``).

``{{ share|ti_percent }}`` → ``97.2%``, ``{{ n|ti_number }}`` → ``1,204``,
``{{ when|ti_moment }}`` → ``2026-11-26 14:05 UTC`` (``—`` when missing),
``{{ user_id|ti_visible }}`` → the id with control and invisible characters spelt out,
``{{ figures|ti_form_shares }}`` → ``token 20.7% · public-key 3.3%``.
"""

from __future__ import annotations

from datetime import datetime

from django import template

from .. import formatting

register = template.Library()


# A missing template variable arrives as "" (string_if_invalid): shown as missing.


@register.filter
def ti_percent(share: float | None) -> str:
    return formatting.percent(share if isinstance(share, int | float) else None)


@register.filter
def ti_number(count: int | None) -> str:
    return formatting.number(count if isinstance(count, int) else None)


@register.filter
def ti_moment(value: datetime | None) -> str:
    return formatting.moment(value if isinstance(value, datetime) else None)


@register.filter
def ti_visible(value: object) -> str:
    """Autoescaped as usual afterwards: the result is plain text, never marked safe."""
    return formatting.visible(str(value)) if value is not None else formatting.NONE


@register.filter
def ti_form_shares(figures: object) -> str:
    """A platform's ``Figures`` as ``token 20.7% · public-key 3.3%`` of its valid users
    (``formatting.form_shares``), as the CLI's ``status`` says it."""
    users_by_form = getattr(figures, "users_by_form", None)
    if users_by_form is None:
        return formatting.NONE
    return formatting.form_shares(figures.distinct_valid, users_by_form)  # type: ignore[attr-defined]


@register.filter
def ti_form_share_list(figures: object) -> list[str]:
    """:func:`ti_form_shares` as its parts (``["token 20.7%", "public-key 3.3%"]``), for
    a narrow cell that keeps each part on one line."""
    return ti_form_shares(figures).split(" · ")
