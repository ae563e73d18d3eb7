"""The paper's experiments, one module per figure or family; this package only gathers them.

Each module declares its reproductions (``REPRODUCTIONS``: name -> :class:`Reproduction`) with
their claims, settings, quick overrides, runs, judges and tables side by side.
"""

from __future__ import annotations

from . import ablations, digits, embedding_study, modular_fnn, parity, transformers, xor_theory
from .common import Reproduction

# `reproduce all` runs them in this order (the cheapest FNN figures first).
ORDER = ['fig1b', 'fig6a', 'fig6b', 'fig6c', 'fig13', 'fig14', 'fig8b', 'fig16', 'xor', 'fig2', 'fig3', 'fig7', 'fig15', 'fig4a', 'fig5', 'fig10', 'fig11', 'fig12', 'table1']

_FAMILIES = (modular_fnn, parity, digits, transformers, xor_theory, embedding_study, ablations)
_ALL = {name: spec for family in _FAMILIES for name, spec in family.REPRODUCTIONS.items()}
assert sorted(_ALL) == sorted(ORDER), "every reproduction is listed in ORDER exactly once"
REPRODUCTIONS: dict[str, Reproduction] = {name: _ALL[name] for name in ORDER}

# Figures whose claim one reproduction tests together with others': `reproduce fig9` runs `xor`.
ALIASES = {
    "fig4": "fig4a",  # Fig. 4: (a) normal training; (b) the weak model, which `xor` covers
    "fig4b": "xor",  # the 3-neuron weak model and its alignment with three of [±1, ±1]
    "fig9": "xor",  # the transferred target, correct after one gradient step
}

__all__ = ["ALIASES", "REPRODUCTIONS", "Reproduction"]
