"""docs/adopting.md (and the README's five-minute copy of it), followed as pasted by a
new adopter.

The built wheel goes into a fresh virtualenv; ``django-admin startproject`` makes a
site in a temporary folder; the page's ``settings.py`` and ``urls.py`` blocks, read
from the page itself, are pasted in; its shell block runs as is
(``generate-key`` before any key exists, ``migrate``, ``create-space``,
``add-platform``, ``show-secret``, ``sign``); then ``runserver`` answers a session
start with the printed API key and signature. If the page is wrong, this fails (and
tests/test_docs_snippets.py holds the README's copies to the page's blocks).

Offline: the virtualenv has no pip and no index; it sees this environment's
packages (Django, cryptography) through a ``.pth`` file, and the wheel is unpacked
into its own site-packages, ahead of them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from trusted_identity import signing

from .docs_snippets import snippet
from .isolation import free_port
from .stuck import abort_for_stacks, interruptible

# With the packaging tests on one pytest-xdist worker: one build of the wheel per run.
pytestmark = [
    pytest.mark.adoption,
    pytest.mark.xdist_group("dist"),
    pytest.mark.any_database,
    pytest.mark.end_to_end,
]


def adoption_blocks() -> dict[str, str]:
    """The blocks an adopter pastes, by their snippet names in docs/adopting.md."""
    return {
        "settings": snippet("adopt-settings"),
        "urls": snippet("adopt-urls"),
        "commands": snippet("adopt-commands"),
    }


def test_the_adoption_blocks_are_found():
    blocks = adoption_blocks()
    assert blocks["settings"].startswith("# settings.py") and "import os" in blocks["settings"]
    assert blocks["urls"].startswith("# urls.py")
    assert "from django.urls import include, path" in blocks["urls"]
    commands = blocks["commands"].splitlines()
    assert "generate-key" in commands[0], "the key comes before anything needs one"
    assert [c for c in commands if "migrate" in c]


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """An adopter's shell: this venv first on PATH, none of the suite's settings."""
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    env.update(extra)
    return env


def make_venv(path: Path, wheel: Path) -> Path:
    """A virtualenv holding the wheel, seeing this environment's dependencies."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with zipfile.ZipFile(wheel) as archive:  # a pure-Python wheel: installing is unpacking
        archive.extractall(purelib)
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    ours.update(site.getsitepackages())
    # A path line adds the folder, without running that folder's own .pth files: an
    # editable install of this repository there stays invisible.
    (Path(purelib) / "zz_outer_environment.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def post(url: str, api_key: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Api-Key": api_key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_a_new_startproject_site_works_as_the_docs_say(built_dist, tmp_path):
    started = time.monotonic()
    blocks = adoption_blocks()
    python = make_venv(tmp_path / "venv", built_dist["wheel"])
    env = clean_env(tmp_path / "venv")

    def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("cwd", tmp_path)  # not this repository: `python -c` imports from "."
        kwargs.setdefault("env", env)
        return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)

    where = run(
        str(python),
        "-c",
        "import trusted_identity, django; print(trusted_identity.__file__, django.VERSION[0])",
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout  # the wheel's copy

    site_dir = tmp_path / "sites" / "mysite"  # not in the cwd: "mysite" must not import
    site_dir.mkdir(parents=True)
    # `django-admin startproject`: Django lives outside this venv, so its script does
    # too; `python -m django` is the same program.
    created = run(str(python), "-m", "django", "startproject", "mysite", str(site_dir))
    assert created.returncode == 0, created.stderr
    settings_py = site_dir / "mysite" / "settings.py"
    settings_py.write_text(settings_py.read_text() + "\n\n" + blocks["settings"])
    (site_dir / "mysite" / "urls.py").write_text(blocks["urls"])

    # Before any key: the checks pass with the DEBUG development key, and warn.
    checked = run(str(python), "manage.py", "check", cwd=site_dir)
    assert checked.returncode == 0, checked.stderr
    assert "trusted_identity.W001" in checked.stderr + checked.stdout

    # The page's commands as one shell script; the key it exported, for the server.
    script = (
        "set -euo pipefail\n" + blocks["commands"] + '\necho "$TRUSTED_IDENTITY_ENCRYPTION_KEYS"\n'
    )
    ran = run("bash", "-c", script, cwd=site_dir)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # migrate talks on stdout; the app's commands print their value alone on a line.
    api_key, secret, signature, key = ran.stdout.splitlines()[-4:]
    assert api_key.startswith("tik_")
    assert secret.startswith("tis_web_")
    assert signature == signing.sign(secret, "42")
    assert "KeyError" not in ran.stderr and "NameError" not in ran.stderr

    port = free_port()
    with interruptible():  # stopped by Ctrl-C below, however this suite was started
        server = subprocess.Popen(
            [str(python), "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=site_dir,
            # Faulthandler: a server that won't stop is aborted for its stacks.
            env={**env, "TRUSTED_IDENTITY_ENCRYPTION_KEYS": key, "PYTHONFAULTHANDLER": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}/trusted-identity/v1/sessions"
    try:
        for _ in range(150):
            try:
                status, body = post(url, api_key, {"userId": "42", "signed": signature})
                break
            except (ConnectionError, urllib.error.URLError):
                if server.poll() is not None:
                    pytest.fail("runserver stopped: " + server.stdout.read())
                time.sleep(0.1)
        else:
            pytest.fail("runserver did not answer")
        assert status == 201, body
        assert body["trusted"] is True and body["signature"] == "valid"
        assert (body["space"], body["platform"], body["userId"]) == ("my-space", "web", "42")
        assert post(url, api_key, {})[1]["signature"] == "none"
        status, body = post(url, api_key, {"userId": "42", "signed": "0" * 64})
        assert (status, body["signature"]) == (201, "invalid")
    finally:
        server.send_signal(signal.SIGINT)  # as Ctrl-C: the last buffered counts are written
        try:
            server.communicate(timeout=60)  # its output read to the end, the pipe closed
        except subprocess.TimeoutExpired:  # why, in the failure: its masks and its stacks
            masks = abort_for_stacks(server)
            output = server.communicate()[0]
            raise AssertionError(
                f"runserver did not stop on SIGINT within 60 s ({masks}):\n{output[-6000:]}"
            ) from None

    # The counts reached the site's database (written by the server's process).
    status = run(
        str(python),
        "manage.py",
        "trusted_identity",
        "status",
        "--json",
        cwd=site_dir,
        env={**env, "TRUSTED_IDENTITY_ENCRYPTION_KEYS": key},
    )
    assert status.returncode == 0, status.stderr
    [platform] = json.loads(status.stdout)["spaces"][0]["platforms"]
    assert (platform["valid"], platform["invalid"], platform["visitor"]) == (1, 1, 1)
    assert time.monotonic() - started < 60
    shutil.rmtree(tmp_path / "venv", ignore_errors=True)
