"""The batched engine against train() run one model at a time, step by step."""

import copy
from types import SimpleNamespace

import pytest
import torch

from groktransfer.config import ConfigError, GrokFastConfig, MethodsConfig, TaskConfig, TrainConfig
from groktransfer.diagnostics import Diagnostics
from groktransfer.methods import build_hooks, loss_function
from groktransfer.models import FNN
from groktransfer.engine import RunSpec, train_many
from groktransfer.tasks import ModularTask
from groktransfer.engine import train
from groktransfer.transfer import transfer_embedding

METHODS = {
    "plain": MethodsConfig(),
    "grokfast-ema": MethodsConfig(grokfast=GrokFastConfig(filter="ema", alpha=0.9, lamb=2.0, warmup_steps=7)),
    "grokfast-ma": MethodsConfig(grokfast=GrokFastConfig(filter="ma", window=10, start_step=5)),
    "orthograd": MethodsConfig(orthograd=True),
    "stablemax": MethodsConfig(loss="stablemax"),
    "omnigrok": MethodsConfig(norm_constraint=0.8),
}


def make_spec(seed, data_seed, lr, methods, *, dtype="float64", batch_size=None, factorized=False, init_scale=1.0,
              steps=120, stop=None, warmup=0, lamb=None, lr_scale=1.0, style="decoupled"):
    task = ModularTask.from_config(TaskConfig(op="add", p=13, train_fraction=0.5, data_seed=data_seed))
    model = FNN(task.vocab_size, task.n_classes, 6, 24, 1, init_scale=init_scale, seed=seed)
    weak_matrix = None
    if factorized:
        a = torch.randn(task.vocab_size, 3, generator=torch.Generator().manual_seed(100 + seed))
        weak_matrix = transfer_embedding(a, model, seed=seed + 2, lr_scale=lr_scale).A.detach().clone()
    if lamb is not None:
        methods = copy.deepcopy(methods)
        methods.grokfast.lamb = lamb
    train_config = TrainConfig(
        lr=lr, weight_decay=0.0 if methods.norm_constraint else 0.5, max_steps=steps, stop_at_test_acc=stop,
        batch_size=batch_size, warmup_steps=warmup, dtype=dtype, eval_dense_until=20, eval_every=7,
        weight_decay_style=style,
    )
    return RunSpec(model, task, train_config, seed=seed, methods=methods, weak_matrix=weak_matrix)


def run_sequentially(specs):
    out = []
    for spec in specs:
        model = copy.deepcopy(spec.model)
        result = train(model, spec.task, spec.train, seed=spec.seed, hooks=build_hooks(model, spec.methods),
                       loss_fn=loss_function(spec.methods), diagnostics=Diagnostics(spec.weak_matrix))
        out.append((result, model))
    return out


def assert_same(sequential, batched, specs, tol):
    for (expected, model), got, spec in zip(sequential, batched, specs):
        assert (got.status, got.steps, got.diverged_step) == (expected.status, expected.steps, expected.diverged_step)
        assert [r["step"] for r in got.history] == [r["step"] for r in expected.history]
        for a, b in zip(expected.history, got.history):
            for key in ("train_loss", "train_acc", "test_loss", "test_acc", "weight_norm"):
                assert b[key] == pytest.approx(a[key], rel=tol, abs=tol, nan_ok=True), (a["step"], key)
            assert list(b["diagnostics"]) == list(a["diagnostics"])
            for key, value in a["diagnostics"].items():
                assert b["diagnostics"][key] == pytest.approx(value, rel=tol, abs=tol, nan_ok=True), (a["step"], key)
        assert got.flops == expected.flops
        for (name, p), (_, q) in zip(model.named_parameters(), spec.model.named_parameters()):
            torch.testing.assert_close(q, p, rtol=tol, atol=tol, equal_nan=True, msg=name)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("variant", ["full-batch", "minibatch-factorized"])
def test_equals_sequential_in_float64(method, variant):
    # Three runs that differ in seed, data split, lr, init scale, warm-up and GrokFast's λ.
    kwargs = {"batch_size": 40, "factorized": True} if variant == "minibatch-factorized" else {}
    lamb = [None, 1.0, 3.0] if METHODS[method].grokfast is not None else [None] * 3
    specs = [
        make_spec(0, 0, 1e-2, METHODS[method], lamb=lamb[0], **kwargs),
        make_spec(1, 1, 3e-3, METHODS[method], init_scale=0.7, warmup=5, lamb=lamb[1], **kwargs),
        make_spec(2, 0, 1e-2, METHODS[method], lamb=lamb[2], **kwargs),
    ]
    sequential = run_sequentially(specs)
    assert_same(sequential, train_many(specs), specs, tol=1e-9)


