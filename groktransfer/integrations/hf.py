"""Hugging Face ``Trainer`` callbacks: grokking methods inside its loop, grokking metrics from its evaluations.

Usage::

    from groktransfer.integrations.hf import GrokkingMetricsCallback, MethodsCallback

    trainer = Trainer(
        model=model, args=TrainingArguments(..., eval_strategy="steps", eval_steps=10),
        train_dataset=train, eval_dataset={"train": train, "test": test},   # accuracy on both
        compute_metrics=accuracy,
        callbacks=[MethodsCallback("grokfast-ema", alpha=0.98, lamb=2.0), GrokkingMetricsCallback()],
    )

``MethodsCallback(method, **settings)`` runs any method :func:`groktransfer.attach` knows
(GrokFast EMA/MA, ⊥Grad, Omnigrok's norm constraint, ``+`` combinations) from the Trainer's
``on_pre_optimizer_step`` (gradient edits, after the Trainer's gradient clipping) and
``on_optimizer_step`` (weight edits) events: the same hook objects as ``gt.train`` runs.

``GrokkingMetricsCallback(train_key="eval_train_accuracy", test_key="eval_test_accuracy")``
collects those two numbers at every evaluation (give the Trainer ``eval_dataset`` as a dict
with a ``train`` and a ``test`` entry and a ``compute_metrics`` returning ``accuracy``; the
keys are the Trainer's names for them) and, when training ends, computes what
:func:`groktransfer.summarize_history` computes: the first steps at 95% train and test
accuracy, the Time Gap, the first step at 99% test. They go to ``OUTPUT_DIR/grokking.json``,
to the Trainer's log history, and to ``callback.summary``.

Needs the ``[hf]`` extra (``transformers`` with ``accelerate``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from transformers import TrainerCallback

from ..attaching import method_hooks
from ..metrics import summarize_history


class MethodsCallback(TrainerCallback):
    """A grokking method inside the Trainer's optimizer step (see the module docstring)."""

    def __init__(self, method: str, **settings: Any) -> None:
        self.method, self.settings = method, settings
        self.hooks: Optional[list] = None
        self.step = 0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        _, self.hooks = method_hooks(model, self.method, **self.settings)
        self.step = 0

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        for hook in self.hooks:
            hook.after_backward(self.step)

    def on_optimizer_step(self, args, state, control, **kwargs):
        for hook in self.hooks:
            hook.after_step(self.step)
        self.step += 1

    def state_dict(self) -> dict:
        return {"step": self.step, "hooks": [hook.state_dict() for hook in self.hooks or []]}


class GrokkingMetricsCallback(TrainerCallback):
    """First steps at 95% train / test accuracy and the Time Gap, from the Trainer's evaluations."""

    def __init__(self, train_key: str = "eval_train_accuracy", test_key: str = "eval_test_accuracy",
                 filename: str = "grokking.json") -> None:
        self.train_key, self.test_key, self.filename = train_key, test_key, filename
        self.rows: dict[int, dict] = {}
        self.summary: Optional[dict] = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        row = self.rows.setdefault(state.global_step, {"step": state.global_step})
        for key, name in ((self.train_key, "train_acc"), (self.test_key, "test_acc")):
            if metrics and key in metrics:
                row[name] = float(metrics[key])

    def on_train_end(self, args, state, control, **kwargs):
        history = [row for _, row in sorted(self.rows.items()) if "train_acc" in row and "test_acc" in row]
        if not history:
            raise ValueError(f"GrokkingMetricsCallback: no evaluation reported both {self.train_key!r} and "
                             f"{self.test_key!r}; give the Trainer eval_dataset={{'train': ..., 'test': ...}} and a "
                             "compute_metrics that returns 'accuracy'")
        numbers = summarize_history(history)
        self.summary = {key: numbers[key] for key in ("train_acc_95_step", "test_acc_95_step", "test_acc_99_step",
                                                      "time_gap", "final_train_acc", "final_test_acc")}
        self.summary["evaluations"] = history
        state.log_history.append({"step": state.global_step, **{f"grokking/{k}": v for k, v in self.summary.items()
                                                                 if k != "evaluations"}})
        if args.output_dir:
            out = Path(args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / self.filename).write_text(json.dumps(self.summary, indent=2) + "\n", encoding="utf-8")


__all__ = ["GrokkingMetricsCallback", "MethodsCallback"]
