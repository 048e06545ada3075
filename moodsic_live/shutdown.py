"""A requested stop: SIGTERM and SIGHUP take the same path as Ctrl+C.

systemd stops a kiosk or café player with SIGTERM; closing a terminal sends SIGHUP. Python's
default for both is to die at once (rc 143 / 129): no fade-out, no summary, no history flushed.
:func:`install` makes them raise :class:`StopRequested` — a :class:`KeyboardInterrupt` — in the
main thread instead, so every ``except KeyboardInterrupt`` / ``finally`` that already makes
Ctrl+C clean does the same for them. Commands tell a requested stop (exit 0) from an interrupt
with :func:`requested`.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class StopRequested(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: stop cleanly, as for Ctrl+C. ``signame`` says which."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


def _raise_stop(signum: int, _frame) -> None:
    raise StopRequested(signal.Signals(signum).name)


def install() -> bool:
    """Route SIGTERM and SIGHUP to :class:`StopRequested` in the main thread. Returns False
    (and changes nothing) off the main thread, where Python cannot install handlers."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stop)
    return True


def requested(exc: BaseException) -> bool:
    """True when ``exc`` is a stop asked for by SIGTERM/SIGHUP (not Ctrl+C)."""
    return isinstance(exc, StopRequested)
