"""The trainer: schedule, stopping, divergence, warm-up, events, FLOPs, determinism."""

import math
from pathlib import Path

import pytest
import torch

from groktransfer import FNN, EvalSchedule, ModularTask, TrainConfig, train, transfer_embedding
from groktransfer.transfer import merge_factorized_embedding


@pytest.fixture(scope="module")
def task():
    return ModularTask("add", p=13, train_fraction=0.5, data_seed=0)


def small(seed=0):
    return FNN(13, 13, embed_dim=8, width=16, depth=1, seed=seed)


def without_time(history):
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in history]


def test_linear_and_log_schedules():
    linear = EvalSchedule(TrainConfig(eval_dense_until=5, eval_every=10))
    assert linear.steps(35) == [0, 1, 2, 3, 4, 5, 10, 20, 30, 35]
    log = EvalSchedule(TrainConfig(eval_dense_until=2, eval_schedule="log", eval_log_factor=1.5, eval_every=100))
    assert log.steps(30) == [0, 1, 2, 3, 5, 8, 12, 18, 27, 30]
    capped = EvalSchedule(TrainConfig(eval_dense_until=0, eval_schedule="log", eval_log_factor=10.0, eval_every=4))
    assert capped.steps(12) == [0, 1, 5, 9, 12]


def test_history_follows_the_schedule_and_budget(task):
    config = TrainConfig(max_steps=25, eval_dense_until=3, eval_every=10, stop_at_test_acc=None)
    result = train(small(), task, config)
    assert [row["step"] for row in result.history] == [0, 1, 2, 3, 10, 20, 25]
    assert result.status == "max_steps" and result.steps == 25


def test_stop_requires_patience(task):
    config = TrainConfig(max_steps=50, stop_at_test_acc=1e-9, stop_patience=3)
    result = train(small(), task, config)
    assert result.status == "target_reached"
    assert [row["step"] for row in result.history] == [0, 1, 2]


def test_nan_marks_the_run_diverged_at_its_step(task):
    def poison(model):
        with torch.no_grad():
            model.mlp[0].weight[0, 0] = float("nan")

    config = TrainConfig(max_steps=100, eval_dense_until=0, eval_every=20, stop_at_test_acc=None)
    result = train(small(), task, config, events={7: poison})
    assert result.status == "diverged" and result.diverged_step == 7
    assert result.history[-1]["step"] == 20  # detected at the next evaluation, not by a per-step sync
    assert result.summary()["diverged_step"] == 7


def test_every_step_check_stops_at_once(task):
    def poison(model):
        with torch.no_grad():
            model.mlp[0].weight[0, 0] = float("nan")

    config = TrainConfig(max_steps=100, eval_dense_until=0, eval_every=50, stop_at_test_acc=None,
                         check_finite_every_step=True)
    result = train(small(), task, config, events={7: poison})
    assert result.status == "diverged" and result.diverged_step == 7
    assert result.history[-1]["step"] == 8 and result.steps == 8


def test_runs_are_deterministic(task):
    config = TrainConfig(max_steps=40, stop_at_test_acc=None, lr=0.01)
    a = train(small(1), task, config)
    b = train(small(1), task, config)
    assert without_time(a.history) == without_time(b.history)


def test_minibatches_are_deterministic_per_seed(task):
    config = TrainConfig(max_steps=30, batch_size=16, stop_at_test_acc=None, lr=0.01)
    a = train(small(), task, config, seed=4)
    b = train(small(), task, config, seed=4)
    c = train(small(), task, config, seed=5)
    assert without_time(a.history) == without_time(b.history)
    assert without_time(a.history) != without_time(c.history)


def test_warmup_scales_the_first_update(task):
    # Adam's first update moves each weight by about lr (m/sqrt(v) = ±1), so the
    # largest change after one step is the learning rate actually used.
    def first_change(warmup):
        model = small()
        before = model.mlp[0].weight.detach().clone()
        train(model, task, TrainConfig(lr=0.01, weight_decay=0.0, max_steps=1, warmup_steps=warmup, stop_at_test_acc=None))
        return (model.mlp[0].weight.detach() - before).abs().max().item()

    assert first_change(0) == pytest.approx(0.01, rel=1e-3)
    assert first_change(10) == pytest.approx(0.001, rel=1e-3)


