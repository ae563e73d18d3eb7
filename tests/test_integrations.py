"""GrokTransfer into Hugging Face and TransformerLens models built locally from configs (nothing downloaded)."""

import pytest
import torch

from groktransfer import ConfigError, FactorizedEmbedding, LastPositionLogits, TrainConfig, train, transfer_embedding
from groktransfer.tasks import ModularTask

transformers = pytest.importorskip("transformers")
transformer_lens = pytest.importorskip("transformer_lens")

# TransformerLens 3.x announces that 4.0 removes HookedTransformer; the [tl] extra pins < 4.
pytestmark = pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning")

VOCAB = 23


def weak_matrix():
    return torch.randn(VOCAB, 4, generator=torch.Generator().manual_seed(0))


def test_hugging_face_gpt2_gets_a_b_and_an_untied_output_layer():
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=4, n_embd=16, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    old = model.transformer.wte.weight.detach().clone()
    assert model.lm_head.weight is model.transformer.wte.weight  # tied before
    installed = transfer_embedding(weak_matrix(), model, seed=1)
    assert model.get_input_embeddings() is installed
    assert model.lm_head.weight is not installed.weight and torch.equal(model.lm_head.weight, old)
    assert model.config.tie_word_embeddings is False
    tokens = torch.randint(0, VOCAB, (6, 2))
    torch.testing.assert_close(model.transformer.wte(tokens), (installed.A @ installed.B)[tokens])
    out = model(tokens, labels=tokens)
    out.loss.backward()
    assert installed.A.grad.abs().sum() > 0 and installed.B.grad.abs().sum() > 0


def test_transformer_lens_hooked_transformer_embed_is_replaced_and_hooks_still_fire():
    config = transformer_lens.HookedTransformerConfig(
        n_layers=1, d_model=16, n_ctx=4, d_head=4, n_heads=4, d_mlp=32, d_vocab=VOCAB, act_fn="relu",
        normalization_type=None, seed=0,
    )
    model = transformer_lens.HookedTransformer(config)
    installed = transfer_embedding(weak_matrix(), model, seed=1)
    assert model.embed is installed and isinstance(model.embed, FactorizedEmbedding)
    torch.testing.assert_close(model.W_E, installed.A @ installed.B)  # HookedTransformer.W_E reads embed.W_E
    tokens = torch.randint(0, VOCAB, (6, 2))
    logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(cache["hook_embed"], (installed.A @ installed.B)[tokens])
    logits[:, -1].logsumexp(-1).sum().backward()
    assert installed.A.grad.abs().sum() > 0 and installed.B.grad.abs().sum() > 0


def test_a_vocabulary_mismatch_names_the_models_embedding():
    config = transformer_lens.HookedTransformerConfig(
        n_layers=1, d_model=16, n_ctx=4, d_head=4, n_heads=4, d_vocab=VOCAB + 2, act_fn="relu", d_mlp=32,
        normalization_type=None,
    )
    with pytest.raises(ConfigError, match=r"weak embedding has 23 rows, target's embed.W_E has 25"):
        transfer_embedding(weak_matrix(), transformer_lens.HookedTransformer(config))


def test_a_hugging_face_model_trains_with_groktransfers_loop():
    task = ModularTask("add", p=VOCAB, train_fraction=0.5, data_seed=0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=2, n_embd=16, n_layer=1, n_head=2)
    gpt2 = transformers.GPT2LMHeadModel(config)
    installed = transfer_embedding(weak_matrix(), gpt2, seed=1)
    model = LastPositionLogits(gpt2, n_classes=VOCAB)
    before = installed.B.detach().clone()
    result = train(model, task, TrainConfig(lr=3e-3, weight_decay=0.1, max_steps=60, stop_at_test_acc=None))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert not torch.equal(installed.B, before)
