"""The mixer core: what the PortAudio callback calls to fill each output block.

Why the callback only copies
----------------------------
The device asks for a block every few milliseconds (480 frames at 48 kHz = 10 ms) and a late
answer is an audible drop-out. So, as in python-sounddevice's callback examples, everything slow
happens elsewhere: decoding and resampling on the loader's thread (:mod:`moodsic_live.play.loader`),
choosing songs and computing fade curves on the control thread. :meth:`Mixer.render` only
multiplies prepared samples by prepared gains and adds them up:

* no allocation: every intermediate lives in work buffers preallocated for ``max_block`` frames
  (longer blocks are rendered in several chunks); numpy is called with ``out=`` on operands of
  equal shape (gain tables have one column per channel: a broadcast ``(n, 1) × (n, 2)`` would make
  numpy allocate a buffer), so only views of existing memory are created, never sample data;
* no blocking lock: the control thread hands over commands through a ``collections.deque``
  (``append`` by the producer, ``[0]``/``popleft`` by the callback; each is atomic in CPython,
  single producer, single consumer), and reads positions and flags as plain attributes the
  callback assigns (each read is atomic; fields read one after the other may be from different
  blocks). The GIL is still taken, as by every sounddevice callback, but no lock that another
  Python thread could hold for long;
* no I/O, no logging. Buffers and commands the callback is done with are handed back through a
  second deque and dropped by the control thread (:meth:`Mixer.reclaim`), so even freeing a
  40 s buffer does not happen in the callback.

Sample-exact timing
-------------------
Every command may carry ``at_frame``: the output frame (``Mixer.clock``) at which it takes effect
(``None``: at the start of the next block). ``render`` splits its block at command times and at
every point where a gain curve starts, ends or a buffer runs out, and every gain is a function of
the sample's position inside its curve (tables computed once), never of the block size. The same
commands therefore produce bit-identical output whether the device asks for 480 frames at a time
or a file sink renders 4096 (see :mod:`moodsic_live.play.sink`). Commands are applied in the order
sent; one that waits for its frame holds back those sent after it.

Gains
-----
* Crossfade over ``L`` frames: the incoming voice gets ``sin(π/2 · k/L)``, the outgoing
  ``g · cos(π/2 · k/L)`` (``g``: its gain when the crossfade starts, 1 normally), so for
  uncorrelated songs the summed power is constant: equal power.
* A cut (``crossfade_s = 0``) is the same equal-power crossfade over :data:`CUT_S` (5 ms): short
  enough to sound like a cut, long enough that the waveform has no step (no click).
* :meth:`Mixer.play_now` fades in over :data:`FADE_IN_S` (from exactly 0); it fades out whatever
  was playing with the complementary curve.
* The tail: every buffer's last ``fade_out_s`` seconds (at least :data:`CUT_S`) are faded to zero
  with a quarter cosine, so a buffer that runs out without a successor ends in silence, not with a
  click. A crossfade that started in time has finished before the tail begins.
* A crossfade that arrives while another is running fades every sounding voice out from its
  current gain; up to :data:`MAX_VOICES` voices sound at once (beyond that, the quietest fading
  voice is dropped: only possible with that many song changes within one crossfade).
* Master gain: volume changes ramp over :data:`VOLUME_RAMP_S` with a raised cosine (no zipper
  noise); :meth:`Mixer.stop` fades the master out with a quarter cosine, after which ``render``
  writes exact zeros and ``finished`` is true.
* Pause: :meth:`Mixer.pause` ramps the master to 0 over :data:`VOLUME_RAMP_S`, then *holds*: ``render``
  writes zeros without moving any voice or the clock (commands wait, except a resume or a stop), so
  :meth:`Mixer.resume` carries on from the very sample where the ramp ended, ramping back up.

"Needs next"
------------
The control thread must hand over the matcher's next choice before the current buffer runs out.
``Mixer.needs_next`` becomes true when the current voice has at most ``crossfade_s +
needs_next_margin_s`` seconds of prepared audio left (or has ended) and no newer song has been
sent; the margin leaves time to load the next segment and still start a full crossfade. If nothing
comes, the tail fade above ends the song in silence.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from moodsic_live.config import PlayConfig
from moodsic_live.play.loader import PreparedBuffer

CUT_S = 0.005                 # a "hard" cut is an equal-power crossfade this short (no click)
FADE_IN_S = 0.05              # play_now's fade-in
VOLUME_RAMP_S = 0.05          # master volume changes ramp over this (raised cosine)
NEEDS_NEXT_MARGIN_S = 3.0     # needs_next: remaining audio <= crossfade_s + this
MAX_VOICES = 6                # current song + songs still fading out
DEFAULT_MAX_BLOCK = 8192      # work buffers; longer blocks are rendered in chunks of this


@dataclass(frozen=True, eq=False)
class StartCommand:
    """Start ``buffer`` as the current song: it fades in with ``fade_in`` while every sounding voice
    fades out with ``fade_out`` (tables ``(L, channels)`` float32, computed by the control thread)."""

    at_frame: int | None
    buffer: PreparedBuffer
    fade_in: np.ndarray
    fade_out: np.ndarray
    serial: int


@dataclass(frozen=True)
class VolumeCommand:
    at_frame: int | None
    volume: float


@dataclass(frozen=True, eq=False)
class StopCommand:
    at_frame: int | None
    fade_out: np.ndarray


@dataclass(frozen=True)
class PauseCommand:
    """``paused`` True: ramp the master to 0, then hold every voice where it is (render writes zeros and
    the clock stands still); False: carry on from there, ramping back to the volume."""

    at_frame: int | None
    paused: bool


Command = StartCommand | VolumeCommand | StopCommand | PauseCommand


@dataclass(frozen=True)
class VoiceState:
    """A snapshot of one sounding voice, for display and logs (control thread)."""

    song_id: str
    request_id: int
    position: int            # frames of the buffer played
    frames: int              # frames in the buffer
    song_position_s: float   # where in the song the play position is
    fading_out: bool
    current: bool


def _table(values: np.ndarray, channels: int) -> np.ndarray:
    """A gain curve as a read-only, C-contiguous ``(frames, channels)`` float32 table: one column per
    channel, so render multiplies arrays of equal shape (numpy buffers, i.e. allocates, when it
    has to broadcast a ``(frames, 1)`` gain over two channels)."""
    table = np.ascontiguousarray(np.repeat(values.astype(np.float32)[:, None], channels, axis=1))
    table.setflags(write=False)
    return table


def _quarter_curves(frames: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``sin`` and ``cos`` of ``π/2 · k/frames`` for ``k`` in ``0..frames-1`` (see :func:`_table`):
    fade-in from exactly 0, fade-out from exactly 1; their squares sum to one."""
    phase = (np.pi / 2) * np.arange(frames, dtype=np.float64) / frames
    return _table(np.sin(phase), channels), _table(np.cos(phase), channels)


