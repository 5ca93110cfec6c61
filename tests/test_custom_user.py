"""Every sub-command of the CLI with a custom user model (issue 9, finding 7).

``tests/customuser`` is a user model with e-mail as ``USERNAME_FIELD`` and no
``is_active`` field; ``tests/settings_customuser.py`` points ``AUTH_USER_MODEL`` at it.
A subprocess migrates a temporary SQLite file and runs each sub-command the way
``manage.py`` does (``ManagementUtility``, so exit codes are real), all in one Python
process to keep the suite quick. Main ended every sub-command in a traceback
(``TypeError: User() got unexpected keyword arguments: 'is_active'``).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

DRIVER = r"""
import contextlib, io, json, sys, traceback
import django
django.setup()
from django.core.management import ManagementUtility

results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            ManagementUtility(["manage.py", *argv]).execute()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = -1
    results.append({"argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps(results))
"""

MAKE_USERS = (
    "from django.contrib.auth import get_user_model as g; U = g(); "
    "U.objects.create_user('bob@example.com', 'pw'); "
    "U.objects.create_superuser('root@example.com', 'pw')"
)
SHOW_USERS = (
    "import json; from django.contrib.auth import get_user_model as g; "
    "print(json.dumps({u.email: u.is_staff for u in g().objects.all()}))"
)
TI = "trusted_identity"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    db = tmp_path_factory.mktemp("customuser") / "db.sqlite3"
    steps = [
        ["migrate", "--noinput", "-v0"],
        ["shell", "-c", MAKE_USERS],
        [TI, "generate-key"],
        [TI, "create-space", "acme"],
        [TI, "add-platform", "acme", "ios"],
        [TI, "show-secret", "acme", "ios"],
        [TI, "rotate-secret", "acme", "ios", "--grace", "1h"],
        [TI, "enforce", "acme", "ios", "on", "--force", "--reason", "custom users"],
        [TI, "enforce", "acme", "ios", "off"],
        [TI, "sign", "acme", "ios", "42"],
        [TI, "status"],
        [TI, "status", "acme", "--json"],
        [TI, "rekey"],
        [TI, "grant", "acme", "root@example.com", "--role", "owner"],
        [TI, "grant", "acme", "bob@example.com", "--role", "owner"],
        [TI, "--actor", "bob@example.com", "show-secret", "acme", "ios"],
        [TI, "--actor", "root@example.com", "sign", "acme", "ios", "7"],
        [TI, "revoke", "acme", "bob@example.com"],
        ["shell", "-c", SHOW_USERS],
        # Refused, on one line: bob no longer has a role in acme.
        [TI, "--actor", "bob@example.com", "show-secret", "acme", "ios"],
    ]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_customuser",
        "DATABASE_URL": f"sqlite:///{db}",
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("TRUSTED_IDENTITY_ENCRYPTION_KEYS", None)
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(steps)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_every_sub_command_works_with_a_custom_user_model(results):
    *succeeding, refused = results
    for step in succeeding:
        assert step["code"] == 0, step
        assert "Traceback" not in step["err"], step
    ran = {step["argv"][1] for step in succeeding if step["argv"][0] == TI}
    ran |= {step["argv"][3] for step in succeeding if step["argv"][1] == "--actor"}
    assert ran >= {
        "generate-key",
        "create-space",
        "add-platform",
        "show-secret",
        "rotate-secret",
        "enforce",
        "sign",
        "status",
        "rekey",
        "grant",
        "revoke",
    }
    assert refused["code"] == 1
    assert refused["out"] == ""
    assert len(refused["err"].splitlines()) == 1, refused
    assert "bob@example.com may not" in refused["err"]


def test_values_and_staff_status_with_a_custom_user_model(results):
    by_step = {" ".join(step["argv"]): step for step in results}
    secret = by_step[f"{TI} show-secret acme ios"]["out"]
    assert secret.startswith("tis_ios_") and secret.count("\n") == 1
    assert len(by_step[f"{TI} sign acme ios 42"]["out"].strip()) == 64
    status = json.loads(by_step[f"{TI} status acme --json"]["out"])
    assert [s["slug"] for s in status["spaces"]] == ["acme"]
    assert "now staff" in by_step[f"{TI} grant acme bob@example.com --role owner"]["err"]
    assert "no longer staff" in by_step[f"{TI} revoke acme bob@example.com"]["err"]
    staff = json.loads(results[-2]["out"].splitlines()[-1])
    # The grant made bob staff and his last revocation took it back; root was staff before.
    assert staff["bob@example.com"] is False
    assert staff["root@example.com"] is True
    # The CLI's own actor wrote no row into the user table.
    assert set(staff) == {"bob@example.com", "root@example.com"}
