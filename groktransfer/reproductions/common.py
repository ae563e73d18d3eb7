"""What every reproduction is made of, and the pieces several of them share."""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..config import Config, RunConfig
from ..presets import load_preset


# The CPU-sized transformer used by every quick transformer reproduction: (a∘b) mod 47 on 40%
# of the pairs, the preset's weak stage, a 1-layer transformer of width 32. Chosen so that a
# scratch transformer memorises within a few hundred steps and groks thousands later.
QUICK_TRANSFORMER = [
    "task.p=47", "task.train_fraction=0.4",
    "target.model.embed_dim=32", "target.model.transformer.n_layers=1", "target.model.transformer.d_mlp=128",
    "target.model.transformer.d_head=null",
    "scratch.model.embed_dim=32", "scratch.model.transformer.n_layers=1", "scratch.model.transformer.d_mlp=128",
    "scratch.model.transformer.d_head=null",
]


# Figs. 8(b) and 16 at the quick size: both sides at lr 0.003 (GrokTransfer also wd 1, init 1), 3000 steps.
QUICK_TIME_GAP = QUICK_TRANSFORMER + [
    "target.train.lr=0.003", "target.train.weight_decay=1.0", "target.model.init_scale=1.0",
    "scratch.train.lr=0.003", "target.train.max_steps=3000", "scratch.train.max_steps=3000",
]


# The FNN -> FNN figures at the quick size: the demo's task, models and optimiser settings
# ((a∘b) mod 47 on 40% of the pairs; the preset's weak stage; targets 64/2 × 256 at lr 0.001,
# wd 1), which show the claim on two CPU cores; only the operation comes from the figure.
QUICK_FNN = [
    "task.p=47", "task.train_fraction=0.4",
    *[f"{stage}.{key}" for stage in ("target", "scratch") for key in (
        "model.embed_dim=64", "model.width=256", "model.init_scale=1.0", "train.lr=0.001", "train.weight_decay=1.0",
        "train.max_steps=20000", "train.stop_patience=1")],
]


# The paper's ablations (Figs. 7, 12, 15) study the paper's own method: one weak model, whatever
# it became, and A, B at the target's learning rate. Their quick versions run the demo made so.
DEMO_PAPER_WEAK = ["weak.population=1", "weak.max_rounds=1", "weak.if_none_ready=transfer_best",
                   "weak.train.stop_at_test_acc=0.5", "weak.train.eval_every=10", "transfer.ab_lr_scale=1.0",
                   "transfer.ab_lr_scale_unfinished=null"]
QUICK_PAPER_WEAK = ["preset=demo", f"preset_overrides={json.dumps(DEMO_PAPER_WEAK)}"]



@dataclass
class Reproduction:
    """One of the paper's experiments: its claim, how it is judged, and how it runs.

    A reproduction with a ``preset`` runs that preset through the pipeline; one without has a
    ``run`` of its own, with ``settings``: a typed config class (:class:`groktransfer.config.Config`)
    whose fields key=value overrides change, checked like every other config. Every ``run`` has
    the signature ``run(settings, out, parallel, executor) -> summary``.
    """

    preset: Optional[str]  # a preset run through the pipeline, or None for an experiment of its own (``run``)
    claim: str  # the paper's claim, in words
    criterion: str  # how the measured figures decide it
    quick: list[str]  # overrides for the CPU-sized version
    judge: Callable[[dict], tuple[dict, bool]]  # summary -> (measured figures, holds)
    table: Callable[[dict, dict], str]  # (summary, measured) -> markdown
    # (settings, out, parallel, executor) -> summary; parallel and executor go to the sweeps it runs
    run: Optional[Callable[..., dict]] = None
    settings: Optional[type] = None  # the run's settings: a Config class; key=value overrides change its fields


@dataclass
class PresetSettings(Config):
    """A study of one preset's weak stage and target (Figs. 7, 12, 15)."""

    preset: str = "fig1b-printed"  # the preset studied (the paper's printed Fig. 1(b) settings)
    preset_overrides: Optional[list[str]] = None  # key=value overrides of the preset (--quick: the demo, made like the paper's)
    device: str = "auto"

    def preset_config(self, *more: str) -> RunConfig:
        """The preset with its overrides, then ``more``, on this device (a bad preset or override is refused here)."""
        return load_preset(self.preset, [*(self.preset_overrides or []), *more, f"device={self.device}"])


def settings_class(name: str, fn: Callable, *, skip: tuple[str, ...] = (), **extra: tuple[Any, Any]) -> type:
    """A Config class whose fields are ``fn``'s parameters (but ``skip``), with their annotations and
    defaults, and then ``extra`` (field name: (type, default)). The function stays the one place
    its defaults are written; the class types and checks them like any config."""
    hints = typing.get_type_hints(fn)
    fields = [(p.name, hints[p.name], p.default) for p in inspect.signature(fn).parameters.values()
              if p.name not in skip and p.name not in extra]
    fields += [(key, tp, default) for key, (tp, default) in extra.items()]
    return dataclasses.make_dataclass(name, [(key, tp, _default(value)) for key, tp, value in fields], bases=(Config,))


def _default(value: Any):
    """A dataclass field default (a list gets a factory: each instance its own copy)."""
    if isinstance(value, list):
        return dataclasses.field(default_factory=lambda: list(value))
    return dataclasses.field(default=value)


def gap_text(value: Optional[int]) -> str:
    return "never" if value is None else str(value)


def at_most_a_fifth(gap: Optional[int], baseline_gap: Optional[int]) -> bool:
    """The papers' criterion: a finite delay at most 1/5 of the baseline's (None = never = infinite)."""
    return gap is not None and (baseline_gap is None or gap * 5 <= baseline_gap)


def judge_time_gap(summary: dict) -> tuple[dict, bool]:
    target, baseline = summary["stages"].get("target"), summary["stages"].get("scratch")
    measured = {
        "groktransfer_time_gap": None if target is None else target["time_gap"],
        "baseline_time_gap": baseline["time_gap"],
        "baseline": "scratch" + (f" + {baseline['methods']}" if baseline.get("methods") else ""),
        "groktransfer_test_acc_99_step": None if target is None else target["test_acc_99_step"],
        "baseline_test_acc_99_step": baseline["test_acc_99_step"],
    }
    gt_gap, base_gap = measured["groktransfer_time_gap"], measured["baseline_time_gap"]
    holds = at_most_a_fifth(gt_gap, base_gap)
    return measured, holds


def time_gap_table(summary: dict, measured: dict, paper: Optional[tuple[int, int]] = None) -> str:
    lines = ["| | GrokTransfer | " + measured["baseline"] + " |", "|---|---|---|",
             f"| Time Gap (steps), measured | {gap_text(measured['groktransfer_time_gap'])} | {gap_text(measured['baseline_time_gap'])} |",
             f"| steps to 99% test, measured | {gap_text(measured['groktransfer_test_acc_99_step'])} | "
             f"{gap_text(measured['baseline_test_acc_99_step'])} |"]
    if paper is not None:
        lines.append(f"| Time Gap (epochs), paper | {paper[0]} | {paper[1]} |")
    return "\n".join(lines)

