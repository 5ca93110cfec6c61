"""Who may do what: actors, roles and their permissions in a space.

The lowest service module. An :class:`Actor` is who performs an operation and
through which door (the admin checks the space role; the CLI's own actor is
trusted, a user the CLI names with ``--actor`` is checked like an admin user);
``ROLE_PERMISSIONS`` is the one table of what each role may do; every other
module asks :func:`authorize` before it changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import FieldDoesNotExist

from ..conf import app_settings
from ..exceptions import PermissionDenied, UserNotFound
from ..models import Role, Space, SpaceMembership


@dataclass(frozen=True)
class Actor:
    """Who performs an operation, and through which door.

    ``channel`` is the door (``models.Door``): ``"admin"`` for people in the admin
    (their space role is checked), ``"cli"`` for the management command, ``"code"``
    for a site's own code acting as a user. The CLI's own actor has no user: whoever
    runs it already holds the database and the encryption keys, so it is trusted, and
    its audit entries carry its ``name`` (``CLI_ACTOR_USERNAME``). A user the CLI
    names (``--actor``, ``named``) is not trusted: the audit trail would say they did
    it, so they must hold a role allowing it, as in the admin.
    """

    user: AbstractBaseUser | None
    channel: str = "admin"
    detail: str = ""
    named: bool = False
    name: str = ""  # the name audit entries show when there is no user

    @classmethod
    def admin(cls, user: AbstractBaseUser) -> Actor:
        return cls(user=user, channel="admin")

    @property
    def trusted(self) -> bool:
        """Only the CLI's own actor skips the role checks."""
        return self.channel == "cli" and not self.named

    @property
    def display_name(self) -> str:
        """The name audit entries record: the user's username, else ``name``."""
        return self.user.get_username() if self.user is not None else self.name

    @property
    def key(self) -> str:
        """A stable key per actor (rate limits): the user's pk, else the door and name."""
        return str(self.user.pk) if self.user is not None else f"{self.channel}:{self.name}"


def _find_user(username: str) -> AbstractBaseUser:
    """The user whose USERNAME_FIELD is ``username`` (raises ``DoesNotExist``)."""
    user_model = get_user_model()
    manager = user_model._default_manager
    if hasattr(manager, "get_by_natural_key"):
        return manager.get_by_natural_key(username)
    return manager.get(**{user_model.USERNAME_FIELD: username})


def model_has_field(model: type, name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def get_cli_actor(username: str | None = None, os_user: str = "") -> Actor:
    """The actor the CLI acts and writes audit entries as.

    With a username (``--actor``), that user, whose role is checked for every action
    as in the admin (superusers may do everything). Otherwise the CLI's own actor:
    trusted, with no user (nothing is written to the site's user table), recorded
    under the name ``CLI_ACTOR_USERNAME``.
    """
    named = bool(username) and username != app_settings.CLI_ACTOR_USERNAME
    user = None
    if named:
        try:
            user = _find_user(username)
        except get_user_model().DoesNotExist:
            raise UserNotFound(f"no user named {username!r}") from None
    detail = f"command line, OS user {os_user}" if os_user else "command line"
    return Actor(
        user=user,
        channel="cli",
        detail=detail,
        named=named,
        name=app_settings.CLI_ACTOR_USERNAME if user is None else "",
    )


#: What each role may do in its space. Superusers may do everything everywhere.
#: ``change_space`` (rename it) and ``delete_platform`` are admin-console operations;
#: ``sign`` is the CLI's ``sign`` (whoever may reveal the secret may sign with it).
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(
        {
            "view",
            "reveal",
            "sign",
            "rotate",
            "enforce",
            "manage_members",
            "change_space",
            "delete_platform",
        }
    ),
    Role.ADMIN: frozenset({"view", "reveal", "sign", "rotate", "enforce"}),
    Role.VIEWER: frozenset({"view"}),
}


def spaces_visible_to(user: AbstractBaseUser):
    """The spaces a user may see at all: every space for superusers, else their own."""
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return Space.objects.none()
    if getattr(user, "is_superuser", False):
        return Space.objects.all()
    return Space.objects.filter(memberships__user=user).distinct()


