"""The names the command line offers before anything heavy is imported: the methods of
``compare`` and ``tune`` (and what each turns on) and the paper's reproductions.

Each list lives here once; groktransfer.compare and groktransfer.reproductions use these.
"""

from __future__ import annotations

# What each method turns on, on top of the shared stage (its tunable values come from the
# spec's hyperparameters or a tuning result).
METHODS: dict[str, dict] = {
    "scratch": {},  # plain AdamW with tuned lr / weight decay / init scale: the weight-decay baseline
    "grokfast-ema": {"methods": {"grokfast": {"filter": "ema"}}},
    "grokfast-ma": {"methods": {"grokfast": {"filter": "ma"}}},
    "omnigrok": {"methods": {"norm_constraint": 1.0}, "train": {"weight_decay": 0.0}},
    "stablemax": {"methods": {"loss": "stablemax"}},
    "orthograd": {"methods": {"orthograd": True}},
    "groktransfer": {},  # the stage is the target; a weak stage runs first
}

# `reproduce all` runs them in this order (the cheapest FNN figures first).
REPRODUCTION_ORDER = ['fig1b', 'fig6a', 'fig6b', 'fig6c', 'fig13', 'fig14', 'fig8b', 'fig16', 'xor', 'fig2', 'fig3', 'fig7', 'fig15', 'fig4a', 'fig5', 'fig10', 'fig11', 'fig12', 'table1']

# Figures whose claim one reproduction tests together with others': `reproduce fig9` runs `xor`.
REPRODUCTION_ALIASES = {
    "fig4": "fig4a",  # Fig. 4: (a) normal training; (b) the weak model, which `xor` covers
    "fig4b": "xor",  # the 3-neuron weak model and its alignment with three of [±1, ±1]
    "fig9": "xor",  # the transferred target, correct after one gradient step
}
