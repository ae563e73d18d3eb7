"""The ablations of the method: weak checkpoints (Fig. 7), the controls (Fig. 15) and the weak embedding's PCA view (Fig. 12)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import torch

from ..config import _require, run_config_from_dict
from ..pipeline import build_model
from ..plots import plt
from ..sweep import run_many
from ..tasks import build_task
from ..engine import train
from ..training import resolve_device
from ..transfer import save_weak_embedding
from .common import DEMO_PAPER_WEAK, gap_text, PresetSettings, QUICK_PAPER_WEAK, Reproduction


@dataclass
class Fig7Settings(PresetSettings):
    """Fig. 7: one weak model, its embedding kept at each checkpoint step, a target from each."""

    # The paper's epochs. They span the paper's weak model's generalisation; a weak model that
    # generalises sooner needs earlier ones (the full-size record divides them by 10, docs/reproducing.md).
    checkpoints: list[int] = field(default_factory=lambda: [100, 500, 800, 900, 1000, 1100, 1500, 2000])

    def check(self) -> None:
        _require(all(c >= 1 for c in self.checkpoints), f"checkpoints: got {self.checkpoints}; each must be >= 1")


@dataclass
class Fig12Settings(PresetSettings):
    device: str = "cpu"  # one small weak model: the CPU is the fastest place for it


def _run_fig7(settings: Fig7Settings, out: Path, parallel: Union[int, str] = "auto", executor=None) -> dict:
    """Train the weak model once, keep its embedding at each checkpoint step, and start one
    GrokTransfer target from each (all targets alike but for A)."""
    preset = settings.preset_config()
    device = resolve_device(settings.device)
    task = build_task(preset.task, device=device)
    weak = build_model(preset.weak, task, preset.seed)
    checkpoints = sorted(set(settings.checkpoints))
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
        data.update(name=f"fig7-weak-step{step}", weak=None, scratch=None, device=settings.device)
        data["transfer"] = dict(data["transfer"], weak_embedding_file=str(out / "weak" / f"step{step:06d}.safetensors"))
        jobs.append((run_config_from_dict(data), out / "runs" / f"weak-step{step:06d}"))
    summaries = run_many(jobs, parallel=parallel, plots=True, executor=executor)
    runs = []
    for step, summary in zip(checkpoints, summaries):
        target = summary["stages"]["target"]
        runs.append({"weak_step": step, "weak_test_acc": kept[step], "target_time_gap": target["time_gap"],
                     "target_inverse_time_gap": target["inverse_time_gap"],
                     "target_test_acc_99_step": target["test_acc_99_step"], "target_final_test_acc": target["final_test_acc"]})
    plot = _plot_fig7(runs, out / "fig7.png")
    return {"settings": settings.to_dict(), "runs": runs, "plots": [plot.name]}


def _plot_fig7(runs: list[dict], path: Path) -> Path:
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
        lines.append(f"| {r['weak_step']} | {r['weak_test_acc']:.3f} | {gap_text(r['target_time_gap'])} | "
                     f"{r['target_inverse_time_gap']:.4f} | {gap_text(r['target_test_acc_99_step'])} | {r['target_final_test_acc']:.3f} |")
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


def _run_fig15(settings: PresetSettings, out: Path, parallel: Union[int, str] = "auto", executor=None) -> dict:
    """GrokTransfer and its three controls on one preset, through run_many."""
    jobs = []
    for name, overrides in FIG15_VARIANTS.items():
        base = settings.preset_config()
        extra = [f"weak.model.embed_dim={base.target.model.embed_dim}"] if name == "d_W = d_T" else []
        config = settings.preset_config(*overrides, *extra, f"name=fig15-{name}")
        jobs.append((config, out / "runs" / name.replace(" ", "_").replace("·", "").replace("=", "eq")))
    summaries = run_many(jobs, parallel=parallel, plots=True, executor=executor)
    runs = {}
    for (name, _), summary in zip(FIG15_VARIANTS.items(), summaries):
        target = summary["stages"].get("target", {})
        runs[name] = {k: target.get(k) for k in ("train_acc_95_step", "test_acc_95_step", "time_gap", "final_test_acc")}
    scratch = summaries[0]["stages"].get("scratch")
    if scratch is not None:
        runs["from scratch"] = {k: scratch[k] for k in ("train_acc_95_step", "test_acc_95_step", "time_gap", "final_test_acc")}
    return {"settings": settings.to_dict(), "runs": runs, "plots": [str(p.relative_to(out) / "accuracy.png") for _, p in jobs]}


def _judge_fig15(summary: dict) -> tuple[dict, bool]:
    runs = summary["runs"]

    def gap(name: str) -> float:
        value = runs[name]["time_gap"]
        return math.inf if value is None else value

    def keeps_it(name: str) -> bool:
        # Keeping the speed-up is removing scratch's delay by Fig. 1(b)'s standard (a Time Gap at
        # most 1/5 of scratch's). It was once judged against random A·B's instead, which passes
        # anything finite when random A·B never generalises (a d_W = d_T control 8× slower than
        # scratch "kept" it). A variant that never generalised keeps nothing, and without a scratch
        # run (a preset with scratch: null) there is no delay to judge it against.
        return "from scratch" in runs and gap(name) < math.inf and gap(name) * 5 <= gap("from scratch")

    holds = (gap("groktransfer") < math.inf and gap("random A·B") >= 5 * gap("groktransfer")
             and keeps_it("A·B merged at step 100") and keeps_it("d_W = d_T"))
    return {"runs": runs}, holds


def _fig15_table(summary: dict, measured: dict) -> str:
    lines = ["| variant | 95% train | 95% test | Time Gap | final test |", "|---|---|---|---|---|"]
    for name, row in measured["runs"].items():
        final = "—" if row["final_test_acc"] is None else f"{row['final_test_acc']:.3f}"
        lines.append(f"| {name} | {gap_text(row['train_acc_95_step'])} | {gap_text(row['test_acc_95_step'])} | "
                     f"{gap_text(row['time_gap'])} | {final} |")
    return "\n".join(lines)



def best_fourier_frequency(points) -> tuple[int, float]:
    """The frequency k (1 … p/2) whose [cos, sin](2πka/p) plus a constant best fits the rows of
    ``points`` (p × m, row a for residue a) by least squares, and that fit's R²."""
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


