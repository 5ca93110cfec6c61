"""Property-based fuzzing of the command line: any argument list for every
sub-command ends in a value or a one-line error, never a traceback.
"""

from __future__ import annotations

import io
import sys
from io import StringIO

from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given, note
from hypothesis import strategies as st

from trusted_identity import signing
from trusted_identity.models import Platform
from trusted_identity.services import platform_secrets, spaces

from .factories import UserFactory
from .test_fuzz import case, examples, world  # noqa: F401

# --------------------------------------------------------------------- CLI

SUBCOMMANDS = [
    "create-space",
    "add-platform",
    "show-secret",
    "rotate-secret",
    "enforce",
    "sign",
    "signature-form",
    "status",
    "rekey",
    "generate-key",
    "grant",
    "revoke",
    "add-public-key",
    "remove-public-key",
    "public-keys",
    "key-source",
    "generate-key-pair",
    "jwks-url",
]
cli_words = st.sampled_from(
    [
        "acme",
        "other",
        "ios",
        "android",
        "web",
        "roku",
        "on",
        "off",
        "0",
        "24h",
        "30m",
        "5x",
        "--force",
        "--reason",
        "--json",
        "--grace",
        "--role",
        "owner",
        "viewer",
        "signer",
        "--batch-size",
        "-1",
        "1",
        "--name",
        "--actor",
        "root",
        "-",
        "--",
        "",
        "\x00",
        "\udcff",
        "\udcff\udcfe",
        "é",
        "a" * 100,
        "--grace=0",
        "--role=admin",
        "plain",
        "either",
        "token",
        "--token",
        "--ttl",
        "--max-age",
        "8d",
        "-1e9",
        "99999999999",
        "secret",
        "both",
        "public-key",
        "--kid",
        "--expires",
        "30d",
        "--alg",
        "EdDSA",
        "/dev/null",
        "none",
        "--refresh",
        "https://127.0.0.1:1/jwks.json",  # nothing listens there: refused at once
        "http://127.0.0.1:1/",
        "https://u:p@x/",
    ]
) | st.text(max_size=12)


def _asks_for_help(word: str) -> bool:
    """What argparse reads as a help request: ``-h`` (``-h0`` too: short flags combine),
    ``--help`` and its abbreviations (``--he``)."""
    if word.startswith("--"):
        return len(word) > 2 and "--help".startswith(word)
    return word.startswith("-h")


@examples(400)
@given(
    subcommand=st.sampled_from(SUBCOMMANDS) | st.text(max_size=8),
    args=st.lists(cli_words, max_size=5),
    actor=st.none() | st.sampled_from(["root", "ghost", "\x00", "\udcff", ""]),
)
def test_cli_any_arguments(
    world, django_capture_on_commit_callbacks, monkeypatch, subcommand, args, actor
):
    """Any argument list ends in success or a one-line CommandError: no traceback,
    no other exception. A printed value is alone on one line of stdout; a secret is
    only ever printed on stdout, by show-secret or rotate-secret."""
    case("cli")
    UserFactory(username="root", is_superuser=True)
    UserFactory(username="signer", is_staff=False)
    argv = ([] if actor is None else ["--actor", actor]) + [subcommand, *args]
    note(f"argv={argv!r}")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"not a key")))  # FILE -
    out, err = StringIO(), StringIO()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            call_command("trusted_identity", *argv, stdout=out, stderr=err)
    except CommandError as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message.strip(), message
        assert "Traceback" not in message
        assert out.getvalue() == ""
        err.write(message)
        ok = False
    except SystemExit as exc:  # a help request prints the help and exits 0
        assert exc.code == 0 and any(_asks_for_help(word) for word in argv), argv
        return
    else:
        ok = True
    stdout, stderr = out.getvalue(), err.getvalue()
    current = [
        platform_secrets.current_secret_row(p).get_secret()
        for p in Platform.objects.all()
        if p.secrets.filter(retired_at__isnull=True).exists()
    ]
    for secret in current:
        assert secret not in stderr
    if not ok:
        return
    prints_value = subcommand in {
        "add-platform",
        "show-secret",
        "rotate-secret",
        "sign",
        "generate-key",
        "add-public-key",
    }
    if prints_value:
        assert stdout.endswith("\n") and len(stdout.splitlines()) == 1, (argv, stdout)
    if subcommand == "sign" and len(args) == 3 and not any(a.startswith("-") for a in args):
        space_slug, kind, user_id = args
        platform = spaces.get_platform(space_slug, kind)
        secret = platform_secrets.current_secret_row(platform).get_secret()
        assert stdout == signing.sign(secret, user_id) + "\n"
    if subcommand in ("show-secret", "rotate-secret"):
        assert stdout.strip() in current
