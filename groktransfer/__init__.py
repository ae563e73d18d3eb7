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

from .version import __version__  # noqa: E402,F401  (the package attribute)

from .config import (  # noqa: E402
    ConfigError,
    ModelConfig,
    ReadinessConfig,
    RunConfig,
    StageConfig,
    TaskConfig,
    TrainConfig,
    TransferConfig,
    TransformerConfig,
    WeakStageConfig,
    from_dict,
)
from .adapters import LastPositionLogits  # noqa: E402
from .attach import MethodHandle, attach  # noqa: E402
from .compare import METHODS, load_comparison, run_comparison  # noqa: E402
from .methods import GrokFastEMA, GrokFastMA, NormConstraint, OrthoGrad, stablemax_cross_entropy  # noqa: E402
from .metrics import first_step_at, inverse_time_gap, summarize_history, time_gap  # noqa: E402
from .models import FNN, build_network  # noqa: E402
from .multirun import RunSpec, train_many  # noqa: E402
from .pipeline import WeakModelWarning, WeakStageError, format_table, run_experiment  # noqa: E402
from .plots import plot_run  # noqa: E402
from .presets import load_preset, preset_names  # noqa: E402
from .readiness import judge_readiness, weak_report  # noqa: E402
from .saving import from_pretrained, load_state_dict, resize_token_embeddings, save_pretrained  # noqa: E402
from .records import read_metrics  # noqa: E402
from .tasks import ModularTask  # noqa: E402
from .executors import ExecutorConfig, use_executor  # noqa: E402
from .sweep import run_many  # noqa: E402
from .transformer import Transformer  # noqa: E402
from .tune import run_tune  # noqa: E402
from .weak_stage import train_weak_stages  # noqa: E402
from .training import EvalSchedule, TrainResult, train  # noqa: E402
from .transfer import (  # noqa: E402
    FactorizedEmbedding,
    load_weak_embedding,
    locate_input_embedding,
    merge_factorized_embedding,
    save_weak_embedding,
    transfer_embedding,
)

__all__ = [
    "ConfigError",
    "EvalSchedule",
    "FNN",
    "FactorizedEmbedding",
    "GrokFastEMA",
    "GrokFastMA",
    "LastPositionLogits",
    "METHODS",
    "MethodHandle",
    "ModelConfig",
    "ModularTask",
    "NormConstraint",
    "OrthoGrad",
    "ReadinessConfig",
    "RunConfig",
    "RunSpec",
    "StageConfig",
    "TaskConfig",
    "TrainConfig",
    "TrainResult",
    "TransferConfig",
    "Transformer",
    "TransformerConfig",
    "WeakModelWarning",
    "WeakStageConfig",
    "WeakStageError",
    "attach",
    "build_network",
    "first_step_at",
    "format_table",
    "from_dict",
    "from_pretrained",
    "inverse_time_gap",
    "judge_readiness",
    "load_comparison",
    "load_preset",
    "load_state_dict",
    "load_weak_embedding",
    "locate_input_embedding",
    "merge_factorized_embedding",
    "plot_run",
    "preset_names",
    "read_metrics",
    "resize_token_embeddings",
    "run_comparison",
    "run_experiment",
    "run_many",
    "ExecutorConfig",
    "use_executor",
    "run_tune",
    "save_pretrained",
    "save_weak_embedding",
    "stablemax_cross_entropy",
    "summarize_history",
    "time_gap",
    "train",
    "train_many",
    "train_weak_stages",
    "transfer_embedding",
    "weak_report",
]
