"""The browser client's logic (``client.js``) under Node's test runner with a scripted
fetch: retries, refreshes, errors. The same module runs in Chromium against a live
server in ``tests/test_browser_client.py``.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import trusted_identity

pytestmark = pytest.mark.one_version  # client.js under Node alone

STATIC = Path(trusted_identity.__file__).resolve().parent / "static" / "trusted_identity"
CLIENT = STATIC / "client.js"
TESTS = Path(__file__).resolve().parent / "node" / "client_test.mjs"
NODE = shutil.which("node")


def test_the_client_ships_with_its_declarations():
    source = CLIENT.read_text(encoding="utf-8")
    declarations = (STATIC / "client.d.ts").read_text(encoding="utf-8")
    exported = set(re.findall(r"^export (?:async )?(?:function|class|const) (\w+)", source, re.M))
    declared = set(
        re.findall(r"^export declare (?:function|class|const) (\w+)", declarations, re.M)
    )
    assert (
        exported
        == declared
        == {
            "SDK_VERSION",
            "TrustedIdentityError",
            "startSession",
            "readConfig",
            "fetchSignature",
        }
    )


def test_the_client_version_is_the_package_version():
    source = CLIENT.read_text(encoding="utf-8")
    (version,) = re.findall(r'^export const SDK_VERSION = "([^"]+)";', source, re.M)
    assert version == trusted_identity.__version__
    assert len(f"web/{version}") <= 32  # an X-Sdk-Version the server counts


def test_the_client_logic_under_node():
    if NODE is None:
        if os.environ.get("CI"):
            pytest.fail("node is missing; CI must run the client's tests")
        pytest.skip("node is not installed")
    done = subprocess.run(
        [NODE, "--test", "--test-reporter=tap", str(TESTS)],
        env={**os.environ, "TRUSTED_IDENTITY_CLIENT": CLIENT.as_uri()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"^# pass (\d+)$", done.stdout, re.M).group(1) == str(
        len(re.findall(r"^test\(", TESTS.read_text(encoding="utf-8"), re.M))
    )
    assert "# fail 0" in done.stdout
