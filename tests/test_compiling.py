"""train.compile: a compiled step computes what the eager step computes, and falls back cleanly."""

import copy
import dataclasses

import pytest
import torch

from groktransfer.compiling import CompiledStep
from groktransfer.config import MethodsConfig
from groktransfer.engine import train_many
from tests.test_multirun import assert_same, make_spec, run_sequentially


def with_compile(spec, compile_on=True):
    spec = copy.copy(spec)
    spec.model = copy.deepcopy(spec.model)
    spec.train = dataclasses.replace(spec.train, compile=compile_on)
    return spec


def test_compiled_single_run_and_batch_equal_the_eager_runs():
    torch._dynamo.reset()
    specs = [make_spec(seed, seed, lr, MethodsConfig(), dtype="float32", steps=40) for seed, lr in [(0, 3e-3), (1, 1e-2)]]
    eager = run_sequentially(specs)
    compiled_single = run_sequentially([with_compile(s) for s in specs])
    assert all(result.compiled for result, _ in compiled_single)
    assert not any(result.compiled for result, _ in eager)
    # Each compiled run against its eager twin (float32: kernels may fuse differently).
    for (expected, _), (got, _) in zip(eager, compiled_single):
        assert [r["step"] for r in got.history] == [r["step"] for r in expected.history]
        for a, b in zip(expected.history, got.history):
            assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4, abs=1e-5)
            assert b["test_acc"] == pytest.approx(a["test_acc"], abs=1e-3)
    batched_specs = [with_compile(s) for s in specs]
    batched = train_many(batched_specs)
    assert all(result.compiled for result in batched)
    assert_same(eager, batched, batched_specs, tol=1e-4)


def test_a_step_that_fails_to_compile_falls_back_to_eager_with_one_warning(monkeypatch):
    calls = []

    def broken_compile(function, **kwargs):
        def compiled(*args):
            calls.append(args)
            raise RuntimeError("backend compiler failed\nmore detail")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    step = CompiledStep(lambda x: x * 2, torch.device("cpu"), enabled=True)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*backend compiler failed.*continuing eagerly"):
        assert step(torch.tensor(3.0)).item() == 6.0
    assert not step.active
    assert step(torch.tensor(4.0)).item() == 8.0  # eager from now on, no second attempt
    assert len(calls) == 1


def test_a_run_whose_compile_fails_matches_the_eager_run_and_records_it(monkeypatch):
    spec = make_spec(0, 0, 1e-2, MethodsConfig(), steps=30)
    (expected, _), = run_sequentially([spec])

    def broken_compile(function, **kwargs):
        def compiled(*args):
            raise RuntimeError("no C++ compiler")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        (got, _), = run_sequentially([with_compile(spec)])
    assert not got.compiled and got.summary()["compiled"] is False
    assert [r["train_loss"] for r in got.history] == [r["train_loss"] for r in expected.history]


def test_errors_of_the_function_itself_are_not_hidden():
    def bad(x):
        raise ValueError("shape mismatch in the model")

    step = CompiledStep(bad, torch.device("cpu"), enabled=False)
    with pytest.raises(ValueError, match="shape mismatch"):
        step(torch.tensor(1.0))
