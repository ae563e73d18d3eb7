"""Experiment trackers: the scalars read back from TensorBoard, W&B (offline) and MLflow equal metrics.csv."""

import glob
import json
import signal
import struct
import subprocess
import sys
import time

import pytest
import yaml

from groktransfer.cli import main
from groktransfer.records import read_metrics

pytest.importorskip("tensorboard")
pytest.importorskip("wandb")
pytest.importorskip("mlflow")

TINY = {
    "name": "tracked", "device": "cpu",
    "task": {"op": "add", "p": 11, "train_fraction": 0.5},
    "weak": {"model": {"embed_dim": 4, "width": 8}, "population": 2, "max_rounds": 1, "if_none_ready": "transfer_best",
             "train": {"max_steps": 30, "eval_every": 10}},
    "target": {"model": {"embed_dim": 8, "width": 16, "depth": 1}, "train": {"max_steps": 40, "eval_every": 10}},
}


def tensorboard_scalars(run_dir, stage, key):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard" / stage))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(f"{stage}/{key}")]


def mlflow_scalars(run_dir, stage, key):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run_dir / "mlruns").resolve().as_uri())
    run_id = (run_dir / "mlflow_run_id").read_text().strip()
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, f"{stage}/{key}"), key=lambda m: m.step)]


def wandb_history(run_dir):
    """The history records of the offline run file: W&B's record log (7-byte header, 32 KiB blocks of
    records with a 7-byte header each) holding protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    data = open(glob.glob(str(run_dir / "wandb" / "offline-run-*" / "run-*.wandb"))[0], "rb").read()
    assert data[:4] == b":W&B"
    pos, chunks, records = 7, b"", []
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        chunks = chunk if kind in (1, 2) else chunks + chunk
        if kind in (1, 4):
            records.append(chunks)
    rows = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def expected(run_dir, stage, key):
    return [(int(r["step"]), pytest.approx(r[key], rel=1e-6)) for r in read_metrics(run_dir)[stage]]


def test_all_three_trackers_hold_the_runs_numbers(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(out), "--no-progress",
                 "--log", "tensorboard,wandb,mlflow"]) == 0
    for stage in ("weak", "target"):
        for key in ("train_acc", "test_loss"):
            assert tensorboard_scalars(out, stage, key) == expected(out, stage, key)
            assert mlflow_scalars(out, stage, key) == expected(out, stage, key)
    logged = [(int(r["target/step"]), r["target/test_acc"]) for r in wandb_history(out) if "target/step" in r]
    assert logged == expected(out, "target", "test_acc")


def test_a_batch_of_runs_writes_each_runs_trackers(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TINY))
    out = tmp_path / "seeds"
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(out), "--seeds", "2", "--parallel", "2",
                 "--no-progress", "--log", "tensorboard"]) == 0
    for seed in (0, 1):
        run = out / f"seed{seed}"
        assert json.loads((run / "summary.json").read_text())["stages"]["target"].get("batch_runs") == 2
        assert tensorboard_scalars(run, "target", "test_acc") == expected(run, "target", "test_acc")


def test_after_an_interruption_and_resume_tensorboard_holds_each_step_once(tmp_path):
    config = dict(TINY, weak=dict(TINY["weak"], population=1),
                  target=dict(TINY["target"], train=dict(TINY["target"]["train"], max_steps=3000)),
                  checkpoint={"every_steps": 50, "every_seconds": None}, trackers=["tensorboard"])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "groktransfer.cli", "run", str(tmp_path / "c.yaml"), "--out",
                             str(out), "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        rows = read_metrics(out).get("target", []) if (out / "metrics.csv").exists() else []
        if rows and rows[-1]["step"] >= 500:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert main(["resume", str(out), "--no-progress"]) == 0
    logged = tensorboard_scalars(out, "target", "test_acc")
    assert [step for step, _ in logged] == [int(r["step"]) for r in read_metrics(out)["target"]]  # once each


def test_unknown_or_missing_trackers_are_refused(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TINY))
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "x"), "--log", "neptune"]) == 2
    assert "--log: trackers[0]: got 'neptune'; allowed: tensorboard, wandb, mlflow" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("damage", [
    lambda f: f.write_bytes(b"\xff\xfe garbage"),
    lambda f: f.write_text("0123\n"),
    lambda f: f.write_text("f" * 32 + "\n"),  # the form of an id, but no such run in this store
    lambda f: (f.unlink(), f.mkdir()),
    lambda f: f.write_text("x" * 5000),
])
def test_a_damaged_mlflow_run_id_file_is_refused_with_one_line_naming_it(tmp_path, damage):
    from groktransfer.config import ConfigError
    from groktransfer.tracking import Trackers

    Trackers(["mlflow"], tmp_path, "t", {"a": 1}).close()
    id_file = tmp_path / "mlflow_run_id"
    Trackers(["mlflow"], tmp_path, "t", {"a": 1}).close()  # an intact file: the same run again
    damage(id_file)
    with pytest.raises(ConfigError) as refused:
        Trackers(["mlflow"], tmp_path, "t", {"a": 1})
    assert "mlflow_run_id" in str(refused.value) and "damaged" in str(refused.value) and "\n" not in str(refused.value)
