"""The matcher: which segment should play now, given the room's emotion estimate.

Pure and deterministic: the caller passes the clock (``now``, seconds) and the estimate;
nothing here reads time, audio or threads. Like a good DJ it stays close in mood, avoids
playing the same songs again and again, and is never jumpy:

1. The mode turns the estimate into a target in the estimate space (:func:`mode_target`:
   ``mirror`` the estimate, ``regulate`` towards a goal step by step (iso principle),
   ``target`` a venue's atmosphere nudged by the room), which the library's
   :class:`~moodsic_live.match.alignment.Aligner` maps into the library's space.
2. The ``k`` nearest segments of the target are scored (:func:`score_candidates`): their
   distance plus soft penalties, never exclusions: ``recent_penalty`` for a song among the last
   ``recent_songs`` played, ``cluster_prior`` outside the target's mood cluster, and
   ``tail_penalty`` for a segment with less than the dwell left of its song (it could not be
   held for the dwell).
3. Nothing plays yet: the best candidate starts ("start"). Within ``dwell_seconds`` of a switch
   the choice is held ("hold"), unless the song has run out altogether. After the dwell:

   * the song is ending (less than ``ending_seconds`` left at the playback position): the best
     candidate from another song, or an earlier part of this one (scored as recent), starts
     whatever its score ("ending");
   * otherwise the best candidate from another song starts only if its score beats the
     current segment's score by ``switch_margin`` ("better"; hysteresis). The current
     segment is the segment of the playing song around the playback position (segment start
     + time since the switch), scored without a recent penalty: a playing song is never
     forced out for being recent, and a song is never cut to jump within itself.

A new segment always starts at its start time.

Which of the candidates starts on a switch is the best-scored one, unless a **picker** is given
(:data:`Picker`): the live engine passes the learner's, which ranks the candidates by the hybrid
score (:mod:`moodsic_live.match.hybrid`) and explores only among those near the target. The picker
sees one candidate per song (its best segment), best-scored first; on a "better" switch only those
that beat the playing segment by ``switch_margin``, so a picker never makes a switch the rule would
not make.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from moodsic_live.config import MatchConfig
from moodsic_live.errors import MoodsicError
from moodsic_live.library.model import Segment, SegmentTable
from moodsic_live.match.alignment import Aligner
from moodsic_live.match.index import EMPTY_LIBRARY, SegmentIndex
from moodsic_live.match.moods import MoodClusters
from moodsic_live.perceive.estimate import VA

Reason = Literal["start", "better", "ending", "hold", "skip", "replay"]
DWELL_RANGE = (20.0, 30.0)
PICKER_WIDTH = 4    # with a picker, this many times ``k`` nearest segments are candidates (several songs)
# regulate goals in the estimate space (valence, arousal)
GOALS: dict[str, tuple[float, float]] = {
    "calm": (0.5, -0.6),
    "energise": (0.5, 0.6),
    "uplift": (0.7, 0.1),
}


@dataclass(frozen=True)
class MatchDecision:
    """What should play at time ``t``. ``segment`` is the segment just started (on a switch)
    or the segment of the playing song around the playback position (on hold); ``position``
    is the second of track ``track_index`` that should be playing now; ``target`` is the
    mode's target in the library's space and ``distance`` the segment's distance to it;
    ``cluster`` is the segment's mood cluster ("" without clusters)."""

    t: float
    segment: Segment
    track_index: int
    target: tuple[float, float]
    estimate: VA
    distance: float
    cluster: str
    reason: Reason
    switched: bool
    position: float


@dataclass(frozen=True)
class Playing:
    """The current choice: segment row ``segment`` of track ``track``, started at ``start``
    seconds into the track when the clock read ``since``."""

    segment: int
    track: int
    since: float
    start: float

    def position(self, now: float) -> float:
        return self.start + max(0.0, now - self.since)


@dataclass(frozen=True)
class Candidates:
    """The songs a switch may start, one per song (its best segment), best-scored first: segment
    ``rows``, their ``tracks``, V/A ``distances`` to the target and matcher ``scores`` (distance plus
    penalties, lower is better), both in library units; ``plays_ago`` how many songs ago each track
    last started (0 = the playing one, -1 = not lately); ``kind`` start / better / ending / skip;
    ``current`` the playing segment's score on a "better" switch (every candidate beats it by
    ``switch_margin``), nan otherwise."""

    rows: np.ndarray
    tracks: np.ndarray
    distances: np.ndarray
    scores: np.ndarray
    plays_ago: np.ndarray
    kind: str
    current: float = math.nan

    def __len__(self) -> int:
        return len(self.rows)


