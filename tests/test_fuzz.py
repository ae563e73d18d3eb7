"""Property-based tests (Hypothesis): no input breaks a command.

The strategies are built from the config schema itself (the dataclasses in
groktransfer/config.py), so a new field is fuzzed without new test code. For every example:

- a config, override or argument list that is valid runs a tiny budget to the end;
- one that is not is refused with exit code 2 (``ConfigError`` in the API): one line, no
  traceback, and nothing created or modified (a byte-for-byte snapshot of the directory);
- damaged files (truncated, garbage, wrong shapes, NaN) are refused the same way.

Profiles: ``ci`` (the default: a fixed seed and a few dozen examples per test, inside CI's
time) and ``long`` (HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py: thousands
of examples, for local use).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
import uuid
from pathlib import Path
from typing import Literal, Union

import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from groktransfer.cli import main
from groktransfer.config import ConfigError, RunConfig, from_dict, load_config_file
from groktransfer.transfer import save_weak_embedding

settings.register_profile("ci", max_examples=30, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Every stage tiny, so that whatever a valid example asks for ends in a second or so.
TINY = {
    "name": "fuzz", "device": "cpu",
    "task": {"op": "add", "p": 7, "train_fraction": 0.5},
    "weak": {"model": {"embed_dim": 4, "width": 8}, "population": 2, "max_rounds": 1, "if_none_ready": "transfer_best",
             "train": {"max_steps": 4, "eval_every": 2}},
    "target": {"model": {"embed_dim": 8, "width": 8, "depth": 1}, "train": {"max_steps": 4, "eval_every": 2}},
    "scratch": {"model": {"embed_dim": 8, "width": 8, "depth": 1}, "train": {"max_steps": 4, "eval_every": 2}},
    "checkpoint": {"every_steps": None, "every_seconds": None},
}


# ---------------------------------------------------------------------------------------
# Strategies from the schema


def leaf_fields(cls: type, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted path, annotation) of every field of a config class, nested configs walked into."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, path = hints[f.name], prefix + f.name
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        nested = tp if dataclasses.is_dataclass(tp) else (inner[0] if len(inner) == 1 and dataclasses.is_dataclass(
            inner[0]) else None)
        out.append((path, tp))
        if nested is not None:
            out.extend(leaf_fields(nested, path + "."))
    return out


FIELDS = leaf_fields(RunConfig)

SMALL_INTS = st.one_of(st.integers(-3, 12), st.sampled_from([2**31, 2**32, 2**70, -(2**63)]))
ODD_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -1.0, 1e-3, 0.01, 0.5, 0.99, 1.0, 2.0, 1e400, -1e400]),
)
TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["", "$x^$", "a.npy", "cuda", "cpu", "../x", "auto"]))
ANY_SCALAR = st.one_of(st.none(), st.booleans(), SMALL_INTS, ODD_FLOATS, TEXT)


def value_for(tp) -> st.SearchStrategy:
    """Values of the annotation's own type (valid or not in range), and now and then any other."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return st.one_of(*(value_for(a) for a in args))
    if tp is type(None):
        return st.none()
    if origin is Literal:
        own = st.sampled_from(args)
    elif origin is tuple:
        own = st.lists(st.one_of(ODD_FLOATS, SMALL_INTS), min_size=0, max_size=3)
    elif origin is list:
        own = st.lists(st.one_of(ODD_FLOATS, SMALL_INTS), min_size=0, max_size=3)
    elif dataclasses.is_dataclass(tp):
        own = st.one_of(st.just({}), st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(tp)] + ["bogus"]),
                                                      ANY_SCALAR, max_size=2))
    elif tp is bool:
        own = st.booleans()
    elif tp is int:
        own = SMALL_INTS
    elif tp is float:
        own = ODD_FLOATS
    elif tp is str:
        own = TEXT
    elif tp is dict:
        own = st.dictionaries(TEXT, ANY_SCALAR, max_size=2)
    else:  # pragma: no cover - a new kind of annotation: fuzz it too
        own = ANY_SCALAR
    return st.one_of(own, own, own, ANY_SCALAR)


@st.composite
def overrides(draw, n_max: int = 3) -> list[tuple[str, object]]:
    picks = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=n_max, unique_by=lambda f: f[0]))
    return [(path, draw(value_for(tp))) for path, tp in picks]


