"""The rollout-diagnostics sub-commands of ``manage.py trusted_identity`` (CONTRACT
sections 5 and 8): ``failures`` and ``test-signature``. A mixin of the command, so
that the command's module stays one screenful per concern."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError

from trusted_identity.formatting import moment

from ..services import access, diagnostics, signature_tester, spaces

#: The most failures one ``failures`` prints (the log keeps FAILURE_LOG_MAX_ROWS).
MAX_LIMIT = 1000

#: ``test-signature``'s exit status per verdict: 0 only for a signature that verifies
#: (docs/cli.md); 1 is any error, 2 a usage error (argparse).
TESTER_EXIT_CODES = {
    signature_tester.VALID_CURRENT: 0,
    signature_tester.VALID_PREVIOUS: 0,
    signature_tester.NO_MATCH: 3,
    signature_tester.MALFORMED: 4,
    signature_tester.EXPIRED_SECRET: 5,
    signature_tester.OTHER_PLATFORM: 6,
}


def add_diagnostics_parsers(commands: Any) -> None:
    failures = commands.add_parser(
        "failures",
        help="Recent invalid, missing and rejected starts of a platform (sampled), newest first.",
    )
    failures.add_argument("space")
    failures.add_argument("kind")
    failures.add_argument("--limit", type=int, default=50, help=f"1 to {MAX_LIMIT} (default 50)")
    failures.add_argument("--json", action="store_true", dest="as_json")

    tester = commands.add_parser(
        "test-signature",
        help="Print the verdict on a signature of a user id: valid-current, valid-previous, "
        "expired-secret, other-platform, malformed or no-match (audited). Exits 0 only for "
        "valid-current and valid-previous; 3 no-match, 4 malformed, 5 expired-secret, "
        "6 other-platform.",
    )
    tester.add_argument("space")
    tester.add_argument("kind")
    tester.add_argument("user_id")
    tester.add_argument("signature", help="64 hex digits, a token, or a public-key token")
    tester.add_argument(
        "--json",
        action="store_true",
        dest="as_json",
        help="Print the verdict as JSON, with the secret it matched (or the public key that "
        "verified a public-key token), its end of grace and the UTF-8 bytes hashed as hex.",
    )


class DiagnosticsCommands:
    """``do_failures`` and ``do_test_signature``; the command class defines ``_actor``,
    ``_out`` and ``_say``."""

    def _actor(self, options: dict[str, Any]) -> access.Actor:
        raise NotImplementedError

    def _out(self, value: str) -> None:
        raise NotImplementedError

    def _say(self, message: str) -> None:
        raise NotImplementedError

    def do_failures(self, options: dict[str, Any]) -> None:
        limit = options["limit"]
        if not 1 <= limit <= MAX_LIMIT:
            raise CommandError(f"--limit must be from 1 to {MAX_LIMIT}")
        platform = spaces.get_platform(options["space"], options["kind"])
        access.authorize(self._actor(options), "view", platform.space_id)
        records = diagnostics.recent_failures(platform, limit)
        if options["as_json"]:
            payload = {"failures": [diagnostics.failure_as_dict(r) for r in records]}
            self._out(json.dumps(payload))
            return
        if not records:
            self._say(f"No failed starts logged for {platform}.")
            return
        self._out(f"{'at':<20} {'outcome':<9} {'reason':<22} {'app':<12} {'sdk':<14} user id")
        for record in records:
            row = diagnostics.failure_as_dict(record)
            self._out(
                f"{moment(record.at):<20} {row['outcome']:<9} {row['reason'] or '-':<22} "
                f"{row['app_version'] or '-':<12} {row['sdk_version'] or '-':<14} "
                f"{json.dumps(row['user_id'])}"
            )

    def do_test_signature(self, options: dict[str, Any]) -> None:
        spaces.validate_kind(options["kind"])
        found = signature_tester.check_signature(
            self._actor(options),
            options["space"],
            options["kind"],
            options["user_id"],
            options["signature"],
        )
        if options["as_json"]:
            self._out(json.dumps(found.as_json()))
        else:
            self._say(found.describe())
            self._out(found.verdict)
        code = TESTER_EXIT_CODES[found.verdict]
        if code:
            raise CommandError(
                f"{found.verdict}: the signature does not verify for this user id",
                returncode=code,
            )
