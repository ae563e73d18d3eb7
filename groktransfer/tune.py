"""Hyperparameter search with an equal budget for every method.

Usage::

    spec = load_comparison("demo")
    result = run_tune(spec, ["scratch", "grokfast-ema"], seeds=[0, 1], out="runs/tune", grid="small", configs=6)
    result["best"]["scratch"]          # the hyperparameters `compare --tuned runs/tune/best.yaml` will use

The search space of a method is the shared grid (init scale × lr × weight decay) times
its own parameters (GrokFast's λ and α or window, Omnigrok's norm factor, which replaces
weight decay since Omnigrok trains without it). Every method trains the same number of
configurations (``configs``, drawn by a seeded shuffle of its space; all of it when
``configs`` is None) for the same step budget (the spec's ``train.max_steps``), on the
same seeds. With ``with_defaults`` the first of each method's configurations is its own
setting in the spec (its recommended or printed one, with no grid value applied), and the
other ``configs - 1`` are drawn from the grid: no method loses its known-good setting to
the draw.

Selection follows the paper: the configuration that reaches 99% test accuracy fastest,
averaged over seeds (``metric="test_acc_99_step"``). A seed that never reaches it counts
as infinitely slow, so a configuration that always succeeds beats one that sometimes
fails; ties among failures are broken by the mean over the seeds that did succeed, and
remaining ties (typically: no seed reached the target in any configuration, when the budget
is short) by the mean best test accuracy, so the configuration that came closest wins
rather than the first in the grid. trials.csv has both columns.
With ``search="optuna"`` the configurations are proposed by Optuna's TPE sampler (seeded
with ``search_seed``) over the same space instead of a random draw: ``trials_at_once`` trials
are asked at a time and trained as one batch, each told its score (the selection rule as one
number); the budget (``configs`` per method), the seeds, the step budget and the final
selection (the rule above, over every trial) stay the same. The study lives in
``out/optuna.db`` (SQLite), so an interrupted search continues: finished trials are kept,
trials asked but not finished are asked again.
Finished trials are reused, so an interrupted tune continues where it stopped. Trials
that differ only in per-run settings (lr, weight decay, init scale, GrokFast's α and λ,
the Omnigrok factor, seeds) train together as one batched computation where that is
faster (``parallel``; see :mod:`groktransfer.sweep`).
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import math
import random
from pathlib import Path
from typing import Callable, Optional, Union

import yaml

from .compare import ComparisonConfig, method_components, method_run_config, run_numbers
from .config import ConfigError, deep_merge, load_config_file
from .pipeline import prepare
from .records import atomic_write_text, claim_sweep_dir, environment
from .sweep import run_many
from .training import resolve_device

INIT_SCALES_PAPER = [0.05] + [round(0.1 * i, 1) for i in range(1, 16)]
GRIDS: dict[str, dict[str, list]] = {
    # The paper's grid (§3): 16 init scales × 8 learning rates × 9 weight decays.
    "paper": {
        "model.init_scale": INIT_SCALES_PAPER,
        "train.lr": [1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 1e-1, 0.5, 1.0],
        "train.weight_decay": [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 2.0, 3.0, 4.0, 5.0],
    },
    # A CPU-sized grid around the settings that work on the modular tasks.
    "small": {
        "model.init_scale": [0.5, 1.0],
        "train.lr": [1e-3, 3e-3, 1e-2],
        "train.weight_decay": [0.1, 1.0],
    },
}
# Each method's own dimensions, added to the shared grid.
METHOD_GRIDS: dict[str, dict[str, list]] = {
    "grokfast-ema": {"methods.grokfast.lamb": [1.0, 2.0, 5.0], "methods.grokfast.alpha": [0.9, 0.98]},
    "grokfast-ma": {"methods.grokfast.lamb": [2.0, 5.0], "methods.grokfast.window": [50, 100]},
    "omnigrok": {"methods.norm_constraint": [0.5, 0.75, 1.0]},
}
SEARCHES = ("grid", "optuna")
METRICS = ("test_acc_99_step", "test_acc_95_step", "train_acc_95_step", "time_to_99_s", "time_gap", "wall_clock_s")


def load_grid(name_or_path: str) -> dict[str, list]:
    if name_or_path in GRIDS:
        return GRIDS[name_or_path]
    if not Path(name_or_path).suffix:
        raise ConfigError(f"--grid {name_or_path!r}: unknown; allowed: {', '.join(GRIDS)} or a YAML file")
    data = load_config_file(name_or_path)
    for key, values in data.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid {name_or_path!r}: {key}: expected a non-empty list of values")
    return data


def method_dims(method: str, grid: dict[str, list]) -> dict[str, list]:
    """``method``'s search space: each dotted path and its values (the grid plus the method's own)."""
    dims = dict(grid)
    for part in method_components(method):
        if part == "omnigrok":
            dims.pop("train.weight_decay", None)  # Omnigrok trains at weight decay 0
        dims.update(METHOD_GRIDS.get(part, {}))
    return dims


def method_space(method: str, grid: dict[str, list]) -> list[dict[str, object]]:
    """Every configuration (dotted path -> value) of ``method``'s search space, in grid order."""
    dims = method_dims(method, grid)
    keys = list(dims)
    return [dict(zip(keys, values)) for values in itertools.product(*(dims[k] for k in keys))]


