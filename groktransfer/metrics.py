"""Grokking metrics, computed from a logged evaluation history.

A history is a list of rows (dicts) with at least ``step``, ``train_acc`` and
``test_acc``, in increasing step order, as written to ``metrics.csv``.

The paper's Time Gap (§4) is ``(first step with test accuracy >= 95%) - (first step with
train accuracy >= 95%)``. When 95% test accuracy is never reached the gap is infinite and
its inverse is 0; we store the gap as ``None`` (JSON ``null``) in that case. Steps are only
known at evaluation points, so every "first step" is the first *evaluated* step at which
the threshold holds: its resolution is the evaluation schedule.
"""

from __future__ import annotations

from typing import Iterable, Optional


def first_step_at(history: Iterable[dict], key: str, threshold: float) -> Optional[int]:
    """The first logged step whose ``key`` is >= ``threshold``; None if never."""
    for row in history:
        value = row.get(key)
        if value is not None and value >= threshold:
            return int(row["step"])
    return None


def time_gap(history: list[dict], threshold: float = 0.95) -> Optional[int]:
    """Test-threshold step minus train-threshold step; None (infinite) if either is never reached."""
    train_step = first_step_at(history, "train_acc", threshold)
    test_step = first_step_at(history, "test_acc", threshold)
    if train_step is None or test_step is None:
        return None
    return test_step - train_step


def inverse_time_gap(gap: Optional[int]) -> float:
    """1/TimeGap as the paper plots it: 0 for an infinite gap. A gap <= 0 (test reached
    95% no later than train) counts as the fastest possible, 1.0."""
    if gap is None:
        return 0.0
    return 1.0 / gap if gap > 0 else 1.0


def summarize_history(history: list[dict]) -> dict:
    """The threshold steps, Time Gap and final values of one stage."""
    last = history[-1] if history else {}
    gap = time_gap(history)
    return {
        "train_acc_95_step": first_step_at(history, "train_acc", 0.95),
        "test_acc_95_step": first_step_at(history, "test_acc", 0.95),
        "test_acc_99_step": first_step_at(history, "test_acc", 0.99),
        "time_gap": gap,
        "inverse_time_gap": inverse_time_gap(gap),
        "final_step": last.get("step"),
        "final_train_acc": last.get("train_acc"),
        "final_test_acc": last.get("test_acc"),
        "final_train_loss": last.get("train_loss"),
        "final_test_loss": last.get("test_loss"),
        "best_test_acc": max((row["test_acc"] for row in history), default=None),
    }
