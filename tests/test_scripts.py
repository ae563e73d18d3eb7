"""The scripts kept for a GPU and for long studies, run at toy size on the CPU: a script that only
runs on a rented GPU or after an hour must not be found broken then."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def dry_run(script: str, out: Path) -> str:
    env = dict(os.environ, DRY_RUN="1", OUT=str(out), OMP_NUM_THREADS="1")
    done = subprocess.run(["bash", str(ROOT / script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return (out / "log.txt").read_text()


def test_gpu_benchmarks_dry_run_writes_every_part(tmp_path):
    log = dry_run("benchmarks/gpu.sh", tmp_path)
    for name in ("single_run", "multirun_full", "multirun_tf32", "fig1b_grid", "compile"):
        json.loads((tmp_path / f"{name}.json").read_text())
    assert log.count(": exit 0 after") == 5, log


def test_gpu_transformer_claims_dry_run_writes_every_claim(tmp_path):
    log = dry_run("benchmarks/gpu_transformers.sh", tmp_path)
    for name in ("table1", "fig8b", "fig16", "fig13"):
        claim = json.loads((tmp_path / name / "claim.json").read_text())
        assert claim["size"] == "quick" and isinstance(claim["holds"], bool), name
    # fig13 is a scratch-only reproduction: the dry run's caps must not add a weak stage to it
    stages = json.loads((tmp_path / "fig13" / "run" / "summary.json").read_text())["stages"]
    assert list(stages) == ["scratch"], stages
    assert log.count(": exit 0 after") == 4, log


def test_paper_scale_study_smoke_writes_its_table(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts/paper_scale_study.py"), "--smoke", "--seeds", "1-3",
                           "--weak-max-steps", "30", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    study = json.loads((tmp_path / "study.json").read_text())
    # 3 figures x 7 readings x 3 seeds x (scratch, GrokTransfer), each read back from its own run
    assert len(study["rows"]) == 126
    assert {row["method"] for row in study["rows"]} == {"scratch", "groktransfer"}
    assert len(study["verdicts"]) == 21
    assert study["weak"]["train"] == {"max_steps": 30}
    # A fraction reading changes the task's training fraction, not the training settings.
    frac = yaml.safe_load((tmp_path / "runs/fig1b/frac20/groktransfer/seed1/config.yaml").read_text())
    assert frac["task"]["train_fraction"] == 0.2 and frac["weak"]["train"]["max_steps"] == 30
    assert "train_fraction" not in frac["target"]["train"]
    assert not list(tmp_path.glob("runs/**/*.safetensors"))
    assert "| fig6b / all three |" in (tmp_path / "README.md").read_text()


def test_ab_rate_rule_table_counts_a_hand_made_study(tmp_path):
    """Four weak models, hand-made: the rule takes 0.05 ×'s outcome after a finished one and
    0.2 ×'s after a short one; the counts below are worked out by hand."""
    header = ("setting,op,seed,weak_test_acc,fourier_top1_share,fourier_odd_share,default_rule,target_99_step\n")
    weak = [("s", "add", "1", "0.99", "0.4", "", "ready"), ("s", "add", "2", "0.80", "0.4", "", "ready"),
            ("s", "mul", "1", "0.66", "0.4", "0.25", "not ready"), ("s", "mul", "2", "0.30", "0.4", "0.5", "not ready")]
    steps = {"slow": ["100", "", "", ""], "fast": ["", "50", "70", ""]}  # which targets reached 99%
    for name, reached in steps.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "models.csv").write_text(header + "".join(
            ",".join(w) + f",{s}\n" for w, s in zip(weak, reached)))
    done = subprocess.run([sys.executable, str(ROOT / "scripts/ab_rate_rule_table.py"), str(tmp_path / "slow"),
                           str(tmp_path / "fast")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in done.stdout.splitlines()
            if line.startswith("| ") and "---" not in line}
    # targets, after finished, after short, agreement, false accepts, false rejects
    assert rows["0.05 × always"] == ["1/4", "1/1", "0/3", "0.75", "1", "0"]
    assert rows["0.2 × always"] == ["2/4", "0/1", "2/3", "0.50", "1", "1"]
    assert rows["by the weak model (read from the two above)"] == ["3/4", "1/1", "2/3", "0.75", "0", "1"]
    # the candidate rule accepts the first three (mul 1: test 0.66 >= 0.65, odd 0.25 >= 0.2): all agree
    assert rows["candidate (test >= 0.65, top-1 <= 0.8, odd >= 0.2)"] == ["3/4", "0", "0", "1.00"]
    only = subprocess.run([sys.executable, str(ROOT / "scripts/ab_rate_rule_table.py"), "--rules-only",
                           str(tmp_path / "slow"), str(tmp_path / "fast")], capture_output=True, text=True, timeout=60)
    assert only.stdout.startswith("| readiness rule") and "| candidate (test >= 0.65" in only.stdout
    assert "always" not in only.stdout


def test_xor_constants_printed_row_repeats_reproduce_xor_and_the_study_is_recorded(tmp_path):
    """The constant search builds its targets on xor_theory's own weak model and generator stream:
    its printed row (m 512, v_init 0.4, lr 2) must equal xor_theory's target exactly, seed by seed;
    the other rows differ only in the target's scale and width."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import xor_constants
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    from groktransfer.xor import xor_theory

    size = dict(p=600, n=400, eps=0.05, n_test=300)
    settings = xor_constants.grid([64], [0.1], [1.0])
    for seed in (0, 1):
        rows = xor_constants.one_seed(seed, settings, **size)
        reference = xor_theory(**size, lemma_trials=0, seed=seed)["target_after_one_step"]
        printed = rows[0]
        assert (printed["width"], printed["v_init"], printed["lr"]) == (512, 0.4, 2.0)
        assert printed["train_acc"] == reference["train_acc"] and printed["test_acc"] == reference["test_acc"]
        assert printed["test_acc_per_cluster"] == reference["test_acc_per_cluster"]
        assert rows[1]["lr"] == 64 ** 0.5 * 0.1
    out = tmp_path / "study"
    assert xor_constants.main(["--out", str(out), "--seeds", "1", "--p", "600", "--n-test", "300",
                               "--widths", "64", "--v-inits", "0.1", "--lr-fractions", "1"]) == 0
    study = json.loads((out / "study.json").read_text())
    assert len(study["rows"]) == 2 and isinstance(study["holds"], bool)
    assert "| 512 (printed) | 0.4 | 2 |" in (out / "table.md").read_text()
