"""One table of bad inputs across the CLI and the API.

Every case must give exactly one line that names the field and what it allows; on the CLI
the exit code is 2, there is no traceback, and no file is created or modified.
"""

import os
import shutil

import pytest
import torch
import yaml

from groktransfer import FNN, ConfigError, LastPositionLogits, ModularTask, TrainConfig, attach, train, transfer_embedding
from groktransfer.cli import main
from groktransfer.engine import RunSpec, train_many
from groktransfer.transformer import Transformer
from groktransfer.methods import GrokFastEMA, GrokFastMA, NormConstraint
from groktransfer.transfer import load_weak_embedding, save_weak_embedding

P = ["run", "--preset", "demo", "--out", "new"]  # a valid start; each case adds one bad piece

CLI_CASES = [
    (["run", "--preset", "nope", "--out", "new"], "--preset 'nope': unknown preset; allowed: classic, demo"),
    (P + ["target.train.lrr=1"], "target.train.lrr: unknown key; allowed: lr, weight_decay"),
    (P + ["target.train.lr=0"], "target.train.lr: got 0.0; must be > 0"),
    (P + ["target.train.lr=abc"], "target.train.lr: got 'abc'; expected a number"),
    (P + ["task.p=1"], "task.p: got 1; must be an integer >= 2"),
    (P + ["task.p=7.5"], "task.p: got 7.5; expected an integer"),
    (P + ["task.op=pow"], "task.op: got 'pow'; allowed: add, sub, mul, div"),
    (P + ["task.op=div", "task.p=48"], "task.p: got 48; op 'div' needs a prime modulus"),
    (P + ["task.train_fraction=0"], "task.train_fraction: got 0.0; must be in (0, 1)"),
    (P + ["task.train_fraction=1.5"], "task.train_fraction: got 1.5; must be in (0, 1)"),
    (P + ["device=tpu"], "device: got 'tpu'; allowed: auto, cpu, cuda, mps"),
    (P + ["target.model.init_scale=0"], "target.model.init_scale: got 0.0; must be > 0"),
    (P + ["target.model.width=0"], "target.model.width: got 0; must be >= 1"),
    (P + ["target.model.bias=maybe"], "target.model.bias: got 'maybe'; expected true or false"),
    (P + ["target.train.betas=[0.9]"], "target.train.betas: got [0.9]; expected a list of 2 numbers"),
    (P + ["target.train.betas=[0.9, 1.5]"], "target.train.betas[1]: got 1.5; must be in [0, 1)"),
    (P + ["target.train.weight_decay=-1"], "target.train.weight_decay: got -1.0; must be >= 0"),
    (P + ["target.train.max_steps=0"], "target.train.max_steps: got 0; must be >= 1"),
    (P + ["target.train.batch_size=0"], "target.train.batch_size: got 0; must be >= 1 or null"),
    (P + ["target.train.eval_every=0"], "target.train.eval_every: got 0; must be >= 1"),
    (P + ["target.train.eval_schedule=cubic"], "target.train.eval_schedule: got 'cubic'; allowed: 'linear', 'log'"),
    (P + ["target.train.eval_log_factor=1"], "target.train.eval_log_factor: got 1.0; must be > 1"),
    (P + ["target.train.stop_at_test_acc=1.5"], "target.train.stop_at_test_acc: got 1.5; must be in (0, 1]"),
    (P + ["target.train.stop_patience=0"], "target.train.stop_patience: got 0; must be >= 1"),
    (P + ["target.train.dtype=float16"], "target.train.dtype: got 'float16'; allowed: 'float32', 'float64'"),
    (P + ["transfer.a_init=zeros"], "transfer.a_init: got 'zeros'; allowed: 'weak', 'random'"),
    (P + ["transfer.b_init=xavier"], "transfer.b_init: got 'xavier'; allowed: 'uniform', 'normal'"),
    (P + ["transfer.merge_at_step=0"], "transfer.merge_at_step: got 0; must be >= 1 or null"),
    (P + ["weak.readiness.min_test_acc=2"], "weak.readiness.min_test_acc: got 2.0; must be in [0, 1] or null"),
    (P + ["weak.population=0"], "weak.population: got 0; must be >= 1"),
    (P + ["weak.lrs=[0.01, -1]"], "weak.lrs[1]: got -1.0; must be > 0"),
    (P + ["weak.lrs=[]"], "weak.lrs: got []; expected a non-empty list"),
    (P + ["weak.select=best"], "weak.select: got 'best'; allowed: 'first_ready', 'best_ready'"),
    (P + ["weak.train.stop_at_test_acc=0.5"], "weak.train.stop_at_test_acc: got 0.5; every candidate would stop"),
    (P + ["weak=null"], "target: needs a weak stage or transfer.weak_embedding_file"),
    (P + ["transfer.weak_embedding_file=w.safetensors"], "transfer.weak_embedding_file: give either a weak stage"),
    (P + ["weak=null", "transfer.weak_embedding_file=missing.safetensors"], "weak embedding file 'missing.safetensors': not found"),
    (P + ["weak=null", "transfer.weak_embedding_file=wrong_rows.safetensors"],
     "transfer.weak_embedding_file: has 5 rows but the task's vocabulary has 47"),
    (P + ["scratch.methods.norm_constraint=1.0"], "scratch.methods.norm_constraint: needs train.weight_decay: 0"),
    (P + ["scratch.methods.grokfast.alpha=2"], "scratch.methods.grokfast.alpha: got 2.0; must be in [0, 1)"),
    (P + ["scratch.methods.grokfast.filter=sma"], "scratch.methods.grokfast.filter: got 'sma'; allowed: 'ema', 'ma'"),
    (P + ["scratch.methods.loss=mse"], "scratch.methods.loss: got 'mse'; allowed: 'cross_entropy', 'stablemax'"),
    (P + ["checkpoint.every_steps=0"], "checkpoint.every_steps: got 0; must be >= 1 or null"),
    (["run", "tiny.yaml", "--out", "exists"], "--out 'exists': already exists; choose another directory or pass --overwrite"),
    (["run", "tiny.yaml", "list.yaml", "--out", "new"], "run: at most one config file"),
    (["run", "tiny.yaml", "--out", "tiny.yaml/sub"], "--out 'tiny.yaml/sub': 'tiny.yaml' is a file, not a directory"),
    (["run", "missing.yaml", "--out", "new"], "config file 'missing.yaml': not found"),
    (["run", "list.yaml", "--out", "new"], "config file 'list.yaml': expected a mapping at the top level"),
    (["run", "broken.yaml", "--out", "new"], "config file 'broken.yaml': cannot be parsed"),
    (["run", "code.yaml", "--out", "new"], "config file 'code.yaml': cannot be parsed"),
    (["run", "deep.yaml", "--out", "new"], "config file 'deep.yaml': nested more than 64 levels deep"),
    (["run", "deep_parsed.yaml", "--out", "new"], "config file 'deep_parsed.yaml': nested more than 64 levels deep"),
    (P + ["weak=" + "[" * 20_000 + "]" * 20_000], "override weak: value nested more than 64 levels deep"),
    (P + ["weak=" + "{a: " * 80 + "1" + "}" * 80], "override weak: nested more than 64 levels deep"),
    (["run", "--preset", "demo", "--out", "new", "--bogus"], "unrecognized arguments: --bogus"),
    (["resume", "."], "resume: '.' is not a run directory"),
    (["compare", "--methods", "adam", "--out", "new"], "method 'adam': unknown; allowed: scratch, grokfast-ema"),
    (["compare", "--methods", "scratch,groktransfer,scratch", "--out", "new"], "--methods: scratch given more than once"),
    (["compare", "--methods", "scratch", "--executor", "ray", "--ray-address", "http://head", "--out", "new"],
     "--ray-address: got 'http://head'; expected HOST:PORT, ray://HOST:PORT, auto or local"),
    (["compare", "--methods", "scratch", "--ray-address", "head:6379", "--out", "new"],
     "--ray-address: only with --executor ray (got --executor local)"),
    (["tune", "--methods", "stablemax, stablemax", "--out", "new"], "--methods: stablemax given more than once"),
    (["compare", "--methods", "scratch", "--seeds", "x", "--out", "new"], "--seeds: got 'x'; expected N or a comma-separated"),
    (["tune", "--methods", "scratch", "--grid", "huge", "--out", "new"], "--grid 'huge': unknown; allowed: paper, small or a YAML file"),
    (["plot", "nothing"], "plot: 'nothing' is not a run directory"),
    (P + ["--seeds", "0,0"], "--seeds: got '0,0'; expected at least one distinct non-negative seed"),
    (P + ["--seeds", "2", "--parallel", "0"], "--parallel: got 0; must be >= 1"),
    (["compare", "--methods", "scratch", "--parallel", "many", "--out", "new"], "--parallel: got 'many'; expected a positive"),
    (["run", "tiny.yaml", "--out", "exists", "--seeds", "2"], "--out 'exists': already exists"),
    (["reproduce", "fig99", "--out", "new"], "reproduce 'fig99': unknown; allowed: fig1b, fig6a, fig6b, fig6c"),
    (["reproduce", "fig8b", "--out", "exists"], "--out 'exists': already exists"),
    (["reproduce", "fig15", "--out", "new", "preset_overrides=['task.p=1']"], "task.p: got 1; must be an integer >= 2"),
    (["reproduce", "xor", "--out", "new", "ns=3"], "reproduce xor: ns: unknown key"),
    (["reproduce", "fig5", "--out", "new", "ns=3"], "reproduce fig5: ns: got 3; expected a non-empty list"),
    (["reproduce", "fig3", "--out", "new", "encodings=[gray]"], "encodings: got ['gray']; a non-empty list from one_hot"),
    (["reproduce", "fig2", "--out", "new", "--parallel", "0"], "--parallel: got 0; must be >= 1"),
    (P + ["target.train.entk_probe=-2"], "target.train.entk_probe: got -2; must be >= 0"),
    (P + ["weak=null", "target=null", "scratch.model.encoding=missing.npy"], "encoding file 'missing.npy': not found"),
    (P + ["--seeds", "2", "weak=null", "target=null", "scratch.model.encoding=missing.npy"],
     "encoding file 'missing.npy': not found"),
    (P + ["target.train.precision=fp8"], "target.train.precision: got 'fp8'; allowed: 'full', 'tf32', 'bf16'"),
    (P + ["target.train.precision=bf16", "target.train.dtype=float64"],
     "target.train.precision: 'bf16' needs dtype float32 (got float64)"),
    (P + ["transfer.extra_rows=copy"], "transfer.extra_rows: got 'copy'; allowed: 'random', 'zero'"),
    (P + ["target.model.transformer={style: gpt}"], "target.model.transformer.style: got 'gpt'; allowed: 'nanda', 'grokfast'"),
    (P + ["target.model.transformer={n_heads: 0}"], "target.model.transformer.n_heads: got 0; must be >= 1"),
    # Non-finite numbers, whatever the spelling.
    (P + ["target.train.lr=1e400"], "target.train.lr: got inf; expected a finite number"),
    (P + ["target.train.weight_decay=.inf"], "target.train.weight_decay: got inf; expected a finite number"),
    (P + ["target.train.eps=1e400"], "target.train.eps: got inf; expected a finite number"),
    (P + ["target.train.lr=.nan"], "target.train.lr: got nan; expected a finite number"),
    (["run", "inf.yaml", "--out", "new"], "scratch.train.lr: got inf; expected a finite number"),
    # One seed range for every seed field.
    (P + ["seed=-1"], "seed: got -1; must be in [0, 4294967295]"),
    (P + ["seed=1180591620717411303424"], "seed: got 1180591620717411303424; must be in [0, 4294967295]"),
    (P + ["task.data_seed=-3"], "task.data_seed: got -3; must be in [0, 4294967295]"),
    (P + ["--seeds", "4294967296,1"], "--seeds: got '4294967296,1'; every seed must be in [0, 4294967295]"),
    (P + ["--seeds", "99999999999"], "--seeds: got '99999999999'; at most 10000 seeds"),
    # More than this machine can hold, files YAML can write but a config cannot hold, odd paths.
    (P + ["task.p=100000"], "task.p: 100000 needs ~640 GB for its 10,000,000,000 pairs; this machine has"),
    (["run", "twice.yaml", "--out", "new"], "config file 'twice.yaml': cannot be parsed (key 'task' given twice (line 2))"),
    (["run", "binary.yaml", "--out", "new"], "config file 'binary.yaml': name: a YAML bytes value is not allowed"),
    (["run", "bomb.yaml", "--out", "new"], "config file 'bomb.yaml': more than 100000 values once its YAML aliases"),
    (P + ["name=!!binary aGVsbG8="], "override name: : a YAML bytes value is not allowed"),
    (["run", "tiny.yaml", "--out", ""], "--out: empty; give a directory"),
    (["run", "tiny.yaml", "--out", "x" * 300], "unusable (File name too long)"),
    (P + ["weak=null", "transfer.weak_embedding_file=nan.safetensors"],
     "weak embedding file 'nan.safetensors': holds NaN or infinite values"),
    (["plot", "."], "plot: '.' is not a run directory (no metrics.csv)"),
    (P + ["target.model.width=1000000"], "target.model: needs ~16035 GB to train (1,000,175,003,008 parameters)"),
    (P + ["--seeds", "2", "--overwrite", "scratch.model.width=1000000"], "scratch.model: needs ~16035 GB to train"),
    (["compare", "--spec", "demo", "--methods", "scratch", "--out", "new", "model.width=1000000"],
     "scratch.model: needs ~16035 GB to train"),
]

