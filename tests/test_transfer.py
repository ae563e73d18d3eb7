"""The A·B embedding and the transfer, checked against explicit products."""

import math

import pytest
import torch
from torch import nn

from groktransfer import (
    FNN,
    ConfigError,
    FactorizedEmbedding,
    load_weak_embedding,
    merge_factorized_embedding,
    save_weak_embedding,
    transfer_embedding,
)


def test_forward_equals_explicit_product_and_shapes():
    torch.manual_seed(0)
    a, b = torch.randn(11, 4), torch.randn(4, 32)
    emb = FactorizedEmbedding(a, b)
    tokens = torch.randint(0, 11, (50, 2))
    out = emb(tokens)
    assert out.shape == (50, 2, 32)
    explicit = torch.stack([torch.stack([a[i] @ b for i in row]) for row in tokens.tolist()])
    torch.testing.assert_close(out, explicit)
    assert emb.weight.shape == (11, 32) and emb.num_embeddings == 11 and emb.embedding_dim == 32


def test_identity_b_is_a_plain_embedding():
    weight = torch.randn(9, 6)
    plain = nn.Embedding(9, 6)
    with torch.no_grad():
        plain.weight.copy_(weight)
    factored = FactorizedEmbedding(weight, torch.eye(6))
    tokens = torch.randint(0, 9, (20, 2))
    torch.testing.assert_close(factored(tokens), plain(tokens))


def test_gradients_reach_a_and_b_and_match_the_chain_rule():
    a, b = torch.randn(7, 3), torch.randn(3, 5)
    emb = FactorizedEmbedding(a, b)
    tokens = torch.tensor([[0, 1], [2, 2], [6, 0]])
    upstream = torch.randn(3, 2, 5)
    (emb(tokens) * upstream).sum().backward()
    # d/dE of sum(E[tokens] * upstream) scatters upstream rows onto E's rows.
    grad_e = torch.zeros(7, 5).index_add_(0, tokens.reshape(-1), upstream.reshape(-1, 5))
    torch.testing.assert_close(emb.A.grad, grad_e @ b.T)
    torch.testing.assert_close(emb.B.grad, a.T @ grad_e)


def test_transfer_copies_the_weak_embedding_and_draws_b_in_bounds():
    weak = FNN(13, 13, embed_dim=4, width=8, depth=1, seed=0)
    target = FNN(13, 13, embed_dim=64, width=32, depth=2, seed=1)
    module = transfer_embedding(weak, target, b_scale=0.5, seed=3)
    assert target.get_input_embeddings() is module
    assert torch.equal(module.A.detach(), weak.embedding.weight.detach())
    assert module.B.shape == (4, 64)
    assert module.B.abs().max() <= 0.5 / math.sqrt(4)
    assert module.A.requires_grad and module.B.requires_grad
    again = transfer_embedding(weak, FNN(13, 13, embed_dim=64, width=32, depth=2, seed=1), b_scale=0.5, seed=3)
    assert torch.equal(again.B, module.B)


def test_transferred_target_trains_both_factors():
    weak = FNN(13, 13, embed_dim=4, width=8, depth=1, seed=0)
    target = FNN(13, 13, embed_dim=16, width=32, depth=2, seed=1)
    module = transfer_embedding(weak, target, seed=0)
    x = torch.randint(0, 13, (40, 2))
    nn.functional.cross_entropy(target(x), x.sum(1) % 13).backward()
    assert module.A.grad.abs().sum() > 0 and module.B.grad.abs().sum() > 0


def test_freeze_a():
    weak = FNN(13, 13, embed_dim=4, width=8, depth=1, seed=0)
    target = FNN(13, 13, embed_dim=16, width=32, depth=2, seed=1)
    module = transfer_embedding(weak, target, freeze_a=True)
    assert not module.A.requires_grad and module.B.requires_grad


def test_random_a_is_not_the_weak_embedding():
    weak = FNN(13, 13, embed_dim=4, width=8, depth=1, seed=0)
    module = transfer_embedding(weak, FNN(13, 13, embed_dim=16, width=8, depth=1), random_a=True, seed=1)
    assert module.A.shape == (13, 4) and not torch.allclose(module.A, weak.embedding.weight)


