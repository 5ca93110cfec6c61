"""The ``jwks-url`` sub-command of ``manage.py trusted_identity`` (CONTRACT section 10):
a platform's JWKS URL shown, set (fetched at once: a URL without a usable set is
refused and nothing stored), cleared with ``none``, or fetched again with
``--refresh``. A mixin of the command, as ``public_keys`` is; every rule is in
``services.jwks``."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError

from trusted_identity.formatting import moment

from ..services import access, jwks, public_keys, spaces


def add_jwks_parsers(commands: Any) -> None:
    parser = commands.add_parser(
        "jwks-url",
        help="A platform's JWKS URL: shown; set (fetched at once, audited); none to clear; "
        "--refresh to fetch it again now.",
    )
    parser.add_argument("space")
    parser.add_argument("kind")
    parser.add_argument(
        "url",
        nargs="?",
        metavar="URL|none",
        help="https://... to set it (its keys join the platform's stored keys), none to "
        "clear it; without it, the URL and its keys are shown",
    )
    parser.add_argument(
        "--refresh", action="store_true", help="Fetch the set again now (whatever the minute)."
    )
    parser.add_argument("--json", action="store_true", dest="as_json")


class JwksCommands:
    """The ``do_jwks_url`` method; the command class defines ``_actor``, ``_out`` and
    ``_say``."""

    def _actor(self, options: dict[str, Any]) -> access.Actor:
        raise NotImplementedError

    def _out(self, value: str) -> None:
        raise NotImplementedError

    def _say(self, message: str) -> None:
        raise NotImplementedError

    def do_jwks_url(self, options: dict[str, Any]) -> None:
        url, refresh = options["url"], options["refresh"]
        if url is not None and refresh:
            raise CommandError("give a URL or --refresh, not both: setting a URL fetches it")
        platform = spaces.get_platform(options["space"], options["kind"])
        actor = self._actor(options)
        if url is None and not refresh:
            access.authorize(actor, "view", platform.space_id)
        elif url is not None and url.strip().lower() == "none":
            if jwks.clear_jwks_url(platform, actor):
                self._say(f"{platform} no longer verifies with a JWKS URL.")
                self._warn_if_keyless(platform)
            else:
                self._say(f"{platform} had no JWKS URL; nothing changed.")
        elif url is not None:
            jwks.set_jwks_url(platform, url, actor)
            self._say(f"{platform} now also verifies with the keys of its JWKS URL.")
        else:
            done = jwks.refresh_jwks(platform, actor)
            if not done.fetched:
                raise CommandError(
                    f"another process is fetching {platform}'s JWKS right now: try again"
                )
            if done.error:
                raise CommandError(
                    f"fetching {platform}'s JWKS failed: {done.error}; its last good set is kept"
                )
            self._say(
                f"Fetched {platform}'s JWKS: "
                + ("a new key set, in use within a second." if done.changed else "no change.")
            )
        self._show(platform, options)

    def _warn_if_keyless(self, platform: Any) -> None:
        if platform.key_source != "secret" and not public_keys.has_public_keys(platform):
            self._say(f"Warning: {platform} has no public key that verifies left.")

    def _show(self, platform: Any, options: dict[str, Any]) -> None:
        state = jwks.jwks_state(platform)
        if options["as_json"]:
            payload = {
                "space": platform.space.slug,
                "platform": platform.kind,
                "jwks": None if state is None else state.as_dict(),
            }
            self._out(json.dumps(payload))
            return
        if state is None:
            if options["url"] is None:
                self._say(
                    f"{platform} has no JWKS URL: set one with `jwks-url {options['space']} "
                    f"{options['kind']} https://...`."
                )
            return
        fetched = moment(state.fetched_at) if state.fetched_at else "never"
        self._say(f"JWKS URL: {state.url}")
        self._say(f"Last good set fetched {fetched}; set by {state.set_by or '?'}.")
        if state.error:
            tried = moment(state.attempted_at) if state.attempted_at else "?"
            self._say(f"The last fetch ({tried}) failed: {state.error}; the set below is kept.")
        for note in state.skipped:
            self._say(f"Left out: {note}")
        self._out(f"{'kid':<44} {'key':<16} {'alg':<6} fingerprint")
        for key in state.keys:
            flag = (
                "  (a stored key has this kid or key: it verifies instead)" if key.shadowed else ""
            )
            self._out(f"{key.kid:<44} {key.description:<16} {key.alg:<6} {key.fingerprint}{flag}")
