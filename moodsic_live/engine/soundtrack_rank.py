"""Whole-song soundtracks for a video: the video's emotional arc against every track's.

``analyze`` plans a soundtrack of segments that follow the video moment by moment. This ranks
**whole songs** instead: the stabilised V/A series of the video (from the same perceive →
stabilise pass) becomes an arc, every track's 2 Hz series becomes an arc, and each track is
scored by the hybrid score (moment fit, arc similarity by DTW, preference, novelty) with the
start offset where its arc fits the video's best (:mod:`moodsic_live.match.arc_rank`). The best
song played from that offset for the video's length is a soundtrack that rises and falls with
the picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moodsic_live.config import Config
from moodsic_live.engine.soundtrack import MusicCue, SoundtrackPlan
from moodsic_live.errors import MoodsicError
from moodsic_live.library.store import Library
from moodsic_live.match import arcs
from moodsic_live.match.alignment import Aligner
from moodsic_live.match.arc_rank import ArcTable, rank_soundtracks
from moodsic_live.match.hybrid import HybridWeights, Ranked, explain, weights_for
from moodsic_live.match.learner import Learner


@dataclass(frozen=True, eq=False)
class RankedSong:
    """One ranked song with its alignment to the video (path in seconds: video time, song time)."""

    ranked: Ranked
    track_id: str
    title: str
    artist: str
    path: str
    alignment: arcs.Alignment
    why: str

    def to_json(self, rate: float, video_t0: float) -> dict:
        r = self.ranked
        return {"track_id": self.track_id, "title": self.title, "artist": self.artist, "path": self.path,
                "score": round(r.score, 4), "offset_s": round(r.offset_s, 2),
                "terms": {k: round(v, 4) for k, v in zip(("fit", "arc", "pref", "novelty"), r.terms)},
                "why": self.why,
                "dtw_path": [[round(video_t0 + i / rate, 2), round(self.alignment.offset_s + (j - self.alignment.path[0, 1])
                                                                    / rate, 2)] for i, j in self.alignment.path]}


@dataclass(frozen=True, eq=False)
class SoundtrackRanking:
    video_arc: arcs.Arc
    weights: HybridWeights
    songs: list[RankedSong]
    compared: int            # tracks whose arcs were compared
    too_short: int           # tracks whose series is too short for an arc
    transition_weight: float = 1.0   # the DTW transition weight the arcs were aligned with

    def context(self, song: RankedSong) -> dict:
        """What the listening history keeps of a recommendation of ``song`` (the learner learns from it)."""
        r = song.ranked
        return {"hybrid": "video", "terms": [round(float(x), 4) for x in r.terms], "weights": self.weights.to_dict(),
                "why": song.why, "transition_weight": self.transition_weight, "offset_s": round(r.offset_s, 2),
                "rank": self.songs.index(song) + 1}

    def to_json(self) -> dict:
        return {"weights": self.weights.to_dict(), "compared": self.compared, "too_short": self.too_short,
                "transition_weight": self.transition_weight,
                "video_arc": {"t0": round(self.video_arc.t0, 2), "rate_hz": self.video_arc.rate,
                              "valence": np.round(self.video_arc.level[:, 0], 4).tolist(),
                              "arousal": np.round(self.video_arc.level[:, 1], 4).tolist()},
                "ranked": [s.to_json(self.video_arc.rate, self.video_arc.t0) for s in self.songs]}


def library_arcs(library: Library, config: Config) -> tuple[ArcTable, int]:
    """Every track's arc (library units), and how many tracks were too short for one."""
    cfg = config.match.arcs
    out, rows, short = [], [], 0
    for k, track in enumerate(library.tracks):
        s = track.series
        try:
            out.append(arcs.extract_arc(s.t, np.column_stack([s.valence, s.arousal]), rate=cfg.rate_hz,
                                        smooth_s=cfg.smooth_s, what=f"track {track.id}"))
            rows.append(k)
        except MoodsicError:
            short += 1
    return ArcTable.of(out, rows), short


