"""The documentation's code blocks and tables, as the tests that run them read them.

Every fenced block of the README and of ``docs/*.md`` (and the top-level documents the
docs include) has an HTML comment on the line above it (docs/contributing.md, "About
these docs"):

- ``<!-- snippet: NAME -->``: a test reads the block with ``snippet("NAME")`` and runs it;
- ``<!-- same-as: NAME -->``: a copy that must equal snippet ``NAME``;
- ``<!-- not-run: REASON -->``: no test can run it as written, and the reason says why.

``tests/test_docs_snippets.py`` holds every block to that. Blocks without a language,
or ``text``, are diagrams and outputs, not code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: Every Markdown document whose blocks are held to the rule: the README, the docs pages,
#: and the top-level documents the docs site includes. CONTRACT.md is the shared
#: contract's verbatim copy and has no code block.
DOCUMENTS = (
    ROOT / "README.md",
    ROOT / "SECURITY.md",
    ROOT / "CHANGELOG.md",
    *sorted(DOCS.glob("*.md")),
)
#: Blocks that are not code: diagrams and example outputs.
NOT_CODE = {"", "text"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")
_MARKER = re.compile(r"^\s*<!-- (snippet|same-as|not-run): (.+?) -->\s*$")


@dataclass(frozen=True)
class Block:
    """A fenced block: where it is, its language and code, and the marker above it."""

    path: Path
    line: int  # of the opening fence, from 1
    language: str
    code: str
    marker: str | None  # "snippet", "same-as", "not-run", or None
    value: str  # the snippet's name, or the reason

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_code(self) -> bool:
        return self.language not in NOT_CODE and not self.language.startswith("{")


def parse_blocks(path: Path, text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, nested directives' fences included."""
    lines = text.splitlines()
    found = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].strip().split(" ")[0]
        body = []
        end = index + 1
        while end < len(lines):
            closing = lines[end].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            line = lines[end]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            end += 1
        previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        marker = _MARKER.match(previous)
        found.append(
            Block(
                path=path,
                line=index + 1,
                language=language,
                code="\n".join(body) + "\n",
                marker=marker.group(1) if marker else None,
                value=marker.group(2).strip() if marker else "",
            )
        )
        index = end + 1
    return found


@cache
def all_blocks() -> tuple[Block, ...]:
    return tuple(
        block
        for path in DOCUMENTS
        for block in parse_blocks(path, path.read_text(encoding="utf-8"))
    )


def snippet(name: str) -> str:
    """The code of the block marked ``<!-- snippet: NAME -->`` (exactly one)."""
    [block] = [b for b in all_blocks() if b.marker == "snippet" and b.value == name] or [None]
    assert block is not None, f"no block is marked <!-- snippet: {name} -->"
    return block.code


def snippet_block(name: str) -> Block:
    [block] = [b for b in all_blocks() if b.marker == "snippet" and b.value == name]
    return block


def section(path: Path, heading: str) -> str:
    """The text under a heading (any level), up to the next heading of that level or
    above."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, re.M)
    assert match, f"{path.name} has no heading {heading!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    following = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: following.start()] if following else rest


def table(path: Path, heading: str) -> list[list[str]]:
    """The rows (header excluded) of the first pipe table under a heading."""
    rows = [line for line in section(path, heading).splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip().strip("|").split(" | ")] for row in rows[1:]]
