"""The paper's XOR cluster theory (§3), run numerically.

Usage::

    result = xor_theory(p=80_000, n=400, eps=0.05, width=512, seed=0)
    result["target_after_one_step"]   # {"train_acc": 1.0, "test_acc": ...}

Data: ``x = [x_signal, noise]`` with ``x_signal ∈ Unif{±1}²`` and ``noise ∈ Unif{±ε}^{p−2}``;
the label is ``y = x1·x2`` (an XOR of the two signal coordinates). Every model is a
two-layer bias-free ReLU network ``f(x) = Σ_j a_j relu(⟨w_j, x⟩)``, trained on the
exponential loss ``mean(exp(−y·f(x)))`` by full-batch gradient descent with weight decay,
``θ ← (1 − α·λ)·θ − α·∇L`` (α the learning rate, λ the weight decay; the paper writes the
decay factor as (1 − λ), we read λ as the coupled L2 coefficient, as PyTorch's SGD does).

- **Weak model** (Fig. 4b): 3 neurons, first layer N(0, 0.01), second N(0, 1e-4)
  (variances), lr 0.1, wd 0.1. It reaches about 75% test accuracy and its neurons' signal
  parts point along three of the four directions ``[±1, ±1]``.
- **Lemma 3.1**: no 3-neuron network exceeds 75%. Checked by searching: many random and
  gradient-trained 3-neuron networks evaluated on the four noise-free cluster centres (a
  numerical check, not a proof).
- **Transferred target** (Fig. 9): ``f_L(x) = Σ_j a_j relu(⟨v_j, Uᵀx⟩)`` with U the weak
  first layer (p × 3), ``a_j ∈ {±1/√m}`` fixed, ``v_j ∈ {±v_init}³``, only V trained, v_init
  0.4, lr 2.0, wd 0, width m.
- **Theorem 3.2**: after ONE gradient step the target is 100% correct on the training set
  and near-perfect on fresh data. The theorem needs m ≥ 2·log³ n; the result records m.
- ``norm_ratio`` r_W = (‖W_{3:p}‖_F/√(p−2)) / (‖W_{1:2}‖_F/√2) of a weak first layer (Fig. 5).

Test sets are generated and evaluated in chunks, so nothing larger than a chunk of
``chunk × p`` floats is ever materialised beyond the training set. Everything is float32 on
the CPU (or the device given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def xor_data(n: int, p: int, eps: float, generator: torch.Generator, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """n samples: x (n × p) float32 and y (n,) in {±1}."""
    signal = torch.randint(0, 2, (n, 2), generator=generator).float() * 2 - 1
    noise = (torch.randint(0, 2, (n, p - 2), generator=generator).float() * 2 - 1) * eps
    x = torch.cat([signal, noise], dim=1).to(device)
    return x, (signal[:, 0] * signal[:, 1]).to(device)


@dataclass
class TwoLayer:
    """f(x) = relu(x Wᵀ) a, bias-free; W is m × p, a is m."""

    W: torch.Tensor
    a: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W.T) @ self.a


def exponential_loss(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.exp(-y * f).mean()


def gradient_descent(model: TwoLayer, x: torch.Tensor, y: torch.Tensor, lr: float, weight_decay: float, steps: int,
                     train_a: bool = True) -> None:
    """Full-batch GD on the exponential loss: θ ← (1 − lr·wd)·θ − lr·∇L."""
    for _ in range(steps):
        W = model.W.detach().requires_grad_(True)
        a = model.a.detach().requires_grad_(train_a)
        loss = exponential_loss(torch.relu(x @ W.T) @ a, y)
        grads = torch.autograd.grad(loss, [W, a] if train_a else [W])
        with torch.no_grad():
            model.W = (1 - lr * weight_decay) * model.W - lr * grads[0]
            if train_a:
                model.a = (1 - lr * weight_decay) * model.a - lr * grads[1]


@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((torch.sign(model(x)) == y).float().mean())


def weak_model(p: int, neurons: int, generator: torch.Generator, device="cpu") -> TwoLayer:
    """The paper's weak initialisation: first layer N(0, 0.01), second N(0, 1e-4) (variances)."""
    W = torch.randn(neurons, p, generator=generator) * 0.1
    a = torch.randn(neurons, generator=generator) * 0.01
    return TwoLayer(W.to(device), a.to(device))