def test_flops_match_the_matmul_count(task):
    model = small()
    config = TrainConfig(max_steps=4, eval_dense_until=0, eval_every=2, stop_at_test_acc=None)
    result = train(model, task, config)
    per_sample = 2 * (16 * 16 + 16 * 13)  # two linear layers, 2 FLOPs per multiply-add
    n_train, n_test = len(task.y_train), len(task.y_test)
    assert result.flops_per_step == 3 * n_train * per_sample  # backward costs twice the forward
    evals = len(result.history)
    assert result.flops == 4 * result.flops_per_step + evals * (n_train + n_test) * per_sample


def test_merge_event_swaps_the_embedding_and_training_goes_on(task):
    target = FNN(13, 13, embed_dim=16, width=16, depth=1, seed=1)
    transfer_embedding(small(), target)
    config = TrainConfig(max_steps=10, stop_at_test_acc=None, lr=0.01)
    result = train(target, task, config, events={4: merge_factorized_embedding})
    embedding = target.get_input_embeddings()
    assert isinstance(embedding, torch.nn.Embedding) and result.steps == 10
    # The merged matrix kept learning after step 4.
    assert embedding.weight.requires_grad and math.isfinite(result.history[-1]["train_loss"])


def test_frozen_a_does_not_move(task):
    target = FNN(13, 13, embed_dim=16, width=16, depth=1, seed=1)
    module = transfer_embedding(small(), target, freeze_a=True)
    a_before, b_before = module.A.detach().clone(), module.B.detach().clone()
    train(target, task, TrainConfig(max_steps=5, stop_at_test_acc=None, lr=0.01))
    assert torch.equal(module.A.detach(), a_before) and not torch.equal(module.B.detach(), b_before)


def test_float64_option(task):
    model = small()
    train(model, task, TrainConfig(max_steps=2, stop_at_test_acc=None, dtype="float64"))
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_denormals_are_flushed_on_cpu_while_training_and_the_setting_is_restored(task):
    from groktransfer.engine import RunSpec, train_many
    from groktransfer.training import _flushing_denormals

    seen = []
    for setting in (False, True):
        torch.set_flush_denormal(setting)
        train(small(), task, TrainConfig(max_steps=1, stop_at_test_acc=None),
              on_eval=lambda row: seen.append(_flushing_denormals()))
        assert _flushing_denormals() == setting  # the caller's setting, whatever it was
        train_many([RunSpec(small(), task, TrainConfig(max_steps=1, stop_at_test_acc=None))],
                   on_eval=lambda run, row: seen.append(_flushing_denormals()))
        assert _flushing_denormals() == setting
    torch.set_flush_denormal(False)
    assert seen and all(seen)  # on while training
    assert 5e-324 > 0  # Python's own float arithmetic is left alone afterwards


def test_denormals_are_flushed_in_every_thread_torch_computes_with(monkeypatch):
    """torch.set_flush_denormal reaches only the calling thread: on two intra-op threads half of
    an op's results stayed denormal (and a run whose weights decayed towards them slowed down).
    Inside cpu_flush_denormal none are; afterwards the caller's setting is back in every thread.
    Another OpenMP runtime in the process (scikit-learn brings its own libgomp) is not torch's."""
    import ctypes
    import glob

    import groktransfer.training as training
    from groktransfer.training import _openmp_library, _set_flush_denormal_everywhere, cpu_flush_denormal

    packages = Path(torch.__file__).resolve().parents[1]
    others = [path for path in sorted(glob.glob(str(packages / "*" / "libgomp*.so*"))) if "/torch/" not in path]
    if others:
        ctypes.CDLL(others[0])  # loaded now, and named before torch's own: the one the search must skip
    monkeypatch.setattr(training, "_OPENMP", None)  # search again, with it loaded
    if _openmp_library() is None:
        pytest.skip("torch here does not compute with an OpenMP team this package can reach")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.full((1 << 18,), 1e-30)

        def denormals() -> int:
            y = x * 1e-10  # 1e-40: a float32 denormal unless flushed
            return int(((y != 0) & (y.abs() < 1.17e-38)).sum())

        _set_flush_denormal_everywhere(False)  # the default, whatever earlier tests left
        assert denormals() == x.numel()
        with cpu_flush_denormal(torch.device("cpu")):
            assert denormals() == 0  # every element, whichever thread computed it
        assert denormals() == x.numel()
    finally:
        torch.set_num_threads(threads)


