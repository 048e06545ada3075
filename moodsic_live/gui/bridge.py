"""Engine → widgets: a GUI-thread timer that turns the engine's snapshots into Qt signals.

The engine's threads never touch a widget. They publish plain values: the newest frame
(:attr:`LiveEngine.latest_frame`) and a frozen :class:`~moodsic_live.engine.live.Status`, and the host
queues its events. :class:`EngineBridge` reads them on the GUI thread every ``interval_ms`` (15 ms:
twice a 30 fps camera's rate, so a frame is not missed when timer and camera drift in phase) —
attribute reads, never a wait — and emits a signal only for what changed. Widgets connect to the signals; tests emit or wait for them with pytest-qt.

The bridge also measures the GUI thread's own work (``busy_s``: time spent in its ticks, the slots
they drive included) for ``bench/gui.py``.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

from moodsic_live.gui.host import EngineHost


class EngineBridge(QObject):
    frame = Signal(object)        # np.ndarray, BGR: the newest camera frame
    status = Signal(object)       # engine.live.Status
    said = Signal(str)            # a line the engine or the set-up said (progress, problems)
    progress = Signal(str)        # first-run / library-build progress
    started = Signal(str)         # an engine runs (the source's label)
    failed = Signal(str)          # a start failed (one line)
    library_built = Signal(str)   # a library was built (its name)

    def __init__(self, host: EngineHost, interval_ms: int = 15, parent: QObject | None = None):
        super().__init__(parent)
        self.host = host
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.tick)
        self._frame_id = 0
        self._status_id = 0
        self.busy_s = 0.0
        self.ticks = 0

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def tick(self) -> None:
        t0 = time.perf_counter()
        for event in self.host.events():
            signal = {"say": self.said, "progress": self.progress, "started": self.started,
                      "failed": self.failed, "library": self.library_built}[event.kind]
            signal.emit(event.text)
        engine = self.host.engine
        if engine is not None:
            frame = engine.latest_frame
            if frame is not None and id(frame) != self._frame_id:
                self._frame_id = id(frame)
                self.frame.emit(frame.image)
            status = engine.status
            if status is not None and id(status) != self._status_id:
                self._status_id = id(status)
                self.status.emit(status)
        self.ticks += 1
        self.busy_s += time.perf_counter() - t0