def default_init(p: int, width: int, generator: torch.Generator, device="cpu") -> TwoLayer:
    """PyTorch's nn.Linear default: U(±1/√fan_in) for both layers."""
    W = (torch.rand(width, p, generator=generator) * 2 - 1) / math.sqrt(p)
    a = (torch.rand(width, generator=generator) * 2 - 1) / math.sqrt(width)
    return TwoLayer(W.to(device), a.to(device))


def norm_ratio(W: torch.Tensor) -> float:
    """r_W: the noise part's per-coordinate norm over the signal part's (Fig. 5)."""
    p = W.shape[1]
    noise = W[:, 2:].norm() / math.sqrt(p - 2)
    signal = W[:, :2].norm() / math.sqrt(2)
    return float(noise / signal)


def alignment(W: torch.Tensor) -> list[dict]:
    """For each neuron: the direction [±1, ±1] its signal part is closest to, and the cosine."""
    out = []
    for w in W[:, :2]:
        direction = torch.sign(w)
        cosine = float(w @ direction / (w.norm() * math.sqrt(2)).clamp_min(1e-30))
        out.append({"direction": direction.tolist(), "cosine": cosine})
    return out


class TransferredTarget:
    """f_L(x) = Σ_j a_j relu(⟨v_j, Uᵀx⟩): U fixed (the weak first layer, as p × k), a fixed, V trained."""

    def __init__(self, U: torch.Tensor, width: int, v_init: float, generator: torch.Generator) -> None:
        k = U.shape[1]
        self.U = U
        self.a = (torch.randint(0, 2, (width,), generator=generator).float() * 2 - 1).to(U.device) / math.sqrt(width)
        self.V = (torch.randint(0, 2, (width, k), generator=generator).float() * 2 - 1).to(U.device) * v_init

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x @ self.U) @ self.V.T) @ self.a

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float, weight_decay: float = 0.0) -> None:
        V = self.V.detach().requires_grad_(True)
        loss = exponential_loss(torch.relu((x @ self.U) @ V.T) @ self.a, y)
        (grad,) = torch.autograd.grad(loss, [V])
        self.V = ((1 - lr * weight_decay) * self.V - lr * grad).detach()


def best_small_network_accuracy(neurons: int, trials: int, generator: torch.Generator) -> float:
    """The best accuracy over the four noise-free cluster centres of many ``neurons``-neuron
    ReLU networks: random ones, and each of them after gradient descent on the centres."""
    centres = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    labels = centres[:, 0] * centres[:, 1]
    best = 0.0
    for _ in range(trials):
        model = TwoLayer(torch.randn(neurons, 2, generator=generator), torch.randn(neurons, generator=generator))
        best = max(best, accuracy(model, centres, labels))
        gradient_descent(model, centres, labels, lr=0.5, weight_decay=0.0, steps=200)
        best = max(best, accuracy(model, centres, labels))
    return best


