"""Reading README.md and docs/*.md as the tests of their claims need: a section by its
heading, the code blocks, the backticked names. The tests compare what the text says with
what the code does (click's commands, the config loader, a migrated catalogue), so that a
change to either that the other does not follow fails."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SPEC = ROOT.parent / "shared" / "SPEC.md"   # the project's contracts, beside the repository

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def prose(text: str) -> str:
    """The text without its fenced code blocks (no headings or links in code)."""
    return _FENCE.sub("", text)


def code_blocks(text: str) -> list[str]:
    """The fenced code blocks' bodies."""
    return [block.split("\n", 1)[1].rsplit("```", 1)[0] for block in _FENCE.findall(text)]


def section(text: str, heading: str) -> str:
    """The section under the Markdown heading `heading` (e.g. "## CLI"), down to the next
    heading of its level or higher; a missing heading fails the calling test with its name."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.split("\n")
    headings_at = [i for i, line in enumerate(lines) if line.strip() == heading and not _in_fence(lines, i)]
    assert headings_at, f"no heading {heading!r}"
    start = headings_at[0] + 1
    for end in range(start, len(lines)):
        match = re.match(r"(#+) ", lines[end])
        if match and len(match.group(1)) <= level and not _in_fence(lines, end):
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


def _in_fence(lines: list[str], index: int) -> bool:
    return sum(line.startswith("```") for line in lines[:index]) % 2 == 1


def without_parentheses(text: str) -> str:
    """`text` less every parenthesised aside (nested ones too): what a list of names says
    beside each name."""
    previous = None
    while previous != text:
        previous, text = text, re.sub(r"\([^()]*\)", "", text)
    return text


def backticked_names(text: str) -> list[str]:
    """The `identifier`s in `text` (backticked words of letters, digits and '_'), in order."""
    return re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", text)


def markdown_table(text: str) -> list[list[str]]:
    """The body rows of the first Markdown table in `text`, as lists of cells (header and
    rule left out)."""
    rows = [line for line in text.split("\n") if line.startswith("|")]
    assert len(rows) > 2, "no Markdown table"
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows[2:]]
