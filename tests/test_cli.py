"""The command line: error paths, tiny runs, plot, and the demo end to end."""

import csv
import json
import subprocess
import sys

import pytest
import yaml

from groktransfer.cli import main
from groktransfer.records import read_metrics

TINY = {
    "name": "tiny",
    "device": "cpu",
    "task": {"op": "add", "p": 11, "train_fraction": 0.5},
    # 20 steps make no weak model ready: transfer from the most accurate of two anyway (with a warning).
    "weak": {"model": {"embed_dim": 4, "width": 8, "depth": 1}, "train": {"max_steps": 20, "lr": 0.01},
             "population": 2, "max_rounds": 1, "if_none_ready": "transfer_best"},
    "target": {"model": {"embed_dim": 16, "width": 16, "depth": 1}, "train": {"max_steps": 20, "lr": 0.01}},
    "scratch": {"model": {"embed_dim": 16, "width": 16, "depth": 1}, "train": {"max_steps": 20, "lr": 0.01}},
}


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def files_under(path):
    return sorted(p.relative_to(path) for p in path.rglob("*"))


def bad_inputs(tmp, tiny):
    (tmp / "exists").mkdir()
    (tmp / "exists" / "keep.txt").write_text("x")
    (tmp / "broken.yaml").write_text("task: {p: [\n")
    (tmp / "list.yaml").write_text("- 1\n- 2\n")
    return [
        (["run", "--preset", "nope", "--out", str(tmp / "o")], "unknown preset; allowed: classic, demo"),
        (["run", "--preset", "demo", "--out", str(tmp / "o"), "target.train.lrr=1"], "unknown key"),
        (["run", "--preset", "demo", "--out", str(tmp / "o"), "target.train.lr=0"], "target.train.lr: got 0.0"),
        (["run", "--preset", "demo", "--out", str(tmp / "o"), "task.op=div", "task.p=48"], "needs a prime"),
        (["run", "--preset", "demo", "--out", str(tmp / "o"), "task.train_fraction=1.5"], "train_fraction"),
        (["run", "--preset", "demo", "--out", str(tmp / "o"), "device=tpu"], "device: got 'tpu'"),
        (["run", str(tmp / "missing.yaml"), "--out", str(tmp / "o")], "not found"),
        (["run", str(tmp / "broken.yaml"), "--out", str(tmp / "o")], "cannot be parsed"),
        (["run", str(tmp / "list.yaml"), "--out", str(tmp / "o")], "expected a mapping"),
        (["run", str(tiny), "--preset", "demo", "--out", str(tmp / "o")], "not both"),
        (["run", "--out", str(tmp / "o")], "give a config file or --preset"),
        (["run", str(tiny), "--out", str(tmp / "exists")], "already exists"),
        (["run", str(tiny), "--out", str(tmp / "o"), "transfer.weak_embedding_file=nowhere.safetensors", "weak=null"],
         "not found"),
        (["run", "--preset", "demo"], "--out"),
        (["frobnicate"], "invalid choice"),
        ([], "a command is required"),
        (["plot", str(tmp / "nothing")], "not a run directory"),
        (["presets", "nope"], "unknown preset"),
    ]


def test_bad_input_gives_one_line_exit_2_and_writes_nothing(tmp_path, tiny_config, capsys):
    cases = bad_inputs(tmp_path, tiny_config)
    before = files_under(tmp_path)
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("groktransfer: error: "), (argv, err)
        assert expected in lines[0], (argv, lines[0])
        assert files_under(tmp_path) == before, argv