# Which candidate starts: an index into the candidates. ``final`` is False for a look ahead
# (:meth:`Matcher.peek`): the picker must then not explore or remember anything.
Picker = Callable[[Candidates, bool], int]


def validate_config(config: MatchConfig) -> None:
    """One-line errors naming the ``match.*`` setting that cannot be used."""
    lo, hi = DWELL_RANGE
    if not lo <= config.dwell_seconds <= hi:
        raise MoodsicError(f"config match.dwell_seconds: {config.dwell_seconds:g} is outside "
                           f"{lo:g}..{hi:g} seconds; choose a dwell of {lo:g} to {hi:g} s")
    if config.k < 1:
        raise MoodsicError(f"config match.k: {config.k} candidates; use at least 1")
    if config.recent_songs < 0:
        raise MoodsicError(f"config match.recent_songs: {config.recent_songs} is negative; use 0 or more")
    for key in ("recent_penalty", "switch_margin", "ending_seconds", "cluster_prior", "tail_penalty"):
        value = getattr(config, key)
        if not (math.isfinite(value) and value >= 0):
            raise MoodsicError(f"config match.{key}: {value:g} must be a number of 0 or more")
    if not (math.isfinite(config.regulate_step) and config.regulate_step > 0):
        raise MoodsicError(f"config match.regulate_step: {config.regulate_step:g} must be more than 0")
    if config.regulate_goal not in GOALS:
        raise MoodsicError(f"config match.regulate_goal: {config.regulate_goal!r} is not one of "
                           f"{', '.join(GOALS)}")
    for key in ("target_valence", "target_arousal"):
        value = getattr(config, key)
        if not -1.0 <= value <= 1.0:
            raise MoodsicError(f"config match.{key}: {value:g} is outside -1..1")
    if not 0.0 <= config.target_nudge <= 1.0:
        raise MoodsicError(f"config match.target_nudge: {config.target_nudge:g} is outside 0..1")
    if config.mode not in ("mirror", "regulate", "target"):
        raise MoodsicError(f"config match.mode: {config.mode!r} is not one of mirror, regulate, target")


def mode_target(config: MatchConfig, valence: float, arousal: float, elapsed: float = 0.0) -> tuple[float, float]:
    """The mode's target in the estimate space, clipped to [-1, 1].

    ``mirror``: the estimate. ``regulate``: estimate + min(1, steps·step / |goal − estimate|)
    · (goal − estimate) with steps = whole dwell periods in ``elapsed`` (seconds since
    regulation started), so the target starts at the person's mood and reaches the goal after
    |goal − estimate| / step dwells, always relative to the current estimate. ``target``:
    T + nudge · (estimate − T).
    """
    if config.mode == "mirror":
        tv, ta = valence, arousal
    elif config.mode == "regulate":
        gv, ga = GOALS[config.regulate_goal]
        dv, da = gv - valence, ga - arousal
        gap = math.hypot(dv, da)
        steps = math.floor(max(0.0, elapsed) / config.dwell_seconds + 1e-9)
        f = 1.0 if gap <= 1e-12 else min(1.0, steps * config.regulate_step / gap)
        tv, ta = valence + f * dv, arousal + f * da
    elif config.mode == "target":
        t_v, t_a, w = config.target_valence, config.target_arousal, config.target_nudge
        tv, ta = t_v + w * (valence - t_v), t_a + w * (arousal - t_a)
    else:
        raise MoodsicError(f"config match.mode: {config.mode!r} is not one of mirror, regulate, target")
    return float(np.clip(tv, -1.0, 1.0)), float(np.clip(ta, -1.0, 1.0))


