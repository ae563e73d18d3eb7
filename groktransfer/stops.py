"""A stop (SIGINT, SIGTERM) that is heard even where its exception is lost.

A signal's Python handler runs wherever the main thread happens to be. When that is a finalizer
(``__del__``), a weakref callback or an at-fork callback, Python cannot raise there: it prints
"Exception ignored in ..." with a traceback and drops the ``KeyboardInterrupt`` or ``SystemExit``,
and the command runs on as if nothing came. Ray's start is such a place: it forks its processes
with SIGTERM handled by Ray's own handler (``sys.exit``), and the logging module's at-fork callback
then swallowed a stop (the command trained on for good). While :func:`hearing_lost_stops` is
active, such an exception is recorded instead of printed, and :func:`lost_stop` says so; the
loops that wait on other processes, and the trainer's stop flag, poll it.
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

_lost = threading.Event()
_depth = 0  # nested contexts (the CLI's around an executor's): the outermost one clears the record


def lost_stop() -> bool:
    """Whether a stop's exception was dropped by Python while :func:`hearing_lost_stops` listened."""
    return _lost.is_set()


def _is_a_stop(unraisable) -> bool:
    # Only the main thread runs signal handlers: a KeyboardInterrupt or SystemExit dropped there is
    # a stop; one dropped in another thread is some other code's, and is printed as before.
    return (threading.current_thread() is threading.main_thread()
            and isinstance(unraisable.exc_type, type)
            and issubclass(unraisable.exc_type, (KeyboardInterrupt, SystemExit)))


@contextmanager
def hearing_lost_stops() -> Iterator[None]:
    """Record, silently, every stop whose exception Python drops (``sys.unraisablehook``); any
    other dropped exception goes to the hook that was there before, which prints it."""
    global _depth
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if _is_a_stop(unraisable):
            _lost.set()
        else:
            previous(unraisable)

    if _depth == 0:
        _lost.clear()
    _depth += 1
    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous
        _depth -= 1
        if _depth == 0:
            _lost.clear()  # a later call in this process starts without an old stop


def sigterm_as_interrupt(signum, frame) -> None:
    """SIGTERM stops as SIGINT does: a KeyboardInterrupt, which the CLI answers with exit code 130."""
    raise KeyboardInterrupt("stopped by SIGTERM")


@contextmanager
def sigterm_like_sigint() -> Iterator[None]:
    """From here on, a SIGTERM that would kill the process at once (its default) stops it as SIGINT
    does, with one line and exit code 130, at every moment of a command, its set-up included. Only
    the main thread can install handlers; a handler someone else installed is kept."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return
    signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def raise_if_lost(message: str = "stopped by a signal") -> None:
    """Raise the ``KeyboardInterrupt`` that a lost stop could not."""
    if _lost.is_set():
        raise KeyboardInterrupt(message)
