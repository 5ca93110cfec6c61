"""The command line (CONTRACT section 5): ``manage.py trusted_identity <sub-command>``.

Most tests use ``call_command`` in-process; a few run ``manage.py`` in a subprocess
to check what a script sees: exit codes, one value on one line of stdout, one-line
errors without a traceback.
"""

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.test import TestCase
from django.utils import timezone

from tests.support import verify_user_id
from trusted_identity import signing
from trusted_identity.crypto import KeyRing, generate_key
from trusted_identity.formatting import moment
from trusted_identity.keyring import get_key_ring
from trusted_identity.models import (
    AuditEvent,
    OutcomeCount,
    Platform,
    PlatformSecret,
    Space,
)
from trusted_identity.services import (
    access,
    enforcement,
    lookup,
    platform_secrets,
    retention,
    verification,
)
from trusted_identity.services.figures import window_start

from .factories import OutcomeCountFactory, PlatformFactory
from .settings import TEST_ENCRYPTION_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def run(*args):
    """Run the command in-process; (stdout, stderr) as text.

    On-commit callbacks (cache invalidation) run when the command is done, as they
    would in a real, autocommitting CLI process.
    """
    out, err = StringIO(), StringIO()
    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("trusted_identity", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def value_of(stdout):
    """The single value a command printed: exactly one non-empty line."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    assert stdout.endswith("\n")
    assert lines[0] and lines[0] == lines[0].strip()
    return lines[0]


def fails(*args, match=None):
    """The command fails with a one-line CommandError; its message."""
    with pytest.raises(CommandError) as info:
        run(*args)
    message = str(info.value)
    assert message and "\n" not in message.strip(), message
    if match:
        assert re.search(match, message, re.IGNORECASE), message
    return message


def secret_of(platform):
    return platform_secrets.reveal_secret(platform, access.get_cli_actor())


def verifies(platform, secret, user_id="u"):
    snapshot = lookup.lookup_platform(platform.api_key)
    return verify_user_id(snapshot, user_id, signing.sign(secret, user_id))


def audit_events_for(obj):
    """The object's audit trail (written for every actor, the CLI's own included)."""
    return AuditEvent.objects.filter(object_label=obj._meta.label, object_id=str(obj.pk)).order_by(
        "pk"
    )


# ------------------------------------------------------------------ create-space


def test_create_space(db):
    out, err = run("create-space", "news")
    assert out == ""
    assert "news" in err
    space = Space.objects.get(slug="news")
    assert space.name == "news"
    (entry,) = audit_events_for(space)
    assert entry.action == "create_space"
    assert entry.actor_name == "trusted-identity-cli"


def test_create_space_with_name(db):
    run("create-space", "news", "--name", "The News")
    assert Space.objects.get(slug="news").name == "The News"


def test_create_space_duplicate(space):
    fails("create-space", "acme", match="already exists")
    assert Space.objects.filter(slug="acme").count() == 1


@pytest.mark.parametrize("slug", ["bad slug", "a/b", "ünï", "x" * 65, "acme!"])
def test_create_space_bad_slug(db, slug):
    fails("create-space", slug, match="slug")
    assert not Space.objects.exists()


# ------------------------------------------------------------------ add-platform


def test_add_platform_prints_the_api_key_alone(space):
    out, err = run("add-platform", "acme", "roku")
    api_key = value_of(out)
    platform = Platform.objects.get(space=space, kind="roku")
    assert api_key == platform.api_key
    assert "API key" in err
    assert api_key not in err
    # It works at once, and has a secret to sign with.
    assert lookup.lookup_platform(api_key).kind == "roku"
    assert HEX64.match(verification.sign_for("acme", "roku", "42"))


def test_add_platform_unknown_space(db):
    fails("add-platform", "nope", "ios", match="nope")


def test_add_platform_unknown_kind(space):
    fails("add-platform", "acme", "playstation", match="playstation")
    assert not Platform.objects.exists()


def test_add_platform_duplicate_kind(platform):
    fails("add-platform", "acme", "ios", match="already")
    assert Platform.objects.filter(space=platform.space, kind="ios").count() == 1


# ------------------------------------------------------------------- show-secret


def test_show_secret_prints_the_secret_alone_and_is_audited(platform):
    before = audit_events_for(platform).count()
    out, err = run("show-secret", "acme", "ios")
    secret = value_of(out)
    assert secret.startswith("tis_ios_")
    assert secret not in err
    assert verification.sign_for("acme", "ios", "7") == signing.sign(secret, "7")
    entries = list(audit_events_for(platform))
    assert len(entries) == before + 1
    assert "Revealed" in entries[-1].message
    assert secret not in entries[-1].message


@pytest.mark.parametrize(("space_slug", "kind"), [("acme", "web"), ("nope", "ios"), ("acme", "x")])
def test_show_secret_unknown_platform(platform, space_slug, kind):
    before = AuditEvent.objects.count()
    fails("show-secret", space_slug, kind)
    assert AuditEvent.objects.count() == before


# ----------------------------------------------------------------- rotate-secret


def test_rotate_with_default_grace(platform):
    old = secret_of(platform)
    out, err = run("rotate-secret", "acme", "ios")
    new = value_of(out)
    assert new != old and new.startswith("tis_ios_")
    assert new not in err and old not in err
    assert verifies(platform, new)
    assert verifies(platform, old)
    assert verification.sign_for("acme", "ios", "u") == signing.sign(new, "u")
    assert "Rotated" in audit_events_for(platform).last().message


@pytest.mark.parametrize(
    ("grace", "expected"), [("24h", timedelta(hours=24)), ("30m", timedelta(minutes=30))]
)
def test_rotate_with_grace(platform, grace, expected):
    old = secret_of(platform)
    out, err = run("rotate-secret", "acme", "ios", "--grace", grace)
    new = value_of(out)
    assert "verifies until" in err
    assert verifies(platform, new)
    assert verifies(platform, old)
    retired = PlatformSecret.objects.get(platform=platform, retired_at__isnull=False)
    assert retired.valid_until - retired.retired_at == expected
    assert secret_of(platform) == new


def test_rotate_reports_the_grace_just_given_not_an_older_secrets(platform):
    run("rotate-secret", "acme", "ios", "--grace", "24h")
    _, err = run("rotate-secret", "acme", "ios", "--grace", "1h")
    retired = PlatformSecret.objects.filter(platform=platform, retired_at__isnull=False)
    newest = retired.order_by("-retired_at", "-pk").first()
    oldest = retired.order_by("retired_at", "pk").first()
    assert f"verifies until {moment(newest.valid_until)} (a grace of 1 hour)" in err
    assert f"An older secret still verifies until {moment(oldest.valid_until)}" in err


def test_rotate_with_no_grace_revokes_at_once(platform):
    old = secret_of(platform)
    out, err = run("rotate-secret", "acme", "ios", "--grace", "0")
    new = value_of(out)
    assert "no longer verifies" in err
    assert verifies(platform, new)
    assert not verifies(platform, old)


@pytest.mark.parametrize("grace", ["5x", "-1", "1y", "", "24 h", "91d", "5", "24"])
def test_rotate_bad_duration(platform, grace):
    old = secret_of(platform)
    fails("rotate-secret", "acme", "ios", f"--grace={grace}", match="duration|grace")
    assert secret_of(platform) == old
    assert PlatformSecret.objects.filter(platform=platform).count() == 1


def test_rotate_unknown_platform(platform):
    fails("rotate-secret", "acme", "tvos", match="tvos")


# ------------------------------------------------------------------------ enforce


def _record(platform, valid, invalid=0, missing=0):
    for outcome, count in (("valid", valid), ("invalid", invalid), ("missing", missing)):
        if count:
            OutcomeCountFactory(platform=platform, outcome=outcome, count=count)


def test_enforce_on_and_off(platform):
    _record(platform, valid=100)
    out, err = run("enforce", "acme", "ios", "on")
    assert out == ""
    assert "on" in err
    platform.refresh_from_db()
    assert platform.enforced
    # It takes effect for session starts at once.
    snapshot = lookup.lookup_platform(platform.api_key)
    assert snapshot.enforced
    run("enforce", "acme", "ios", "off")
    platform.refresh_from_db()
    assert not platform.enforced
    assert not lookup.lookup_platform(platform.api_key).enforced


def test_enforce_on_is_refused_below_readiness(platform):
    _record(platform, valid=90, invalid=6, missing=4)
    message = fails("enforce", "acme", "ios", "on")
    assert "90.0%" in message
    assert "100 distinct identified users" in message
    assert "99.0%" in message
    assert "--force" in message
    platform.refresh_from_db()
    assert not platform.enforced


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_enforce_force_without_a_reason_is_refused_as_in_the_admin(platform, reason):
    _record(platform, valid=1, invalid=9)
    args = ["enforce", "acme", "ios", "on", "--force"]
    if reason is not None:
        args += ["--reason", reason]
    fails(*args, match=r"--force needs --reason")
    platform.refresh_from_db()
    assert not platform.enforced
    assert not audit_events_for(platform).filter(message__icontains="enforcement").exists()


def test_signature_form_force_without_a_reason_is_refused(platform):
    fails("signature-form", "acme", "ios", "token", "--force", match=r"--force needs --reason")
    platform.refresh_from_db()
    assert platform.signature_form == "plain"


def test_enforce_force_with_reason_records_it(platform):
    _record(platform, valid=10, invalid=90)
    run("enforce", "acme", "ios", "on", "--force", "--reason", "beta users only")
    platform.refresh_from_db()
    assert platform.enforced
    message = audit_events_for(platform).last().message
    assert "override reason: beta users only" in message
    assert "10.0%" in message


def test_enforce_records_the_reason_verbatim_with_the_clis_name_and_door(platform):
    reason = 'hotfix for [OPS-12]; "now"'
    run("enforce", "acme", "ios", "on", "--force", "--reason", reason)
    change = enforcement.last_enforcement_changes([platform.pk])[platform.pk]
    assert (change.enabled, change.override_reason, change.who) == (
        True,
        reason,
        "trusted-identity-cli",
    )
    assert (change.door, change.user) == ("cli", None)
    assert change.channel.startswith("command line")


def test_the_cli_writes_no_row_into_the_user_table(platform):
    users = get_user_model().objects.count()
    run("show-secret", "acme", "ios")
    run("rotate-secret", "acme", "ios")
    run("enforce", "acme", "ios", "on", "--force", "--reason", "r")
    run("signature-form", "acme", "ios", "either")
    assert get_user_model().objects.count() == users
    actions = list(audit_events_for(platform).values_list("actor_id", "actor_name", "door"))
    assert actions == [(None, "trusted-identity-cli", "cli")] * 4


def test_enforce_bad_state(platform):
    fails("enforce", "acme", "ios", "maybe", match="maybe|choice")
    platform.refresh_from_db()
    assert not platform.enforced


# --------------------------------------------------------------------------- sign


@pytest.mark.parametrize("user_id", ["42", "Zoë", "a user with spaces", "-1"])
def test_sign(platform, user_id):
    out, err = run("sign", "acme", "ios", "--", user_id)
    signed = value_of(out)
    assert HEX64.match(signed)
    assert signed == signing.sign(secret_of(platform), user_id)
    assert err == ""


@pytest.mark.parametrize("token", [[], ["--token"]])
@pytest.mark.parametrize(
    ("user_id", "said"), [("", "must not be empty"), ("x" * 1025, "longer than 1024")]
)
def test_sign_refuses_an_id_session_start_refuses(platform, user_id, said, token):
    """No signature for an id no start can send: the same rule as session start's."""
    before = audit_events_for(platform).count()
    fails("sign", "acme", "ios", *token, "--", user_id, match=said)
    assert audit_events_for(platform).count() == before  # nothing signed, nothing audited


