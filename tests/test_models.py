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