def test_equals_sequential_in_float32_over_a_short_run():
    specs = [make_spec(s, s, 3e-3, METHODS["grokfast-ema"], dtype="float32", steps=30, factorized=True) for s in range(3)]
    sequential = run_sequentially(specs)
    assert_same(sequential, train_many(specs), specs, tol=1e-4)


def test_coupled_weight_decay_equals_torch_adam_in_a_mixed_batch():
    # Sequentially a coupled run trains with torch.optim.Adam(weight_decay=...), the independent
    # reference; in the batch it shares one step with decoupled (AdamW) runs.
    specs = [make_spec(0, 0, 1e-2, METHODS["grokfast-ema"], style="coupled"),
             make_spec(1, 1, 3e-3, METHODS["grokfast-ema"], warmup=5),
             make_spec(2, 0, 1e-2, METHODS["grokfast-ema"], style="coupled", init_scale=0.7)]
    sequential = run_sequentially(specs)
    assert_same(sequential, train_many(specs), specs, tol=1e-9)
    decoupled = run_sequentially([make_spec(0, 0, 1e-2, METHODS["grokfast-ema"])])
    assert decoupled[0][0].history[-1]["train_loss"] != pytest.approx(sequential[0][0].history[-1]["train_loss"])


def test_finished_runs_leave_the_batch_and_the_rest_continue_unchanged():
    # The test set is the training set here, so a run "reaches the target" once it fits:
    # run 1 (lr 0.05) does so long before runs 0 and 2 (lr 0.001); run 3 diverges at once.
    specs = [
        make_spec(0, 0, 1e-3, METHODS["plain"], stop=0.9, steps=300),
        make_spec(1, 0, 5e-2, METHODS["plain"], stop=0.9, steps=300),
        make_spec(2, 0, 1e-3, METHODS["plain"], stop=0.9, steps=300),
        make_spec(3, 0, 1e300, METHODS["plain"], stop=0.9, steps=300),
    ]
    task = specs[0].task
    memorise = SimpleNamespace(x_train=task.x_train, y_train=task.y_train, x_test=task.x_train, y_test=task.y_train)
    for spec in specs:
        spec.task = memorise
    sequential = run_sequentially(specs)
    evaluated = {}
    batched = train_many(specs, on_eval=lambda run, row: evaluated.setdefault(row["step"], []).append(run))
    assert_same(sequential, batched, specs, tol=1e-9)
    statuses = [r.status for r in batched]
    assert statuses[1] == "target_reached" and statuses[3] == "diverged"
    assert batched[1].steps < batched[0].steps
    # After a run has finished it is never evaluated (or trained) again.
    after = [step for step in evaluated if step > batched[1].steps]
    assert after and all(1 not in evaluated[step] and 3 not in evaluated[step] for step in after)


def test_runs_that_cannot_share_a_batch_are_refused_by_name():
    specs = [make_spec(0, 0, 1e-2, METHODS["plain"]), make_spec(1, 0, 1e-2, METHODS["plain"], steps=50)]
    with pytest.raises(ConfigError, match="runs 0 and 1 differ in train.max_steps"):
        train_many(specs)
    specs = [make_spec(0, 0, 1e-2, METHODS["plain"]), make_spec(1, 0, 1e-2, METHODS["orthograd"])]
    with pytest.raises(ConfigError, match="methods.orthograd"):
        train_many(specs)


def test_bf16_precision_trains_and_is_close_to_float32():
    specs = [make_spec(0, 0, 3e-3, METHODS["plain"], dtype="float32", steps=20)]
    reference = train_many(copy.deepcopy(specs))[0].history[-1]["train_loss"]
    specs[0].train.precision = "bf16"
    result = train_many(specs)[0]
    assert result.history[-1]["train_loss"] == pytest.approx(reference, rel=0.05)


