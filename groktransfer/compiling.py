"""Opt-in ``torch.compile`` of the training step's forward and loss, with an eager fallback.

``train.compile: true`` in a config hands the function that maps a batch to its loss (the
model's forward plus the loss; for the batched engine, the vmapped forward of all K runs) to
``torch.compile``. Its backward is compiled with it. On CUDA the mode is
``"reduce-overhead"``, which records the step as CUDA graphs: the paper's models are so small
that kernel-launch overhead, not arithmetic, bounds a step there. On the CPU the default mode
is used (measured in ``benchmarks/compile.py``; on 2 cores it did not help, so it is off by
default everywhere).

If compiling fails (no C++ compiler, an unsupported operation, a backend error) the step
falls back to eager PyTorch for the rest of the run, with one warning, and the run records
``compiled: false``; a compiled step never changes what is computed beyond floating-point
rounding (tested against eager).
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch


class CompiledStep:
    """Call ``function`` through ``torch.compile``; on any compile-time failure, use it eagerly.

    ``active`` tells whether the compiled version is (still) in use. An error raised by the
    function itself is raised again by the eager call, so it is never hidden.
    """

    def __init__(self, function: Callable, device: torch.device, enabled: bool) -> None:
        self.eager = function
        self.active = enabled
        self.compiled = None
        if enabled:
            mode = "reduce-overhead" if device.type == "cuda" else None
            self.compiled = torch.compile(function, mode=mode, dynamic=False)

    def __call__(self, *args):
        if self.active:
            try:
                return self.compiled(*args)
            except Exception as error:  # noqa: BLE001 - any compiler failure means: run eagerly
                self.active = False
                first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                warnings.warn(
                    f"train.compile: torch.compile failed ({type(error).__name__}: {first_line[:200]}); "
                    "continuing eagerly",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return self.eager(*args)