API_CASES = [
    (lambda: ModularTask("div", p=15), "p: got 15; op 'div' needs a prime modulus"),
    (lambda: ModularTask("add", p=11, train_fraction=2.0), "train_fraction: got 2.0; must be in (0, 1)"),
    (lambda: FNN(11, 11, init_scale=-1.0), "init_scale: got -1.0; must be > 0"),
    (lambda: FNN(11, 11, depth=0), "depth: got 0; must be >= 1"),
    (lambda: TrainConfig(lr=-1), "lr: got -1.0; must be > 0"),
    (lambda: TrainConfig(max_steps="10"), "max_steps: got '10'; expected an integer"),
    (lambda: transfer_embedding(torch.randn(5, 2), FNN(7, 7)),
     "vocabulary sizes differ: weak embedding has 5 rows, target's get_input_embeddings() has 7"),
    (lambda: transfer_embedding(torch.randn(7, 2), FNN(7, 7), attribute="emb"), "transfer: FNN has no submodule 'emb'"),
    (lambda: train_many([RunSpec(FNN(5, 5, seed=0), ModularTask("add", p=5), TrainConfig(max_steps=3)),
                         RunSpec(FNN(5, 5, seed=1), ModularTask("add", p=5), TrainConfig(max_steps=4))]),
     "train_many: runs 0 and 1 differ in train.max_steps"),
    (lambda: Transformer(5, 5, style="bert"), "transformer style: got 'bert'; allowed: nanda, grokfast"),
    (lambda: GrokFastEMA(FNN(5, 5), alpha=1.0), "grokfast.alpha: got 1.0; must be in [0, 1)"),
    (lambda: GrokFastMA(FNN(5, 5), window=0), "grokfast.window: got 0; must be >= 1"),
    (lambda: NormConstraint(FNN(5, 5), factor=-2.0), "norm_constraint: got -2.0; must be > 0"),
    (lambda: load_weak_embedding("corrupt.safetensors"), "weak embedding file 'corrupt.safetensors': unreadable"),
    (lambda: TrainConfig(lr=float("inf")), "lr: got inf; expected a finite number"),
    (lambda: TrainConfig(weight_decay=10**400), "weight_decay: got 1000000000000000000000000000000000000000000000000"),
    (lambda: transfer_embedding(torch.full((7, 2), float("nan")), FNN(7, 7)), "weak embedding: holds NaN or infinite"),
    (lambda: train(FNN(13, 11), ModularTask("add", p=11), TrainConfig(max_steps=1)),
     "model: its embedding reads 13 tokens, the task has 11"),
    (lambda: train(FNN(7, 7), ModularTask("add", p=11), TrainConfig(max_steps=1)),
     "model: its embedding reads 7 tokens, the task has 11"),
    (lambda: train(FNN(11, 13), ModularTask("add", p=11), TrainConfig(max_steps=1)),
     "model: gives 13 outputs per input, the task has 11 classes"),
    (lambda: train(LastPositionLogits(torch.nn.Embedding(5, 11), 11), ModularTask("add", p=11), TrainConfig(max_steps=1)),
     "task: x_train holds token 10; the model's embedding has 5 rows (tokens 0 to 4)"),
    (lambda: train(FNN(11, 11), edited_task(x_test=lambda x: x + 11), TrainConfig(max_steps=1)),
     "task: x_test holds token 21; the model's embedding has 11 rows"),
    (lambda: train(FNN(11, 11), edited_task(y_train=lambda y: y.float()), TrainConfig(max_steps=1)),
     "task: y_train holds torch.float32 values; the loss reads integer class labels"),
    (lambda: train(FNN(11, 11), edited_task(x_train=lambda x: x[:0], y_train=lambda y: y[:0]), TrainConfig(max_steps=1)),
     "task: the train set is empty"),
    (lambda: train(FNN(11, 11), edited_task(x_test=lambda x: x[:0], y_test=lambda y: y[:0]), TrainConfig(max_steps=1)),
     "task: the test set is empty"),
    (lambda: train(FNN(11, 11), edited_task(y_train=lambda y: y[:-3]), TrainConfig(max_steps=1)),
     "task: x_train holds 30 inputs, y_train 27 labels"),
    (lambda: train(FNN(11, 11), edited_task(y_test=lambda y: y + 11), TrainConfig(max_steps=1)),
     "task: y_test holds label 21; the model gives 11 outputs (labels 0 to 10)"),
    (lambda: train(FNN(11, 11), edited_task(y_train=lambda y: y - 11), TrainConfig(max_steps=1)),
     "task: y_train holds label -11"),
    (lambda: train(NoParameters(), ModularTask("add", p=11), TrainConfig(max_steps=1)),
     "model: NoParameters has no trainable parameters"),
    (lambda: train_many([RunSpec(NoParameters(), ModularTask("add", p=11), TrainConfig(max_steps=1))]),
     "model: NoParameters has no trainable parameters"),
    (lambda: attach(*optimized(FNN(5, 5)), "nope"), "attach: method 'nope': unknown"),
    (lambda: attach(*optimized(FNN(5, 5)), "grokfast-ema", alpha=2.0), "alpha: got 2.0; must be in [0, 1)"),
    (lambda: attach(*optimized(FNN(5, 5)), "grokfast-ema", window=3), "attach: window: not a setting of grokfast-ema"),
    (lambda: attach_twice(), "attach: this optimizer already runs 'grokfast-ema'"),
    (lambda: attach(torch.optim.SGD(FNN(5, 5).parameters(), lr=0.1), FNN(5, 5), "orthograd"),
     "attach: the optimizer holds none of the FNN's parameters"),
    (lambda: transfer_embedding(torch.randn(7, 2), FNN(7, 7), b_scale=float("nan")),
     "transfer_embedding: b_scale: got nan; must be a finite number > 0"),
    (lambda: transfer_embedding(torch.randn(7, 2), FNN(7, 7), lr_scale=float("inf")),
     "transfer_embedding: lr_scale: got inf"),
    (lambda: transfer_embedding(torch.randn(7, 2), FNN(7, 7), lr_scale=0.0), "transfer_embedding: lr_scale: got 0.0"),
    (lambda: transfer_embedding(torch.randn(7, 2), FNN(7, 7), seed=2**70), "transfer_embedding: seed: got 1180591620717411303424"),
    (lambda: transfer_embedding(torch.randn(7, 2), FNN(7, 7), seed=-1), "transfer_embedding: seed: got -1"),
    (lambda: transfer_embedding(torch.randn(7, 2), FNN(7, 7), b_init="gauss"), "transfer_embedding: b_init: got 'gauss'"),
    (lambda: transfer_embedding(torch.zeros(7, 0), FNN(7, 7)), "weak embedding: empty, shape (7, 0)"),
    (lambda: transfer_embedding(torch.zeros(0, 2), FNN(7, 7)), "weak embedding: empty, shape (0, 2)"),
]


