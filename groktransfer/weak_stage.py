"""The weak stage: a population of weak models, a readiness check, and the one to transfer from.

Usage::

    outcomes = train_weak_stages([(config.weak, task, config.seed, config.task)])
    outcome = outcomes[0]
    outcome.chosen.model        # the weak model whose embedding starts the target (None: none was ready)
    outcome.summary()           # the weak stage's entry in summary.json, every candidate included

Why a population: at p = 113 the paper's weak FNN reaches a usable embedding on only a few
seeds, and a target started from an unusable one never generalises (results/weak-readiness/).
So ``population`` candidates (different model seeds, and learning rates when ``lrs`` is
given) train together as one batched computation (:func:`groktransfer.engine.train_many`).
Each candidate trains under the stage's own ``train`` settings: it stops at
``train.stop_at_test_acc`` or its step budget (with ``stop_when_ready``, already at the first
evaluation where the readiness rule accepts its embedding, status "ready"); when it ends, its
embedding is judged by the readiness rule (:mod:`groktransfer.readiness`).

- ``select: first_ready`` (default): once a candidate is ready, the run's other candidates
  stop at that evaluation, so the stage costs what the fastest ready candidate took. Among
  candidates ready at the same step the most accurate wins (then the lowest index).
- ``select: best_ready``: every candidate trains to its end; the most accurate ready one wins.
- No candidate ready: another round of ``population`` fresh candidates, up to ``max_rounds``.
  Then ``if_none_ready: stop`` ends the run without a target (an error that names what
  failed; the run directory records every candidate), or ``transfer_best`` transfers from
  the most accurate candidate with a warning.

Candidate j (counted over all rounds) of a run with seed s is built from seed
``s + 1000·j`` and trains at ``lrs[j % len(lrs)]``; candidate 0 is the weak model a single
weak stage (``population: 1``) trains. Several runs' populations (``run --seeds``,
``compare``) share one batch. The stage's cost, every candidate of every round included, is
its ``wall_clock_s`` and ``flops``: GrokTransfer is charged for all of it.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from .config import WeakStageConfig
from .methods import describe_methods
from .models import build_model
from .engine import RunSpec, train_many
from .readiness import Verdict, judge_readiness, weak_report
from .training import TrainResult, accuracy

CANDIDATE_SEED_STRIDE = 1000  # candidate j of a run with seed s: model seed s + 1000·j


@dataclass
class Candidate:
    """One weak model of a population and what became of it."""

    round: int
    index: int  # j, counted over every round of this run
    seed: int
    lr: float
    model: nn.Module
    result: Optional[TrainResult] = None
    report: Optional[dict] = None  # readiness numbers (None for a diverged or stopped candidate)
    verdict: Optional[Verdict] = None  # None: stopped before it ended (another candidate was ready)
    final_test_acc: Optional[float] = None  # on the whole test set (see score_candidate)

    @property
    def test_acc(self) -> float:
        """Its test accuracy when it ended: on the whole test set once scored, else its last evaluation's."""
        return self.final_test_acc if self.final_test_acc is not None else self.result.history[-1]["test_acc"]

    def record(self) -> dict:
        """This candidate's line in summary.json."""
        out = {"round": self.round, "index": self.index, "seed": self.seed, "lr": self.lr,
               "status": self.result.status, "steps": self.result.steps, "final_test_acc": self.test_acc,
               "final_train_acc": self.result.history[-1]["train_acc"], "flops": self.result.flops,
               "ready": None if self.verdict is None else self.verdict.ready,
               "reasons": None if self.verdict is None else self.verdict.reasons}
        if self.report is not None:
            out["readiness"] = self.report
        return out


@dataclass
class WeakOutcome:
    """A run's weak stage: every candidate, and the one whose embedding is transferred."""

    stage: WeakStageConfig
    candidates: list[Candidate] = field(default_factory=list)
    chosen: Optional[Candidate] = None  # None: no target (nothing ready and if_none_ready: stop, or all diverged)
    rounds: int = 0
    wall_clock_s: float = 0.0  # every round's batch time while this run had candidates in it, and judging them
    message: Optional[str] = None  # why nothing was ready (an error or, with transfer_best, a warning)
    test_rows_scored: Optional[int] = None  # test rows of each evaluation while training (None: all)

    @property
    def ready(self) -> bool:
        return self.chosen is not None and self.chosen.verdict is not None and self.chosen.verdict.ready

    @property
    def shown(self) -> Candidate:
        """The candidate whose curves and embedding the run directory keeps: the chosen one, or
        the most accurate one when none was chosen."""
        return self.chosen if self.chosen is not None else _most_accurate(self.candidates)

    def summary(self) -> dict:
        """The weak stage's entry in summary.json: the shown candidate's figures, the whole
        population's cost, the readiness of the shown candidate and every candidate's record."""
        shown = self.shown
        out = dict(shown.result.summary(), methods=describe_methods(self.stage.methods))
        out["wall_clock_s"] = self.wall_clock_s
        # the curves' test accuracy is on eval_test_rows rows; the final one on the whole test set
        out["final_test_acc"] = shown.test_acc
        out["eval_test_rows"] = self.test_rows_scored
        out["flops"] = sum(c.result.flops for c in self.candidates)
        if self.chosen is None and shown.result.status != "diverged":
            out["status"] = "not_ready"
        out["ready"] = self.ready
        out["readiness"] = shown.report
        out["population"] = {
            "size": self.stage.population, "rounds": self.rounds, "select": self.stage.select,
            "if_none_ready": self.stage.if_none_ready, "chosen": None if self.chosen is None else self.chosen.index,
            "candidates": [c.record() for c in self.candidates],
        }
        return out


