"""Sweeps: batched pipeline runs equal run_experiment's, grouping, reuse and the choice of K."""

import dataclasses
import json

import pytest
import torch

from groktransfer.cli import main
from groktransfer.config import ConfigError, run_config_from_dict
from groktransfer.pipeline import run_experiment
from groktransfer.presets import load_preset
from groktransfer.records import read_metrics
from groktransfer.sweep import choose_parallel, parse_parallel, run_many, sweep_key

# The tiny runs stop their weak models long before they are ready, which the pipeline warns about.
pytestmark = pytest.mark.filterwarnings("ignore::groktransfer.pipeline.WeakModelWarning")


def tiny_config(seed, **changes):
    data = load_preset("demo").to_dict()
    data.update(seed=seed, device="cpu", name=f"tiny{seed}")
    data["task"].update(p=17, data_seed=seed)
    for stage in ("weak", "target", "scratch"):
        data[stage]["train"].update(max_steps=120, dtype="float64", eval_dense_until=20, eval_every=10)
    # One weak model per run, transferred whatever it became (populations: tests/test_weak_stage.py).
    data["weak"].update(population=1, max_rounds=1, if_none_ready="transfer_best")
    for key, value in changes.items():
        node = data
        *path, last = key.split(".")
        for part in path:
            node = node[part]
        node[last] = value
    return run_config_from_dict(data)


def test_batched_pipeline_writes_what_run_experiment_writes(tmp_path):
    configs = [tiny_config(0), tiny_config(1, **{"weak.train.lr": 0.02, "target.model.init_scale": 0.8}),
               tiny_config(2, **{"scratch.train.weight_decay": 0.3})]
    expected = [run_experiment(c, tmp_path / f"alone{i}", plots=False) for i, c in enumerate(configs)]
    got = run_many([(c, tmp_path / f"together{i}") for i, c in enumerate(configs)], parallel=3)
    for i, (a, b) in enumerate(zip(expected, got)):
        assert list(b["stages"]) == list(a["stages"]) == ["weak", "target", "scratch"]
        for stage in a["stages"]:
            assert b["stages"][stage]["batch_runs"] == 3
            for key in ("status", "steps", "train_acc_95_step", "time_gap", "flops"):
                assert b["stages"][stage][key] == a["stages"][stage][key], (i, stage, key)
        alone, together = read_metrics(tmp_path / f"alone{i}"), read_metrics(tmp_path / f"together{i}")
        for stage, rows in alone.items():
            assert [r["step"] for r in together[stage]] == [r["step"] for r in rows]
            for r, s in zip(rows, together[stage]):
                assert s["train_loss"] == pytest.approx(r["train_loss"], rel=1e-9)
                assert s["test_acc"] == pytest.approx(r["test_acc"], abs=1e-12)
        names = {p.name for p in (tmp_path / f"together{i}").iterdir()}
        assert {"config.yaml", "metrics.csv", "diagnostics.csv", "summary.json", "weak_embedding.safetensors"} <= names
        saved = (tmp_path / f"together{i}" / "config.yaml").read_text()
        assert saved == (tmp_path / f"alone{i}" / "config.yaml").read_text()


def test_runs_that_share_a_weak_stage_train_it_once(tmp_path, monkeypatch):
    """Two trials that only change the target (and a third with another seed) in one batch: the
    weak stage trains twice, not three times, and both sharers transfer the same embedding,
    equal to what each would get alone."""
    import groktransfer.sweep as sweep

    trained = []
    real = sweep.train_weak_stages

    def counting(jobs, **kwargs):
        trained.extend(seed for _, _, seed in jobs)
        return real(jobs, **kwargs)

    monkeypatch.setattr(sweep, "train_weak_stages", counting)
    configs = [tiny_config(0), tiny_config(0, **{"target.train.lr": 0.003}), tiny_config(1)]
    got = run_many([(c, tmp_path / f"run{i}") for i, c in enumerate(configs)], parallel=3)
    assert sorted(trained) == [0, 1]
    assert [g["stages"]["weak"]["shared_by_runs"] for g in got] == [2, 2, 1]
    alone = run_experiment(configs[1], tmp_path / "alone", plots=False)
    for summary in got[:2]:
        for key in ("steps", "final_test_acc", "flops"):
            assert summary["stages"]["weak"][key] == alone["stages"]["weak"][key]
    assert got[1]["stages"]["target"]["steps"] == alone["stages"]["target"]["steps"]
    assert got[1]["stages"]["target"]["final_train_loss"] == pytest.approx(
        alone["stages"]["target"]["final_train_loss"], rel=1e-9)


