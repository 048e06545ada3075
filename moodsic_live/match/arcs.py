"""Emotional arcs and their alignment by dynamic time warping (DTW).

An **arc** is how valence and arousal rise and fall over a video or a song. Matching arcs, not
just moments, lets a video that turns from sad to joyful get music that makes the same turn,
even when the two take the turn at different paces.

**Extraction** (:func:`extract_arc`). Both kinds of series are brought to one common rate
(``rate_hz``, 1 Hz by default: emotional arcs move over seconds, and 1 Hz keeps a 3-minute
video at 180 points) by linear interpolation, then smoothed with a centred moving average of
``smooth_s`` seconds (``scipy.ndimage.uniform_filter1d``; edges repeat the end values).

**Intensity normalisation per source.** A video's arc comes from the perceiver (the estimate
space: the whole [-1, 1] square), a track's from human ratings or our audio analysis, which
use only part of that square (DEAM's songs sit within about ±0.85 with a spread near 0.3).
Each source is mapped into one space, the library's: tracks are already in it, and the video's
arc goes through the library's :class:`~moodsic_live.match.alignment.Aligner` — the same
quantile mapping the live matcher uses, per dimension, so a video's calmest moments meet the
library's calmest music whatever range the perceiver happens to use. The transition channel
is the change over ``smooth_s`` seconds (central differences × ``smooth_s``), so a rise of 0.4
over the smoothing window reads 0.4 in the same units as the levels.

**Cost** (:func:`cost_matrix`). For video point ``i`` and track point ``j``::

    C[i, j] = sqrt( |A_i - B_j|² + λ · w_i · |ΔA_i - ΔB_j|² )

``λ`` is ``transition_weight`` (0 gives plain DTW on V/A with Euclidean cost, what
``librosa.sequence.dtw`` computes itself), ``w_i`` the **transition weight** of the video's
move at ``i``: where the video goes from one quadrant of the plane to another (joyful V+A+,
tense V−A+, sad V−A−, calm V+A−, around the library's centre) over the smoothing window,
the pair's configured weight (sadness → joy 2 by default), else 1.

**Alignment** (:func:`align`), both steps with ``librosa.sequence.dtw`` on our cost matrix:

1. *where*: subsequence DTW of the video against the whole track, steps (1,1), (1,k), (k,1)
   for k ≤ ``max_stretch`` (local pacing between 1/2 and 2 by default), the (k,1) steps
   weighted k so that every video second costs once: the best end, backtracked to its start,
   gives the **start offset** in the track;
2. *what is heard*: the music plays in real time, so the excerpt that covers the video is
   ``track[offset : offset + video length]``; it is aligned with the video by full DTW inside
   a **Sakoe–Chiba band** of ``band_s`` seconds (the flow may run that far ahead of or behind
   the picture). Its mean cost per path step ``c̄`` gives the **similarity**
   ``exp(-c̄ / COST_SCALE)`` in (0, 1] (1 = the same arc) and the alignment path.

A track shorter than the video is aligned whole in step 2 and its similarity multiplied by
the share of the video it covers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d

from moodsic_live.errors import MoodsicError

COST_SCALE = 0.25        # library units: a mean cost of 0.25 per step is similarity e^-1 = 0.37
MIN_POINTS = 3           # an arc needs at least this many points at its rate
QUADRANTS = ("joyful", "tense", "sad", "calm")


@dataclass(frozen=True, eq=False)
class Arc:
    """An arc at ``rate`` Hz: ``level`` (n, 2) V/A in the library's space, ``delta`` (n, 2) the
    change over the smoothing window, ``t0`` the source time of the first point (s)."""

    level: np.ndarray
    delta: np.ndarray
    rate: float
    t0: float = 0.0

    def __len__(self) -> int:
        return len(self.level)

    @property
    def duration(self) -> float:
        return len(self.level) / self.rate

    def times(self) -> np.ndarray:
        return self.t0 + np.arange(len(self.level)) / self.rate


def extract_arc(t, va, *, rate: float = 1.0, smooth_s: float = 5.0, aligner=None, what: str = "series") -> Arc:
    """The arc of a V/A series sampled at times ``t`` (s): resampled to ``rate`` Hz, smoothed over
    ``smooth_s`` s, mapped into the library's space by ``aligner`` (None: already there).

    Raises :class:`MoodsicError` naming ``what`` when fewer than :data:`MIN_POINTS` usable
    points remain."""
    t = np.asarray(t, np.float64).reshape(-1)
    va = np.asarray(va, np.float64).reshape(len(t), 2) if len(t) else np.zeros((0, 2))
    ok = np.isfinite(t) & np.all(np.isfinite(va), axis=1)
    t, va = t[ok], va[ok]
    if len(t):
        order = np.argsort(t, kind="stable")
        t, va = t[order], va[order]
    n = int(np.floor((t[-1] - t[0]) * rate + 1e-9)) + 1 if len(t) else 0
    if n < MIN_POINTS:
        raise MoodsicError(f"{what}: too short for an emotional arc ({n} points at {rate:g} Hz, "
                           f"need {MIN_POINTS}: at least {(MIN_POINTS - 1) / rate:g} s of V/A)")
    grid = t[0] + np.arange(n) / rate
    level = np.column_stack([np.interp(grid, t, va[:, d]) for d in (0, 1)])
    size = max(1, int(round(smooth_s * rate)))
    if size > 1:
        level = uniform_filter1d(level, size=size, axis=0, mode="nearest")
    if aligner is not None:
        level = aligner.apply(level)
    delta = np.gradient(level, axis=0) * max(smooth_s * rate, 1.0)
    return Arc(np.ascontiguousarray(level), np.ascontiguousarray(delta), float(rate), float(grid[0]))


def quadrant(level: np.ndarray, centre=(0.0, 0.0)) -> np.ndarray:
    """Index into :data:`QUADRANTS` of each point: joyful V+A+, tense V−A+, sad V−A−, calm V+A−."""
    v = np.asarray(level)[:, 0] >= centre[0]
    a = np.asarray(level)[:, 1] >= centre[1]
    return np.where(v & a, 0, np.where(~v & a, 1, np.where(~v, 2, 3)))


def transition_weights(arc: Arc, weights, centre=(0.0, 0.0), span_s: float = 5.0) -> np.ndarray:
    """``w_i`` per point of a (video) arc: the configured weight of the quadrant change between
    ``span_s``/2 before and after it (``weights`` has attributes like ``sad_to_joyful``), else 1."""
    q = quadrant(arc.level, centre)
    h = max(1, int(round(span_s * arc.rate / 2)))
    i = np.arange(len(q))
    before, after = q[np.clip(i - h, 0, len(q) - 1)], q[np.clip(i + h, 0, len(q) - 1)]
    table = np.ones((4, 4))
    for a, name_a in enumerate(QUADRANTS):
        for b, name_b in enumerate(QUADRANTS):
            if a != b:
                table[a, b] = float(getattr(weights, f"{name_a}_to_{name_b}", 1.0))
    return table[before, after]


def cost_matrix(video: Arc, track: Arc, transition_weight: float = 0.0, w: np.ndarray | None = None) -> np.ndarray:
    """``C[i, j]`` (see the module docstring) for every video point ``i`` and track point ``j``."""
    level = _sq_dist(video.level, track.level)
    if transition_weight > 0:
        ww = np.ones(len(video)) if w is None else np.asarray(w, np.float64)
        level += (transition_weight * ww)[:, None] * _sq_dist(video.delta, track.delta)
    return np.sqrt(np.maximum(level, 0.0))


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[:, None, 0] - b[None, :, 0]) ** 2 + (a[:, None, 1] - b[None, :, 1]) ** 2


@dataclass(frozen=True, eq=False)
class Alignment:
    """The result of aligning a video's arc with a track's."""

    similarity: float          # (0, 1]: exp(-mean cost / COST_SCALE) × coverage
    offset_s: float            # where in the track the excerpt starts (track time, s)
    path: np.ndarray           # (k, 2) pairs (video point, track point) of the excerpt's alignment, in order
    mean_cost: float
    coverage: float            # share of the video the track covers (1 unless the track is shorter)


def steps_for(max_stretch: float) -> tuple[np.ndarray, np.ndarray]:
    """Step sizes (video, track) and their cost multipliers for subsequence search."""
    k_max = max(1, int(round(max_stretch)))
    steps = [(1, 1)] + [s for k in range(2, k_max + 1) for s in ((1, k), (k, 1))]
    return np.array(steps, np.int64), np.array([float(s[0]) for s in steps])


def locate(cost: np.ndarray, max_stretch: float = 2.0) -> tuple[int, float]:
    """Subsequence DTW over a cost matrix (video × track): (start column, mean cost per video
    point) of the best path."""
    import librosa

    steps, mul = steps_for(max_stretch)
    n, m = cost.shape
    if m < n or n < 2:
        return 0, float(np.mean(np.min(cost, axis=1)))
    acc, path = librosa.sequence.dtw(C=cost, subseq=True, step_sizes_sigma=steps, weights_mul=mul,
                                     weights_add=np.zeros(len(steps)), backtrack=True)
    end = int(path[0, 1])
    return int(path[-1, 1]), float(acc[-1, end]) / n


def banded(cost: np.ndarray, band: int) -> tuple[float, np.ndarray]:
    """Full DTW inside a Sakoe–Chiba band of ``band`` points: (mean cost per path step, path)."""
    import librosa

    n, m = cost.shape
    radius = min(1.0, band / max(1, min(n, m)))
    acc, path = librosa.sequence.dtw(C=cost, global_constraints=radius < 1.0, band_rad=radius, backtrack=True)
    path = path[::-1]
    return float(acc[-1, -1]) / len(path), path


def align(video: Arc, track: Arc, *, transition_weight: float = 1.0, w: np.ndarray | None = None,
          band_s: float = 20.0, max_stretch: float = 2.0) -> Alignment:
    """Where the video's arc fits the track best, and how similar the excerpt heard is."""
    if video.rate != track.rate:
        raise ValueError(f"arcs at different rates ({video.rate:g} and {track.rate:g} Hz)")
    n, m = len(video), len(track)
    cost = cost_matrix(video, track, transition_weight, w)
    if m > n:
        start, _ = locate(cost, max_stretch)
        start = min(start, m - n)
        excerpt = cost[:, start:start + n]
        coverage = 1.0
    else:
        start, excerpt, coverage = 0, cost, m / n
    mean_cost, path = banded(excerpt, int(round(band_s * video.rate)))
    path = path + np.array([0, start])
    similarity = float(np.exp(-mean_cost / COST_SCALE)) * coverage
    return Alignment(similarity, track.t0 + start / track.rate, path, mean_cost, coverage)