# A space up to this size is listed and shuffled whole (how every recorded tuning drew its
# configurations); a larger one is only sampled, so a small grid file describing 10^8 points
# costs --configs points of memory, not 10^8.
MAX_LISTED_POINTS = 100_000


def space_size(method: str, grid: dict[str, list]) -> int:
    return math.prod(len(values) for values in method_dims(method, grid).values())


def draw_configurations(method: str, grid: dict[str, list], configs: Optional[int], seed: int) -> list[dict]:
    """``configs`` configurations of ``method``'s space in a seeded random order (all when None)."""
    size = space_size(method, grid)
    if size <= MAX_LISTED_POINTS:
        space = method_space(method, grid)
        random.Random(seed).shuffle(space)
        return space if configs is None else space[:configs]
    if configs is None:
        raise ConfigError(f"--grid: {method}'s search space holds {size:,} configurations; give --configs K "
                          f"to try K of them")
    dims = method_dims(method, grid)
    # distinct indices, the space never listed whole
    return [point_at(dims, index) for index in random.Random(seed).sample(range(size), min(configs, size))]


def point_at(dims: dict[str, list], index: int) -> dict[str, object]:
    """The configuration at ``index`` of the grid order (``method_space``'s), without listing the
    space: ``index`` in mixed radix, the last key varying fastest as in itertools.product."""
    point = {}
    for key in reversed(list(dims)):
        index, digit = divmod(index, len(dims[key]))
        point[key] = dims[key][digit]
    return {key: point[key] for key in dims}


def to_hyper(point: dict[str, object]) -> dict:
    """{'train.lr': 0.01} -> {'train': {'lr': 0.01}}."""
    out: dict = {}
    for path, value in point.items():
        parts = path.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def score(values: list[Optional[float]]) -> tuple[int, float]:
    """(seeds that failed, mean over those that succeeded): lower is better."""
    reached = [v for v in values if v is not None]
    return len(values) - len(reached), (sum(reached) / len(reached) if reached else math.inf)


def rank_key(values: list[Optional[float]], best_test_acc: list[Optional[float]], index: int) -> tuple:
    """Sort key of a configuration, lowest best: fewest seeds that failed, then the mean metric of
    those that succeeded, then (ties, above all when no seed reached the target in any
    configuration) the highest mean best test accuracy, so the configuration that came closest
    wins rather than the first in the grid; then grid order."""
    failures, mean = score(values)
    accuracies = [a or 0.0 for a in best_test_acc]
    return failures, mean, -sum(accuracies) / len(accuracies), index


