"""Trusted Identity: signed, verifiable client-SDK user ids for Django.

``trusted_identity.sign_user_id(space, kind, user_id)`` signs a user id in a site's
own views (see ``trusted_identity.api``). It is imported on first use, so importing
this package loads no Django model and can happen before Django is set up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "sign_user_id"]

if TYPE_CHECKING:
    from .api import sign_user_id

#: Public names imported on first use: (module, attribute).
_LAZY = {"sign_user_id": ("api", "sign_user_id")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        module, attribute = _LAZY[name]
        value = getattr(import_module(f".{module}", __name__), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
