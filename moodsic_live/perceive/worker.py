"""The inference worker: one thread that owns the ONNX sessions and perceives the newest frame.

Capture hands frames to :meth:`InferenceWorker.submit`, which never blocks: the worker
holds at most one waiting frame, and a newer frame replaces it (the older one is counted
as dropped), so a slow model never builds a queue of stale frames. Results go to a
bounded output queue; if its reader falls behind, the oldest result is dropped. With
``perceive.max_rate_hz`` (10 by default) the worker starts at most that many perceptions a second,
always on the newest frame; frames replaced while it waits on purpose are counted as *skipped*,
those replaced while it is busy as *dropped* (late).

:meth:`InferenceWorker.reconfigure` (experts on/off, detector range, atmosphere only) rebuilds the
perceiver on the worker's own thread before its next frame: the ONNX sessions never change thread,
and the caller (e.g. the GUI) never waits for models to load. If the new settings cannot be loaded,
the old perceiver keeps running and :attr:`InferenceWorker.problem` says why, in one line.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from moodsic_live.config import PerceiveConfig
from moodsic_live.errors import MoodsicError
from moodsic_live.frames import Frame
from moodsic_live.perceive.estimate import Perception


class LatestSlot:
    """A one-place hand-off where a new item replaces an unread one."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: Frame | None = None
        self._closed = False
        self.dropped = 0

    def put(self, item: Frame) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def get(self, timeout: float) -> Frame | None:
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@dataclass
class WorkerStats:
    submitted: int = 0
    processed: int = 0
    dropped_frames: int = 0     # replaced while the worker was busy (late)
    skipped_frames: int = 0     # replaced while it waited on purpose (``max_rate_hz``)
    dropped_results: int = 0


class InferenceWorker:
    def __init__(self, config: PerceiveConfig, models_dir: Path, results_size: int = 8):
        self.config = config
        self.models_dir = models_dir
        self.results: queue.Queue[Perception] = queue.Queue(maxsize=results_size)
        self._slot = LatestSlot()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="perceive", daemon=True)
        self.stats = WorkerStats()
        self.error: MoodsicError | None = None
        self.provider_note = ""
        self.problem = ""          # the last reconfiguration that failed ("" when none)
        self.generation = 0        # reconfigurations applied
        self._next: PerceiveConfig | None = None
        self._next_lock = threading.Lock()

    def start(self, timeout: float = 60.0) -> None:
        """Start the thread and wait until its models are loaded (or raise their error)."""
        self._thread.start()
        self._ready.wait(timeout)
        if self.error is not None:
            raise self.error

    def submit(self, frame: Frame) -> None:
        self.stats.submitted += 1
        self._slot.put(frame)

    def reconfigure(self, config: PerceiveConfig) -> None:
        """Use ``config`` from the next frame on (the perceiver is rebuilt on the worker's thread)."""
        with self._next_lock:
            self._next = config

    def stop(self, timeout: float = 1.0) -> bool:
        self._stop.set()
        self._slot.close()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        from moodsic_live.perceive.perceiver import Perceiver

        try:
            perceiver = Perceiver(self.config, self.models_dir)
        except MoodsicError as exc:
            self.error = exc
            self._ready.set()
            return
        self.provider_note = perceiver.runtime.note
        self._ready.set()
        next_start = 0.0
        skipped = 0
        try:
            while not self._stop.is_set():
                perceiver = self._maybe_rebuild(perceiver)
                rate = self.config.max_rate_hz
                delay = next_start - time.monotonic()
                if delay > 0:                  # at most max_rate_hz: frames meanwhile are skipped, not late
                    before = self._slot.dropped
                    if self._stop.wait(delay):
                        break
                    skipped += self._slot.dropped - before
                    self.stats.skipped_frames = skipped
                frame = self._slot.get(timeout=0.1)
                if frame is None:
                    continue
                started = time.monotonic()
                next_start = started + (1.0 / rate if rate > 0 else 0.0)
                try:
                    result = perceiver.perceive(frame)
                except MoodsicError as exc:
                    self.error = exc
                    break
                self.stats.processed += 1
                self.stats.dropped_frames = self._slot.dropped - skipped
                while True:
                    try:
                        self.results.put_nowait(result)
                        break
                    except queue.Full:
                        try:
                            self.results.get_nowait()
                            self.stats.dropped_results += 1
                        except queue.Empty:
                            pass
        finally:
            perceiver.close()

    def _maybe_rebuild(self, perceiver):
        from moodsic_live.perceive.perceiver import Perceiver

        with self._next_lock:
            config, self._next = self._next, None
        if config is None:
            return perceiver
        try:
            fresh = Perceiver(config, self.models_dir, runtime=perceiver.runtime)
        except MoodsicError as exc:
            self.problem = str(exc)
            return perceiver
        perceiver.close()
        self.config = config
        self.problem = ""
        self.generation += 1
        return fresh
