"""What the package index gets: the wheel's and the sdist's files, metadata and README."""

import importlib.util
import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from trusted_identity import __version__

from .packaging import skip_or_fail

# With the adoption test on one pytest-xdist worker: one build of the wheel per run.
# The package is built once, on the main interpreter, and its files are what they are.
pytestmark = [pytest.mark.xdist_group("dist"), pytest.mark.one_version]

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CHANGELOG = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def wheel_names(built_dist):
    with zipfile.ZipFile(built_dist["wheel"]) as wheel:
        return set(wheel.namelist())


def sdist_names(built_dist):
    with tarfile.open(built_dist["sdist"]) as sdist:
        return {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}


def metadata(built_dist):
    with zipfile.ZipFile(built_dist["wheel"]) as wheel:
        [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(wheel.read(name).decode())


def test_the_wheel_holds_the_app_and_nothing_else(built_dist):
    names = wheel_names(built_dist)
    dist_info = f"django_trusted_identity-{__version__}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    for needed in [
        "trusted_identity/__init__.py",
        "trusted_identity/py.typed",
        "trusted_identity/testing.py",
        "trusted_identity/checks.py",
        "trusted_identity/migrations/__init__.py",
        "trusted_identity/migrations/0001_initial.py",
        "trusted_identity/management/commands/trusted_identity.py",
        "trusted_identity/templates/trusted_identity/admin/space_settings.html",
        "trusted_identity/static/trusted_identity/admin.css",
        "trusted_identity/static/trusted_identity/admin.js",
    ]:
        assert needed in names
    # Every template, static file and migration of the source tree.
    app = ROOT / "trusted_identity"
    for folder in ("templates", "static", "migrations"):
        for path in (app / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert path.relative_to(ROOT).as_posix() in names
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"trusted_identity", dist_info}
    assert not [n for n in names if "demo_setup" in n or "/tests/" in n or n.endswith(".pyc")]


def test_the_wheel_metadata(built_dist):
    meta = metadata(built_dist)
    assert meta["Name"] == "django-trusted-identity"
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert meta["Requires-Python"] == ">=3.10"
    classifiers = set(meta.get_all("Classifier"))
    assert {
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Framework :: Django :: 6.1",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Operating System :: OS Independent",
        "Topic :: Security",
        "Typing :: Typed",
    } <= classifiers
    # No public home yet: no link that would not resolve.
    assert meta.get_all("Project-URL") is None
    extras = set(meta.get_all("Provides-Extra"))
    assert {"postgres", "redis"} <= extras
    requires = meta.get_all("Requires-Dist")
    assert any(r.startswith("psycopg[binary]") and 'extra == "postgres"' in r for r in requires)
    assert any(r.startswith("redis") and 'extra == "redis"' in r for r in requires)
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().strip() == README.strip()


def test_the_sdist_leaves_the_tests_out_and_has_what_the_readme_names(built_dist):
    names = sdist_names(built_dist)
    assert {"LICENSE", "README.md", "CHANGELOG.md", "SECURITY.md", "pyproject.toml"} <= names
    assert not [n for n in names if n.startswith(("tests/", "project/", "bench/"))]
    assert "trusted_identity/management/commands/demo_setup.py" not in names
    assert "trusted_identity/py.typed" in names
    # Every file the README names by path ships in the sdist.
    for path in set(re.findall(r"`((?:docs/)?[\w.-]+\.md)`", README)):
        if (ROOT / path).exists():
            assert path in names, path


def test_the_readme_has_no_relative_link():
    """On a package index a relative link or image is broken."""
    targets = re.findall(r"\]\(([^)\s]+)", README) + re.findall(r'src="([^"]+)"', README)
    assert [t for t in targets if not t.startswith(("https://", "http://", "mailto:"))] == []


def test_the_changelog_keeps_a_changelog():
    assert CHANGELOG.startswith("# Changelog")
    assert "## [Unreleased]" in CHANGELOG
    assert "keepachangelog.com" in CHANGELOG
    for heading in re.findall(r"^### (.+)$", CHANGELOG, re.M):
        assert heading in {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_twine_and_check_wheel_contents_pass(built_dist):
    if not all(importlib.util.find_spec(m) for m in ("twine", "check_wheel_contents")):
        skip_or_fail("twine or check-wheel-contents is not installed (pip install -e '.[dev]')")
    files = [str(built_dist["sdist"]), str(built_dist["wheel"])]
    subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *files], check=True)
    subprocess.run(
        [sys.executable, "-m", "check_wheel_contents", str(built_dist["wheel"])],
        check=True,
        cwd=ROOT,  # its settings are in pyproject.toml
    )


def test_building_prints_no_manifest_or_packaging_warning(built_dist):
    """MANIFEST.in matches what it names in the tree and in the sdist alike."""
    log = built_dist["log"]
    assert "no previously-included" not in log
    assert "warning: no files found matching" not in log
    # Only the environment's own PYTHONDONTWRITEBYTECODE notices may remain.
    warnings = [
        line
        for line in log.splitlines()
        if "warning" in line.lower() and "byte-compiling is disabled" not in line
    ]
    assert warnings == []