def test_sign_unknown_platform(platform):
    fails("sign", "acme", "android", "42", match="android")


# ------------------------------------------------------------------------- status


def test_status_table(platform, space):
    PlatformFactory(space=space, kind="web", enforced=True)
    _record(platform, valid=3, invalid=1)
    OutcomeCountFactory(platform=platform, outcome="visitor", count=5)
    out, err = run("status")
    lines = out.splitlines()
    assert "space/platform" in lines[0] and "valid-users" in lines[0] and "valid-starts" in lines[0]
    assert f"Since {moment(window_start())}: users are distinct identified users" in err
    ios = next(line for line in lines if line.startswith("acme/ios"))
    assert ios.split() == [
        "acme/ios", "off", "3", "1", "0", "5", "0", "4", "75.0%", "75.0%", "too-few-users-to-tell",
        "secret", "token", "0.0%", "·", "public-key", "0.0%",
    ]  # fmt: skip
    web = next(line for line in lines if line.startswith("acme/web"))
    assert web.split() == [
        "acme/web", "on", "0", "0", "0", "0", "0", "0", "—", "—", "too-few-users-to-tell",
        "secret", "—",
    ]  # fmt: skip
    assert "key-source" in lines[0] and lines[0].endswith("signed-with")


def test_plain_status_reads_no_reasons_forms_or_versions(platform, monkeypatch):
    """It prints none of them, and at thousands of platforms their queries are a third
    of status's time (docs/performance.md); ``--json`` still carries them."""
    from trusted_identity.services import diagnostics

    _record(platform, valid=3, invalid=1)
    read = diagnostics.status_details
    calls = []
    monkeypatch.setattr(
        diagnostics, "status_details", lambda *a, **k: calls.append(a) or read(*a, **k)
    )
    out, _ = run("status")
    assert next(line for line in out.splitlines() if line.startswith("acme/ios")).split()[2] == "3"
    assert calls == []
    (acme,) = json.loads(value_of(run("status", "--json")[0]))["spaces"]
    assert acme["platforms"][0]["reasons"] and len(calls) == 1


