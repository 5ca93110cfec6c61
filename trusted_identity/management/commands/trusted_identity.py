"""``manage.py trusted_identity <sub-command>``: the CLI of CONTRACT section 5.

A sub-command that prints a value prints it alone on one line of stdout; words
for a person go to stderr. Every rule is in ``services``; this module parses
arguments and formats answers.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from trusted_identity.conf import app_settings
from trusted_identity.crypto import generate_key
from trusted_identity.exceptions import TrustedIdentityError
from trusted_identity.formatting import form_shares, moment, percent
from trusted_identity.management.diagnostics import DiagnosticsCommands
from trusted_identity.management.grammar import add_subcommands, one_line, one_line_error
from trusted_identity.management.jwks import JwksCommands
from trusted_identity.management.public_keys import PublicKeyCommands

from ...services import (
    access,
    diagnostics,
    durations,
    enforcement,
    figures,
    memberships,
    origins,
    platform_secrets,
    retention,
    signature_forms,
    verification,
)
from ...services.enforcement import NotReady
from ...services.key_sources import KeysNotReady
from ...services.rekey import rekey
from ...services.signature_forms import TokenNotReady
from ...services.spaces import add_platform, create_space, get_platform, get_space, validate_kind

#: The readiness of ``status`` as the admin says it (``status --json`` has the key).
READINESS_WORDS = {
    "ready": "ready",
    "not_ready": "not-ready",
    "not_enough_starts": "too-few-users-to-tell",
}


#: Sub-commands that need no configured site: they run before any key is set, and with
#: a broken setting, so Django's system checks are skipped for them. Every other one
#: runs the checks first, as Django's own commands do (``--skip-checks`` skips them).
NEEDS_NO_SITE = frozenset({"generate-key", "generate-key-pair"})


class Command(DiagnosticsCommands, PublicKeyCommands, JwksCommands, BaseCommand):
    help = "Manage Trusted Identity spaces, platforms, secrets and enforcement."

    def execute(self, *args: Any, **options: Any) -> Any:
        if options.get("subcommand") in NEEDS_NO_SITE:
            options["skip_checks"] = True
        return super().execute(*args, **options)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.error = lambda message: one_line_error(parser, message)  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        add_subcommands(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        for name, value in options.items():
            # Bytes that are not UTF-8 on the command line arrive as lone surrogates
            # (surrogateescape); no user id, slug or name can hold them.
            if isinstance(value, str) and not _is_utf8(value):
                raise CommandError(f"{name.replace('_', '-')}: not valid UTF-8")
        handler: Callable[[dict[str, Any]], None] = getattr(
            self, "do_" + subcommand.replace("-", "_")
        )
        try:
            handler(options)
        except CommandError as exc:
            raise CommandError(one_line(str(exc)), returncode=exc.returncode) from None
        except (NotReady, TokenNotReady, KeysNotReady) as exc:
            raise CommandError(one_line(f"{exc.message} (use --force with --reason)")) from None
        except TrustedIdentityError as exc:
            raise CommandError(one_line(exc.message)) from None
        except ImproperlyConfigured as exc:
            raise CommandError(one_line(str(exc))) from None
        except DatabaseError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CommandError(one_line(f"database error: {first}")) from None

    # -- helpers

    def _out(self, value: str) -> None:
        self.stdout.write(value)

    def _say(self, message: str) -> None:
        self.stderr.write(message)

    def _actor(self, options: dict[str, Any]) -> access.Actor:
        try:
            os_user = getpass.getuser()
        except (KeyError, OSError):
            os_user = ""
        return access.get_cli_actor(options.get("actor"), os_user=os_user)

    # -- sub-commands

    def do_create_space(self, options: dict[str, Any]) -> None:
        space = create_space(options["slug"], options["name"], self._actor(options))
        self._say(f"Created space {space.slug!r}.")

    def do_add_platform(self, options: dict[str, Any]) -> None:
        validate_kind(options["kind"])
        space = get_space(options["space"])
        platform = add_platform(space, options["kind"], self._actor(options))
        self._say(f"Added {platform.kind} to {space.slug!r}; its public API key:")
        self._out(platform.api_key)

    def do_show_secret(self, options: dict[str, Any]) -> None:
        platform = get_platform(options["space"], options["kind"])
        secret = platform_secrets.reveal_secret(platform, self._actor(options))
        self._say(f"Current secret of {platform} (this reveal was audited):")
        self._out(secret)

    def do_rotate_secret(self, options: dict[str, Any]) -> None:
        grace = None if options["grace"] is None else durations.parse_duration(options["grace"])
        platform = get_platform(options["space"], options["kind"])
        secret = platform_secrets.rotate_secret(platform, self._actor(options), grace)
        # The grace just given is the secret just retired's, not an older one's.
        retired = (
            platform.secrets.previous_in_grace()
            .order_by("-retired_at", "-pk")
            .values_list("valid_until", flat=True)
            .first()
        )
        last = platform_secrets.previous_secret_valid_until(platform)
        if retired:
            given = durations.describe_duration(
                app_settings.DEFAULT_GRACE if grace is None else grace
            )
            self._say(
                f"Rotated {platform}; the previous secret verifies until {moment(retired)} "
                f"(a grace of {given})."
            )
            if last and last > retired:
                self._say(f"An older secret still verifies until {moment(last)}.")
        else:
            self._say(
                f"Rotated {platform}; the previous secret no longer verifies: "
                "only the new secret does."
            )
        self._out(secret)

    def do_revoke_previous(self, options: dict[str, Any]) -> None:
        platform = get_platform(options["space"], options["kind"])
        ended = platform_secrets.revoke_previous(platform, self._actor(options))
        if ended:
            self._say(
                f"Ended the grace of {ended} previous secret{'s' if ended != 1 else ''} of "
                f"{platform}: only the current secret verifies."
            )
        else:
            self._say(f"No previous secret of {platform} was verifying; nothing changed.")

    def do_allow_origin(self, options: dict[str, Any]) -> None:
        platform = get_platform(options["space"], options["kind"])
        origin, added = origins.allow_origin(platform, options["origin"], self._actor(options))
        listed = ", ".join(origins.allowed_origins(platform))
        if added:
            self._say(f"{platform} now allows {origin}; allowed origins: {listed}.")
        else:
            self._say(f"{platform} already allowed {origin}; nothing changed.")

    def do_deny_origin(self, options: dict[str, Any]) -> None:
        platform = get_platform(options["space"], options["kind"])
        origin = origins.deny_origin(platform, options["origin"], self._actor(options))
        listed = ", ".join(origins.allowed_origins(platform)) or "none"
        self._say(f"{platform} no longer allows {origin}; allowed origins: {listed}.")

    def do_enforce(self, options: dict[str, Any]) -> None:
        platform = get_platform(options["space"], options["kind"])
        enabled = options["state"] == "on"
        force, reason = options["force"], _override_reason(options)
        platform = enforcement.set_enforcement(
            platform, enabled, self._actor(options), force=force, reason=reason
        )
        self._say(f"Enforcement for {platform} is {'on' if platform.enforced else 'off'}.")

    def do_sign(self, options: dict[str, Any]) -> None:
        if not options["token"]:
            if options["ttl"] is not None:
                raise CommandError("--ttl needs --token: the plain signature never expires")
            signed = verification.sign_for(
                options["space"], options["kind"], options["user_id"], self._actor(options)
            )
            self._out(signed)
            return
        ttl = None if options["ttl"] is None else durations.parse_duration(options["ttl"])
        platform = get_platform(options["space"], options["kind"])
        issued = verification.sign_token_for(
            options["space"], options["kind"], options["user_id"], ttl, self._actor(options)
        )
        self._say(
            f"Token for {options['user_id']!r} on {platform}, valid until {issued.expires_at_iso}."
        )
        if platform.signature_form == "plain":
            self._say(
                f"Note: {platform} accepts only plain signatures; this token verifies once "
                f"`signature-form {options['space']} {options['kind']} either` is set."
            )
        self._out(issued.token)

    def do_signature_form(self, options: dict[str, Any]) -> None:
        max_age = (
            None
            if options["max_age"] is None
            else signature_forms.parse_max_age(options["max_age"])
        )
        platform = get_platform(options["space"], options["kind"])
        force, reason = options["force"], _override_reason(options)
        platform = signature_forms.set_signature_form(
            platform,
            options["form"],
            self._actor(options),
            max_age=max_age,
            force=force,
            reason=reason,
        )
        lifetime = durations.describe_duration(timedelta(seconds=platform.token_max_age))
        accepted = {
            "plain": "plain signatures only",
            "either": "plain signatures and tokens",
            "token": "tokens only",
        }[platform.signature_form]
        self._say(f"{platform} accepts {accepted}; a token may live at most {lifetime}.")

    def do_status(self, options: dict[str, Any]) -> None:
        since = None
        if options["since"] is not None:
            window = durations.parse_duration(
                options["since"], maximum=app_settings.DAILY_RETENTION
            )
            since = timezone.now() - window
        # Plain status prints no reasons, forms or versions: they are not read for it.
        spaces = diagnostics.status(options["space"], since, details=options["as_json"])
        if options.get("actor"):  # only what that user may see
            actor = self._actor(options)
            visible = set(access.spaces_for(actor, "view").values_list("slug", flat=True))
            if options["space"] and options["space"] not in visible:
                raise CommandError(f"{options['actor']} may not view space {options['space']!r}")
            spaces = [space for space in spaces if space["slug"] in visible]
        start = figures.window_start(since)
        if options["as_json"]:
            stamp = start.isoformat().replace("+00:00", "Z")
            self._out(json.dumps({"since": stamp, "spaces": spaces}))
            return
        if not spaces:
            self._say("No spaces yet: create one with `trusted_identity create-space SLUG`.")
            return
        self._say(
            f"Since {moment(start)}: users are distinct identified users, valid-users the "
            "share of them with a valid signature (readiness reads it), valid-starts the "
            "share of identified starts with one; signed-with the share of the valid users "
            "who signed with a token and with a public-key token, as the admin says it."
        )
        header = (
            f"{'space/platform':<28} {'enforced':<9} {'valid':>8} {'invalid':>8} "
            f"{'missing':>8} {'visitor':>8} {'rejected':>8} {'users':>8} {'valid-users':>12} "
            f"{'valid-starts':>12}  {'readiness':<21} {'key-source':<11} signed-with"
        )
        self._out(header)
        for space in spaces:
            if not space["platforms"]:
                self._out(f"{space['slug'] + '/-':<28} (no platforms)")
            for p in space["platforms"]:
                # The shares as the admin prints them (formatting.percent), of users and starts.
                users, starts = percent(p["valid_share"]), percent(p["start_valid_share"])
                self._out(
                    f"{space['slug'] + '/' + p['kind']:<28} {'on' if p['enforced'] else 'off':<9} "
                    f"{p['valid']:>8} {p['invalid']:>8} {p['missing']:>8} {p['visitor']:>8} "
                    f"{p['rejected']:>8} {p['distinct']['identified']:>8} {users:>12} "
                    f"{starts:>12}  {READINESS_WORDS[p['readiness']]:<21} "
                    f"{p['key_source']:<11} "
                    f"{form_shares(p['distinct']['valid'], p['distinct']['forms'])}"
                )

    def do_rekey(self, options: dict[str, Any]) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if options.get("actor"):
            access.authorize_superuser(self._actor(options), "rekey")
        result = rekey(batch_size=options["batch_size"])
        self._say(
            f"Re-encrypted {result.rekeyed} of {result.total} secrets with the first key; "
            f"{result.total - result.rekeyed - len(result.failed)} already used it."
        )
        if result.failed:
            rows = ", ".join(f"row {pk} (platform #{pid})" for pk, pid, _ in result.failed[:20])
            more = f" and {len(result.failed) - 20} more" if len(result.failed) > 20 else ""
            raise CommandError(
                f"{len(result.failed)} secrets could not be decrypted and were left as they "
                f"were: {rows}{more}; first reason: {result.failed[0][2]}"
            )

    def do_prune(self, options: dict[str, Any]) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        report = retention.prune(batch_size=options["batch_size"], vacuum=not options["no_vacuum"])
        self._say(
            f"Folded {report.hourly_rows_folded} hourly count rows into daily ones and "
            f"deleted {report.daily_rows_deleted} daily rows and "
            f"{report.failures_deleted} failure log rows past retention "
            f"in {report.seconds:.2f} s."
        )
        if report.expired_secrets_deleted:
            self._say(
                f"Deleted {report.expired_secrets_deleted} secrets whose grace ended more "
                "than EXPIRED_SECRET_RETENTION ago."
            )
        if report.vacuumed:
            self._say(f"Vacuumed {', '.join(report.vacuumed)} (the deleted rows' space reusable).")

    def do_generate_key(self, options: dict[str, Any]) -> None:
        self._say("A new encryption key; put it first in TRUSTED_IDENTITY_ENCRYPTION_KEYS:")
        self._out(generate_key())

    def do_grant(self, options: dict[str, Any]) -> None:
        space = get_space(options["space"])
        username = options["username"]
        membership = memberships.grant(space, username, options["role"], self._actor(options))
        self._say(f"{username} is now {options['role']} of {space.slug!r}.")
        if membership.made_staff:
            self._say(
                f"{username} is now staff too, so they can log into the admin "
                "(revoking their last membership takes that back)."
            )

    def do_revoke(self, options: dict[str, Any]) -> None:
        space = get_space(options["space"])
        username = options["username"]
        took_staff = memberships.revoke(space, username, self._actor(options))
        self._say(f"{username} is no longer a member of {space.slug!r}.")
        if took_staff:
            self._say(
                f"That was their last membership: {username} is no longer staff "
                "(the staff status their grant gave is taken back)."
            )


def _override_reason(options: dict[str, Any]) -> str:
    """``--reason``, which ``--force`` needs as the admin's override does (CONTRACT
    section 8): the reason is recorded with the change."""
    reason = (options["reason"] or "").strip()
    if options["force"] and not reason:
        raise CommandError("--force needs --reason TEXT: why the readiness rule is overridden")
    return reason


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
