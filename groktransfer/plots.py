"""Accuracy and loss curves against step, on a log-x axis (as in the paper's Fig. 1b).

Usage::

    paths = plot_run("runs/demo")   # redraws accuracy.png and loss.png from metrics.csv

Each stage has one colour; train is dashed, test solid. Step 0 cannot sit on a log axis,
so curves start at step 1. Each stage is drawn against its own steps; the weak stage's
length is in the legend, since GrokTransfer's cost includes it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Union

import matplotlib
import yaml

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from .records import read_metrics  # noqa: E402

STAGE_LABELS = {"weak": "weak model", "target": "GrokTransfer target", "scratch": "from scratch"}
STAGE_COLOURS = {"weak": "tab:green", "target": "tab:blue", "scratch": "tab:red"}


def _label(stage: str, rows: list[dict]) -> str:
    label = STAGE_LABELS.get(stage, stage)
    return f"{label} ({rows[-1]['step']} steps)" if rows else label


def literal(text: str) -> str:
    """User text (a run's name) shown as written: matplotlib would read $...$ as math and fail on
    an unbalanced or malformed formula."""
    return text.replace("\\", "\\\\").replace("$", r"\$")


def _draw(stages: dict[str, list[dict]], keys: tuple[str, str], ylabel: str, path: Path, title: str, log_y: bool) -> None:
    def drawable(value: float) -> bool:
        # A diverged run logs NaN/inf, and a log axis cannot show values <= 0.
        return math.isfinite(value) and (value > 0 or not log_y)

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for stage, rows in stages.items():
        rows = [r for r in rows if r["step"] >= 1]
        if not rows:
            continue
        colour = STAGE_COLOURS.get(stage)
        for key, style, suffix in ((keys[0], "--", " train"), (keys[1], "-", " test")):
            points = [(r["step"], r[key]) for r in rows if drawable(r[key])]
            if points:
                ax.plot(*zip(*points), style, color=colour, alpha=0.8 if suffix == " train" else 1.0,
                        label=_label(stage, rows) + suffix)
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("step (full batch: epoch)")
    ax.set_ylabel(ylabel)
    ax.set_title(literal(title))
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no finite values to draw", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _run_name(run_dir: Path) -> str:
    """The run's own name (config.yaml's ``name``), so a redrawn plot keeps the title it had."""
    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ""
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else ""


def plot_run(run_dir: Union[str, Path], title: str = "") -> list[Path]:
    """Draw accuracy.png and loss.png in ``run_dir`` from its metrics.csv; return their paths."""
    run_dir = Path(run_dir)
    stages = read_metrics(run_dir)
    title = title or _run_name(run_dir) or run_dir.name
    accuracy, loss = run_dir / "accuracy.png", run_dir / "loss.png"
    _draw(stages, ("train_acc", "test_acc"), "accuracy", accuracy, title, log_y=False)
    _draw(stages, ("train_loss", "test_loss"), "cross-entropy loss", loss, title, log_y=True)
    return [accuracy, loss]


def _seed_curves(out: Path, method: str, seeds: list[int]) -> tuple[list[int], list[list[float]]]:
    """Each seed's test accuracy on the union of evaluated steps; a finished run holds its last value."""
    import numpy as np

    runs = []
    for seed in seeds:
        stages = read_metrics(out / "runs" / method / f"seed{seed}")
        rows = stages.get("target") or stages.get("scratch") or []
        runs.append(([r["step"] for r in rows], [r["test_acc"] for r in rows]))
    grid = sorted({s for steps, _ in runs for s in steps if s >= 1})
    curves = [list(np.interp(grid, steps, accs, right=accs[-1])) for steps, accs in runs if steps]
    return grid, curves


def plot_comparison(out: Union[str, Path], methods: list[str], seeds: list[int], aggregates: dict, title: str = "") -> list[Path]:
    """test_accuracy.png (median over seeds, min–max band) and time_to_99.png (median, IQR)."""
    import numpy as np

    out = Path(out)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for i, method in enumerate(methods):
        grid, curves = _seed_curves(out, method, seeds)
        if not grid:
            continue
        data = np.array(curves)
        colour = colours[i % len(colours)]
        ax.plot(grid, np.median(data, axis=0), color=colour, label=method)
        ax.fill_between(grid, data.min(axis=0), data.max(axis=0), color=colour, alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("step (GrokTransfer: target stage)")
    ax.set_ylabel("test accuracy")
    ax.set_title(literal(f"{title}: median over {len(seeds)} seeds, band = min–max"))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    accuracy_path = out / "test_accuracy.png"
    fig.savefig(accuracy_path)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    finite = [aggregates[m]["time_to_99_s"]["q75"] or aggregates[m]["time_to_99_s"]["median"] or 0 for m in methods]
    ceiling = max([v for v in finite if v] or [1.0]) * 1.15
    for i, method in enumerate(methods):
        stats = aggregates[method]["time_to_99_s"]
        if stats["median"] is None:
            ax.bar(i, ceiling, color="none", edgecolor="grey", hatch="//")
            ax.text(i, ceiling, "never", ha="center", va="bottom", fontsize=8)
            continue
        lo = stats["median"] - (stats["q25"] if stats["q25"] is not None else stats["median"])
        hi = (stats["q75"] if stats["q75"] is not None else ceiling) - stats["median"]
        ax.bar(i, stats["median"], color=colours[i % len(colours)], yerr=[[lo], [hi]], capsize=4)
        reached = aggregates[method]["success_99"]
        ax.text(i, stats["median"], f"{reached:.0%}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(methods)), methods, rotation=20, fontsize=8)
    ax.set_ylabel("wall-clock to 99% test (s), incl. weak stage")
    ax.set_title(literal(f"{title}: median, IQR bars; label = seeds reaching 99%"))
    fig.tight_layout()
    bar_path = out / "time_to_99.png"
    fig.savefig(bar_path)
    plt.close(fig)
    return [accuracy_path, bar_path]
