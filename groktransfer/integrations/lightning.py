"""Lightning callbacks: grokking methods inside its loop, grokking metrics from its validation.

Usage::

    from groktransfer.integrations.lightning import GrokkingMetricsCallback, MethodsCallback

    trainer = lightning.Trainer(max_steps=500, val_check_interval=..., callbacks=[
        MethodsCallback("grokfast-ema", alpha=0.98, lamb=2.0),
        GrokkingMetricsCallback(train_key="train_acc", test_key="test_acc"),
    ])

``MethodsCallback`` runs a method :func:`groktransfer.attach` knows from Lightning's
``on_before_optimizer_step`` (gradient edits; Lightning clips gradients after this hook) and
``on_train_batch_end`` (weight edits, after the optimizer step), with automatic optimisation.
``GrokkingMetricsCallback`` reads the two accuracies the LightningModule logs during
validation (``self.log("train_acc", ...)`` and ``self.log("test_acc", ...)``, names as given)
from ``trainer.callback_metrics`` after each validation, and when training ends writes the
first steps at 95% train and test accuracy and the Time Gap to
``trainer.default_root_dir/grokking.json``, to ``callback.summary`` and to the trainer's loggers.

Needs the ``[lightning]`` extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import lightning

from ..attaching import method_hooks
from ..metrics import summarize_history


class MethodsCallback(lightning.Callback):
    def __init__(self, method: str, **settings: Any) -> None:
        self.method, self.settings = method, settings
        self.hooks: Optional[list] = None
        self.step = 0
        self._restored: Optional[dict] = None  # from a Lightning checkpoint, applied once the hooks exist

    def on_train_start(self, trainer, pl_module) -> None:
        _, self.hooks = method_hooks(pl_module, self.method, **self.settings)
        if self._restored is not None:
            self.step = int(self._restored["step"])
            for hook, state in zip(self.hooks, self._restored["hooks"]):
                hook.load_state_dict(state)
            self._restored = None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        for hook in self.hooks:
            hook.after_backward(self.step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        for hook in self.hooks:
            hook.after_step(self.step)
        self.step += 1

    def state_dict(self) -> dict:
        return {"step": self.step, "hooks": [hook.state_dict() for hook in self.hooks or []]}

    def load_state_dict(self, state: dict) -> None:
        self._restored = state


class GrokkingMetricsCallback(lightning.Callback):
    def __init__(self, train_key: str = "train_acc", test_key: str = "test_acc", filename: str = "grokking.json") -> None:
        self.train_key, self.test_key, self.filename = train_key, test_key, filename
        self.rows: list[dict] = []
        self.summary: Optional[dict] = None

    def on_validation_end(self, trainer, pl_module) -> None:
        metrics = trainer.callback_metrics
        if trainer.sanity_checking or self.train_key not in metrics or self.test_key not in metrics:
            return
        self.rows.append({"step": trainer.global_step, "train_acc": float(metrics[self.train_key]),
                          "test_acc": float(metrics[self.test_key])})

    def on_train_end(self, trainer, pl_module) -> None:
        if not self.rows:
            raise ValueError(f"GrokkingMetricsCallback: no validation logged both {self.train_key!r} and "
                             f"{self.test_key!r}; log them from the LightningModule's validation_step")
        numbers = summarize_history(self.rows)
        self.summary = {key: numbers[key] for key in ("train_acc_95_step", "test_acc_95_step", "test_acc_99_step",
                                                      "time_gap", "final_train_acc", "final_test_acc")}
        self.summary["evaluations"] = self.rows
        for logger in trainer.loggers:
            logger.log_metrics({f"grokking/{k}": (-1 if v is None else v) for k, v in self.summary.items()
                                if k != "evaluations"}, step=trainer.global_step)
        out = Path(trainer.default_root_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / self.filename).write_text(json.dumps(self.summary, indent=2) + "\n", encoding="utf-8")


__all__ = ["GrokkingMetricsCallback", "MethodsCallback"]
