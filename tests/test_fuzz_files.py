"""Property-based tests (Hypothesis) for the files the package reads and for the Python API.

Each example damages one file at random (its bytes, or its structure: a tensor dropped, reshaped or
retyped, a JSON value replaced) or calls the API with random arguments. The property: the package
either works (the run resumes and finishes, the model loads) or refuses with its own error in one
line naming the file or the argument, and a refused command changes nothing on disk. Profiles as in
tests/test_fuzz.py (``ci``: a fixed seed, 30 examples per property; ``long``: 2,000).
"""

from __future__ import annotations

import json
import math
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import groktransfer as gt
from groktransfer.checkpoint import flatten, load_checkpoint
from groktransfer.cli import main
from groktransfer.config import ConfigError, RunConfig, from_dict

from test_fuzz import TINY, damage, snapshot  # noqa: F401  (the profiles are registered there)

WEIRD_NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70),
                          st.booleans(), st.none(), st.text(max_size=4))
SHAPES = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)
DTYPES = st.sampled_from([torch.float32, torch.float64, torch.int64, torch.uint8, torch.bool, torch.float16])


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run directory as a kill in the target stage leaves it: the checkpoint written at the
    target's step 2 (kept as the run saved it), the records of the whole run beside it."""
    import groktransfer.pipeline as pipeline

    root = tmp_path_factory.mktemp("interrupted")
    data = json.loads(json.dumps(TINY))
    data["weak"]["population"], data["checkpoint"] = 1, {"every_steps": 1, "every_seconds": None}
    kept = {}
    save = pipeline.save_checkpoint

    def keep_step_two(path, state):
        save(path, state)
        if state["stage"] == "target" and state["train"]["step"] == 2:
            kept["bytes"] = Path(path).read_bytes()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "save_checkpoint", keep_step_two)
        pipeline.run_experiment(from_dict(RunConfig, data), root / "run", plots=False)
    (root / "run" / pipeline.CHECKPOINT_FILE).write_bytes(kept["bytes"])
    summary = json.loads((root / "run" / "summary.json").read_text())
    (root / "run" / "summary.json").write_text(json.dumps({**summary, "complete": False}))
    assert load_checkpoint(root / "run" / pipeline.CHECKPOINT_FILE)["stage"] == "target"
    return root / "run"


