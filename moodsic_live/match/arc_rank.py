"""Ranking whole songs as soundtracks for a video: every track's arc against the video's.

:func:`moodsic_live.match.arcs.align` aligns one pair with ``librosa.sequence.dtw`` and returns
the path; ranking a library needs the same two DTW steps for thousands of tracks, where
librosa's general loop (about 25 ns per cell plus a fixed cost per call) takes ~3 ms a track:
6 s for DEAM's 2,000 songs. :func:`score_tracks` runs the **same recurrences** — same steps,
same step weights, same Sakoe–Chiba band, same tie-breaking, so the same start offsets and
similarities (tested against ``align`` on random arcs) — in one compiled loop over all tracks
(numba, which librosa itself uses), computing each cost cell once and keeping no path. Only the
top tracks are aligned again with librosa for their paths.

**Pre-filter for large libraries** (:func:`rank_soundtracks` with ``prefilter``): a
coarse-to-fine search. Every arc is first averaged into ``coarse_s``-second blocks (10 s:
18 points for a 3-minute video) and scored the same way at that resolution (~100× fewer cells);
only the best ``keep`` tracks by that coarse score are scored at full resolution. The coarse
score is not a strict lower bound, so the bench measures how many of the exhaustive top 10 the
pre-filtered top 10 keeps.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from moodsic_live.match import arcs as arcs_mod
from moodsic_live.match.arcs import COST_SCALE, Arc
from moodsic_live.match.hybrid import FIT_SIGMA, HybridWeights, Ranked, combine


@dataclass(frozen=True, eq=False)
class ArcTable:
    """All tracks' arcs in flat arrays: track ``k`` is rows ``starts[k]:starts[k+1]``."""

    level: np.ndarray     # (M, 2) float64
    delta: np.ndarray     # (M, 2)
    starts: np.ndarray    # (T + 1,) int64
    t0: np.ndarray        # (T,) source time of each arc's first point (s)
    tracks: np.ndarray    # (T,) the track number in the library of each arc
    rate: float

    def __len__(self) -> int:
        return len(self.tracks)

    def arc(self, k: int) -> Arc:
        a, b = self.starts[k], self.starts[k + 1]
        return Arc(self.level[a:b], self.delta[a:b], self.rate, float(self.t0[k]))

    @classmethod
    def of(cls, arcs: list[Arc], tracks) -> ArcTable:
        rate = arcs[0].rate if arcs else 1.0
        starts = np.zeros(len(arcs) + 1, np.int64)
        starts[1:] = np.cumsum([len(a) for a in arcs])
        cat = (lambda key: np.concatenate([getattr(a, key) for a in arcs]) if arcs else np.zeros((0, 2)))
        return cls(np.ascontiguousarray(cat("level")), np.ascontiguousarray(cat("delta")), starts,
                   np.array([a.t0 for a in arcs], np.float64), np.asarray(tracks, np.int64), float(rate))

    def coarse(self, block: int) -> ArcTable:
        """Every arc averaged into blocks of ``block`` points (the last, partial block too)."""
        return ArcTable.of([coarsen(self.arc(k), block) for k in range(len(self))], self.tracks)


def coarsen(arc: Arc, block: int) -> Arc:
    if block <= 1:
        return arc
    n = len(arc)
    edges = np.arange(0, n, block)
    counts = np.diff(np.append(edges, n))[:, None]
    pool = (lambda x: np.add.reduceat(x, edges, axis=0) / counts)
    return Arc(pool(arc.level), pool(arc.delta), arc.rate / block, arc.t0)


@numba.njit(cache=True, nogil=True)
def _score(A, dA, wv, level, delta, starts, band, steps, mul, sigma):  # pragma: no cover - compiled
    n = A.shape[0]
    T = starts.shape[0] - 1
    mean_cost = np.empty(T)
    offset = np.zeros(T, np.int64)
    fit = np.empty(T)
    coverage = np.empty(T)
    for k in range(T):
        a0 = starts[k]
        m = starts[k + 1] - a0
        C = np.empty((n, m))
        for i in range(n):
            for j in range(m):
                dv = A[i, 0] - level[a0 + j, 0]
                da = A[i, 1] - level[a0 + j, 1]
                c = dv * dv + da * da
                if wv[i] > 0.0:
                    ev = dA[i, 0] - delta[a0 + j, 0]
                    ea = dA[i, 1] - delta[a0 + j, 1]
                    c += wv[i] * (ev * ev + ea * ea)
                C[i, j] = np.sqrt(c)
        # 1. where: subsequence DTW (librosa's recurrence with these steps and weights)
        start = 0
        if m > n and n >= 2:
            D = np.full((n, m), np.inf)
            S = np.full((n, m), -1, np.int64)
            for j in range(m):
                D[0, j] = C[0, j]
                S[0, j] = j
            for i in range(1, n):
                for j in range(m):
                    best = np.inf
                    s = -1
                    for q in range(steps.shape[0]):
                        pi = i - steps[q, 0]
                        pj = j - steps[q, 1]
                        if pi >= 0 and pj >= 0:
                            cand = D[pi, pj] + mul[q] * C[i, j]
                            if cand < best:
                                best = cand
                                s = S[pi, pj]
                    D[i, j] = best
                    S[i, j] = s
            end = 0
            for j in range(1, m):
                if D[n - 1, j] < D[n - 1, end]:
                    end = j
            start = min(S[n - 1, end], m - n)
        m2 = min(n, m - start)
        # 2. what is heard: full DTW of the video and the excerpt inside the band
        radius = band
        use_band = band < min(n, m2)
        off = abs(n - m2)
        D2 = np.full((n, m2), np.inf)
        L = np.zeros((n, m2), np.int64)
        for i in range(n):
            for j in range(m2):
                if use_band:
                    if n <= m2:
                        if j - i >= radius + off or i - j >= radius:
                            continue
                    elif j - i >= radius or i - j >= radius + off:
                        continue
                c = C[i, start + j]
                if i == 0 and j == 0:
                    D2[0, 0] = c
                    L[0, 0] = 1
                    continue
                best = np.inf
                bl = 0
                if i > 0 and j > 0 and D2[i - 1, j - 1] + c < best:
                    best = D2[i - 1, j - 1] + c
                    bl = L[i - 1, j - 1]
                if j > 0 and D2[i, j - 1] + c < best:
                    best = D2[i, j - 1] + c
                    bl = L[i, j - 1]
                if i > 0 and D2[i - 1, j] + c < best:
                    best = D2[i - 1, j] + c
                    bl = L[i - 1, j]
                D2[i, j] = best
                L[i, j] = bl + 1
        mean_cost[k] = D2[n - 1, m2 - 1] / max(L[n - 1, m2 - 1], 1)
        offset[k] = start
        coverage[k] = m2 / n
        f = 0.0
        for i in range(m2):
            dv = A[i, 0] - level[a0 + start + i, 0]
            da = A[i, 1] - level[a0 + start + i, 1]
            f += np.exp(-0.5 * (dv * dv + da * da) / (sigma * sigma))
        fit[k] = f / n
    return mean_cost, offset, fit, coverage


