"""compare and tune end to end on a tiny task, and their statistics."""

import csv
import itertools
import json
import random

import pytest
import yaml

from groktransfer import ConfigError
from groktransfer.cli import main
from groktransfer.compare import censored_stats, load_comparison, method_components, method_run_config, quantile
from groktransfer.tune import load_grid, method_space, objective, score

TINY = ["task.p=11", "task.train_fraction=0.5", "train.max_steps=40", "weak.train.max_steps=30", "train.eval_every=10",
        "weak.max_rounds=1", "weak.if_none_ready=transfer_best"]  # 30 weak steps make nothing ready: transfer anyway


def test_quantiles_with_never_reached_seeds():
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.25) == pytest.approx(1.75)  # numpy's linear rule
    stats = censored_stats([10, None, 30, None, 20])
    assert stats["median"] == 30 and stats["q25"] == 20 and stats["q75"] is None and stats["n_reached"] == 3
    assert censored_stats([None, None, 5])["median"] is None


def test_method_combinations():
    assert method_components("groktransfer+grokfast-ema") == ["groktransfer", "grokfast-ema"]
    for bad, message in [("grokfast-ema+grokfast-ma", "one GrokFast filter"), ("scratch+orthograd", "combines with nothing"),
                         ("orthograd+orthograd", "twice"), ("adam", "unknown")]:
        with pytest.raises(ConfigError, match=message):
            method_components(bad)


def test_every_method_shares_the_seed_split_budget_and_architecture():
    spec = load_comparison("demo")
    configs = {m: method_run_config(spec, m, 3) for m in ("scratch", "grokfast-ma", "omnigrok", "groktransfer")}
    stages = {m: (c.target or c.scratch) for m, c in configs.items()}
    assert {c.seed for c in configs.values()} == {3} and {c.task.data_seed for c in configs.values()} == {3}
    assert len({s.train.max_steps for s in stages.values()}) == 1
    assert len({(s.model.embed_dim, s.model.width, s.model.depth) for s in stages.values()}) == 1
    assert stages["omnigrok"].train.weight_decay == 0.0 and stages["omnigrok"].methods.norm_constraint == 1.0
    assert stages["grokfast-ma"].methods.grokfast.filter == "ma"
    assert configs["groktransfer"].weak is not None and configs["scratch"].weak is None
    with pytest.raises(ConfigError, match="fixed by the comparison"):
        method_run_config(spec, "scratch", 0, {"train": {"max_steps": 5}})


def test_a_comparison_without_a_weak_stage_transfers_a_saved_embedding(tmp_path, capsys):
    """`weak=null transfer.weak_embedding_file=F` works in a comparison as it does in `run`."""
    import torch

    from groktransfer.transfer import save_weak_embedding

    path = tmp_path / "w.safetensors"
    save_weak_embedding(torch.randn(11, 4), path)
    spec = load_comparison("demo", ["weak=null", f"transfer.weak_embedding_file={path}"])
    config = method_run_config(spec, "groktransfer", 2)
    assert config.weak is None and config.transfer.weak_embedding_file == str(path)
    assert method_run_config(spec, "scratch", 2).weak is None
    with pytest.raises(ConfigError, match="the comparison has no weak stage"):
        method_run_config(spec, "groktransfer", 2, {"weak": {"population": 2}})
    out = tmp_path / "cmp"
    argv = ["compare", "--spec", "demo", "--methods", "groktransfer", "--seeds", "1", "--out", str(out), "--no-progress",
            "task.p=11", "task.train_fraction=0.5", "train.max_steps=20", "train.eval_every=10", "weak=null",
            f"transfer.weak_embedding_file={path}"]
    assert main(argv) == 0
    summary = json.loads((out / "runs" / "groktransfer" / "seed0" / "summary.json").read_text())
    assert set(summary["stages"]) == {"target"}  # no weak stage ran


