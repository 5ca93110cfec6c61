"""The public-key sub-commands of ``manage.py trusted_identity`` (CONTRACT section 10):
``add-public-key``, ``remove-public-key``, ``public-keys``, ``key-source`` and
``generate-key-pair``. A mixin of the command, as ``diagnostics`` is; every rule is in
``services.public_keys`` and ``services.key_sources``."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import CommandError

from trusted_identity.dbclock import database_now
from trusted_identity.formatting import moment
from trusted_identity.publickeys import (
    ALGORITHMS,
    ES256,
    MAX_INPUT,
    PublicKey,
    generate_key_pair,
)

from ..services import access, jwks, key_sources, public_keys, spaces

#: What a platform verifies with, as the CLI says it.
SOURCE_WORDS = {
    "secret": "its secret only (plain signatures and HS256 tokens, as its signature form says)",
    "both": "its secret and its public keys (public-key tokens too)",
    "public-key": "public-key tokens only: it holds no secret",
}


def add_public_key_parsers(commands: Any) -> None:
    add = commands.add_parser(
        "add-public-key",
        help="Add a public key (PEM or JWK) to a platform; prints its kid (audited).",
    )
    add.add_argument("space")
    add.add_argument("kind")
    add.add_argument("file", metavar="FILE|-", help="the key's file, or - to read stdin")
    add.add_argument(
        "--kid", default=None, help="its key id (default: the JWK's kid, else its thumbprint)"
    )
    add.add_argument(
        "--expires",
        default=None,
        help="when it stops verifying, from now: 30d, 12h (default never)",
    )

    remove = commands.add_parser(
        "remove-public-key", help="Remove a platform's public key: its tokens stop verifying."
    )
    remove.add_argument("space")
    remove.add_argument("kind")
    remove.add_argument("kid")

    listing = commands.add_parser(
        "public-keys", help="A platform's public keys: fingerprints, expiry, last use."
    )
    listing.add_argument("space")
    listing.add_argument("kind")
    listing.add_argument("--json", action="store_true", dest="as_json")

    source = commands.add_parser(
        "key-source",
        help="What a platform verifies with: secret, both or public-key (public-key deletes "
        "its secrets; audited).",
    )
    source.add_argument("space")
    source.add_argument("kind")
    source.add_argument("source", choices=list(key_sources.SOURCES))
    source.add_argument(
        "--force",
        action="store_true",
        help="Accept public-key tokens only even below the readiness threshold.",
    )
    source.add_argument(
        "--reason",
        default="",
        help="Why the readiness rule is overridden (recorded; required with --force).",
    )

    pair = commands.add_parser(
        "generate-key-pair",
        help="Print a new private key (PEM) on stdout and its public key on stderr; "
        "nothing is stored.",
    )
    pair.add_argument("--alg", choices=list(ALGORITHMS), default=ES256)


class PublicKeyCommands:
    """The ``do_`` methods of the public-key sub-commands; the command class defines
    ``_actor``, ``_out`` and ``_say``."""

    def _actor(self, options: dict[str, Any]) -> access.Actor:
        raise NotImplementedError

    def _out(self, value: str) -> None:
        raise NotImplementedError

    def _say(self, message: str) -> None:
        raise NotImplementedError

    def do_add_public_key(self, options: dict[str, Any]) -> None:
        expires = None
        if options["expires"] is not None:
            expires = public_keys.parse_expiry(options["expires"])
        platform = spaces.get_platform(options["space"], options["kind"])
        data = _read_key_file(options["file"])
        row = public_keys.add_public_key(
            platform,
            data,
            self._actor(options),
            kid=options["kid"],
            expires_at=None if expires is None else database_now() + expires,
        )
        info = PublicKey.from_der(bytes(row.spki))
        until = "" if row.expires_at is None else f", expiring {moment(row.expires_at)}"
        self._say(
            f"Added public key {row.kid!r} to {platform} ({info.description}, {info.alg}, "
            f"{info.fingerprint}{until}); its kid:"
        )
        if platform.key_source == key_sources.SECRET:
            self._say(
                f"{platform} verifies its secret only: its public-key tokens count as "
                f"form_not_allowed until `key-source {options['space']} {options['kind']} both`."
            )
        self._out(row.kid)

    def do_remove_public_key(self, options: dict[str, Any]) -> None:
        platform = spaces.get_platform(options["space"], options["kind"])
        public_keys.remove_public_key(platform, options["kid"], self._actor(options))
        self._say(
            f"Removed public key {options['kid']!r} from {platform}: tokens it signed no longer "
            "verify."
        )
        if platform.key_source != key_sources.SECRET and not public_keys.has_public_keys(platform):
            self._say(f"Warning: {platform} has no public key that verifies left.")

    def do_public_keys(self, options: dict[str, Any]) -> None:
        platform = spaces.get_platform(options["space"], options["kind"])
        access.authorize(self._actor(options), "view", platform.space_id)
        keys = public_keys.public_keys_of(platform)
        if options["as_json"]:
            payload = {
                "space": platform.space.slug,
                "platform": platform.kind,
                "key_source": platform.key_source,
                "keys": [key.as_dict() for key in keys],
            }
            self._out(json.dumps(payload))
            return
        self._say(f"{platform} verifies {SOURCE_WORDS[platform.key_source]}.")
        fetched = jwks.jwks_state(platform)
        if fetched is not None:
            count = len(fetched.keys)
            self._say(
                f"It also verifies the {count} key{'s' if count != 1 else ''} of its JWKS URL "
                f"(`jwks-url {options['space']} {options['kind']}` lists them)."
            )
        if not keys:
            self._say(
                f"No stored public keys: add one with `add-public-key {options['space']} "
                f"{options['kind']} FILE`."
            )
            return
        self._out(
            f"{'kid':<44} {'key':<16} {'state':<8} {'expires':<20} {'last used':<20} "
            f"{'24h':>7}  fingerprint"
        )
        for key in keys:
            expires = moment(key.expires_at) if key.expires_at else "never"
            used = moment(key.last_verified_at) if key.last_verified_at else "never"
            self._out(
                f"{key.kid:<44} {key.description:<16} {key.state:<8} {expires:<20} "
                f"{used:<20} {key.verified_last_24h:>7}  {key.fingerprint}"
            )

    def do_key_source(self, options: dict[str, Any]) -> None:
        platform = spaces.get_platform(options["space"], options["kind"])
        reason = (options["reason"] or "").strip()
        if options["force"] and not reason:
            raise CommandError("--force needs --reason TEXT: why the readiness rule is overridden")
        before = platform.key_source
        platform = key_sources.set_key_source(
            platform, options["source"], self._actor(options), force=options["force"], reason=reason
        )
        self._say(f"{platform} verifies {SOURCE_WORDS[platform.key_source]}.")
        if before != platform.key_source == key_sources.PUBLIC_KEY_ONLY:
            self._say("Its secrets were deleted: nothing stored here can sign for it any more.")
        elif before == key_sources.PUBLIC_KEY_ONLY != platform.key_source:
            self._say(
                f"It has a new secret: `show-secret {options['space']} {options['kind']}` "
                "reveals it."
            )

    def do_generate_key_pair(self, options: dict[str, Any]) -> None:
        private_pem, public_pem = generate_key_pair(options["alg"])
        self._say(
            f"A new {options['alg']} key pair; nothing was stored. Keep the private key "
            "(standard output) on your server only; give the public key below to "
            "add-public-key:"
        )
        self._say(public_pem.rstrip("\n"))
        self._out(private_pem.rstrip("\n"))


def _read_key_file(name: str) -> bytes:
    """The bytes of FILE, or of standard input for ``-``, at most what one key can be
    (``publickeys`` says so beyond it)."""
    try:
        if name == "-":
            stream = getattr(sys.stdin, "buffer", None)
            if stream is not None:
                return stream.read(MAX_INPUT + 1)
            return sys.stdin.read(MAX_INPUT + 1).encode("utf-8", "surrogateescape")
        with open(name, "rb") as handle:
            return handle.read(MAX_INPUT + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        where = "standard input" if name == "-" else name
        raise CommandError(
            f"cannot read {where}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
