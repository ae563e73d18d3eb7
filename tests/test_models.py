"""Model sizes from the config alone (what the memory check uses) against built models."""

import pytest

from groktransfer.config import ModelConfig, TransformerConfig
from groktransfer.models import build_network, parameter_count

CASES = [
    (ModelConfig(embed_dim=8, width=32, depth=1), 113, 113, 2),
    (ModelConfig(embed_dim=8, width=32, depth=3, bias=True), 13, 7, 2),
    (ModelConfig(embed_dim=8, width=32, depth=1, readout_rank=4), 113, 113, 2),
    (ModelConfig(embed_dim=8, width=32, depth=2, bias=True, readout_rank=5), 13, 7, 2),
    (ModelConfig(embed_dim=16, width=16, depth=1, vector_input=True, readout_rank=3), 40, 2, 40),
    (ModelConfig(embed_dim=16, width=16, depth=1, vector_input=True), 40, 2, 40),
    (ModelConfig(embed_dim=8, width=32, depth=2, activation="square"), 113, 113, 2),
    (ModelConfig(embed_dim=16, width=16, depth=0, vector_input=True), 64, 10, 64),
    (ModelConfig(embed_dim=32, transformer=TransformerConfig(n_layers=2, n_heads=4, d_mlp=64)), 47, 47, 2),
    (ModelConfig(embed_dim=32, transformer=TransformerConfig(n_layers=1, n_heads=2, d_head=8, d_mlp=64,
                                                             style="grokfast", input_format="equation")), 47, 47, 2),
    (ModelConfig(embed_dim=16, transformer=TransformerConfig(n_layers=1, n_heads=4, d_mlp=32)), 2, 2, 40),
]


@pytest.mark.parametrize("config, vocab, classes, inputs", CASES)
def test_parameter_count_equals_the_built_models(config, vocab, classes, inputs):
    model = build_network(config, vocab, classes, seed=0, n_inputs=inputs)
    assert parameter_count(config, vocab, classes, inputs) == sum(p.numel() for p in model.parameters())


def test_a_model_too_large_for_this_machine_is_refused_before_it_is_built():
    from groktransfer.config import ConfigError
    from groktransfer.pipeline import prepare
    from groktransfer.presets import load_preset

    with pytest.raises(ConfigError, match=r"target.model: needs ~\d+ GB to train \(1,000,175,003,008 parameters\)"):
        prepare(load_preset("demo", ["target.model.width=1000000", "device=cpu"]))
    with pytest.raises(ConfigError, match=r"weak.model: needs .* × 4 candidates"):
        prepare(load_preset("demo", ["weak.model.width=200000000", "device=cpu"]))
    prepare(load_preset("fig8a", ["device=cpu"]))  # the largest preset fits


def test_a_factorised_readout_starts_at_the_dense_readouts_scale():
    """The two maps' product has the dense read-out's entry spread (std 1/sqrt(3 fan_in)), measured
    over many draws, so readout_rank changes the parametrisation and not the starting function's scale."""
    import torch

    for rank in (2, 8, 64):
        products = []
        for seed in range(20):
            first, second = build_network(ModelConfig(embed_dim=8, width=256, depth=1, readout_rank=rank),
                                          113, 113, seed=seed).mlp[-1]
            products.append((second.weight @ first.weight).flatten())
        spread = torch.cat(products).std().item()
        assert abs(spread - 1 / (3 * 256) ** 0.5) < 0.05 / (3 * 256) ** 0.5, (rank, spread)


def test_a_factorised_readout_is_refused_where_it_has_no_meaning():
    from groktransfer.config import ConfigError

    with pytest.raises(ConfigError, match="readout_rank: got 0; must be >= 1"):
        ModelConfig(readout_rank=0)
    with pytest.raises(ConfigError, match="readout_rank: only FNNs"):
        ModelConfig(readout_rank=4, transformer=TransformerConfig())


def test_a_square_activation_fnn_computes_its_formula():
    """activation: square is (E[a] ‖ E[b])·W1ᵀ squared, then W2ᵀ (a deeper net squares every
    hidden layer; a vector-input net squares x·E too), computed here by hand from the weights."""
    import torch

    tokens = torch.tensor([[0, 5], [12, 3], [7, 7]])
    model = build_network(ModelConfig(embed_dim=4, width=6, depth=2, activation="square"), 13, 13, seed=0)
    e = model.embedding.weight
    w1, w2, w3 = (m.weight for m in model.mlp if isinstance(m, torch.nn.Linear))
    h = torch.cat([e[tokens[:, 0]], e[tokens[:, 1]]], dim=1)
    expected = ((h @ w1.T) ** 2 @ w2.T) ** 2 @ w3.T
    assert torch.allclose(model(tokens), expected, rtol=1e-5, atol=1e-6)
    relu = build_network(ModelConfig(embed_dim=4, width=6, depth=2), 13, 13, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(relu.parameters(), model.parameters()))  # same draws
    bits = torch.randint(0, 2, (5, 10))
    vector = build_network(ModelConfig(embed_dim=3, width=4, depth=1, vector_input=True, activation="square"), 10, 3,
                           seed=0, n_inputs=10)
    v1, v2 = (m.weight for m in vector.mlp if isinstance(m, torch.nn.Linear))
    values = 2.0 * bits.float() - 1.0
    expected = ((values @ vector.embedding.weight) ** 2 @ v1.T) ** 2 @ v2.T
    assert torch.allclose(vector(bits), expected, rtol=1e-5, atol=1e-6)