def _run_fig12(settings: Fig12Settings, out: Path, parallel: Union[int, str] = "auto", executor=None) -> dict:
    """Train the preset's weak model, project its embedding on its top two principal components,
    and find the single Fourier frequency k whose (cos, sin)(2πka/p) best explains them."""
    preset = settings.preset_config()
    task = build_task(preset.task, device=resolve_device(settings.device))
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
    return {"settings": settings.to_dict(), "weak_steps": result.steps, "weak_test_acc": result.history[-1]["test_acc"],
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



REPRODUCTIONS: dict[str, Reproduction] = {
    "fig7": Reproduction(
        preset=None,
        claim="The target's result tracks the weak model's test accuracy at the moment its embedding is taken "
              "(the paper takes it at epochs 100, 500, 800, 900, 1000, 1100, 1500, 2000, across its weak model's "
              "generalisation; the steps used here are the settings' checkpoints).",
        criterion="holds when the Spearman rank correlation between the weak model's test accuracy and the "
                  "target's 1/Time Gap over the checkpoints is at least 0.5",
        quick=["preset=demo", f"preset_overrides={json.dumps(DEMO_PAPER_WEAK + ['target.train.max_steps=5000'])}"],
        judge=_judge_fig7,
        table=_fig7_table,
        run=_run_fig7,
        settings=Fig7Settings,
    ),
    "fig15": Reproduction(
        preset=None,
        claim="(Our reading of the Fig. 15 controls; the paper lists them without stating outcomes.) The speed-up "
              "comes from the weak embedding, not from the factorisation: a random A·B does not remove the delay, "
              "while merging A·B into one matrix at step 100, or a weak embedding as wide as the target's, keeps it.",
        criterion="holds when random A·B's Time Gap is at least 5× GrokTransfer's, and the merged and d_W = d_T "
                  "variants generalise with Time Gaps at most 1/5 of scratch's, as Fig. 1(b) asks of GrokTransfer "
                  "(never = infinite)",
        quick=QUICK_PAPER_WEAK,
        judge=_judge_fig15,
        table=_fig15_table,
        run=_run_fig15,
        settings=PresetSettings,
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
        settings=Fig12Settings,
    ),
}