def as_override(path: str, value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return f"{path}={text.replace(chr(10), ' ')}"


# ---------------------------------------------------------------------------------------
# The property


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def small_enough(data) -> bool:
    """Whether a config that parses asks for a tiny run (an override of a whole section, e.g.
    ``scratch.train={}``, brings back its defaults: 10,000 steps). Big valid runs are not bad
    input; they are left out rather than trained. Anything that does not parse is kept: it must
    be refused."""
    try:
        config = from_dict(RunConfig, data)
    except ConfigError:
        return True
    task = config.task
    if max(task.p, task.n_bits, task.n_train, task.n_test) > 64:
        return False
    for stage in (config.weak, config.target, config.scratch):
        if stage is None:
            continue
        t, m = stage.train, stage.model
        sizes = [m.embed_dim, m.width, m.depth] + ([m.transformer.n_layers, m.transformer.d_mlp,
                                                     m.transformer.n_heads, m.transformer.d_head or 0]
                                                    if m.transformer is not None else [])
        if t.max_steps > 40 or max(sizes) > 64 or t.entk_probe > 16:
            return False
    return config.weak is None or config.weak.population * config.weak.max_rounds <= 16


def with_changes(changes) -> dict:
    data = json.loads(json.dumps(TINY))
    for path, value in changes:
        node = data
        *parents, last = path.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = value
    return data


def run_cli(capsys, argv: list[str], workdir: Path, out: Path) -> int:
    """Run the command; check the property for its outcome; return its exit code."""
    before = snapshot(workdir)
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert code in (0, 1, 2), (argv, code, captured.err)
    if code == 2:
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("groktransfer: error: "), (argv, captured.err)
        assert snapshot(workdir) == before, argv  # nothing created or modified
    elif code == 1:  # a run whose weak stage found nothing ready: said in one line, the run recorded
        assert "no weak candidate was ready" in captured.err, (argv, captured.err)
    else:
        summary = json.loads((out / "summary.json").read_text())
        assert summary["complete"], argv
    return code


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY))
    return tmp_path


def fresh(workdir: Path) -> Path:
    return workdir / "runs" / uuid.uuid4().hex[:10]


@given(changes=overrides())
def test_overrides_run_or_are_refused_cleanly(workdir, capsys, changes):
    # The CLI parses an override's value as YAML: the same value, applied as data, decides the size.
    assume(small_enough(with_changes([(p, yaml.safe_load(as_override(p, v).split("=", 1)[1] or "null"))
                                      for p, v in changes])))
    out = fresh(workdir)
    run_cli(capsys, ["run", "base.yaml", "--out", str(out), "--no-progress", *[as_override(p, v) for p, v in changes]],
            workdir, out)


@given(changes=overrides(n_max=6))
def test_config_files_run_or_are_refused_cleanly(workdir, capsys, changes):
    data = with_changes(changes)
    assume(small_enough(data))
    name = f"{uuid.uuid4().hex[:8]}.yaml"
    (workdir / name).write_text(yaml.safe_dump(data, allow_unicode=True))
    out = fresh(workdir)
    run_cli(capsys, ["run", name, "--out", str(out), "--no-progress"], workdir, out)


@given(changes=overrides())
def test_the_api_refuses_with_config_error_or_builds(changes):
    data = with_changes(changes)
    try:
        config = from_dict(RunConfig, data)
    except ConfigError as err:
        assert "\n" not in str(err) and str(err)
        return
    assert isinstance(config, RunConfig)
    assert from_dict(RunConfig, json.loads(json.dumps(config.to_dict()))) == config  # round trip


def damage(data: bytes, how: str, where: float) -> bytes:
    cut = int(len(data) * where)
    if how == "truncate":
        return data[:cut]
    if how == "garbage":
        return data[:cut] + bytes(range(256))[:64] + data[cut:]
    return b"\x00\xff" * 20


@given(how=st.sampled_from(["truncate", "garbage", "replace"]), where=st.floats(0, 1))
def test_damaged_config_files_run_or_are_refused_cleanly(workdir, capsys, how, where):
    name = f"{uuid.uuid4().hex[:8]}.yaml"
    (workdir / name).write_bytes(damage(yaml.safe_dump(TINY).encode(), how, where))
    try:  # a cut that drops a stage's train section brings back its default budget: a real run, not bad input
        assume(small_enough(load_config_file(workdir / name)))
    except ConfigError:
        pass  # unreadable: it must be refused, which run_cli checks
    out = fresh(workdir)
    run_cli(capsys, ["run", name, "--out", str(out), "--no-progress"], workdir, out)


