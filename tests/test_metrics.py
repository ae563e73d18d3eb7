"""Grokking metrics on hand-made histories."""

from groktransfer.metrics import first_step_at, inverse_time_gap, summarize_history, time_gap


def history(rows):
    return [{"step": s, "train_acc": tr, "test_acc": te} for s, tr, te in rows]


GROKS = history([(0, 0.0, 0.0), (10, 0.5, 0.01), (20, 0.96, 0.02), (500, 1.0, 0.5), (900, 1.0, 0.951), (950, 1.0, 0.995)])
NEVER = history([(0, 0.0, 0.0), (10, 0.97, 0.1), (100, 1.0, 0.94)])


def test_first_steps_and_time_gap_of_a_grokking_run():
    assert first_step_at(GROKS, "train_acc", 0.95) == 20
    assert first_step_at(GROKS, "test_acc", 0.95) == 900
    assert first_step_at(GROKS, "test_acc", 0.99) == 950
    assert time_gap(GROKS) == 880
    assert inverse_time_gap(880) == 1 / 880


def test_a_run_that_never_reaches_95_percent_test_has_infinite_gap():
    assert first_step_at(NEVER, "test_acc", 0.95) is None
    assert time_gap(NEVER) is None
    summary = summarize_history(NEVER)
    assert summary["time_gap"] is None and summary["inverse_time_gap"] == 0.0
    assert summary["test_acc_99_step"] is None and summary["train_acc_95_step"] == 10
    assert summary["final_test_acc"] == 0.94 and summary["best_test_acc"] == 0.94


def test_threshold_is_inclusive_and_gap_can_be_zero():
    h = history([(0, 0.95, 0.95)])
    assert time_gap(h) == 0 and inverse_time_gap(0) == 1.0


def test_train_threshold_never_reached_gives_no_gap():
    h = history([(0, 0.5, 0.96)])
    assert time_gap(h) is None


def test_empty_history():
    s = summarize_history([])
    assert s["time_gap"] is None and s["final_step"] is None and s["best_test_acc"] is None