def test_entry_point_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "groktransfer.cli", "run", "--preset", "nope", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_run_writes_every_record_and_plot_redraws(tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    assert main(["run", str(tiny_config), "--out", str(out), "--no-progress"]) == 0
    assert "GrokTransfer (weak + target)" in capsys.readouterr().out
    for name in ("config.yaml", "metrics.csv", "summary.json", "weak_embedding.safetensors", "accuracy.png", "loss.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    for stage in ("weak", "target", "scratch"):
        for key in ("status", "train_acc_95_step", "test_acc_95_step", "test_acc_99_step", "time_gap",
                    "final_train_acc", "final_test_acc", "wall_clock_s"):
            assert key in summary["stages"][stage], (stage, key)
    for key in ("groktransfer_version", "git_commit", "torch_version", "device"):
        assert key in summary
    assert summary["total_wall_clock_s"] == pytest.approx(sum(s["wall_clock_s"] for s in summary["stages"].values()))
    gt = summary["groktransfer"]
    assert gt["wall_clock_s"] == pytest.approx(
        summary["stages"]["weak"]["wall_clock_s"] + summary["stages"]["target"]["wall_clock_s"]
    )
    metrics = read_metrics(out)
    assert set(metrics) == {"weak", "target", "scratch"}
    assert metrics["target"][-1]["test_acc"] == summary["stages"]["target"]["final_test_acc"]
    diagnostics = list(csv.DictReader(open(out / "diagnostics.csv")))
    target_names = {r["name"] for r in diagnostics if r["stage"] == "target"}
    assert {"embedding_rank", "embedding_cka_to_weak", "softmax_collapse", "norm/embedding.B"} <= target_names
    assert "embedding_rank" not in {r["name"] for r in diagnostics if r["stage"] == "scratch"}
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["target"]["train"]["betas"] == [0.9, 0.999]  # defaults are written out

    (out / "accuracy.png").unlink()
    assert main(["plot", str(out)]) == 0
    assert (out / "accuracy.png").is_file()

    # Refused without --overwrite; replaced with it.
    assert main(["run", str(tiny_config), "--out", str(out), "--no-progress"]) == 2
    assert main(["run", str(tiny_config), "--out", str(out), "--no-progress", "--overwrite"]) == 0


def test_run_resume_continues_only_the_same_config(tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    assert main(["run", str(tiny_config), "--out", str(out), "--no-progress"]) == 0
    assert main(["run", str(tiny_config), "--out", str(out), "--no-progress", "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out
    before = (out / "summary.json").read_text()
    assert main(["run", str(tiny_config), "--out", str(out), "--resume", "target.train.lr=0.5"]) == 2
    assert "the config differs" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == before


def test_presets_command_lists_and_prints(capsys):
    assert main(["presets"]) == 0
    listing = capsys.readouterr().out
    assert "fig1b" in listing and "classic" in listing
    lines = [line for line in listing.splitlines() if line and not line.startswith("`")]
    assert all(len(line) <= 100 for line in lines)  # a description is cut to the line, not printed whole
    assert len({line.index(line.split()[1]) for line in lines}) == 1  # one column, whatever the names' length
    assert main(["presets", "fig6b"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["task"] == {"kind": "modular", "op": "mul", "p": 113, "train_fraction": 0.25, "data_seed": 0}
    assert main(["presets", "fig6c"]) == 0  # a parity task shows its own fields, and the full description
    shown = capsys.readouterr().out
    assert set(yaml.safe_load(shown)["task"]) == {"kind", "n_bits", "k", "n_train", "n_test", "data_seed"}
    assert "stop close to 70%" in shown


def test_demo_removes_grokking_and_the_target_reruns_from_the_saved_embedding(tmp_path, capsys):
    """The qualitative claim, on the demo's fixed seeds: scratch groks, GrokTransfer does not."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Time Gap" in printed and str(out / "accuracy.png") in printed
    stages = json.loads((out / "summary.json").read_text())["stages"]
    scratch, target = stages["scratch"], stages["target"]
    # Scratch memorises early and generalises much later: that is grokking.
    assert scratch["train_acc_95_step"] < 200 and scratch["time_gap"] > 2000
    # The transferred target generalises soon after it fits.
    assert target["test_acc_95_step"] is not None and target["time_gap"] * 5 < scratch["time_gap"]
    assert target["final_test_acc"] >= 0.99

    # The target stage reruns from the saved weak embedding alone, with the same result.
    again = tmp_path / "again"
    argv = ["run", "--preset", "demo", "--out", str(again), "--no-progress", "weak=null", "scratch=null",
            f"transfer.weak_embedding_file={out / 'weak_embedding.safetensors'}"]
    assert main(argv) == 0
    rerun = read_metrics(again)["target"]
    first = read_metrics(out)["target"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]  # noqa: E731
    assert strip(rerun) == strip(first)
    summary = json.loads((again / "summary.json").read_text())
    assert summary["groktransfer"]["weak_stage"] == "file" and "weak" not in summary["stages"]


def test_a_diverged_weak_stage_skips_the_target(tmp_path, capsys):
    out = tmp_path / "nan"
    argv = ["run", "--preset", "demo", "--out", str(out), "--no-progress", "task.p=11", "scratch=null",
            "weak.train.lr=1e30", "weak.train.max_steps=20"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stages"]["weak"]["status"] == "diverged" and "target" not in summary["stages"]
    assert any("diverged" in w for w in summary["warnings"]) and summary["complete"]
    assert "the target stage was skipped" in capsys.readouterr().out


def test_a_closed_pipe_ends_quietly():
    """`groktransfer presets | head`: the reader is gone before the output is written; the command
    stops with exit 0 and says nothing (as Unix tools do), not 'cannot write: Broken pipe'."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "groktransfer.cli", "presets"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


def test_resume_plot_and_inspect_find_the_run_inside_a_reproduction(tmp_path, tiny_config, capsys):
    """A reproduction keeps its run in OUT/run; pointed at OUT, resume, plot and inspect-weak use
    it (and say so); pointed at a folder of runs, the error names the runs inside."""
    out = tmp_path / "repro"
    assert main(["run", str(tiny_config), "--out", str(out / "run"), "--no-progress"]) == 0
    capsys.readouterr()
    for command in (["resume", str(out), "--no-progress"], ["plot", str(out)], ["inspect-weak", str(out)]):
        assert main(command) == 0, command
        assert "using the reproduction's run directory" in capsys.readouterr().out
    assert main(["resume", str(tmp_path)]) == 2
    assert "runs inside it" not in capsys.readouterr().err  # tmp_path/repro/run is two levels down
    assert main(["plot", str(out.parent / "repro" / "run" / "..")]) == 0


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["run", "--help"], ["run", "--bogus"], []],
                         ids=["help", "version", "run-help", "usage-error", "no-command"])
def test_help_version_and_usage_errors_answer_without_importing_torch(argv):
    """The command line answers these from the parser alone (groktransfer.cli), so a user waits
    for the interpreter, not for torch and matplotlib (checked by module, not by time)."""
    probe = ("import sys\nfrom groktransfer.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "heavy = sorted({'torch', 'matplotlib', 'numpy'} & set(sys.modules))\n"
             "print('HEAVY:' + ','.join(heavy), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60)
    assert "HEAVY:\n" in done.stderr, done.stderr
    import groktransfer

    assert groktransfer.train.__module__ == "groktransfer.engine"  # the lazy API still resolves


def test_inspect_weak_names_a_damaged_summary_instead_of_a_traceback(tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    assert main(["run", str(tiny_config), "--out", str(out), "--no-progress"]) == 0
    for damage in ("{garbage", "[1, 2]"):
        (out / "summary.json").write_text(damage)
        capsys.readouterr()
        assert main(["inspect-weak", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "summary.json' is damaged" in err
    assert main(["inspect-weak", str(out / "weak_embedding.safetensors")]) == 0  # the way out it names


def test_a_redrawn_plot_keeps_the_runs_name_as_its_title(tmp_path, monkeypatch):
    from groktransfer import plots

    run = tmp_path / "some-folder"
    run.mkdir()
    (run / "config.yaml").write_text("name: my run\n")
    (run / "metrics.csv").write_text("stage,step,train_loss,train_acc,test_loss,test_acc,weight_norm,elapsed_s\n"
                                     "target,0,1.0,0.1,1.0,0.1,1.0,0.0\ntarget,1,0.5,0.5,0.6,0.4,1.0,0.1\n")
    titles = []
    monkeypatch.setattr(plots, "_draw", lambda stages, keys, ylabel, path, title, log_y: titles.append(title))
    assert main(["plot", str(run)]) == 0
    assert titles == ["my run", "my run"]  # not the folder's name
    (run / "config.yaml").write_text("{damaged")
    assert main(["plot", str(run)]) == 0 and titles[-1] == "some-folder"  # a damaged config: the folder's name