def resume_property(capsys, run) -> int:
    before = snapshot(run)
    capsys.readouterr()
    code = main(["resume", str(run), "--no-progress"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    if code == 2:
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("groktransfer: error: "), captured.err
        assert snapshot(run) == before
    else:
        assert code == 0, captured.err
        assert json.loads((run / "summary.json").read_text())["complete"]
    return code


@given(which=st.sampled_from(["summary.json", "metrics.csv", "diagnostics.csv", "weak_embedding.safetensors"]),
       how=st.sampled_from(["truncate", "garbage", "replace"]), where=st.floats(0, 0.999))
def test_resume_with_a_damaged_record_repairs_it_or_refuses(workdir, capsys, interrupted, which, how, where):
    """The records beside the checkpoint: the checkpoint holds what they hold, so a resume either
    rewrites them or refuses in one line; it never reads a damaged one as if it were whole."""
    run = workdir / f"run-{uuid.uuid4().hex[:8]}"
    shutil.copytree(interrupted, run)
    path = run / which
    path.write_bytes(damage(path.read_bytes(), how, where))
    resume_property(capsys, run)


@given(edit=st.sampled_from(["drop", "reshape", "retype", "json"]), pick=st.floats(0, 0.999), shape=SHAPES,
       dtype=DTYPES, value=WEIRD_NUMBERS)
def test_resume_from_a_structurally_damaged_checkpoint_refuses_or_finishes(workdir, capsys, interrupted, edit, pick,
                                                                          shape, dtype, value):
    """A checkpoint whose bytes are intact but whose content is not: a tensor missing, of another
    shape or type, or a value of its JSON skeleton replaced (a step, a stage, a flag)."""
    from safetensors.torch import save_file

    from groktransfer.pipeline import CHECKPOINT_FILE

    run = workdir / f"run-{uuid.uuid4().hex[:8]}"
    shutil.copytree(interrupted, run)
    state = load_checkpoint(run / CHECKPOINT_FILE)
    tensors: dict = {}
    skeleton = flatten(state, tensors)
    keys = sorted(tensors)
    key = keys[int(pick * len(keys))]
    if edit == "drop":
        tensors.pop(key)
    elif edit == "reshape":
        tensors[key] = torch.zeros(shape, dtype=tensors[key].dtype)
    elif edit == "retype":
        tensors[key] = tensors[key].to(dtype)
    else:
        leaves = [(parent, k) for parent, k in _json_leaves(skeleton)]
        parent, k = leaves[int(pick * len(leaves))]
        parent[k] = value
    save_file(tensors, str(run / CHECKPOINT_FILE), metadata={"state": json.dumps(skeleton)})
    resume_property(capsys, run)


def _json_leaves(node):
    """(container, key) of every scalar in a checkpoint's JSON skeleton (tensor references left out)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(value, (dict, list)) and not (isinstance(value, dict) and set(value) == {"__tensor__"}):
            yield from _json_leaves(value)
        elif not isinstance(value, (dict, list)):
            yield node, key


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- the Hugging Face sidecar ------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_gpt2(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=11, n_positions=2, n_embd=16, n_layer=1, n_head=2, bos_token_id=None, eos_token_id=None))
    gt.transfer_embedding(torch.randn(11, 4), model, seed=0)
    path = tmp_path_factory.mktemp("gpt2") / "kept"
    gt.save_pretrained(model, path)
    return path, transformers.GPT2LMHeadModel


@given(field=st.sampled_from(["rows", "rank", "dim", "lr_scale", "freeze_a", "module", "top"]), value=WEIRD_NUMBERS)
def test_a_damaged_sidecar_loads_or_is_refused_in_one_line(workdir, saved_gpt2, field, value):
    path, model_class = saved_gpt2
    folder = workdir / f"m-{uuid.uuid4().hex[:8]}"
    shutil.copytree(path, folder)
    data = json.loads((folder / "groktransfer.json").read_text())
    entry = data["factorized_embeddings"]["transformer.wte"]
    if field == "module":
        data["factorized_embeddings"] = {str(value): entry}
    elif field == "top":
        data = {"factorized_embeddings": value}
    else:
        entry[field] = value
    (folder / "groktransfer.json").write_text(json.dumps(data, allow_nan=True))
    try:
        model = gt.from_pretrained(model_class, folder)
    except ConfigError as err:
        message = str(err)
        assert "\n" not in message and ("groktransfer.json" in message or "has no module" in message), message
        return
    assert model(torch.tensor([[1, 2]])).logits.shape == (1, 2, 11)


# --- MNIST files ---------------------------------------------------------------------------------

@given(which=st.sampled_from(["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                              "t10k-labels-idx1-ubyte"]),
       how=st.sampled_from(["truncate", "garbage", "replace", "header", "not gzip"]), where=st.floats(0, 0.999),
       number=st.integers(0, 2**32 - 1))
def test_damaged_mnist_files_load_or_are_refused_in_one_line_naming_the_file(workdir, which, how, where, number):
    from groktransfer.tasks import DigitsTask

    folder = workdir / f"mnist-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 20)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (n, 28, 28))), ("labels-idx1", rng.integers(0, 10, n))):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(int(k).to_bytes(4, "big") for k in array.shape)
            (folder / f"{split}-{kind}-ubyte").write_bytes(header + array.astype(np.uint8).tobytes())
    path = folder / which
    data = path.read_bytes()
    if how == "header":  # one size field of the header replaced by any 32-bit number (an absurd count, say)
        field = 4 + 4 * int(where * data[3])
        data = data[:field] + number.to_bytes(4, "big") + data[field + 4:]
    elif how == "not gzip":  # named .gz, but plain bytes
        path.unlink()
        path = path.with_name(path.name + ".gz")
    else:
        data = damage(data, how, where)
    path.write_bytes(data)
    try:
        task = DigitsTask(n_train=10, n_test=5, data_dir=str(folder))
    except ConfigError as err:
        assert "\n" not in str(err) and "ubyte" in str(err), str(err)
        return
    assert task.x_train.shape == (10, 784) and int(task.y_train.max()) <= 9


# --- the Python API ------------------------------------------------------------------------------

@given(b_scale=WEIRD_NUMBERS, lr_scale=WEIRD_NUMBERS, seed=WEIRD_NUMBERS,
       b_init=st.sampled_from(["uniform", "normal", "gauss", "", None]),
       rows=st.integers(0, 9), cols=st.integers(0, 5), fill=st.sampled_from([0.0, 1.0, math.nan, math.inf]))
def test_transfer_embedding_builds_or_refuses_naming_the_argument(b_scale, lr_scale, seed, b_init, rows, cols, fill):
    weak = torch.randn(rows, cols)
    if fill != 1.0 and weak.numel():
        weak[0, 0] = fill
    try:
        module = gt.transfer_embedding(weak, gt.FNN(7, 7, embed_dim=8, width=8), b_scale=b_scale, lr_scale=lr_scale,
                                       seed=seed, b_init=b_init)
    except (ConfigError, TypeError) as err:
        assert "\n" not in str(err) and str(err)
        return
    assert module.A.shape == (7, cols) and bool(torch.isfinite(module.B).all())


@given(method=st.one_of(st.text(max_size=20), st.sampled_from(["grokfast-ema", "grokfast-ma+orthograd", "omnigrok",
                                                              "orthograd+orthograd", "stablemax"]), st.none()),
       settings=st.dictionaries(st.sampled_from(["alpha", "lamb", "window", "factor", "start_step", "bogus"]),
                                WEIRD_NUMBERS, max_size=3))
def test_attach_installs_or_refuses_naming_the_argument(method, settings):
    model = gt.FNN(5, 5, embed_dim=4, width=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    try:
        handle = gt.attach(optimizer, model, method, **settings)
    except (ConfigError, TypeError) as err:
        assert "\n" not in str(err) and str(err)
        return
    x = torch.randint(0, 5, (4, 2))
    torch.nn.functional.cross_entropy(model(x), torch.zeros(4, dtype=torch.long)).backward()
    optimizer.step()
    handle.remove()


@given(edits=st.dictionaries(st.sampled_from(["x_train", "y_train", "x_test", "y_test"]),
                             st.sampled_from(["empty", "shorter", "shift+", "shift-", "float"]), max_size=2))
def test_train_runs_or_refuses_a_damaged_task_naming_it(edits):
    task = gt.ModularTask("add", p=7)
    for name, edit in edits.items():
        value = getattr(task, name)
        value = {"empty": value[:0], "shorter": value[:-1], "shift+": value + 7, "shift-": value - 7,
                 "float": value.float()}[edit]
        setattr(task, name, value)
    try:
        result = gt.train(gt.FNN(7, 7, embed_dim=4, width=8), task, gt.TrainConfig(max_steps=2, eval_every=1))
    except (ConfigError, TypeError) as err:
        assert "\n" not in str(err) and str(err)
        return
    assert result.steps == 2