def test_status_without_spaces(db):
    out, err = run("status")
    assert out == ""
    assert "create-space" in err


def test_status_json_matches_recorded_outcomes(client, platform, space):
    PlatformFactory(space=space, kind="web")
    signed = signing.sign(secret_of(platform), "u")
    sessions = "/trusted-identity/v1/sessions"
    bodies = [
        {"userId": "u", "signed": signed},
        {"userId": "u", "signed": signed},
        {"userId": "u", "signed": "0" * 64},
        {"userId": "u"},
        {},
    ]
    for body in bodies:
        response = client.post(
            sessions, json.dumps(body), "application/json", HTTP_X_API_KEY=platform.api_key
        )
        assert response.status_code == 201
    OutcomeCountFactory(platform=platform, outcome="rejected", count=2)

    out, _ = run("status", "--json")
    data = json.loads(value_of(out))
    (acme,) = data["spaces"]
    assert acme["slug"] == "acme"
    by_kind = {p["kind"]: p for p in acme["platforms"]}
    assert set(by_kind) == {"ios", "web"}
    ios = by_kind["ios"]
    assert ios["enforced"] is False
    assert (ios["valid"], ios["invalid"], ios["missing"], ios["visitor"], ios["rejected"]) == (
        2,
        1,
        1,
        1,
        2,
    )
    assert ios["valid_share"] == pytest.approx(2 / 6, abs=1e-6)
    assert by_kind["web"]["valid_share"] is None
    assert by_kind["web"]["valid"] == 0