def test_merge_keeps_the_function_and_makes_one_matrix():
    weak = FNN(13, 13, embed_dim=4, width=8, depth=1, seed=0)
    target = FNN(13, 13, embed_dim=16, width=32, depth=2, seed=1)
    module = transfer_embedding(weak, target)
    x = torch.randint(0, 13, (30, 2))
    before = target(x)
    assert merge_factorized_embedding(target)
    merged = target.get_input_embeddings()
    assert isinstance(merged, nn.Embedding)
    torch.testing.assert_close(merged.weight, (module.A @ module.B).detach())
    torch.testing.assert_close(target(x), before)
    assert not merge_factorized_embedding(target)  # already dense


def test_vocabulary_mismatch_is_refused():
    weak = FNN(13, 13, embed_dim=4, width=8, depth=1)
    with pytest.raises(ConfigError, match="vocabulary sizes differ: weak embedding has 13 rows, "
                                          r"target's get_input_embeddings\(\) has 17 \(extra_rows="):
        transfer_embedding(weak, FNN(17, 17, embed_dim=16, width=8, depth=1))
    with pytest.raises(ConfigError, match="weak embedding has 17 rows"):  # a larger weak vocabulary never fits
        transfer_embedding(torch.randn(17, 4), FNN(13, 13, embed_dim=16, width=8, depth=1), extra_rows="random")


@pytest.mark.parametrize("extra_rows", ["random", "zero"])
def test_extra_target_tokens_get_rows_of_their_own(extra_rows):
    weak = torch.randn(13, 4, generator=torch.Generator().manual_seed(0)) * 3.0
    target = FNN(15, 13, embed_dim=16, width=8, depth=1)
    installed = transfer_embedding(weak, target, extra_rows=extra_rows, seed=1)
    torch.testing.assert_close(installed.A[:13], weak)
    extra = installed.A[13:]
    if extra_rows == "zero":
        assert torch.count_nonzero(extra) == 0
    else:  # the weak rows' scale (rms 3), drawn independently of them
        assert 1.0 < extra.pow(2).mean().sqrt() < 9.0


def test_model_without_any_embedding_is_refused():
    with pytest.raises(ConfigError, match="no input embedding found in Linear; pass attribute="):
        transfer_embedding(torch.randn(5, 2), nn.Linear(3, 3))


def test_a_named_or_the_only_embedding_attribute_is_found_and_several_are_ambiguous():
    class Plain(nn.Module):
        def __init__(self, n_embeddings):
            super().__init__()
            self.tok_emb = nn.Embedding(10, 24)
            if n_embeddings == 2:
                self.pos_emb = nn.Embedding(4, 24)
            self.head = nn.Linear(24, 10)

        def forward(self, tokens):
            return self.head(self.tok_emb(tokens).sum(1))

    only = Plain(1)
    transfer_embedding(torch.randn(10, 3), only, seed=0)
    assert isinstance(only.tok_emb, FactorizedEmbedding)
    two = Plain(2)
    with pytest.raises(ConfigError, match=r"several embeddings \(tok_emb, pos_emb\): ambiguous; pass attribute="):
        transfer_embedding(torch.randn(10, 3), two)
    installed = transfer_embedding(torch.randn(10, 3), two, attribute="tok_emb", seed=0)
    assert two.tok_emb is installed and isinstance(two.pos_emb, nn.Embedding)
    two(torch.randint(0, 10, (5, 2))).sum().backward()
    assert installed.A.grad is not None and installed.B.grad is not None
    with pytest.raises(ConfigError, match="has no submodule 'nope'"):
        transfer_embedding(torch.randn(10, 3), Plain(2), attribute="nope")


def test_users_own_model_with_the_two_methods_works():
    class BagOfTokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(10, 24)
            self.head = nn.Linear(24, 10)

        def get_input_embeddings(self):
            return self.tok

        def set_input_embeddings(self, module):
            self.tok = module

        def forward(self, x):
            return self.head(self.tok(x).mean(1))

    model = BagOfTokens()
    module = transfer_embedding(torch.randn(10, 3), model)
    model(torch.randint(0, 10, (4, 5))).sum().backward()
    assert module.A.grad is not None and module.B.grad is not None and module.B.shape == (3, 24)


