"""Stopping long work cleanly on SIGINT (Ctrl-C) or SIGTERM (``docker stop``, systemd,
Kubernetes, a batch scheduler's time limit).

The first signal asks for a stop; the work takes it at its next boundary (a training step, an
input line) and saves what it must. Two moments end at once instead, by raising `Stopped`:
a signal that comes while the work waits for input (`StopSignal.waiting`, nothing to finish),
and a second signal while the stop is `armed` (the user insists). Files stay intact either way:
every write is atomic (`rnnkit.files`).

    stop = StopSignal()
    with stop.installed(), stop.armed():
        while not stop.requested:
            one_step()
    save()
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(BaseException):  # noqa: N818 - a control-flow signal, like KeyboardInterrupt
    """Raised by `StopSignal` when the work must end at once; ``signum`` says which signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignal:
    """A stop asked for by a signal (or by `request`), taken at the work's next boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._waiting = False
        self._armed = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def request(self, signum: int = signal.SIGINT) -> None:
        """Ask for a stop as a signal would (from a hook, a test, another thread)."""
        self.signum = signum

    def clear(self) -> None:
        self.signum = None

    @property
    def name(self) -> str:
        """The signal's name, ``SIGTERM``; empty before a stop is asked for."""
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: Any) -> None:
        again = self.signum is not None
        self.signum = signum
        if self._waiting or (again and self._armed):
            raise Stopped(signum)

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a read that may block: a signal now stops at once."""
        self._waiting = True  # set before the check, so no signal falls between the two
        try:
            if self.signum is not None:
                raise Stopped(self.signum)
            yield
        finally:
            self._waiting = False

    @contextmanager
    def armed(self) -> Iterator[None]:
        """Inside the block a second signal stops at once; outside it (saving, say) it is
        only recorded."""
        self._armed = True
        try:
            yield
        finally:
            self._armed = False

    @contextmanager
    def installed(self, signums: tuple[int, ...] = STOP_SIGNALS) -> Iterator[StopSignal]:
        """Catch ``signums`` inside the block. Only the main thread can install handlers;
        elsewhere the block runs with the handlers as they are (`request` still works)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in signums}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