def test_status_json_one_space(platform):
    other = PlatformFactory(kind="ios")
    data = json.loads(value_of(run("status", "acme", "--json")[0]))
    assert [s["slug"] for s in data["spaces"]] == ["acme"]
    data = json.loads(value_of(run("status", "--json")[0]))
    assert {s["slug"] for s in data["spaces"]} == {"acme", other.space.slug}


def test_status_json_excludes_counts_outside_the_window(platform):
    old_hour = timezone.now() - timedelta(days=8)
    OutcomeCountFactory(platform=platform, outcome="valid", count=50, hour=old_hour)
    OutcomeCountFactory(platform=platform, outcome="valid", count=4)
    (acme,) = json.loads(run("status", "--json")[0])["spaces"]
    assert acme["platforms"][0]["valid"] == 4


def test_status_unknown_space(platform):
    fails("status", "nope", match="nope")
    fails("status", "nope", "--json", match="nope")


# -------------------------------------------------------------------------- rekey


def test_rekey_moves_every_row_to_the_first_key(settings, space):
    ios = PlatformFactory(space=space, kind="ios")
    web = PlatformFactory(space=space, kind="web")
    platform_secrets.rotate_secret(ios, access.get_cli_actor())  # a previous secret in its grace
    secrets_before = {p.pk: secret_of(p) for p in (ios, web)}
    old_id = get_key_ring().primary_key_id

    new_key = generate_key()
    settings.TRUSTED_IDENTITY = {
        **settings.TRUSTED_IDENTITY,
        "ENCRYPTION_KEYS": f"{new_key},{TEST_ENCRYPTION_KEY}",
    }
    new_id = get_key_ring().primary_key_id
    assert new_id != old_id

    out, err = run("rekey")
    assert out == ""
    assert "Re-encrypted 3 of 3" in err
    ring = get_key_ring()
    tokens = PlatformSecret.objects.values_list("ciphertext", flat=True)
    assert len(tokens) == 3
    assert {ring.key_id_of(token) for token in tokens} == {new_id}

    # The old key can go: everything still decrypts, to the same secrets.
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "ENCRYPTION_KEYS": new_key}
    assert {p.pk: secret_of(p) for p in (ios, web)} == secrets_before
    assert verification.sign_for("acme", "ios", "u") == signing.sign(secrets_before[ios.pk], "u")

    # Idempotent: a second run has nothing left to do.
    _, err = run("rekey")
    assert "Re-encrypted 0 of 3" in err
    assert "3 already used it" in err


