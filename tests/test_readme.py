"""The README's Python example runs as written, and does what its comments say."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_api_example_runs(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    gt = namespace["gt"]
    # The example's claims: the weak model stopped at its threshold, its embedding is ready,
    # the target generalised soon after fitting.
    assert namespace["weak_run"].status == "target_reached"
    assert gt.judge_readiness(gt.ReadinessConfig(), namespace["report"]).ready
    assert namespace["run"].status == "target_reached"
    assert namespace["run"].summary()["time_gap"] is not None and namespace["run"].summary()["time_gap"] < 1000


def test_readme_is_short():
    """The README is an entry point; the rest lives in docs/ (its pages are linked from it)."""
    assert len(README.read_text(encoding="utf-8")) <= 10_000
