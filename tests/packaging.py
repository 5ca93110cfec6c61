"""Building the sdist and the wheel once per test run, offline, for the packaging tests.

``python -m build --no-isolation`` with this environment's setuptools (the ``dev``
extra pins ``setuptools>=77`` and ``build``), so no network is needed. Where that
can't be done (an environment without them), the tests that need the build skip
with the reason, unless ``CI`` is set: then they fail.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUPTOOLS_NEEDED = (77, 0)


def why_no_build() -> str | None:
    """The reason this environment can't build the package offline, or None."""
    if importlib.util.find_spec("build") is None:
        return "the 'build' package is not installed here (pip install -e '.[dev]')"
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return "setuptools is not installed here (pip install -e '.[dev]')"
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < SETUPTOOLS_NEEDED:
        return (
            f"setuptools {version} can't build this pyproject offline (its SPDX license "
            "needs setuptools>=77): pip install -e '.[dev]'"
        )
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, and {reason}")
    pytest.skip(reason)


#: What a build never takes from the working tree: environments, caches, build output,
#: local databases and settings (all in .gitignore).
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", ".nox", ".node_deps", "node_modules", "__pycache__", "build", "dist",
    "staticfiles", ".hypothesis", ".pytest_cache", ".ruff_cache", "*.egg-info",
    "*.sqlite3*", ".env", "_build",
)  # fmt: skip


def build(outdir: Path) -> dict:
    """Build the sdist, then the wheel from it, into ``outdir``.

    Returns ``{"sdist", "wheel", "log"}``: the two paths and the build's output, so a
    test can hold the build to printing no packaging warning. From a copy of the working
    tree, as a fresh clone has it: setuptools writes its ``*.egg-info`` beside the
    sources, and another build of this checkout at the same time (a second test run,
    ``make check-dist``, an editable install) must not meet it.
    """
    reason = why_no_build()
    if reason:
        skip_or_fail(reason)
    sources = outdir / "sources"
    shutil.copytree(ROOT, sources, ignore=NOT_SOURCES)
    completed = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), str(sources)],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    [sdist] = outdir.glob("*.tar.gz")
    [wheel] = outdir.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel, "log": completed.stdout + completed.stderr}
