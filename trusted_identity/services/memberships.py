"""Who belongs to a space, with which role: grant and revoke, audited on the space.

``grant`` makes the user staff when they were not (so they can log into the admin)
and remembers it in a :class:`~trusted_identity.models.StaffGrant`; revoking their
last membership takes back exactly that, and nothing they had before. A space never
loses its last owner through these functions. Every change of membership locks the
space's row first, then the user's, so concurrent changes of one space are
serialised (on PostgreSQL; SQLite serialises writers anyway) and the last-owner rule
can't be raced.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from ..exceptions import InvalidRequest, UserNotFound
from ..models import Role, Space, SpaceMembership, StaffGrant
from .access import Actor, authorize, model_has_field
from .audit import audit


def _lock_space(space: Space) -> None:
    """Serialise membership changes of ``space`` (the last-owner rule reads across rows)."""
    Space.objects.select_for_update().filter(pk=space.pk).values_list("pk", flat=True).first()


def _locked_user(username: str, missing: str) -> AbstractBaseUser:
    user_model = get_user_model()
    try:
        # get_by_natural_key is a manager method, not a QuerySet one.
        return user_model._default_manager.select_for_update().get(
            **{user_model.USERNAME_FIELD: username}
        )
    except user_model.DoesNotExist:
        raise UserNotFound(missing) from None


def _refuse_last_owner(space: Space, user: AbstractBaseUser, change: str) -> None:
    """InvalidRequest if ``user`` is the only owner of ``space``; ``change`` says what
    was asked ("remove olga from 'acme'")."""
    others = SpaceMembership.objects.filter(space=space, role=Role.OWNER).exclude(user=user)
    if not others.exists():
        raise InvalidRequest(
            f"can't {change}: {user.get_username()} is the last owner of space "
            f"{space.slug!r}; make another member owner first"
        )


def grant(space: Space, username: str, role: str, actor: Actor) -> SpaceMembership:
    """Make ``username`` a member of ``space`` with ``role``, and staff if they were not.

    The returned membership's ``made_staff`` is true when this grant made the user
    staff (the audit entry says so too). Demoting the space's last owner is refused
    with :class:`InvalidRequest`.
    """
    authorize(actor, "manage_members", space.pk)
    if role not in Role.values:
        raise InvalidRequest(f"unknown role {role!r}; expected one of {', '.join(Role.values)}")
    user_model = get_user_model()
    with transaction.atomic():
        _lock_space(space)
        user = _locked_user(username, f"no user named {username!r}")
        current = (
            SpaceMembership.objects.filter(space=space, user=user)
            .values_list("role", flat=True)
            .first()
        )
        if current == Role.OWNER and role != Role.OWNER:
            _refuse_last_owner(space, user, f"make {username} {role} of {space.slug!r}")
        made_staff = False
        if model_has_field(user_model, "is_staff") and not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
            StaffGrant.objects.get_or_create(user=user)
            made_staff = True
        membership, _created = SpaceMembership.objects.update_or_create(
            space=space, user=user, defaults={"role": role}
        )
        message = f"Granted {username} the {role} role."
        if made_staff:
            message += (
                " Made them staff, so they can log into the admin"
                " (taken back when their last membership is revoked)."
            )
            audit(
                actor,
                user,
                f"Made staff by a grant of the {role} role in {space.slug!r}.",
                action="grant_staff",
            )
        audit(actor, space, message, action="grant")
    membership.made_staff = made_staff
    return membership


def revoke(space: Space, username: str, actor: Actor) -> bool:
    """Remove ``username`` from ``space``; whether that took back staff status.

    Removing a user's last membership takes back the staff status a grant gave
    them, and only that: a user who was staff before any grant stays staff, and so
    does a superuser. Removing the space's last owner is refused with
    :class:`InvalidRequest`.
    """
    authorize(actor, "manage_members", space.pk)
    not_member = f"{username!r} is not a member of space {space.slug!r}"
    with transaction.atomic():
        _lock_space(space)
        user = _locked_user(username, not_member)
        membership = SpaceMembership.objects.filter(space=space, user=user).first()
        if membership is None:
            raise UserNotFound(not_member)
        if membership.role == Role.OWNER:
            _refuse_last_owner(space, user, f"remove {username} from {space.slug!r}")
        membership.delete()
        took_staff = _take_back_staff(user)
        message = f"Revoked {username}'s membership."
        if took_staff:
            message += " It was their last: took back the staff status their grant gave."
            audit(
                actor,
                user,
                f"Staff status given by a grant taken back (left {space.slug!r}).",
                action="revoke_staff",
            )
        audit(actor, space, message, action="revoke")
    return took_staff


def _take_back_staff(user: AbstractBaseUser) -> bool:
    """After a revocation: the staff status a grant gave, if no membership is left."""
    if SpaceMembership.objects.filter(user=user).exists():
        return False
    given, _ = StaffGrant.objects.filter(user=user).delete()
    if not given or getattr(user, "is_superuser", False) or not user.is_staff:
        return False
    user.is_staff = False
    user.save(update_fields=["is_staff"])
    return True
