"""The XOR cluster experiment's pieces against direct computations, at a small dimension."""

import math

import pytest
import torch

from groktransfer.config import ConfigError
from groktransfer.xor import (
    TransferredTarget,
    TwoLayer,
    best_small_network_accuracy,
    exponential_loss,
    gradient_descent,
    norm_ratio,
    xor_data,
)


def test_data_is_two_signal_bits_plus_small_noise_labelled_by_their_product():
    x, y = xor_data(300, 50, 0.05, torch.Generator().manual_seed(0))
    assert x.shape == (300, 50) and set(x[:, :2].unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(x[:, 2:].abs(), torch.full((300, 48), 0.05))
    torch.testing.assert_close(y, x[:, 0] * x[:, 1])


def test_gradient_descent_is_the_printed_update_with_the_hand_derived_gradient():
    g = torch.Generator().manual_seed(1)
    x, y = xor_data(20, 6, 0.1, g)
    model = TwoLayer(torch.randn(4, 6, generator=g), torch.randn(4, generator=g))
    W, a = model.W.double(), model.a.double()
    h = torch.relu(x.double() @ W.T)
    weights = torch.exp(-y.double() * (h @ a))  # d/df of mean(exp(-y f)) is -y e^{-y f} / n
    grad_a = -(weights * y.double()) @ h / 20
    grad_W = -((weights * y.double()).unsqueeze(1) * (h > 0).double() * a).T @ x.double() / 20
    gradient_descent(model, x, y, lr=0.3, weight_decay=0.2, steps=1)
    torch.testing.assert_close(model.a.double(), (1 - 0.06) * a - 0.3 * grad_a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.W.double(), (1 - 0.06) * W - 0.3 * grad_W, rtol=1e-5, atol=1e-6)
    assert float(exponential_loss(model(x), y)) < float(torch.exp(-y.double() * (h @ a)).mean())


def test_no_three_neuron_network_beats_three_quarters_but_four_neurons_can():
    g = torch.Generator().manual_seed(2)
    assert best_small_network_accuracy(3, 60, g) == 0.75
    assert best_small_network_accuracy(4, 60, g) == 1.0  # the search is able to find a perfect net


def test_norm_ratio_and_the_transferred_target_shapes():
    W = torch.zeros(3, 102)
    W[:, :2] = 1.0
    W[:, 2:] = 0.1
    assert norm_ratio(W) == pytest.approx(0.1)
    target = TransferredTarget(torch.randn(30, 3), width=8, v_init=0.4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(target.a.abs(), torch.full((8,), 1 / math.sqrt(8)))
    torch.testing.assert_close(target.V.abs(), torch.full((8, 3), 0.4))
    x, y = xor_data(10, 30, 0.05, torch.Generator().manual_seed(3))
    before_a = target.a.clone()
    target.step(x, y, lr=2.0)
    assert torch.equal(target.a, before_a) and target(x).shape == (10,)


def test_reproduce_xor_settings_are_checked(tmp_path):
    from groktransfer.reproduce import reproduce

    with pytest.raises(ConfigError, match="width2: unknown key; allowed: p, n, eps"):
        reproduce("xor", tmp_path / "a", overrides=["width2=3"])
    with pytest.raises(ConfigError, match="p: got 'big'; expected an integer"):
        reproduce("xor", tmp_path / "b", overrides=["p=big"])
    record = reproduce("xor", tmp_path / "c", overrides=["p=200", "n=60", "weak_steps=50", "n_test=200",
                                                         "lemma_trials=5", "width=64", "seeds=2"])
    assert record["measured"]["target_width"] == 64 and isinstance(record["holds"], bool)
    assert [r["seed"] for r in record["measured"]["per_seed"]] == [0, 1]
    assert (tmp_path / "c" / "summary.json").is_file() and not (tmp_path / "a").exists()


def test_normal_training_overfits_first():
    from groktransfer.xor import normal_training

    # Fig. 4(a) in miniature (p = 2000; ε scaled so the noise has the paper's total size).
    history = normal_training(p=2000, n=100, eps=0.05 * (80000 / 2000) ** 0.5, width=256, steps=40, eval_every=20,
                              n_test=500)
    assert [row["step"] for row in history] == [0, 20, 40]
    assert history[-1]["train_acc"] == 1.0 and history[-1]["test_acc"] < 0.6
