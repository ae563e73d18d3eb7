"""Transformer targets: shapes, causality, the last-position read-out, batching, FNN -> transformer transfer."""

import copy

import pytest
import torch

from groktransfer.config import TaskConfig, TrainConfig, run_config_from_dict
from groktransfer.engine import RunSpec, train_many
from groktransfer.pipeline import run_experiment
from groktransfer.tasks import ModularTask
from groktransfer.engine import train
from groktransfer.transfer import load_weak_embedding
from groktransfer.transformer import Transformer

STYLES = [(style, fmt) for style in ("nanda", "grokfast") for fmt in ("pair", "equation")]


def small(style="nanda", fmt="pair", seed=0, **kwargs):
    return Transformer(11, 11, n_layers=2, d_model=16, n_heads=4, d_mlp=32, style=style, input_format=fmt,
                       seed=seed, **kwargs)


@pytest.mark.parametrize("style,fmt", STYLES)
def test_shapes_and_vocabulary(style, fmt):
    model = small(style, fmt)
    tokens = torch.randint(0, 11, (7, 2))
    assert model(tokens).shape == (7, 11)
    length = 4 if fmt == "equation" else 2
    assert model.residual(tokens).shape == (7, length, 16)
    assert model.get_input_embeddings().num_embeddings == (13 if fmt == "equation" else 11)
    if fmt == "equation":  # a ∘ b =, with ∘ = 11 and = = 12
        assert model.sequence(torch.tensor([[3, 5]])).tolist() == [[3, 11, 5, 12]]
    has_norm = any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    assert has_norm == (style == "grokfast")


@pytest.mark.parametrize("style,fmt", STYLES)
def test_attention_is_causal_and_logits_are_read_at_the_last_position(style, fmt):
    model = small(style, fmt)
    tokens = torch.randint(0, 11, (5, 2))
    changed = tokens.clone()
    changed[:, 1] = (changed[:, 1] + 1) % 11  # the second operand: position 1 (pair) or 2 (equation)
    first_changed = 1 if fmt == "pair" else 2
    with torch.no_grad():
        before, after = model.residual(tokens), model.residual(changed)
        # Positions before the changed token do not see it; the last one does.
        torch.testing.assert_close(before[:, :first_changed], after[:, :first_changed])
        assert not torch.allclose(before[:, -1], after[:, -1])
        torch.testing.assert_close(model(tokens), model.unembed(model.final_norm(before[:, -1])))


def test_written_out_attention_equals_torchs_scaled_dot_product_attention():
    """The attention is spelled out (SDPA's fused CUDA kernel fails under vmap's backward);
    PyTorch's own causal SDPA is the independent computation it must equal."""
    from groktransfer.transformer import Attention

    torch.manual_seed(0)
    attention = Attention(d_model=16, n_heads=4, d_head=4, bias=True).double()
    x = torch.randn(5, 3, 16, dtype=torch.float64)
    q, k, v = attention.qkv(x).view(5, 3, 3, 4, 4).permute(2, 0, 3, 1, 4)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    expected = attention.out(expected.transpose(1, 2).reshape(5, 3, 16))
    torch.testing.assert_close(attention(x), expected, rtol=0, atol=1e-12)


def test_init_scale_multiplies_every_parameter():
    plain, scaled = small(seed=3), small(seed=3, init_scale=0.5)
    for p, q in zip(plain.parameters(), scaled.parameters()):
        torch.testing.assert_close(q, 0.5 * p)


def test_batched_transformers_equal_one_at_a_time():
    task = ModularTask.from_config(TaskConfig(op="add", p=11, train_fraction=0.5))
    config = TrainConfig(lr=3e-3, max_steps=15, dtype="float64", stop_at_test_acc=None)
    specs = [RunSpec(small("grokfast", "equation", seed=s), task, config, seed=s) for s in range(2)]
    expected = [train(copy.deepcopy(s.model), s.task, s.train) for s in specs]
    for a, b in zip(expected, train_many(specs)):
        for r, s in zip(a.history, b.history):
            assert s["train_loss"] == pytest.approx(r["train_loss"], rel=1e-9)


