"""Render a timed plan through the mixer to a file (WAV, FLAC, ...), faster than real time.

A *plan* is a list of :class:`PlanEvent`: at ``at_s`` seconds, play or crossfade to a prepared
buffer, change the volume, or stop. :func:`schedule` sends every event to a :class:`Mixer` with its
exact output frame (``round(at_s × rate)``), and :func:`run_plan` then drives ``Mixer.render``
with fixed-size blocks. Because the mixer applies commands at their frame and computes every
gain from the sample's position in its curve, the result does not depend on the block size: a
plan rendered in 480-frame "callback" blocks, as a device would ask for them, and the same plan
rendered in 4096-frame blocks by :class:`FileSink` are bit-identical. The file is the same mix the
speakers would play (``analyze --render`` uses it; the tests compare both).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from moodsic_live.config import PlayConfig
from moodsic_live.play.loader import PreparedBuffer
from moodsic_live.play.mixer import FADE_IN_S, Mixer

EventKind = Literal["play", "crossfade", "volume", "stop"]

# Default sample formats: WAV keeps the mix exactly (float32, no clipping); FLAC is integer-only, so
# the mix is clipped to ±1 before it is written.
_DEFAULT_SUBTYPES = {"WAV": "FLOAT", "FLAC": "PCM_24", "OGG": "VORBIS", "AIFF": "FLOAT"}


@dataclass(frozen=True, eq=False)
class PlanEvent:
    """One timed action. ``fade_s``: fade-in for ``play`` (default 50 ms), crossfade for
    ``crossfade`` (default ``crossfade_s``; 0 = cut), fade-out for ``stop`` (default ``fade_out_s``)."""

    at_s: float
    kind: EventKind
    buffer: PreparedBuffer | None = None
    fade_s: float | None = None
    volume: float | None = None

    def __post_init__(self) -> None:
        if not self.at_s >= 0:
            raise ValueError(f"plan event time must be >= 0, got {self.at_s}")
        if self.kind in ("play", "crossfade") and self.buffer is None:
            raise ValueError(f"a {self.kind} event needs a buffer")
        if self.kind == "volume" and self.volume is None:
            raise ValueError("a volume event needs a volume")
        if self.kind not in ("play", "crossfade", "volume", "stop"):
            raise ValueError(f"unknown plan event {self.kind!r}")

    @classmethod
    def play(cls, at_s: float, buffer: PreparedBuffer, fade_s: float | None = None) -> PlanEvent:
        return cls(at_s, "play", buffer, fade_s)

    @classmethod
    def crossfade(cls, at_s: float, buffer: PreparedBuffer, fade_s: float | None = None) -> PlanEvent:
        return cls(at_s, "crossfade", buffer, fade_s)

    @classmethod
    def set_volume(cls, at_s: float, volume: float) -> PlanEvent:
        return cls(at_s, "volume", volume=volume)

    @classmethod
    def stop(cls, at_s: float, fade_s: float | None = None) -> PlanEvent:
        return cls(at_s, "stop", fade_s=fade_s)


@dataclass(frozen=True)
class SinkReport:
    path: Path
    frames: int
    sample_rate: int
    wall_s: float
    peak: float            # largest |sample| of the mix before any clipping
    clipped: bool          # an integer format (e.g. FLAC) had samples beyond ±1 clipped

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def speed(self) -> float:
        """Seconds of audio rendered per second of wall time (× real time)."""
        return self.duration_s / self.wall_s if self.wall_s > 0 else float("inf")


def schedule(mixer: Mixer, plan: Sequence[PlanEvent], origin_frame: int | None = None) -> None:
    """Send ``plan`` to ``mixer``, each event at frame ``origin_frame + round(at_s × rate)``
    (default origin: the mixer's clock now). Events are sent in time order (stable for ties)."""
    origin = mixer.clock if origin_frame is None else origin_frame
    rate = mixer.sample_rate
    for ev in sorted(plan, key=lambda e: e.at_s):
        at = origin + round(ev.at_s * rate)
        if ev.kind == "play":
            assert ev.buffer is not None
            mixer.play_now(ev.buffer, FADE_IN_S if ev.fade_s is None else ev.fade_s, at_frame=at)
        elif ev.kind == "crossfade":
            assert ev.buffer is not None
            mixer.crossfade_to(ev.buffer, ev.fade_s, at_frame=at)
        elif ev.kind == "volume":
            assert ev.volume is not None
            mixer.set_volume(ev.volume, at_frame=at)
        else:
            mixer.stop(ev.fade_s, at_frame=at)


def run_plan(mixer: Mixer, plan: Sequence[PlanEvent], frames: int, block_frames: int,
             consume: Callable[[np.ndarray], None]) -> None:
    """Schedule ``plan`` and render ``frames`` frames in blocks of ``block_frames`` (the last one
    shorter), passing each block to ``consume`` (a view of one reused buffer: copy it to keep it).
    No I/O: the caller decides where the blocks go."""
    if block_frames <= 0:
        raise ValueError("block_frames must be positive")
    schedule(mixer, plan)
    block = np.zeros((block_frames, mixer.channels), np.float32)
    done = 0
    while done < frames:
        m = min(block_frames, frames - done)
        view = block[:m]
        mixer.render(view)
        consume(view)
        mixer.reclaim()
        done += m


def render_plan(plan: Sequence[PlanEvent], sample_rate: int, duration_s: float, *, block_frames: int = 4096,
                config: PlayConfig | None = None, channels: int = 2) -> np.ndarray:
    """The mix of ``plan`` as one ``(round(duration_s × rate), channels)`` float32 array."""
    frames = round(duration_s * sample_rate)
    out = np.zeros((frames, channels), np.float32)
    mixer = Mixer(sample_rate, channels, config, max_block=max(block_frames, 1))
    pos = 0

    def keep(block: np.ndarray) -> None:
        nonlocal pos
        out[pos:pos + len(block)] = block
        pos += len(block)

    run_plan(mixer, plan, frames, block_frames, keep)
    return out


class FileSink:
    """Writes the mix of a plan to ``path`` (format from the suffix: .wav, .flac, ...)."""

    def __init__(self, path: str | Path, sample_rate: int, config: PlayConfig | None = None, *,
                 block_frames: int = 4096, subtype: str | None = None, channels: int = 2) -> None:
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.config = config
        self.block_frames = int(block_frames)
        self.subtype = subtype
        self.channels = int(channels)

    def render(self, plan: Sequence[PlanEvent], duration_s: float) -> SinkReport:
        """Render exactly ``round(duration_s × rate)`` frames of ``plan`` into the file."""
        import soundfile as sf

        if not duration_s > 0:
            raise ValueError(f"duration must be positive, got {duration_s}")
        frames = round(duration_s * self.sample_rate)
        major = self.path.suffix.lstrip(".").upper()
        major = {"AIF": "AIFF", "OGA": "OGG"}.get(major, major)
        subtype = self.subtype or _DEFAULT_SUBTYPES.get(major)
        mixer = Mixer(self.sample_rate, self.channels, self.config, max_block=self.block_frames)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        peak = 0.0
        with sf.SoundFile(str(self.path), "w", self.sample_rate, self.channels, subtype=subtype) as f:
            exact = f.subtype in ("FLOAT", "DOUBLE")
            scratch = np.zeros((self.block_frames, self.channels), np.float32)

            def write(block: np.ndarray) -> None:
                nonlocal peak
                peak = max(peak, float(np.abs(block).max(initial=0.0)))
                if exact:
                    f.write(block)
                else:   # clip here rather than rely on libsndfile's float → integer conversion
                    f.write(np.clip(block, -1.0, 1.0, out=scratch[:len(block)]))

            run_plan(mixer, plan, frames, self.block_frames, write)
        return SinkReport(self.path, frames, self.sample_rate, time.perf_counter() - started, peak,
                          clipped=peak > 1.0 and not exact)
