"""The documentation keeps up with the code: every setting, system check, error code,
signal and sub-command, and the testing example as written.

The reference tables of docs/settings.md, docs/http.md and docs/cli.md are generated
from the code when the docs are built (``docs/_ext/ti_reference.py``); the prose that
goes with them is on the pages. These tests run the same row builders on the pages'
prose, so a page that names something the code lacks, or misses something it has,
fails here as well as in ``make docs``.
"""

import importlib.util
import re
from pathlib import Path

import pytest

from trusted_identity import checks
from trusted_identity.conf import SETTINGS

from .docs_snippets import DOCS, snippet, table

ROOT = Path(__file__).resolve().parent.parent


def _load_reference():
    spec = importlib.util.spec_from_file_location("ti_reference", DOCS / "_ext" / "ti_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _load_reference()


def directive_body(page: str, name: str) -> list[str]:
    """The lines inside a page's ```{name} block."""
    text = (DOCS / page).read_text(encoding="utf-8")
    match = re.search(rf"^```\{{{name}\}}\n(.*?)^```$", text, re.S | re.M)
    assert match, f"{page} has no {{{name}}} block"
    return match.group(1).splitlines()


def test_the_settings_reference_has_every_setting_with_its_default():
    notes = reference.parse_entries(
        directive_body("settings.md", "settings-reference"), reference.SETTING_KEY
    )
    rows = reference.settings_rows(notes)
    assert [row[0] for row in rows] == [f"`{name}`" for name in SETTINGS]
    for (_, default, takes, what), setting in zip(rows, SETTINGS.values(), strict=True):
        for span in setting.documented_default():
            assert f"`{span}`" in default, setting.name
        assert setting.kind.must_be.replace("<", "\\<") in takes
        assert what.startswith(setting.doc.replace("<", "\\<").rstrip(".")), setting.name
    assert "`trusted_identity.E004`" in rows[list(SETTINGS).index("RATE_LIMIT")][2]
    assert "`TRUSTED_IDENTITY_ENCRYPTION_KEYS`" in rows[0][2]  # its environment variable
    # The notes reach their rows.
    assert "IPv4-mapped" in rows[list(SETTINGS).index("IPV6_RATE_LIMIT_PREFIX")][3]


def test_the_reference_refuses_prose_for_what_the_code_lacks():
    with pytest.raises(reference.ReferenceError, match="SIGNING_SAPCE"):
        reference.settings_rows({"SIGNING_SAPCE": "a typo"})
    checks_text = {check_id: "x" for check_id in reference.registered_checks()}
    with pytest.raises(reference.ReferenceError, match="does not describe"):
        reference.check_rows({k: v for k, v in checks_text.items() if k != "trusted_identity.E001"})
    with pytest.raises(reference.ReferenceError, match="does not have"):
        reference.check_rows({**checks_text, "trusted_identity.E999": "x"})
    with pytest.raises(reference.ReferenceError, match="not an entry"):
        reference.parse_entries(["  a continuation before any entry"], reference.CODE_KEY)


def test_every_system_check_is_in_the_reference_with_its_level():
    source = Path(checks.__file__).read_text(encoding="utf-8")
    ids = set(re.findall(r'id="(trusted_identity\.[EW]\d{3})"', source))
    ids |= {setting.check_id for setting in SETTINGS.values()}  # the settings' own checks
    text = reference.parse_entries(
        directive_body("settings.md", "system-checks"), reference.CHECK_KEY
    )
    rows = {row[0].strip("`"): row for row in reference.check_rows(text)}
    assert ids and set(rows) == ids
    assert rows["trusted_identity.E001"][1] == "error"
    assert rows["trusted_identity.W002"][1:3] == ["warning", "`check --deploy`"]
    assert rows["trusted_identity.W010"][2] == "`check --database` and `migrate`"
    assert rows["trusted_identity.E008"][2] == "every `check`"


def test_every_http_error_code_is_in_the_reference_with_its_status():
    from trusted_identity import exceptions, views

    source = Path(views.__file__).read_text(encoding="utf-8")
    codes = set(re.findall(r'error_response\(\s*"(\w+)"', source))
    http_errors = [
        exceptions.InvalidRequest,
        exceptions.InvalidApiKey,
        exceptions.NotAuthenticated,
        exceptions.SignatureRequired,
        exceptions.SignatureInvalid,
        exceptions.PlatformNotFound,
        exceptions.RateLimited,
        exceptions.ServiceUnavailable,
        exceptions.PermissionDenied,
    ]
    codes |= {error.code for error in http_errors}
    described = reference.parse_entries(
        directive_body("http.md", "error-codes"), reference.CODE_KEY
    )
    table_ = {row[1].strip("`"): int(row[0]) for row in reference.error_rows(described)}
    assert codes - set(table_) == set()
    assert {"internal_error", "permission_denied", "not_found", "method_not_allowed"} <= codes
    for error in http_errors:
        assert table_[error.code] == error.status, error.code
    assert table_["method_not_allowed"] == 405 and table_["internal_error"] == 500


def test_every_subcommand_has_its_help_in_the_cli_reference():
    _, subparsers = reference.cli_parsers()
    [(name, description, command), *rest] = reference.cli_help()
    assert "Trusted Identity" in description
    assert name == "" and "--actor" in command
    assert [entry[0] for entry in rest] == list(subparsers)
    for sub, _summary, text in rest:
        assert text.startswith(f"usage: manage.py trusted_identity {sub}"), sub
    markdown = reference.cli_markdown()
    for sub in subparsers:
        assert f"({sub})=\n### `{sub}`" in markdown
    assert "--batch-size" in dict((n, t) for n, _, t in rest)["prune"]


def test_the_cli_page_names_only_real_subcommands():
    _, subparsers = reference.cli_parsers()
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    named = set(re.findall(r"\*\*`([a-z-]+)`\*\*", text))
    assert named and named <= set(subparsers)


def test_every_signal_is_documented_with_the_arguments_it_is_sent_with(db):
    from datetime import timedelta

    from trusted_identity import signals, testing
    from trusted_identity.services import access, alerts, enforcement, platform_secrets, spaces

    documented = {}
    for name, _when, arguments in table(DOCS / "adopting.md", "Signals"):
        without_notes = re.sub(r"\([^)]*\)", "", arguments)
        documented[name.strip("`")] = set(re.findall(r"`(\w+)`", without_notes))
    sent = {}

    def remember(signal_name):
        def receiver(signal, sender, **kwargs):
            sent[signal_name] = set(kwargs)

        return receiver

    names = [n for n in dir(signals) if isinstance(getattr(signals, n), signals.Signal)]
    assert set(names) == set(documented)
    receivers = {name: remember(name) for name in names}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver)
    try:
        actor = access.get_cli_actor()
        space = spaces.create_space("docs")
        platform = spaces.add_platform(space, "web")
        platform_secrets.reveal_secret(platform, actor)
        platform_secrets.rotate_secret(platform, actor, timedelta(hours=1))
        platform_secrets.revoke_previous(platform, actor)
        enforcement.set_enforcement(platform, True, actor, force=True, reason="docs")
        alerts.raise_alert(platform, alerts.REJECTIONS, "docs", "A subject", "A message")
        testing.flush()  # alerts are delivered off the counting path: wait for it
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver)
    assert sent == documented


def test_the_testing_example_passes_as_written(django_db_setup, django_db_blocker, settings):
    """docs/testing.md's TestCase for a site's own tests, run as Django's runner would."""
    import unittest
    from io import StringIO

    settings.TRUSTED_IDENTITY = {
        k: v for k, v in settings.TRUSTED_IDENTITY.items() if k != "COUNT_FLUSH_INTERVAL"
    }
    namespace = {"__name__": "docs_testing_example"}
    exec(compile(snippet("testing-example"), "docs/testing.md", "exec"), namespace)
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(namespace["SignInTests"])
    stream = StringIO()
    with django_db_blocker.unblock():
        result = unittest.TextTestRunner(stream=stream).run(suite)
    assert result.testsRun == 2
    assert result.wasSuccessful(), stream.getvalue()


def test_every_testing_helper_is_in_the_table():
    from trusted_identity import testing

    rows = table(DOCS / "testing.md", "Testing your site")
    documented = {name for row in rows for name in re.findall(r"`(\w+)\(", row[0])}
    assert set(testing.__all__) - {"TEST_SECRET"} == documented
