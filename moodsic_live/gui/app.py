"""``moodsic-live gui``: the desktop app (the default command, and ``python main.py``).

Checks for a display first: without one it says how to run instead of letting Qt abort. Choices come
from the command line (``--source``, ``--library``) over the remembered settings (a QSettings INI
file beside the TOML config) over the defaults (the demo source, the newest library or the demo).
``--screenshot FILE --quit-after S`` renders the real window after S seconds and exits 0.

Ctrl+C, SIGTERM (systemd stopping a kiosk) and SIGHUP close the window the way the user closing it
does: the engine stops (the music fades out within a second), the settings and the listening history
are saved, exit code 0. Qt's event loop runs no Python while it waits, so Python's signal handlers
would wait for the next timer; :class:`SignalCloser` wakes the loop through ``signal.set_wakeup_fd``
and a :class:`QSocketNotifier` on a socket pair, and its handler only asks for the close (a handler
that raised inside a Qt slot would print a traceback and change nothing).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

from moodsic_live import shutdown

from moodsic_live.errors import MoodsicError

NO_DISPLAY = ("no display to open the window on (DISPLAY/WAYLAND_DISPLAY are not set); run it on a desktop, "
              "or without a screen: QT_QPA_PLATFORM=offscreen moodsic-live gui --screenshot app.png "
              "--quit-after 20, or `moodsic-live run --headless`")

DARK = """
QWidget { background: #15181d; color: #e6e6e6; }
QLabel#title { font-size: 15pt; font-weight: 600; }
QLabel#heading { color: #8fa3b8; font-size: 9pt; letter-spacing: 1px; }
QLabel#mood { color: #ffcc80; }
QLabel#upNext { color: #9fb3c8; }
QLabel#crossfade { color: #4fc3f7; font-weight: 600; }
QLabel#problem { background: #5d4037; color: #fff3e0; padding: 6px; border-radius: 4px; }
QFrame#nowPlaying { border: 1px solid #2b3139; border-radius: 6px; }
QPushButton { background: #263038; border: 1px solid #37424d; border-radius: 4px; padding: 6px 12px; }
QPushButton:hover { background: #2f3b45; }
QPushButton:checked { background: #4e342e; }
QProgressBar { border: 1px solid #37424d; border-radius: 4px; text-align: center; height: 18px; }
QProgressBar::chunk { background: #4fc3f7; }
QComboBox, QSpinBox, QDoubleSpinBox { background: #1f252c; border: 1px solid #37424d; padding: 3px; }
QStatusBar QLabel { color: #9fb3c8; padding: 0 6px; }
QDockWidget::title { background: #1f252c; padding: 4px; }
"""


def has_display() -> bool:
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith(("xcb", "wayland")):
        return True                   # offscreen, vnc, eglfs, ...: no desktop needed
    if sys.platform != "linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def settings_path() -> Path:
    from moodsic_live.config import default_config_path

    return default_config_path().with_name("gui.ini")


def _qt_message(kind, context, text: str) -> None:
    """Qt's own log lines, minus the offscreen platform's note about window hints it cannot honour."""
    if "propagateSizeHints" not in text:
        print(f"moodsic-live: qt: {text}", file=sys.stderr, flush=True)


class SignalCloser:
    """From :meth:`install` until :meth:`uninstall`: Ctrl+C, SIGTERM and SIGHUP call ``close`` once,
    from the event loop (never inside the signal handler); a repeated signal while closing is said
    once and changes nothing. ``signame`` says which signal asked ("" when none did)."""

    def __init__(self, close) -> None:
        self.signame = ""
        self._close = close
        self._said_again = False
        self._previous: dict = {}
        self._wakeup_fd = -1
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._notifier = None

    def install(self) -> SignalCloser:
        from PySide6.QtCore import QSocketNotifier

        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._sockets = (reader, writer)
        self._wakeup_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)
        self._notifier.activated.connect(self._drain)   # Python runs: the handler below runs first
        self._previous = {sig: signal.signal(sig, self._handle) for sig in shutdown.wanted(shutdown.ALL_SIGNALS)}
        return self

    def _handle(self, signum: int, _frame) -> None:
        if self.signame:
            if not self._said_again:
                self._said_again = True
                os.write(2, f"moodsic-live: {shutdown.signame(signum)} again: already closing (the music "
                            f"fades out within a second)\n".encode())
            return
        self.signame = shutdown.signame(signum)
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, self._close)

    def _drain(self, *_args) -> None:
        try:
            while self._sockets is not None and self._sockets[0].recv(64):
                pass
        except OSError:                  # BlockingIOError: drained
            pass

    def uninstall(self) -> None:
        """Give the signals back (to the CLI's handlers) and close the socket pair."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}
        if self._sockets is not None:
            signal.set_wakeup_fd(self._wakeup_fd)
            self._notifier.setEnabled(False)
            for sock in self._sockets:
                sock.close()
            self._sockets = None


def run_gui(args, config) -> int:
    if not has_display():
        raise MoodsicError(NO_DISPLAY)
    try:
        from PySide6.QtCore import QSettings, qInstallMessageHandler
        from PySide6.QtWidgets import QApplication
    except ImportError as exc:
        raise MoodsicError(f"the window needs PySide6 ({exc}); reinstall moodsic-live (pip install -e .), "
                           "or use `moodsic-live run --headless`") from None

    from moodsic_live.gui.host import EngineHost
    from moodsic_live.gui.window import MainWindow, load_choices
    from moodsic_live.library.store import list_libraries

    qInstallMessageHandler(_qt_message)
    app = QApplication.instance() or QApplication([sys.argv[0], *getattr(args, "qt_args", [])])
    app.setApplicationName("Moodsic Live")
    app.setStyle("Fusion")
    app.setStyleSheet(DARK)
    settings = QSettings(str(args.settings or settings_path()), QSettings.Format.IniFormat)
    choices = load_choices(settings)
    if args.source:
        choices.source = args.source
    if args.library:
        choices.library = args.library
    if args.no_face:
        choices.face = False
    if args.no_scene:
        choices.scene = False
    if args.detector:
        choices.detector = args.detector
    if args.crossfade is not None:
        choices.crossfade = args.crossfade
    if args.atmosphere_only:
        choices.atmosphere = True
    libraries = [p.stem for p in list_libraries(config.library.dir)]
    window = MainWindow(EngineHost(config), settings, choices, libraries=libraries, output=args.output,
                        kiosk=args.kiosk)
    geometry = settings.value("geometry")
    if geometry is not None and not args.screenshot:
        window.restoreGeometry(geometry)
    else:
        window.resize(1400, 860)
    if not args.kiosk:
        window.show()

    def close_on_signal() -> None:       # the user's close: engine stopped, fade-out, settings saved
        window.close()
        app.quit()                       # also when the window was never shown or a dialog is open

    closer = SignalCloser(close_on_signal).install()
    try:
        window.start()
        if args.screenshot or args.quit_after:
            window.quit_later(args.quit_after or 20.0, str(args.screenshot) if args.screenshot else None)
        code = app.exec()
    finally:
        closer.uninstall()
        if closer.signame:
            shutdown.hold()              # stopping: a signal from now on is said, not a traceback
    if closer.signame:
        print(f"moodsic-live: {shutdown.line(closer.signame, 'the window closed as if by the user')}",
              file=sys.stderr, flush=True)
        return 0
    if args.screenshot and not Path(args.screenshot).is_file():
        raise MoodsicError(f"the screenshot {args.screenshot} could not be written; choose a writable path")
    return code
