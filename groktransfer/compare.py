"""A fair multi-seed comparison of ways to speed up grokking.

Usage::

    spec = load_comparison("demo")                      # groktransfer/experiments/compare/demo.yaml
    result = run_comparison(spec, ["scratch", "grokfast-ema", "groktransfer"], seeds=[0, 1, 2], out="runs/cmp")
    print(result["table"])

Fairness rules:

- Every method trains the same target architecture (``spec.model``) on the same task, with
  the same seeds and data splits (seed s sets ``seed`` and ``task.data_seed``), the same step
  budget and evaluation schedule (``spec.train``). Method hyperparameters may not change
  those: they come from ``spec.hyperparameters`` or a tuning result (``groktransfer tune``).
- GrokTransfer's weak stage is part of its cost: its wall-clock and FLOPs are added in.
- A seed that never reaches a threshold counts as infinitely slow. Medians and quartiles
  are taken over all seeds with that convention ("never" when the statistic is infinite),
  and the success rate says how many seeds reached it.

Methods (``METHODS``) can be combined with ``+`` where that makes sense, e.g.
``groktransfer+grokfast-ema``. Combinations that do not (two GrokFast filters,
``scratch`` with anything, a method twice) are refused.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

from .config import (
    Config,
    ConfigError,
    ModelConfig,
    RunConfig,
    WeakStageConfig,
    TaskConfig,
    TrainConfig,
    TransferConfig,
    apply_overrides,
    deep_merge,
    from_dict,
    load_config_file,
)
from .pipeline import prepare
from .records import atomic_write_text, claim_sweep_dir, environment, read_metrics
from .sweep import run_many
from .training import resolve_device
from .names import METHODS  # noqa: F401  (part of this module's API: compare.METHODS)

# Budget and schedule keys are the comparison's, never a method's.
FIXED_TRAIN_KEYS = ("max_steps", "stop_at_test_acc", "stop_patience", "eval_dense_until", "eval_schedule",
                    "eval_every", "eval_log_factor", "batch_size", "dtype")


@dataclass
class ComparisonConfig(Config):
    """The shared ground of a comparison; see groktransfer/experiments/compare/*.yaml."""

    name: str = "comparison"  # a label for tables and plots
    task: TaskConfig = field(default_factory=TaskConfig)
    device: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)  # the architecture every method trains
    train: TrainConfig = field(default_factory=TrainConfig)  # budget, schedule and default optimizer settings
    # GrokTransfer's weak stage; null: none (the target's A comes from transfer.weak_embedding_file,
    # or is random), as `groktransfer run ... weak=null` does
    weak: Optional[WeakStageConfig] = field(default_factory=WeakStageConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    hyperparameters: dict = field(default_factory=dict)  # {method: {model: {...}, train: {...}, methods: {...}}}

    def check(self) -> None:
        for method, overrides in self.hyperparameters.items():
            method_components(method)
            if not isinstance(overrides, dict):
                raise ConfigError(f"hyperparameters.{method}: expected a mapping")


def method_components(name: str) -> list[str]:
    parts = name.split("+")
    for part in parts:
        if part not in METHODS:
            raise ConfigError(f"method {part!r}: unknown; allowed: {', '.join(METHODS)} (combine with +)")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"method {name!r}: a method appears twice")
    if "scratch" in parts and len(parts) > 1:
        raise ConfigError(f"method {name!r}: scratch is the plain baseline and combines with nothing")
    if {"grokfast-ema", "grokfast-ma"} <= set(parts):
        raise ConfigError(f"method {name!r}: choose one GrokFast filter, ema or ma")
    return parts


def parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise ConfigError("--methods: give at least one of " + ", ".join(METHODS))
    for method in methods:
        method_components(method)
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:  # it would train the same runs twice and list them twice
        raise ConfigError(f"--methods: {', '.join(repeated)} given more than once")
    return methods


def method_run_config(spec: ComparisonConfig, method: str, seed: int, hyper: Optional[dict] = None) -> RunConfig:
    """The RunConfig that trains ``method`` on ``seed``: one stage (plus the weak stage for GrokTransfer)."""
    parts = method_components(method)
    stage = {"model": spec.model.to_dict(), "train": spec.train.to_dict(), "methods": {}}
    for part in parts:
        stage = deep_merge(stage, METHODS[part])
    hyper = dict(hyper if hyper is not None else spec.hyperparameters.get(method, {}))
    weak_override = hyper.pop("weak", None)
    transfer_override = hyper.pop("transfer", None)
    for key in hyper:
        if key not in ("model", "train", "methods"):
            raise ConfigError(f"hyperparameters.{method}.{key}: unknown key; allowed: model, train, methods, weak, transfer")
    for key in hyper.get("train", {}):
        if key in FIXED_TRAIN_KEYS:
            raise ConfigError(f"hyperparameters.{method}.train.{key}: fixed by the comparison, not a method setting")
    stage = deep_merge(stage, hyper)
    data = {
        "name": f"{spec.name}-{method}",
        "seed": seed,
        "device": spec.device,
        "task": dict(spec.task.to_dict(), data_seed=seed),
    }
    if "groktransfer" in parts:
        if spec.weak is None and weak_override:
            raise ConfigError(f"hyperparameters.{method}.weak: the comparison has no weak stage (weak: null)")
        data["weak"] = None if spec.weak is None else deep_merge(spec.weak.to_dict(), weak_override or {})
        data["transfer"] = deep_merge(spec.transfer.to_dict(), transfer_override or {})
        data["target"] = stage
    else:
        if weak_override or transfer_override:
            raise ConfigError(f"hyperparameters.{method}: weak/transfer only apply to groktransfer")
        data["scratch"] = stage
    try:
        return from_dict(RunConfig, data)
    except ConfigError as err:
        raise ConfigError(f"hyperparameters.{method}: {err}") from None


# ---------------------------------------------------------------------------------------
# Running and reading runs


def run_numbers(summary: dict, run_dir: Optional[Path] = None) -> dict:
    """The per-run figures a comparison reports, GrokTransfer's weak stage included in its cost."""
    stages = summary["stages"]
    main = "target" if "target" in stages else "scratch"
    weak = stages.get("weak", {})
    if main not in stages:  # the weak stage diverged and the target was skipped, or the run's task failed
        stage = {"status": "failed" if summary.get("failed") else "skipped", "wall_clock_s": 0.0, "flops": 0.0,
                 "final_test_acc": None, "time_gap": None, "train_acc_95_step": None, "test_acc_95_step": None,
                 "test_acc_99_step": None}
    else:
        stage = stages[main]
    weak_s, weak_flops = weak.get("wall_clock_s", 0.0), weak.get("flops", 0.0)
    time_to_99 = None
    if stage["test_acc_99_step"] is not None and run_dir is not None:
        rows = read_metrics(run_dir).get(main, [])
        hit = next((r for r in rows if r["step"] == stage["test_acc_99_step"]), None)
        time_to_99 = None if hit is None else weak_s + hit["elapsed_s"]
    return {
        "status": stage["status"],
        "train_acc_95_step": stage["train_acc_95_step"],
        "test_acc_95_step": stage["test_acc_95_step"],
        "test_acc_99_step": stage["test_acc_99_step"],
        "time_gap": stage["time_gap"],
        "time_to_99_s": time_to_99,
        "wall_clock_s": weak_s + stage["wall_clock_s"],
        "flops": weak_flops + stage["flops"],
        "final_test_acc": stage["final_test_acc"],
        "best_test_acc": stage.get("best_test_acc"),
    }


AGGREGATED = (
    ("train_acc_95_step", "95% train", 0),
    ("test_acc_95_step", "95% test", 0),
    ("test_acc_99_step", "99% test", 0),
    ("time_gap", "Time Gap", 0),
    ("time_to_99_s", "time to 99% (s)", 1),
    ("wall_clock_s", "wall-clock (s)", 1),
    ("flops", "FLOPs", -1),
)


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of ascending values that may end in +inf."""
    pos = q * (len(sorted_values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    a, b = sorted_values[lo], sorted_values[hi]
    if lo == hi:
        return a
    if math.isinf(b):  # an interpolation towards a never-reached seed is itself never reached
        return math.inf
    return a + (b - a) * (pos - lo)


def censored_stats(values: list[Optional[float]]) -> dict:
    """Median and quartiles over seeds, a missing value (never reached) counting as +inf."""
    ordered = sorted(math.inf if v is None else float(v) for v in values)

    def finite(x: float) -> Optional[float]:
        return None if math.isinf(x) else x

    return {
        "median": finite(quantile(ordered, 0.5)),
        "q25": finite(quantile(ordered, 0.25)),
        "q75": finite(quantile(ordered, 0.75)),
        "n_reached": sum(v is not None for v in values),
        "n": len(values),
    }


def aggregate(per_seed: dict[int, dict]) -> dict:
    values = list(per_seed.values())
    out = {key: censored_stats([v[key] for v in values]) for key, _, _ in AGGREGATED}
    out["success_95"] = sum(v["test_acc_95_step"] is not None for v in values) / len(values)
    out["success_99"] = sum(v["test_acc_99_step"] is not None for v in values) / len(values)
    return out


def _cell(stats: dict, digits: int) -> str:
    def one(x):
        if x is None:
            return "never"
        if digits < 0:
            return f"{x:.2g}"
        return f"{x:.{digits}f}"

    return f"{one(stats['median'])} [{one(stats['q25'])}–{one(stats['q75'])}]"


def format_comparison_table(aggregates: dict[str, dict]) -> str:
    header = ["method"] + [label for _, label, _ in AGGREGATED] + ["reached 95% / 99%"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, agg in aggregates.items():
        cells = [_cell(agg[key], digits) for key, _, digits in AGGREGATED]
        n = agg["test_acc_95_step"]["n"]
        cells.append(f"{round(agg['success_95'] * n)}/{n} / {round(agg['success_99'] * n)}/{n}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


COMPARE_DIR = Path(__file__).resolve().parent / "experiments" / "compare"


def comparison_names() -> list[str]:
    return sorted(p.stem for p in COMPARE_DIR.glob("*.yaml"))


def load_comparison(name_or_path: Union[str, Path], overrides: tuple[str, ...] | list[str] = ()) -> ComparisonConfig:
    """A comparison spec: a name from experiments/compare/ or a YAML/JSON file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = COMPARE_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"--spec {str(name_or_path)!r}: unknown comparison; allowed: {', '.join(comparison_names())}")
    return from_dict(ComparisonConfig, apply_overrides(load_config_file(path), list(overrides)))


def load_tuned(path: Union[str, Path]) -> dict:
    """The ``hyperparameters`` mapping of a tuning result file (best.yaml)."""
    data = load_config_file(path)
    hyper = data.get("hyperparameters")
    if not isinstance(hyper, dict):
        raise ConfigError(f"tuned file {str(path)!r}: expected a 'hyperparameters' mapping")
    return hyper


def run_comparison(
    spec: ComparisonConfig,
    methods: list[str],
    seeds: list[int],
    out: Union[str, Path],
    *,
    tuned: Optional[dict] = None,
    parallel: Union[int, str] = "auto",
    progress: bool = False,
    log: Callable[[str], None] = lambda message: None,
    executor=None,
) -> dict:
    """Train every method on every seed (reusing finished runs) and write the comparison files.

    Files in ``out``: ``compare.json`` (everything), ``runs.csv`` (one row per run),
    ``table.md``, ``test_accuracy.png`` and ``time_to_99.png``. ``parallel`` batches runs
    (see :mod:`groktransfer.sweep`); the seeds of one method share a batch, so each
    method's wall-clock is measured under the same sharing. ``executor``: where the batch
    groups run (see :mod:`groktransfer.executors`; local by default).
    """
    from .plots import plot_comparison

    if not seeds:
        raise ConfigError("--seeds: give at least one seed")
    hyper = dict(spec.hyperparameters)
    hyper.update(tuned or {})
    configs = {m: {s: method_run_config(spec, m, s, hyper.get(m, {})) for s in seeds} for m in methods}
    for method in methods:  # what this machine cannot run is refused before anything is written
        prepare(configs[method][seeds[0]])
    out = claim_sweep_dir(out, "compare.json")  # never a folder of the user's files
    jobs = [(configs[m][s], out / "runs" / m / f"seed{s}") for m in methods for s in seeds]
    log(f"[compare] {len(methods)} methods × {len(seeds)} seeds")
    summaries = iter(run_many(jobs, parallel=parallel, progress=progress, log=log, executor=executor))
    per_run: dict[str, dict[int, dict]] = {}
    for method in methods:
        per_run[method] = {}
        for seed in seeds:
            per_run[method][seed] = run_numbers(next(summaries), out / "runs" / method / f"seed{seed}")
    aggregates = {m: aggregate(per_run[m]) for m in methods}
    table = format_comparison_table(aggregates)
    record = {
        "name": spec.name,
        "methods": methods,
        "seeds": seeds,
        "spec": spec.to_dict(),
        "hyperparameters": {m: configs[m][seeds[0]].to_dict() for m in methods},
        "environment": environment(resolve_device(spec.device)),
        "per_run": {m: {str(s): v for s, v in per_run[m].items()} for m in methods},
        "aggregate": aggregates,
        "table": table,
    }
    atomic_write_text(out / "compare.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(out / "table.md", table + "\n")
    with open(out / "runs.csv", "w", newline="", encoding="utf-8") as handle:
        fields = ["method", "seed", *per_run[methods[0]][seeds[0]].keys()]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for method in methods:
            for seed in seeds:
                writer.writerow({"method": method, "seed": seed, **per_run[method][seed]})
    plot_comparison(out, methods, seeds, aggregates, title=spec.name)
    return record
