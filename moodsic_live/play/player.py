"""The play step's control side: cue songs, start them when they are decoded, watch "needs next".

Threads
-------
* **Control thread** (the engine's: the one that runs the stabiliser and the matcher, or a small
  thread of its own): owns the :class:`Player` and calls every method of it. :meth:`Player.cue`
  asks the loader for a segment and returns at once; :meth:`Player.poll` (called regularly, e.g.
  at the camera's frame rate, or blocking up to ``timeout_s`` for the next result) takes finished
  loads and hands them to the mixer: ``play_now`` for the first song, an equal-power
  ``crossfade_to`` afterwards. It also drops the buffers the audio thread has finished with
  (``Mixer.reclaim``), so no memory is freed in the callback.
* **Loader thread** (:class:`~moodsic_live.play.loader.Loader`): decodes and resamples segments.
* **Output thread**: PortAudio's callback (:class:`~moodsic_live.play.output.DeviceOutput`) or,
  for ``--output FILE.wav`` live runs, the thread of :class:`PacedFileOutput`, which calls
  ``Mixer.render`` block by block paced by the wall clock and writes the blocks with soundfile.
  Either only renders what the control thread has already prepared.

Choosing the next song
----------------------
:attr:`Player.needs_next` is true when the engine should ask the matcher for another choice: the
current song is running out (``Mixer.needs_next``: at most ``crossfade_s`` + 3 s of prepared audio
left, time enough to load the next segment and still start a full crossfade), or the last cue
failed to load (a :class:`PlayerEvent` ``"failed"`` with a one-line message, also logged). The
current song keeps playing meanwhile, so a bad file causes no silence as long as the engine cues
another one within the margin. The newest cue wins: a load that finishes after a newer cue was
made is dropped (``"superseded"``).

Which sink plays is decided by an :class:`OutputFactory`: its ``sample_rate`` (the device's
default for :func:`device_output`) is the rate the mixer and the loader are built at, and
``create(mixer)`` makes the output that pulls blocks from that mixer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from moodsic_live.config import PlayConfig
from moodsic_live.play.loader import LoadFailure, Loader, PreparedBuffer
from moodsic_live.play.mixer import FADE_IN_S, Mixer

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 1.0          # Player.close: fade out and stop everything within this
FILE_BLOCK_FRAMES = 1024       # PacedFileOutput's block when config.block_frames is 0


class Output(Protocol):
    """A sink that pulls blocks from a mixer on its own thread (control-thread methods only)."""

    def open(self) -> int:
        """Prepare the sink; return its sample rate."""
        ...

    def start(self) -> None:
        ...

    def stop(self, fade_s: float | None = None, timeout_s: float | None = None) -> bool:
        """Master fade-out, wait for silence, stop; True when the fade completed."""
        ...

    @property
    def underflows(self) -> int:
        ...


@dataclass(frozen=True)
class OutputFactory:
    """How to build the output: ``sample_rate`` for the mixer and loader, ``create(mixer)`` for the sink."""

    sample_rate: int
    create: Callable[[Mixer], Output]
    description: str = ""


def device_output(config: PlayConfig, sample_rate: int | None = None) -> OutputFactory:
    """Play on the PortAudio device ``config.device`` at its default rate (or ``sample_rate``).
    Raises :class:`~moodsic_live.play.output.AudioDeviceError` at once when there is no device."""
    from moodsic_live.play.output import DeviceOutput, device_sample_rate

    rate = int(sample_rate) if sample_rate else device_sample_rate(config)
    return OutputFactory(rate, lambda mixer: DeviceOutput(mixer, config, sample_rate=rate),
                         f"audio device {config.device or '(default)'}")


def paced_file_output(path: str | Path, config: PlayConfig, sample_rate: int = 48000, *,
                      subtype: str | None = None) -> OutputFactory:
    """Write the live mix to ``path`` at real-time pace (``--output FILE.wav``)."""
    return OutputFactory(int(sample_rate), lambda mixer: PacedFileOutput(mixer, path, config, subtype=subtype),
                         f"file {path}")


def silent_output(config: PlayConfig, sample_rate: int = 48000) -> OutputFactory:
    """Mix in real time and discard the blocks: the loop runs on a machine without a sound card
    (songs are chosen, decoded, crossfaded and hand over as with a device; nothing is heard)."""
    return OutputFactory(int(sample_rate), lambda mixer: PacedFileOutput(mixer, None, config), "no sound (silent)")


def device_or_silent(config: PlayConfig, say: Callable[[str], None]) -> OutputFactory:
    """The audio device, or, when there is none, :func:`silent_output` after saying so in one line."""
    from moodsic_live.play.output import AudioDeviceError

    try:
        return device_output(config)
    except AudioDeviceError as exc:
        say(f"{exc}; the loop keeps running without sound")
        return silent_output(config)


class PacedFileOutput:
    """Writes the mix to a sound file (``path`` None: nowhere, a silent output), one block whenever
    the wall clock reaches its time.

    A live run (camera → music) sends commands in real time; pacing the renderer by the wall clock
    keeps a command sent at second ``t`` near frame ``t × rate`` in the file, as on a device. The
    thread renders block ``k`` once ``k × block / rate`` seconds have passed since :meth:`start`;
    when it falls behind (a busy machine) it catches up without sleeping and counts each block
    more than one block late in :attr:`underflows` (on a device that would have been a gap; the
    file itself has none). WAV is written as float32 (the exact mix); integer formats get the mix
    clipped to ±1. Thread use: the control thread calls open/start/stop; the writer thread only
    renders and writes.
    """

    def __init__(self, mixer: Mixer, path: str | Path | None, config: PlayConfig, *,
                 subtype: str | None = None) -> None:
        self.mixer = mixer
        self.path = None if path is None else Path(path)
        self.config = config
        self.block_frames = int(config.block_frames or FILE_BLOCK_FRAMES)
        self.subtype = subtype or ("FLOAT" if self.path is not None and self.path.suffix.lower() == ".wav" else None)
        self.sample_rate = mixer.sample_rate
        self._file = None
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._late = 0
        self.frames_written = 0

    def open(self) -> int:
        if self._file is None and self.path is not None:
            import soundfile as sf

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = sf.SoundFile(str(self.path), "w", self.sample_rate, self.mixer.channels, subtype=self.subtype)
        return self.sample_rate

    def start(self) -> None:
        self.open()
        if self._thread is None:
            name = "moodsic-silent-output" if self.path is None else "moodsic-file-output"
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    @property
    def underflows(self) -> int:
        return self._late

    def stop(self, fade_s: float | None = None, timeout_s: float | None = None) -> bool:
        fade = self.config.fade_out_s if fade_s is None else fade_s
        deadline = time.monotonic() + (fade + 0.5 if timeout_s is None else timeout_s)
        running = self._thread is not None and self._thread.is_alive()
        clean = self.mixer.finished or (running and self.mixer.fade_out_and_wait(fade, deadline))
        self.close()
        return clean

    def close(self) -> None:
        self._halt.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(max(0.1, 4 * self.block_frames / self.sample_rate))
        f, self._file = self._file, None
        if f is not None:
            f.close()
        self.mixer.reclaim()

    def _run(self) -> None:
        f = self._file
        exact = f is None or f.subtype in ("FLOAT", "DOUBLE")
        block = np.zeros((self.block_frames, self.mixer.channels), np.float32)
        rate = self.sample_rate
        late_s = self.block_frames / rate
        started = time.monotonic()
        while not self._halt.is_set():
            due = started + self.frames_written / rate
            wait = due - time.monotonic()
            if wait > 0:
                self._halt.wait(wait)
                continue
            if -wait > late_s:
                self._late += 1
            self.mixer.render(block)
            if f is not None:
                f.write(block if exact else np.clip(block, -1.0, 1.0, out=block))
            self.frames_written += self.block_frames


EventKind = Literal["started", "failed", "superseded"]


@dataclass(frozen=True)
class PlayerEvent:
    """What :meth:`Player.poll` did with one finished load. ``message``: one line (for ``failed``)."""

    kind: EventKind
    request_id: int
    song_id: str
    message: str = ""


@dataclass(frozen=True)
class _Cue:
    song_id: str
    fade_s: float | None


class Player:
    """Owns a :class:`Loader`, a :class:`Mixer` and the output; the engine's handle on the music.

    Every method runs on one control thread (see the module docstring). The output starts playing
    (silence) on construction; :meth:`close` fades out and stops everything within 1 s.
    """

    def __init__(self, config: PlayConfig, output_factory: OutputFactory, *, quality: str = "HQ") -> None:
        self.config = config
        self.sample_rate = int(output_factory.sample_rate)
        self.mixer = Mixer(self.sample_rate, 2, config)
        self._ready = threading.Event()
        self.loader = Loader(self.sample_rate, quality=quality, on_result=lambda _result: self._ready.set())
        self._cues: dict[int, _Cue] = {}
        self._latest = 0
        self._failed = False
        self._started = 0
        self._closed = False
        self._paused = False
        try:
            self.output = output_factory.create(self.mixer)
            rate = self.output.open()
            if rate != self.sample_rate:
                raise ValueError(f"the output runs at {rate} Hz, the player at {self.sample_rate} Hz")
            self.output.start()
        except BaseException:
            self.loader.close(timeout=0.5)
            raise

    def cue(self, song_path: str | Path, song_id: str, start_s: float = 0.0, duration_s: float | None = None, *,
            fade_s: float | None = None) -> int:
        """Ask for ``duration_s`` seconds (``None``: ``config.preload_s``) of a song from ``start_s``; it
        starts (first song: fade-in; then a crossfade of ``fade_s``, default ``crossfade_s``) when
        :meth:`poll` finds it decoded. Returns the request id; the newest cue wins."""
        if self._closed:
            raise RuntimeError("player is closed")
        duration = self.config.preload_s if duration_s is None else duration_s
        request_id = self.loader.request(song_path, start_s, duration, song_id=song_id)
        self._cues[request_id] = _Cue(song_id, fade_s)
        self._latest = request_id
        self._failed = False
        return request_id

    def poll(self, timeout_s: float = 0.0) -> list[PlayerEvent]:
        """Start what has been decoded, report failures; wait up to ``timeout_s`` for a result when
        none is ready. Also frees the buffers the audio thread is done with."""
        if timeout_s > 0 and not self._ready.is_set():
            self._ready.wait(timeout_s)
        self._ready.clear()
        events = []
        for result in self.loader.poll():
            cue = self._cues.pop(result.request_id, None)
            if cue is None or self._closed:
                continue
            if isinstance(result, LoadFailure):
                if result.request_id == self._latest:
                    self._failed = True
                log.warning("play: %s; keeping the current song", result.message)
                events.append(PlayerEvent("failed", result.request_id, cue.song_id, result.message))
            elif result.request_id < self._latest:
                events.append(PlayerEvent("superseded", result.request_id, cue.song_id))
            else:
                self._start(result, cue)
                events.append(PlayerEvent("started", result.request_id, cue.song_id))
        self.mixer.reclaim()
        return events

    def _start(self, buffer: PreparedBuffer, cue: _Cue) -> None:
        idle = self.mixer.current_song_id is None and self.mixer.pending == 0
        if self._started == 0 or idle:
            self.mixer.play_now(buffer, FADE_IN_S if cue.fade_s is None else cue.fade_s)
        else:
            self.mixer.crossfade_to(buffer, cue.fade_s)
        self._started += 1

    def pause(self) -> None:
        """Ramp the music down and hold it where it is (the output keeps running, writing silence)."""
        if not self._paused:
            self._paused = True
            self.mixer.pause()

    def resume(self) -> None:
        """Carry on from where :meth:`pause` held the music."""
        if self._paused:
            self._paused = False
            self.mixer.resume()

    @property
    def paused(self) -> bool:
        return self._paused

    def set_volume(self, volume: float) -> None:
        """Master volume 0..1 (a short ramp; remembered through a pause)."""
        self.config.volume = min(1.0, max(0.0, float(volume)))
        self.mixer.set_volume(self.config.volume)

    @property
    def loading(self) -> bool:
        """The newest cue is still being decoded."""
        return self._latest in self._cues

    @property
    def needs_next(self) -> bool:
        """Ask the matcher for the next choice now: the current song is running out or the last cue
        failed, and no cue is on its way."""
        if self._closed or self.loading or self._paused:
            return False
        return self._failed or self.mixer.needs_next

    @property
    def current_song_id(self) -> str | None:
        return self.mixer.current_song_id

    @property
    def underflows(self) -> int:
        return self.output.underflows

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Fade out (``config.fade_out_s``, at most half of ``timeout_s``), stop the output and the
        loader; returns within about ``timeout_s``. True when the fade completed."""
        if self._closed:
            return True
        self._closed = True
        deadline = time.monotonic() + timeout_s
        fade = min(self.config.fade_out_s, 0.5 * timeout_s)
        try:
            clean = self.output.stop(fade, timeout_s=max(0.0, 0.8 * timeout_s))
        finally:
            self.loader.close(timeout=max(0.05, deadline - time.monotonic()))
            self._cues.clear()
            self.mixer.reclaim()
        return clean

    def __enter__(self) -> Player:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
