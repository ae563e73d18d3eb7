"""The table of results/ab-rate-seeds20/README.md: GrokTransfer at A, B lr scale 0.2 and 0.05 on seeds 20-29."""
import json
import statistics
from pathlib import Path
D = Path(__file__).resolve().parents[1] / "results" / "ab-rate-seeds20"
print("| target (tuned setting of) | op | A, B lr scale | reached 99% | steps to 99% (median) | failed seeds (best test, weak model's test) |")
print("|---|---|---|---|---|---|")
totals = {}
for part, name in (("narrow", "narrow 32 / 2 × 128 (narrow10-square)"), ("paper", "paper width 128 / 2 × 512 (paper10-square)")):
    for op in ("add", "mul"):
        for scale in ("0.2", "0.05"):
            hits, fails = [], []
            for f in sorted((D / f"{part}-{op}-ab{scale}" / "runs" / "groktransfer").glob("seed*/summary.json")):
                s = json.loads(f.read_text())["stages"]
                t, w = s["target"], s["weak"]
                if t["test_acc_99_step"] is None:
                    fails.append(f"{f.parent.name[4:]} ({t['best_test_acc']:.2f}, {w['final_test_acc']:.2f})")
                else:
                    hits.append(t["test_acc_99_step"])
            n = len(hits) + len(fails)
            med = statistics.median(hits)
            totals[scale] = totals.get(scale, 0) + len(hits)
            print(f"| {name} | {op} | {scale} | {len(hits)}/{n} | {med:g} (reached only) | {', '.join(fails) or '—'} |")
print()
print("Targets at 99%, all four: " + ", ".join(f"{k} ×: {v}/40" for k, v in totals.items()))
