"""Experiment trackers fed from a run's evaluations: TensorBoard, Weights & Biases, MLflow.

Choose them per run: ``trackers: [tensorboard, wandb, mlflow]`` in a config, or
``groktransfer run ... --log tensorboard,wandb``. Each writes inside the run directory:

- ``tensorboard``: ``RUN_DIR/tensorboard/<stage>/`` event files (``torch.utils.tensorboard``;
  needs the ``tensorboard`` package), scalars ``<stage>/train_acc`` etc. against the stage's step;
- ``wandb``: an offline run under ``RUN_DIR/wandb/`` unless ``WANDB_MODE`` says otherwise (no
  account needed; ``wandb sync`` uploads it later), each stage with its own step axis;
- ``mlflow``: a local file store ``RUN_DIR/mlruns/`` (``mlflow-skinny`` is enough; MLflow 3 keeps
  that store only on request, so ``MLFLOW_ALLOW_FILE_STORE`` is set), one MLflow run per run
  directory, metrics ``<stage>/train_acc`` etc. with their steps.

``metrics.csv`` and ``summary.json`` stay the source of truth; the trackers are views. There
is one writer per run directory, opened with the run and closed on every way out (the end, an
error, SIGINT/SIGTERM). On resume TensorBoard drops what was logged after the checkpoint (its
``purge_step``); MLflow and W&B append to what they have, so the points logged between the
last checkpoint and the interruption appear twice there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Optional

from .config import TRACKER_NAMES as TRACKERS
from .config import ConfigError
from .records import atomic_write_text

SCALARS = ("train_loss", "train_acc", "test_loss", "test_acc", "weight_norm")


def check_trackers(names: list[str]) -> None:
    """Each tracker named exists and its library is installed (a one-line ConfigError otherwise)."""
    packages = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"trackers: got {name!r}; allowed: {', '.join(TRACKERS)}")
        try:
            __import__(packages[name])
        except ImportError:
            extra = "mlflow" if name == "mlflow" else name
            raise ConfigError(f"trackers: {name} is not installed: pip install -e \".[{extra}]\"") from None


class Trackers:
    """The trackers of one run directory. ``purge`` maps a stage to the step from which its earlier
    points are to be dropped (a resumed stage: its checkpoint step; a stage started afresh: 0)."""

    def __init__(self, names: list[str], run_dir: Path, name: str, config: dict,
                 purge: Optional[dict[str, int]] = None) -> None:
        check_trackers(names)
        self.names, self.run_dir, self.purge = list(names), Path(run_dir), dict(purge or {})
        self._tensorboard: dict[str, object] = {}
        self._wandb = self._mlflow = None
        self._wandb_stages: set[str] = set()
        run_id = hashlib.sha1(str(self.run_dir.resolve()).encode()).hexdigest()[:16]  # stable: resume finds it
        if "wandb" in names:
            import wandb

            os.environ.setdefault("WANDB_MODE", "offline")
            os.environ.setdefault("WANDB_SILENT", "true")
            self._wandb = wandb.init(project="groktransfer", name=name, id=run_id, dir=str(self.run_dir),
                                     config=config, resume="allow", reinit="finish_previous")
        if "mlflow" in names:
            # MLflow 3 keeps its file store only on request; a local file store needs no database or server.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            from mlflow.tracking import MlflowClient

            self._mlflow = MlflowClient(tracking_uri=(self.run_dir / "mlruns").resolve().as_uri())
            id_file = self.run_dir / "mlflow_run_id"
            if id_file.exists() or id_file.is_symlink():
                self._mlflow_run = self._read_mlflow_run_id(id_file)
            else:
                experiment = self._mlflow.get_experiment_by_name("groktransfer")
                experiment_id = experiment.experiment_id if experiment else self._mlflow.create_experiment("groktransfer")
                run = self._mlflow.create_run(experiment_id, run_name=name)
                self._mlflow_run = run.info.run_id
                atomic_write_text(id_file, self._mlflow_run + "\n")
                for key, value in _flat(config).items():
                    self._mlflow.log_param(self._mlflow_run, key, str(value)[:250])

    def _read_mlflow_run_id(self, id_file: Path) -> str:
        """The MLflow run this directory logs to: a run id (32 hex digits) of a run in its mlruns/."""
        damaged = ConfigError(f"tracker file {str(id_file)!r}: damaged (not the id of a run in "
                              f"{str(self.run_dir / 'mlruns')!r}); remove it to start a new MLflow run")
        try:
            if id_file.is_symlink() or not id_file.is_file() or id_file.stat().st_size > 1024:
                raise damaged
            run_id = id_file.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            raise damaged from None
        if not re.fullmatch(r"[0-9a-f]{32}", run_id):
            raise damaged
        try:
            self._mlflow.get_run(run_id)
        except Exception:  # MLflow's own error types: the run is not in this store
            raise damaged from None
        return run_id

    def log(self, stage: str, row: dict) -> None:
        step = int(row["step"])
        values = {key: float(row[key]) for key in SCALARS if row.get(key) is not None}
        if "tensorboard" in self.names:
            writer = self._tensorboard.get(stage)
            if writer is None:
                from torch.utils.tensorboard import SummaryWriter

                writer = self._tensorboard[stage] = SummaryWriter(
                    log_dir=str(self.run_dir / "tensorboard" / stage), purge_step=self.purge.get(stage))
            for key, value in values.items():
                writer.add_scalar(f"{stage}/{key}", value, step)
        if self._wandb is not None:
            if stage not in self._wandb_stages:
                self._wandb.define_metric(f"{stage}/step")
                self._wandb.define_metric(f"{stage}/*", step_metric=f"{stage}/step")
                self._wandb_stages.add(stage)
            self._wandb.log({f"{stage}/step": step, **{f"{stage}/{k}": v for k, v in values.items()}})
        if self._mlflow is not None:
            for key, value in values.items():
                self._mlflow.log_metric(self._mlflow_run, f"{stage}/{key}", value, step=step)

    def close(self) -> None:
        for writer in self._tensorboard.values():
            writer.close()
        self._tensorboard = {}
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
        if self._mlflow is not None:
            self._mlflow = None


def _flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return out


__all__ = ["TRACKERS", "Trackers", "check_trackers"]