def test_rekey_reports_rows_it_cannot_decrypt(settings, platform):
    # Drop the key the row was encrypted with: rekey must report it, not change it.
    before = PlatformSecret.objects.get(platform=platform).ciphertext
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "ENCRYPTION_KEYS": generate_key()}
    fails("rekey", match="could not be decrypted")
    assert PlatformSecret.objects.get(platform=platform).ciphertext == before


# ------------------------------------------------------------------- generate-key


def test_generate_key(db):
    out, err = run("generate-key")
    key = value_of(out)
    assert len(key) == 44
    assert KeyRing([key]).key_ids
    assert key not in err
    assert value_of(run("generate-key")[0]) != key


# ------------------------------------------------------------------ system checks


def run_checked(*args):
    """As ``manage.py`` runs it: the system checks first (call_command skips them)."""
    out, err = StringIO(), StringIO()
    call_command("trusted_identity", *args, skip_checks=False, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_generate_key_needs_no_configured_site(settings):
    """No key, DEBUG off (check E001) and a broken setting: generate-key still works."""
    settings.DEBUG = False
    settings.TRUSTED_IDENTITY = {
        **settings.TRUSTED_IDENTITY,
        "ENCRYPTION_KEYS": "",
        "DEFAULT_GRACE": "24h",
    }
    out, _ = run_checked("generate-key")
    assert KeyRing([value_of(out)]).key_ids


@pytest.mark.parametrize("args", [("status",), ("create-space", "refused")])
def test_a_sub_command_refuses_to_run_with_a_broken_setting_and_says_why(db, settings, args):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "DEFAULT_GRACE": "24h"}
    with pytest.raises(SystemCheckError, match=r"TRUSTED_IDENTITY\['DEFAULT_GRACE'\] must be"):
        run_checked(*args)
    assert not Space.objects.filter(slug="refused").exists()


def test_the_checks_pass_on_a_configured_site(db):
    out, _ = run_checked("status", "--json")
    assert json.loads(out)["spaces"] == []


def test_skip_checks_is_honoured(db, settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "DEFAULT_GRACE": "24h"}
    out, err = StringIO(), StringIO()
    call_command("trusted_identity", "--skip-checks", "status", stdout=out, stderr=err)
    assert "No spaces yet" in err.getvalue()


