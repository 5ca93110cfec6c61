"""Who belongs to a space, with which role: grant and revoke, audited on the space."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from ..exceptions import InvalidRequest, UserNotFound
from ..models import Role, Space, SpaceMembership
from .access import Actor, authorize
from .audit import audit


def grant(space: Space, username: str, role: str, actor: Actor) -> SpaceMembership:
    """Make ``username`` staff and a member of ``space`` with ``role``."""
    authorize(actor, "manage_members", space.pk)
    if role not in Role.values:
        raise InvalidRequest(f"unknown role {role!r}; expected one of {', '.join(Role.values)}")
    user_model = get_user_model()
    with transaction.atomic():
        try:
            # get_by_natural_key is a manager method, not a QuerySet one.
            user = user_model._default_manager.select_for_update().get(
                **{user_model.USERNAME_FIELD: username}
            )
        except user_model.DoesNotExist:
            raise UserNotFound(f"no user named {username!r}") from None
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        membership, _created = SpaceMembership.objects.update_or_create(
            space=space, user=user, defaults={"role": role}
        )
        audit(actor, space, f"Granted {username} the {role} role.")
    return membership


def revoke(space: Space, username: str, actor: Actor) -> None:
    authorize(actor, "manage_members", space.pk)
    user_model = get_user_model()
    with transaction.atomic():
        deleted, _ = SpaceMembership.objects.filter(
            space=space, **{f"user__{user_model.USERNAME_FIELD}": username}
        ).delete()
        if not deleted:
            raise UserNotFound(f"{username!r} is not a member of space {space.slug!r}")
        audit(actor, space, f"Revoked {username}'s membership.")