def test_weak_embedding_file_round_trip(tmp_path):
    weak = FNN(13, 13, embed_dim=4, width=8, depth=1, seed=0)
    path = tmp_path / "weak.safetensors"
    save_weak_embedding(weak, path, metadata={"step": 12, "test_acc": 0.5})
    matrix, meta = load_weak_embedding(path)
    assert torch.equal(matrix, weak.embedding.weight.detach())
    assert meta == {"step": 12, "test_acc": 0.5}
    module = transfer_embedding(path, FNN(13, 13, embed_dim=16, width=8, depth=1))
    assert torch.equal(module.A.detach(), matrix)


def test_corrupt_or_missing_weak_embedding_file(tmp_path):
    path = tmp_path / "weak.safetensors"
    save_weak_embedding(torch.randn(5, 2), path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ConfigError, match="weak.safetensors.*unreadable"):
        load_weak_embedding(path)
    with pytest.raises(ConfigError, match="not found"):
        load_weak_embedding(tmp_path / "missing.safetensors")


def test_vector_fnn_two_logits_give_exactly_the_logistic_loss_and_transfer_its_first_layer():
    from groktransfer.models import VectorFNN

    weak = VectorFNN(10, 2, embed_dim=4, width=6, depth=1, seed=0)
    bits = torch.randint(0, 2, (32, 10), generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 2, (32,), generator=torch.Generator().manual_seed(2))
    logits = weak(bits)
    # f computed by hand: ±1 inputs times E, ReLU, the MLP.
    signs = 2.0 * bits.float() - 1.0
    f = weak.mlp(torch.relu(signs @ weak.embedding.weight)).squeeze(-1)
    torch.testing.assert_close(logits, torch.stack([-f / 2, f / 2], dim=-1))
    y = 2.0 * labels.float() - 1.0
    torch.testing.assert_close(nn.functional.cross_entropy(logits, labels), torch.log1p(torch.exp(-y * f)).mean())
    assert torch.equal(logits.argmax(-1), (f > 0).long())
    # E is the transposed first layer; the target's first layer becomes x·A·B.
    target = VectorFNN(10, 2, embed_dim=16, width=8, depth=2, seed=1)
    installed = transfer_embedding(weak, target, seed=3)
    torch.testing.assert_close(installed.A, weak.embedding.weight)
    expected = target.mlp(torch.relu(signs @ installed.A @ installed.B)).squeeze(-1)
    torch.testing.assert_close(target(bits)[:, 1], expected / 2)


def test_parity_pipeline_transfers_the_weak_first_layer_and_reuses_it_from_a_file(tmp_path):
    from groktransfer import run_experiment
    from groktransfer.config import run_config_from_dict
    from groktransfer.transfer import load_weak_embedding

    stage = {"model": {"embed_dim": 8, "width": 8, "depth": 1, "vector_input": True},
             "train": {"max_steps": 5, "stop_at_test_acc": None}}
    data = {"device": "cpu", "task": {"kind": "parity", "n_bits": 12, "k": 2, "n_train": 64, "n_test": 64},
            "weak": {**stage, "population": 1, "max_rounds": 1, "if_none_ready": "transfer_best"},
            "target": {**stage, "model": {**stage["model"], "embed_dim": 16}}}
    run_experiment(run_config_from_dict(data), tmp_path / "a", plots=False)
    weak, _ = load_weak_embedding(tmp_path / "a" / "weak_embedding.safetensors")
    assert weak.shape == (12, 8)  # a row per input bit
    data.pop("weak")
    data["transfer"] = {"weak_embedding_file": str(tmp_path / "a" / "weak_embedding.safetensors")}
    summary = run_experiment(run_config_from_dict(data), tmp_path / "b", plots=False)
    assert summary["groktransfer"]["weak_stage"] == "file" and summary["stages"]["target"]["steps"] == 5


