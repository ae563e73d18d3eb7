"""Accuracy and loss curves against step, on a log-x axis (as in the paper's Fig. 1b).

Usage::

    paths = plot_run("runs/demo")   # redraws accuracy.png and loss.png from metrics.csv

Each stage has one colour; train is dashed, test solid. Step 0 cannot sit on a log axis,
so curves start at step 1. Each stage is drawn against its own steps; the weak stage's
length is in the legend, since GrokTransfer's cost includes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from .records import read_metrics  # noqa: E402

STAGE_LABELS = {"weak": "weak model", "target": "GrokTransfer target", "scratch": "from scratch"}
STAGE_COLOURS = {"weak": "tab:green", "target": "tab:blue", "scratch": "tab:red"}


def _label(stage: str, rows: list[dict]) -> str:
    label = STAGE_LABELS.get(stage, stage)
    return f"{label} ({rows[-1]['step']} steps)" if rows else label


def _draw(stages: dict[str, list[dict]], keys: tuple[str, str], ylabel: str, path: Path, title: str, log_y: bool) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for stage, rows in stages.items():
        rows = [r for r in rows if r["step"] >= 1]
        if not rows:
            continue
        colour = STAGE_COLOURS.get(stage)
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r[keys[0]] for r in rows], "--", color=colour, alpha=0.8, label=_label(stage, rows) + " train")
        ax.plot(steps, [r[keys[1]] for r in rows], "-", color=colour, label=_label(stage, rows) + " test")
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("step (full batch: epoch)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_run(run_dir: Union[str, Path], title: str = "") -> list[Path]:
    """Draw accuracy.png and loss.png in ``run_dir`` from its metrics.csv; return their paths."""
    run_dir = Path(run_dir)
    stages = read_metrics(run_dir)
    title = title or run_dir.name
    accuracy, loss = run_dir / "accuracy.png", run_dir / "loss.png"
    _draw(stages, ("train_acc", "test_acc"), "accuracy", accuracy, title, log_y=False)
    _draw(stages, ("train_loss", "test_loss"), "cross-entropy loss", loss, title, log_y=True)
    return [accuracy, loss]