def test_only_per_run_settings_may_differ_within_a_batch():
    base = tiny_config(0)
    assert sweep_key(base) == sweep_key(tiny_config(5, **{"target.train.lr": 0.5, "weak.model.init_scale": 2.0}))
    assert sweep_key(base) != sweep_key(tiny_config(0, **{"target.model.width": 64}))
    assert sweep_key(base) != sweep_key(tiny_config(0, **{"scratch.train.max_steps": 50}))


def test_targets_from_different_weak_embedding_files_train_together_as_they_would_alone(tmp_path):
    from groktransfer.pipeline import build_model
    from groktransfer.tasks import build_task
    from groktransfer.transfer import save_weak_embedding

    base = tiny_config(0)
    task = build_task(base.task)
    files = []
    for seed in (3, 4):
        weak = build_model(base.weak, task, seed)
        files.append(tmp_path / f"weak{seed}.safetensors")
        save_weak_embedding(weak, files[-1], metadata={"step": 0, "test_acc": 0.0})
    configs = [tiny_config(0, **{"weak": None, "scratch": None, "transfer.weak_embedding_file": str(f)}) for f in files]
    assert sweep_key(configs[0]) == sweep_key(configs[1])
    assert sweep_key(configs[0]) != sweep_key(tiny_config(0, **{"scratch": None}))  # a file vs a weak stage
    alone = [run_experiment(c, tmp_path / f"alone{i}", plots=False) for i, c in enumerate(configs)]
    together = run_many([(c, tmp_path / f"together{i}") for i, c in enumerate(configs)], parallel=2)
    assert [s["stages"]["target"]["batch_runs"] for s in together] == [2, 2]
    for a, b in zip(alone, together):
        assert b["stages"]["target"]["final_train_loss"] == pytest.approx(a["stages"]["target"]["final_train_loss"],
                                                                          rel=1e-9)
    assert alone[0]["stages"]["target"]["final_train_loss"] != alone[1]["stages"]["target"]["final_train_loss"]


def test_finished_runs_are_reused_and_mixed_groups_run_in_order(tmp_path):
    configs = [tiny_config(0), tiny_config(1, **{"target.model.width": 64}), tiny_config(2)]
    jobs = [(c, tmp_path / f"run{i}") for i, c in enumerate(configs)]
    first = run_many(jobs, parallel=2)
    assert [s["name"] for s in first] == ["tiny0", "tiny1", "tiny2"]
    assert "batch_runs" not in first[1]["stages"]["target"]  # alone in its group: the sequential pipeline
    assert first[0]["stages"]["target"]["batch_runs"] == 2
    stamp = (tmp_path / "run0" / "summary.json").stat().st_mtime_ns
    again = run_many(jobs, parallel=2)
    assert again == first and (tmp_path / "run0" / "summary.json").stat().st_mtime_ns == stamp

    # A run saved before an option existed (its config.yaml lacks the key) is the same config
    # when the option's default is what ran; a changed value is not.
    import yaml

    from groktransfer.sweep import reusable

    saved = yaml.safe_load((tmp_path / "run0" / "config.yaml").read_text())
    for stage in ("weak", "target", "scratch"):
        del saved[stage]["train"]["compile"], saved[stage]["train"]["entk_probe"]
    (tmp_path / "run0" / "config.yaml").write_text(yaml.safe_dump(saved))
    assert reusable(configs[0], tmp_path / "run0") == "complete"
    saved["target"]["train"]["lr"] = 0.5
    (tmp_path / "run0" / "config.yaml").write_text(yaml.safe_dump(saved))
    assert reusable(configs[0], tmp_path / "run0") is None
    # Transfer settings only matter where a target trains: a scratch-only run is the same run without them.
    saved["target"]["train"]["lr"] = configs[0].target.train.lr
    saved["transfer"]["ab_lr_scale"] = 1.0
    (tmp_path / "run0" / "config.yaml").write_text(yaml.safe_dump(saved))
    assert reusable(configs[0], tmp_path / "run0") is None
    saved["target"] = None
    (tmp_path / "run0" / "config.yaml").write_text(yaml.safe_dump(saved))
    assert reusable(dataclasses.replace(configs[0], target=None), tmp_path / "run0") == "complete"


def test_auto_parallel_batches_small_runs_on_cpu_and_fits_memory_on_cuda():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert choose_parallel(8, cpu, step_flops=1e6, bytes_per_run=1e6, free_bytes=None) == 8
    assert choose_parallel(8, cpu, step_flops=1e10, bytes_per_run=1e6, free_bytes=None) == 1
    assert choose_parallel(1000, cuda, step_flops=1e10, bytes_per_run=1e8, free_bytes=8e9) == 40
    assert choose_parallel(1000, cuda, step_flops=1e10, bytes_per_run=1e6, free_bytes=80e9) == 256
    assert choose_parallel(1000, cuda, step_flops=1e10, bytes_per_run=1e12, free_bytes=8e9) == 1
    assert parse_parallel("auto") == "auto" and parse_parallel("4") == 4
    for bad in ("0", "-2", "many"):
        with pytest.raises(ConfigError, match="--parallel"):
            parse_parallel(bad)