class NoParameters(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 11)


def edited_task(**edits):
    """ModularTask("add", p=11) (30 training pairs) with some of its tensors edited."""
    task = ModularTask("add", p=11)
    for name, edit in edits.items():
        setattr(task, name, edit(getattr(task, name)))
    return task


def optimized(model):
    return torch.optim.AdamW(model.parameters()), model


def attach_twice():
    optimizer, model = optimized(FNN(5, 5))
    attach(optimizer, model, "grokfast-ema")
    attach(optimizer, model, "grokfast-ema")

TYPE_CASES = [
    (lambda: train(FNN(11, 11), None, TrainConfig(max_steps=1)), "train: task must hold tensors x_train, y_train"),
    (lambda: train(FNN(11, 11), ModularTask("add", p=11), {"lr": 0.1}), "train: config must be a TrainConfig, got dict"),
    (lambda: train("fnn", ModularTask("add", p=11), TrainConfig(max_steps=1)), "train: model must be an nn.Module"),
    (lambda: attach(*optimized(FNN(5, 5)), None), "attach: method must be a name such as 'grokfast-ema', got NoneType"),
    (lambda: attach(FNN(5, 5), torch.optim.SGD(FNN(5, 5).parameters(), lr=0.1), "orthograd"),
     "attach: optimizer must be a torch.optim.Optimizer, got FNN"),
    (lambda: transfer_embedding(torch.randn(7, 2), None), "transfer_embedding: target must be an nn.Module, got NoneType"),
    (lambda: transfer_embedding(42, FNN(7, 7)), "transfer_embedding: weak must be a weak model"),
    (lambda: transfer_embedding(torch.randn(7, 2), FNN(7, 7), seed=1.5), "transfer_embedding: seed must be an int or None"),
    (lambda: transfer_embedding(torch.randn(7, 2), FNN(7, 7), seed=True), "transfer_embedding: seed must be an int or None"),
    (lambda: transfer_embedding(torch.randn(7, 2), FNN(7, 7), b_scale="1"), "transfer_embedding: b_scale must be a number"),
]


