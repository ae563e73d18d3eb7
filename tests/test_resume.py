"""Kill a run (SIGKILL, SIGTERM) in either stage, resume it, and get the uninterrupted result."""

import dataclasses
import json
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from groktransfer import RunConfig, from_dict, read_metrics, run_experiment
from groktransfer.checkpoint import load_checkpoint
from groktransfer.cli import main

CONFIG = {
    "name": "resume",
    "device": "cpu",
    "task": {"op": "add", "p": 23, "train_fraction": 0.5},
    # One weak model (population 1, one round) trains with checkpoints, so it resumes mid-stage.
    "weak": {"model": {"embed_dim": 8, "width": 128, "depth": 1}, "population": 1, "max_rounds": 1,
             "if_none_ready": "transfer_best",
             "train": {"lr": 0.01, "max_steps": 1500, "stop_at_test_acc": None, "eval_every": 25}},
    "target": {"model": {"embed_dim": 16, "width": 128, "depth": 1},
               "train": {"lr": 0.003, "max_steps": 1500, "stop_at_test_acc": None, "eval_every": 25},
               "methods": {"grokfast": {"filter": "ema"}}},
    "checkpoint": {"every_steps": 40, "every_seconds": None},
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    summary = run_experiment(from_dict(RunConfig, CONFIG), out, plots=False)
    return read_metrics(out), summary


def without_time(metrics):
    return {stage: [{k: v for k, v in row.items() if k != "elapsed_s"} for row in rows] for stage, rows in metrics.items()}


def comparable(summary):
    drop = {"wall_clock_s"}
    return {name: {k: v for k, v in stage.items() if k not in drop} for name, stage in summary["stages"].items()}


def start_and_stop(tmp_path, stage, min_step, sig, resume=False):
    """Start the run (or resume it), wait until ``stage`` has logged ``min_step``, send ``sig``."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "run"
    args = ["resume", str(out)] if resume else ["run", str(config), "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "groktransfer.cli", *args, "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            rows = read_metrics(out).get(stage, [])
        except Exception:  # the file may be mid-write; try again
            rows = []
        if rows and rows[-1]["step"] >= min_step:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return out, proc.returncode, err


@pytest.mark.parametrize("stage, min_step", [("weak", 300), ("target", 200)])
def test_sigkill_then_resume_is_identical(tmp_path, reference, stage, min_step):
    ref_metrics, ref_summary = reference
    out, code, _ = start_and_stop(tmp_path, stage, min_step, signal.SIGKILL)
    assert code == -signal.SIGKILL
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    assert not summary.get("complete")
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert without_time(read_metrics(out)) == without_time(ref_metrics)
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["complete"] and comparable(resumed) == comparable(ref_summary)


def test_sigterm_checkpoints_exits_cleanly_and_resumes(tmp_path, reference, capsys):
    ref_metrics, ref_summary = reference
    out, code, err = start_and_stop(tmp_path, "target", 100, signal.SIGTERM)
    assert code == 130 and "groktransfer resume" in err and "Traceback" not in err
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert without_time(read_metrics(out)) == without_time(ref_metrics)
    # A finished run resumes to itself.
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert "already complete" in capsys.readouterr().out


def test_repeated_kills_and_torn_records_still_resume_identically(tmp_path, reference):
    """Three SIGKILLs at different points; after each, metrics.csv is cut at a random byte
    and diagnostics.csv garbled: the checkpoint alone restores them."""
    ref_metrics, ref_summary = reference
    rng = random.Random(7)
    weak_first = rng.randrange(50, 500)
    points = [("weak", weak_first, False), ("weak", rng.randrange(weak_first + 200, 1300), True),
              ("target", rng.randrange(50, 1200), True)]
    for stage, min_step, resume in points:
        out, code, _ = start_and_stop(tmp_path, stage, min_step, signal.SIGKILL, resume=resume)
        assert code == -signal.SIGKILL
        metrics = (out / "metrics.csv").read_bytes()
        (out / "metrics.csv").write_bytes(metrics[: rng.randrange(1, len(metrics))])
        if (out / "diagnostics.csv").exists():
            (out / "diagnostics.csv").write_bytes(b"garbage\x00\xff")
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert without_time(read_metrics(out)) == without_time(ref_metrics)
    assert comparable(json.loads((out / "summary.json").read_text())) == comparable(ref_summary)


def test_a_truncated_checkpoint_is_refused_clearly(tmp_path, capsys):
    out, code, _ = start_and_stop(tmp_path, "weak", 200, signal.SIGKILL)
    ckpt = out / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[: len(ckpt.read_bytes()) // 2])
    assert main(["resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.safetensors" in err[0] and "unreadable" in err[0]


def test_a_checkpoint_that_is_not_this_runs_is_refused_clearly(tmp_path, capsys):
    """Another format version, a stage or step the run's config does not have, or a config.yaml
    edited since the checkpoint: one line naming the checkpoint, exit 2, nothing changed. The
    untouched checkpoint still resumes, on another device too."""
    from groktransfer.checkpoint import save_checkpoint

    out, code, _ = start_and_stop(tmp_path, "target", 100, signal.SIGKILL)
    ckpt, config_file = out / "checkpoint.safetensors", out / "config.yaml"
    original, original_config = ckpt.read_bytes(), config_file.read_text()
    state = load_checkpoint(ckpt)
    assert state["stage"] == "target" and state["config"]["target"]["train"]["lr"] == 0.003
    damaged = [({**state, "version": 2}, "format version 2; this groktransfer reads 1"),
               ({**state, "stage": "bogus"}, "names stages ('bogus'"),
               ({**state, "done": ["weak", "teacher"]}, "names stages"),
               ({**state, "train": {**state["train"], "step": 10**9}}, "at step 1000000000, outside its budget of 1500"),
               ({**state, "config": {**state["config"], "seed": 7}}, "written by another configuration")]
    # States that pass those checks but do not fit the model they are put back into.
    train_state = state["train"]
    first_weight = next(iter(train_state["model"]))
    first_moment = next(iter(train_state["optimizer"]["exp_avg"]))
    damaged += [
        ({**state, "train": {**train_state, "model": {**train_state["model"], first_weight: torch.zeros(3, 3)}}},
         "its state does not fit the run's model (Error(s) in loading state_dict"),
        ({**state, "train": {**train_state, "optimizer": {**train_state["optimizer"], "exp_avg": {
            **train_state["optimizer"]["exp_avg"], first_moment: torch.zeros(3, 3)}}}},
         f"optimizer exp_avg of {first_moment}: expected a float tensor of shape"),
        ({**state, "train": {**train_state, "batch_generator": torch.zeros(7, dtype=torch.uint8)}}, "RNG state"),
        ({**state, "train": {**train_state, "hooks": []}}, "0 method states for 1 methods"),
        (MISSING_TENSOR, "damaged (tensor 't.train.model."),
    ]
    for bad, message in damaged:
        if bad is MISSING_TENSOR:
            save_without_a_tensor(ckpt, state)
        else:
            save_checkpoint(ckpt, bad)
        before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "checkpoint.safetensors"}
        assert main(["resume", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "checkpoint.safetensors" in err[0] and message in err[0], err
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "checkpoint.safetensors"} == before
    ckpt.write_bytes(original)
    config_file.write_text(original_config.replace("lr: 0.003", "lr: 0.004"))
    assert main(["resume", str(out), "--no-progress"]) == 2
    assert "config.yaml' (the file was edited" in capsys.readouterr().err
    config_file.write_text(original_config)
    assert main(["resume", str(out), "--device", "cpu", "--no-progress"]) == 0


MISSING_TENSOR = object()


def save_without_a_tensor(path, state):
    from safetensors.torch import save_file

    from groktransfer.checkpoint import flatten

    tensors = {}
    skeleton = flatten(state, tensors)
    tensors.pop(next(key for key in tensors if key.startswith("t.train.model.")))
    save_file(tensors, str(path), metadata={"state": json.dumps(skeleton)})


def test_resume_refuses_what_is_not_a_run(tmp_path, capsys):
    assert main(["resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def write_config(tmp_path, **changes):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, **changes}))
    return path


def test_a_full_disk_keeps_the_last_checkpoint_and_the_run_resumes(tmp_path, reference, monkeypatch, capsys):
    import groktransfer.checkpoint as ckpt_module

    ref_metrics, _ = reference
    real_save, calls = ckpt_module.save_file, {"n": 0}

    def failing_save(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 3:
            with open(filename, "wb") as handle:
                handle.write(b"partial")  # the disk fills up halfway through the file
            raise OSError(28, "No space left on device", filename)
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(ckpt_module, "save_file", failing_save)
    out = tmp_path / "run"
    assert main(["run", str(write_config(tmp_path)), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "last good checkpoint is kept" in err[0]
    assert not list(out.glob("*.tmp"))
    assert load_checkpoint(out / "checkpoint.safetensors")["train"]["step"] == 2 * CONFIG["checkpoint"]["every_steps"]
    monkeypatch.setattr(ckpt_module, "save_file", real_save)
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert without_time(read_metrics(out)) == without_time(ref_metrics)


def test_out_of_gpu_memory_falls_back_to_the_cpu_from_the_checkpoint(tmp_path, reference, monkeypatch, capsys):
    import torch

    import groktransfer.pipeline as pipeline

    ref_metrics, _ = reference
    real_train, state = pipeline.train_many, {"saves": 0, "raised": False}

    def train_that_runs_out_of_memory(*args, checkpointer=None, **kwargs):
        if checkpointer is not None and not state["raised"]:
            real_save = checkpointer.save

            def save(train_state):
                real_save(train_state)
                state["saves"] += 1
                if state["saves"] == 5:
                    state["raised"] = True
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

            checkpointer.save = save
        return real_train(*args, checkpointer=checkpointer, **kwargs)

    monkeypatch.setattr(pipeline, "train_many", train_that_runs_out_of_memory)
    out = tmp_path / "run"
    assert main(["run", str(write_config(tmp_path, device="auto")), "--out", str(out), "--no-progress"]) == 0
    assert "continuing on the CPU from the last checkpoint" in capsys.readouterr().err
    assert state["raised"]
    assert without_time(read_metrics(out)) == without_time(ref_metrics)


def test_no_command_touches_a_live_run_directory(tmp_path, reference, capsys):
    """While a run is live, every command that would write into its directory is refused
    (exit 2, one line), and the live run ends exactly as an undisturbed run does, every file
    included (a resume used to delete its diagnostics.csv before finding the lock)."""
    ref_metrics, ref_summary = reference
    config = write_config(tmp_path)
    parent = tmp_path / "sweep"
    out = parent / "seed0"  # where `run --seeds 1 --out sweep` keeps seed 0: its reuse path is tried too
    proc = subprocess.Popen([sys.executable, "-m", "groktransfer.cli", "run", str(config), "--out", str(out),
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # live, with a checkpoint and diagnostics on disk
            if (out / "checkpoint.safetensors").exists() and (out / "diagnostics.csv").exists():
                break
            time.sleep(0.02)
        attempts = [
            ["run", str(config), "--out", str(out), "--overwrite", "--no-progress"],
            ["run", str(config), "--out", str(out), "--resume", "--no-progress"],
            ["resume", str(out), "--no-progress"],
            ["plot", str(out)],
            ["run", str(config), "--out", str(parent), "--seeds", "1", "--resume", "--no-progress"],
        ]
        for argv in attempts:
            assert proc.poll() is None, "the live run ended before every attempt was made"
            capsys.readouterr()
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "in use by another groktransfer process" in err[0], (argv, err)
            assert (out / "diagnostics.csv").exists(), argv
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    finally:
        proc.kill()
    assert without_time(read_metrics(out)) == without_time(ref_metrics)
    assert comparable(json.loads((out / "summary.json").read_text())) == comparable(ref_summary)
    alone = tmp_path / "alone"
    run_experiment(from_dict(RunConfig, CONFIG), alone, plots=False)
    assert (out / "diagnostics.csv").read_text() == (alone / "diagnostics.csv").read_text()


# --- a batch of runs (run --seeds), interrupted and continued ----------------------------------

BATCH = {**CONFIG, "weak": {**CONFIG["weak"], "train": {**CONFIG["weak"]["train"], "max_steps": 300}},
         "target": {**CONFIG["target"], "train": {**CONFIG["target"]["train"], "max_steps": 1200}}}
SEEDS = ["--seeds", "0,1,2", "--parallel", "3", "--no-progress"]


@pytest.fixture(scope="module")
def batch_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch-ref")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(BATCH))
    assert main(["run", str(config), "--out", str(root / "runs"), *SEEDS]) == 0
    return {s: (read_metrics(root / "runs" / f"seed{s}"), json.loads((root / "runs" / f"seed{s}" / "summary.json")
                                                                    .read_text())) for s in range(3)}


def stop_batch(tmp_path, sig, min_step):
    """Start `run --seeds 0,1,2` as one batch; once its checkpoint holds the targets past
    ``min_step``, send ``sig``."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(BATCH))
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "groktransfer.cli", "run", str(config), "--out", str(out), *SEEDS],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            state = load_checkpoint(out / "seed0" / "batch_checkpoint.safetensors")
            if state["stage"] == "target" and state["train"] is not None and state["train"]["step"] >= min_step:
                break
        except Exception:  # not written yet, or being replaced
            pass
        time.sleep(0.02)
    assert proc.poll() is None, "the batch finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return config, out, proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_an_interrupted_batch_resumes_to_the_uninterrupted_runs(tmp_path, batch_reference, sig, monkeypatch, capsys):
    """Three runs trained as one batch, killed (or stopped) in their target stage, then `run --seeds
    --resume`: every run's evaluations and summary are those of the batch never interrupted, and
    the batch's checkpoint is gone once every run is written."""
    config, out, code, err = stop_batch(tmp_path, sig, 200)
    if sig == signal.SIGTERM:
        assert code == 130 and "Traceback" not in err
        assert "checkpoint written, continue with the same command again (`run --seeds ... --resume`" in err, err
    else:
        assert code == -signal.SIGKILL
    assert not (out / "seed0" / "summary.json").exists()
    saved_step = load_checkpoint(out / "seed0" / "batch_checkpoint.safetensors")["train"]["step"]
    # `groktransfer resume` on one of its runs points to the batch's checkpoint and its command.
    capsys.readouterr()
    for member in ("seed0", "seed2"):
        assert main(["resume", str(out / member)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is a run of an interrupted batch" in err[0], err
        assert str((out / "seed0" / "batch_checkpoint.safetensors").resolve()) in err[0] and "--resume" in err[0]
    # It goes on from the checkpoint: no weak stage again, and the targets' batch starts at its step.
    import groktransfer.sweep as sweep

    starts = []
    monkeypatch.setattr(sweep, "train_weak_stages", lambda *a, **k: pytest.fail("the weak stages trained again"))
    train_many = sweep.train_many
    monkeypatch.setattr(sweep, "train_many", lambda specs, **k: starts.append(k["resume"]) or train_many(specs, **k))
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(out), *SEEDS, "--resume"]) == 0
    assert "a batch checkpoint is there: the batch goes on from it" in capsys.readouterr().out
    assert len(starts) == 1 and starts[0]["step"] == saved_step >= 200
    for s in range(3):
        ref_metrics, ref_summary = batch_reference[s]
        run = out / f"seed{s}"
        assert without_time(read_metrics(run)) == without_time(ref_metrics), s
        summary = json.loads((run / "summary.json").read_text())
        assert summary["complete"] and comparable(summary) == comparable(ref_summary), s
        assert summary["stages"]["target"]["batch_runs"] == 3
        assert (run / "weak_embedding.safetensors").is_file()
    assert not (out / "seed0" / "batch_checkpoint.safetensors").exists()


