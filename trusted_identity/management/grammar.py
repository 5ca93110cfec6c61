"""The grammar of ``manage.py trusted_identity``: every sub-command with its arguments and
help, and usage errors on one line (exit 2). What each sub-command does is in the
command itself (``management/commands/trusted_identity.py``),
``management/diagnostics.py``, ``management/public_keys.py`` and ``management/jwks.py``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ..models import PlatformKind, Role
from .diagnostics import add_diagnostics_parsers
from .jwks import add_jwks_parsers
from .public_keys import add_public_key_parsers


def add_subcommands(parser: CommandParser) -> None:
    """The ``--actor`` option and every sub-command's parser."""
    parser.add_argument(
        "--actor",
        metavar="USERNAME",
        help="Django user the audit entries name, who must hold a role allowing the "
        "action in that space (default: the CLI's own actor, with no user row, which may "
        "do anything).",
    )
    commands = parser.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=_parser_class(parser)
    )
    commands.required = True

    create = commands.add_parser("create-space", help="Create a space.")
    create.add_argument("slug")
    create.add_argument("--name", default="")

    add = commands.add_parser("add-platform", help="Add a platform; prints its API key.")
    add.add_argument("space")
    add.add_argument("kind", help=f"one of {', '.join(PlatformKind.values)}")

    show = commands.add_parser("show-secret", help="Print the current secret (audited).")
    show.add_argument("space")
    show.add_argument("kind")

    rotate = commands.add_parser("rotate-secret", help="Rotate; prints the new secret.")
    rotate.add_argument("space")
    rotate.add_argument("kind")
    rotate.add_argument(
        "--grace",
        default=None,
        help="How long the previous secret keeps verifying: 0, 30m, 24h, 7d (default 24h).",
    )

    revoke_previous = commands.add_parser(
        "revoke-previous",
        help="End every previous secret's grace now: only the current one verifies (audited).",
    )
    revoke_previous.add_argument("space")
    revoke_previous.add_argument("kind")

    allow_origin = commands.add_parser(
        "allow-origin",
        help="Let pages of ORIGIN start sessions of a web platform from the browser (CORS).",
    )
    allow_origin.add_argument("space")
    allow_origin.add_argument("kind")
    allow_origin.add_argument(
        "origin", help="scheme://host[:port], such as https://app.example.com"
    )

    deny_origin = commands.add_parser(
        "deny-origin", help="Take ORIGIN off a web platform's CORS allow-list."
    )
    deny_origin.add_argument("space")
    deny_origin.add_argument("kind")
    deny_origin.add_argument("origin")

    enforce = commands.add_parser("enforce", help="Turn enforcement on or off.")
    enforce.add_argument("space")
    enforce.add_argument("kind")
    enforce.add_argument("state", choices=["on", "off"])
    enforce.add_argument(
        "--force", action="store_true", help="Turn on even below the readiness threshold."
    )
    enforce.add_argument(
        "--reason",
        default="",
        help="Why the readiness rule is overridden (recorded; required with --force).",
    )

    sign = commands.add_parser("sign", help="Print the signature of a user id.")
    sign.add_argument("space")
    sign.add_argument("kind")
    sign.add_argument("user_id")
    sign.add_argument("--token", action="store_true", help="Print an expiring HS256 token instead.")
    sign.add_argument(
        "--ttl",
        default=None,
        help="With --token: how long it lives (30m, 1h; default TOKEN_TTL, at most the "
        "platform's maximum token age).",
    )

    forms = commands.add_parser(
        "signature-form",
        help="Which signature forms the platform accepts: plain, either or token (audited).",
    )
    forms.add_argument("space")
    forms.add_argument("kind")
    forms.add_argument("form", choices=["plain", "either", "token"])
    forms.add_argument(
        "--max-age",
        default=None,
        help="The longest lifetime of a token (1m to 7d, such as 24h; default: unchanged).",
    )
    forms.add_argument(
        "--force",
        action="store_true",
        help="Accept only tokens even below the readiness threshold.",
    )
    forms.add_argument(
        "--reason",
        default="",
        help="Why the readiness rule is overridden (recorded; required with --force).",
    )

    status = commands.add_parser("status", help="Enforcement and figures per platform.")
    status.add_argument("space", nargs="?")
    status.add_argument("--json", action="store_true", dest="as_json")
    status.add_argument(
        "--since",
        default=None,
        help="Figures over this long a window instead of the readiness window, such as "
        "30d (up to DAILY_RETENTION; past HOURLY_RETENTION, to the day).",
    )

    rekey = commands.add_parser("rekey", help="Re-encrypt every secret with the first key.")
    rekey.add_argument("--batch-size", type=int, default=500)

    prune = commands.add_parser(
        "prune",
        help="Fold hourly counts past HOURLY_RETENTION into daily ones; delete daily "
        "counts and distinct users past DAILY_RETENTION and the failure log past "
        "FAILURE_LOG_RETENTION (run daily from cron or a systemd timer).",
    )
    prune.add_argument("--batch-size", type=int, default=10_000)
    prune.add_argument(
        "--no-vacuum",
        action="store_true",
        help="Leave the emptied tables to autovacuum (PostgreSQL; by default a table "
        "that lost 10,000 rows or more is vacuumed after the run).",
    )

    commands.add_parser("generate-key", help="Print a new encryption key.")
    add_diagnostics_parsers(commands)
    add_public_key_parsers(commands)
    add_jwks_parsers(commands)

    grant = commands.add_parser(
        "grant", help="Give a user a role in a space (and staff status, saying so)."
    )
    grant.add_argument("space")
    grant.add_argument("username")
    grant.add_argument("--role", required=True, choices=Role.values)

    revoke = commands.add_parser(
        "revoke", help="Remove a user from a space (the last membership: staff too)."
    )
    revoke.add_argument("space")
    revoke.add_argument("username")


def one_line(text: str) -> str:
    """An error on one line: line breaks in echoed input are shown as \\n."""
    return text.strip().replace("\r", "\\r").replace("\n", "\\n")


def one_line_error(parser: CommandParser, message: str) -> None:
    """Usage errors as one line and exit code 2 (or CommandError when called from code)."""
    message = one_line(message)
    if parser.called_from_command_line:
        parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")
    raise CommandError(f"Error: {message}")


def _parser_class(parent: CommandParser) -> type[CommandParser]:
    """Sub-parsers that inherit how the main parser was called, and its one-line errors."""

    class SubCommandParser(CommandParser):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("called_from_command_line", parent.called_from_command_line)
            super().__init__(**kwargs)

        def error(self, message: str) -> None:
            one_line_error(self, message)

    return SubCommandParser
