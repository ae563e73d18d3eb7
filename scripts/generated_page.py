"""The one write-or-check step of the generated docs pages (cli_reference.py, api_reference.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable


def write_or_check(page: Path, render: Callable[[], str], stale: str) -> int:
    """Write ``render()`` to ``page``; with ``--check`` on the command line, write nothing and
    return 1 (printing ``stale``) if the page differs from it."""
    text = render()
    if "--check" in sys.argv[1:]:
        if not page.is_file() or page.read_text(encoding="utf-8") != text:
            print(stale)
            return 1
        return 0
    page.write_text(text, encoding="utf-8")
    print(f"wrote {page}")
    return 0
