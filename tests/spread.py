"""The end-to-end modules the version matrix spreads over its pairs (``noxfile.END_TO_END``,
``pytest --end-to-end``), by name: a test module's file name without ``test_``."""

from __future__ import annotations

import re
from pathlib import Path

#: The suite's directory.
TESTS = Path(__file__).resolve().parent

_MARKED = re.compile(r"\bpytest\.mark\.end_to_end\b")


def end_to_end_name(path: Path) -> str:
    """An end-to-end module's name for ``--end-to-end``: its file's, without ``test_``."""
    return path.stem.removeprefix("test_")


def end_to_end_modules() -> set[str]:
    """The names of the modules that hold a test marked ``end_to_end``."""
    return {
        end_to_end_name(path)
        for path in TESTS.rglob("test_*.py")
        if _MARKED.search(path.read_text(encoding="utf-8"))
    }
