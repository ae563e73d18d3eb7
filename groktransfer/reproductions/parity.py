"""Sparse parity: the vector-input FNN of Fig. 6(c) and the transformers of Fig. 13."""

from __future__ import annotations



from .common import Reproduction, gap_text, judge_time_gap, time_gap_table


def _judge_fig13(summary: dict) -> tuple[dict, bool]:
    run = summary["stages"]["scratch"]
    measured = {k: run[k] for k in ("train_acc_95_step", "test_acc_95_step", "time_gap", "final_test_acc",
                                    "final_train_acc")}
    fit, gap = run["train_acc_95_step"], run["time_gap"]
    holds = fit is not None and gap is not None and gap <= max(fit, 1)
    return measured, holds


def _fig13_table(summary: dict, measured: dict) -> str:
    return "\n".join([
        "| 95% train | 95% test | Time Gap | final train | final test |", "|---|---|---|---|---|",
        f"| {gap_text(measured['train_acc_95_step'])} | {gap_text(measured['test_acc_95_step'])} | "
        f"{gap_text(measured['time_gap'])} | {measured['final_train_acc']:.3f} | {measured['final_test_acc']:.3f} |",
    ])



REPRODUCTIONS: dict[str, Reproduction] = {
    "fig6c": Reproduction(
        preset="fig6c",
        claim="Fig. 6(c): on (40, 3) sparse parity (1000 training strings), a vector-input target whose first "
              "layer starts from a weak FNN's (stopped at 70% test accuracy) generalises without the delay that "
              "the same FNN trained from scratch shows.",
        criterion="holds when GrokTransfer reaches 95% test accuracy and its Time Gap is at most 1/5 of the "
                  "scratch baseline's (never = infinite)",
        quick=["target.train.max_steps=2000", "scratch.train.max_steps=2000"],
        judge=judge_time_gap, table=lambda summary, measured: time_gap_table(summary, measured),
    ),
    "fig13": Reproduction(
        preset="fig13",
        claim="Fig. 13: transformers on (40, 3) sparse parity show no delayed generalisation: test accuracy "
              "rises together with training accuracy.",
        criterion="holds when the transformer reaches 95% test accuracy and its Time Gap is no longer than the "
                  "steps it took to reach 95% training accuracy",
        quick=["scratch.model.embed_dim=32", "scratch.model.transformer.n_layers=1",
               "scratch.model.transformer.d_mlp=128", "scratch.model.transformer.d_head=null",
               "scratch.train.max_steps=6000", "scratch.train.lr=0.003"],
        judge=_judge_fig13, table=_fig13_table,
    ),
}