@dataclass(frozen=True, eq=False)
class Scores:
    """Per arc of a table: arc similarity, moment fit, start offset (s) and coverage."""

    similarity: np.ndarray
    fit: np.ndarray
    offset_s: np.ndarray
    coverage: np.ndarray
    mean_cost: np.ndarray


def score_tracks(video: Arc, table: ArcTable, *, transition_weight: float = 1.0, w: np.ndarray | None = None,
                 band_s: float = 20.0, max_stretch: float = 2.0, workers: int = 0) -> Scores:
    """Similarity and offset of every arc in ``table`` (what :func:`arcs.align` gives for each),
    and the moment fit: the mean over the video of ``fit_term`` between the video's level and the
    excerpt's at the same real time (the part the track does not cover counts 0)."""
    steps, mul = arcs_mod.steps_for(max_stretch)
    wv = transition_weight * (np.ones(len(video)) if w is None else np.asarray(w, np.float64))
    band = int(round(band_s * video.rate))
    args = (np.ascontiguousarray(video.level), np.ascontiguousarray(video.delta), np.ascontiguousarray(wv),
            table.level, table.delta)
    # The compiled loop releases the GIL: one slice of the tracks per core, on threads.
    parts = np.array_split(np.arange(len(table)), max(1, min(workers or os.cpu_count() or 1, len(table) // 64)))
    with ThreadPoolExecutor(len(parts)) as pool:
        results = list(pool.map(lambda p: _score(*args, table.starts[p[0]:p[-1] + 2] if len(p) else table.starts[:1],
                                                 band, steps, mul, FIT_SIGMA), parts))
    mean_cost, offset, fit, coverage = (np.concatenate([r[i] for r in results]) for i in range(4))
    similarity = np.exp(-mean_cost / COST_SCALE) * coverage
    return Scores(similarity, fit, table.t0 + offset / table.rate, coverage, mean_cost)


def rank_soundtracks(video: Arc, table: ArcTable, weights: HybridWeights, *, pref: np.ndarray | None = None,
                     novelty: np.ndarray | None = None, top: int = 10, transition_weight: float = 1.0,
                     w: np.ndarray | None = None, band_s: float = 20.0, max_stretch: float = 2.0,
                     prefilter: bool | None = None, keep: int = 2000, coarse_s: float = 10.0,
                     coarse_table: ArcTable | None = None) -> list[Ranked]:
    """The ``top`` tracks by hybrid score, each with its best start offset.

    ``pref`` and ``novelty`` are per arc of ``table`` (default 0.5 and 1). ``prefilter`` (default:
    when the table holds more than ``keep`` arcs) scores everything coarsely first and only the
    best ``keep`` at full resolution."""
    n_arcs = len(table)
    pref = np.full(n_arcs, 0.5) if pref is None else np.asarray(pref, np.float64)
    novelty = np.ones(n_arcs) if novelty is None else np.asarray(novelty, np.float64)
    kw = dict(transition_weight=transition_weight, band_s=band_s, max_stretch=max_stretch)
    rows = np.arange(n_arcs)
    if prefilter if prefilter is not None else n_arcs > keep:
        block = max(1, int(round(coarse_s * table.rate)))
        coarse_video = coarsen(video, block)
        coarse_w = None if w is None else np.add.reduceat(np.asarray(w, np.float64), np.arange(0, len(video), block)) \
            / np.diff(np.append(np.arange(0, len(video), block), len(video)))
        ct = coarse_table if coarse_table is not None else table.coarse(block)
        rough = score_tracks(coarse_video, ct, w=coarse_w, **{**kw, "band_s": max(band_s, coarse_s)})
        rough_terms = np.column_stack([rough.fit, rough.similarity, pref, novelty])
        rows = np.sort(np.argsort(-combine(rough_terms, weights), kind="stable")[:keep])
        table = subset(table, rows)
    s = score_tracks(video, table, w=w, **kw)
    terms = np.column_stack([s.fit, s.similarity, pref[rows], novelty[rows]])
    scores = combine(terms, weights)
    order = np.lexsort((table.tracks, -scores))[:top]
    return [Ranked(int(table.tracks[i]), float(scores[i]), tuple(float(x) for x in terms[i]), float(s.offset_s[i]))
            for i in order]


def subset(table: ArcTable, rows: np.ndarray) -> ArcTable:
    return ArcTable.of([table.arc(int(k)) for k in rows], table.tracks[rows])