def test_vector_fnn_reads_float_inputs_as_they_are_and_may_have_no_hidden_layer():
    from groktransfer.models import VectorFNN

    weak = VectorFNN(64, 10, embed_dim=32, width=32, depth=0, seed=0)  # the paper's 2-layer MNIST weak model
    pixels = torch.rand(5, 64, generator=torch.Generator().manual_seed(0))
    expected = weak.mlp(torch.relu(pixels @ weak.embedding.weight))
    torch.testing.assert_close(weak(pixels), expected)
    assert len([m for m in weak.mlp if isinstance(m, nn.Linear)]) == 1
    with pytest.raises(ConfigError, match="depth: got 0; must be >= 1"):
        FNN(11, 11, depth=0)


def test_a_and_b_train_faster_after_an_unfinished_weak_model():
    from groktransfer.config import TransferConfig

    rule = TransferConfig()  # 0.05 ×, 0.2 × below 95% test
    assert [rule.ab_lr_scale_for(acc) for acc in (None, 0.5, 0.9499, 0.95, 1.0)] == [0.05, 0.2, 0.2, 0.05, 0.05]
    assert TransferConfig(ab_lr_scale_unfinished=None).ab_lr_scale_for(0.5) == 0.05
    assert TransferConfig(weak_finished_test_acc=0.5).ab_lr_scale_for(0.6) == 0.05
    with pytest.raises(ConfigError, match="ab_lr_scale_unfinished: got 0"):
        TransferConfig(ab_lr_scale_unfinished=0).check()
    with pytest.raises(ConfigError, match="weak_finished_test_acc: got 1.5"):
        TransferConfig(weak_finished_test_acc=1.5).check()


def test_weak_files_of_both_kinds_train_in_one_batch_each_at_its_rate(tmp_path):
    """Two weak embedding files, one finished (test 0.99) and one not (0.6), in one batch: each
    target records the rate the rule chose, and trains exactly as a run alone with that rate fixed."""
    import warnings

    from groktransfer.config import run_config_from_dict
    from groktransfer.sweep import run_many
    from groktransfer.transfer import save_weak_embedding

    files = {}
    for acc in (0.99, 0.6):
        files[acc] = tmp_path / f"weak{acc}.safetensors"
        save_weak_embedding(torch.randn(13, 4, generator=torch.Generator().manual_seed(int(acc * 100))), files[acc],
                            metadata={"test_acc": acc})
    stage = {"model": {"embed_dim": 8, "width": 16, "depth": 1},
             "train": {"lr": 0.05, "max_steps": 30, "stop_at_test_acc": None, "eval_every": 10}}

    def job(acc, name, **transfer):
        data = {"device": "cpu", "seed": 1, "task": {"op": "add", "p": 13, "train_fraction": 0.5}, "target": stage,
                "transfer": {"weak_embedding_file": str(files[acc]), **transfer}}
        return run_config_from_dict(data), tmp_path / name

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neither random matrix passes the readiness rule's structure checks
        ruled = run_many([job(0.99, "rule-finished"), job(0.6, "rule-short")], parallel=1)
        fixed = [run_many([one], parallel=1)[0] for one in (
            job(0.99, "fixed-0.05", ab_lr_scale=0.05, ab_lr_scale_unfinished=None),
            job(0.6, "fixed-0.2", ab_lr_scale=0.2, ab_lr_scale_unfinished=None),
            job(0.6, "fixed-0.05-short", ab_lr_scale=0.05, ab_lr_scale_unfinished=None))]
    assert [s["transfer"]["ab_lr_scale"] for s in ruled] == [0.05, 0.2]
    assert [s["transfer"]["weak_finished"] for s in ruled] == [True, False]
    assert ruled[1]["transfer"]["weak_test_acc"] == pytest.approx(0.6)
    for got, expected in zip(ruled, fixed):
        assert got["stages"]["target"]["final_train_loss"] == pytest.approx(
            expected["stages"]["target"]["final_train_loss"], rel=1e-5)
    # the rate makes a difference this test can see
    assert fixed[2]["stages"]["target"]["final_train_loss"] != pytest.approx(
        fixed[1]["stages"]["target"]["final_train_loss"], rel=1e-3)