def run_tune(
    spec: ComparisonConfig,
    methods: list[str],
    seeds: list[int],
    out: Union[str, Path],
    *,
    grid: str = "small",
    configs: Optional[int] = None,
    metric: str = "test_acc_99_step",
    search_seed: int = 0,
    with_defaults: bool = False,
    parallel: Union[int, str] = "auto",
    progress: bool = False,
    log: Callable[[str], None] = lambda message: None,
    executor=None,
    search: str = "grid",
    trials_at_once: int = 4,
) -> dict:
    """Search each method's space; write trials.csv, best.yaml and tune.json in ``out``.

    ``executor``: where the trials run (see :mod:`groktransfer.executors`; local by default).
    ``search``: ``grid`` (a seeded draw of ``configs`` points) or ``optuna`` (see above)."""
    if metric not in METRICS:
        raise ConfigError(f"--metric {metric!r}: allowed: {', '.join(METRICS)}")
    if configs is not None and configs < 1:
        raise ConfigError(f"--configs: got {configs}; must be >= 1")
    if not seeds:
        raise ConfigError("--seeds: give at least one seed")
    if search not in SEARCHES:
        raise ConfigError(f"--search {search!r}: allowed: {', '.join(SEARCHES)}")
    if search == "optuna":
        if configs is None:
            raise ConfigError("--search optuna: give --configs N, the number of configurations each method may try")
        if trials_at_once < 1:
            raise ConfigError(f"--trials-at-once: got {trials_at_once}; must be >= 1")
        if importlib.util.find_spec("optuna") is None:
            raise ConfigError("--search optuna needs Optuna: pip install 'groktransfer[optuna]'")
    dims = load_grid(grid)
    plans = {}
    for method in methods:
        drawn = None if configs is None else max(configs - (1 if with_defaults else 0), 0)
        space = draw_configurations(method, dims, drawn, search_seed)
        if with_defaults:
            space = [{}] + space  # {}: the spec's own setting for this method, no grid value applied
        plans[method] = space if configs is None else space[:configs]
        for point in plans[method]:  # validate every trial before training anything
            method_run_config(spec, method, seeds[0], _with_fixed(spec, method, point))
        prepare(method_run_config(spec, method, seeds[0], _with_fixed(spec, method, plans[method][0])))

    out = claim_sweep_dir(out, "tune.json")  # never a folder of the user's files
    def trial_dir(method: str, index: int, seed: int) -> Path:
        return out / "trials" / method / f"trial{index:04d}" / f"seed{seed}"

    if search == "optuna":
        for method in methods:
            plans[method] = _optuna_plan(
                spec, method, seeds, method_dims(method, dims), configs, with_defaults, search_seed, metric,
                out, trial_dir, trials_at_once,
                lambda jobs: run_many(jobs, parallel=parallel, progress=progress, log=log, executor=executor), log)

    jobs = [
        (method_run_config(spec, method, seed, _with_fixed(spec, method, point)), trial_dir(method, index, seed))
        for method in methods for index, point in enumerate(plans[method]) for seed in seeds
    ]
    log(f"[tune] {len(jobs)} runs: {', '.join(f'{m} {len(plans[m])} configurations' for m in methods)} × {len(seeds)} seeds")
    summaries = iter(run_many(jobs, parallel=parallel, progress=progress, log=log, executor=executor))
    trials, best = [], {}
    for method in methods:
        ranked = []
        for index, point in enumerate(plans[method]):
            hyper = _with_fixed(spec, method, point)
            numbers = [run_numbers(next(summaries), trial_dir(method, index, seed)) for seed in seeds]
            values = [n[metric] for n in numbers]
            best_acc = [n["best_test_acc"] for n in numbers]
            key = rank_key(values, best_acc, index)
            trials.append({"method": method, "trial": index, "params": json.dumps(point), "metric": metric,
                           "values": json.dumps(values), "failures": key[0], "mean_reached": key[1],
                           "mean_best_test_acc": -key[2]})
            ranked.append((key, hyper))
        ranked.sort(key=lambda item: item[0])
        best[method] = ranked[0][1]

    with open(out / "trials.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(trials[0]))
        writer.writeheader()
        writer.writerows(trials)
    atomic_write_text(out / "best.yaml", yaml.safe_dump({"metric": metric, "hyperparameters": best}, sort_keys=False))
    record = {
        "methods": methods,
        "seeds": seeds,
        "grid": grid,
        "search": search,
        "configs_per_method": {m: len(plans[m]) for m in methods},
        "with_defaults": with_defaults,
        "max_steps": spec.train.max_steps,
        "metric": metric,
        "spec": spec.to_dict(),
        "environment": environment(resolve_device(spec.device)),
        "best": best,
    }
    atomic_write_text(out / "tune.json", json.dumps(record, indent=2) + "\n")
    return record


def _optuna_plan(spec, method, seeds, space, configs, with_defaults, search_seed, metric, out, trial_dir,
                 trials_at_once, run, log) -> list[dict]:
    """``method``'s configurations as Optuna proposes them, ``trials_at_once`` at a time, each
    batch trained (through ``run``) and told its score before the next is asked."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    offset = 1 if with_defaults else 0  # trial 0 is the method's own setting, outside the search
    distinct = math.prod(len(values) for values in space.values())
    budget = min(configs - offset, distinct)  # more would train configurations already tried
    if budget < configs - offset:
        log(f"[tune] {method}: the search space holds {distinct} configurations; Optuna tries each at most once")
    database = out / "optuna.db"
    if database.exists() and not database.is_file():
        raise ConfigError(f"{str(database)!r}: not a file; move it away or use another --out")
    try:
        study = optuna.create_study(study_name=method, storage=f"sqlite:///{database.resolve()}",
                                    load_if_exists=True, direction="minimize",
                                    sampler=optuna.samplers.TPESampler(seed=search_seed))
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            study.tell(trial.number, state=TrialState.FAIL)  # asked before an interruption: asked again
        done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    except ConfigError:
        raise
    except Exception as err:  # SQLAlchemy's and Optuna's errors on a damaged or foreign file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ConfigError(f"{str(database)!r}: not a readable Optuna study ({first}); move it away or use "
                          f"another --out") from None
    stored = {name for t in done for name in t.params}
    if stored and stored != set(space):
        raise ConfigError(f"{str(database)!r}: its trials searched {', '.join(sorted(stored))}, not this "
                          f"--grid's {', '.join(sorted(space))}; use another --out for another grid")
    # the same keys with other values: refused before a trial is asked (asking writes to the study)
    if any(tuple(t.distributions[path].choices) != tuple(values) for t in done for path, values in space.items()):
        raise ConfigError(f"{str(database)!r}: its trials searched other values of this --grid's keys; use "
                          f"another --out for another grid")
    points = [dict(t.params) for t in done][:budget]
    scores = {json.dumps(t.params, sort_keys=True): t.value for t in done}
    while len(points) < budget:
        asked, new = [], []
        for _ in range(min(trials_at_once, budget - len(points))):
            # A point already tried is told its score again and another is asked for (up to 100
            # times), so that the budget buys distinct configurations while the space has them.
            for _attempt in range(100):
                trial = study.ask()
                point = {path: trial.suggest_categorical(path, values) for path, values in space.items()}
                key = json.dumps(point, sort_keys=True)
                if len(scores) + len(new) >= distinct or (key not in scores and point not in new):
                    break
                if key in scores:
                    study.tell(trial, scores[key])
                else:
                    study.tell(trial, state=TrialState.FAIL)  # proposed twice in one batch
            asked.append(trial)
            new.append(point)
        first = offset + len(points)
        log(f"[tune] {method}: Optuna proposes trials {first}–{first + len(new) - 1} (of {configs})")
        jobs = [(method_run_config(spec, method, seed, _with_fixed(spec, method, point)), trial_dir(method, first + j, seed))
                for j, point in enumerate(new) for seed in seeds]
        summaries = iter(run(jobs))
        for j, (trial, point) in enumerate(zip(asked, new)):
            numbers = [run_numbers(next(summaries), trial_dir(method, first + j, seed)) for seed in seeds]
            value = objective([n[metric] for n in numbers], [n["best_test_acc"] for n in numbers])
            study.tell(trial, value)
            scores[json.dumps(point, sort_keys=True)] = value
        points += new
    return ([{}] if with_defaults else []) + points


def objective(values: list[Optional[float]], best_test_acc: list[Optional[float]]) -> float:
    """The selection rule (rank_key) as one number for Optuna, lower better: seeds that failed
    first, then the mean metric of those that succeeded, then the mean best test accuracy."""
    failures, mean, negative_acc, _ = rank_key(values, best_test_acc, 0)
    return failures * 1e12 + (mean if math.isfinite(mean) else 1e12) + negative_acc


def _with_fixed(spec: ComparisonConfig, method: str, point: dict) -> dict:
    """The spec's own settings for ``method`` (e.g. GrokTransfer's weak stage) plus the trial's."""
    return deep_merge(spec.hyperparameters.get(method, {}), to_hyper(point))
