"""``groktransfer reproduce NAME [--quick]``: re-run one of the paper's experiments and test its claim.

Usage::

    record = reproduce("fig8b", out="runs/fig8b", quick=True)
    record["holds"], record["measured"]

Each reproduction runs a preset (the paper's printed settings) through the pipeline and
writes, in ``out``:

- ``run/``: the run directory (config, metrics, summary, accuracy.png, loss.png);
- ``table.md``: the numbers the claim is judged on, beside the paper's where it prints them;
- ``claim.json``: the paper's claim in words, the criterion used to test it, the measured
  figures, ``holds: true/false``, the size (full or quick, and what --quick changed), the
  device and the command.

``--quick`` is a CPU-sized version that keeps the claim visible: a smaller modulus and
transformer (the overrides are listed in ``QUICK`` and recorded in claim.json). Its
numbers are not the paper's; only whether the claim holds is comparable.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union


from .config import ConfigError
from .pipeline import build_model, format_table, run_experiment
from .presets import load_preset, preset_description
from .records import atomic_write_text, check_new_run_dir, environment
from .training import resolve_device

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
                   "weak.train.stop_at_test_acc=0.5", "weak.train.eval_every=10", "transfer.ab_lr_scale=1.0"]
QUICK_PAPER_WEAK = ["preset=demo", f"preset_overrides={DEMO_PAPER_WEAK!r}"]


@dataclass
class Reproduction:
    preset: Optional[str]  # a preset run through the pipeline, or None for an experiment of its own (``run``)
    claim: str  # the paper's claim, in words
    criterion: str  # how the measured figures decide it
    quick: list[str]  # overrides for the CPU-sized version
    judge: Callable[[dict], tuple[dict, bool]]  # summary -> (measured figures, holds)
    table: Callable[[dict, dict], str]  # (summary, measured) -> markdown
    run: Optional[Callable[..., dict]] = None  # experiments of their own: (settings, out) -> summary
    defaults: Optional[dict] = None  # their settings, which key=value overrides change


# Fig. 2: the paper's best (init scale, lr, weight decay) for each fixed encoding.
FIG2_SETTINGS = {"one_hot": (0.2, 0.01, 5.0), "binary": (0.3, 0.01, 1.0), "fourier": (0.5, 0.1, 0.1),
                 "text": (1.3, 0.01, 1.0)}


def _check_encodings(encodings) -> None:
    unknown = [e for e in encodings if e not in FIG2_SETTINGS] if isinstance(encodings, list) else encodings
    if unknown or not encodings:
        raise ConfigError(f"encodings: got {encodings!r}; a non-empty list from {', '.join(FIG2_SETTINGS)}")
    if "text" in encodings:
        from .encodings import require_text_model

        require_text_model()


def _run_fig2(settings: dict, out: Path, parallel: Union[int, str] = "auto") -> dict:
    """Scratch FNNs on each fixed encoding, for addition and multiplication (run through run_many)."""
    from .config import run_config_from_dict
    from .sweep import run_many

    _check_encodings(settings["encodings"])
    jobs = []
    for op in ("add", "mul"):
        for encoding in settings["encodings"]:
            init, lr, wd = FIG2_SETTINGS[encoding]
            data = {
                "name": f"fig2-{op}-{encoding}", "seed": settings["seed"], "device": settings["device"],
                "task": {"op": op, "p": settings["p"], "train_fraction": settings["train_fraction"]},
                "scratch": {
                    "model": {"encoding": encoding, "width": settings["width"], "depth": 2, "init_scale": init},
                    "train": {"lr": lr, "weight_decay": wd, "max_steps": settings["max_steps"],
                              "stop_at_test_acc": 0.99},
                },
            }
            jobs.append((run_config_from_dict(data), out / "runs" / f"{op}-{encoding}"))
    summaries = run_many(jobs, parallel=parallel, plots=True)
    return {"settings": settings,
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
        lines.append(f"| {op} | {encoding} | {_gap(row['train_acc_95_step'])} | {_gap(row['test_acc_95_step'])} | "
                     f"{_gap(row['time_gap'])} | {row['final_test_acc']:.3f} |")
    return "\n".join(lines)


def _run_fig3(settings: dict, out: Path, parallel: Union[int, str] = "auto") -> dict:
    """Fig. 2's scratch FNNs on addition, with the eNTK diagnostic on a fixed probe set."""
    import csv

    from .config import run_config_from_dict
    from .records import read_metrics
    from .sweep import run_many

    jobs = []
    _check_encodings(settings["encodings"])
    for encoding in settings["encodings"]:
        init, lr, wd = FIG2_SETTINGS[encoding]
        data = {
            "name": f"fig3-{encoding}", "seed": settings["seed"], "device": settings["device"],
            "task": {"op": "add", "p": settings["p"], "train_fraction": settings["train_fraction"]},
            "scratch": {
                "model": {"encoding": encoding, "width": settings["width"], "depth": 2, "init_scale": init},
                "train": {"lr": lr, "weight_decay": wd, "max_steps": settings["max_steps"], "stop_at_test_acc": 0.99,
                          "eval_every": settings["eval_every"], "entk_probe": settings["probe"]},
            },
        }
        jobs.append((run_config_from_dict(data), out / "runs" / encoding))
    summaries = run_many(jobs, parallel=parallel, plots=True)
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
    return {"settings": settings, "runs": runs, "plots": ["fig3.png"]}


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
    from .plots import plt

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
        lines.append(f"| {encoding} | {_gap(row['train_acc_95_step'])} | {_gap(row['test_acc_95_step'])} | "
                     f"{_gap(row['time_gap'])} | {row['final_test_acc']:.3f} | "
                     f"{row['kernel_movement_in_delay']:.1%} |")
    return "\n".join(lines)