def _most_accurate(candidates: list[Candidate]) -> Candidate:
    finite = [c for c in candidates if c.result.status != "diverged"] or candidates
    return min(finite, key=lambda c: (-c.test_acc, c.index))


def plan_round(stage: WeakStageConfig, seed: int, round_: int) -> list[tuple[int, int, float]]:
    """(index j, model seed, lr) of every candidate of one round."""
    first = round_ * stage.population
    lrs = stage.lrs or [stage.train.lr]
    return [(j, seed + CANDIDATE_SEED_STRIDE * j, lrs[j % len(lrs)]) for j in range(first, first + stage.population)]


def rows_scored(stage: WeakStageConfig, task) -> Optional[int]:
    """How many test rows each evaluation of a candidate scores while it trains (None: all of them)."""
    rows = stage.eval_test_rows
    return None if rows is None or rows >= len(task.y_test) else rows


def scoring_task(stage: WeakStageConfig, task, seed: int):
    """The task a candidate is evaluated on while it trains: the same training rows, and its test
    rows cut to a fixed draw of ``stage.eval_test_rows`` (drawn from the run's ``seed``, so every
    candidate and round of a run sees the same rows); the task itself when it has no more rows."""
    rows = rows_scored(stage, task)
    if rows is None:
        return task
    keep = torch.randperm(len(task.y_test), generator=torch.Generator().manual_seed(seed))[:rows]
    keep = keep.to(task.y_test.device)
    view = copy.copy(task)  # a shallow copy: the training tensors are shared, not copied
    view.x_test, view.y_test = task.x_test[keep], task.y_test[keep]
    return view


@torch.no_grad()
def score_candidate(candidate: Candidate, task) -> None:
    """Measure the candidate's final test accuracy on the whole test set (its model holds its final
    weights); a diverged candidate keeps its last evaluation's."""
    if candidate.result.status == "diverged":
        return
    model = candidate.model
    logits = model(task.x_test.to(next(model.parameters()).device))
    candidate.final_test_acc = float(accuracy(logits.float(), task.y_test.to(logits.device)))


def charge(outcome: WeakOutcome, work: Callable[[], None]) -> None:
    """Run ``work`` (judging or scoring a candidate, after its training clock stopped) and add its
    time to the stage's cost: GrokTransfer is charged for everything its weak stage runs."""
    start = time.perf_counter()
    work()
    outcome.wall_clock_s += time.perf_counter() - start


def judge_candidate(candidate: Candidate, stage: WeakStageConfig, task) -> None:
    """Score the candidate on the whole test set, then compute its readiness report and verdict
    (its model holds its final weights)."""
    if candidate.result.status == "diverged":
        candidate.verdict = Verdict(False, [f"diverged at step {candidate.result.diverged_step}"])
        return
    score_candidate(candidate, task)
    candidate.report = weak_report(candidate.model, task, candidate.test_acc)
    candidate.verdict = judge_readiness(stage.readiness, candidate.report)


def ready_now(stage: WeakStageConfig, task, model: nn.Module, row: dict, load: Callable[[], None]) -> Optional[str]:
    """"ready" when ``stage.stop_when_ready`` and the readiness rule accepts the candidate's
    embedding at this evaluation (``load()`` puts its current weights into ``model``), else None.
    The embedding is looked at only once the test accuracy allows readiness."""
    if not stage.stop_when_ready or row["test_acc"] < stage.readiness.min_test_acc:
        return None
    load()
    return "ready" if judge_readiness(stage.readiness, weak_report(model, task, row["test_acc"])).ready else None


