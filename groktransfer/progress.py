"""Progress of a training loop: a bar on a terminal, a status line now and then elsewhere.

Usage::

    progress = Progress(total=10_000, label="target", enabled=True)
    progress.update(step, train=0.93, test=0.41)   # at each evaluation
    progress.close()

On a terminal (stderr is a TTY) this is a tqdm bar redrawn in place. When nobody is
watching (``groktransfer demo > log 2>&1``, a batch job), redrawing would write a line per
evaluation into the log, so it prints one short line every ``every_seconds`` instead (and a
last one at the end): the step, the numbers given, and steps per second.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

STATUS_EVERY_SECONDS = 10.0


class Progress:
    def __init__(self, total: int, label: str, enabled: bool = True, *, stream: Optional[TextIO] = None,
                 every_seconds: float = STATUS_EVERY_SECONDS) -> None:
        self.total, self.label, self.enabled = total, label, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.every = every_seconds
        self.bar = None
        self.start = self.last_print = time.perf_counter()
        self.step, self.fields = 0, {}
        if enabled and _is_terminal(self.stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=label, unit="step", leave=False, dynamic_ncols=True, file=self.stream)

    def update(self, step: int, **fields) -> None:
        if not self.enabled:
            return
        self.step, self.fields = step, fields
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix(**{k: _show(v) for k, v in fields.items()}, refresh=True)
            return
        now = time.perf_counter()
        if now - self.last_print >= self.every:
            self._line(now)

    def _line(self, now: float) -> None:
        rate = self.step / max(now - self.start, 1e-9)
        numbers = " ".join(f"{k} {_show(v)}" for k, v in self.fields.items())
        print(f"[{self.label}] step {self.step}/{self.total} {numbers} {rate:.0f} steps/s".replace("  ", " "),
              file=self.stream, flush=True)
        self.last_print = now

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        elif self.step and time.perf_counter() - self.start >= self.every:  # long enough to have been reported
            self._line(time.perf_counter())


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _show(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


__all__ = ["Progress"]
