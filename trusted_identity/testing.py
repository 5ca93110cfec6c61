"""Helpers for a site's own tests, as django-waffle ships ``override_flag``.

::

    from django.test import TestCase
    from trusted_identity import testing

    class SignInTests(TestCase):
        @classmethod
        def setUpTestData(cls):
            cls.platform = testing.create_platform("web", space="my-space", secret="s3cr3t")

        def test_a_signed_start_is_trusted(self):
            response = testing.start_session(self.client, self.platform, "42")
            self.assertEqual(response.json()["signature"], "valid")
            self.assertEqual(testing.counts(self.platform)["valid"], 1)

        @testing.enforcement("my-space", "web")
        def test_an_unsigned_start_is_refused(self):
            response = testing.start_session(self.client, self.platform, "42", signed=None)
            self.assertEqual(response.status_code, 403)

Nothing here needs factory-boy or pytest; every helper works in Django's ``TestCase``
and in pytest-django tests alike. Counts need no helper to be exact in tests (see
``trusted_identity.outcomes``); :func:`flush_counts` is for code that runs outside
the test environment, such as a smoke-test script against a running site.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Sum
from django.test.utils import TestContextDecorator
from django.urls import reverse

from . import outcomes, services, signing
from .models import Outcome, OutcomeCount, Platform, Space

#: The secret :func:`create_platform` gives a platform unless told otherwise.
TEST_SECRET = "tis_test_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"

_SIGN = object()  # start_session's default: sign the user id with the platform's secret


def create_platform(
    kind: str = "web",
    *,
    space: str = "test-space",
    secret: str = TEST_SECRET,
    api_key: str | None = None,
    enforced: bool = False,
) -> Platform:
    """A platform of ``kind`` in the space ``space`` (made if missing), with a known secret.

    Its current secret is ``secret`` (encrypted as any other); its public API key is
    ``api_key`` when given (say, the one a front-end test has built in), else a new one.
    Enforcement is set directly, without the readiness rule.
    """
    space_obj = Space.objects.filter(slug=space).first() or services.create_space(space, space)
    platform = services.add_platform(space_obj, kind)
    row = services.current_secret_row(platform)
    row.set_secret(secret)
    row.save(update_fields=["ciphertext"])
    changes: dict[str, Any] = {"enforced": enforced}
    if api_key is not None:
        changes["api_key"] = api_key
    Platform.objects.filter(pk=platform.pk).update(**changes)
    services.verification_changed()
    platform.refresh_from_db()
    return platform


def sign(platform_or_secret: Platform | str, user_id: str) -> str:
    """The signature of ``user_id``: with a platform's current secret, or with a secret."""
    if isinstance(platform_or_secret, Platform):
        platform = platform_or_secret
        return services.sign_for(platform.space.slug, platform.kind, user_id)
    return signing.sign(platform_or_secret, user_id)


def start_session(
    client: Any,
    platform: Platform,
    user_id: str | None = None,
    *,
    signed: Any = _SIGN,
    fields: dict[str, Any] | None = None,
    **extra: Any,
) -> Any:
    """POST a session start with Django's test ``client``, as a client SDK would.

    A visitor without ``user_id``; an identified user signed with the platform's
    current secret, unless ``signed`` is given (``None`` sends no signature).
    ``extra`` goes to ``client.post`` (headers such as ``HTTP_X_APP_VERSION``).
    Needs the app's URLs included with their namespace, as the README shows.
    """
    body: dict[str, Any] = {}
    if user_id is not None:
        body["userId"] = user_id
        if signed is _SIGN:
            signed = sign(platform, user_id)
        if signed is not None:
            body["signed"] = signed
    if fields is not None:
        body["fields"] = fields
    return client.post(
        reverse("trusted_identity:start-session"),
        json.dumps(body),
        content_type="application/json",
        HTTP_X_API_KEY=platform.api_key,
        **extra,
    )


class enforcement(TestContextDecorator):  # lower case: used like override_settings
    """Enforcement on (or off, ``on=False``) for a block, a test, or every test of a class.

    ``enforcement(platform)`` or ``enforcement("space-slug", "kind")``; the platform is
    looked up when the block starts, so a decorated test may use a platform made in
    ``setUp`` or a fixture (a decorated ``TestCase`` class starts before ``setUp``:
    make the platform in ``setUpTestData`` there). The readiness rule is skipped and
    nothing is audited; the previous state comes back at the end, and session starts
    see each change at once.
    """

    def __init__(self, platform: Platform | str, kind: str | None = None, *, on: bool = True):
        super().__init__()
        self.target = platform
        self.kind = kind
        self.on = on
        self._saved: list[tuple[int, bool]] = []

    def _platform(self) -> Platform:
        if isinstance(self.target, Platform):
            return Platform.objects.get(pk=self.target.pk)
        if self.kind is None:
            raise TypeError("enforcement(space_slug, kind): give the platform's kind")
        return services.get_platform(self.target, self.kind)

    def enable(self) -> Platform:
        platform = self._platform()
        self._saved.append((platform.pk, platform.enforced))
        _set_enforced(platform.pk, self.on)
        platform.enforced = self.on
        if isinstance(self.target, Platform):
            self.target.enforced = self.on
        return platform

    def disable(self) -> None:
        pk, previous = self._saved.pop()
        _set_enforced(pk, previous)
        if isinstance(self.target, Platform):
            self.target.enforced = previous


def _set_enforced(platform_id: int, on: bool) -> None:
    Platform.objects.filter(pk=platform_id).update(enforced=on)
    services.verification_changed()


def flush_counts() -> int:
    """Write the session-start counts this process holds in memory now.

    Not needed in tests (counts are written at once there); for code that runs
    outside Django's test environment with buffering on. Returns rows written.
    """
    return outcomes.flush()


def counts(platform: Platform) -> dict[str, int]:
    """Every session start of ``platform`` by outcome, all hours together.

    ``{"valid": 0, "invalid": 0, "missing": 0, "visitor": 0, "rejected": 0}`` for a
    platform with none. Writes this process's buffered counts first.
    """
    outcomes.flush()
    result = dict.fromkeys(Outcome.values, 0)
    rows = (
        OutcomeCount.objects.filter(platform_id=platform.pk)
        .values("outcome")
        .annotate(total=Sum("count"))
        .order_by()
    )
    for row in rows:
        result[row["outcome"]] = row["total"]
    return result


__all__ = [
    "TEST_SECRET",
    "counts",
    "create_platform",
    "enforcement",
    "flush_counts",
    "sign",
    "start_session",
]