def choose(outcome: WeakOutcome) -> Optional[Candidate]:
    """The ready candidate to transfer from under the stage's ``select`` rule (None if none is ready)."""
    ready = [c for c in outcome.candidates if c.verdict is not None and c.verdict.ready]
    if not ready:
        return None
    if outcome.stage.select == "first_ready":
        return min(ready, key=lambda c: (c.result.steps, -c.test_acc, c.index))
    return min(ready, key=lambda c: (-c.test_acc, c.index))


def conclude(outcome: WeakOutcome) -> None:
    """After the last round: pick the candidate (or none) and say why when nothing was ready."""
    outcome.chosen = choose(outcome)
    if outcome.chosen is not None:
        return
    stage, best = outcome.stage, _most_accurate(outcome.candidates)
    tried = f"{len(outcome.candidates)} candidate{'s' if len(outcome.candidates) > 1 else ''}"
    if best.result.status == "diverged":
        outcome.message = f"weak stage diverged at step {best.result.diverged_step} ({tried}); the target stage was skipped"
        return
    why = "; ".join(best.verdict.reasons)
    if stage.if_none_ready == "transfer_best":
        outcome.chosen = best
        outcome.message = (f"no weak candidate was ready ({tried}); transferring from the most accurate one, "
                           f"which is not ready: {why}")
    else:
        outcome.message = (f"no weak candidate was ready after {outcome.rounds} round{'s' if outcome.rounds > 1 else ''} "
                           f"({tried}; the most accurate: {why}); the target stage was skipped. Raise weak.max_rounds "
                           "or weak.population, or weak.train.max_steps, or set weak.if_none_ready: transfer_best")


def train_weak_stages(
    jobs: list[tuple[WeakStageConfig, object, int]],
    *,
    stop_requested: Callable[[], bool] = lambda: False,
    progress: bool = False,
    **one_run,
) -> list[WeakOutcome]:
    """The weak stage of every job ``(weak stage config, task, run seed)``, all populations of a
    round trained as one batch; one :class:`WeakOutcome` per job, in order. ``one_run`` (a
    checkpointer, the state to resume from, ``on_eval``) goes to the engine; it takes them for a
    batch of one candidate only (one job, population 1, one round)."""
    outcomes = [WeakOutcome(stage, test_rows_scored=rows_scored(stage, task)) for stage, task, _ in jobs]
    scored_on = [scoring_task(stage, task, seed) for stage, task, seed in jobs]  # the same rows every round
    pending = list(range(len(jobs)))
    max_rounds = max(stage.max_rounds for stage, _, _ in jobs)
    for round_ in range(max_rounds):
        pending = [i for i in pending if round_ < jobs[i][0].max_rounds]
        if not pending:
            break
        specs, owners = [], []
        for i in pending:
            stage, task, seed = jobs[i]
            for j, model_seed, lr in plan_round(stage, seed, round_):
                candidate = Candidate(round_, j, model_seed, lr, build_model(stage, task, model_seed))
                outcomes[i].candidates.append(candidate)
                specs.append(RunSpec(candidate.model, scored_on[i], dataclasses.replace(stage.train, lr=lr), seed=model_seed,
                                     methods=stage.methods, stage="weak"))
                owners.append((i, candidate))

        def on_finish(position: int, result: TrainResult) -> list[int]:
            i, candidate = owners[position]
            candidate.result = result
            stage, task, _ = jobs[i]
            charge(outcomes[i], lambda: judge_candidate(candidate, stage, task))
            if stage.select != "first_ready" or not candidate.verdict.ready:
                return []
            return [k for k, (owner, other) in enumerate(owners) if owner == i and other.result is None]

        def stop_check(position: int, row: dict, load: Callable[[], None]) -> Optional[str]:
            i, candidate = owners[position]
            stage, task, _ = jobs[i]
            return ready_now(stage, task, candidate.model, row, load)

        results = train_many(specs, stop_requested=stop_requested, progress=progress, on_finish=on_finish,
                             stop_check=stop_check, **one_run)
        for position, result in enumerate(results):
            i, candidate = owners[position]
            if candidate.result is None:  # stopped candidates get theirs here
                candidate.result = result
                charge(outcomes[i], lambda: score_candidate(candidate, jobs[i][1]))
        for i in pending:
            mine = [c for c in outcomes[i].candidates if c.round == round_]
            outcomes[i].rounds = round_ + 1
            outcomes[i].wall_clock_s += max(c.result.wall_clock_s for c in mine)
        pending = [i for i in pending if choose(outcomes[i]) is None]
    for outcome in outcomes:
        conclude(outcome)
    return outcomes


__all__ = ["CANDIDATE_SEED_STRIDE", "Candidate", "WeakOutcome", "conclude", "plan_round", "ready_now", "score_candidate",
           "scoring_task", "train_weak_stages"]
