"""The speed-up methods against their reference formulas, computed independently."""

import copy
import math
from collections import deque

import pytest
import torch
from torch import nn

from groktransfer import FNN, ConfigError, ModularTask, TrainConfig, load_preset, train
from groktransfer.methods import GrokFastEMA, GrokFastMA, NormConstraint, OrthoGrad, stablemax_cross_entropy

STEPS = 120


def total_norm(model) -> float:
    """The L2 norm of all parameters taken together, in float64."""
    return math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in model.parameters()))


def make_model():
    return FNN(11, 11, embed_dim=6, width=12, depth=1, seed=0)


def batch(step):
    g = torch.Generator().manual_seed(step)
    x = torch.randint(0, 11, (32, 2), generator=g)
    return x, (x[:, 0] + x[:, 1]) % 11


def reference_ema(alpha, lamb):
    state = {}

    def apply(name, g, step):
        h = state.get(name)
        state[name] = g.clone() if h is None else alpha * h + (1 - alpha) * g
        return g + lamb * state[name]

    return apply


def reference_ma(window, lamb):
    state = {}

    def apply(name, g, step):
        q = state.setdefault(name, deque(maxlen=window))
        q.append(g.clone())
        return g + lamb * torch.stack(list(q)).mean(0) if len(q) == window else g

    return apply


def run_pair(make_filter, reference, set_to_none, reload_at=None, start_step=0, warmup=0, base_lamb=None):
    """Train two twins with SGD: one through our filter, one through the reference recurrence."""
    ours, ref = make_model(), make_model()
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.05)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.05)
    filt = make_filter(ours)
    for step in range(STEPS):
        x, y = batch(step)
        for model, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad(set_to_none=set_to_none)
            nn.functional.cross_entropy(model(x), y).backward()
        if reload_at is not None and step == reload_at:
            state = copy.deepcopy(filt.state_dict())
            filt = make_filter(ours)
            filt.load_state_dict(state)
        filt.after_backward(step)
        if step >= start_step:
            scale = 1.0 if warmup == 0 else min(1.0, (step - start_step + 1) / warmup)
            for name, p in ref.named_parameters():
                p.grad = reference(name, p.grad.detach().clone(), step, scale)
        for (n1, p1), (n2, p2) in zip(ours.named_parameters(), ref.named_parameters()):
            torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-5, atol=1e-7, msg=f"step {step} {n1}")
        opt_ours.step()
        opt_ref.step()
    return ours, ref


@pytest.mark.parametrize("set_to_none", [True, False])
@pytest.mark.parametrize("reload_at", [None, 57])
def test_grokfast_ema_follows_the_reference_recurrence(set_to_none, reload_at):
    alpha, lamb = 0.9, 2.0
    ema = reference_ema(alpha, lamb)
    run_pair(lambda m: GrokFastEMA(m, alpha=alpha, lamb=lamb), lambda n, g, s, k: ema(n, g, s),
             set_to_none, reload_at)


@pytest.mark.parametrize("set_to_none", [True, False])
@pytest.mark.parametrize("reload_at", [None, 33])
def test_grokfast_ma_follows_the_reference_window_mean(set_to_none, reload_at):
    window, lamb = 10, 5.0
    ma = reference_ma(window, lamb)
    run_pair(lambda m: GrokFastMA(m, window=window, lamb=lamb), lambda n, g, s, k: ma(n, g, s),
             set_to_none, reload_at)


def test_grokfast_start_step_and_warmup():
    alpha, lamb, start, warmup = 0.8, 3.0, 20, 10
    state = {}

    def reference(name, g, step, scale):
        h = state.get(name)
        state[name] = g.clone() if h is None else alpha * h + (1 - alpha) * g
        return g + lamb * scale * state[name]

    run_pair(lambda m: GrokFastEMA(m, alpha=alpha, lamb=lamb, start_step=start, warmup_steps=warmup),
             reference, True, start_step=start, warmup=warmup)


def test_filters_skip_parameters_without_gradient():
    model = make_model()
    model.unused = nn.Parameter(torch.ones(3))
    x, y = batch(0)
    for filt in (GrokFastEMA(model), GrokFastMA(model, window=2)):
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        filt.after_backward(0)
        assert model.unused.grad is None
    assert "unused" not in GrokFastEMA(model).state_dict()["ema"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda m: GrokFastEMA(m, alpha=2.0), "alpha"),
        (lambda m: GrokFastEMA(m, alpha=-0.1), "alpha"),
        (lambda m: GrokFastEMA(m, lamb=-1.0), "lamb"),
        (lambda m: GrokFastMA(m, window=0), "window"),
        (lambda m: NormConstraint(m, factor=0.0), "norm_constraint"),
    ],
)
def test_bad_method_parameters_are_refused(make, message):
    with pytest.raises(ConfigError, match=message):
        make(make_model())