def _run_fig7(settings: dict, out: Path, parallel: Union[int, str] = "auto") -> dict:
    """Train the weak model once, keep its embedding at each checkpoint step, and start one
    GrokTransfer target from each (all targets alike but for A)."""
    from .config import run_config_from_dict
    from .sweep import run_many
    from .tasks import build_task
    from .training import train
    from .transfer import save_weak_embedding

    preset = load_preset(settings["preset"], settings["preset_overrides"])
    device = resolve_device(settings["device"])
    task = build_task(preset.task, device=device)
    weak = build_model(preset.weak, task, preset.seed)
    checkpoints = sorted(settings["checkpoints"])
    weak_train = dataclasses.replace(preset.weak.train, max_steps=checkpoints[-1], stop_at_test_acc=None,
                                     eval_dense_until=0, eval_schedule="linear", eval_every=math.gcd(*checkpoints))
    kept: dict[int, float] = {}
    (out / "weak").mkdir(parents=True, exist_ok=True)

    def keep(row: dict) -> None:
        if row["step"] in checkpoints:
            path = out / "weak" / f"step{row['step']:06d}.safetensors"
            save_weak_embedding(weak, path, metadata={"step": row["step"], "test_acc": row["test_acc"]})
            kept[row["step"]] = row["test_acc"]

    train(weak, task, weak_train, stage="weak", seed=preset.seed, on_eval=keep)
    jobs = []
    for step in checkpoints:
        data = preset.to_dict()
        data.update(name=f"fig7-weak-step{step}", weak=None, scratch=None, device=settings["device"])
        data["transfer"] = dict(data["transfer"], weak_embedding_file=str(out / "weak" / f"step{step:06d}.safetensors"))
        jobs.append((run_config_from_dict(data), out / "runs" / f"weak-step{step:06d}"))
    summaries = run_many(jobs, parallel=parallel, plots=True)
    runs = []
    for step, summary in zip(checkpoints, summaries):
        target = summary["stages"]["target"]
        runs.append({"weak_step": step, "weak_test_acc": kept[step], "target_time_gap": target["time_gap"],
                     "target_inverse_time_gap": target["inverse_time_gap"],
                     "target_test_acc_99_step": target["test_acc_99_step"], "target_final_test_acc": target["final_test_acc"]})
    plot = _plot_fig7(runs, out / "fig7.png")
    return {"settings": settings, "runs": runs, "plots": [plot.name]}


def _plot_fig7(runs: list[dict], path: Path) -> Path:
    from .plots import plt

    weak_acc = [r["weak_test_acc"] for r in runs]
    fig, left = plt.subplots(figsize=(6, 4))
    left.plot(weak_acc, [r["target_final_test_acc"] for r in runs], "o-", color="tab:blue", label="target final test accuracy")
    left.set_xlabel("weak model test accuracy at transfer")
    left.set_ylabel("target final test accuracy")
    right = left.twinx()
    right.plot(weak_acc, [r["target_inverse_time_gap"] for r in runs], "s--", color="tab:red", label="target 1 / Time Gap")
    right.set_ylabel("target 1 / Time Gap")
    for r in runs:
        left.annotate(str(r["weak_step"]), (r["weak_test_acc"], r["target_final_test_acc"]), fontsize=7)
    fig.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    def ranks(values):
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    norm = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return cov / norm if norm > 0 else 0.0


def _judge_fig7(summary: dict) -> tuple[dict, bool]:
    runs = summary["runs"]
    rho = _spearman([r["weak_test_acc"] for r in runs], [r["target_inverse_time_gap"] for r in runs])
    measured = {"spearman_weak_acc_vs_inverse_time_gap": rho, "runs": runs}
    return measured, rho >= 0.5


def _fig7_table(summary: dict, measured: dict) -> str:
    lines = ["| weak step | weak test accuracy | target Time Gap | target 1/Time Gap | target steps to 99% | target final test |",
             "|---|---|---|---|---|---|"]
    for r in measured["runs"]:
        lines.append(f"| {r['weak_step']} | {r['weak_test_acc']:.3f} | {_gap(r['target_time_gap'])} | "
                     f"{r['target_inverse_time_gap']:.4f} | {_gap(r['target_test_acc_99_step'])} | {r['target_final_test_acc']:.3f} |")
    lines += ["", f"Spearman rank correlation of weak test accuracy with the target's 1/Time Gap: "
                  f"{measured['spearman_weak_acc_vs_inverse_time_gap']:.2f}."]
    return "\n".join(lines)


FIG15_VARIANTS = {
    # name: overrides of the base preset (the first variant also trains the scratch baseline)
    "groktransfer": [],
    "random A·B": ["transfer.a_init=random", "scratch=null"],
    "A·B merged at step 100": ["transfer.merge_at_step=100", "scratch=null"],
    "d_W = d_T": ["scratch=null"],  # plus weak.model.embed_dim = the target's, set below
}


def _run_fig15(settings: dict, out: Path, parallel: Union[int, str] = "auto") -> dict:
    """GrokTransfer and its three controls on one preset, through run_many."""
    from .sweep import run_many

    jobs = []
    for name, overrides in FIG15_VARIANTS.items():
        base = load_preset(settings["preset"], settings["preset_overrides"] + [f"device={settings['device']}"])
        extra = [f"weak.model.embed_dim={base.target.model.embed_dim}"] if name == "d_W = d_T" else []
        config = load_preset(settings["preset"], settings["preset_overrides"] + overrides + extra
                             + [f"device={settings['device']}", f"name=fig15-{name}"])
        jobs.append((config, out / "runs" / name.replace(" ", "_").replace("·", "").replace("=", "eq")))
    summaries = run_many(jobs, parallel=parallel, plots=True)
    runs = {}
    for (name, _), summary in zip(FIG15_VARIANTS.items(), summaries):
        target = summary["stages"].get("target", {})
        runs[name] = {k: target.get(k) for k in ("train_acc_95_step", "test_acc_95_step", "time_gap", "final_test_acc")}
    scratch = summaries[0]["stages"].get("scratch")
    if scratch is not None:
        runs["from scratch"] = {k: scratch[k] for k in ("train_acc_95_step", "test_acc_95_step", "time_gap", "final_test_acc")}
    return {"settings": settings, "runs": runs, "plots": [str(p.relative_to(out) / "accuracy.png") for _, p in jobs]}


def _judge_fig15(summary: dict) -> tuple[dict, bool]:
    runs = summary["runs"]

    def gap(name: str) -> float:
        value = runs[name]["time_gap"]
        return math.inf if value is None else value

    holds = (gap("random A·B") >= 5 * gap("groktransfer")
             and gap("A·B merged at step 100") * 5 <= gap("random A·B") and gap("d_W = d_T") * 5 <= gap("random A·B"))
    return {"runs": runs}, holds