def test_when_no_configuration_reaches_the_target_the_closest_one_wins():
    from groktransfer.tune import rank_key

    keys = [rank_key([None, None], [0.30, 0.50], 0), rank_key([None, None], [0.60, 0.80], 1),
            rank_key([None, None], [0.10, 0.20], 2)]
    assert min(range(3), key=lambda i: keys[i]) == 1  # mean best test accuracy 0.7 beats 0.4 and 0.15
    # ... but any success beats every failure, and fewer failures beat a faster mean.
    assert rank_key([900.0, None], [0.99, 0.1], 3) < keys[1]
    assert rank_key([900.0, 800.0], [0.99, 0.99], 4) < rank_key([100.0, None], [0.99, 0.99], 5)
    assert rank_key([None], [None], 6)[2] == 0.0  # a run with no evaluation counts as accuracy 0


def test_search_spaces_and_scores():
    grid = {"train.lr": [0.1, 0.2], "train.weight_decay": [0.0, 1.0]}
    assert len(method_space("scratch", grid)) == 4
    assert len(method_space("grokfast-ema", grid)) == 4 * 6
    omni = method_space("omnigrok", grid)
    assert len(omni) == 2 * 3 and all("train.weight_decay" not in p for p in omni)
    assert score([10, 20]) < score([5, None]) < score([None, None])


