"""Write docs/cli-reference.md: every command's --help, generated from the parser itself.

    python scripts/cli_reference.py           # rewrite the page
    python scripts/cli_reference.py --check   # exit 1 if the page is not what the parser prints (the tests run this)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from generated_page import write_or_check

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "cli-reference.md"


def render() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; the page must not depend on it
    sys.path.insert(0, str(ROOT))
    from groktransfer.cli import _build_parser

    parser = _build_parser()
    parser.prog = "groktransfer"
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = ["# Command reference", "",
             "Every command's `--help`, generated from the parser by `python scripts/cli_reference.py`",
             "(a test checks that this page is current). What the commands are for, with examples:",
             "[cli.md](cli.md).", "", "## groktransfer", "", "```text", parser.format_help().rstrip(), "```"]
    for name, sub in commands.choices.items():
        parts += ["", f"## groktransfer {name}", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(parts) + "\n"


def main() -> int:
    return write_or_check(PAGE, render,
                          f"{PAGE.relative_to(ROOT)} is not what the parser prints: run python scripts/cli_reference.py")


if __name__ == "__main__":
    sys.exit(main())