@pytest.fixture(scope="module")
def workdir_template(tmp_path_factory):
    """The files every case reads, and one finished run to protect, made once: each test gets
    its own copy (training the run for each of ~60 cases cost half of the fast test layer)."""
    tmp_path = tmp_path_factory.mktemp("bad-input")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        _write_inputs(tmp_path)
    finally:
        os.chdir(cwd)
    return tmp_path


@pytest.fixture
def workdir(workdir_template, tmp_path, monkeypatch):
    shutil.copytree(workdir_template, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write_inputs(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({"scratch": {"model": {"width": 8, "embed_dim": 4, "depth": 1},
                                                                    "train": {"max_steps": 2}}, "task": {"p": 5}}))
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "broken.yaml").write_text("task: {p: [\n")
    (tmp_path / "code.yaml").write_text("!!python/object/apply:os.system ['touch hacked']\n")
    (tmp_path / "deep.yaml").write_text("weak: " + "[" * 20_000 + "]" * 20_000 + "\n")  # deeper than PyYAML recurses
    (tmp_path / "deep_parsed.yaml").write_text("weak: " + "[" * 100 + "]" * 100 + "\n")  # parsed, then refused
    save_weak_embedding(torch.randn(5, 4), tmp_path / "wrong_rows.safetensors")
    (tmp_path / "w.safetensors").write_bytes((tmp_path / "wrong_rows.safetensors").read_bytes())
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad json")
    save_weak_embedding(torch.full((47, 4), float("nan")), tmp_path / "nan.safetensors")
    (tmp_path / "inf.yaml").write_text("scratch: {train: {lr: .inf}}\ntask: {p: 5}\n")
    (tmp_path / "twice.yaml").write_text("task: {p: 5}\ntask: {p: 7}\nscratch: {}\n")
    (tmp_path / "binary.yaml").write_text("name: !!binary aGVsbG8=\nscratch: {}\n")
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        laughs.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(laughs) + "\n")
    assert main(["run", "tiny.yaml", "--out", "exists", "--no-progress"]) == 0  # an existing run to protect