def test_an_unknown_activation_is_refused():
    from groktransfer.config import ConfigError

    with pytest.raises(ConfigError, match="activation: got 'tanh'; allowed: 'relu', 'square'"):
        ModelConfig(activation="tanh")


def _counted_by_torch(model, x, y, backward):
    """FlopCounterMode's count: the reference fnn_flops must equal."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.zero_grad(set_to_none=True)
    if backward:
        with FlopCounterMode(display=False) as counter:
            torch.nn.functional.cross_entropy(model(x), y).backward()
    else:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    return counter.get_total_flops()


FLOP_CASES = [
    ModelConfig(embed_dim=8, width=32, depth=1),
    ModelConfig(embed_dim=8, width=32, depth=2, bias=True),
    ModelConfig(embed_dim=8, width=32, depth=1, readout_rank=4),
    ModelConfig(embed_dim=5, width=7, depth=3, bias=True, readout_rank=2),
    ModelConfig(embed_dim=8, width=32, depth=1, activation="square"),
    ModelConfig(width=16, depth=1, encoding="one_hot"),  # a frozen embedding: no gradient into the first layer's input
]


@pytest.mark.parametrize("config", FLOP_CASES)
@pytest.mark.parametrize("rows", [37, 264])
def test_fnn_flops_equal_torchs_count_for_every_fnn_the_package_builds(config, rows):
    """The formula the trainers use instead of FlopCounterMode counts what it counts: token FNNs
    (dense or factorised read-out, biases, a frozen encoding), the same after an A·B transfer (A
    trained or frozen), and vector-input FNNs (2 or 10 classes, 0-2 hidden layers), forward and
    forward + backward, on full and partial batches."""
    import torch

    from groktransfer.models import fnn_flops
    from groktransfer.transfer import transfer_embedding

    import groktransfer as gt

    task = gt.ModularTask(op="add", p=23, train_fraction=0.5, data_seed=0)
    x, y = task.x_train[:rows], task.y_train[:rows]
    model = build_network(config, 23, 23, seed=0)
    for backward in (False, True):
        assert fnn_flops(model, x.shape[0], backward) == _counted_by_torch(model, x, y, backward)
    if config.encoding is None:
        for freeze_a in (False, True):
            target = build_network(config, 23, 23, seed=2)
            transfer_embedding(build_network(ModelConfig(embed_dim=4, width=16, depth=1), 23, 23, seed=1), target,
                               freeze_a=freeze_a)
            for backward in (False, True):
                assert fnn_flops(target, x.shape[0], backward) == _counted_by_torch(target, x, y, backward)
    for classes in (2, 10):
        for depth in (0, 1, 2):
            vector = build_network(ModelConfig(embed_dim=6, width=9, depth=depth, vector_input=True,
                                               readout_rank=config.readout_rank), 40, classes, seed=0, n_inputs=40)
            bits, labels = torch.randint(0, 2, (rows, 40)), torch.randint(0, classes, (rows,))
            for backward in (False, True):
                assert fnn_flops(vector, rows, backward) == _counted_by_torch(vector, bits, labels, backward)
            weak = build_network(ModelConfig(embed_dim=3, width=5, depth=1, vector_input=True), 40, classes, seed=1,
                                 n_inputs=40)
            transfer_embedding(weak, vector)  # x·A·B
            for backward in (False, True):
                assert fnn_flops(vector, rows, backward) == _counted_by_torch(vector, bits, labels, backward)


def test_fnn_flops_leave_other_models_to_torch():
    from torch import nn

    from groktransfer.models import fnn_flops

    transformer = ModelConfig(embed_dim=32, transformer=TransformerConfig(n_layers=1, n_heads=4, d_mlp=64))
    assert fnn_flops(build_network(transformer, 47, 47, seed=0), 10, True) is None
    odd = build_network(ModelConfig(embed_dim=8, width=32, depth=1), 23, 23, seed=0)
    odd.mlp.append(nn.LayerNorm(23))  # a module the formula does not know
    assert fnn_flops(odd, 10, True) is None


def test_a_training_run_does_not_import_torch_dynamo(tmp_path):
    """Counting FLOPs with torch's FlopCounterMode imports torch._dynamo, about a second of every
    command's start on a small CPU (benchmarks/startup.py); a run of the package's FNNs without
    train.compile never needs it."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from groktransfer.cli import main\n"
            f"code = main(['run', '--preset', 'demo', '--out', {str(tmp_path / 'run')!r}, '--no-progress', "
            "'weak.train.max_steps=20', 'weak.if_none_ready=transfer_best', 'weak.max_rounds=1', "
            "'target.train.max_steps=20', 'scratch.train.max_steps=20', 'device=cpu'])\n"
            "print(code, 'torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "0 False", (done.stdout[-500:], done.stderr[-500:])
