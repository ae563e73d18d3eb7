"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_api_example_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks()
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:  # the later blocks reuse the first block's task and weak model
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["hf_run"].steps == 300 and namespace["hf_run"].summary()["train_acc_95_step"] is not None
    assert len(namespace["results"]) == 8 and all(r.steps >= 1 for r in namespace["results"])
    # The example's claims: the weak model stopped at its threshold, the target generalised.
    assert namespace["weak_run"].status == "target_reached"
    assert gt_ready(namespace)
    assert namespace["run"].status == "target_reached"
    assert namespace["summary"]["time_gap"] is not None and namespace["summary"]["time_gap"] < 1000
    assert (tmp_path / "runs" / "api-demo" / "summary.json").is_file()
    assert "GrokTransfer (weak + target)" in capsys.readouterr().out


def gt_ready(namespace) -> bool:
    """The example's weak model is ready by the default rule (its check prints "ready")."""
    return namespace["gt"].judge_readiness(namespace["gt"].ReadinessConfig(), namespace["report"]).ready
