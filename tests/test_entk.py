"""The pseudo-NTK against independent computations."""

import pytest
import torch
from torch import nn

from groktransfer.config import ConfigError, TaskConfig, TrainConfig
from groktransfer.diagnostics import Diagnostics
from groktransfer.entk import EntkTracker, pseudo_ntk
from groktransfer.models import FNN
from groktransfer.engine import RunSpec, train_many
from groktransfer.tasks import ModularTask
from groktransfer.engine import train


def test_a_linear_model_has_the_input_gram_matrix_as_its_kernel():
    # f(x) = W x with C outputs: ∇_W Σ_i f_i(x) = 1 xᵀ, so Θ(x1, x2) = C (x1·x2) / C = x1·x2,
    # whatever W is.
    torch.manual_seed(0)
    model = nn.Linear(5, 7, bias=False).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    torch.testing.assert_close(pseudo_ntk(model, x), x @ x.T)


def test_the_kernel_of_an_fnn_equals_one_backward_pass_per_input():
    task = ModularTask.from_config(TaskConfig(op="add", p=11, train_fraction=0.5))
    model = FNN(task.vocab_size, task.n_classes, 4, 16, 2, seed=3).double()
    x = task.x_train[:9]
    rows = []
    for k in range(x.shape[0]):
        model.zero_grad()
        model(x[k : k + 1]).sum().backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    jacobian = torch.stack(rows)
    expected = jacobian @ jacobian.T / task.n_classes
    torch.testing.assert_close(pseudo_ntk(model, x), expected)


def test_the_tracker_reports_how_far_the_kernel_moved():
    task = ModularTask.from_config(TaskConfig(op="add", p=11, train_fraction=0.5))
    model = FNN(task.vocab_size, task.n_classes, 4, 16, 1, seed=1).double()
    tracker = EntkTracker(task.x_train[:5])
    first = tracker(model)
    assert torch.isnan(first["entk_change"])
    before = pseudo_ntk(model, task.x_train[:5])
    torch.testing.assert_close(first["entk_norm"], torch.linalg.matrix_norm(before))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.1)
    second = tracker(model)
    after = pseudo_ntk(model, task.x_train[:5])
    torch.testing.assert_close(second["entk_change"], torch.linalg.matrix_norm(after - before))
    assert second["entk_change"] > 0
    assert tracker(model)["entk_change"] == 0  # nothing changed since


def test_training_with_entk_probe_logs_it_at_every_evaluation():
    task = ModularTask.from_config(TaskConfig(op="add", p=11, train_fraction=0.5))
    model = FNN(task.vocab_size, task.n_classes, 4, 16, 1, seed=1)
    config = TrainConfig(lr=1e-2, max_steps=30, stop_at_test_acc=None, eval_dense_until=10, eval_every=10,
                         entk_probe=6)
    result = train(model, task, config, diagnostics=Diagnostics(entk=EntkTracker(task.x_train[:6])))
    changes = [row["diagnostics"]["entk_change"] for row in result.history]
    assert len(changes) == len(result.history) and changes[0] != changes[0]  # NaN at the first evaluation
    assert all(c > 0 for c in changes[1:])


def test_entk_probe_is_validated_and_not_batched():
    with pytest.raises(ConfigError, match="entk_probe: got -1"):
        TrainConfig(entk_probe=-1).check()
    with pytest.raises(ConfigError, match="entk_probe: the eNTK is a diagnostic"):
        TrainConfig(entk_probe=4, diagnostics=False).check()
    task = ModularTask.from_config(TaskConfig(op="add", p=11, train_fraction=0.5))
    specs = [RunSpec(FNN(task.vocab_size, task.n_classes, 4, 16, 1, seed=s), task,
                     TrainConfig(max_steps=5, entk_probe=4), seed=s) for s in range(2)]
    with pytest.raises(ConfigError, match="entk_probe .* one run at a time"):
        train_many(specs)
