"""The library's values: tracks, their 2 Hz valence/arousal series, and segments.

Everything here is in the reference space [-1, 1] (see ``moodsic_live.scales``). Segments are
held column-wise (:class:`SegmentTable`) so a library of a million segments is a handful of
numpy arrays, not a million objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

SERIES_HZ = 2.0
"""Every V/A series is sampled at 2 Hz (DEAM's dynamic annotation rate)."""

SeriesSource = Literal["human", "audio"]
TrackSource = Literal["deam", "folder", "demo"]


@dataclass(frozen=True)
class VASeries:
    """A 2 Hz valence/arousal series. ``t[i]`` is the start of the i-th 0.5 s step (DEAM's
    ``sample_15000ms`` is t = 15.0). ``source`` says who made it: human annotators or our
    audio analysis."""

    t: np.ndarray
    valence: np.ndarray
    arousal: np.ndarray
    source: SeriesSource

    def __post_init__(self) -> None:
        n = len(self.t)
        if len(self.valence) != n or len(self.arousal) != n:
            raise ValueError("a V/A series needs as many valence and arousal values as times")

    def __len__(self) -> int:
        return len(self.t)

    @property
    def end(self) -> float:
        """The end of the last step, in seconds."""
        return float(self.t[-1]) + 1.0 / SERIES_HZ if len(self.t) else 0.0

    def mean(self) -> tuple[float, float]:
        return float(np.mean(self.valence)), float(np.mean(self.arousal))


@dataclass(frozen=True)
class Track:
    """One piece of music. ``id`` is stable across rebuilds (``deam:2``, or the file's path
    relative to the library root for folders and the demo)."""

    id: str
    title: str
    artist: str
    genre: str
    path: Path
    duration: float
    sample_rate: int
    source: TrackSource
    series: VASeries
    # File identity for incremental rebuilds: a file whose size and mtime are unchanged, or
    # whose content hash is unchanged, is not analysed again.
    size: int = 0
    mtime_ns: int = 0
    sha1: str = ""
    static_va: tuple[float, float] | None = None  # DEAM's song-level human rating, reference space
    top_tags: str = ""  # what the music tagger hears most clearly: "mellow, acoustic, female vocalists"

    def label(self) -> str:
        return f"{self.artist} – {self.title}" if self.artist else self.title


@dataclass
class SegmentTable:
    """Segments of all tracks, column-wise. Row i is one window of track ``track[i]`` (an index
    into the library's track list) from ``start[i]`` to ``end[i]`` seconds, with the mean and
    standard deviation of the 2 Hz series inside it."""

    track: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    valence: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    arousal: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    valence_std: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    arousal_std: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    COLUMNS = ("track", "start", "end", "valence", "arousal", "valence_std", "arousal_std")

    def __len__(self) -> int:
        return len(self.track)

    @property
    def va(self) -> np.ndarray:
        """(n, 2) float array of segment means (valence, arousal)."""
        return np.column_stack([self.valence, self.arousal])

    @classmethod
    def concat(cls, parts: list[SegmentTable]) -> SegmentTable:
        if not parts:
            return cls()
        return cls(**{c: np.concatenate([getattr(p, c) for p in parts]) for c in cls.COLUMNS})


@dataclass(frozen=True)
class Segment:
    """One row of a :class:`SegmentTable`, as a value (for decisions, CLI output, the GUI)."""

    index: int
    track: int
    start: float
    end: float
    valence: float
    arousal: float
    valence_std: float
    arousal_std: float

    @classmethod
    def of(cls, table: SegmentTable, i: int) -> Segment:
        return cls(int(i), int(table.track[i]), float(table.start[i]), float(table.end[i]),
                   float(table.valence[i]), float(table.arousal[i]),
                   float(table.valence_std[i]), float(table.arousal_std[i]))


def segment_series(series: VASeries, track: int, window: float = 10.0, hop: float = 5.0,
                   min_window: float = 5.0) -> SegmentTable:
    """Cut a 2 Hz series into windows of ``window`` seconds every ``hop`` seconds.

    Windows start at the series' first step and never run past its end. A series shorter
    than one window but at least ``min_window`` long gives one segment covering it; a shorter
    one gives none. Each segment holds the mean and standard deviation of the steps inside it.
    """
    if window <= 0 or hop <= 0:
        raise ValueError("segment window and hop must be positive")
    n = len(series)
    step = 1.0 / SERIES_HZ
    if n == 0:
        return SegmentTable()
    t0 = float(series.t[0])
    length = n * step
    per_window = int(round(window * SERIES_HZ))
    per_hop = max(1, int(round(hop * SERIES_HZ)))
    if n >= per_window:
        starts = np.arange(0, n - per_window + 1, per_hop)
        sizes = np.full(len(starts), per_window)
    elif length >= min_window:
        starts, sizes = np.array([0]), np.array([n])
    else:
        return SegmentTable()
    v = np.asarray(series.valence, np.float64)
    a = np.asarray(series.arousal, np.float64)
    cols: dict[str, list[float]] = {c: [] for c in SegmentTable.COLUMNS[1:]}
    for s, size in zip(starts, sizes):
        sv, sa = v[s:s + size], a[s:s + size]
        cols["start"].append(t0 + s * step)
        cols["end"].append(t0 + (s + size) * step)
        cols["valence"].append(sv.mean())
        cols["arousal"].append(sa.mean())
        cols["valence_std"].append(sv.std())
        cols["arousal_std"].append(sa.std())
    return SegmentTable(track=np.full(len(starts), track, np.int32),
                        **{c: np.asarray(vals, np.float32) for c, vals in cols.items()})
