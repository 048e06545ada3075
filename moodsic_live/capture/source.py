"""Live capture: a camera, a video file, a network stream or the demo source, on its own thread.

Design
------
``parse_source(text)`` turns what the user typed (``--source``) into a :class:`SourceSpec`:
digits are a camera index, ``demo`` is the built-in demo, anything with ``://`` is a stream
URL, and everything else is a video file that must exist.

:class:`CaptureThread` owns the source: one daemon thread named ``"capture"`` reads frames
and hands each one, the moment it is read, to ``on_frame`` (normally
``InferenceWorker.submit``, which keeps only the newest waiting frame). Capture itself never
queues frames, so nothing downstream ever sees a backlog; with ``fps_limit`` it also skips
frames it read but does not hand on (counted: ``frames_read`` vs ``frames_delivered``).

Every :class:`~moodsic_live.frames.Frame` it hands on carries:

* ``t`` -- capture time, in seconds since the thread started (the injectable monotonic
  ``clock``); non-decreasing across loops and reconnects;
* ``index`` -- the sequence number of the frame among all frames this thread read
  (0, 1, 2, ...; it keeps counting across loops and reconnects, so ``frames_read - 1`` is the
  newest index). The position inside a video file is in :attr:`CaptureStats.position_s`;
* ``source`` -- the source's label (``camera 0``, the file path, the URL without any
  password, or the demo's ``demo:<scene>``).

Pacing: cameras and live streams pace themselves (``read`` blocks until the next frame).
Video files (and URLs that report a frame count, i.e. clips rather than live streams; they
end or loop like files) are played in real time at their native fps; if reading falls behind
by more than half a second the schedule slips instead of bursting to catch up. The demo
source is paced at ``fps_limit`` or 30 fps (a webcam's rate).

Size: a frame longer than ``MAX_FRAME_SIDE`` (4096 px: 8K video, a panorama clip) is shrunk as it
is read (INTER_AREA, the perceive step's own ``fit_within``); smaller frames pass as they are.

Failures: a camera or stream that cannot be opened, or stops giving frames, is retried for
ever with exponential backoff (:class:`RetryPolicy`: 0.5 s doubling to 5 s); meanwhile the
state is ``"retrying"`` and :attr:`CaptureStats.last_error` holds a one-line message naming
the source and the fix (the app decides whether and when to show it). A video file is
checked before the thread starts (:meth:`CaptureThread.check`, called by ``start``) so a bad
file fails fast with a one-line :class:`~moodsic_live.errors.InputError`; at its end (or at a
truncation) it loops if ``spec.loop`` else the thread stops (state ``"stopped"``, ``ended``
set). An exception from ``on_frame`` is fatal: state ``"failed"``.

Stopping: the thread checks a stop event between reads and sleeps only on that event, so
:meth:`CaptureThread.stop` returns within its timeout and the thread is gone. The one limit
is a single OpenCV call that blocks: opening a network stream (bounded by
``CAP_PROP_OPEN_TIMEOUT_MSEC``, 2 s here), reading one (``CAP_PROP_READ_TIMEOUT_MSEC``, 1 s),
or a camera read that the driver stalls (V4L2's own select timeout, 10 s by default, env
``OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT``; OpenCV offers no read timeout for V4L2). Then ``stop``
returns ``False`` after its timeout and the daemon thread ends as soon as that call returns;
it never hands on another frame after ``stop``.

Threads: ``start``, ``stop``, ``check``, ``stats`` and ``state`` may be called from any
thread; ``on_frame`` runs on the capture thread and must not block.

Privacy: frames live only in memory; nothing here writes them to disk or sends them anywhere.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from moodsic_live.capture.stills import _check_file, to_bgr8
from moodsic_live.errors import InputError
from moodsic_live.frames import Frame
from moodsic_live.perceive.preprocess import fit_within

KINDS = ("camera", "file", "url", "demo")
STATES = ("starting", "running", "retrying", "stopped", "failed")
DEMO_FPS = 30.0   # a webcam's rate: the window's preview is smooth; perceive takes the newest frame
STREAM_OPEN_TIMEOUT_MS = 2000
STREAM_READ_TIMEOUT_MS = 1000
CAMERA_READ_TIMEOUT_MS = 1000
_MAX_NATIVE_FPS = 1000.0
# Frames longer than this (8K video, a panorama clip) are shrunk as they are read: display and analysis need
# no more, and every later copy of the frame costs less. 4K UHD and DCI 4K frames pass as they are.
MAX_FRAME_SIDE = 4096
_SLIP_S = 0.5  # a paced source this far behind its schedule slips instead of catching up


# ---------------------------------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """Where frames come from: ``kind`` in :data:`KINDS`, ``value`` (index, path or URL)."""

    kind: str
    value: str
    loop: bool = False  # video files (and finite URLs): start again at the end

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"source kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @property
    def camera_index(self) -> int:
        if self.kind != "camera":
            raise ValueError(f"{self.label} is not a camera")
        return int(self.value)

    @property
    def live(self) -> bool:
        """A camera or stream: it may be lost and come back, so failures are retried."""
        return self.kind in ("camera", "url")

    @property
    def label(self) -> str:
        """How messages and ``Frame.source`` name it (a URL's password is never shown)."""
        if self.kind == "camera":
            return f"camera {self.value}"
        if self.kind == "url":
            return redact_url(self.value)
        return self.value


def redact_url(url: str) -> str:
    """The URL with any user name and password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def parse_source(text: str, *, loop: bool = False) -> SourceSpec:
    """``"0"``..``"9"`` (any digits): a camera; ``"demo"``; ``"scheme://..."``: a stream; else a video file.

    A file must exist and be readable (else a one-line :class:`InputError`); whether OpenCV
    can decode it is checked by :meth:`CaptureThread.check`. To play a file named ``demo``
    or ``0``, write ``./demo``.
    """
    s = text.strip()
    if not s:
        raise InputError("the source is empty; use a camera index (0), a video file, a stream URL or demo")
    if s.isascii() and s.isdigit():
        return SourceSpec("camera", str(int(s)), loop)
    if s.lower() == "demo":
        return SourceSpec("demo", "demo", loop)
    if "://" in s:
        scheme, _, rest = s.partition("://")
        if not scheme or not rest.strip("/"):
            raise InputError(f"stream address {s} has no host; write it like rtsp://camera.local/stream")
        return SourceSpec("url", s, loop)
    path = Path(s).expanduser()
    _check_file(path, "video")
    return SourceSpec("file", str(path), loop)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff between attempts to (re)open a lost source: retried for ever."""

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 5.0

    def __post_init__(self):
        if not (self.initial > 0 and self.factor >= 1 and self.max_delay >= self.initial):
            raise ValueError(f"bad retry policy {self}: need initial > 0, factor >= 1, max_delay >= initial")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based) of a run of failures."""
        return min(self.max_delay, self.initial * self.factor ** min(max(attempt, 0), 64))


# -------------------------------------------------------------------------------------- opening


class VideoLike(Protocol):
    """The part of ``cv2.VideoCapture`` capture uses (tests pass fakes through ``opener``)."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


