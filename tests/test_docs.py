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