def score_candidates(distances: np.ndarray, tracks: np.ndarray, labels: np.ndarray | None = None, *,
                     target_label: int | None = None, recent_tracks: Iterable[int] = (),
                     recent_penalty: float = 0.0, cluster_prior: float = 0.0,
                     short: np.ndarray | None = None, tail_penalty: float = 0.0) -> np.ndarray:
    """Scores (lower is better) of candidates: distance to the target plus soft penalties.

    ``recent_penalty`` if the candidate's track is in ``recent_tracks``; ``cluster_prior`` if
    its cluster label differs from ``target_label`` (both given); ``tail_penalty`` where
    ``short`` is true. Penalties only add: nothing is excluded, so a candidate nearer than
    another by more than the penalties between them still wins.
    """
    scores = np.asarray(distances, np.float64).copy()
    tracks = np.asarray(tracks)
    recent = np.fromiter((int(t) for t in recent_tracks), np.int64)
    if recent_penalty and len(recent):
        scores += recent_penalty * np.isin(tracks, recent)
    if cluster_prior and labels is not None and target_label is not None:
        scores += cluster_prior * (np.asarray(labels) != target_label)
    if tail_penalty and short is not None:
        scores += tail_penalty * np.asarray(short, bool)
    return scores


def rank(segments: SegmentTable, index: SegmentIndex, aligner: Aligner, clusters: MoodClusters | None,
         valence: float, arousal: float, k: int) -> list[tuple[Segment, float, str]]:
    """The ``k`` segments nearest to an estimate (aligned into the library), nearest first:
    (segment, distance in the library's space, cluster name or "")."""
    target = aligner(float(valence), float(arousal))
    d, idx = index.query(target, k)
    names = [""] * len(idx)
    if clusters is not None:
        va = np.column_stack([segments.valence[idx], segments.arousal[idx]])
        names = [clusters.names[j] for j in clusters.predict(va)]
    return [(Segment.of(segments, int(i)), float(di), name) for i, di, name in zip(idx, d, names)]


def _finite(x: float) -> float:
    x = float(x)
    return float(np.clip(x, -1.0, 1.0)) if math.isfinite(x) else 0.0