def test_the_stopping_rule_shared_by_one_run_and_a_batch():
    """stopping_rule, case by case (values: train loss/acc, test loss/acc, weight norm, first bad step)."""
    from groktransfer.training import stopping_rule

    config = TrainConfig(max_steps=100, stop_at_test_acc=0.9, stop_patience=2)
    ok = [0.1, 1.0, 0.2, 0.95, 3.0, -1]
    assert stopping_rule(ok, 0, 10, config) == (None, None, 1)               # first hit: go on
    assert stopping_rule(ok, 1, 20, config) == ("target_reached", None, 2)   # second in a row
    low = [0.1, 1.0, 0.2, 0.5, 3.0, -1]
    assert stopping_rule(low, 1, 20, config) == (None, None, 0)              # a miss resets the count
    assert stopping_rule(low, 0, 100, config) == ("max_steps", None, 0)      # budget used up
    assert stopping_rule(ok, 1, 100, config) == ("target_reached", None, 2)  # reaching it wins over the budget
    assert stopping_rule([0.1, 1.0, 0.2, 0.95, 3.0, 37], 1, 40, config) == ("diverged", 37, 1)  # first bad step
    assert stopping_rule([float("nan"), 1.0, 0.2, 0.95, 3.0, -1], 1, 40, config) == ("diverged", 40, 1)
    assert stopping_rule(ok, 5, 40, TrainConfig(max_steps=100, stop_at_test_acc=None)) == (None, None, 0)


