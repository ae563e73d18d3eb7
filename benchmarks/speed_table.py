"""Print the speed tables of docs/speed.md (markdown) from the benchmark JSON files.

    python benchmarks/speed_table.py results/bench_multirun_cpu.json [results/bench_fig1b_grid_cpu.json ...]

Every number in docs/speed.md is printed by this script from a stored result,
so none is typed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def hardware(record: dict) -> str:
    env = record["environment"]
    device = env.get("device_name") or env.get("device") or "?"
    return f"{device}, torch {env.get('torch_version', '?')}, {record.get('threads', env.get('torch_threads', '?'))} threads, precision {record.get('precision', 'full')}"


def multirun(record: dict) -> str:
    lines = [f"Hardware: {hardware(record)}.", "",
             "| model | FLOPs per step (one run) | K | one run, steps/s | batched, run-steps/s | batched ÷ one at a time | peak GPU memory |",
             "|---|---|---|---|---|---|---|"]
    for row in record["throughput"]:
        memory = "—" if row["peak_device_bytes"] is None else f"{row['peak_device_bytes'] / 2**30:.2f} GiB"
        lines.append(f"| {row['model']} | {row['step_flops_per_run'] / 1e6:.1f} M | {row['k']} | "
                     f"{row['one_run_steps_per_s']:.1f} | {row['batched_run_steps_per_s']:.1f} | "
                     f"×{row['speedup_vs_one_at_a_time']:.2f} | {memory} |")
    if record.get("end_to_end"):
        lines += ["", "| end to end (`run_many`, demo config) | one at a time (2 repeats) | batched (2 repeats) | speed-up |",
                  "|---|---|---|---|"]
        for row in record["end_to_end"]:
            lines.append(f"| {row['seeds']} seeds, stages: {row['stages']}, {row['max_steps']} steps each | "
                         f"{row['one_at_a_time_s']:.1f} s, {row['one_at_a_time_again_s']:.1f} s | "
                         f"{row['batched_s']:.1f} s, {row['batched_again_s']:.1f} s | ×{row['speedup']:.2f} |")
    if record.get("peak_rss_bytes"):
        lines += ["", f"Peak resident memory of the whole benchmark process: {record['peak_rss_bytes'] / 2**30:.1f} GiB."]
    return "\n".join(lines)


def fig1b(record: dict) -> str:
    return "\n".join([
        f"Hardware: {hardware(record)}; parallel: {record['parallel']}.", "",
        "| configurations run (of 810 + 35) | budget | weak stage | total wall-clock | run-steps/s | reached 99% test |",
        "|---|---|---|---|---|---|",
        f"| {record['groktransfer_configs']} GrokTransfer + {record['scratch_configs']} scratch "
        f"(fraction {record['fraction']}) | {record['max_steps']} steps | {record['weak_stage_s']:.1f} s | "
        f"{record['total_wall_clock_s']:.1f} s | {record['run_steps_per_s']:.1f} | "
        f"GrokTransfer {record['groktransfer_reached_99']}/{record['groktransfer_configs']}, "
        f"scratch {record['scratch_reached_99']}/{record['scratch_configs']} |",
    ])


def single_run(record: dict) -> str:
    bare = all("bare_adamw" in row["steps_per_s"] for row in record["results"].values())
    lines = [f"Hardware: {hardware(record)}.", "",
             "| model | peer-style steps/s | " + ("bare AdamW loop steps/s | " if bare else "")
             + "groktransfer steps/s | speed-up over peer-style | " + ("groktransfer ÷ bare loop | " if bare else "")
             + "ms per step |",
             "|---|---|---|---|" + ("---|---|" if bare else "") + "---|"]
    for name, row in record["results"].items():
        ms = row.get("ms_per_step_groktransfer")
        speeds = row["steps_per_s"]
        cells = [name, f"{speeds['peer_style']:.1f}"] + ([f"{speeds['bare_adamw']:.1f}"] if bare else [])
        cells += [f"{speeds['groktransfer']:.1f}", f"×{row['speedup']:.2f}"]
        cells += [f"×{row['speed_vs_bare_adamw']:.2f}"] if bare else []
        cells += ["—" if ms is None else f"{ms:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compiled(record: dict) -> str:
    lines = [f"Hardware: {hardware(record)}.", "",
             "| model | K | eager ms/step | compiled ms/step | steady speed-up | whole run, eager | whole run, compiled (incl. compiling) |",
             "|---|---|---|---|---|---|---|"]
    for row in record["rows"]:
        lines.append(f"| {row['model']} | {row['k']} | {row['eager_ms_per_step']:.2f} | {row['compiled_ms_per_step']:.2f} | "
                     f"×{row['steady_speedup']:.2f} | {row['eager_total_s']:.1f} s | {row['compiled_total_s']:.1f} s |")
    return "\n".join(lines)


def executors(record: dict) -> str:
    sweep = record["sweep"]
    lines = [f"Hardware: {hardware(record)}; {record['cores']} cores.", "",
             "| sweep | local executor (one process) | Ray, local cluster | local ÷ Ray | cluster start | local ÷ (Ray + start) |",
             "|---|---|---|---|---|---|",
             f"| {sweep['runs']} runs × {sweep['steps']} steps, one run per task | {sweep['local_s']:.1f} s | "
             f"{sweep['ray_s']:.1f} s ({sweep['workers']} workers × 1 thread) | ×{sweep['speedup']:.2f} | "
             f"{sweep['ray_cluster_start_s']:.1f} s | ×{sweep['speedup_with_cluster_start']:.2f} |",
             "", "| training processes at once | threads each | steps/s each | steps/s together | each ÷ one process alone |",
             "|---|---|---|---|---|"]
    for row in record["oversubscription"]:
        lines.append(f"| {row['processes']} | {row['threads']} | {row['steps_per_s_each']:.1f} | "
                     f"{row['steps_per_s_total']:.1f} | ×{row['each_vs_alone']:.2f} |")
    return "\n".join(lines)


def main(paths: list[str]) -> int:
    for path in paths:
        record = json.loads(Path(path).read_text())
        kind = record.get("benchmark") or ("single_run" if "results" in record else "?")
        render = {"multirun": multirun, "fig1b_grid": fig1b, "single_run": single_run,
                  "compile": compiled, "executors": executors}.get(kind)
        if render is None:
            print(f"{path}: not a speed benchmark result", file=sys.stderr)
            return 2
        print(f"<!-- {path} -->\n{render(record)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
