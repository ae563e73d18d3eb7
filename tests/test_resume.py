"""Kill a run (SIGKILL, SIGTERM) in either stage, resume it, and get the uninterrupted result."""

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