def test_compare_end_to_end(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--spec", "demo", "--methods", "scratch,grokfast-ema,groktransfer", "--seeds", "2",
            "--out", str(out), "--no-progress", *TINY]
    assert main(argv) == 0
    assert "| groktransfer |" in capsys.readouterr().out
    record = json.loads((out / "compare.json").read_text())
    assert record["seeds"] == [0, 1] and set(record["aggregate"]) == {"scratch", "grokfast-ema", "groktransfer"}
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert len(rows) == 6
    # The aggregate's median is the median of the per-run numbers it reports.
    for method in record["methods"]:
        gaps = [record["per_run"][method][s]["train_acc_95_step"] for s in ("0", "1")]
        stats = record["aggregate"][method]["train_acc_95_step"]
        if None not in gaps:
            assert stats["median"] == pytest.approx(sum(gaps) / 2)
    for name in ("table.md", "test_accuracy.png", "time_to_99.png"):
        assert (out / name).is_file()
    # GrokTransfer's cost includes its weak stage.
    gt_run = json.loads((out / "runs" / "groktransfer" / "seed0" / "summary.json").read_text())
    assert record["per_run"]["groktransfer"]["0"]["wall_clock_s"] == pytest.approx(
        gt_run["stages"]["weak"]["wall_clock_s"] + gt_run["stages"]["target"]["wall_clock_s"])
    # A second call reuses every finished run.
    stamp = (out / "runs" / "scratch" / "seed1" / "summary.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "runs" / "scratch" / "seed1" / "summary.json").stat().st_mtime_ns == stamp


def test_tune_end_to_end_and_compare_reads_its_result(tmp_path):
    out = tmp_path / "tune"
    argv = ["tune", "--spec", "demo", "--methods", "scratch,omnigrok", "--seeds", "0,1", "--configs", "2",
            "--out", str(out), "--no-progress", "--metric", "train_acc_95_step", *TINY]
    assert main(argv) == 0
    best = yaml.safe_load((out / "best.yaml").read_text())
    trials = list(csv.DictReader(open(out / "trials.csv")))
    assert len(trials) == 4 and {t["method"] for t in trials} == {"scratch", "omnigrok"}
    # The winner is the trial with the fewest failures, then the lowest mean, then the best test accuracy.
    scratch = sorted((t for t in trials if t["method"] == "scratch"),
                     key=lambda t: (int(t["failures"]), float(t["mean_reached"]), -float(t["mean_best_test_acc"]),
                                    int(t["trial"])))
    winner = json.loads(scratch[0]["params"])
    assert best["hyperparameters"]["scratch"]["train"]["lr"] == winner["train.lr"]
    assert json.loads((out / "tune.json").read_text())["configs_per_method"] == {"scratch": 2, "omnigrok": 2}
    trials = list(csv.DictReader(open(out / "trials.csv")))
    assert all(json.loads(t["params"]) for t in trials)  # every configuration comes from the grid

    cmp_out = tmp_path / "cmp"
    assert main(["compare", "--spec", "demo", "--methods", "scratch", "--seeds", "1", "--out", str(cmp_out),
                 "--tuned", str(out / "best.yaml"), "--no-progress", *TINY]) == 0
    record = json.loads((cmp_out / "compare.json").read_text())
    assert record["hyperparameters"]["scratch"]["scratch"]["train"]["lr"] == winner["train.lr"]


def test_tune_with_optuna_keeps_the_budget_and_continues_its_study(tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    out = tmp_path / "tune"
    argv = ["tune", "--spec", "demo", "--methods", "scratch", "--seeds", "0,1", "--configs", "3", "--with-defaults",
            "--search", "optuna", "--trials-at-once", "2", "--out", str(out), "--no-progress",
            "--metric", "train_acc_95_step", *TINY]
    assert main(argv) == 0
    assert "Optuna proposes trials 1–2 (of 3)" in capsys.readouterr().out  # two trials asked and trained together
    trials = list(csv.DictReader(open(out / "trials.csv")))
    assert [t["trial"] for t in trials] == ["0", "1", "2"] and trials[0]["params"] == "{}"  # the method's own setting
    proposed = [json.loads(t["params"]) for t in trials[1:]]
    assert proposed[0] != proposed[1]  # distinct configurations
    space = method_space("scratch", load_grid("small"))
    assert all(point in space for point in proposed)
    assert json.loads((out / "tune.json").read_text())["search"] == "optuna"
    # The study is on disk: its scores are the selection rule's, and a second call trains nothing new.
    study = optuna.load_study(study_name="scratch", storage=f"sqlite:///{out / 'optuna.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [t.params for t in done] == proposed
    for trial, row in zip(done, trials[1:]):
        assert trial.value == pytest.approx(objective(json.loads(row["values"]), [float(row["mean_best_test_acc"])] * 2))
    study.ask()  # a trial asked before an interruption
    stamp = (out / "trials" / "scratch" / "trial0002" / "seed1" / "summary.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "trials" / "scratch" / "trial0002" / "seed1" / "summary.json").stat().st_mtime_ns == stamp
    states = [t.state for t in optuna.load_study(study_name="scratch", storage=f"sqlite:///{out / 'optuna.db'}").trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2 and optuna.trial.TrialState.RUNNING not in states


def test_optuna_search_needs_a_budget(tmp_path, capsys):
    out = tmp_path / "tune"
    assert main(["tune", "--spec", "demo", "--methods", "scratch", "--search", "optuna", "--out", str(out)]) == 2
    assert "--configs" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "--methods", "adam", "--out", "X"], "unknown"),
        (["compare", "--methods", "scratch", "--seeds", "x", "--out", "X"], "--seeds"),
        (["compare", "--methods", "scratch", "--spec", "nope", "--out", "X"], "unknown comparison"),
        (["compare", "--methods", "scratch", "--out", "X", "train.lr=-1"], "train.lr"),
        (["compare", "--methods", "scratch", "--out", "X", "--tuned", "missing.yaml"], "not found"),
        (["tune", "--methods", "scratch", "--grid", "huge", "--out", "X"], "--grid"),
        (["tune", "--methods", "scratch", "--metric", "speed", "--out", "X"], "--metric"),
        (["tune", "--methods", "scratch", "--configs", "0", "--out", "X"], "--configs"),
    ],
)
def test_sweep_bad_input(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "X").exists()


def test_a_diverging_run_does_not_stop_the_sweep(tmp_path):
    from groktransfer import load_comparison, run_comparison

    spec = load_comparison("demo", TINY)
    tuned = {"orthograd": {"train": {"lr": 1e30}}}  # this method's runs blow up
    record = run_comparison(spec, ["orthograd", "scratch"], [0, 1], tmp_path / "cmp", tuned=tuned)
    assert {r["status"] for r in record["per_run"]["orthograd"].values()} == {"diverged"}
    assert {r["status"] for r in record["per_run"]["scratch"].values()} == {"max_steps"}
    assert record["aggregate"]["orthograd"]["success_95"] == 0.0


def test_tune_with_defaults_tries_each_methods_own_setting_first(tmp_path):
    out = tmp_path / "tune"
    argv = ["tune", "--spec", "demo", "--methods", "scratch,grokfast-ema", "--seeds", "1", "--configs", "2",
            "--with-defaults", "--out", str(out), "--no-progress", *TINY]
    assert main(argv) == 0
    trials = list(csv.DictReader(open(out / "trials.csv")))
    assert [(t["method"], t["trial"]) for t in trials] == [("scratch", "0"), ("scratch", "1"), ("grokfast-ema", "0"),
                                                            ("grokfast-ema", "1")]
    assert [json.loads(t["params"]) == {} for t in trials] == [True, False, True, False]
    # Trial 0 ran the spec's own setting: GrokFast's recommended weight decay of 0.005.
    import yaml

    config = yaml.safe_load((out / "trials" / "grokfast-ema" / "trial0000" / "seed0" / "config.yaml").read_text())
    assert config["scratch"]["train"]["weight_decay"] == 0.005


def test_a_huge_grid_is_sampled_not_listed(tmp_path, capsys):
    """A small grid file can describe 10^8 configurations: --configs K draws K distinct ones
    (each a point of the grid, decoded as itertools.product orders them), and without --configs
    the command is refused with one line instead of running out of memory."""
    from groktransfer.tune import draw_configurations, point_at

    small = {"a": [1, 2, 3], "b": ["x", "y"], "c": [0.1, 0.2, 0.3, 0.4]}
    listed = list(itertools.product(*small.values()))
    assert [tuple(point_at(small, i).values()) for i in range(len(listed))] == listed
    # a space small enough is still listed and shuffled whole, as every recorded tuning drew it
    expected = method_space("scratch", load_grid("small"))
    random.Random(0).shuffle(expected)
    assert draw_configurations("scratch", load_grid("small"), 3, 0) == expected[:3]
    huge = {f"train.betas_{i}": list(range(10)) for i in range(8)}  # 10^8 points
    points = draw_configurations("scratch", huge, 2, 0)
    assert len(points) == 2 and points[0] != points[1]
    assert all(set(p) == set(huge) and all(p[k] in huge[k] for k in p) for p in points)
    grid = tmp_path / "huge.yaml"
    grid.write_text("".join(f"train.lr_{i}: [{', '.join(str(v) for v in range(10))}]\n" for i in range(8)))
    code = main(["tune", "--spec", "demo", "--methods", "scratch", "--grid", str(grid), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "scratch's search space holds 100,000,000 configurations; give --configs K" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory", "other grid", "other values"])
def test_a_damaged_or_foreign_optuna_study_is_refused_with_one_line(tmp_path, capsys, damage):
    pytest.importorskip("optuna")
    out = tmp_path / "tune"
    argv = ["tune", "--spec", "demo", "--methods", "scratch", "--seeds", "1", "--configs", "2", "--search", "optuna",
            "--out", str(out), "--no-progress", *TINY]
    database = out / "optuna.db"
    if damage in ("other grid", "other values"):
        assert main(argv) == 0
        grid = tmp_path / "grid.yaml"
        grid.write_text("train.weight_decay: [0.5, 2.0]\n" if damage == "other grid" else
                        "model.init_scale: [0.5, 1.0]\ntrain.lr: [0.001, 0.03]\ntrain.weight_decay: [0.1, 1.0]\n")
        argv += ["--grid", str(grid)]
    else:
        out.mkdir()
        if damage == "garbage":
            database.write_bytes(b"this is not a database" * 100)
        elif damage == "truncated":
            assert main(argv) == 0
            database.write_bytes(database.read_bytes()[:1000])
        else:
            database.mkdir()
    capsys.readouterr()
    before = database.read_bytes() if database.is_file() else None
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "optuna.db" in err and "Traceback" not in err, err
    assert (database.read_bytes() if database.is_file() else None) == before  # the study is left as it was


def test_optuna_never_trains_a_configuration_twice_when_the_space_is_smaller_than_asked(tmp_path, capsys):
    pytest.importorskip("optuna")
    grid = tmp_path / "grid.yaml"
    grid.write_text("train.lr: [0.001, 0.01]\n")  # two configurations for scratch
    out = tmp_path / "tune"
    assert main(["tune", "--spec", "demo", "--methods", "scratch", "--seeds", "1", "--configs", "5", "--search",
                 "optuna", "--grid", str(grid), "--out", str(out), "--no-progress", *TINY]) == 0
    assert "holds 2 configurations" in capsys.readouterr().out
    params = [t["params"] for t in csv.DictReader(open(out / "trials.csv"))]
    assert len(params) == 2 and len(set(params)) == 2
