"""groktransfer: remove grokking by transferring a weak model's input embedding.

GrokTransfer (Xu, Ni, Wang, Hu, ICLR 2025): train a small weak model until it begins to
generalise, then start a large target model's input embedding as ``E_T = A·B`` with
``A = E_W`` (the weak embedding) and ``B`` random, both trainable.

Quick start::

    import groktransfer as gt

    task = gt.ModularTask("add", p=47, train_fraction=0.4, data_seed=0)
    weak = gt.FNN(task.vocab_size, task.n_classes, embed_dim=8, width=32, depth=1, seed=0)
    gt.train(weak, task, gt.TrainConfig(lr=0.01, weight_decay=1.0, max_steps=10_000, stop_at_test_acc=0.5))
    target = gt.FNN(task.vocab_size, task.n_classes, embed_dim=64, width=256, depth=2, seed=1)
    gt.transfer_embedding(weak, target)
    result = gt.train(target, task, gt.TrainConfig(lr=1e-3, weight_decay=1.0, max_steps=20_000))
    print(result.summary()["time_gap"])
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from .version import __version__  # noqa: F401  (the package attribute; light)

# OpenMP's waiting threads spin ~300,000 times before they sleep (libgomp's default). Two PyTorch
# processes on a small machine (the demo beside the test suite) then spin on each other's cores and
# both slow down ~14x; a short spin keeps one process's speed and lets two share the cores
# (results/bench_sharing_cpu.json, results/bench_sharing_demo_tests.log). It takes effect only if torch is not
# loaded yet, and a value the user set wins. It does not change the thread count or any result.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

# Every public name and the module that defines it. They are imported on first use
# (PEP 562), so that `import groktransfer` and `groktransfer --help` do not pay for torch,
# matplotlib and the rest before they need them.
_EXPORTS: dict[str, str] = {
    "ConfigError": "config", "from_dict": "config", "ModelConfig": "config", "ReadinessConfig": "config",
    "RunConfig": "config", "StageConfig": "config", "TaskConfig": "config", "TrainConfig": "config",
    "TransferConfig": "config", "TransformerConfig": "config", "WeakStageConfig": "config",
    "LastPositionLogits": "adapters",
    "attach": "attaching", "MethodHandle": "attaching",
    "load_comparison": "compare", "METHODS": "compare", "run_comparison": "compare",
    "GrokFastEMA": "methods", "GrokFastMA": "methods", "NormConstraint": "methods", "OrthoGrad": "methods",
    "stablemax_cross_entropy": "methods",
    "first_step_at": "metrics", "inverse_time_gap": "metrics", "summarize_history": "metrics", "time_gap":
    "metrics",
    "build_network": "models", "FNN": "models",
    "RunSpec": "engine", "train_many": "engine",
    "format_table": "pipeline", "run_experiment": "pipeline", "WeakModelWarning": "pipeline",
    "WeakStageError": "pipeline",
    "plot_run": "plots",
    "load_preset": "presets", "preset_names": "presets",
    "judge_readiness": "readiness", "weak_report": "readiness",
    "from_pretrained": "saving", "load_state_dict": "saving", "resize_token_embeddings": "saving",
    "save_pretrained": "saving",
    "read_metrics": "records",
    "ModularTask": "tasks",
    "ExecutorConfig": "executors",
    "run_many": "sweep",
    "Transformer": "transformer",
    "run_tune": "tune",
    "train_weak_stages": "weak_stage",
    "EvalSchedule": "training", "train": "engine", "TrainResult": "training",
    "FactorizedEmbedding": "transfer", "load_weak_embedding": "transfer", "locate_input_embedding":
    "transfer", "merge_factorized_embedding": "transfer", "save_weak_embedding": "transfer",
    "transfer_embedding": "transfer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'groktransfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