def snapshot(root):
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_the_table_has_over_150_cases():
    """docs/reliability.md quotes this table's size."""
    assert len(CLI_CASES) + len(API_CASES) + len(TYPE_CASES) > 150


@pytest.mark.parametrize("argv, message", CLI_CASES, ids=[" ".join(a[-2:])[:80] for a, _ in CLI_CASES])
def test_cli_bad_input(workdir, capsys, argv, message):
    capsys.readouterr()
    before = snapshot(workdir)
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("groktransfer: error: ") and "Traceback" not in captured.err
    assert message in lines[0], lines[0]
    assert snapshot(workdir) == before
    assert not os.path.exists(workdir / "hacked")


@pytest.mark.parametrize("make, message", API_CASES, ids=[m for _, m in API_CASES])
def test_api_bad_input(workdir, make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("make, message", TYPE_CASES, ids=[m for _, m in TYPE_CASES])
def test_api_wrong_types(make, message):
    with pytest.raises(TypeError) as info:
        make()
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("argv", [P + ["device=cuda"], ["resume", "exists", "--device", "cuda"],
                                  ["compare", "--methods", "scratch", "--out", "new", "device=cuda"],
                                  P + ["--seeds", "2", "device=cuda"]])
def test_a_device_this_machine_lacks_is_refused_before_anything_is_written(workdir, capsys, argv):
    before = snapshot(workdir)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device: 'cuda' is not available on this machine" in err[0]
    assert snapshot(workdir) == before
