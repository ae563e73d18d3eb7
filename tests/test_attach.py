"""Methods attached to any optimizer equal the same methods run by gt.train, step by step."""

import copy
import re

import pytest
import torch

import groktransfer as gt
from groktransfer.config import ConfigError, GrokFastConfig, MethodsConfig, TaskConfig, TrainConfig
from groktransfer.methods import build_hooks

CASES = {
    "grokfast-ema": ({"alpha": 0.9, "lamb": 2.0, "warmup_steps": 3}, MethodsConfig(
        grokfast=GrokFastConfig(filter="ema", alpha=0.9, lamb=2.0, warmup_steps=3))),
    "grokfast-ma": ({"window": 5, "lamb": 3.0, "start_step": 2}, MethodsConfig(
        grokfast=GrokFastConfig(filter="ma", window=5, lamb=3.0, start_step=2))),
    "orthograd": ({}, MethodsConfig(orthograd=True)),
    "omnigrok": ({"factor": 0.8}, MethodsConfig(norm_constraint=0.8)),
    "grokfast-ema+orthograd": ({"alpha": 0.8}, MethodsConfig(grokfast=GrokFastConfig(filter="ema", alpha=0.8),
                                                              orthograd=True)),
}


def setup(seed=0):
    task = gt.ModularTask.from_config(TaskConfig(op="add", p=11, train_fraction=0.5, data_seed=0))
    model = gt.FNN(11, 11, embed_dim=6, width=16, depth=1, seed=seed).double()
    return task, model


def plain_loop(model, task, optimizer, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(task.x_train), task.y_train).backward()
        optimizer.step()


@pytest.mark.parametrize("method", list(CASES))
def test_attached_to_adamw_equals_gt_train(method):
    settings, config = CASES[method]
    wd = 0.0 if config.norm_constraint is not None else 0.5
    task, model = setup()
    reference = copy.deepcopy(model)
    gt.train(reference, task, TrainConfig(lr=1e-2, weight_decay=wd, max_steps=25, stop_at_test_acc=None,
                                          dtype="float64", diagnostics=False),
             hooks=build_hooks(reference, config))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=wd)
    handle = gt.attach(optimizer, model, method, **settings)
    plain_loop(model, task, optimizer, 25)
    assert handle.step == 25
    for (name, p), (_, q) in zip(reference.named_parameters(), model.named_parameters()):
        torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-9, msg=name)


def test_state_round_trips_and_remove_detaches():
    task, model = setup()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    handle = gt.attach(optimizer, model, "grokfast-ma", window=4)
    plain_loop(model, task, optimizer, 6)
    saved = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()), handle.state_dict())
    plain_loop(model, task, optimizer, 6)
    straight = copy.deepcopy(model.state_dict())
    # A fresh model, optimizer and handle, loaded from the state after 6 steps, continue identically.
    _, again = setup(seed=5)
    again.load_state_dict(saved[0])
    optimizer2 = torch.optim.AdamW(again.parameters(), lr=1e-2)
    optimizer2.load_state_dict(saved[1])
    handle2 = gt.attach(optimizer2, again, "grokfast-ma", window=4)
    handle2.load_state_dict(saved[2])
    plain_loop(again, task, optimizer2, 6)
    for name, value in straight.items():
        torch.testing.assert_close(again.state_dict()[name], value, rtol=0, atol=0, msg=name)
    # remove(): the optimizer is plain AdamW again.
    handle2.remove()
    plain = copy.deepcopy(again)
    optimizer3 = torch.optim.AdamW(plain.parameters(), lr=1e-2)
    optimizer3.load_state_dict(copy.deepcopy(optimizer2.state_dict()))  # its own state tensors
    plain_loop(again, task, optimizer2, 3)
    plain_loop(plain, task, optimizer3, 3)
    for (name, p), (_, q) in zip(plain.named_parameters(), again.named_parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=0, msg=name)
    assert handle2.step == 12


@pytest.mark.parametrize("args, message", [
    (("stablemax",), "stablemax is a loss"),
    (("adam",), "method 'adam': unknown"),
    (("grokfast-ema+grokfast-ma",), "both GrokFast filters"),
    (("orthograd", {"alpha": 0.9}), "alpha: not a setting of orthograd"),
    (("grokfast-ema", {"alpha": 1.5}), "alpha: got 1.5; must be in [0, 1)"),
])
def test_attach_refuses_what_it_cannot_do(args, message):
    task, model = setup()
    optimizer = torch.optim.AdamW(model.parameters())
    settings = args[1] if len(args) > 1 else {}
    with pytest.raises(ConfigError, match=re.escape(message)):
        gt.attach(optimizer, model, args[0], **settings)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        gt.attach("adamw", model, "orthograd")