def test_a_ctrl_c_inside_run_experiment_reaches_the_caller():
    """SIGINT during gt.run_experiment (no run directory) stops training at the next step and
    raises a KeyboardInterrupt, so that the caller's own loop over experiments stops too."""
    import os
    import signal
    import threading
    import time

    import groktransfer as gt
    from groktransfer.presets import load_preset

    config = load_preset("demo", ["device=cpu", "weak.train.max_steps=20", "weak.max_rounds=1",
                                  "weak.if_none_ready=transfer_best", "weak.train.stop_at_test_acc=null",
                                  "target.train.stop_at_test_acc=null", "scratch=null"])
    timer = threading.Timer(2.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    started = time.time()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            gt.run_experiment(config, None)
    finally:
        timer.cancel()
    assert time.time() - started < 30  # the 20,000-step target did not run to its end


def test_accuracy_counts_a_row_right_only_when_its_label_strictly_wins():
    """Checked row by row against a plain loop; ties for the top (a collapsed model's equal logits)
    count as wrong, where argmax would credit class 0; a batch of runs gets one value per run;
    labels that are not class indices are compared with argmax."""
    from groktransfer.training import accuracy

    g = torch.Generator().manual_seed(0)
    logits = torch.randint(-3, 4, (4, 200, 7), generator=g).float()  # small integers: many ties
    labels = torch.randint(0, 7, (4, 200), generator=g)
    expected = [sum(all(row[c] < row[int(y)] for c in range(7) if c != int(y)) for row, y in zip(run, ys)) / 200
                for run, ys in zip(logits.tolist(), labels)]
    assert accuracy(logits, labels).tolist() == pytest.approx(expected)
    assert accuracy(logits[1], labels[1]).item() == pytest.approx(expected[1])
    assert accuracy(torch.zeros(5, 3), torch.zeros(5, dtype=torch.long)).item() == 0.0  # argmax: 1.0
    ties = (logits == logits.amax(-1, keepdim=True)).sum(-1) > 1
    assert ties.any()  # the check above did meet ties; on the rows without one it is argmax's answer:
    clear_logits, clear_labels = logits[~ties], labels[~ties]
    assert accuracy(clear_logits, clear_labels).item() == (clear_logits.argmax(-1) == clear_labels).float().mean().item()
    random_logits = torch.randn(300, 11, generator=g)
    random_labels = torch.randint(0, 11, (300,), generator=g)
    assert accuracy(random_logits, random_labels).item() == (random_logits.argmax(-1) == random_labels).float().mean().item()
    floats = torch.tensor([1.0, 0.0])
    assert accuracy(torch.tensor([[0.0, 2.0], [3.0, 1.0]]), floats).item() == 1.0


def reference_adam_loop(model, task, steps, lr, weight_decay, warmup, coupled, betas, merge_at=None):
    """The update written with torch.optim.AdamW (torch.optim.Adam for coupled L2 decay): one
    parameter group per learning-rate scale, a linear warm-up set by hand, and at ``merge_at``
    the A·B merge with a new optimizer that keeps the state of the parameters that survived."""
    from groktransfer.training import param_lr_scales

    def build():
        scales = param_lr_scales(model)
        groups = {}
        for name, p in model.named_parameters():
            groups.setdefault(scales.get(name, 1.0), []).append(p)
        kind = torch.optim.Adam if coupled else torch.optim.AdamW
        return kind([{"params": ps, "lr": lr * s, "scale": s} for s, ps in groups.items()],
                    lr=lr, betas=betas, weight_decay=weight_decay)

    optimizer = build()
    for step in range(steps):
        if step == merge_at:
            old = optimizer
            merge_factorized_embedding(model)
            optimizer = build()
            for group, old_group in zip(optimizer.param_groups, old.param_groups):
                group["lr"] = old_group["lr"] / old_group["scale"] * group["scale"]
            for p in (p for g in optimizer.param_groups for p in g["params"]):
                if p in old.state:
                    optimizer.state[p] = old.state[p]
        if step < warmup:
            for group in optimizer.param_groups:
                group["lr"] = lr * (step + 1) / warmup * group["scale"]
        loss = torch.nn.functional.cross_entropy(model(task.x_train), task.y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("coupled, warmup, merge_at", [(False, 0, None), (False, 4, None), (True, 3, None),
                                                       (False, 2, 6)])
def test_one_run_is_torch_adamw_bit_for_bit(task, coupled, warmup, merge_at):
    """A run of one is the engine's own AdamW with Python scalars: the same operations as
    torch.optim.AdamW / Adam, so the weights match a loop written with torch's optimizer exactly,
    through a warm-up, a learning-rate scale on A and B, and the A·B merge mid-run."""
    models = []
    for _ in range(2):
        model = small(seed=3)
        transfer_embedding(torch.randn(13, 4, generator=torch.Generator().manual_seed(0)), model, seed=1,
                           lr_scale=0.5)
        models.append(model)
    config = TrainConfig(lr=3e-3, weight_decay=0.7, max_steps=12, stop_at_test_acc=None, warmup_steps=warmup,
                         weight_decay_style="coupled" if coupled else "decoupled", betas=(0.9, 0.98))
    train(models[0], task, config, events={merge_at: merge_factorized_embedding} if merge_at else None)
    reference_adam_loop(models[1], task, 12, 3e-3, 0.7, warmup, coupled, (0.9, 0.98), merge_at)
    ours, theirs = models[0].state_dict(), models[1].state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_run_of_one_trains_the_callers_model_in_place_without_copying_it(task):
    """gt.train works on the caller's own model object (a large one must not be copied, and some
    cannot be): the engine's stacked form is for batches only."""

    class Uncopyable(FNN):
        def __deepcopy__(self, memo):
            raise AssertionError("the model was copied")

    model = Uncopyable(13, 13, embed_dim=8, width=16, depth=1, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    result = train(model, task, TrainConfig(max_steps=5, stop_at_test_acc=None))
    assert result.steps == 5 and all(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))
