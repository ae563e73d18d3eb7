"""MkDocs hooks (``hooks:`` in mkdocs.yml): the records, code and figures the pages link to are
copied into the built site, so that every link resolves there as it does on GitHub.

The pages live in ``docs/`` and link outside it (``../results/…/table.md``,
``../groktransfer/config.py``, figures under ``results/``). Each such target that exists is
copied into the site under ``repo/`` (a folder stands for its README.md), and the page's link
is pointed at the copy; a target that does not exist is left as it is, so that
``mkdocs build --strict`` fails on it (mkdocs.yml's ``validation``).
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

MOUNT = "repo"  # where the copies live in the site: site/repo/results/…
OUTSIDE_LINK = re.compile(r"(\]\()(\.\./[^)\s#]*)([^)\s]*\))")
SIGN_PAIRS = re.compile(r"\] \[(?=[+−-])")


class _Copied(File):
    """A file copied into the site as it is (a Markdown table or README stays Markdown)."""

    def is_documentation_page(self) -> bool:
        return False

    def is_static_page(self) -> bool:
        return False

    def is_media_file(self) -> bool:
        return True


def _repo_path(docs_dir: Path, root: Path, link: str):
    """The repository-relative path a ``../…`` link of a page in docs/ names (a folder: its
    README.md), or None when it leaves the repository or names nothing."""
    target = (docs_dir / link).resolve()
    try:
        relative = target.relative_to(root)
    except ValueError:
        return None
    if target.is_dir() and (target / "README.md").is_file():
        return relative / "README.md"
    return relative if target.is_file() else None


def _roots(config) -> tuple[Path, Path]:
    docs_dir = Path(config["docs_dir"]).resolve()
    return docs_dir, Path(config["config_file_path"]).resolve().parent


def on_files(files, config):
    docs_dir, root = _roots(config)
    wanted = set()
    for page in files.documentation_pages():
        text = Path(page.abs_src_path).read_text(encoding="utf-8")
        for match in OUTSIDE_LINK.finditer(text):
            path = _repo_path(Path(page.abs_src_path).parent, root, match.group(2))
            if path is not None:
                wanted.add(path.as_posix())
    for relative in sorted(wanted):
        copied = _Copied(f"{MOUNT}/{relative}", str(docs_dir), config["site_dir"], config["use_directory_urls"])
        copied.abs_src_path = str(root / relative)
        files.append(copied)
    return files


def on_page_markdown(markdown, page, config, files):
    _, root = _roots(config)
    here = Path(page.file.abs_src_path).parent
    depth = len(Path(page.file.src_uri).parts) - 1  # pages in docs/sub/ reach the mount through ../

    def point_at_copy(match):
        path = _repo_path(here, root, match.group(2))
        if path is None:
            return match.group(0)  # left for the link check to report
        return f"{match.group(1)}{'../' * depth}{MOUNT}/{path.as_posix()}{match.group(3)}"

    # "[+1,+1] [+1,−1]" (the XOR clusters in a stored table) reads as a reference link "[text] [id]"
    # to Markdown and autorefs; the second bracket is escaped so it stays text
    markdown = SIGN_PAIRS.sub(r"] \\[", markdown)
    return OUTSIDE_LINK.sub(point_at_copy, markdown)