@given(kind=st.sampled_from(["truncate", "garbage", "replace", "rows", "nan", "inf", "3d"]), where=st.floats(0, 1))
def test_damaged_weak_embedding_files_are_refused(workdir, capsys, kind, where):
    name = f"{uuid.uuid4().hex[:8]}.safetensors"
    good = torch.randn(7, 4)
    if kind in ("rows", "nan", "inf", "3d"):
        matrix = {"rows": torch.randn(5, 4), "nan": good.masked_fill(good > 1, float("nan")),
                  "inf": good.masked_fill(good > 1, float("inf")), "3d": torch.randn(7, 4, 1)}[kind]
        assume(bool((~torch.isfinite(matrix)).any()) or kind in ("rows", "3d"))
        if kind == "3d":
            from safetensors.torch import save_file

            save_file({"embedding": matrix}, str(workdir / name))
        else:
            save_weak_embedding(matrix, workdir / name)
    else:
        save_weak_embedding(good, workdir / "ok.safetensors")
        (workdir / name).write_bytes(damage((workdir / "ok.safetensors").read_bytes(), kind, where))
    out = fresh(workdir)
    code = run_cli(capsys, ["run", "base.yaml", "--out", str(out), "--no-progress", "weak=null",
                            f"transfer.weak_embedding_file={name}"], workdir, out)
    assert code == 2 or kind in ("truncate", "garbage") and where == 1.0


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run directory with a checkpoint and no complete summary, as a killed run leaves it."""
    from groktransfer.pipeline import CHECKPOINT_FILE, run_experiment

    root = tmp_path_factory.mktemp("interrupted")
    data = json.loads(json.dumps(TINY))
    data["checkpoint"] = {"every_steps": 1, "every_seconds": None}
    run_experiment(from_dict(RunConfig, data), root / "run", plots=False)
    summary = json.loads((root / "run" / "summary.json").read_text())
    summary["complete"] = False
    (root / "run" / "summary.json").write_text(json.dumps(summary))
    assert (root / "run" / CHECKPOINT_FILE).is_file()
    return root / "run"


@given(how=st.sampled_from(["truncate", "garbage", "replace"]), where=st.floats(0, 0.999),
       which=st.sampled_from(["checkpoint.safetensors", "config.yaml"]))
def test_resume_from_damaged_files_is_refused_cleanly(workdir, capsys, interrupted, how, where, which):
    import shutil

    run = workdir / f"run-{uuid.uuid4().hex[:8]}"
    shutil.copytree(interrupted, run)
    path = run / which
    path.write_bytes(damage(path.read_bytes(), how, where))
    before = snapshot(run)
    capsys.readouterr()
    code = main(["resume", str(run), "--no-progress"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if code == 2:
        assert len(captured.err.strip().splitlines()) == 1 and snapshot(run) == before
    else:  # a cut that left a readable file (YAML often is): the run resumed and finished
        assert code == 0 and json.loads((run / "summary.json").read_text())["complete"]


OPTION_WORDS = ["--spec", "--methods", "--seeds", "--out", "--parallel", "--grid", "--configs", "--metric",
                "--tuned", "--quick", "--device", "--task", "--overwrite", "--bogus", "-x"]
VALUE_WORDS = st.one_of(TEXT, SMALL_INTS.map(str), st.sampled_from(["scratch", "groktransfer,scratch", "demo",
                                                                    "0,0", "fig99", "auto", "0", "-1", "=", "a=b"]))


@given(command=st.sampled_from(["compare", "tune", "reproduce", "resume", "plot", "inspect-weak"]),
       words=st.lists(st.one_of(st.sampled_from(OPTION_WORDS), VALUE_WORDS), max_size=6))
def test_other_commands_refuse_bad_arguments_cleanly(workdir, capsys, command, words):
    """Random arguments: refused in one line with exit 2, nothing written. Argument lists that would
    start real work (a valid sweep or reproduction) are left out: they are not bad input."""
    argv = [command, *words]
    if command == "reproduce":
        argv += ["nosuchsetting=1"]  # an unknown setting: every reproduce here must be refused
    if command in ("compare", "tune"):
        argv += ["task.p=1"]  # an invalid override: every sweep here must be refused
    before = snapshot(workdir)
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if command in ("resume", "plot", "inspect-weak") and code == 0:
        return  # it found something real to show (e.g. the base config's folder); nothing to refuse
    assert code == 2, (argv, captured.err)
    assert len(captured.err.strip().splitlines()) == 1 and snapshot(workdir) == before, argv


@pytest.mark.parametrize("name", ["$x^$", "a$b", "$\\frac{a}", "\\", "\u00e9\u4e2d"])
def test_a_run_name_is_plotted_as_written(workdir, capsys, name):
    """Found by fuzzing: matplotlib read a name with $ as a formula and failed after training."""
    out = fresh(workdir)
    assert run_cli(capsys, ["run", "base.yaml", "--out", str(out), "--no-progress", f"name={name}"], workdir, out) == 0
    assert (out / "accuracy.png").is_file() and (out / "loss.png").is_file()