@pytest.mark.parametrize("entry", [1, 2, 3, 5])
def test_a_batch_stopped_in_any_part_of_any_stage_goes_on_to_the_same_runs(tmp_path, monkeypatch, entry):
    """Three runs whose weak stages train as one batch, their targets two at a time (parts [0, 1]
    and [2]) and their scratch runs one at a time, stopped inside the targets' first part (entry
    1) or second (2), or the scratch's first (3) or last (5); the same batch again ends with the
    uninterrupted runs' records, and the parts finished before the stop are not trained again."""
    from contextlib import contextmanager

    import groktransfer.sweep as sweep
    from groktransfer.training import RunInterrupted

    config = {**BATCH, "scratch": {"model": {"embed_dim": 16, "width": 128, "depth": 1},
                                   "train": {"lr": 0.003, "max_steps": 400, "stop_at_test_acc": None, "eval_every": 25}},
              "target": {**BATCH["target"], "train": {**BATCH["target"]["train"], "max_steps": 400}},
              "checkpoint": {"every_steps": 30, "every_seconds": None}}
    per_stage = {"weak": 3, "target": 2, "scratch": 1}

    def jobs(root):
        made = from_dict(RunConfig, config)
        return [(dataclasses.replace(made, seed=s, task=dataclasses.replace(made.task, data_seed=s)), root / f"seed{s}")
                for s in range(3)]

    reference = sweep._run_together(jobs(tmp_path / "ref"), per_stage, False, False)
    entries = []  # every batch that polls for a stop, in order: 0 weak, 1-2 target, 3-5 scratch

    @contextmanager
    def stop_inside(after_polls=60):
        index = len(entries)
        entries.append(index)

        class Flag(dict):
            polls = 0

            def __getitem__(self, key):
                self.polls += 1
                return index == entry and self.polls > after_polls

        yield Flag(stop=False)

    monkeypatch.setattr(sweep, "_stop_on_signals", stop_inside)
    with pytest.raises(RunInterrupted):
        sweep._run_together(jobs(tmp_path / "runs"), per_stage, False, False)
    assert not (tmp_path / "runs" / "seed0" / "summary.json").exists()
    monkeypatch.undo()
    trained = []
    train_many = sweep.train_many
    monkeypatch.setattr(sweep, "train_many", lambda specs, **k: trained.append((len(specs), k["resume"] is not None))
                        or train_many(specs, **k))
    summaries = sweep._run_together(jobs(tmp_path / "runs"), per_stage, False, False)
    # the part that was stopped goes on from its checkpoint; the parts after it start afresh
    assert trained[0] == ((2 if entry == 1 else 1), True) and all(not resumed for _, resumed in trained[1:])
    assert len(trained) == 6 - entry
    for s in range(3):
        assert without_time(read_metrics(tmp_path / "runs" / f"seed{s}")) == without_time(
            read_metrics(tmp_path / "ref" / f"seed{s}")), s
        assert comparable(summaries[s]) == comparable(reference[s])
        assert (tmp_path / "runs" / f"seed{s}" / "weak_embedding.safetensors").read_bytes() == (
            tmp_path / "ref" / f"seed{s}" / "weak_embedding.safetensors").read_bytes()
    assert not (tmp_path / "runs" / "seed0" / "batch_checkpoint.safetensors").exists()