class _Voice:
    """One playing buffer. Written only by the audio thread; other threads read attributes."""

    __slots__ = ("active", "audio", "buffer", "frames", "pos", "song_id", "request_id", "start_s", "curve",
                 "curve_len", "k", "scale", "scale_f", "final", "final_f")

    def __init__(self) -> None:
        self.active = False
        self.audio: np.ndarray | None = None
        self.buffer: PreparedBuffer | None = None
        self.frames = 0
        self.pos = 0
        self.song_id = ""
        self.request_id = 0
        self.start_s = 0.0
        self.curve: np.ndarray | None = None
        self.curve_len = 0
        self.k = 0
        self.scale = np.zeros((), np.float32)    # gain = scale * curve[k] while k < curve_len
        self.scale_f = 0.0
        self.final = np.zeros((), np.float32)    # then gain = final (0: the voice ends)
        self.final_f = 0.0

    def envelope(self, curve: np.ndarray, scale: float, final: float) -> None:
        self.curve = curve
        self.curve_len = int(curve.shape[0])
        self.k = 0
        self.scale[()] = scale
        self.scale_f = float(self.scale)
        self.final[()] = final
        self.final_f = float(self.final)

    def gain_now(self) -> float:
        if self.k < self.curve_len:
            return self.scale_f * float(self.curve[self.k, 0])
        return self.final_f


