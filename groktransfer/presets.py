"""Named experiment presets: YAML files in ``groktransfer/experiments/``.

Presets are data, not code: each file is a :class:`~groktransfer.config.RunConfig` in YAML
whose first comment line describes it. ``groktransfer presets`` lists them.
"""

from __future__ import annotations

from pathlib import Path

from .config import ConfigError, RunConfig, apply_overrides, load_config_file, run_config_from_dict

PRESET_DIR = Path(__file__).resolve().parent / "experiments"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    if name not in preset_names():
        raise ConfigError(f"--preset {name!r}: unknown preset; allowed: {', '.join(preset_names())}")
    return PRESET_DIR / f"{name}.yaml"


def preset_description(name: str) -> str:
    first = preset_path(name).read_text(encoding="utf-8").splitlines()[0]
    return first.lstrip("# ").strip()


def preset_dict(name: str) -> dict:
    return load_config_file(preset_path(name))


def load_preset(name: str, overrides: tuple[str, ...] | list[str] = ()) -> RunConfig:
    """The preset ``name`` as a validated RunConfig, with ``key=value`` overrides applied."""
    return run_config_from_dict(apply_overrides(preset_dict(name), list(overrides)))
