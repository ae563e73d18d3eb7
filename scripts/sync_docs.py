"""Copy the stored result tables into the README and the docs, or check that they match.

A table in README.md or docs/*.md that stands under a marker such as
``<!-- results/weak-size/table.md -->`` is the first table of that file, verbatim, so that no
number in the docs is typed by hand:

    python scripts/sync_docs.py           # rewrite every marked table from its stored file
    python scripts/sync_docs.py --check   # exit 1 and name every table that differs (the tests run this)

Markers that name a JSON file (the speed benchmarks, the demo) only have to point at a file
that exists; their tables are printed by the command shown beside them.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- (results/\S+) -->$")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def first_table(lines: list[str], start: int = 0) -> tuple[int, int]:
    """[begin, end) of the first run of table lines ('|…') at or after ``start``; (start, start) if none."""
    begin = next((i for i in range(start, len(lines)) if lines[i].startswith("|")), None)
    if begin is None:
        return start, start
    end = begin
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return begin, end


def rebase_links(line: str, source: Path, page: Path) -> str:
    """A stored table's relative links point from its own folder; make them point from the page's."""
    def rebase(match: re.Match) -> str:
        target = match.group(1)
        if "://" in target or target.startswith("#"):
            return match.group(0)
        return "](" + os.path.relpath(source.parent / target, page.parent).replace(os.sep, "/") + ")"
    return LINK.sub(rebase, line)


def sync(page: Path, write: bool) -> list[str]:
    """Problems found on one page (and, with ``write``, the page rewritten without them)."""
    lines = page.read_text(encoding="utf-8").split("\n")
    problems = []
    for i, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if not match:
            continue
        source = ROOT / match.group(1)
        if not source.is_file():
            problems.append(f"{page.name}:{i + 1}: {match.group(1)} does not exist")
            continue
        if source.suffix != ".md":
            continue
        stored = source.read_text(encoding="utf-8").split("\n")
        s_begin, s_end = first_table(stored)
        if s_begin == s_end:
            problems.append(f"{page.name}:{i + 1}: {match.group(1)} holds no table")
            continue
        table = [rebase_links(row, source, page) for row in stored[s_begin:s_end]]
        begin, end = i + 1, i + 1
        while end < len(lines) and lines[end].startswith("|"):  # the table right under the marker
            end += 1
        if lines[begin:end] != table:
            problems.append(f"{page.name}:{i + 1}: the table differs from {match.group(1)}")
            lines[begin:end] = table
    if write and problems:
        page.write_text("\n".join(lines), encoding="utf-8")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report tables that differ; exit 1 if any")
    args = parser.parse_args()
    problems = [p for page in pages() for p in sync(page, write=not args.check)]
    for problem in problems:
        print(problem)
    if not args.check:
        missing = [p for p in problems if "does not exist" in p or "holds no table" in p]
        return 1 if missing else 0
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
