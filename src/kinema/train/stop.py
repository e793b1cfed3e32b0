"""A graceful stop for long training runs: SIGTERM or SIGINT asks the run to finish its step,
checkpoint and export, and exit cleanly, so `--resume` continues where it stopped. A second
SIGINT (Ctrl-C again) interrupts at once, as Python does by default.

Handlers can only be installed from the main thread; elsewhere (a run started from a worker
thread) the signals keep their default behaviour and `requested` stays None.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Context manager: while open, the first SIGTERM or SIGINT sets `requested` to the signal's
    name (and calls `on_request` with it) instead of ending the process."""

    def __init__(self, on_request: Callable[[str], None] | None = None):
        self.requested: str | None = None
        self._on_request = on_request
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.requested is None:
            self.requested = signal.Signals(signum).name
            if self._on_request is not None:
                self._on_request(self.requested)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
