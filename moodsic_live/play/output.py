"""The sound card: a PortAudio output stream whose callback only asks the mixer for the next block.

Design
------
As in python-sounddevice's callback examples (``play_long_file.py``, ``play_sine.py``), the work
is split by thread:

* the **audio thread** (PortAudio's, e.g. JACK's process thread) calls :meth:`DeviceOutput.callback`
  for every block. It calls :meth:`Mixer.render <moodsic_live.play.mixer.Mixer.render>` on the
  ``(frames, 2)`` float32 array PortAudio hands it, which multiplies and adds samples that were
  decoded and resampled earlier on the loader's thread, then counts the status flags and its own
  duration (``time.perf_counter_ns``) into integer arrays preallocated in ``__init__``: counters,
  a ring of callback durations (for benchmarks: :attr:`DeviceOutput.callback_stats`) and a ring of
  the times of underflowing callbacks. Nothing else: no allocation of sample memory, no lock, no
  I/O, no logging;
* the **control thread** (whoever owns the :class:`DeviceOutput`, normally
  :class:`moodsic_live.play.player.Player`) opens, starts and stops the stream and reads the
  counters; it never touches the samples.

What the callback still allocates: ``sounddevice`` wraps every block in a new numpy array view
and a ``CallbackFlags`` object before our function runs (its design, a few hundred bytes from
CPython's small-object allocator, freed at once). Inside our function, ``time.perf_counter_ns()``
and the counter arithmetic create small Python ``int`` / numpy scalar objects the same way; no
object outlives the call and none scales with the block (``tests/test_output.py`` measures it
with ``tracemalloc``).

Sample rate and device
----------------------
The output runs at the device's default sample rate unless one is given (resampling happens in
the loader, once per segment, never here): :func:`device_sample_rate` asks PortAudio for it so
the mixer can be built at that rate first. ``config.device`` is a PortAudio device name (any
substrings of "name, host API", e.g. ``"system JACK"``) or index; ``""`` is PortAudio's default.

Errors: no usable device (PortAudio fails to open it, or no device matches) or no PortAudio at
all (``import sounddevice`` fails when ``libportaudio2`` is missing) raise :class:`AudioDeviceError`,
one line that names the problem and the fix.

Stopping without a click: :meth:`DeviceOutput.stop` sends the mixer's master fade-out, waits until
the mixer reports ``finished`` (it then writes exact zeros), and only then stops and closes the
stream, so the last samples the speaker gets fall smoothly to zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from moodsic_live.config import PlayConfig
from moodsic_live.errors import MoodsicError, one_line
from moodsic_live.play.mixer import Mixer

CHANNELS = 2
DURATION_RING = 1 << 14        # callback durations kept: ~160 s of 10 ms blocks
UNDERFLOW_RING = 4096          # start times of the last underflowing callbacks kept (32 KiB, preallocated)
_FIX = "connect one, pick another with --device, or render to a file with --output FILE.wav"

# Slots of DeviceOutput._counts (one preallocated int64 array, written only by the callback).
_CALLS, _FRAMES, _UNDERFLOWS, _OVERFLOWS, _PRIMING, _ERRORS = range(6)


class AudioDeviceError(MoodsicError):
    """No usable audio output: the message names the problem and the fix (one line)."""



def _sounddevice() -> Any:
    """Import ``sounddevice`` (which loads PortAudio), or say how to install PortAudio."""
    try:
        import sounddevice
    except OSError as err:  # sounddevice raises OSError("PortAudio library not found")
        raise AudioDeviceError(f"no audio output: the PortAudio library is missing ({one_line(err)}); install it "
                               "with `apt-get install libportaudio2`, or render to a file with --output FILE.wav"
                               ) from None
    except ImportError as err:
        raise AudioDeviceError(f"no audio output: the sounddevice package is missing ({one_line(err)}); reinstall "
                               "moodsic-live (pip install -e .), or render to a file with --output FILE.wav") from None
    return sounddevice


def _device_arg(device: str | int | None) -> str | int | None:
    """``config.device`` as sounddevice wants it: ``None`` for the default, an int for an index."""
    if device is None:
        return None
    if isinstance(device, int):
        return device
    text = device.strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text


def _device_error(device: str | int | None, err: BaseException) -> AudioDeviceError:
    which = "the default device" if device is None else f"device {device!r}"
    return AudioDeviceError(f"no audio output device ({which}; PortAudio: {one_line(err)}); {_FIX}")


def device_sample_rate(config: PlayConfig) -> int:
    """The default sample rate of the output device ``config.device`` names (control thread).
    Raises :class:`AudioDeviceError` when there is no such device."""
    sd = _sounddevice()
    device = _device_arg(config.device)
    try:
        info = sd.query_devices(device, "output")
    except (sd.PortAudioError, ValueError) as err:
        raise _device_error(device, err) from None
    rate = int(round(float(info["default_samplerate"])))
    if rate <= 0 or int(info["max_output_channels"]) < 1:
        raise AudioDeviceError(f"no audio output device ({info['name']!r} has no usable output); {_FIX}")
    return rate


@dataclass(frozen=True)
class CallbackStats:
    """A snapshot of the callback's counters (read on the control thread; fields may be one block
    apart). ``durations_ns``: the last ``min(callbacks, ring size)`` callback durations, oldest
    first, in nanoseconds; ``underflow_times_ns``: ``time.perf_counter_ns()`` at the start of the
    last (up to :data:`UNDERFLOW_RING`) callbacks that reported an underflow, oldest first (copies)."""

    callbacks: int
    frames: int
    underflows: int
    overflows: int
    priming: int
    errors: int
    sample_rate: int
    durations_ns: np.ndarray
    underflow_times_ns: np.ndarray

    @property
    def block_s(self) -> float:
        """Mean block duration (frames per callback / sample rate)."""
        return self.frames / self.callbacks / self.sample_rate if self.callbacks else 0.0

    def percentile_ns(self, q: float) -> float:
        return float(np.percentile(self.durations_ns, q)) if len(self.durations_ns) else 0.0

    def percentile_of_block(self, q: float) -> float:
        """The ``q``-th percentile callback duration as a fraction of the mean block duration."""
        block_ns = self.block_s * 1e9
        return self.percentile_ns(q) / block_ns if block_ns > 0 else 0.0


def _unroll(ring: np.ndarray, written: int) -> np.ndarray:
    """The last ``min(written, len(ring))`` values of a ring buffer, oldest first (a copy)."""
    size = int(ring.shape[0])
    if written <= size:
        return ring[:written].copy()
    start = written % size
    return np.concatenate([ring[start:], ring[:start]])


class DeviceOutput:
    """Plays ``mixer`` on a PortAudio output device.

    Thread use: one control thread calls :meth:`open`, :meth:`start`, :meth:`stop`, :meth:`close`
    and reads :attr:`underflows` / :attr:`callback_stats`; PortAudio's audio thread calls only
    :meth:`callback`. The mixer must run at the stream's rate: build it at
    :func:`device_sample_rate` (or pass the same ``sample_rate`` to both).
    """

    def __init__(self, mixer: Mixer, config: PlayConfig, *, sample_rate: int | None = None,
                 ring_size: int = DURATION_RING) -> None:
        if mixer.channels != CHANNELS:
            raise ValueError(f"the device output plays {CHANNELS} channels, the mixer has {mixer.channels}")
        if config.block_frames < 0:
            raise ValueError(f"play.block_frames must not be negative, got {config.block_frames}")
        self.mixer = mixer
        self.config = config
        self._requested_rate = sample_rate
        self.sample_rate: int | None = None        # set by open(): the rate the stream runs at
        self.device_name = ""
        self._stream: Any = None
        self._abort: type[BaseException] = RuntimeError
        # Written only by the callback; preallocated so it only stores into existing memory.
        self._counts = np.zeros(6, np.int64)
        self._durations = np.zeros(max(1, int(ring_size)), np.int64)
        self._ring = int(self._durations.shape[0])
        self._underflow_ns = np.zeros(UNDERFLOW_RING, np.int64)
        self._clock_ns = time.perf_counter_ns

    # ---- control thread ---------------------------------------------------------------------

    def open(self) -> int:
        """Open the stream (not started yet) and return its sample rate: the given one, else the
        device's default. Raises :class:`AudioDeviceError` when the device cannot be used."""
        if self._stream is not None:
            return int(self.sample_rate or 0)
        sd = _sounddevice()
        device = _device_arg(self.config.device)
        try:
            info = sd.query_devices(device, "output")
            rate = self._requested_rate or int(round(float(info["default_samplerate"])))
            if rate != self.mixer.sample_rate:
                raise AudioDeviceError(f"the mixer runs at {self.mixer.sample_rate} Hz but the output would run at "
                                       f"{rate} Hz; build the mixer at device_sample_rate() or pass sample_rate")
            stream = sd.OutputStream(samplerate=rate, channels=CHANNELS, dtype="float32",
                                     blocksize=self.config.block_frames or 0, device=device,
                                     latency="high", callback=self.callback)
        except (sd.PortAudioError, ValueError) as err:
            raise _device_error(device, err) from None
        self._abort = sd.CallbackAbort
        self._stream = stream
        self.sample_rate = int(round(stream.samplerate))
        self.device_name = str(info["name"])
        return self.sample_rate

    def start(self) -> None:
        """Open (if needed) and start the stream: from now on the callback pulls blocks."""
        self.open()
        try:
            self._stream.start()
        except Exception as err:
            raise _device_error(_device_arg(self.config.device), err) from None

    @property
    def active(self) -> bool:
        return self._stream is not None and bool(self._stream.active)

    def stop(self, fade_s: float | None = None, timeout_s: float | None = None) -> bool:
        """Fade the master out over ``fade_s`` (``None``: ``config.fade_out_s``), wait until the mixer
        has finished (at most ``timeout_s``; default the fade plus 0.5 s), then stop and close the
        stream. Returns True when the fade completed (the stream ended in silence)."""
        if self._stream is None:
            return True
        fade = self.config.fade_out_s if fade_s is None else fade_s
        deadline = time.monotonic() + (fade + 0.5 if timeout_s is None else timeout_s)
        clean = self.mixer.finished or (self.active and self.mixer.fade_out_and_wait(fade, deadline))
        self.close()
        return clean

    def close(self) -> None:
        """Stop and close the stream at once (no fade: use :meth:`stop` for that)."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.stop()
        finally:
            stream.close()
        self.mixer.reclaim()

    def __enter__(self) -> DeviceOutput:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def underflows(self) -> int:
        """Blocks PortAudio flagged as output underflow (a gap reached the speaker)."""
        return int(self._counts[_UNDERFLOWS])

    @property
    def callback_stats(self) -> CallbackStats:
        counts = self._counts.copy()
        n = int(counts[_CALLS])
        return CallbackStats(callbacks=n, frames=int(counts[_FRAMES]), underflows=int(counts[_UNDERFLOWS]),
                             overflows=int(counts[_OVERFLOWS]), priming=int(counts[_PRIMING]),
                             errors=int(counts[_ERRORS]), sample_rate=int(self.sample_rate or self.mixer.sample_rate),
                             durations_ns=_unroll(self._durations, n),
                             underflow_times_ns=_unroll(self._underflow_ns, int(counts[_UNDERFLOWS])))

    # ---- audio thread -----------------------------------------------------------------------

    def callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's callback: fill ``outdata`` from the mixer, count flags and the duration."""
        t0 = self._clock_ns()
        counts = self._counts
        try:
            self.mixer.render(outdata)
        except Exception:          # never leave garbage in the device buffer
            outdata.fill(0.0)
            counts[_ERRORS] += 1
            raise self._abort from None
        if status:
            if status.output_underflow:
                u = counts[_UNDERFLOWS]
                self._underflow_ns[u % UNDERFLOW_RING] = t0
                counts[_UNDERFLOWS] = u + 1
            if status.output_overflow:
                counts[_OVERFLOWS] += 1
            if status.priming_output:
                counts[_PRIMING] += 1
        n = counts[_CALLS]
        counts[_FRAMES] += frames
        self._durations[n % self._ring] = self._clock_ns() - t0
        counts[_CALLS] = n + 1
