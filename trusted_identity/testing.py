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
and in pytest-django tests alike.

Counts are written as the setting ``COUNT_FLUSH_INTERVAL`` says, in tests as in
production; nothing detects a test. Set it to ``0`` in your test settings, so that
each count is written by the request that made it, in its own connection::

    TRUSTED_IDENTITY = {**TRUSTED_IDENTITY, "COUNT_FLUSH_INTERVAL": 0}

(or decorate a test with :func:`counts_at_once`). Alerts (the ``rollout_alert`` signal
and the owners' e-mail) are delivered off the counting path, from a thread of their
own: call :func:`flush` before asserting on ``mail.outbox`` or on your receiver; it
writes the pending counts and delivers the pending alerts, waiting for any in flight.
:func:`reset` drops everything the app remembers in this process (caches, memos,
the alerts seen, pending counts): call it in ``setUp`` (or an autouse fixture) so
nothing leaks from test to test; changing ``TRUSTED_IDENTITY`` with
``override_settings`` does it too.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db.models import Sum
from django.test.utils import TestContextDecorator, override_settings
from django.urls import reverse

from . import outcomes, runtime, signing
from .models import Outcome, OutcomeCount, Platform, Space
from .services import lookup, platform_secrets, spaces, verification

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
    space_obj = Space.objects.filter(slug=space).first() or spaces.create_space(space, space)
    platform = spaces.add_platform(space_obj, kind)
    row = platform_secrets.current_secret_row(platform)
    row.set_secret(secret)
    row.save(update_fields=["ciphertext"])
    changes: dict[str, Any] = {"enforced": enforced}
    if api_key is not None:
        changes["api_key"] = api_key
    Platform.objects.filter(pk=platform.pk).update(**changes)
    lookup.verification_changed()
    platform.refresh_from_db()
    return platform


def sign(platform_or_secret: Platform | str, user_id: str) -> str:
    """The signature of ``user_id``: with a platform's current secret, or with a secret."""
    if isinstance(platform_or_secret, Platform):
        platform = platform_or_secret
        return verification.sign_for(platform.space.slug, platform.kind, user_id)
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
    Needs the app's URLs included with their namespace, as docs/adopting.md shows.
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
        return spaces.get_platform(self.target, self.kind)

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
    lookup.verification_changed()


def flush() -> int:
    """Write this process's pending counts and deliver its pending alerts now, waiting
    for any write or delivery in flight: after it, ``mail.outbox`` and ``rollout_alert``
    receivers have every alert the counts so far raised. Returns count rows written."""
    return runtime.current().flush()


def flush_counts() -> int:
    """Write the session-start counts this process holds in memory now (with
    ``COUNT_FLUSH_INTERVAL`` above 0, say a smoke-test script). Returns rows written."""
    return outcomes.flush()


def reset() -> None:
    """Forget everything the app remembers in this process: looked-up platforms,
    decrypted keys, the alerts seen raised, the failure log's allowance, pending counts
    and alerts. Settings are read again."""
    runtime.current().reset()


def counts_at_once() -> override_settings:
    """``override_settings`` with ``COUNT_FLUSH_INTERVAL`` 0 (the rest of
    ``TRUSTED_IDENTITY`` as it is now): a decorator or context manager for tests whose
    settings buffer counts."""
    current = getattr(settings, "TRUSTED_IDENTITY", None)
    current = current if isinstance(current, dict) else {}
    return override_settings(TRUSTED_IDENTITY={**current, "COUNT_FLUSH_INTERVAL": 0})


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
    "counts_at_once",
    "create_platform",
    "enforcement",
    "flush",
    "flush_counts",
    "reset",
    "sign",
    "start_session",
]