def video_arc(plan: SoundtrackPlan, library: Library, config: Config) -> tuple[arcs.Arc, np.ndarray]:
    """The video's arc in the library's space, and the transition weight of each of its points."""
    cfg = config.match.arcs
    if not plan.emotion:
        raise MoodsicError(f"{plan.video.get('path', 'video')}: no usable frames, so there is no emotional arc to "
                           "follow; check that the file plays, or try analyze for a segment plan")
    t = np.array([p.t for p in plan.emotion])
    va = np.array([[p.valence, p.arousal] for p in plan.emotion])
    aligner = Aligner.fit(library.segments.va, config.match.alignment)  # the live matcher's mapping
    arc = arcs.extract_arc(t, va, rate=cfg.rate_hz, smooth_s=cfg.smooth_s, aligner=aligner,
                           what=f"video {plan.video.get('path', '')}".strip())
    centre = tuple(float(x) for x in aligner.apply(np.zeros((1, 2)))[0])
    return arc, arcs.transition_weights(arc, cfg.transitions, centre, span_s=cfg.smooth_s)


def rank_for_video(plan: SoundtrackPlan, library: Library, config: Config, *, top: int = 10,
                   pref: np.ndarray | None = None, weights: HybridWeights | None = None,
                   table: tuple[ArcTable, int] | None = None, learner: Learner | None = None,
                   explore: bool = False) -> SoundtrackRanking:
    """The ``top`` whole songs for the video of ``plan``; ``pref`` per library track (0.5 unknown).
    With a ``learner``, what it learned from listeners ranks: its weights for videos, its preference
    of each track and its DTW transition weight (the best so far; with ``explore`` a Thompson draw among
    the ones it tries, where the listener can answer), unless ``weights``/``pref`` are given."""
    cfg = config.match.arcs
    transition = cfg.transition_weight
    if learner is not None:
        weights = weights or learner.weights("video")
        if pref is None:
            pref = learner.preference([t.id for t in library.tracks])
        transition = learner.transition_weight(explore=explore)
    arc, w = video_arc(plan, library, config)
    table, short = table if table is not None else library_arcs(library, config)
    if len(table) == 0:
        raise MoodsicError(f"library {library.name}: no track has a V/A series long enough for an emotional arc "
                           f"(need {(arcs.MIN_POINTS - 1) / cfg.rate_hz:g} s); rebuild it with longer music")
    weights = weights or weights_for(config.match.hybrid, "video")
    ranked = rank_soundtracks(arc, table, weights, pref=None if pref is None else np.asarray(pref)[table.tracks],
                              top=top, transition_weight=transition, w=w, band_s=cfg.band_s,
                              max_stretch=cfg.max_stretch)
    songs = []
    where = {int(t): k for k, t in enumerate(table.tracks)}
    for r in ranked:
        track = library.tracks[r.track]
        a = arcs.align(arc, table.arc(where[r.track]), transition_weight=transition, w=w,
                       band_s=cfg.band_s, max_stretch=cfg.max_stretch)
        songs.append(RankedSong(r, track.id, track.title, track.artist, str(track.path), a, explain(r, weights)))
    return SoundtrackRanking(arc, weights, songs, len(table), short, float(transition))


def whole_song_plan(plan: SoundtrackPlan, song: RankedSong, crossfade_s: float) -> SoundtrackPlan:
    """``plan`` with its music replaced by one song played from its offset for the whole video."""
    duration = float(plan.video["duration"])
    cue = MusicCue(start=0.0, end=duration, song_id=song.track_id, title=song.title, artist=song.artist,
                   path=song.path, segment_start=float(song.ranked.offset_s), crossfade_s=crossfade_s,
                   mood="", reason="arc")
    return SoundtrackPlan(video=plan.video, emotion=plan.emotion, music=[cue], metrics=plan.metrics)
