"""A transferred model survives the ecosystem's save and load, with identical logits."""

import copy
import json

import pytest
import torch

import groktransfer as gt
from groktransfer.config import ConfigError

transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402


def gpt2(seed=0):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=11, n_positions=2, n_embd=16, n_layer=1, n_head=2,
                                      bos_token_id=None, eos_token_id=None)).eval()


def transferred():
    model = gpt2()
    gt.transfer_embedding(torch.randn(11, 4, generator=torch.Generator().manual_seed(1)), model, seed=2, lr_scale=0.2)
    with torch.no_grad():  # A and B trained a little: not their initial values
        model.get_input_embeddings().A.add_(0.1)
        model.get_input_embeddings().B.mul_(1.5)
    return model


TOKENS = torch.tensor([[1, 2], [3, 4], [10, 0]])


def logits(model):
    with torch.no_grad():
        return model(TOKENS).logits


def test_hugging_face_round_trip_keeping_a_and_b(tmp_path):
    model = transferred()
    gt.save_pretrained(model, tmp_path / "kept")
    assert (tmp_path / "kept" / "groktransfer.json").is_file()
    loaded = gt.from_pretrained(GPT2LMHeadModel, tmp_path / "kept")
    embedding = loaded.get_input_embeddings()
    assert isinstance(embedding, gt.FactorizedEmbedding) and embedding.A.shape == (11, 4) and embedding.lr_scale == 0.2
    torch.testing.assert_close(logits(loaded), logits(model), rtol=0, atol=0)
    # The library's own loader alone cannot: it says so and builds a random embedding (why gt.from_pretrained exists).
    plain = GPT2LMHeadModel.from_pretrained(tmp_path / "kept")
    assert not torch.allclose(logits(plain), logits(model))


def test_hugging_face_round_trip_merged(tmp_path):
    model = transferred()
    gt.save_pretrained(model, tmp_path / "merged", merge=True)
    assert isinstance(model.get_input_embeddings(), gt.FactorizedEmbedding)  # the model itself is unchanged
    loaded = GPT2LMHeadModel.from_pretrained(tmp_path / "merged").eval()  # the library's own loader
    assert isinstance(loaded.get_input_embeddings(), torch.nn.Embedding)
    torch.testing.assert_close(logits(loaded), logits(model), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(logits(gt.from_pretrained(GPT2LMHeadModel, tmp_path / "merged")), logits(model),
                               rtol=1e-6, atol=1e-6)


def test_state_dicts_load_into_fresh_models():
    task = gt.ModularTask("add", p=11)
    model = gt.FNN(11, 11, embed_dim=16, width=16, depth=1, seed=0)
    gt.transfer_embedding(torch.randn(11, 4), model, seed=1)
    fresh = gt.FNN(11, 11, embed_dim=16, width=16, depth=1, seed=7)
    with pytest.raises(RuntimeError, match="Unexpected key"):  # what plain torch says
        copy.deepcopy(fresh).load_state_dict(model.state_dict())
    gt.load_state_dict(fresh, model.state_dict())
    torch.testing.assert_close(fresh(task.x_test), model(task.x_test), rtol=0, atol=0)


def test_transformer_lens_state_dict_loads_into_a_fresh_model():
    tl = pytest.importorskip("transformer_lens")
    cfg = tl.HookedTransformerConfig(n_layers=1, d_model=16, n_ctx=2, d_head=4, n_heads=4, d_vocab=11,
                                     act_fn="relu", normalization_type=None, seed=0)
    model = tl.HookedTransformer(cfg)
    gt.transfer_embedding(torch.randn(11, 4), model, seed=1)
    fresh = tl.HookedTransformer(cfg)
    gt.load_state_dict(fresh, model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh(TOKENS), model(TOKENS), rtol=0, atol=0)


def test_resize_token_embeddings_grows_a_at_its_scale():
    model = transferred()
    before = logits(model)
    old_a = model.get_input_embeddings().A.detach().clone()
    model.resize_token_embeddings(13)
    embedding = model.get_input_embeddings()
    assert isinstance(embedding, gt.FactorizedEmbedding) and embedding.A.shape == (13, 4)
    assert model.config.vocab_size == 13 and model.get_output_embeddings().weight.shape[0] == 13
    torch.testing.assert_close(embedding.A[:11], old_a)
    rms_old, rms_new = old_a.pow(2).mean().sqrt(), embedding.A[11:].detach().pow(2).mean().sqrt()
    assert 0.2 < float(rms_new / rms_old) < 5  # drawn at the old rows' scale (two rows: a loose check)
    torch.testing.assert_close(logits(model)[..., :11], before, rtol=1e-6, atol=1e-6)  # old tokens: unchanged
    copied = copy.deepcopy(model)
    copied.resize_token_embeddings(15)  # a copy resizes itself, not the original
    assert copied.get_input_embeddings().A.shape[0] == 15 and model.get_input_embeddings().A.shape[0] == 13


def test_what_is_not_an_embedding_is_refused_and_a_second_transfer_replaces():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.head = torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5)

        def forward(self, x):
            return self.head(self.emb(x))

    model = Model()
    with pytest.raises(ConfigError, match="attribute 'head' is a Linear, not an input embedding"):
        gt.transfer_embedding(torch.randn(5, 2), model, attribute="head")
    first = gt.transfer_embedding(torch.randn(5, 2), model)
    second = gt.transfer_embedding(torch.randn(5, 3), model)  # found again, and replaced
    assert model.emb is second is not first and second.A.shape == (5, 3) and second.B.shape == (3, 3)
    with pytest.raises(ConfigError, match="has no save_pretrained"):
        gt.save_pretrained(model, "nowhere")


def _saved(tmp_path):
    gt.save_pretrained(transferred(), tmp_path / "kept")
    return tmp_path / "kept"


def _edit_sidecar(folder, edit):
    path = folder / "groktransfer.json"
    data = json.loads(path.read_text())
    edit(data["factorized_embeddings"]["transformer.wte"])
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("damage, words", [
    (lambda d: (d / "config.json").unlink(), "config.json"),
    (lambda d: (d / "config.json").write_text("{not json"), "cannot load"),
    (lambda d: (d / "groktransfer.json").write_text("garbage"), "groktransfer.json"),
    (lambda d: (d / "groktransfer.json").write_text("[]"), "factorized_embeddings"),
    (lambda d: _edit_sidecar(d, lambda e: e.update(rows=10**7, rank=10**7)), "the weights hold"),
    (lambda d: _edit_sidecar(d, lambda e: e.update(rank=-3)), "rank must be a positive integer"),
    (lambda d: _edit_sidecar(d, lambda e: e.update(lr_scale=float("nan"))), "lr_scale"),
    (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 40), "model.safetensors"),
    (lambda d: (d / "model.safetensors").unlink(), "no .safetensors"),
])
def test_damaged_saved_models_are_refused_with_one_line_naming_the_file(tmp_path, damage, words):
    folder = _saved(tmp_path)
    damage(folder)
    with pytest.raises(ConfigError) as refused:
        gt.from_pretrained(GPT2LMHeadModel, folder)
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_from_pretrained_checks_its_arguments(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        gt.from_pretrained(GPT2LMHeadModel, tmp_path / "absent")
    for not_a_class in (gt.FNN, torch.nn.Linear, 42, None):
        with pytest.raises(TypeError, match="model_class must be a Hugging Face model class"):
            gt.from_pretrained(not_a_class, _saved(tmp_path))