def _fig15_table(summary: dict, measured: dict) -> str:
    lines = ["| variant | 95% train | 95% test | Time Gap | final test |", "|---|---|---|---|---|"]
    for name, row in measured["runs"].items():
        final = "—" if row["final_test_acc"] is None else f"{row['final_test_acc']:.3f}"
        lines.append(f"| {name} | {_gap(row['train_acc_95_step'])} | {_gap(row['test_acc_95_step'])} | "
                     f"{_gap(row['time_gap'])} | {final} |")
    return "\n".join(lines)


def _run_fig4a(settings: dict, out: Path) -> dict:
    from .plots import plt
    from .xor import normal_training

    history = normal_training(**settings)
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [max(r["step"], 1) for r in history]  # step 0 cannot sit on a log axis
    ax.plot(steps, [r["train_acc"] for r in history], "--", label="train")
    ax.plot(steps, [r["test_acc"] for r in history], label="test")
    ax.set_xscale("log")
    ax.set_xlabel("gradient-descent step (full batch: epoch)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"XOR cluster data, width {settings['width']}: normal training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "fig4a.png", dpi=120)
    plt.close(fig)
    return {"settings": settings, "history": history, "plots": ["fig4a.png"]}


def _judge_fig4a(summary: dict) -> tuple[dict, bool]:
    history = summary["history"]
    fit = next((r["step"] for r in history if r["train_acc"] == 1.0), None)
    generalised = next((r["step"] for r in history if r["test_acc"] >= 0.95), None)
    measured = {"train_acc_100_step": fit, "test_acc_95_step": generalised,
                "final_train_acc": history[-1]["train_acc"], "final_test_acc": history[-1]["test_acc"]}
    holds = fit is not None and generalised is not None and generalised >= 5 * max(fit, 1)
    return measured, holds