class Mixer:
    """Mixes prepared buffers into output blocks.

    Thread use: the audio callback calls only :meth:`render`. One control thread calls
    :meth:`play_now`, :meth:`crossfade_to`, :meth:`set_volume`, :meth:`stop`, :meth:`reclaim` and
    :meth:`voices`. Any thread may read :attr:`clock`, :attr:`needs_next`, :attr:`finished`,
    :attr:`current_song_id`, :attr:`current_position` and :attr:`current_song_position_s`.
    """

    def __init__(self, sample_rate: int, channels: int = 2, config: PlayConfig | None = None, *,
                 max_block: int = DEFAULT_MAX_BLOCK, needs_next_margin_s: float = NEEDS_NEXT_MARGIN_S) -> None:
        if sample_rate <= 0 or channels <= 0 or max_block <= 0:
            raise ValueError("sample_rate, channels and max_block must be positive")
        self.config = config if config is not None else PlayConfig()
        if not 0.0 <= self.config.volume <= 1.0:
            raise ValueError(f"play.volume must be within 0..1, got {self.config.volume}")
        if self.config.crossfade_s < 0 or self.config.fade_out_s < 0:
            raise ValueError("play.crossfade_s and play.fade_out_s must not be negative")
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.max_block = int(max_block)
        self.cut_frames = max(1, round(CUT_S * self.sample_rate))
        self.needs_next_frames = round((self.config.crossfade_s + needs_next_margin_s) * self.sample_rate)

        # Work buffers: everything render writes lives here.
        self._acc = np.zeros((self.max_block, self.channels), np.float32)
        self._tmp = np.zeros((self.max_block, self.channels), np.float32)
        self._g = np.zeros((self.max_block, self.channels), np.float32)
        self._mg = np.zeros((self.max_block, self.channels), np.float32)
        self._slots = [_Voice() for _ in range(MAX_VOICES)]
        self._current: _Voice | None = None

        # Tables computed once.
        self._tail_len = max(self.cut_frames, round(self.config.fade_out_s * self.sample_rate))
        self._tail = _quarter_curves(self._tail_len, self.channels)[1]
        ramp_len = max(1, round(VOLUME_RAMP_S * self.sample_rate))
        self._volume_ramp = _table(0.5 - 0.5 * np.cos(np.pi * np.arange(1, ramp_len + 1) / ramp_len), self.channels)
        self._curves: dict[int, tuple[np.ndarray, np.ndarray]] = {}   # control thread's cache

        # Master gain: offset + scale * curve[k] while k < len, then final.
        self._m_curve = self._volume_ramp
        self._m_len = 0
        self._m_k = 0
        self._m_scale = np.zeros((), np.float32)
        self._m_offset = np.zeros((), np.float32)
        self._m_final = np.array(self.config.volume, np.float32)
        self._m_scale_f = 0.0
        self._m_offset_f = 0.0
        self._m_final_f = float(self._m_final)
        self._stopping = False
        self._volume_f = float(self.config.volume)   # what resume ramps back to (audio thread)
        self._pausing = False                        # ramping down to a hold (audio thread)
        self._held = False                           # paused: voices and clock stand still (audio thread)

        # Hand-over: control → audio (commands), audio → control (references to drop).
        self._inbox: deque[Command] = deque()
        self._retired: deque[object] = deque()
        self._sent = 0          # start commands sent (control thread)
        self._applied = 0       # start commands applied (audio thread)
        self._needs_next = False
        self._finished = False
        self.clock = 0          # frames rendered so far

    # ---- control thread -------------------------------------------------------------------

    def play_now(self, buffer: PreparedBuffer, fade_in_s: float = FADE_IN_S, *, at_frame: int | None = None) -> None:
        """Start ``buffer`` with a short fade-in (whatever plays fades out with the same short curve)."""
        self._send_start(buffer, fade_in_s, at_frame)

    def crossfade_to(self, buffer: PreparedBuffer, seconds: float | None = None, *,
                     at_frame: int | None = None) -> None:
        """Equal-power crossfade to ``buffer`` over ``seconds`` (``None``: ``config.crossfade_s``;
        0: a cut, i.e. a :data:`CUT_S` equal-power crossfade)."""
        self._send_start(buffer, self.config.crossfade_s if seconds is None else seconds, at_frame)

    def set_volume(self, volume: float, *, at_frame: int | None = None) -> None:
        """Ramp the master gain to ``volume`` (0..1) over :data:`VOLUME_RAMP_S`."""
        if not 0.0 <= volume <= 1.0:
            raise ValueError(f"volume must be within 0..1, got {volume}")
        self.reclaim()
        self._inbox.append(VolumeCommand(at_frame, float(volume)))

    def pause(self, *, at_frame: int | None = None) -> None:
        """Ramp the master to 0, then hold every voice where it is until :meth:`resume`."""
        self.reclaim()
        self._inbox.append(PauseCommand(at_frame, True))

    def resume(self, *, at_frame: int | None = None) -> None:
        """Carry on after :meth:`pause` from where the music stopped, ramping back to the volume."""
        self.reclaim()
        self._inbox.append(PauseCommand(at_frame, False))

    def stop(self, fade_s: float | None = None, *, at_frame: int | None = None) -> None:
        """Fade the master out over ``fade_s`` (``None``: ``config.fade_out_s``; at least :data:`CUT_S`);
        then ``render`` writes zeros and :attr:`finished` is true. Later commands are ignored."""
        fade = self.config.fade_out_s if fade_s is None else fade_s
        if fade < 0:
            raise ValueError(f"fade must not be negative, got {fade}")
        self.reclaim()
        self._inbox.append(StopCommand(at_frame, self._fade_curves(fade)[1]))

    def fade_out_and_wait(self, fade_s: float, deadline: float) -> bool:
        """:meth:`stop` over ``fade_s``, then wait (control thread, while an output keeps rendering)
        until :attr:`finished` or the ``time.monotonic()`` ``deadline``. True when the fade completed."""
        self.stop(fade_s)
        while not self.finished and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.finished

    def reclaim(self) -> int:
        """Drop the references the audio thread has finished with (buffers, commands), so their memory
        is freed here and not in the callback. Called by every control method; returns the count."""
        count = 0
        retired = self._retired
        while retired:
            retired.popleft()
            count += 1
        return count

    def voices(self) -> tuple[VoiceState, ...]:
        """What is sounding now (a snapshot; fields may be one block apart)."""
        out = []
        current = self._current
        for v in self._slots:
            if v.active:
                out.append(VoiceState(v.song_id, v.request_id, v.pos, v.frames,
                                      v.start_s + v.pos / self.sample_rate, v.final_f == 0.0, v is current))
        return tuple(out)

    # ---- any thread -------------------------------------------------------------------------

    @property
    def needs_next(self) -> bool:
        """True when the current song has at most ``crossfade_s + margin`` of prepared audio left (or
        has ended) and no newer song is on its way."""
        return self._needs_next and self._applied == self._sent

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def paused(self) -> bool:
        """The audio side's state: ramping down to a hold, or held (a resume not yet applied still counts)."""
        return self._pausing or self._held

    @property
    def pending(self) -> int:
        """Commands sent but not yet applied."""
        return len(self._inbox)

    @property
    def current_song_id(self) -> str | None:
        v = self._current
        return v.song_id if v is not None and v.active else None

    @property
    def current_position(self) -> int:
        """Frames of the current buffer played (0 when nothing plays)."""
        v = self._current
        return v.pos if v is not None and v.active else 0

    @property
    def current_song_position_s(self) -> float | None:
        v = self._current
        return v.start_s + v.pos / self.sample_rate if v is not None and v.active else None

    # ---- audio thread -----------------------------------------------------------------------

    def render(self, out: np.ndarray) -> None:
        """Fill ``out`` (``(frames, channels)`` float32, any number of frames) with the mix.

        Called by the audio callback: allocates no sample memory, takes no lock, does no I/O.
        """
        n = out.shape[0]
        if self._held:
            self._apply_due()              # only a resume or a stop can release the hold
            if self._held:
                out[...] = 0.0
                self._needs_next = False
                return
        done = 0
        while done < n:
            if self._held:                 # the pause ramp ended inside this block
                out[done:] = 0.0
                break
            self._apply_due()
            m = n - done
            if m > self.max_block:
                m = self.max_block
            d = self._frames_to_event()
            if d < m:
                m = d
            self._render_chunk(out[done:done + m], m)
            self._advance(m)
            done += m
        cur = self._current
        if self._finished or cur is None:
            self._needs_next = False
        elif not cur.active:
            self._needs_next = True
        else:
            self._needs_next = cur.frames - cur.pos <= self.needs_next_frames

    def _apply_due(self) -> None:
        inbox = self._inbox
        while inbox:
            cmd = inbox[0]
            at = cmd.at_frame
            if self._held and not isinstance(cmd, (PauseCommand, StopCommand)):
                return                     # held: the clock stands still, other commands wait for resume
            if at is not None and at > self.clock and not self._held:
                return
            inbox.popleft()
            self._retired.append(cmd)
            if self._finished:
                continue
            if isinstance(cmd, StartCommand):
                self._start(cmd)
            elif isinstance(cmd, VolumeCommand):
                self._volume_f = cmd.volume
                if not self._stopping and not self.paused:
                    self._master_envelope(self._volume_ramp, cmd.volume, cmd.volume, stopping=False)
            elif isinstance(cmd, PauseCommand):
                if self._stopping:
                    continue
                if cmd.paused and not self.paused:
                    self._pausing = True
                    self._master_envelope(self._volume_ramp, 0.0, 0.0, stopping=False)
                elif not cmd.paused and self.paused:
                    self._pausing = self._held = False
                    self._master_envelope(self._volume_ramp, self._volume_f, self._volume_f, stopping=False)
            elif not self._stopping:
                self._held = self._pausing = False   # a stop releases a hold: the (silent) fade runs out
                self._master_envelope(cmd.fade_out, 0.0, 0.0, stopping=True)

    def _start(self, cmd: StartCommand) -> None:
        free: _Voice | None = None
        for v in self._slots:
            if not v.active:
                if free is None:
                    free = v
            elif v.final_f != 0.0:                 # sounding and not already fading out
                v.envelope(cmd.fade_out, v.gain_now(), 0.0)
        if free is None:                           # all slots busy: drop the quietest fading voice
            for v in self._slots:
                if v is not self._current and (free is None or v.gain_now() < free.gain_now()):
                    free = v
            assert free is not None
            self._release(free)
        buf = cmd.buffer
        free.audio = buf.audio
        free.buffer = buf
        free.frames = buf.frames
        free.pos = 0
        free.song_id = buf.song_id
        free.request_id = buf.request_id
        free.start_s = buf.start_s
        free.envelope(cmd.fade_in, 1.0, 1.0)
        free.active = True
        self._current = free
        self._applied = cmd.serial

    def _master_envelope(self, curve: np.ndarray, to: float, final: float, *, stopping: bool) -> None:
        now = self._master_now()
        if stopping:      # gain = now * curve[k]
            self._m_offset[()] = 0.0
            self._m_scale[()] = now
        else:             # gain = now + (to - now) * ramp[k]
            self._m_offset[()] = now
            self._m_scale[()] = to - now
        self._m_offset_f = float(self._m_offset)
        self._m_scale_f = float(self._m_scale)
        self._m_final[()] = final
        self._m_final_f = float(self._m_final)
        self._m_curve = curve
        self._m_len = int(curve.shape[0])
        self._m_k = 0
        self._stopping = stopping

    def _master_now(self) -> float:
        if self._m_k < self._m_len:
            return self._m_offset_f + self._m_scale_f * float(self._m_curve[self._m_k, 0])
        return self._m_final_f

    def _frames_to_event(self) -> int:
        """Frames until the next point where a command, a curve or a buffer changes (>= 1)."""
        d = self.max_block
        inbox = self._inbox
        if inbox:
            at = inbox[0].at_frame
            if at is not None and at - self.clock < d:
                d = at - self.clock
        tail = self._tail_len
        for v in self._slots:
            if not v.active:
                continue
            if v.k < v.curve_len and v.curve_len - v.k < d:
                d = v.curve_len - v.k
            left = v.frames - v.pos
            if left > tail:
                left -= tail
            if left < d:
                d = left
        if self._m_k < self._m_len and self._m_len - self._m_k < d:
            d = self._m_len - self._m_k
        return d if d > 0 else 1

    def _render_chunk(self, o: np.ndarray, m: int) -> None:
        if self._finished:
            o[...] = 0.0
            return
        acc = self._acc[:m]
        tmp = self._tmp[:m]
        g = self._g[:m]
        tail = self._tail_len
        first = True
        for v in self._slots:
            if not v.active:
                continue
            a = v.audio[v.pos:v.pos + m]
            vec = False
            if v.k < v.curve_len:
                np.multiply(v.curve[v.k:v.k + m], v.scale, out=g)
                vec = True
            left = v.frames - v.pos
            if left <= tail:
                t = self._tail[tail - left:tail - left + m]
                if vec:
                    np.multiply(g, t, out=g)
                else:
                    np.multiply(t, v.final, out=g)
                    vec = True
            dst = acc if first else tmp
            if vec:
                np.multiply(a, g, out=dst)
            else:
                np.multiply(a, v.final, out=dst)
            if not first:
                np.add(acc, tmp, out=acc)
            first = False
        if first:
            o[...] = 0.0
            return
        if self._m_k < self._m_len:
            mg = self._mg[:m]
            np.multiply(self._m_curve[self._m_k:self._m_k + m], self._m_scale, out=mg)
            np.add(mg, self._m_offset, out=mg)
            np.multiply(acc, mg, out=o)
        else:
            np.multiply(acc, self._m_final, out=o)

    def _advance(self, m: int) -> None:
        self.clock += m
        for v in self._slots:
            if not v.active:
                continue
            v.pos += m
            if v.k < v.curve_len:
                v.k += m
                if v.k >= v.curve_len and v.final_f == 0.0:
                    self._release(v)
                    continue
            if v.pos >= v.frames:
                self._release(v)
        if self._m_k < self._m_len:
            self._m_k += m
            if self._m_k >= self._m_len and self._pausing:
                self._pausing = False
                self._held = True
            if self._m_k >= self._m_len and self._stopping:
                self._finished = True
                self._stopping = False
                for v in self._slots:
                    if v.active:
                        self._release(v)

    def _release(self, v: _Voice) -> None:
        v.active = False
        if v.buffer is not None:
            self._retired.append(v.buffer)
        v.audio = None
        v.buffer = None
        v.curve = None
        v.curve_len = 0

    # ---- helpers (control thread) -------------------------------------------------------------

    def _send_start(self, buffer: PreparedBuffer, seconds: float, at_frame: int | None) -> None:
        if buffer.sample_rate != self.sample_rate:
            raise ValueError(f"buffer is at {buffer.sample_rate} Hz, the mixer at {self.sample_rate} Hz")
        audio = buffer.audio
        if audio.ndim != 2 or audio.shape[1] != self.channels or audio.dtype != np.float32 or audio.shape[0] == 0:
            raise ValueError(f"buffer must be non-empty float32 (frames, {self.channels}), got {audio.dtype} "
                             f"{audio.shape}")
        if seconds < 0:
            raise ValueError(f"fade must not be negative, got {seconds}")
        fade_in, fade_out = self._fade_curves(seconds)
        self.reclaim()
        self._sent += 1
        self._inbox.append(StartCommand(at_frame, buffer, fade_in, fade_out, self._sent))

    def _fade_curves(self, seconds: float) -> tuple[np.ndarray, np.ndarray]:
        frames = max(self.cut_frames, round(seconds * self.sample_rate)) if math.isfinite(seconds) else 0
        if frames <= 0:
            raise ValueError(f"bad fade length {seconds} s")
        curves = self._curves.get(frames)
        if curves is None:
            if len(self._curves) >= 16:
                self._curves.clear()
            curves = self._curves[frames] = _quarter_curves(frames, self.channels)
        return curves
