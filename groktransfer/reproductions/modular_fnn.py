"""The modular-arithmetic FNN figures at the paper's size: Figs. 1(b), 6(a) and 6(b)."""

from __future__ import annotations



from .common import QUICK_FNN, Reproduction, judge_time_gap, time_gap_table


def _fnn_figure(preset: str, claim: str) -> Reproduction:
    return Reproduction(
        preset=preset, claim=claim,
        criterion="holds when GrokTransfer reaches 95% test accuracy and its Time Gap is at most 1/5 of the "
                  "scratch baseline's (never = infinite)",
        quick=QUICK_FNN, judge=judge_time_gap, table=lambda summary, measured: time_gap_table(summary, measured),
    )



REPRODUCTIONS: dict[str, Reproduction] = {
    "fig1b": _fnn_figure("fig1b", "On (a+b) mod 113, GrokTransfer's target generalises almost as soon as it fits "
                                  "the training data, while the same FNN trained from scratch groks much later."),
    "fig6a": _fnn_figure("fig6a", "Fig. 6(a): on modular addition GrokTransfer removes the delay that a tuned "
                                  "from-scratch FNN shows."),
    "fig6b": _fnn_figure("fig6b", "Fig. 6(b): the same on modular multiplication."),
}
