"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_api_example_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks()
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    exec(compile(blocks[1], str(README), "exec"), namespace)  # the batched example reuses the first block's task
    assert len(namespace["results"]) == 8 and all(r.steps >= 1 for r in namespace["results"])
    # The example's claims: the weak model stopped at its threshold, the target generalised.
    assert namespace["weak_run"].status == "target_reached"
    assert namespace["run"].status == "target_reached"
    assert namespace["summary"]["time_gap"] is not None and namespace["summary"]["time_gap"] < 1000
    assert (tmp_path / "runs" / "api-demo" / "summary.json").is_file()
    assert "GrokTransfer (weak + target)" in capsys.readouterr().out