def xor_theory(
    p: int = 80_000,
    n: int = 400,
    eps: float = 0.05,
    *,
    weak_neurons: int = 3,
    weak_lr: float = 0.1,
    weak_weight_decay: float = 0.1,
    weak_steps: int = 1000,
    width: int = 512,
    v_init: float = 0.4,
    target_lr: float = 2.0,
    n_test: int = 10_000,
    lemma_trials: int = 200,
    seed: int = 0,
    device: str = "cpu",
) -> dict:
    """Weak model -> Lemma 3.1 check -> transferred target -> one GD step (Theorem 3.2)."""
    generator = torch.Generator().manual_seed(seed)
    x, y = xor_data(n, p, eps, generator, device)
    weak = weak_model(p, weak_neurons, generator, device)
    gradient_descent(weak, x, y, weak_lr, weak_weight_decay, weak_steps)
    target = TransferredTarget(weak.W.T.contiguous(), width, v_init, generator)
    before = {"train_acc": accuracy(target, x, y)}
    target.step(x, y, target_lr)
    # One pass over a fresh test set scores both models (drawing 10^4 × 80000 values is the slow part).
    tested = fresh_accuracies({"weak": weak, "target": target}, n_test, p, eps, generator, device=device)
    weak_result = {
        "neurons": weak_neurons, "steps": weak_steps, "train_acc": accuracy(weak, x, y),
        "test_acc": tested["weak"]["all"], "norm_ratio": norm_ratio(weak.W), "alignment": alignment(weak.W),
    }
    after = {"train_acc": accuracy(target, x, y), "test_acc": tested["target"]["all"],
             "test_acc_per_cluster": {k: v for k, v in tested["target"].items() if k != "all"}}
    return {
        "p": p, "n": n, "eps": eps, "seed": seed, "n_test": n_test,
        "weak": weak_result,
        "lemma_3_1_best_accuracy": best_small_network_accuracy(weak_neurons, lemma_trials, generator),
        "target_width": width, "theorem_width_bound": 2 * math.log(n) ** 3, "v_init": v_init, "target_lr": target_lr,
        "target_before_step": before, "target_after_one_step": after,
    }


@torch.no_grad()
def fresh_accuracies(models: dict, n: int, p: int, eps: float, generator: torch.Generator, chunk: int = 500,
                     device="cpu") -> dict[str, dict[str, float]]:
    """Each model's accuracy on the same n fresh samples, overall ("all") and per signal cluster
    ("[+1, -1]", ...), drawn and scored ``chunk`` at a time."""
    hits = {name: {} for name in models}
    counts: dict[str, int] = {}
    for start in range(0, n, chunk):
        x, y = xor_data(min(chunk, n - start), p, eps, generator, device)
        masks = {f"[{s1:+d}, {s2:+d}]": (x[:, 0] == s1) & (x[:, 1] == s2) for s1 in (1, -1) for s2 in (1, -1)}
        masks["all"] = torch.ones_like(y, dtype=torch.bool)
        for key, mask in masks.items():
            counts[key] = counts.get(key, 0) + int(mask.sum())
        for name, model in models.items():
            correct = torch.sign(model(x)) == y
            for key, mask in masks.items():
                hits[name][key] = hits[name].get(key, 0) + int(correct[mask].sum())
    return {name: {key: hits[name][key] / max(1, counts[key]) for key in counts} for name in models}


def weak_norm_ratio(p: int, n: int, eps: float, *, neurons: int = 3, lr: float = 0.1, weight_decay: float = 0.1,
                    steps: int = 1000, seed: int = 0, device: str = "cpu") -> float:
    """Fig. 5: r_W of a weak model trained on n samples of XOR data with noise level eps."""
    generator = torch.Generator().manual_seed(seed)
    x, y = xor_data(n, p, eps, generator, device)
    weak = weak_model(p, neurons, generator, device)
    gradient_descent(weak, x, y, lr, weight_decay, steps)
    return norm_ratio(weak.W)


def normal_training(p: int = 80_000, n: int = 400, eps: float = 0.05, *, width: int = 2048, lr: float = 0.1,
                    weight_decay: float = 0.1, steps: int = 200, eval_every: int = 5, n_test: int = 2000,
                    seed: int = 0, device: str = "cpu") -> list[dict]:
    """Fig. 4(a): the wide two-layer network from the default initialisation, trained by GD;
    train and test accuracy every ``eval_every`` steps (the test set is fixed, drawn once)."""
    generator = torch.Generator().manual_seed(seed)
    x, y = xor_data(n, p, eps, generator, device)
    x_test, y_test = xor_data(n_test, p, eps, generator, device)
    model = default_init(p, width, generator, device)
    history = []
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            history.append({"step": step, "train_acc": accuracy(model, x, y), "test_acc": accuracy(model, x_test, y_test)})
        if step < steps:
            gradient_descent(model, x, y, lr, weight_decay, 1)
    return history


__all__ = ["TransferredTarget", "TwoLayer", "normal_training", "norm_ratio", "weak_norm_ratio", "xor_data", "xor_theory"]