class _Unopened:
    """A capture that did not open (so the thread treats every kind of failure alike)."""

    def isOpened(self) -> bool:
        return False

    def read(self) -> tuple[bool, np.ndarray | None]:
        return False, None

    def get(self, prop_id: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def open_video(spec: SourceSpec) -> VideoLike:
    """Open ``spec`` with OpenCV (the default opener). Never raises for a missing camera.

    On Linux a camera index with no ``/dev/videoN`` is reported as not opened without asking
    OpenCV, which would otherwise log a warning on every retry. Timeouts are set where the
    backend supports them (FFmpeg streams: open and read; cameras: read, best effort).
    """
    if spec.kind == "camera":
        index = spec.camera_index
        if sys.platform.startswith("linux") and Path("/dev").is_dir() and not Path(f"/dev/video{index}").exists():
            return _Unopened()
        cap = cv2.VideoCapture(index)
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not one queued in the driver
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, CAMERA_READ_TIMEOUT_MS)  # ignored where unsupported
        return cap
    if spec.kind == "url":
        return cv2.VideoCapture(spec.value, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_READ_TIMEOUT_MS,
        ])
    if spec.kind == "file":
        return cv2.VideoCapture(spec.value)
    raise ValueError(f"{spec.label} is not opened with OpenCV")