def test_a_damaged_batch_checkpoint_is_refused_clearly_and_another_batchs_is_ignored(tmp_path, batch_reference,
                                                                                      capsys):
    """A batch checkpoint cut short, damaged in its layout, or holding weights that do not fit
    the batch's models: one line naming it, exit 2. The untouched one still resumes exactly; one
    written for other runs (here: other seeds) is not taken, and those runs train afresh."""
    from groktransfer.checkpoint import save_checkpoint

    config, out, code, _ = stop_batch(tmp_path, signal.SIGKILL, 100)
    assert code == -signal.SIGKILL
    ckpt = out / "seed0" / "batch_checkpoint.safetensors"
    original = ckpt.read_bytes()
    state = load_checkpoint(ckpt)
    weight = next(iter(state["train"]["params"]))
    damaged = [(None, "unreadable"),
               ({**state, "stage": "bogus"}, "damaged (stage 'bogus')"),
               ({**state, "summaries": state["summaries"][:2]}, "damaged (summaries: expected one entry per run (3))"),
               ({**state, "train": {**state["train"], "params": {**state["train"]["params"], weight: torch.zeros(3, 3)}}},
                f"its state does not fit the batch ({weight}: shape (3, 3)")]
    for bad, message in damaged:
        ckpt.unlink()  # a new file: the state read above maps the old one, which must stay whole
        if bad is None:
            ckpt.write_bytes(original[: len(original) // 2])
        else:
            save_checkpoint(ckpt, bad)
        assert main(["run", str(config), "--out", str(out), *SEEDS, "--resume"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "batch_checkpoint.safetensors" in err[0] and message in err[0], err
    ckpt.unlink()
    ckpt.write_bytes(original)
    assert main(["run", str(config), "--out", str(out), *SEEDS, "--resume"]) == 0
    for s in range(3):
        assert without_time(read_metrics(out / f"seed{s}")) == without_time(batch_reference[s][0]), s
    # Seeds 0, 1 with the checkpoint of the batch of seeds 0, 1, 2 in seed0/: not theirs, not taken.
    other = tmp_path / "other"
    (other / "seed0").mkdir(parents=True)
    (other / "seed0" / "batch_checkpoint.safetensors").write_bytes(original)
    (other / "seed0" / ".groktransfer").write_text("marked")
    (other / ".groktransfer").write_text("marked")
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(other), "--seeds", "0,1", "--parallel", "2", "--no-progress",
                 "--resume"]) == 0
    assert not (other / "seed0" / "batch_checkpoint.safetensors").exists()
    assert json.loads((other / "seed0" / "summary.json").read_text())["stages"]["target"]["batch_runs"] == 2