def direct_stablemax_loss(logits, labels):
    total = 0.0
    for row, label in zip(logits.tolist(), labels.tolist()):
        s = [x + 1.0 if x >= 0 else 1.0 / (1.0 - x) for x in row]
        total += -math.log(s[label] / sum(s))
    return total / len(labels)


def test_stablemax_matches_a_direct_float64_computation():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 9, generator=g) * 30  # large logits: softmax would collapse in float32
    logits[0, :3] = torch.tensor([0.0, 1.0, -1.0])  # the branch points
    labels = torch.randint(0, 9, (40,), generator=g)
    loss = stablemax_cross_entropy(logits, labels)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(direct_stablemax_loss(logits, labels), rel=1e-12)


def test_stablemax_gradient_is_finite_and_correct():
    logits = torch.tensor([[1.0, -2.0, 0.0, 3.5]], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([2])
    torch.autograd.gradcheck(lambda z: stablemax_cross_entropy(z, labels), (logits,))
    stablemax_cross_entropy(logits, labels).backward()
    assert torch.isfinite(logits.grad).all()


def test_orthograd_is_orthogonal_to_the_weights_and_keeps_the_norm():
    model = make_model()
    x, y = batch(1)
    nn.functional.cross_entropy(model(x), y).backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    OrthoGrad(model).after_backward(0)
    for name, p in model.named_parameters():
        g = p.grad.double().reshape(-1)
        w = p.detach().double().reshape(-1)
        assert abs(g.dot(w).item()) <= 1e-6 * g.norm().item() * w.norm().item(), name
        assert g.norm().item() == pytest.approx(before[name].double().norm().item(), rel=1e-5), name
        # What is left is exactly the orthogonal part, rescaled: compare with the formula.
        g0 = before[name].double().reshape(-1)
        perp = g0 - (w.dot(g0) / w.dot(w)) * w
        torch.testing.assert_close(g, perp * g0.norm() / perp.norm(), rtol=1e-5, atol=1e-9)


def test_norm_constraint_holds_after_every_step():
    task = ModularTask("add", p=11, train_fraction=0.5)
    model = make_model()
    initial = total_norm(model)
    constraint = NormConstraint(model, factor=0.7)
    seen = []

    class Probe:
        def after_backward(self, step):
            pass

        def after_step(self, step):
            seen.append(total_norm(model))

    train(model, task, TrainConfig(max_steps=30, lr=0.05, weight_decay=0.0, stop_at_test_acc=None),
          hooks=[constraint, Probe()])
    assert len(seen) == 30
    assert all(v == pytest.approx(0.7 * initial, rel=1e-5) for v in seen)


def test_methods_run_through_the_config_and_pipeline():
    config = load_preset("demo", [
        "weak=null", "target=null", "task.p=11", "scratch.train.max_steps=5",
        "scratch.methods.grokfast.filter=ma", "scratch.methods.grokfast.window=2",
        "scratch.methods.orthograd=true", "scratch.methods.loss=stablemax",
    ])
    from groktransfer import run_experiment

    summary = run_experiment(config)
    assert summary["stages"]["scratch"]["steps"] == 5
    assert config.scratch.methods.grokfast.resolved_lamb() == 5.0


def test_norm_constraint_refuses_weight_decay():
    with pytest.raises(ConfigError, match="scratch.methods.norm_constraint: needs train.weight_decay: 0"):
        load_preset("demo", ["scratch.methods.norm_constraint=1.0"])


@pytest.mark.parametrize("make", [lambda m: GrokFastEMA(m, alpha=0.9), lambda m: GrokFastMA(m, window=7)])
def test_filter_reload_is_bit_exact(make):
    """Saving and loading the filter state mid-run changes nothing, to the last bit."""
    finals = []
    for reload_at in (None, 45):
        model = make_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        filt = make(model)
        for step in range(60):
            x, y = batch(step)
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            if step == reload_at:
                state = copy.deepcopy(filt.state_dict())
                filt = make(model)
                filt.load_state_dict(state)
            filt.after_backward(step)
            opt.step()
        finals.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*finals))
