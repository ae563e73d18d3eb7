"""The weak stage of every GrokTransfer run of a `compare` result: did it deliver, how, at what cost.

    python scripts/weak_stage_report.py results/compare-p113-add/paper [...]

Reads RESULT/runs/groktransfer/seed*/summary.json and writes RESULT/weak_stage.md: a summary
table (first, so that the docs can quote it) and one row per seed. The summary's "share" is the
weak stage's median wall-clock over GrokTransfer's median time to 99% test, weak stage included
("never" when that median is), and beside it the median of the per-seed shares. Given several results, it
also prints one row per result (a study's table): the weak stage's and the whole run's
wall-clock to 99% test, weak stage included ("never" counts as slower than any time).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def seed_of(path: Path) -> int:
    return int(path.parent.name.removeprefix("seed"))


def summaries(result: Path) -> list[tuple[Path, dict]]:
    """Every GrokTransfer run's summary.json in RESULT, by seed."""
    files = sorted((result / "runs" / "groktransfer").glob("seed*/summary.json"), key=seed_of)
    if not files:
        raise SystemExit(f"{result}: no runs/groktransfer/seed*/summary.json")
    return [(path, json.loads(path.read_text(encoding="utf-8"))) for path in files]


def medians_and_share(result: Path) -> tuple[float, float, float]:
    """(median weak-stage seconds, median seconds to 99% test weak included (inf: never; a "never"
    among the middle two makes the median never), median per-seed share of the weak stage in a
    run that reached 99%, nan if none did)."""
    weak, total, shares = [], [], []
    for _, summary in summaries(result):
        stage, target = summary["stages"].get("weak", {}), summary["stages"].get("target") or {}
        seconds = stage.get("wall_clock_s") or 0.0
        weak.append(seconds)
        if target.get("test_acc_99_step") is not None:
            total.append(summary["groktransfer"]["wall_clock_s"])
            shares.append(seconds / total[-1])
        else:
            total.append(float("inf"))
    return statistics.median(weak), statistics.median(total), statistics.median(shares) if shares else float("nan")


def study_row(result: Path) -> str:
    """One line of a study's table: weak stage and whole run to 99% test, medians over seeds."""
    weak, total, reached = [], [], 0
    for _, summary in summaries(result):
        weak.append(summary["stages"].get("weak", {}).get("wall_clock_s") or 0.0)
        reached += (summary["stages"].get("target") or {}).get("test_acc_99_step") is not None
    weak_median, total_median, _ = medians_and_share(result)
    return (f"| {result.name} | {weak_median:.1f} [{min(weak):.1f}–{max(weak):.1f}] | {reached}/{len(weak)} | "
            f"{'never' if total_median == float('inf') else f'{total_median:.1f}'} |")


def rate_text(scale) -> str:
    """A and B's rate as the run recorded it ("—" for runs made before runs recorded it)."""
    return "—" if scale is None else f"{scale:g} ×"


def report(result: Path) -> str:
    rows = []
    for path, summary in summaries(result):
        weak, target = summary["stages"].get("weak", {}), summary["stages"].get("target")
        population = weak.get("population") or {}
        candidates = population.get("candidates", [])
        judged = [c for c in candidates if c.get("ready") is not None]
        chosen = candidates[population["chosen"]] if population.get("chosen") is not None else None
        rows.append({
            "seed": seed_of(path), "ready": bool(weak.get("ready")), "rounds": population.get("rounds"),
            "candidates": len(candidates), "judged": len(judged), "judged_ready": sum(bool(c["ready"]) for c in judged),
            "chosen": chosen, "weak_wall_clock_s": weak.get("wall_clock_s"), "weak_flops": weak.get("flops"),
            "target_99": None if target is None else target.get("test_acc_99_step"),
            "ab_rate": rate_text((summary.get("transfer") or {}).get("ab_lr_scale")),
            "target_status": "skipped" if target is None else target.get("status"),
            "hardware": f"{summary.get('device_name') or summary.get('device', '?')}, "
                        f"{summary.get('torch_threads', '?')} thread(s)",
        })
    n = len(rows)
    ready = sum(r["ready"] for r in rows)
    reached = sum(r["target_99"] is not None for r in rows)
    lines = ["| weak stage ready | rounds (median) | candidates judged ready | weak stage wall-clock s (median [min–max]) "
             "| weak FLOPs per run (median) | target reached 99% | weak share of the median time to 99% (per-seed median) |",
             "|---|---|---|---|---|---|---|"]
    weak_median, total_median, seed_share = medians_and_share(result)
    share = "never" if total_median == float("inf") else f"{weak_median / total_median:.0%}"
    clocks = [r["weak_wall_clock_s"] for r in rows if r["weak_wall_clock_s"] is not None]
    flops = [r["weak_flops"] for r in rows if r["weak_flops"] is not None]
    lines.append(f"| {ready}/{n} | {statistics.median(r['rounds'] or 0 for r in rows):g} | "
                 f"{sum(r['judged_ready'] for r in rows)}/{sum(r['judged'] for r in rows)} | "
                 f"{statistics.median(clocks):.1f} [{min(clocks):.1f}–{max(clocks):.1f}] | {statistics.median(flops):.2g} | "
                 f"{reached}/{n} | {share} ({seed_share:.0%}) |")
    lines += ["", "| seed | ready | rounds | candidates | transferred (seed, lr) | its steps | its test acc | "
                  "weak wall-clock s | A, B rate | target: 99% test |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["chosen"] or {}
        lines.append(f"| {r['seed']} | {'yes' if r['ready'] else 'no'} | {r['rounds']} | {r['candidates']} | "
                     f"{c.get('seed', '—')}, {c.get('lr', '—')} | {c.get('steps', '—')} | "
                     f"{c['final_test_acc']:.3f} | " if c else f"| {r['seed']} | no | {r['rounds']} | {r['candidates']} | — | — | — | ")
        lines[-1] += (f"{r['weak_wall_clock_s']:.1f} | {r['ab_rate']} | "
                      f"{r['target_99'] if r['target_99'] is not None else r['target_status']} |")
    hardware = "; ".join(sorted({r["hardware"] for r in rows}))
    lines += ["", f"Wall-clock is the batch the run's weak candidates trained in ({hardware}; on a shared "
                  "machine it includes waiting for the cores); FLOPs count every candidate."]
    return "\n".join(lines) + "\n"


def main() -> None:
    for arg in sys.argv[1:]:
        result = Path(arg)
        (result / "weak_stage.md").write_text(report(result), encoding="utf-8")
        print(f"wrote {result / 'weak_stage.md'}")
    if len(sys.argv) > 2:
        print("| folder | weak stage (median s, [min–max]) | target reached 99% | time to 99%, weak included (median s) |")
        print("|---|---|---|---|")
        for arg in sys.argv[1:]:
            print(study_row(Path(arg)))


if __name__ == "__main__":
    main()
