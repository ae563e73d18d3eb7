"""Write docs/cli-reference.md: every command's --help, generated from the parser itself, and every
config key with its type, default and the comment beside it in groktransfer/config.py.

    python scripts/cli_reference.py           # rewrite the page
    python scripts/cli_reference.py --check   # exit 1 if the page is not what the parser prints (the tests run this)
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import sys
import typing
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
    parts += ["", *config_keys()]
    return "\n".join(parts) + "\n"


FIELD = re.compile(r"^    (\w+): [^=]+?(?: = (.+?))?(?:\s+#\s?(.*))?$")


def field_comments(cls: type) -> dict[str, str]:
    """Each field's comment in the source of the class that declares it (a subclass's own
    comment wins): the comment lines just above it, then the one beside it (config.py's
    convention: a field's comment says what it is and why)."""
    comments: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        comments.update({name: text for name, text in own_field_comments(klass).items() if text})
    return comments


def own_field_comments(cls: type) -> dict[str, str]:
    comments, above = {}, []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("#").strip())
            continue
        match = FIELD.match(line)
        if match:
            comments[match.group(1)] = " ".join(above + ([match.group(3)] if match.group(3) else []))
        above = []
    return comments


def nested_dataclass(tp) -> typing.Optional[type]:
    """The config class a field holds (through Optional), or None for a plain value."""
    for candidate in (tp, *typing.get_args(tp)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def shown(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return "`null`" if field.default is None else f"`{field.default!r}`"
    return "(below)"


def key_rows(cls: type, prefix: str) -> list[str]:
    """One table row per field of ``cls`` (a nested config's own comment, else its docstring's
    first paragraph), then the rows of each nested config under its key."""
    hints, comments, rows, nested = typing.get_type_hints(cls), field_comments(cls), [], []
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        key, tp = prefix + field.name, hints[field.name]
        inner = nested_dataclass(tp)
        kind = inner.__name__ if inner else tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")
        doc = (inner.__doc__ or "").strip().split("\n\n")[0] if inner else ""
        text = re.sub(r"\s+", " ", comments.get(field.name) or doc).replace("|", "\\|")
        rows.append(f"| `{key}` | {kind} | {shown(field)} | {text} |")
        if inner:
            nested.append((inner, key + "."))
    for inner, key in nested:
        rows += key_rows(inner, key)
    return rows


def config_keys() -> list[str]:
    from groktransfer.config import RunConfig, StageConfig

    rows = key_rows(RunConfig, "")
    return ["## Config keys", "",
            "Every key of a run config (a YAML file, a preset, or `key=value` on the command line), its type, its",
            "default and the comment beside it in `groktransfer/config.py`. `target` and `scratch` are both a",
            f"`{StageConfig.__name__}` (their keys are listed once, under `target`); a key under a `null` default",
            "applies once that section is given.", "",
            "| key | type | default | what it is |", "|---|---|---|---|",
            *[row for row in rows if not row.startswith("| `scratch.")]]


def main() -> int:
    return write_or_check(PAGE, render,
                          f"{PAGE.relative_to(ROOT)} is not what the parser prints: run python scripts/cli_reference.py")


if __name__ == "__main__":
    sys.exit(main())
