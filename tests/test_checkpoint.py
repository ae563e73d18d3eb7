"""Checkpoints round-trip exactly, and a resumed training run equals an uninterrupted one."""

import copy

import pytest
import torch

from groktransfer import FNN, ConfigError, ModularTask, TrainConfig, train, transfer_embedding
from groktransfer.checkpoint import load_checkpoint, save_checkpoint
from groktransfer.methods import GrokFastMA, NormConstraint
from groktransfer.training import Checkpointer
from groktransfer.transfer import merge_factorized_embedding


def test_nested_state_round_trips_bit_for_bit(tmp_path):
    state = {"a": torch.randn(3, 4), "opt": {0: {"step": torch.tensor(5.0)}, 1: {}}, "xs": [1, 2.5, None, "s"],
             "t": (True, 0.1 + 0.2), "h": [torch.arange(3), torch.zeros(0)], "tied": None}
    shared = torch.randn(4)
    state["tied"] = [shared, shared[:2]]  # views of one storage are stored as copies
    save_checkpoint(tmp_path / "c.safetensors", state)
    back = load_checkpoint(tmp_path / "c.safetensors")
    assert torch.equal(back["a"], state["a"]) and back["opt"][0]["step"].item() == 5.0 and back["opt"][1] == {}
    assert back["xs"] == [1, 2.5, None, "s"] and back["t"] == (True, 0.1 + 0.2)
    assert torch.equal(back["h"][0], torch.arange(3)) and torch.equal(back["tied"][1], shared[:2])


def test_a_loaded_checkpoint_does_not_depend_on_its_file_afterwards(tmp_path):
    """A loaded checkpoint's tensors are in memory, not mapped from the file: a file cut short in
    place afterwards (a user's editor, a full disk elsewhere) cannot kill the process with SIGBUS
    when training touches them. Run in a child process, since SIGBUS would end this one."""
    import subprocess
    import sys

    code = (
        "import os, torch\n"
        "from groktransfer.checkpoint import load_checkpoint, save_checkpoint\n"
        f"path = {str(tmp_path / 'ckpt.safetensors')!r}\n"
        "save_checkpoint(path, {'w': torch.arange(1_000_000, dtype=torch.float32)})\n"
        "state = load_checkpoint(path)\n"
        "os.truncate(path, 64)\n"
        "print(float(state['w'].sum()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert float(done.stdout) == float(torch.arange(1_000_000, dtype=torch.float32).sum())


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"a": torch.randn(100)})
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ConfigError, match="c.safetensors.*unreadable"):
        load_checkpoint(path)


def strip_time(history):
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in history]


@pytest.mark.parametrize("merge_at, checkpoint_every", [(6, 13), (30, 13), (None, 7)])
def test_resumed_training_equals_uninterrupted_training(tmp_path, merge_at, checkpoint_every):
    task = ModularTask("add", p=13, train_fraction=0.5, data_seed=0)
    config = TrainConfig(lr=0.01, weight_decay=0.0, max_steps=40, batch_size=20, warmup_steps=5,
                         stop_at_test_acc=None, eval_dense_until=3, eval_every=4)

    def build():
        model = FNN(13, 13, embed_dim=8, width=16, depth=1, seed=1)
        transfer_embedding(torch.randn(13, 3, generator=torch.Generator().manual_seed(0)), model, seed=2)
        hooks = [GrokFastMA(model, window=5, lamb=2.0), NormConstraint(model, factor=0.9)]
        events = {merge_at: merge_factorized_embedding} if merge_at is not None else {}
        return model, hooks, events

    model, hooks, events = build()
    full = train(model, task, config, seed=3, hooks=hooks, events=events)
    full_weights = {k: v.clone() for k, v in model.state_dict().items()}

    path = tmp_path / "ckpt.safetensors"
    saved_steps = []

    def save(state):
        saved_steps.append(state["step"])
        save_checkpoint(path, state)

    model, hooks, events = build()
    first = train(model, task, config, seed=3, hooks=hooks, events=events,
                  checkpointer=Checkpointer(save=save, every_steps=checkpoint_every))
    assert saved_steps[:2] == [checkpoint_every, 2 * checkpoint_every]
    # "Crash": throw the model away and resume a fresh build from the last checkpoint.
    state = load_checkpoint(path)
    model, hooks, events = build()
    resumed = train(model, task, config, seed=3, hooks=hooks, events=events, resume=state)

    assert strip_time(resumed.history) == strip_time(full.history) == strip_time(first.history)
    assert resumed.steps == full.steps and resumed.flops == full.flops
    assert model.state_dict().keys() == full_weights.keys()
    assert all(torch.equal(model.state_dict()[k], full_weights[k]) for k in full_weights)


