"""The paper's experiments, one module per figure or family; this package only gathers them.

Each module declares its reproductions (``REPRODUCTIONS``: name -> :class:`Reproduction`) with
their claims, settings, quick overrides, runs, judges and tables side by side.
"""

from __future__ import annotations

from . import ablations, digits, embedding_study, modular_fnn, parity, transformers, xor_theory
from ..names import REPRODUCTION_ALIASES as ALIASES
from ..names import REPRODUCTION_ORDER as ORDER
from .common import Reproduction

# `reproduce all` runs them in ORDER (groktransfer.names, where the command line reads it too).
_FAMILIES = (modular_fnn, parity, digits, transformers, xor_theory, embedding_study, ablations)
_ALL = {name: spec for family in _FAMILIES for name, spec in family.REPRODUCTIONS.items()}
assert sorted(_ALL) == sorted(ORDER), "every reproduction is listed in ORDER exactly once"
REPRODUCTIONS: dict[str, Reproduction] = {name: _ALL[name] for name in ORDER}

__all__ = ["ALIASES", "REPRODUCTIONS", "Reproduction"]
