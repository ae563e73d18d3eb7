"""Benchmark: many runs at once. Sweep throughput, batched against one at a time, and peak memory.

    python benchmarks/multirun.py --out results/bench_multirun_cpu.json                 # CPU, 2 cores
    python benchmarks/multirun.py --device cuda --precision tf32 --ks 1,8,64,256 --out $OUT/multirun.json

Part (b), throughput (the paper's weak and target FNNs, the demo's, and the Fig. 8(b)
2-layer transformer): for each model and each K, K runs (seeds 0..K-1, full batch, no early
stopping, two evaluations) train for a fixed number of steps as ONE batched computation
(``train_many``); the reference is ``train()`` on one run, the same steps. Reported:
run-steps/s of both and their ratio, the speed-up a sweep of K runs gets from batching.

Part (d), memory: peak device memory of each batched measurement on CUDA
(``torch.cuda.max_memory_allocated``); on the CPU, the process's peak resident set after
all measurements (a ceiling, not per measurement).

CPU target, end to end: ``run_many`` on 8 seeds of a config, batched (``parallel=8``)
against one at a time (``parallel=1``), the whole pipeline (run directories included).
Not a test: timings depend on the machine, which the JSON records.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from groktransfer.config import MethodsConfig, ModelConfig, TaskConfig, TrainConfig, TransformerConfig, run_config_from_dict
from groktransfer.models import build_network
from groktransfer.engine import RunSpec, train_many
from groktransfer.presets import load_preset
from groktransfer.records import environment
from groktransfer.sweep import run_many
from groktransfer.tasks import ModularTask
from groktransfer.engine import train
from groktransfer.training import _measure_flops, resolve_device

MODELS = {
    # name: (task kwargs, FNN kwargs)
    "demo-weak": ({"op": "add", "p": 47, "train_fraction": 0.4}, {"embed_dim": 8, "width": 32, "depth": 1}),
    "paper-weak": ({"op": "add", "p": 113, "train_fraction": 0.25}, {"embed_dim": 4, "width": 16, "depth": 1}),
    "demo-target": ({"op": "add", "p": 47, "train_fraction": 0.4}, {"embed_dim": 64, "width": 256, "depth": 2}),
    "paper-target": ({"op": "add", "p": 113, "train_fraction": 0.25}, {"embed_dim": 128, "width": 512, "depth": 2}),
    # The Fig. 8(b) transformer: 2 layers, d_model 128, 4 heads, d_mlp 512 (Nanda style).
    "transformer-2l": ({"op": "add", "p": 113, "train_fraction": 0.25},
                       {"transformer": {"n_layers": 2, "n_heads": 4, "d_mlp": 512}, "embed_dim": 128}),
}


def _config(steps: int, precision: str) -> TrainConfig:
    return TrainConfig(lr=1e-3, weight_decay=1.0, max_steps=steps, stop_at_test_acc=None, eval_dense_until=0,
                       eval_every=steps, diagnostics=False, precision=precision)


def _specs(name: str, k: int, steps: int, device: torch.device, precision: str) -> list[RunSpec]:
    task_kwargs, model_kwargs = MODELS[name]
    task = ModularTask.from_config(TaskConfig(**task_kwargs), device=device)
    model_config = ModelConfig(**{key: (TransformerConfig(**value) if key == "transformer" else value)
                                  for key, value in model_kwargs.items()})
    return [RunSpec(build_network(model_config, task.vocab_size, task.n_classes, seed=s).to(device), task,
                    _config(steps, precision), seed=s, methods=MethodsConfig()) for s in range(k)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(name: str, ks: list[int], budget_s: float, device: torch.device, precision: str) -> list[dict]:
    one = _specs(name, 1, 1, device, precision)[0]
    step_flops, _ = _measure_flops(one.model, torch.nn.functional.cross_entropy, one.task.x_train, one.task.y_train, [])
    # Calibrate: a short sequential run gives the seconds per step of one run.
    probe = _specs(name, 1, 20, device, precision)[0]
    train(probe.model, probe.task, probe.train)
    probe = _specs(name, 1, 20, device, precision)[0]
    _sync(device)
    seconds_per_step = train(probe.model, probe.task, probe.train).wall_clock_s / 20
    rows = []
    for k in ks:
        steps = max(3, int(budget_s / (seconds_per_step * k)))
        spec = _specs(name, 1, steps, device, precision)[0]
        _sync(device)
        sequential = train(spec.model, spec.task, spec.train).wall_clock_s
        specs = _specs(name, k, steps, device, precision)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        _sync(device)
        start = time.perf_counter()
        train_many(specs)
        _sync(device)
        batched = time.perf_counter() - start
        row = {
            "model": name, "k": k, "steps": steps, "step_flops_per_run": step_flops,
            "one_run_steps_per_s": steps / sequential,
            "batched_run_steps_per_s": k * steps / batched,
            "speedup_vs_one_at_a_time": (k * sequential) / batched,
            "peak_device_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        }
        rows.append(row)
        print(f"{name:13s} K={k:4d} steps={steps:5d}  one run {row['one_run_steps_per_s']:9.1f} steps/s  "
              f"batched {row['batched_run_steps_per_s']:10.1f} run-steps/s  x{row['speedup_vs_one_at_a_time']:.2f}",
              flush=True)
    return rows


def end_to_end(seeds: int, device_name: str, stages: str, max_steps: int) -> dict:
    """run_many on ``seeds`` seeds of the demo config, parallel=seeds against parallel=1."""
    base = load_preset("demo").to_dict()
    base["device"] = device_name
    if stages == "weak":
        base["target"] = base["scratch"] = None
    for stage in ("weak", "target", "scratch"):
        if base.get(stage):
            base[stage]["train"]["max_steps"] = max_steps
            base[stage]["train"]["stop_at_test_acc"] = None  # the same work for every seed
    configs = []
    for s in range(seeds):
        data = json.loads(json.dumps(base))
        data["seed"], data["task"]["data_seed"] = s, s
        configs.append(run_config_from_dict(data))
    out = {}
    root = Path(tempfile.mkdtemp(prefix="gt-bench-"))
    try:
        for label, parallel in (("one_at_a_time", 1), ("batched", seeds), ("one_at_a_time_again", 1),
                                ("batched_again", seeds)):
            shutil.rmtree(root, ignore_errors=True)
            start = time.perf_counter()
            run_many([(c, root / label / f"seed{i}") for i, c in enumerate(configs)], parallel=parallel)
            out[label + "_s"] = time.perf_counter() - start
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["speedup"] = (out["one_at_a_time_s"] + out["one_at_a_time_again_s"]) / (out["batched_s"] + out["batched_again_s"])
    out.update({"seeds": seeds, "stages": stages, "max_steps": max_steps, "config": "demo preset"})
    print(f"end to end, {seeds} seeds of the demo ({stages}, {max_steps} steps per stage): "
          f"one at a time {out['one_at_a_time_s']:.1f}/{out['one_at_a_time_again_s']:.1f} s, "
          f"batched {out['batched_s']:.1f}/{out['batched_again_s']:.1f} s: x{out['speedup']:.2f}", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="full", choices=["full", "tf32", "bf16"])
    parser.add_argument("--models", default="demo-weak,paper-weak,demo-target,paper-target,transformer-2l")
    parser.add_argument("--ks", default="1,8,64", help="batch sizes K (the issue's list is 1,8,64,256)")
    parser.add_argument("--budget-s", type=float, default=4.0, help="target seconds per sequential measurement")
    parser.add_argument("--end-to-end", default="weak:2000,all:300",
                        help="STAGES:STEPS items for the 8-seed run_many comparison ('' to skip)")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="weak model test accuracy")  # fixed budgets stop weak models early
    device = resolve_device(args.device)
    ks = [int(k) for k in args.ks.split(",")]
    record = {"benchmark": "multirun", "command": "python " + " ".join(sys.argv), "precision": args.precision,
              "environment": environment(device), "threads": torch.get_num_threads(), "throughput": []}
    train_many(_specs("demo-weak", 2, 3, device, args.precision))  # vmap's first call imports its decompositions (~1 s)
    for name in args.models.split(","):
        record["throughput"] += throughput(name, ks, args.budget_s, device, args.precision)
    record["end_to_end"] = []
    for item in filter(None, args.end_to_end.split(",")):
        stages, steps = item.split(":")
        record["end_to_end"].append(end_to_end(args.seeds, args.device, stages, int(steps)))
    record["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
