"""Every Python block in docs/*.md runs as written, the blocks of a page in order."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md") if "```python" in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S):
        exec(compile(block, str(page), "exec"), namespace)
    if page.name == "integrations.md":  # what the page says happens
        assert namespace["handle"].step == 200 and namespace["checkpoint"]["method"]["name"] == "grokfast-ema+orthograd"
        summary = namespace["metrics"].summary
        assert summary["time_gap"] is not None and summary["test_acc_95_step"] is not None
        assert (tmp_path / "runs" / "hf-example" / "grokking.json").is_file()
        logged = namespace["events"].Scalars("target/test_acc")[-1].value  # TensorBoard keeps float32
        assert logged == pytest.approx(namespace["summary"]["stages"]["target"]["final_test_acc"], abs=1e-6)
        assert "Time Gap:" in capsys.readouterr().out
    if page.name == "api.md":
        assert namespace["run"].status == "target_reached" and namespace["summary"]["time_gap"] < 1000
        assert (tmp_path / "runs" / "api-demo" / "summary.json").is_file()
    if page.name == "own-models.md":
        assert namespace["hf_run"].steps == 300 and namespace["hf_run"].summary()["train_acc_95_step"] is not None
    if page.name == "speed.md":
        assert len(namespace["results"]) == 8 and all(r.steps >= 1 for r in namespace["results"])


ROOT = DOCS.parent
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    """Every relative link in the README and the docs points at a file or folder of the repository."""
    broken = [target for target in LINK.findall(page.read_text(encoding="utf-8"))
              if "://" not in target and not (page.parent / target).exists()]
    assert not broken, f"{page.name}: broken links {broken}"


def test_site_builds_strictly(tmp_path):
    """The MkDocs site builds with --strict (every page in the nav, no warnings)."""
    pytest.importorskip("mkdocs")
    import subprocess, sys
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def _sync_docs():
    import importlib.util
    spec = importlib.util.spec_from_file_location("sync_docs", ROOT / "scripts" / "sync_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_marked_table_is_its_stored_output():
    """No number in a marked table of the README or the docs differs from the stored result it names."""
    sync = _sync_docs()
    problems = [p for page in sync.pages() for p in sync.sync(page, write=False)]
    assert not problems, "\n".join(problems) + "\n(python scripts/sync_docs.py rewrites them)"


def test_the_table_check_sees_a_changed_number(tmp_path):
    sync = _sync_docs()
    stored = (ROOT / "results" / "weak-size" / "table.md").read_text(encoding="utf-8").split("\n")
    table = [row for row in stored if row.startswith("|")]
    page = tmp_path / "page.md"
    tampered = [table[0], table[1], table[2].replace("|", "| 9", 2)] + table[3:]
    page.write_text("\n".join(["<!-- results/weak-size/table.md -->", *tampered, "", "text"]), encoding="utf-8")
    assert sync.sync(page, write=False) == ["page.md:1: the table differs from results/weak-size/table.md"]
    sync.sync(page, write=True)
    assert sync.sync(page, write=False) == []
    assert page.read_text(encoding="utf-8").split("\n")[1:len(table) + 1] == table


def test_results_index_is_up_to_date():
    """results/README.md lists every stored result as its records describe it."""
    import subprocess, sys
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_index.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_full_size_claims_table_is_up_to_date_and_says_why_each_failure_fails():
    """results/full-size-claims.md (synced into docs/reproducing.md) is what the full-size
    records say today; the script refuses a failing record that has no reason beside it."""
    import subprocess, sys
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "full_size_table.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_docs_site_builds_strictly_and_every_link_and_image_resolves_in_it(tmp_path):
    """mkdocs.yml makes a dead link or anchor a warning and --strict makes a warning fail the
    build; the hook copies what the pages link to outside docs/ into the site. Then, apart from
    MkDocs: every relative href and src of every built page names a file of the site."""
    import os
    import subprocess
    import sys
    import urllib.parse

    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stderr[-3000:]
    dead = []
    for page in site.rglob("*.html"):
        if page.name == "404.html":  # its links are absolute, for wherever the site is served
            continue
        for url in re.findall(r'(?:href|src)="([^"#?]+)', page.read_text(encoding="utf-8", errors="replace")):
            if re.match(r"^[a-z]+:", url) or url.startswith("//"):
                continue
            target = (page.parent / urllib.parse.unquote(url)).resolve()
            if not (target / "index.html" if target.is_dir() else target).exists():
                dead.append(f"{page.relative_to(site)} -> {url}")
    assert not dead, dead[:20]
    assert (site / "repo" / "results" / "weak-readiness" / "scatter.png").is_file()  # the figure the issue found missing


def test_the_command_reference_is_what_the_parser_prints():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_config_key_is_in_the_command_reference_with_its_comment():
    import dataclasses

    from groktransfer.config import RunConfig

    page = (ROOT / "docs" / "cli-reference.md").read_text()
    rows = {line.split("`")[1]: line for line in page.splitlines() if line.startswith("| `")}

    def keys(cls, prefix):
        import typing
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            yield prefix + field.name
            inner = next((t for t in (hints[field.name], *typing.get_args(hints[field.name]))
                          if dataclasses.is_dataclass(t)), None)
            if inner is not None:
                yield from keys(inner, prefix + field.name + ".")

    documented = [key for key in keys(RunConfig, "") if not key.startswith("scratch.")]
    assert len(documented) > 100
    for key in documented:
        assert key in rows, f"{key} is not in docs/cli-reference.md"
        assert not rows[key].rstrip().endswith("|  |"), f"{key} has no comment in groktransfer/config.py"


def test_the_api_reference_lists_every_public_name():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "api_reference.py"), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_test_the_docs_cite_exists():
    """The reliability page (and any other) proves its guarantees by naming tests: each named
    test must be defined, so that a renamed or deleted test cannot leave a claim unproven."""
    root = Path(__file__).resolve().parents[1]
    cited = set()
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        cited |= set(re.findall(r"(tests/test_\w+\.py)::(\w+)", page.read_text(encoding="utf-8")))
    assert cited
    missing = [f"{path}::{name}" for path, name in sorted(cited)
               if not re.search(rf"^def {name}\(", (root / path).read_text(encoding="utf-8"), re.M)]
    assert not missing, missing