class Matcher:
    """Stateful choice of the segment to play; see the module docstring for the rules."""

    def __init__(self, segments: SegmentTable, track_durations: np.ndarray, config: MatchConfig,
                 aligner: Aligner, clusters: MoodClusters | None, index: SegmentIndex | None = None,
                 picker: Picker | None = None) -> None:
        validate_config(config)
        self.picker = picker
        if len(segments) == 0:
            raise MoodsicError(EMPTY_LIBRARY)
        self.segments = segments
        self.config = config
        self.aligner = aligner
        self.clusters = clusters
        self.index = index if index is not None else SegmentIndex(segments)
        if len(self.index) != len(segments):
            raise ValueError("the segment index was built for another segment table")
        track = np.asarray(segments.track, np.int64)
        self._start = np.asarray(segments.start, np.float64)
        self._end = np.asarray(segments.end, np.float64)
        n_tracks = max(len(track_durations), int(track.max()) + 1)
        last_end = np.zeros(n_tracks)
        np.maximum.at(last_end, track, self._end)
        durations = np.full(n_tracks, np.nan)
        durations[:len(track_durations)] = np.asarray(track_durations, np.float64)
        bad = ~np.isfinite(durations) | (durations <= 0)
        durations[bad] = last_end[bad]  # unknown duration: the end of the song's last segment
        self._durations = durations
        self._track = track
        self._order = np.lexsort((self._start, track))
        self._bounds = np.searchsorted(track[self._order], np.arange(n_tracks + 1))
        self._unplayable = np.zeros(n_tracks, bool)
        self.reset()

    def mark_unplayable(self, track: int) -> None:
        """Never choose ``track`` again (its file failed to decode), unless no other song is left.
        Kept across :meth:`reset`: it is about the file, not about the run."""
        self._unplayable[int(track)] = True

    @property
    def unplayable(self) -> list[int]:
        return [int(t) for t in np.flatnonzero(self._unplayable)]

    def reset(self) -> None:
        """Forget what plays, what played and when regulation started."""
        self._playing: Playing | None = None
        self._history: list[int] = []  # distinct tracks, most recently started last
        self._regulate_since: float | None = None

    @property
    def playing(self) -> Playing | None:
        return self._playing

    @property
    def recent_tracks(self) -> list[int]:
        """The last ``recent_songs`` distinct songs started, most recent (the playing one) last."""
        n = self.config.recent_songs
        return self._history[-n:] if n > 0 else []

    # -- helpers -------------------------------------------------------------------------

    def _va(self, rows: np.ndarray) -> np.ndarray:
        return np.column_stack([np.asarray(self.segments.valence[rows], np.float64),
                                np.asarray(self.segments.arousal[rows], np.float64)])

    def _labels(self, rows: np.ndarray) -> np.ndarray | None:
        return None if self.clusters is None else self.clusters.predict(self._va(rows))

    def _segment_at(self, track: int, position: float) -> int:
        """The segment of ``track`` around ``position``: among those containing it the one whose
        middle is nearest; if none contains it, the one whose middle is nearest."""
        rows = self._order[self._bounds[track]:self._bounds[track + 1]]
        starts, ends = self._start[rows], self._end[rows]
        off = np.abs((starts + ends) / 2.0 - position)
        inside = (starts <= position) & (position < ends)
        if inside.any():
            off = np.where(inside, off, np.inf)
        return int(rows[int(np.argmin(off))])

    def _candidates(self, target: tuple[float, float], target_label: int | None, kind: str,
                    current_track: int = -1, position: float = 0.0) -> Candidates | None:
        """The candidates for a start, an ending, a better switch or a skip (None: no other song)."""
        cfg, n = self.config, len(self.segments)
        k = min(n, cfg.k * (PICKER_WIDTH if self.picker is not None else 1))  # a picker needs several songs
        other = "better" if kind == "skip" else kind
        while True:
            d, rows = self.index.query(target, k)
            tracks = self._track[rows]
            if other == "better":
                eligible = tracks != current_track
            elif other == "ending":  # another song, or an earlier part of this one
                eligible = (tracks != current_track) | (self._end[rows] <= position)
            else:
                eligible = np.ones(len(rows), bool)
            if self._unplayable.any() and not self._unplayable.all():
                eligible &= ~self._unplayable[tracks]
            if eligible.any() or k >= n:
                break
            k = min(n, k * 8)
        if not eligible.any():
            if other == "better":
                return None
            eligible[:] = True  # a one-song library: start it again
        rows, d, tracks = rows[eligible], d[eligible], tracks[eligible]
        short = self._durations[tracks] - self._start[rows] < cfg.dwell_seconds
        scores = score_candidates(d, tracks, self._labels(rows), target_label=target_label,
                                  recent_tracks=self.recent_tracks, recent_penalty=cfg.recent_penalty,
                                  cluster_prior=cfg.cluster_prior, short=short, tail_penalty=cfg.tail_penalty)
        order = np.lexsort((rows, scores))
        _, first = np.unique(tracks[order], return_index=True)   # each song's best segment
        keep = order[np.sort(first)]
        history = self._history
        ago = np.array([len(history) - 1 - history.index(int(t)) if int(t) in history else -1
                        for t in tracks[keep]], np.int64)
        return Candidates(rows[keep], tracks[keep], np.asarray(d, np.float64)[keep], scores[keep], ago, kind)

    def _pick(self, c: Candidates, final: bool = True) -> tuple[int, float]:
        """The candidate that starts (row, score): the picker's, else the best-scored."""
        i = 0
        if self.picker is not None:
            i = int(self.picker(c, final))
            if not 0 <= i < len(c):
                raise ValueError(f"picker chose candidate {i} of {len(c)}")
        return int(c.rows[i]), float(c.scores[i])

    def _choose(self, target: tuple[float, float], target_label: int | None, kind: str,
                current_track: int = -1, position: float = 0.0, final: bool = True) -> tuple[int, float] | None:
        """The candidate (row, score) that starts on a start, an ending or a skip."""
        c = self._candidates(target, target_label, kind, current_track, position)
        return None if c is None else self._pick(c, final)

    def _decision(self, now: float, row: int, target: tuple[float, float], estimate: VA, reason: Reason,
                  position: float) -> MatchDecision:
        seg = Segment.of(self.segments, row)
        distance = math.hypot(seg.valence - target[0], seg.arousal - target[1])
        cluster = "" if self.clusters is None else self.clusters.name_of(seg.valence, seg.arousal)
        return MatchDecision(float(now), seg, seg.track, target, estimate, distance, cluster, reason,
                             reason != "hold", float(position))

    def _switch(self, now: float, row: int, reason: Reason, target: tuple[float, float],
                estimate: VA) -> MatchDecision:
        track = int(self._track[row])
        if track in self._history:
            self._history.remove(track)
        self._history.append(track)
        del self._history[:-64]
        self._playing = Playing(row, track, float(now), float(self._start[row]))
        return self._decision(now, row, target, estimate, reason, self._start[row])

    # -- the rule ----------------------------------------------------------------------------

    def _target(self, now: float, estimate: VA) -> tuple[tuple[float, float], int | None]:
        """The mode's target for ``estimate`` in the library's space, and its mood cluster."""
        ev, ea = _finite(estimate.valence), _finite(estimate.arousal)
        if self._regulate_since is None:
            self._regulate_since = float(now)
        tv, ta = mode_target(self.config, ev, ea, now - self._regulate_since)
        lv, la = self.aligner(tv, ta)
        target = (float(lv), float(la))
        target_label = None
        if self.clusters is not None:
            target_label = int(self.clusters.predict(np.array([target]))[0])
        return target, target_label

    def restart_mode(self) -> None:
        """The mode or its goal changed: regulation starts again from the current estimate."""
        self._regulate_since = None

    def peek(self, now: float, estimate: VA) -> MatchDecision | None:
        """What :meth:`skip` would choose now (a display's "up next"), changing nothing; None before the
        first choice or when no other song is left."""
        p = self._playing
        if p is None:
            return None
        target, target_label = self._target(now, estimate)
        best = self._choose(target, target_label, "skip", p.track, p.position(now), final=False)
        if best is None:
            return None
        return self._decision(now, best[0], target, estimate, "skip", self._start[best[0]])

    def replay(self, now: float, estimate: VA) -> MatchDecision | None:
        """Play the current choice again from where it started (the listener asked for it): the dwell
        starts again; None before the first choice."""
        p = self._playing
        if p is None:
            return None
        target, _ = self._target(now, estimate)
        self._playing = Playing(p.segment, p.track, float(now), p.start)
        return self._decision(now, p.segment, target, estimate, "replay", p.start)

    def skip(self, now: float, estimate: VA) -> MatchDecision:
        """Switch now, whatever the dwell, to the best choice in another song: the playing one could
        not be decoded or ran out before the matcher's own ending rule. A one-song library restarts."""
        p = self._playing
        if p is None:
            return self.update(now, estimate)
        target, target_label = self._target(now, estimate)
        best = self._choose(target, target_label, "skip", p.track, p.position(now))
        if best is None:
            best = self._choose(target, target_label, "ending", p.track, p.position(now))
        return self._switch(now, best[0], "skip", target, estimate)  # type: ignore[index]

    def update(self, now: float, estimate: VA) -> MatchDecision:
        """The decision at clock time ``now`` (seconds, non-decreasing) for ``estimate``.
        A non-finite estimate value counts as neutral (0)."""
        cfg = self.config
        target, target_label = self._target(now, estimate)

        p = self._playing
        if p is None:
            row, _ = self._choose(target, target_label, "start")  # type: ignore[misc]
            return self._switch(now, row, "start", target, estimate)

        position = p.position(now)
        remaining = self._durations[p.track] - position
        current = self._segment_at(p.track, position)
        if now - p.since < cfg.dwell_seconds and remaining > 0:
            return self._decision(now, current, target, estimate, "hold", position)
        if remaining < cfg.ending_seconds:
            row, _ = self._choose(target, target_label, "ending", p.track, position)  # type: ignore[misc]
            return self._switch(now, row, "ending", target, estimate)
        c = self._candidates(target, target_label, "better", p.track, position)
        if c is not None:
            cur_va = self._va(np.array([current]))
            cur_d = float(np.hypot(cur_va[0, 0] - target[0], cur_va[0, 1] - target[1]))
            cur_label = self._labels(np.array([current]))
            cur_score = float(score_candidates([cur_d], [p.track], cur_label, target_label=target_label,
                                               cluster_prior=cfg.cluster_prior)[0])
            better = c.scores + cfg.switch_margin < cur_score   # only songs that beat the playing one
            if better.any():
                keep = np.flatnonzero(better)
                c = Candidates(c.rows[keep], c.tracks[keep], c.distances[keep], c.scores[keep], c.plays_ago[keep],
                               c.kind, cur_score)
                row, _ = self._pick(c)
                return self._switch(now, row, "better", target, estimate)
        return self._decision(now, current, target, estimate, "hold", position)