def _fig4a_table(summary: dict, measured: dict) -> str:
    lines = ["| step | train accuracy | test accuracy |", "|---|---|---|"]
    history = summary["history"]
    shown = {history[0]["step"], history[-1]["step"], measured["train_acc_100_step"], measured["test_acc_95_step"]}
    shown |= {history[i]["step"] for i in range(0, len(history), max(1, len(history) // 8))}
    for row in history:
        if row["step"] in shown:
            lines.append(f"| {row['step']} | {row['train_acc']:.3f} | {row['test_acc']:.3f} |")
    lines += ["", f"100% train accuracy at step {_gap(measured['train_acc_100_step'])}; "
                  f"95% test accuracy at step {_gap(measured['test_acc_95_step'])}."]
    return "\n".join(lines)


def _normal_training_defaults() -> dict:
    import inspect

    from .xor import normal_training

    return {name: param.default for name, param in inspect.signature(normal_training).parameters.items()}


def _run_fig5(settings: dict, out: Path) -> dict:
    from .xor import weak_norm_ratio

    rows = [{"n": n, "eps": eps, "r_W": weak_norm_ratio(settings["p"], n, eps, steps=settings["steps"],
                                                        seed=settings["seed"], device=settings["device"])}
            for n in settings["ns"] for eps in settings["epsilons"]]
    summary = {"settings": settings, "rows": rows}
    measured, _ = _judge_fig5(summary)
    from .plots import plt

    xs = [r["eps"] / math.sqrt(r["n"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for eps in settings["epsilons"]:
        ax.plot([x for x, r in zip(xs, rows) if r["eps"] == eps], [r["r_W"] for r in rows if r["eps"] == eps], "o",
                label=f"ε = {eps}")
    line = [min(xs), max(xs)]
    ax.plot(line, [math.exp(measured["intercept"]) * x ** measured["slope"] for x in line], "k--",
            label=f"fit: slope {measured['slope']:.2f}, R² {measured['r2']:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ε / √n")
    ax.set_ylabel("r_W (noise part of the weak first layer)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig5.png", dpi=120)
    plt.close(fig)
    summary["plots"] = ["fig5.png"]
    return summary


def _judge_fig5(summary: dict) -> tuple[dict, bool]:
    """Least squares of log r_W on log(ε/√n): the claim is a slope near 1 with a good fit."""
    xs = [math.log(r["eps"] / math.sqrt(r["n"])) for r in summary["rows"]]
    ys = [math.log(r["r_W"]) for r in summary["rows"]]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    residual = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys))
    r2 = 1 - residual / max(sum((y - my) ** 2 for y in ys), 1e-300)
    measured = {"slope": slope, "intercept": my - slope * mx, "r2": r2, "rows": summary["rows"]}
    return measured, 0.7 <= slope <= 1.3 and r2 >= 0.9


def _fig5_table(summary: dict, measured: dict) -> str:
    lines = ["| n | ε | ε/√n | r_W |", "|---|---|---|---|"]
    for r in measured["rows"]:
        lines.append(f"| {r['n']} | {r['eps']} | {r['eps'] / math.sqrt(r['n']):.5f} | {r['r_W']:.5f} |")
    lines += ["", f"log r_W against log(ε/√n): slope {measured['slope']:.2f}, R² {measured['r2']:.3f} "
                  "(the claim: proportional, slope 1)."]
    return "\n".join(lines)


def best_fourier_frequency(points) -> tuple[int, float]:
    """The frequency k (1 … p/2) whose [cos, sin](2πka/p) plus a constant best fits the rows of
    ``points`` (p × m, row a for residue a) by least squares, and that fit's R²."""
    import torch

    p = points.shape[0]
    residues = torch.arange(p, dtype=torch.float64)
    total = (points - points.mean(dim=0)).pow(2).sum()
    best_k, best_r2 = 0, -math.inf
    for k in range(1, p // 2 + 1):
        angle = 2 * math.pi * k * residues / p
        F = torch.stack([angle.cos(), angle.sin(), torch.ones(p, dtype=torch.float64)], dim=1)
        fit = F @ torch.linalg.lstsq(F, points).solution
        r2 = float(1 - (points - fit).pow(2).sum() / total)
        if r2 > best_r2:
            best_k, best_r2 = k, r2
    return best_k, best_r2


def _run_fig12(settings: dict, out: Path) -> dict:
    """Train the preset's weak model, project its embedding on its top two principal components,
    and find the single Fourier frequency k whose (cos, sin)(2πka/p) best explains them."""
    import torch

    from .plots import plt
    from .tasks import build_task
    from .training import train

    preset = load_preset(settings["preset"], settings["preset_overrides"] + [f"device={settings['device']}"])
    task = build_task(preset.task, device=resolve_device(settings["device"]))
    weak = build_model(preset.weak, task, preset.seed)
    result = train(weak, task, preset.weak.train, stage="weak", seed=preset.seed)
    E = weak.get_input_embeddings().weight.detach().double().cpu()
    centred = E - E.mean(dim=0)
    _, S, Vh = torch.linalg.svd(centred, full_matrices=False)
    pcs = centred @ Vh[:2].T
    p = E.shape[0]
    residues = torch.arange(p, dtype=torch.float64)
    best_k, best_r2 = best_fourier_frequency(pcs)
    fig, ax = plt.subplots(figsize=(5, 5))
    points = ax.scatter(pcs[:, 0], pcs[:, 1], c=residues, cmap="hsv", s=18)
    for a in range(p):
        ax.annotate(str(a), (float(pcs[a, 0]), float(pcs[a, 1])), fontsize=5)
    fig.colorbar(points, label="residue")
    ax.set_title(f"weak embedding, PCA (frequency {best_k} explains R² {best_r2:.2f})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "fig12.png", dpi=120)
    plt.close(fig)
    return {"settings": settings, "weak_steps": result.steps, "weak_test_acc": result.history[-1]["test_acc"],
            "explained_variance_top2": float(S[:2].pow(2).sum() / S.pow(2).sum()), "best_frequency": best_k,
            "fourier_r2": best_r2, "plots": ["fig12.png"]}


def _judge_fig12(summary: dict) -> tuple[dict, bool]:
    measured = {k: summary[k] for k in ("weak_steps", "weak_test_acc", "explained_variance_top2", "best_frequency",
                                         "fourier_r2")}
    return measured, summary["fourier_r2"] >= 0.8


def _fig12_table(summary: dict, measured: dict) -> str:
    return "\n".join([
        "| weak steps | weak test accuracy | variance in the top 2 PCs | best frequency k | R² of (cos, sin)(2πka/p) |",
        "|---|---|---|---|---|",
        f"| {measured['weak_steps']} | {measured['weak_test_acc']:.3f} | {measured['explained_variance_top2']:.3f} | "
        f"{measured['best_frequency']} | {measured['fourier_r2']:.3f} |",
    ])


def _judge_fig10(summary: dict) -> tuple[dict, bool]:
    measured, _ = _judge_xor(summary)
    holds = all(r["target_test_acc_after_one_step"] < 0.9 for r in measured["per_seed"])
    return measured, holds


def _xor_defaults() -> dict:
    """xor_theory's own defaults (the paper's settings), which key=value overrides may change."""
    import inspect

    from .xor import xor_theory

    return {name: param.default for name, param in inspect.signature(xor_theory).parameters.items()
            if name not in ("seed", "device")}


def _run_xor(settings: dict, out: Path) -> dict:
    from .xor import xor_theory

    settings = dict(settings)
    seeds = settings.pop("seeds")
    runs = [xor_theory(**settings, seed=s) for s in seeds]
    _plot_xor(runs, out / "xor.png")
    return {"settings": dict(settings, seeds=seeds), "runs": runs, "plots": ["xor.png"]}


def _plot_xor(runs: list[dict], path: Path) -> None:
    """Per seed: the weak model's test accuracy and the target's fresh accuracy per cluster after one step."""
    from .plots import plt

    clusters = list(runs[0]["target_after_one_step"]["test_acc_per_cluster"])
    fig, ax = plt.subplots(figsize=(7, 4.6))
    width = 0.8 / (len(clusters) + 1)
    for i, run in enumerate(runs):
        ax.bar(i, run["weak"]["test_acc"], width, color="tab:gray", label="weak model, test" if i == 0 else None)
        for j, cluster in enumerate(clusters):
            ax.bar(i + (j + 1) * width, run["target_after_one_step"]["test_acc_per_cluster"][cluster], width,
                   color=f"C{j}", label=f"target after one step, cluster {cluster}" if i == 0 else None)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(runs))], [f"seed {run['seed']}" for run in runs])
    ax.set_ylabel("fresh test accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"XOR cluster data: {runs[0]['weak']['neurons']}-neuron weak model, target width "
                 f"{runs[0]['target_width']}")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)  # below: never over a bar
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _judge_xor(summary: dict) -> tuple[dict, bool]:
    per_seed = []
    for run in summary["runs"]:
        after, weak = run["target_after_one_step"], run["weak"]
        per_seed.append({
            "seed": run["seed"], "weak_test_acc": weak["test_acc"], "weak_norm_ratio": weak["norm_ratio"],
            "weak_aligned_directions": sorted({tuple(a["direction"]) for a in weak["alignment"] if a["cosine"] > 0.9}),
            "lemma_3_1_best_accuracy": run["lemma_3_1_best_accuracy"],
            "target_train_acc_after_one_step": after["train_acc"], "target_test_acc_after_one_step": after["test_acc"],
            "target_test_acc_per_cluster": after["test_acc_per_cluster"],
        })
    first = summary["runs"][0]
    measured = {"target_width": first["target_width"], "theorem_width_bound": first["theorem_width_bound"],
                "per_seed": per_seed}
    holds = all(r["target_train_acc_after_one_step"] == 1.0 and r["target_test_acc_after_one_step"] >= 0.99
                for r in per_seed)
    return measured, holds


def _xor_table(summary: dict, measured: dict, paper: bool = True) -> str:
    """Per seed; ``paper`` adds the paper's values for the 3-neuron weak model to the header."""
    if paper:
        header = ("| seed | weak test acc (paper ≈ 0.75) | weak neurons along [±1, ±1] (paper: 3) | best 3-neuron acc, "
                  "Lemma 3.1 (≤ 0.75) | target after ONE step: train / fresh test (paper: 1 / ≈ 1) | ")
    else:
        header = ("| seed | weak test acc | weak neurons along [±1, ±1] | best weak-width acc on the centres | "
                  "target after ONE step: train / fresh test | ")
    lines = [header + "fresh test per cluster [+1,+1] [+1,−1] [−1,+1] [−1,−1] | r_W |", "|---|---|---|---|---|---|---|"]
    for r in measured["per_seed"]:
        clusters = " ".join(f"{v:.3f}" for v in r["target_test_acc_per_cluster"].values())
        lines.append(f"| {r['seed']} | {r['weak_test_acc']:.3f} | {len(r['weak_aligned_directions'])} | "
                     f"{r['lemma_3_1_best_accuracy']:.2f} | {r['target_train_acc_after_one_step']:.3f} / "
                     f"{r['target_test_acc_after_one_step']:.3f} | {clusters} | {r['weak_norm_ratio']:.4f} |")
    lines.append("")
    lines.append(f"Target width m = {measured['target_width']} (the theorem needs m ≥ 2·log³ n = "
                 f"{measured['theorem_width_bound']:.0f}).")
    return "\n".join(lines)


def _gap(value: Optional[int]) -> str:
    return "never" if value is None else str(value)


def _judge_time_gap(summary: dict) -> tuple[dict, bool]:
    target, baseline = summary["stages"].get("target"), summary["stages"].get("scratch")
    measured = {
        "groktransfer_time_gap": None if target is None else target["time_gap"],
        "baseline_time_gap": baseline["time_gap"],
        "baseline": "scratch" + (f" + {baseline['methods']}" if baseline.get("methods") else ""),
        "groktransfer_test_acc_99_step": None if target is None else target["test_acc_99_step"],
        "baseline_test_acc_99_step": baseline["test_acc_99_step"],
    }
    gt_gap, base_gap = measured["groktransfer_time_gap"], measured["baseline_time_gap"]
    holds = gt_gap is not None and (base_gap is None or gt_gap * 5 <= base_gap)
    return measured, holds


def _time_gap_table(summary: dict, measured: dict, paper: Optional[tuple[int, int]] = None) -> str:
    lines = ["| | GrokTransfer | " + measured["baseline"] + " |", "|---|---|---|",
             f"| Time Gap (steps), measured | {_gap(measured['groktransfer_time_gap'])} | {_gap(measured['baseline_time_gap'])} |",
             f"| steps to 99% test, measured | {_gap(measured['groktransfer_test_acc_99_step'])} | "
             f"{_gap(measured['baseline_test_acc_99_step'])} |"]
    if paper is not None:
        lines.append(f"| Time Gap (epochs), paper | {paper[0]} | {paper[1]} |")
    return "\n".join(lines)


def _judge_fig14(summary: dict) -> tuple[dict, bool]:
    """The delay measured at the runs' own stopping accuracy (85% test on the 8×8 digits, whose
    test accuracy tops out near 90%): steps from 95% train to reaching it."""
    def delay(stage: Optional[dict]) -> tuple[Optional[int], Optional[int]]:
        if stage is None or stage["status"] != "target_reached":
            return None, None
        fit = stage["train_acc_95_step"]
        return stage["steps"], None if fit is None else stage["steps"] - fit

    stages = summary["stages"]
    gt_steps, gt_gap = delay(stages.get("target"))
    base_steps, base_gap = delay(stages.get("scratch"))
    measured = {
        "weak_steps": stages["weak"]["steps"], "weak_test_acc": stages["weak"]["final_test_acc"],
        "groktransfer_steps_to_threshold": gt_steps, "groktransfer_delay": gt_gap,
        "scratch_steps_to_threshold": base_steps, "scratch_delay": base_gap,
    }
    holds = gt_gap is not None and (base_gap is None or gt_gap * 5 <= base_gap)
    return measured, holds


def _fig14_table(summary: dict, measured: dict) -> str:
    return "\n".join([
        "| | GrokTransfer | scratch |", "|---|---|---|",
        f"| steps to stop accuracy | {_gap(measured['groktransfer_steps_to_threshold'])} | "
        f"{_gap(measured['scratch_steps_to_threshold'])} |",
        f"| delay: steps from 95% train to stop accuracy | {_gap(measured['groktransfer_delay'])} | "
        f"{_gap(measured['scratch_delay'])} |",
        f"| weak stage | {measured['weak_steps']} steps, test {measured['weak_test_acc']:.3f} | |",
        "", "Stop accuracy: the test accuracy at which both runs stop (train.stop_at_test_acc, 85% in the preset).",
    ])


def _judge_fig13(summary: dict) -> tuple[dict, bool]:
    run = summary["stages"]["scratch"]
    measured = {k: run[k] for k in ("train_acc_95_step", "test_acc_95_step", "time_gap", "final_test_acc",
                                    "final_train_acc")}
    fit, gap = run["train_acc_95_step"], run["time_gap"]
    holds = fit is not None and gap is not None and gap <= max(fit, 1)
    return measured, holds


def _fig13_table(summary: dict, measured: dict) -> str:
    return "\n".join([
        "| 95% train | 95% test | Time Gap | final train | final test |", "|---|---|---|---|---|",
        f"| {_gap(measured['train_acc_95_step'])} | {_gap(measured['test_acc_95_step'])} | "
        f"{_gap(measured['time_gap'])} | {measured['final_train_acc']:.3f} | {measured['final_test_acc']:.3f} |",
    ])


def _judge_table1(summary: dict) -> tuple[dict, bool]:
    stages = summary["stages"]
    weak, target, scratch = stages.get("weak"), stages.get("target"), stages.get("scratch")
    measured = {
        "weak_ms": 1000 * weak["wall_clock_s"],
        "target_ms": None if target is None else 1000 * target["wall_clock_s"],
        "scratch_ms": 1000 * scratch["wall_clock_s"],
        "weak_steps": weak["steps"],
        "target_steps": None if target is None else target["steps"],
        "scratch_steps": scratch["steps"],
        "weak_flops": weak["flops"], "target_flops": None if target is None else target["flops"],
        "scratch_flops": scratch["flops"],
        "target_reached": target is not None and target["status"] == "target_reached",
        "scratch_reached": scratch["status"] == "target_reached",
        "device": summary.get("device_name") or summary.get("device"),
    }
    holds = False
    if measured["target_reached"]:
        total = measured["weak_ms"] + measured["target_ms"]
        measured["speedup"] = measured["scratch_ms"] / total
        # Scratch not reaching the threshold in its budget makes its time a lower bound: still slower.
        holds = measured["speedup"] >= 2.0
    return measured, holds


def _table1_table(summary: dict, measured: dict) -> str:
    def ms(value):
        return "—" if value is None else f"{value:.0f}"

    scratch_note = "" if measured["scratch_reached"] else " (threshold not reached: a lower bound)"
    target_note = "" if measured["target_reached"] else " (threshold not reached)"
    speedup = measured.get("speedup")
    return "\n".join([
        "| | weak model | target, GrokTransfer | target, from scratch | scratch ÷ (weak + GrokTransfer) |",
        "|---|---|---|---|---|",
        f"| wall-clock ms, measured ({measured['device']}) | {ms(measured['weak_ms'])} | {ms(measured['target_ms'])}{target_note} | "
        f"{ms(measured['scratch_ms'])}{scratch_note} | {'—' if speedup is None else f'{speedup:.1f}×'} |",
        f"| steps, measured | {measured['weak_steps']} | {_gap(measured['target_steps'])} | {measured['scratch_steps']} | |",
        f"| FLOPs, measured | {measured['weak_flops']:.2e} | "
        f"{'—' if measured['target_flops'] is None else format(measured['target_flops'], '.2e')} | "
        f"{measured['scratch_flops']:.2e} | |",
        "| wall-clock ms, paper (A100, 8-layer transformer, p = 113) | 2828 | 71079 | 392667 | 5.3× |",
    ])


def _fnn_figure(preset: str, claim: str) -> Reproduction:
    return Reproduction(
        preset=preset, claim=claim,
        criterion="holds when GrokTransfer reaches 95% test accuracy and its Time Gap is at most 1/5 of the "
                  "scratch baseline's (never = infinite)",
        quick=QUICK_FNN, judge=_judge_time_gap, table=lambda summary, measured: _time_gap_table(summary, measured),
    )


def _small_weak_xor(neurons: int, claim: str, criterion: str, judge) -> Reproduction:
    """The XOR construction with a weak model of fewer than 3 neurons (Figs. 10 and 11)."""
    return Reproduction(
        preset=None, claim=claim, criterion=criterion,
        quick=["p=20000", "eps=0.1", "n_test=4000", "lemma_trials=10", "seeds=3", f"weak_neurons={neurons}"],
        judge=judge,
        table=lambda summary, measured: _xor_table(summary, measured, paper=False),
        run=_run_xor,
        defaults=dict(_xor_defaults(), weak_neurons=neurons, seeds=[0, 1, 2, 3, 4]),
    )


REPRODUCTIONS: dict[str, Reproduction] = {
    "fig1b": _fnn_figure("fig1b", "On (a+b) mod 113, GrokTransfer's target generalises almost as soon as it fits "
                                  "the training data, while the same FNN trained from scratch groks much later."),
    "fig6a": _fnn_figure("fig6a", "Fig. 6(a): on modular addition GrokTransfer removes the delay that a tuned "
                                  "from-scratch FNN shows."),
    "fig6b": _fnn_figure("fig6b", "Fig. 6(b): the same on modular multiplication."),
    "fig6c": Reproduction(
        preset="fig6c",
        claim="Fig. 6(c): on (40, 3) sparse parity (1000 training strings), a vector-input target whose first "
              "layer starts from a weak FNN's (stopped at 70% test accuracy) generalises without the delay that "
              "the same FNN trained from scratch shows.",
        criterion="holds when GrokTransfer reaches 95% test accuracy and its Time Gap is at most 1/5 of the "
                  "scratch baseline's (never = infinite)",
        quick=["target.train.max_steps=2000", "scratch.train.max_steps=2000"],
        judge=_judge_time_gap, table=lambda summary, measured: _time_gap_table(summary, measured),
    ),
    "fig13": Reproduction(
        preset="fig13",
        claim="Fig. 13: transformers on (40, 3) sparse parity show no delayed generalisation: test accuracy "
              "rises together with training accuracy.",
        criterion="holds when the transformer reaches 95% test accuracy and its Time Gap is no longer than the "
                  "steps it took to reach 95% training accuracy",
        quick=["scratch.model.embed_dim=32", "scratch.model.transformer.n_layers=1",
               "scratch.model.transformer.d_mlp=128", "scratch.model.transformer.d_head=null",
               "scratch.train.max_steps=6000", "scratch.train.lr=0.003"],
        judge=_judge_fig13, table=_fig13_table,
    ),
    "fig14": Reproduction(
        preset="fig14",
        claim="Fig. 14: on MNIST (200 training / 400 test images) a 4-layer MLP whose first layer starts from a "
              "2-layer weak MLP's (stopped at 40% test accuracy) generalises without the delay of the same MLP "
              "trained from scratch.",
        criterion="holds when GrokTransfer reaches the test threshold (85%, where the runs stop) and its delay from "
                  "95% training accuracy to it is at most 1/5 of scratch's (never = infinite)",
        quick=[],  # the full size already runs in seconds on the CPU
        judge=_judge_fig14, table=_fig14_table,
    ),
    "fig8b": Reproduction(
        preset="fig8b",
        claim="An FNN's embedding removes the grokking delay of a 2-layer transformer on modular addition: Time "
              "Gap 46 epochs with GrokTransfer against 1119 with GrokFast. (The paper takes the embedding at 30% "
              "test accuracy; the preset's weak stage takes the first ready one, fig8b-printed the paper's.)",
        criterion="holds when GrokTransfer reaches 95% test accuracy and its Time Gap is at most 1/5 of "
                  "GrokFast's (a GrokFast run that never reaches 95% test counts as an infinite gap)",
        quick=QUICK_TIME_GAP,
        judge=_judge_time_gap,
        table=lambda summary, measured: _time_gap_table(summary, measured, (46, 1119)),
    ),
    "fig16": Reproduction(
        preset="fig16",
        claim="The same as Fig. 8(b) for modular multiplication: GrokTransfer removes the transformer's "
              "grokking delay where GrokFast does not.",
        criterion="holds when GrokTransfer reaches 95% test accuracy and its Time Gap is at most 1/5 of GrokFast's",
        quick=QUICK_TIME_GAP,
        judge=_judge_time_gap,
        table=lambda summary, measured: _time_gap_table(summary, measured),
    ),
    "xor": Reproduction(
        preset=None,
        claim="On XOR cluster data (p = 80000, n = 400, ε = 0.05) a 3-neuron weak model reaches about 75% and its "
              "neurons align with three of the four directions [±1, ±1] (no 3-neuron net exceeds 75%, Lemma 3.1); "
              "a wide target built on its first layer is, after ONE gradient step, 100% correct on the training "
              "set and near-perfect on fresh data (Theorem 3.2).",
        criterion="holds when, for every seed, the target after one step has training accuracy 1.0 and fresh "
                  "test accuracy ≥ 0.99 (the theorem holds with probability 1 − O(1/n²))",
        quick=["p=20000", "eps=0.1", "n_test=4000", "lemma_trials=50", "seeds=3"],
        judge=_judge_xor,
        table=_xor_table,
        run=_run_xor,
        defaults=dict(_xor_defaults(), seeds=[0, 1, 2, 3, 4]),
    ),
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
        defaults={"p": 113, "train_fraction": 0.25, "width": 512, "max_steps": 10000, "seed": 0, "device": "auto",
                  "encodings": ["one_hot", "binary", "fourier", "text"]},
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
        defaults={"p": 113, "train_fraction": 0.25, "width": 512, "max_steps": 10000, "eval_every": 20, "probe": 64,
                  "encodings": ["one_hot", "binary", "fourier"], "seed": 0, "device": "auto"},
    ),
    "fig7": Reproduction(
        preset=None,
        claim="The target's result tracks the weak model's test accuracy at the moment its embedding is taken "
              "(weak checkpoints at epochs 100, 500, 800, 900, 1000, 1100, 1500, 2000).",
        criterion="holds when the Spearman rank correlation between the weak model's test accuracy and the "
                  "target's 1/Time Gap over the checkpoints is at least 0.5",
        quick=["preset=demo", f"preset_overrides={DEMO_PAPER_WEAK + ['target.train.max_steps=5000']!r}"],
        judge=_judge_fig7,
        table=_fig7_table,
        run=_run_fig7,
        defaults={"preset": "fig1b-printed", "preset_overrides": [], "checkpoints": [100, 500, 800, 900, 1000, 1100, 1500, 2000],
                  "device": "auto"},
    ),
    "fig15": Reproduction(
        preset=None,
        claim="(Our reading of the Fig. 15 controls; the paper lists them without stating outcomes.) The speed-up "
              "comes from the weak embedding, not from the factorisation: a random A·B does not remove the delay, "
              "while merging A·B into one matrix at step 100, or a weak embedding as wide as the target's, keeps it.",
        criterion="holds when random A·B's Time Gap is at least 5× GrokTransfer's, and the merged and d_W = d_T "
                  "variants' Time Gaps are at most 1/5 of random A·B's (never = infinite)",
        quick=QUICK_PAPER_WEAK,
        judge=_judge_fig15,
        table=_fig15_table,
        run=_run_fig15,
        defaults={"preset": "fig1b-printed", "preset_overrides": [], "device": "auto"},
    ),
    "fig4a": Reproduction(
        preset=None,
        claim="Trained normally (width 2048, default initialisation, gradient descent with lr 0.1 and weight decay "
              "0.1), the two-layer network overfits the XOR cluster data within a few epochs and generalises much "
              "later (from about epoch 80).",
        criterion="holds when 95% test accuracy comes at least 5× later than 100% training accuracy",
        quick=["p=8000", "eps=0.158", "width=512", "steps=300"],
        judge=_judge_fig4a,
        table=_fig4a_table,
        run=_run_fig4a,
        defaults=_normal_training_defaults(),
    ),
    "fig5": Reproduction(
        preset=None,
        claim="The noise part of the weak model's first layer is small: its norm ratio r_W scales like ε/√n "
              "(and does not depend on p).",
        criterion="holds when the least-squares slope of log r_W on log(ε/√n) is within [0.7, 1.3] with R² ≥ 0.9",
        quick=["p=20000"],
        judge=_judge_fig5,
        table=_fig5_table,
        run=_run_fig5,
        defaults={"p": 80000, "ns": [100, 200, 400, 800], "epsilons": [0.025, 0.05, 0.1], "steps": 1000, "seed": 0,
                  "device": "cpu"},
    ),
    "fig10": _small_weak_xor(
        1, claim="A 1-neuron weak model cannot work: the target built on its first layer does not classify fresh XOR "
                 "data after the gradient step.",
        criterion="holds when, for every seed, the target's fresh test accuracy after one step is below 0.9",
        judge=_judge_fig10,
    ),
    "fig11": _small_weak_xor(
        2, claim="(Our reading of Fig. 11, which shows the XOR construction with a 2-neuron weak model; the paper "
                 "states no outcome for it.) Two neurons can be enough: the target built on a 2-neuron weak model's "
                 "first layer is, after one gradient step, correct on the training set and near-perfect on fresh "
                 "data.",
        criterion="holds when, for every seed, the target after one step has training accuracy 1.0 and fresh "
                  "test accuracy ≥ 0.99",
        judge=_judge_xor,
    ),
    "fig12": Reproduction(
        preset=None,
        claim="(Our reading of Fig. 12, a 2-D PCA view of the weak embedding coloured by residue.) The weak model's "
              "embedding is already structured: its top two principal components place the residues on a circle, "
              "one Fourier frequency k.",
        criterion="holds when a single frequency's (cos, sin)(2πka/p) explains at least 80% (R²) of the top two "
                  "principal components",
        quick=QUICK_PAPER_WEAK,
        judge=_judge_fig12,
        table=_fig12_table,
        run=_run_fig12,
        defaults={"preset": "fig1b-printed", "preset_overrides": [], "device": "cpu"},
    ),
    "table1": Reproduction(
        preset="fig8a",
        claim="Training the weak model and then the GrokTransfer target to the accuracy threshold takes "
              "far less wall-clock than training the target from scratch: 2828 + 71079 ms against 392667 ms "
              "on an A100 (about 5.3× less).",
        criterion="holds when the GrokTransfer target reaches 99% test accuracy and "
                  "scratch time ÷ (weak + GrokTransfer time) ≥ 2",
        quick=QUICK_TRANSFORMER + ["target.train.lr=0.003", "target.model.init_scale=1.0",
                                   "scratch.train.lr=0.003", "scratch.model.init_scale=1.0",
                                   "target.train.max_steps=12000", "scratch.train.max_steps=12000"],
        judge=_judge_table1,
        table=_table1_table,
    ),
}


# Figures whose claim one reproduction tests together with others': `reproduce fig9` runs `xor`.
ALIASES = {
    "fig4": "fig4a",  # Fig. 4: (a) normal training; (b) the weak model, which `xor` covers
    "fig4b": "xor",  # the 3-neuron weak model and its alignment with three of [±1, ±1]
    "fig9": "xor",  # the transferred target, correct after one gradient step
}


def reproduce(
    name: str,
    out: Union[str, Path],
    *,
    quick: bool = False,
    overrides: tuple[str, ...] | list[str] = (),
    overwrite: bool = False,
    progress: bool = False,
    command: str = "",
    log: Callable[[str], None] = lambda message: None,
    parallel: Union[int, str] = "auto",
) -> dict:
    """Run reproduction ``name`` (or an alias of one, see ``ALIASES``) into ``out``; return the
    claim record (also in claim.json). ``parallel`` is passed to :func:`groktransfer.sweep.run_many`
    by the reproductions made of several runs of one architecture (Figs. 2, 3, 7, 15)."""
    if name not in REPRODUCTIONS and name not in ALIASES:
        raise ConfigError(f"reproduce {name!r}: unknown; allowed: {', '.join([*REPRODUCTIONS, *ALIASES])}")
    if name in ALIASES:
        log(f"[reproduce {name}] {name} is part of the {ALIASES[name]!r} reproduction")
        name = ALIASES[name]
    spec = REPRODUCTIONS[name]
    applied = (spec.quick if quick else []) + list(overrides)
    if spec.run is not None:
        settings = _settings(name, spec.defaults or {}, applied)
        if "encodings" in settings:  # as is a bad encoding list
            _check_encodings(settings["encodings"])
        if "preset" in settings:  # a bad preset or override is refused before anything is written
            load_preset(settings["preset"], list(settings["preset_overrides"]) + [f"device={settings['device']}"])
    else:
        config = load_preset(spec.preset, applied)
    out = check_new_run_dir(out, overwrite)
    if overwrite and out.is_dir():
        shutil.rmtree(out)  # --overwrite means fresh runs: nothing of an earlier reproduction is reused
    log(f"[reproduce {name}] {spec.claim if spec.preset is None else preset_description(spec.preset)}")
    if quick:
        log(f"[reproduce {name}] --quick: {' '.join(spec.quick)}")
    if spec.run is not None:
        out.mkdir(parents=True, exist_ok=True)
        batched = "parallel" in inspect.signature(spec.run).parameters
        summary = spec.run(settings, out, parallel=parallel) if batched else spec.run(settings, out)
        summary.update(environment(resolve_device(settings.get("device", "cpu"))))
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    else:
        summary = run_experiment(config, out / "run", overwrite=True, progress=progress, log=log)
    measured, holds = spec.judge(summary)
    table = spec.table(summary, measured)
    record = {
        "reproduction": name,
        "preset": spec.preset,
        "claim": spec.claim,
        "criterion": spec.criterion,
        "holds": holds,
        "measured": measured,
        "size": "quick" if quick else "full",
        "overrides": applied,
        "command": command,
        "device": summary.get("device_name") or summary.get("device"),
        "git_commit": summary.get("git_commit"),
        "plots": ["run/accuracy.png", "run/loss.png"] if spec.preset else summary.get("plots", []),
        "run_table": format_table(summary) if spec.preset else table,
    }
    atomic_write_text(out / "table.md", table + "\n")
    atomic_write_text(out / "claim.json", json.dumps(record, indent=2) + "\n")
    return record


def reproduce_all(
    out: Union[str, Path], *, quick: bool = False, overwrite: bool = False, progress: bool = False,
    command: str = "", log: Callable[[str], None] = lambda message: None, parallel: Union[int, str] = "auto",
) -> dict:
    """Every reproduction into ``out/NAME``; ``out/all.md`` lists whether each claim held."""
    import time

    out = check_new_run_dir(out, overwrite)
    if overwrite and out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    records, rows = {}, ["| reproduction | size | holds | claim |", "|---|---|---|---|"]
    for name in REPRODUCTIONS:
        log(f"[reproduce all] {name}")
        record = reproduce(name, out / name, quick=quick, progress=progress, command=command, log=log,
                           parallel=parallel)
        records[name] = {"holds": record["holds"], "size": record["size"]}
        rows.append(f"| [{name}]({name}/table.md) | {record['size']} | {str(record['holds']).lower()} | {record['claim']} |")
        atomic_write_text(out / "all.md", "\n".join(rows) + "\n")
    record = {"command": command, "wall_clock_s": time.perf_counter() - start, "reproductions": records}
    atomic_write_text(out / "all.json", json.dumps(record, indent=2) + "\n")
    return records


def _settings(name: str, defaults: dict, overrides: list[str]) -> dict:
    """An experiment's settings with key=value overrides (YAML scalars), checked against its keys."""
    import yaml

    settings = dict(defaults)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or key not in defaults:
            raise ConfigError(f"reproduce {name}: {key!r}: unknown setting; allowed: {', '.join(defaults)}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if key == "seeds" and isinstance(value, int):
            value = list(range(value))  # seeds=N: seeds 0 .. N-1
        if not isinstance(value, type(defaults[key])) and not (isinstance(defaults[key], float) and isinstance(value, int)):
            raise ConfigError(f"reproduce {name}: {key}: got {text!r}; expected {type(defaults[key]).__name__}")
        settings[key] = value
    return settings


__all__ = ["ALIASES", "REPRODUCTIONS", "reproduce", "reproduce_all"]
