"""``make docs`` fails on what would make the docs wrong, and builds the real ones.

Small trees of pages are built with the real configuration (``-c docs``) and the
Makefile's own options: a link to a heading anchor that is not there, or to a page that
does not exist, fails the build; so does reference prose naming a setting the code does
not have. Then the real docs are built the same way, into a temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .packaging import skip_or_fail

# The docs are built once, by `make docs` on the main interpreter.
pytestmark = pytest.mark.one_version

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def sphinx_options() -> list[str]:
    """The Makefile's SPHINXOPTS: what ``make docs`` (and so CI) builds with."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [options] = re.findall(r"^SPHINXOPTS \?= (.+)$", makefile, re.M)
    assert {"-W", "--keep-going", "-n"} <= set(options.split())
    return options.split()


def build(source: Path, out: Path) -> subprocess.CompletedProcess:
    if (
        importlib.util.find_spec("sphinx") is None
        or importlib.util.find_spec("myst_parser") is None
    ):
        skip_or_fail("Sphinx and MyST are not installed (pip install -e '.[docs]')")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}  # as make does
    command = [sys.executable, "-m", "sphinx", *sphinx_options(), "-c", str(DOCS), "-b", "html"]
    return subprocess.run(
        [*command, str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )


def tree(path: Path, pages: dict[str, str]) -> Path:
    path.mkdir()
    for name, text in pages.items():
        (path / name).write_text(text, encoding="utf-8")
    return path


INDEX = "# Home\n\n```{toctree}\nother\n```\n\n"
OTHER = "# Other\n\n## A heading\n\nText.\n"


def test_a_tree_whose_links_resolve_builds(tmp_path):
    source = tree(
        tmp_path / "ok", {"index.md": INDEX + "[there](other.md#a-heading)\n", "other.md": OTHER}
    )
    done = build(source, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert 'href="other.html#a-heading"' in (tmp_path / "out" / "index.html").read_text()


def test_a_link_to_a_missing_anchor_fails_the_build(tmp_path):
    source = tree(
        tmp_path / "anchor",
        {"index.md": INDEX + "[there](other.md#no-such-heading)\n", "other.md": OTHER},
    )
    done = build(source, tmp_path / "out")
    assert done.returncode != 0
    assert "no-such-heading" in done.stderr


def test_a_link_to_a_missing_page_fails_the_build(tmp_path):
    source = tree(tmp_path / "page", {"index.md": INDEX + "[gone](gone.md)\n", "other.md": OTHER})
    done = build(source, tmp_path / "out")
    assert done.returncode != 0
    assert "gone" in done.stderr


def test_reference_prose_for_a_setting_the_code_lacks_fails_the_build(tmp_path):
    page = "```{settings-reference}\nSIGNING_SAPCE: a typo of SIGNING_SPACE.\n```\n"
    source = tree(tmp_path / "typo", {"index.md": INDEX, "other.md": OTHER + page})
    done = build(source, tmp_path / "out")
    assert done.returncode != 0
    assert "SIGNING_SAPCE" in done.stderr


def test_the_docs_build_as_make_docs_builds_them(tmp_path):
    done = build(DOCS, tmp_path / "html")
    assert done.returncode == 0, done.stdout + done.stderr
    html = tmp_path / "html"
    cli = (html / "cli.html").read_text(encoding="utf-8")
    assert 'id="prune"' in cli and "usage: manage.py trusted_identity prune" in cli
    settings = (html / "settings.html").read_text(encoding="utf-8")
    assert "LEAN_PATH_SKIPS_MIDDLEWARE" in settings and "trusted_identity.W010" in settings
    assert "service_unavailable" in (html / "http.html").read_text(encoding="utf-8")
    assert "Reporting a vulnerability" in (html / "security.html").read_text(encoding="utf-8")
    assert (html / "_images" / "settings-light.png").exists()