def fnn_to_transformer(tmp_path, fmt="pair", steps=1500):
    data = {
        "name": "fnn-to-transformer", "seed": 0, "device": "cpu",
        "task": {"op": "add", "p": 47, "train_fraction": 0.4, "data_seed": 0},
        # one weak FNN at lr 0.01, stopped at its first evaluation at 85% test: the weak stage this
        # test was calibrated with (today's default trains on to 95%; with it this seed's target
        # needs ~400 more steps, too close to the budget to assert on; stopped at the default
        # rule's 70% its target does not reach 99% in the budget)
        "weak": {"model": {"embed_dim": 8, "width": 32, "depth": 1}, "stop_when_ready": True,
                 "readiness": {"min_test_acc": 0.85},
                 "train": {"lr": 0.01, "weight_decay": 1.0, "max_steps": 5000, "stop_at_test_acc": 0.95}},
    }
    stage = {"model": {"embed_dim": 32, "transformer": {"n_layers": 1, "n_heads": 4, "d_mlp": 128, "input_format": fmt}},
             "train": {"lr": 0.003, "weight_decay": 1.0, "max_steps": steps, "stop_at_test_acc": 0.99}}
    data["target"], data["scratch"] = stage, copy.deepcopy(stage)
    return run_experiment(run_config_from_dict(data), tmp_path / fmt, plots=False)


def test_equation_format_target_gets_the_weak_rows_plus_two(tmp_path):
    summary = fnn_to_transformer(tmp_path, "equation", steps=5)
    assert summary["stages"]["target"]["steps"] == 5
    weak, _ = load_weak_embedding(tmp_path / "equation" / "weak_embedding.safetensors")
    assert weak.shape[0] == 47


def test_fnn_embedding_removes_the_transformers_grokking_delay(tmp_path):
    # Fixed seeds, p = 47: the scratch transformer memorises but does not reach 95% test
    # accuracy in 1500 steps; with the weak FNN's embedding it generalises a few hundred
    # steps after memorising.
    summary = fnn_to_transformer(tmp_path)
    target, scratch = summary["stages"]["target"], summary["stages"]["scratch"]
    assert target["status"] == "target_reached" and target["time_gap"] < 600
    assert scratch["train_acc_95_step"] is not None and scratch["train_acc_95_step"] < 500
    assert scratch["time_gap"] is None or scratch["time_gap"] > 3 * target["time_gap"]


def test_the_parity_preset_builds_a_40_token_transformer(tmp_path):
    from groktransfer.presets import load_preset

    config = load_preset("fig13", ["scratch.train.max_steps=3", "scratch.model.embed_dim=16",
                                   "scratch.model.transformer.d_mlp=32", "device=cpu"])
    summary = run_experiment(config, tmp_path / "fig13", plots=False)
    assert summary["stages"]["scratch"]["steps"] == 3 and summary["stages"]["scratch"]["n_params"] > 0


@pytest.mark.parametrize("name", ["fig8b", "table1"])
def test_reproduce_writes_a_claim_record_and_a_table(tmp_path, name):
    import json

    from groktransfer.reproduce import reproduce

    short = ["weak.train.max_steps=30", "weak.max_rounds=1", "weak.if_none_ready=transfer_best",
             "target.train.max_steps=5", "scratch.train.max_steps=5", "device=cpu"]
    record = reproduce(name, tmp_path / name, quick=True, overrides=short, command="test")
    saved = json.loads((tmp_path / name / "claim.json").read_text())
    assert saved["holds"] is False and saved["size"] == "quick"  # 5 steps cannot reach 95%
    assert saved["overrides"][-len(short):] == short and saved["claim"] and saved["criterion"]
    assert (tmp_path / name / "table.md").read_text().startswith("| |")
    assert (tmp_path / name / "run" / "accuracy.png").is_file() and record == saved


@pytest.mark.parametrize("fmt", ["pair", "equation"])
def test_transfer_into_our_transformer_reaches_a_and_b(fmt):
    from groktransfer.transfer import transfer_embedding

    model = small("nanda", fmt)
    weak = torch.randn(11, 3, generator=torch.Generator().manual_seed(0))
    installed = transfer_embedding(weak, model, extra_rows="random" if fmt == "equation" else None, seed=1)
    assert model.get_input_embeddings() is installed and installed.A.shape == (model.vocab_size, 3)
    model(torch.randint(0, 11, (6, 2))).logsumexp(-1).sum().backward()
    assert installed.A.grad.abs().sum() > 0 and installed.B.grad.abs().sum() > 0
    if fmt == "equation":  # the ∘ and = rows are used at every sample, so they get gradient too
        assert installed.A.grad[11:].abs().sum() > 0
