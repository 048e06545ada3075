"""A requested stop: SIGTERM and SIGHUP take the same path as Ctrl+C.

systemd stops a kiosk or café player with SIGTERM; closing a terminal sends SIGHUP. Python's
default for both is to die at once (rc 143 / 129): no fade-out, no summary, no history flushed.
:func:`install` makes them raise :class:`StopRequested` — a :class:`KeyboardInterrupt` — in the
main thread instead, so every ``except KeyboardInterrupt`` / ``finally`` that already makes
Ctrl+C clean does the same for them. Commands tell a requested stop (exit 0) from an interrupt
with :func:`requested`, and say which signal stopped them with :func:`line`.

Once a stop is under way, :func:`hold` turns further stop signals (a second Ctrl+C, systemd's
stop followed by another SIGTERM) into a one-line note: the clean stop is bounded (the engine
fades out and stops within about a second), so it always finishes; a second signal neither cuts
the fade nor leaves a traceback. The window, whose Qt event loop does not run Python between
events, closes itself on these signals instead (:mod:`moodsic_live.gui.app`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
ALL_SIGNALS = (signal.SIGINT, *STOP_SIGNALS)      # the ones that end a run: Ctrl+C and the requested stops
Handlers = dict[int, object]


class StopRequested(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: stop cleanly, as for Ctrl+C. ``signame`` says which."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


def signame(signum: int) -> str:
    """"SIGTERM", "SIGHUP"; SIGINT is the user's "Ctrl+C"."""
    return "Ctrl+C" if signum == signal.SIGINT else signal.Signals(signum).name


_stopped_at: float | None = None     # time.monotonic() of the last stop signal raised by these handlers
_stopped_by: str | None = None       # and its name


def stopped_at() -> float | None:
    """When the last Ctrl+C, SIGTERM or SIGHUP was raised as an exception (None: never)."""
    return _stopped_at


def stopped_by() -> str | None:
    """Which signal :func:`install`'s handlers last raised ("SIGTERM", "SIGHUP", "Ctrl+C"; None: none).
    A stop raised inside an import or a library can come out as another exception (a C extension's
    init turns it into an ImportError, a library wraps it): the CLI asks this to still call it a stop."""
    return _stopped_by


def _note(signum: int) -> None:
    global _stopped_at, _stopped_by
    _stopped_at, _stopped_by = time.monotonic(), signame(signum)


def _raise_stop(signum: int, _frame) -> None:
    _note(signum)
    raise StopRequested(signal.Signals(signum).name)


def _raise_interrupt(signum: int, frame) -> None:
    _note(signum)
    signal.default_int_handler(signum, frame)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> Handlers | None:
    """Route SIGTERM and SIGHUP to :class:`StopRequested` in the main thread. Returns the handlers
    it replaced (for :func:`restore`), or None (and changes nothing) off the main thread, where
    Python cannot install handlers. A signal ignored when the program started stays ignored
    (``nohup moodsic-live run`` keeps playing when its terminal closes)."""
    global _stopped_at, _stopped_by
    if not _main_thread():
        return None
    _stopped_at = _stopped_by = None
    previous = {sig: signal.getsignal(sig) for sig in ALL_SIGNALS}
    _set(wanted(STOP_SIGNALS, previous), _raise_stop)
    if previous[signal.SIGINT] is signal.default_int_handler:   # Ctrl+C: KeyboardInterrupt as before
        signal.signal(signal.SIGINT, _raise_interrupt)
    return previous


def wanted(signals, handlers: Handlers | None = None) -> list[int]:
    """``signals`` minus the ones that are ignored (SIG_IGN)."""
    return [sig for sig in signals
            if (handlers[sig] if handlers is not None else signal.getsignal(sig)) is not signal.SIG_IGN]


def restore(previous: Handlers | None) -> None:
    """Put back the handlers :func:`install` (and :func:`hold`) replaced."""
    if previous is None or not _main_thread():
        return
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _set(signals, handler) -> Handlers:
    return {sig: signal.signal(sig, handler) for sig in signals}


def hold(note: Callable[[str], None] | None = None) -> bool:
    """A clean stop has begun: from now on Ctrl+C, SIGTERM and SIGHUP do not interrupt it. The first
    such signal is said in one line (written straight to stderr: safe inside a signal handler, even
    while the main thread is printing); later ones are ignored. Returns False off the main thread."""
    if not _main_thread():
        return False
    said = False

    def noted(signum: int, _frame) -> None:
        nonlocal said
        if said:
            return
        said = True
        text = f"{signame(signum)} again: already stopping (the music fades out within a second)"
        if note is not None:
            note(text)
        else:
            try:
                os.write(2, f"moodsic-live: {text}\n".encode())
            except OSError:
                pass

    _set(wanted(ALL_SIGNALS), noted)
    return True


def requested(exc: BaseException) -> bool:
    """True when ``exc`` is a stop asked for by SIGTERM/SIGHUP (not Ctrl+C)."""
    return isinstance(exc, StopRequested)


def name(exc: BaseException) -> str:
    """Which signal ``exc`` (a KeyboardInterrupt) stands for: "SIGTERM", "SIGHUP" or "Ctrl+C"."""
    return exc.signame if isinstance(exc, StopRequested) else "Ctrl+C"


def line(exc_or_name: BaseException | str, what: str = "") -> str:
    """The one line a command says when a signal stopped it: "stopped by SIGTERM" [+ "; " + what]."""
    who = exc_or_name if isinstance(exc_or_name, str) else name(exc_or_name)
    return f"stopped by {who}" + (f"; {what}" if what else "")