def role_of(user: AbstractBaseUser, space: Space | int) -> str | None:
    space_id = space if isinstance(space, int) else space.pk
    if not getattr(user, "is_authenticated", False):
        return None
    return (
        SpaceMembership.objects.filter(space_id=space_id, user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )


def can(user: AbstractBaseUser, action: str, space: Space | int) -> bool:
    """Whether ``user`` may do ``action`` ("view", "reveal", "rotate", ...) in ``space``."""
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    role = role_of(user, space)
    return role is not None and action in ROLE_PERMISSIONS.get(role, frozenset())


def is_active_staff(user: AbstractBaseUser) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


def roles_allowing(action: str) -> list[str]:
    """The roles whose members may do ``action`` in their space."""
    return [role for role, actions in ROLE_PERMISSIONS.items() if action in actions]


def restrict_to_spaces(queryset, user: AbstractBaseUser, action: str = "view", space_field="space"):
    """``queryset`` narrowed to rows in spaces where ``user`` may do ``action``.

    ``space_field`` is the lookup from the queryset's model to the space (``"pk"``
    for spaces themselves). One subquery, no extra query: fit for list pages.
    """
    if not is_active_staff(user):
        return queryset.none()
    if getattr(user, "is_superuser", False):
        return queryset
    space_ids = SpaceMembership.objects.filter(
        user_id=user.pk, role__in=roles_allowing(action)
    ).values("space_id")
    return queryset.filter(**{f"{space_field}__in": space_ids})


@dataclass(frozen=True)
class Permissions:
    """What one user may do in which space: read once (one query), asked many times.

    Gives the same answers as :func:`can`; the admin keeps one per request so a
    list page costs no permission query per row.
    """

    staff: bool  # an active staff user: may use the admin console at all
    superuser: bool
    roles: dict[int, str] = field(default_factory=dict)

    def role(self, space: Space | int) -> str | None:
        return self.roles.get(space if isinstance(space, int) else space.pk)

    def can(self, action: str, space: Space | int) -> bool:
        if not self.staff:
            return False
        if self.superuser:
            return True
        role = self.role(space)
        return role is not None and action in ROLE_PERMISSIONS.get(role, frozenset())

    def can_any(self, action: str) -> bool:
        """Whether there is at least one space where the user may do ``action``."""
        if not self.staff:
            return False
        return self.superuser or any(
            action in ROLE_PERMISSIONS.get(role, frozenset()) for role in self.roles.values()
        )

    @property
    def may_create_spaces(self) -> bool:
        """Only superusers create (and delete) spaces: a space is a tenant."""
        return self.staff and self.superuser


def permissions_for(user: AbstractBaseUser) -> Permissions:
    staff = is_active_staff(user)
    superuser = bool(getattr(user, "is_superuser", False))
    if not staff or superuser:
        return Permissions(staff=staff, superuser=staff and superuser)
    roles = dict(SpaceMembership.objects.filter(user_id=user.pk).values_list("space_id", "role"))
    return Permissions(staff=True, superuser=False, roles=roles)


def authorize(actor: Actor, action: str, space_id: int) -> None:
    if actor.trusted:
        return
    if not can(actor.user, action, space_id):
        raise PermissionDenied(_refusal(actor, f"{action.replace('_', ' ')} in this space"))


def authorize_superuser(actor: Actor, what: str) -> None:
    """For what belongs to no one space (creating spaces, ``rekey``): superusers only."""
    if actor.trusted:
        return
    if not (is_active_staff(actor.user) and getattr(actor.user, "is_superuser", False)):
        raise PermissionDenied(_refusal(actor, what))


def spaces_for(actor: Actor, action: str = "view"):
    """The spaces where ``actor`` may do ``action``: all of them for a trusted actor."""
    if actor.trusted:
        return Space.objects.all()
    return restrict_to_spaces(Space.objects.all(), actor.user, action, space_field="pk")


def _refusal(actor: Actor, what: str) -> str:
    if actor.named:  # say who, so an operator sees which --actor lacks the role
        return f"{actor.display_name} may not {what}"
    return f"you may not {what}"