# ------------------------------------------------- subprocess: what scripts see


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    """A migrated SQLite file for manage.py subprocesses (outside the test database)."""
    path = tmp_path_factory.mktemp("cli") / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{path}",
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("TRUSTED_IDENTITY_ENCRYPTION_KEYS", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return env


def manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", "trusted_identity", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.end_to_end
def test_subprocess_values_are_one_line_on_stdout(cli_env):
    created = manage(cli_env, "create-space", "sub")
    assert created.returncode == 0, created.stderr
    assert created.stdout == ""

    added = manage(cli_env, "add-platform", "sub", "web")
    assert added.returncode == 0, added.stderr
    assert re.fullmatch(r"tik_[A-Za-z0-9_-]+\n", added.stdout)
    assert added.stderr.strip() and added.stdout.strip() not in added.stderr

    shown = manage(cli_env, "show-secret", "sub", "web")
    assert shown.returncode == 0, shown.stderr
    assert re.fullmatch(r"tis_web_[A-Za-z0-9]+\n", shown.stdout)

    signed = manage(cli_env, "sign", "sub", "web", "42")
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout == signing.sign(shown.stdout.strip(), "42") + "\n"


@pytest.mark.end_to_end
@pytest.mark.parametrize(
    "args",
    [
        ("add-platform", "no-such-space", "ios"),
        ("rotate-secret", "no-such-space", "ios", "--grace", "5x"),
        ("enforce", "no-such-space", "ios", "maybe"),
        ("--actor", "ghost", "create-space", "ghostly"),
    ],
    ids=["unknown-space", "bad-grace", "usage-error", "unknown-actor"],
)
def test_subprocess_errors_are_one_line(cli_env, args):
    done = manage(cli_env, *args)
    assert done.returncode != 0
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip()


@pytest.mark.end_to_end
def test_subprocess_bare_number_grace_is_an_error(cli_env):
    """``--grace 5`` used to mean 5 seconds; now it is refused, on one line, and nothing
    changes."""
    assert manage(cli_env, "create-space", "dur").returncode == 0
    assert manage(cli_env, "add-platform", "dur", "ios").returncode == 0
    before = manage(cli_env, "show-secret", "dur", "ios").stdout
    done = manage(cli_env, "rotate-secret", "dur", "ios", "--grace", "5")
    assert done.returncode != 0
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "unit" in done.stderr and "Traceback" not in done.stderr
    assert manage(cli_env, "show-secret", "dur", "ios").stdout == before


@pytest.mark.end_to_end
def test_subprocess_a_broken_setting_stops_every_sub_command_but_generate_key(cli_env):
    broken = {**cli_env, "TRUSTED_IDENTITY_PROXY_COUNT": "0"}
    refused = manage(broken, "status")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "SystemCheckError" in refused.stderr and "Traceback" not in refused.stderr
    assert "TRUSTED_IDENTITY['PROXY_COUNT'] must be a whole number of at least 1" in (
        refused.stderr
    )
    key = manage(broken, "generate-key")
    assert key.returncode == 0, key.stderr
    assert KeyRing([value_of(key.stdout)]).key_ids
    skipped = manage(broken, "--skip-checks", "status", "--json")
    assert skipped.returncode == 0, skipped.stderr
    assert "spaces" in json.loads(skipped.stdout)


def test_prune_folds_old_counts_and_says_what_it_did(platform):
    old = (timezone.now() - timedelta(days=30)).replace(minute=0, second=0, microsecond=0)
    OutcomeCountFactory(platform=platform, outcome="valid", count=8, hour=old)
    OutcomeCountFactory(platform=platform, outcome="valid", count=2)
    out, err = run("prune", "--batch-size", "1")
    assert out == ""
    assert "Folded 1 hourly count rows into daily ones" in err
    assert OutcomeCount.objects.filter(platform=platform).count() == 1
    out, _ = run("status", "acme", "--json", "--since", "60d")
    (ios,) = json.loads(out)["spaces"][0]["platforms"]
    assert ios["valid"] == 10  # the folded day and the recent hour
    out, _ = run("status", "acme", "--json")
    assert json.loads(out)["spaces"][0]["platforms"][0]["valid"] == 2  # the readiness window


def test_prune_says_what_it_vacuumed_and_no_vacuum_leaves_it_to_autovacuum(db, monkeypatch):
    calls = []

    def fake_prune(batch_size, *, vacuum):
        calls.append(vacuum)
        return retention.PruneReport(vacuumed=["trusted_identity_outcomecount"] if vacuum else [])

    monkeypatch.setattr(retention, "prune", fake_prune)
    _, err = run("prune")
    assert "Vacuumed trusted_identity_outcomecount" in err
    _, err = run("prune", "--no-vacuum")
    assert "Vacuumed" not in err
    assert calls == [True, False]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("prune", "--batch-size", "0"), "--batch-size must be at least 1"),
        (("status", "--since", "500d"), "longer than the 400-day maximum"),
        (("status", "--since", "5"), "a number needs a unit"),
    ],
)
def test_prune_and_status_refuse_bad_numbers(db, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


@pytest.mark.end_to_end
def test_audit_lines_go_to_the_audit_log_not_before_every_answer(cli_env, tmp_path):
    """The example project's logging: the CLI's answer alone on the terminal; the audit
    line in the file AUDIT_LOG names (and the AuditEvent row, always)."""
    quiet = manage(cli_env, "create-space", "quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "trusted_identity.audit" not in quiet.stderr
    audit_log = tmp_path / "audit.log"
    logged = manage({**cli_env, "AUDIT_LOG": str(audit_log)}, "create-space", "logged")
    assert logged.returncode == 0, logged.stderr
    assert "trusted_identity.audit" not in logged.stderr
    assert "Created the space" in audit_log.read_text()
