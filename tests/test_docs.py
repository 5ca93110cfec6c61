"""The README keeps up with the code: every setting, every system check, every error code."""

import re
from datetime import timedelta
from pathlib import Path

from trusted_identity import checks
from trusted_identity.conf import DEFAULTS, SETTINGS, python_literal

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_table():
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)`", README, re.M))
    documented |= {"SECRET_PREFIX", "API_KEY_PREFIX"}  # one row for the two prefixes
    assert set(DEFAULTS) - documented == set()


def test_every_setting_is_in_the_readme_table_with_its_default():
    """The default column says what the settings table declares (two prefixes share a
    row, the cells split on " / ")."""
    documented = {}
    for row in readme_table("Settings"):
        names = re.findall(r"`([A-Z0-9_]+)`", row[0])
        defaults = row[1].split(" / ") if len(names) > 1 else [row[1]]
        documented.update(zip(names, defaults, strict=True))
    for name, setting in SETTINGS.items():
        spans = {_as_declared(span) for span in re.findall(r"`([^`]+)`", documented[name])}
        assert set(setting.documented_default()) <= spans, name


def _as_declared(span: str) -> str:
    """A README code span as the table writes it: ``timedelta(hours=24)`` is days=1."""
    if re.fullmatch(r"timedelta\(\w+=\d+\)", span):
        return python_literal(eval(span, {"timedelta": timedelta}))
    return span


def test_every_system_check_is_in_the_readme_table():
    source = Path(checks.__file__).read_text(encoding="utf-8")
    ids = set(re.findall(r'id="(trusted_identity\.[EW]\d{3})"', source))
    ids |= {setting.check_id for setting in SETTINGS.values()}  # the settings' own checks
    documented = set(re.findall(r"^\| `(trusted_identity\.[EW]\d{3})` \|", README, re.M))
    assert ids and ids == documented


def readme_table(heading: str) -> list[list[str]]:
    start = README.index(f"\n## {heading}\n") if f"\n## {heading}\n" in README else None
    if start is None:
        start = README.index(f"\n### {heading}\n")
    text = README[start + 1 :]
    text = text[: re.search(r"\n#{2,3} ", text).start()]
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]


def test_every_http_error_code_is_in_the_readme_table():
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
    table = {row[1].strip("`"): int(row[0]) for row in readme_table("Error codes")}
    assert codes - set(table) == set()
    assert {"internal_error", "permission_denied", "not_found", "method_not_allowed"} <= codes
    for error in http_errors:
        assert table[error.code] == error.status, error.code


def test_every_signal_is_documented_with_the_arguments_it_is_sent_with(db):
    from datetime import timedelta

    from trusted_identity import signals, testing
    from trusted_identity.services import access, alerts, enforcement, platform_secrets, spaces

    documented = {}
    for name, _when, arguments in readme_table("Signals"):
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


def test_the_readme_testing_example_passes_as_written(django_db_setup, django_db_blocker, settings):
    """The README's TestCase for a site's own tests, run as Django's runner would run it."""
    import unittest
    from io import StringIO

    settings.TRUSTED_IDENTITY = {
        k: v for k, v in settings.TRUSTED_IDENTITY.items() if k != "COUNT_FLUSH_INTERVAL"
    }
    start = README.index("\n## Testing your site\n")
    section = README[start : README.index("\n## ", start + 1)]
    [block] = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    namespace = {"__name__": "readme_testing_example"}
    exec(compile(block, "README.md", "exec"), namespace)
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(namespace["SignInTests"])
    stream = StringIO()
    with django_db_blocker.unblock():
        result = unittest.TextTestRunner(stream=stream).run(suite)
    assert result.testsRun == 2
    assert result.wasSuccessful(), stream.getvalue()
