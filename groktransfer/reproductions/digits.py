"""MNIST-style digits (Fig. 14): a 4-layer MLP from a 2-layer weak MLP's first layer."""

from __future__ import annotations

from typing import Optional

from .common import Reproduction, at_most_a_fifth, gap_text


def _judge_fig14(summary: dict) -> tuple[dict, bool]:
    """The delay measured at the runs' own stopping accuracy (85% test on the 8×8 digits, whose
    test accuracy tops out near 90%): steps from 95% train to reaching it."""
    def delay(stage: Optional[dict]) -> tuple[Optional[int], Optional[int]]:
        if stage is None or stage["status"] != "target_reached":
            return None, None
        fit = stage["train_acc_95_step"]
        return stage["steps"], None if fit is None else stage["steps"] - fit

    stages = summary["stages"]
    gt_steps, gt_gap = delay(stages.get("target"))
    base_steps, base_gap = delay(stages.get("scratch"))
    measured = {
        "weak_steps": stages["weak"]["steps"], "weak_test_acc": stages["weak"]["final_test_acc"],
        "groktransfer_steps_to_threshold": gt_steps, "groktransfer_delay": gt_gap,
        "scratch_steps_to_threshold": base_steps, "scratch_delay": base_gap,
    }
    holds = at_most_a_fifth(gt_gap, base_gap)
    return measured, holds


def _fig14_table(summary: dict, measured: dict) -> str:
    return "\n".join([
        "| | GrokTransfer | scratch |", "|---|---|---|",
        f"| steps to stop accuracy | {gap_text(measured['groktransfer_steps_to_threshold'])} | "
        f"{gap_text(measured['scratch_steps_to_threshold'])} |",
        f"| delay: steps from 95% train to stop accuracy | {gap_text(measured['groktransfer_delay'])} | "
        f"{gap_text(measured['scratch_delay'])} |",
        f"| weak stage | {measured['weak_steps']} steps, test {measured['weak_test_acc']:.3f} | |",
        "", "Stop accuracy: the test accuracy at which both runs stop (train.stop_at_test_acc, 85% in the preset).",
    ])



REPRODUCTIONS: dict[str, Reproduction] = {
    "fig14": Reproduction(
        preset="fig14",
        claim="Fig. 14: on MNIST (200 training / 400 test images) a 4-layer MLP whose first layer starts from a "
              "2-layer weak MLP's (stopped at 40% test accuracy) generalises without the delay of the same MLP "
              "trained from scratch.",
        criterion="holds when GrokTransfer reaches the test threshold (85%, where the runs stop) and its delay from "
                  "95% training accuracy to it is at most 1/5 of scratch's (never = infinite)",
        quick=[],  # the full size already runs in seconds on the CPU
        judge=_judge_fig14, table=_fig14_table,
    ),
}
