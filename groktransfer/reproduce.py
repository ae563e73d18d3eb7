"""``groktransfer reproduce NAME [--quick]``: re-run one of the paper's experiments and test its claim.

Usage::

    record = reproduce("fig8b", out="runs/fig8b", quick=True)
    record["holds"], record["measured"]

Each reproduction runs a preset (the paper's printed settings) through the pipeline and
writes, in ``out``:

- ``run/``: the run directory (config, metrics, summary, accuracy.png, loss.png);
- ``table.md``: the numbers the claim is judged on, beside the paper's where it prints them;
- ``claim.json``: the paper's claim in words, the criterion used to test it, the measured
  figures, ``holds: true/false``, the size (full or quick, and what --quick changed), the
  device and the command.

``--quick`` is a CPU-sized version that keeps the claim visible: a smaller modulus and
transformer (each reproduction lists its overrides, and claim.json records them). Its
numbers are not the paper's; only whether the claim holds is comparable.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Union

from .config import ConfigError, from_dict, parse_override
from .pipeline import format_table, prepare, run_experiment
from .presets import load_preset, preset_description
from .records import atomic_write_text, check_new_run_dir, claim_dir, environment, remove_owned
from .reproductions import ALIASES, REPRODUCTIONS
from .reproductions.common import PresetSettings
from .training import resolve_device


def reproduce(
    name: str,
    out: Union[str, Path],
    *,
    quick: bool = False,
    overrides: tuple[str, ...] | list[str] = (),
    overwrite: bool = False,
    progress: bool = False,
    command: str = "",
    log: Callable[[str], None] = lambda message: None,
    parallel: Union[int, str] = "auto",
    executor=None,
) -> dict:
    """Run reproduction ``name`` (or an alias of one, see ``ALIASES``) into ``out``; return the
    claim record (also in claim.json). ``parallel`` is passed to :func:`groktransfer.sweep.run_many`
    by the reproductions made of several runs of one architecture (Figs. 2, 3, 7, 15); ``executor``
    is where their sweeps run (see :mod:`groktransfer.executors`; None: this process)."""
    if name not in REPRODUCTIONS and name not in ALIASES:
        raise ConfigError(f"reproduce {name!r}: unknown; allowed: {', '.join([*REPRODUCTIONS, *ALIASES])}")
    if name in ALIASES:
        log(f"[reproduce {name}] {name} is part of the {ALIASES[name]!r} reproduction")
        name = ALIASES[name]
    spec = REPRODUCTIONS[name]
    applied = (spec.quick if quick else []) + list(overrides)
    if spec.run is not None:
        settings = _settings(name, spec.settings, applied)  # a bad setting is refused before anything is written
        if isinstance(settings, PresetSettings):  # so is a bad preset or override
            settings.preset_config()
        resolve_device(getattr(settings, "device", "cpu"))  # a device this machine lacks, before anything is deleted
    else:
        config = load_preset(spec.preset, applied)
        prepare(config)  # device, task, memory: refused before anything is deleted or written
    out = check_new_run_dir(out, overwrite)
    if overwrite:
        remove_owned(out)  # --overwrite means fresh runs: nothing of an earlier reproduction is reused
    claim_dir(out)
    log(f"[reproduce {name}] {spec.claim if spec.preset is None else preset_description(spec.preset)}")
    if quick:
        log(f"[reproduce {name}] --quick: {' '.join(spec.quick)}")
    if spec.run is not None:
        out.mkdir(parents=True, exist_ok=True)
        summary = spec.run(settings, out, parallel=parallel, executor=executor)
        summary.update(environment(resolve_device(getattr(settings, "device", "cpu"))))
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    else:
        summary = run_experiment(config, out / "run", overwrite=True, progress=progress, log=log)
    measured, holds = spec.judge(summary)
    table = spec.table(summary, measured)
    record = {
        "reproduction": name,
        "preset": spec.preset,
        "claim": spec.claim,
        "criterion": spec.criterion,
        "holds": holds,
        "measured": measured,
        "size": "quick" if quick else "full",
        "overrides": applied,
        "command": command,
        "device": summary.get("device_name") or summary.get("device"),
        "git_commit": summary.get("git_commit"),
        "plots": ["run/accuracy.png", "run/loss.png"] if spec.preset else summary.get("plots", []),
        "run_table": format_table(summary) if spec.preset else table,
    }
    atomic_write_text(out / "table.md", table + "\n")
    atomic_write_text(out / "claim.json", json.dumps(record, indent=2) + "\n")
    return record


def reproduce_all(
    out: Union[str, Path], *, quick: bool = False, overwrite: bool = False, progress: bool = False,
    command: str = "", log: Callable[[str], None] = lambda message: None, parallel: Union[int, str] = "auto",
    executor=None,
) -> dict:
    """Every reproduction into ``out/NAME``; ``out/all.md`` lists whether each claim held."""
    out = check_new_run_dir(out, overwrite)
    if overwrite:
        remove_owned(out)
    claim_dir(out)
    start = time.perf_counter()
    records, rows = {}, ["| reproduction | size | holds | claim |", "|---|---|---|---|"]
    for name in REPRODUCTIONS:
        log(f"[reproduce all] {name}")
        record = reproduce(name, out / name, quick=quick, progress=progress, command=command, log=log,
                           parallel=parallel, executor=executor)
        records[name] = {"holds": record["holds"], "size": record["size"]}
        rows.append(f"| [{name}]({name}/table.md) | {record['size']} | {str(record['holds']).lower()} | {record['claim']} |")
        atomic_write_text(out / "all.md", "\n".join(rows) + "\n")
    record = {"command": command, "wall_clock_s": time.perf_counter() - start, "reproductions": records}
    atomic_write_text(out / "all.json", json.dumps(record, indent=2) + "\n")
    return records


def _settings(name: str, settings_class: type, overrides: list[str]):
    """A reproduction's settings (a Config class) with key=value overrides, parsed and checked like
    every config's; ``seeds=N`` stands for seeds 0 .. N-1."""
    values = {}
    for item in overrides:
        parts, value = parse_override(item)
        key = ".".join(parts)
        if key == "seeds" and isinstance(value, int) and not isinstance(value, bool):
            value = list(range(value))
        values[key] = value
    return from_dict(settings_class, values, prefix=f"reproduce {name}: ")


__all__ = ["ALIASES", "REPRODUCTIONS", "reproduce", "reproduce_all"]
