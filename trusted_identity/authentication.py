"""Who the sign view signs: Django's session login by default, or what the site configures.

``TRUSTED_IDENTITY["SIGN_AUTHENTICATION"]`` is a dotted path, or a list of them (or
the objects themselves), tried in order; the first that names a user wins:

- a Django REST framework authentication class (``rest_framework.authentication.
  TokenAuthentication``, a JWT class, ...), used as DRF's views use it: its
  ``authenticate()`` gets a DRF ``Request`` and answers ``(user, auth)`` or None; an
  ``AuthenticationFailed`` it raises (a bad token) is the sign view's 401;
- any callable taking the ``HttpRequest`` and returning a user or None, such as
  :func:`session_user`, the default.

DRF is imported only when a DRF class is configured: the app does not need it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.utils.module_loading import import_string

from . import runtime
from .conf import app_settings
from .exceptions import NotAuthenticated, ServiceUnavailable

logger = logging.getLogger("trusted_identity")

#: The default: the user Django's AuthenticationMiddleware put on the request.
SESSION = "trusted_identity.authentication.session_user"

Authenticator = Callable[[HttpRequest], Any]


def session_user(request: HttpRequest) -> Any:
    """The user of Django's session login, or None for a visitor."""
    user = getattr(request, "user", None)
    return user if getattr(user, "is_authenticated", False) else None


def _drf_authenticator(cls: type) -> Authenticator:
    def authenticate(request: HttpRequest) -> Any:
        from rest_framework.exceptions import APIException
        from rest_framework.request import Request

        drf_request = getattr(request, "_trusted_identity_drf_request", None)
        if drf_request is None:
            drf_request = Request(request)
            request._trusted_identity_drf_request = drf_request
        try:
            result = cls().authenticate(drf_request)
        except APIException as exc:
            raise NotAuthenticated(str(exc.detail)) from None
        return None if result is None else result[0]

    authenticate.__qualname__ = f"drf:{cls.__module__}.{cls.__qualname__}"
    return authenticate


def _resolve(entry: Any) -> Authenticator:
    obj = entry
    if isinstance(entry, str):
        try:
            obj = import_string(entry)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"TRUSTED_IDENTITY['SIGN_AUTHENTICATION']: can't import {entry!r} ({exc})"
            ) from None
    if isinstance(obj, type):
        if not callable(getattr(obj, "authenticate", None)):
            raise ImproperlyConfigured(
                f"TRUSTED_IDENTITY['SIGN_AUTHENTICATION']: {entry!r} is a class without "
                "authenticate(); name a DRF authentication class or a function"
            )
        return _drf_authenticator(obj)
    if not callable(obj):
        raise ImproperlyConfigured(
            f"TRUSTED_IDENTITY['SIGN_AUTHENTICATION']: {entry!r} is not callable"
        )
    return obj


def _resolve_all(entries: tuple[Any, ...]) -> tuple[Authenticator, ...]:
    return tuple(_resolve(entry) for entry in entries)


def authenticators() -> tuple[Authenticator, ...]:
    """The configured authenticators, resolved once per setting value."""
    value = app_settings.SIGN_AUTHENTICATION
    if value is None:
        value = [SESSION]
    elif isinstance(value, str) or not isinstance(value, (list, tuple)):
        value = [value]
    entries = tuple(value)
    return runtime.current().authenticators.get(entries, _resolve_all, entries)


def authenticate(request: HttpRequest) -> Any:
    """The user to sign for, or NotAuthenticated: a visitor, or credentials refused.

    An authenticator that fails for another reason (its models not installed, its
    backend down) is the operator's problem, not the client's: logged with its
    traceback, and answered as ``ServiceUnavailable`` (503), never a 500.
    """
    for authenticator in authenticators():
        try:
            user = authenticator(request)
        except NotAuthenticated:
            raise
        except Exception:
            name = getattr(authenticator, "__qualname__", repr(authenticator))
            logger.exception("The sign view's authentication %s failed", name)
            raise ServiceUnavailable(
                "the sign view's authentication is not working; the operator has been told"
            ) from None
        if user is not None and getattr(user, "is_authenticated", False):
            return user
    raise NotAuthenticated("log in first: visitors are anonymous and never signed")