def test_a_and_b_at_a_fraction_of_the_learning_rate_batched_and_alone():
    # transfer_embedding(lr_scale=0.2): A and B train at 0.2 × lr (with warm-up), everything else at lr.
    specs = [make_spec(s, s, 1e-2, METHODS["plain"], factorized=True, lr_scale=0.2, warmup=5 * s) for s in range(2)]
    sequential = run_sequentially(specs)
    assert_same(sequential, train_many(specs), specs, tol=1e-9)
    # An independent loop: torch's AdamW with two explicit parameter groups and a hand-written warm-up.
    spec = make_spec(1, 1, 1e-2, METHODS["plain"], factorized=True, lr_scale=0.2, warmup=5)
    model = copy.deepcopy(spec.model).double()  # train() trains in the spec's float64
    embedding = model.get_input_embeddings()
    ab = [embedding.A, embedding.B]
    rest = [p for p in model.parameters() if all(p is not q for q in ab)]
    optimizer = torch.optim.AdamW([{"params": rest, "base": 1e-2}, {"params": ab, "base": 2e-3}], lr=1e-2,
                                  weight_decay=0.5)
    for step in range(spec.train.max_steps):
        for group in optimizer.param_groups:
            group["lr"] = group["base"] * min(1.0, (step + 1) / 5)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(spec.task.x_train), spec.task.y_train).backward()
        optimizer.step()
    train(spec.model, spec.task, spec.train, seed=spec.seed)
    for (name, p), (_, q) in zip(model.named_parameters(), spec.model.named_parameters()):
        torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-9, msg=name)
    # Runs with different scales share a batch (the scale is per run: transfer.ab_lr_scale_unfinished
    # gives runs of one configuration different ones), each as it trains alone, also after the
    # batch shrinks to a run of one (the first run reaches its stop at step 70, the other never).
    mixed = [make_spec(s, s, 0.1, METHODS["plain"], factorized=True, lr_scale=scale, stop=0.1) for s, scale in
             enumerate((1.0, 0.05))]
    sequential = run_sequentially(mixed)
    assert [r.status for r, _ in sequential] == ["target_reached", "max_steps"]
    assert_same(sequential, train_many(mixed), mixed, tol=1e-9)


@pytest.mark.parametrize("method", ["plain", "grokfast-ema", "grokfast-ma", "omnigrok", "orthograd"])
@pytest.mark.parametrize("when", ["early", "after-a-run-finished"])
def test_an_interrupted_batch_resumes_to_the_same_bits(tmp_path, method, when):
    """A batch stopped early, or just after its first run finished and left it,
    saved to a checkpoint file, read back and continued from freshly built models, ends with the
    very results and weights of the same batch never interrupted: histories, statuses, every bit."""
    from groktransfer.checkpoint import load_checkpoint, save_checkpoint
    from groktransfer.training import Checkpointer, RunInterrupted

    def specs():
        made = [make_spec(0, 0, 1e-3, METHODS[method], dtype="float32", stop=0.9, steps=160, batch_size=40),
                make_spec(1, 0, 5e-2, METHODS[method], dtype="float32", stop=0.9, steps=160, batch_size=40),
                make_spec(2, 1, 3e-3, METHODS[method], dtype="float32", stop=0.9, steps=160, batch_size=40,
                          warmup=5, init_scale=0.7)]
        task = made[0].task  # test = train, so that run 1 "reaches the target" once it fits
        for spec in made:
            spec.task = SimpleNamespace(x_train=task.x_train, y_train=task.y_train, x_test=task.x_train,
                                        y_test=task.y_train)
        return made

    whole = specs()
    expected = train_many(whole)
    first = min(r.steps for r in expected)
    stop_at = 3 if when == "early" else (first + 3 if first < 150 else 120)
    interrupted = specs()
    path = tmp_path / "batch.safetensors"
    steps = iter(range(10_000))
    checkpointer = Checkpointer(save=lambda state: save_checkpoint(path, state),
                                stop_requested=lambda: next(steps) >= stop_at)
    with pytest.raises(RunInterrupted):
        train_many(interrupted, checkpointer=checkpointer)
    state = load_checkpoint(path)
    assert state["step"] == stop_at and len(state["index"]) == sum(r.steps >= stop_at for r in expected)
    resumed_specs = specs()
    resumed = train_many(resumed_specs, resume=state)
    for want, got, want_spec, got_spec in zip(expected, resumed, whole, resumed_specs):
        assert (got.status, got.steps, got.diverged_step, got.flops) == (want.status, want.steps, want.diverged_step,
                                                                          want.flops)
        strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]  # noqa: E731
        assert strip(got.history) == strip(want.history)
        for (name, p), (_, q) in zip(want_spec.model.named_parameters(), got_spec.model.named_parameters()):
            assert torch.equal(p, q), name


def test_a_batch_checkpoint_refuses_another_batch():
    from groktransfer.training import CheckpointMismatch, Checkpointer, RunInterrupted

    saved = {}
    steps = iter(range(10_000))
    specs = [make_spec(s, s, 1e-2, METHODS["plain"], steps=40) for s in range(3)]
    with pytest.raises(RunInterrupted):
        train_many(specs, checkpointer=Checkpointer(save=saved.update, stop_requested=lambda: next(steps) >= 5))
    with pytest.raises(CheckpointMismatch, match="a batch of 3 runs, not 2"):
        train_many([make_spec(s, s, 1e-2, METHODS["plain"], steps=40) for s in range(2)], resume=dict(saved))