def _one_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else ""
    return line or type(exc).__name__


def _native_fps(cap: VideoLike) -> float:
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    except Exception:  # a backend that cannot say
        return 30.0
    return fps if math.isfinite(fps) and 0 < fps <= _MAX_NATIVE_FPS else 30.0


def _frame_count(cap: VideoLike) -> int:
    try:
        n = float(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    except Exception:
        return 0
    return int(n) if math.isfinite(n) and n > 0 else 0


# ---------------------------------------------------------------------------------------- stats


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """A snapshot of the capture thread's counters (safe to pass to any thread)."""

    state: str = "starting"  # starting | running | retrying | stopped | failed
    frames_read: int = 0  # frames read from the source
    frames_delivered: int = 0  # frames handed to on_frame
    read_failures: int = 0  # reads that failed on a live source (camera or stream lost)
    reconnects: int = 0  # attempts to open the source again after a failure
    loops: int = 0  # times a looping video started again from its beginning
    position_s: float = 0.0  # position in the video file of the newest frame read (paced sources)
    source_fps: float = 0.0  # the source's native fps as reported (0 until opened)
    last_error: str = ""  # the latest problem, one line naming the source and the fix ("" if none)

    @property
    def skipped(self) -> int:
        """Frames read but not handed on (``fps_limit``)."""
        return self.frames_read - self.frames_delivered


@dataclass(slots=True)
class _Counters:
    state: str = "starting"
    frames_read: int = 0
    frames_delivered: int = 0
    read_failures: int = 0
    reconnects: int = 0
    loops: int = 0
    position_s: float = 0.0
    source_fps: float = 0.0
    last_error: str = ""


# --------------------------------------------------------------------------------------- thread


@dataclass(slots=True)
class _Pass:
    """One open of a video: what it gave and how it ended."""

    frames: int = 0
    outcome: str = "stop"  # stop | end | lost


class CaptureThread:
    """Reads ``spec`` on a daemon thread named ``"capture"`` and hands each new frame to ``on_frame``.

    ``on_frame`` runs on the capture thread and must return at once (``InferenceWorker.submit``).
    ``fps_limit`` caps the frames handed on per second (the rest are read and skipped); the demo
    is generated at that rate (default 10 fps). ``retry`` is the backoff for lost cameras and
    streams. ``opener`` opens cameras, files and streams (default :func:`open_video`); tests
    replace it with fakes. ``clock`` gives monotonic seconds for timestamps and pacing (waits
    themselves are real time). ``demo_size`` is the demo's (width, height).
    """

    def __init__(self, spec: SourceSpec, on_frame: Callable[[Frame], None], *, fps_limit: float | None = None,
                 retry: RetryPolicy = RetryPolicy(), clock: Callable[[], float] = time.monotonic,
                 opener: Callable[[SourceSpec], VideoLike] = open_video,
                 demo_size: tuple[int, int] = (640, 480)):
        if fps_limit is not None and not (fps_limit > 0 and math.isfinite(fps_limit)):
            raise InputError(f"the capture fps limit must be a positive number, got {fps_limit:g}")
        self.spec = spec
        self.on_frame = on_frame
        self.fps_limit = fps_limit
        self.retry = retry
        self.demo_size = demo_size
        self._clock = clock
        self._opener = opener
        self._stop = threading.Event()
        self.ended = threading.Event()  # set when the thread has finished (end of file, failure or stop)
        self.error: BaseException | None = None  # what made the state "failed"
        self._lock = threading.Lock()
        self._c = _Counters()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._last_t = 0.0
        self._last_delivery: float | None = None
        self._checked = False  # check() passed: start() need not open the file again

    # ------------------------------------------------------------------ any thread

    @property
    def stats(self) -> CaptureStats:
        with self._lock:
            c = self._c
            return CaptureStats(c.state, c.frames_read, c.frames_delivered, c.read_failures, c.reconnects,
                                c.loops, c.position_s, c.source_fps, c.last_error)

    @property
    def state(self) -> str:
        with self._lock:
            return self._c.state

    @property
    def started_at(self) -> float:
        """The ``clock`` reading when the thread started: a frame was grabbed at ``started_at + frame.t``."""
        return self._t0

    def check(self) -> None:
        """Fail fast, before the thread starts: a video file must open and give a frame; the demo
        needs its scenes. Raises a one-line :class:`InputError`. Cameras and streams are not
        checked here: they may appear later, and the thread retries them."""
        if self.spec.kind == "demo":
            from moodsic_live.capture.demo import demo_scenes

            demo_scenes()
            return
        if self.spec.kind != "file":
            return
        path = Path(self.spec.value)
        _check_file(path, "video")
        try:
            cap = self._opener(self.spec)
        except Exception as exc:
            raise InputError(f"video {path} cannot be opened ({_one_line(exc)})") from None
        try:
            if not cap.isOpened():
                raise InputError(f"{path} is not a video OpenCV can open, or it is damaged "
                                 f"(try MP4/H.264, MKV or AVI)")
            try:
                ok, image = cap.read()
            except Exception:
                ok, image = False, None
            if not ok or image is None:
                raise InputError(f"{path} has no readable video frames")
        finally:
            cap.release()
        self._checked = True

    def start(self) -> None:
        """Check the source (:meth:`check`, may raise :class:`InputError`), then start the thread."""
        if self._thread is not None:
            raise RuntimeError("a CaptureThread can be started only once")
        if not self._checked:
            self.check()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        """Ask the thread to stop and wait up to ``timeout`` s; True when it is gone."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        if thread is threading.current_thread():  # called from on_frame: it stops after this frame
            return False
        thread.join(timeout)
        return not thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ capture thread

    def _set(self, **changes) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self._c, name, value)

    def _problem(self, message: str, state: str = "retrying") -> None:
        with self._lock:
            self._c.last_error = message
            self._c.state = state

    def _run(self) -> None:
        self._t0 = self._clock()
        try:
            if self.spec.kind == "demo":
                self._run_demo()
            else:
                self._run_video()
        except Exception as exc:  # the last resort: a bug or a failing consumer, never a silent death
            self.error = exc
            self._problem(f"capture from {self.spec.label} failed: {_one_line(exc)}", "failed")
        finally:
            with self._lock:
                if self._c.state != "failed":
                    self._c.state = "stopped"
            self.ended.set()

    def _deliver(self, image: np.ndarray, source: str, position: float | None = None) -> None:
        """Count a frame read and hand it on now unless ``fps_limit`` says to skip it."""
        now = self._clock()
        t = max(now - self._t0, self._last_t)
        self._last_t = t
        with self._lock:
            index = self._c.frames_read
            self._c.frames_read += 1
            if self._c.state != "running":
                self._c.state = "running"
            if position is not None:
                self._c.position_s = position
        if self.fps_limit is not None and self._last_delivery is not None:
            if now - self._last_delivery < 0.9 / self.fps_limit:  # 10 % slack for jitter
                return
        if self._stop.is_set():
            return
        self._last_delivery = now
        self.on_frame(Frame(image, t=t, index=index, source=source))
        with self._lock:
            self._c.frames_delivered += 1

    def _run_demo(self) -> None:
        from moodsic_live.capture.demo import demo_frames

        fps = self.fps_limit or DEMO_FPS
        self._set(source_fps=fps)
        frames = demo_frames(fps=fps, size=self.demo_size)
        try:
            frame = next(frames)  # loads the scenes: pacing starts after that
            start = self._clock()
            k = 0
            while not self._stop.is_set():
                due = start + k / fps
                now = self._clock()
                if due > now:
                    if self._stop.wait(due - now):
                        break
                elif now - due > _SLIP_S:
                    start += now - due
                self._deliver(frame.image, frame.source)
                k += 1
                frame = next(frames)
        finally:
            frames.close()

    def _run_video(self) -> None:
        failures = 0  # consecutive failed attempts, for the backoff
        reopen = False  # the next open follows a failure
        while not self._stop.is_set():
            if reopen:
                with self._lock:
                    self._c.reconnects += 1
            cap = self._open()
            if cap is None:
                if self.spec.kind == "file" and not self.spec.loop:
                    with self._lock:  # a file that vanished after check(): nothing to wait for
                        self._c.state = "failed"
                        self.error = InputError(self._c.last_error)
                    return
                reopen = True
            else:
                try:
                    p = self._play(cap)
                finally:
                    try:
                        cap.release()
                    except Exception:
                        pass
                if p.outcome == "stop":
                    return
                if p.frames:
                    failures = 0
                if p.outcome == "end":
                    if not self.spec.loop:
                        return
                    if p.frames:
                        reopen = False
                        with self._lock:
                            self._c.loops += 1
                        continue
                    self._problem(f"video {self.spec.label} has no readable frames any more; retrying")
                reopen = True
            if self._stop.wait(self.retry.delay(failures)):
                return
            failures += 1

    def _open(self) -> VideoLike | None:
        try:
            cap = self._opener(self.spec)
            opened = bool(cap.isOpened())
            reason = ""
        except Exception as exc:
            cap, opened, reason = None, False, _one_line(exc)
        if opened:
            return cap
        if cap is not None:
            try:
                cap.release()
            except Exception:
                pass
        self._problem(self._open_message(reason))
        return None

    def _open_message(self, reason: str) -> str:
        spec = self.spec
        why = f" ({reason})" if reason else ""
        if spec.kind == "camera":
            return (f"camera {spec.value} cannot be opened{why}: no such camera, or it is in use by another app; "
                    f"use --source demo or another index")
        if spec.kind == "url":
            return (f"stream {spec.label} cannot be opened{why}: check the address, the network and that the "
                    f"camera is on; retrying (or use --source demo)")
        return f"video {spec.label} cannot be opened{why}: is the file still there?"

    def _lost_message(self) -> str:
        spec = self.spec
        if spec.kind == "camera":
            return (f"camera {spec.value} was lost (no frames): reconnect it or close the other app using it; "
                    f"retrying (or use --source demo)")
        return f"stream {spec.label} stopped sending frames: check the network and the camera; retrying"

    def _play(self, cap: VideoLike) -> _Pass:
        """Read one opened capture until it ends, fails or we are stopped."""
        spec = self.spec
        fps = _native_fps(cap)
        count = _frame_count(cap) if spec.kind == "url" else 0
        paced = spec.kind == "file" or count > 0
        self._set(source_fps=fps)
        p = _Pass()
        start = self._clock()
        while not self._stop.is_set():
            if paced:
                due = start + p.frames / fps
                now = self._clock()
                if due > now:
                    if self._stop.wait(due - now):
                        return p
                elif now - due > _SLIP_S:
                    start += now - due
            try:
                ok, image = cap.read()
            except Exception:
                ok, image = False, None
            if self._stop.is_set():
                return p
            if ok and image is not None:
                try:
                    image = fit_within(to_bgr8(image, spec.label), MAX_FRAME_SIDE)[0]  # no copy when it fits
                except InputError:
                    ok = False
            if not ok or image is None:
                if spec.kind == "file" or (count > 0 and p.frames >= count - 1):
                    p.outcome = "end"  # the end of the file, or where a truncated file stops
                    return p
                with self._lock:
                    self._c.read_failures += 1
                self._problem(self._lost_message())
                p.outcome = "lost"
                return p
            position = p.frames / fps if paced else None
            p.frames += 1
            self._deliver(image, spec.label, position)
        return p