def test_cli_run_seeds_writes_one_directory_per_seed_and_a_table(tmp_path, capsys):
    out = tmp_path / "seeds"
    args = ["run", "--preset", "demo", "--out", str(out), "--seeds", "0,2", "--no-progress", "device=cpu",
            "task.p=17", "weak.train.max_steps=60", "target.train.max_steps=60", "scratch.train.max_steps=60",
            "weak.max_rounds=1", "weak.if_none_ready=transfer_best"]
    assert main(args) == 0
    table = (out / "seeds.md").read_text()
    assert table.splitlines()[0].split()[:2] == ["seed", "stage"] and len(table.splitlines()) == 2 + 2 * 3
    for seed in (0, 2):
        summary = json.loads((out / f"seed{seed}" / "summary.json").read_text())
        assert summary["complete"]
        config = (out / f"seed{seed}" / "config.yaml").read_text()
        assert f"seed: {seed}" in config and f"data_seed: {seed}" in config
    assert main(args) == 2  # the directory exists now: refused without --overwrite or --resume
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0  # everything finished: reused


def test_a_batch_out_of_gpu_memory_is_split_and_restarted_from_the_initial_weights(tmp_path, monkeypatch):
    import groktransfer.sweep as sweep

    configs = [tiny_config(s, **{"weak": None, "target": None}) for s in range(4)]
    expected = run_many([(c, tmp_path / f"two{i}") for i, c in enumerate(configs)], parallel=2)
    real = sweep.train_many
    sizes = []

    def small_gpu(specs, **kwargs):
        sizes.append(len(specs))
        results = real(specs, **kwargs)  # trains (and writes final weights back) before "running out"
        if len(specs) > 2:
            raise torch.cuda.OutOfMemoryError("simulated")
        return results

    monkeypatch.setattr(sweep, "train_many", small_gpu)
    got = run_many([(c, tmp_path / f"four{i}") for i, c in enumerate(configs)], parallel=4)
    assert sizes == [4, 2, 2]
    for a, b in zip(expected, got):
        assert b["stages"]["scratch"]["batch_runs"] == 2
        for key in ("steps", "final_train_loss", "final_test_acc", "train_acc_95_step"):
            assert b["stages"]["scratch"][key] == a["stages"]["scratch"][key]


def test_a_signal_stops_a_batch_group_that_trains_its_runs_one_at_a_time(tmp_path):
    """`run --seeds` on the CPU batches the weak stages and trains the larger targets one at a
    time; SIGINT there used to be swallowed (the run went on to the end and exited 0). Now it
    stops at the next step with exit code 130, and nothing of the batch is written as complete."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "seeds"
    proc = subprocess.Popen(
        [sys.executable, "-m", "groktransfer.cli", "run", "--preset", "demo", "--seeds", "2", "--out", str(out),
         "--no-progress", "weak.train.max_steps=40", "weak.max_rounds=1", "weak.if_none_ready=transfer_best",
         "weak.train.stop_at_test_acc=null"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "[sweep] 2 runs together ..." once the batch starts
    assert "[sweep]" in line, line
    time.sleep(4)  # past the 40-step weak stage, inside a target or scratch run of 20,000 steps
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    started = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.time() - started < 30
    assert not any((out / f"seed{s}" / "summary.json").exists() for s in (0, 1))


def test_a_second_sweep_on_the_same_out_is_refused_while_a_batch_trains(tmp_path, capsys):
    """A batch's run directories are made and locked before it trains (they used to appear only
    once it had finished, so a second `compare` on the same --out trained the batch again and
    replaced the first one's directories)."""
    import signal
    import subprocess
    import sys

    from groktransfer.cli import main

    argv = ["compare", "--spec", "demo", "--methods", "scratch", "--seeds", "2", "--parallel", "2",
            "--out", str(tmp_path / "c"), "--no-progress", "task.p=11", "train.max_steps=400000",
            "train.stop_at_test_acc=null"]
    first = subprocess.Popen([sys.executable, "-m", "groktransfer.cli", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    import time

    runs = [tmp_path / "c" / "runs" / "scratch" / f"seed{s}" / "metrics.csv" for s in (0, 1)]
    try:
        deadline = time.time() + 120  # both directories locked (metrics.csv is opened under the lock)
        while not all(path.exists() for path in runs):
            assert first.poll() is None and time.time() < deadline, first.communicate()[1]
            time.sleep(0.02)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "runs/scratch/seed0': in use by another groktransfer process" in err, err
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