def test_stop_request_saves_and_raises(tmp_path):
    from groktransfer.training import RunInterrupted

    task = ModularTask("add", p=11, train_fraction=0.5)
    saved = []
    calls = iter(range(1000))
    checkpointer = Checkpointer(save=saved.append, stop_requested=lambda: next(calls) >= 9)
    with pytest.raises(RunInterrupted) as info:
        train(FNN(11, 11, embed_dim=4, width=8, depth=1), task, TrainConfig(max_steps=50, stop_at_test_acc=None),
              checkpointer=checkpointer, stage="weak")
    assert info.value.step == 9 and saved[-1]["step"] == 9


def test_a_file_size_limit_is_an_oserror_naming_the_file_and_leaves_nothing(tmp_path):
    """safetensors reports a failed write as its own error type; the package raises the OSError
    it is (errno, file), which the command line turns into one line, and keeps no temporary file.
    Run in a child process with a 4 kB file-size limit (EFBIG, as a full disk gives ENOSPC)."""
    import subprocess
    import sys

    code = (
        "import resource, signal, sys, torch\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "from groktransfer.checkpoint import save_checkpoint\n"
        "try:\n"
        "    save_checkpoint(sys.argv[1], {'w': torch.zeros(100_000)})\n"
        "except OSError as err:\n"
        "    print(err.errno, err.filename)\n")
    target = tmp_path / "c.safetensors"
    done = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=120)
    import errno

    assert done.stdout.split() == [str(errno.EFBIG), str(target)], done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_holding_torch_adamw_state_resumes_exactly(tmp_path):
    """Checkpoints written before the engine kept its own AdamW hold torch.optim.AdamW's state
    dict (one parameter group per learning-rate scale, in named_parameters order). Such a
    checkpoint, made here with a real torch optimizer from the same moments, resumes to the
    weights and history of an uninterrupted run."""
    from groktransfer.training import param_lr_scales

    task = ModularTask("add", p=13, train_fraction=0.5, data_seed=0)
    config = TrainConfig(lr=0.01, weight_decay=0.5, max_steps=30, warmup_steps=4, stop_at_test_acc=None,
                         eval_dense_until=3, eval_every=5)

    def build():
        model = FNN(13, 13, embed_dim=8, width=16, depth=1, seed=1)
        transfer_embedding(torch.randn(13, 3, generator=torch.Generator().manual_seed(0)), model, seed=2,
                           lr_scale=0.5)
        return model

    model = build()
    full = train(model, task, config, seed=3)
    full_weights = {k: v.clone() for k, v in model.state_dict().items()}
    saved = []
    train(build(), task, config, seed=3, checkpointer=Checkpointer(save=lambda s: saved.append(copy.deepcopy(s)),
                                                                  every_steps=13))
    state = saved[0]
    assert state["step"] == 13

    holder = build()
    holder.load_state_dict(state["model"])
    scales = param_lr_scales(holder)
    groups = {}
    for name, p in holder.named_parameters():
        groups.setdefault(scales.get(name, 1.0), []).append(p)
    optimizer = torch.optim.AdamW([{"params": ps, "lr": config.lr * s, "lr_scale": s} for s, ps in groups.items()],
                                  lr=config.lr, weight_decay=config.weight_decay)
    moments = state["optimizer"]
    for name, p in holder.named_parameters():
        optimizer.state[p] = {"step": torch.tensor(float(moments["updates"][name])),
                              "exp_avg": moments["exp_avg"][name].clone(),
                              "exp_avg_sq": moments["exp_avg_sq"][name].clone()}
    state["optimizer"] = optimizer.state_dict()
    path = tmp_path / "old.safetensors"
    save_checkpoint(path, state)

    model = build()
    resumed = train(model, task, config, seed=3, resume=load_checkpoint(path))
    assert strip_time(resumed.history) == strip_time(full.history)
    assert all(torch.equal(model.state_dict()[k], full_weights[k]) for k in full_weights)
