"""The hybrid score: how well a track serves the moment, the arc, the listener and variety.

Every candidate gets four **terms**, each in [0, 1] (1 = best):

``fit``
    the moment: how close the candidate's V/A is to the target, ``exp(-d² / (2 σ²))`` with ``d``
    the distance in the library's space and ``σ`` = :data:`FIT_SIGMA`;
``arc``
    the emotional flow: the DTW similarity of the video's arc and the track's arc
    (:mod:`moodsic_live.match.arcs`), 0 where no arc is compared;
``pref``
    the listener: the track's learned preference (0.5 = nothing known yet);
``novelty``
    variety: 1 for a track not played lately, less for one played recently.

``score = w_fit · fit + w_arc · arc + w_pref · pref + w_novelty · novelty``: the weights are
non-negative and sum to 1, so a score is in [0, 1] too and each term's share of it says *why* a
track was chosen. Weights come per context (mode of the live loop, or a video) from the config
and may be adapted by the learner from listeners' reactions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moodsic_live.errors import MoodsicError

TERMS = ("fit", "arc", "pref", "novelty")
FIT_SIGMA = 0.25  # library units: a segment 0.25 away from the target fits e^-0.5 = 0.61
LABELS = {"fit": "fits the moment", "arc": "follows the arc", "pref": "you like it", "novelty": "not heard lately"}


@dataclass(frozen=True)
class HybridWeights:
    """Weights of the four terms; :meth:`normalised` makes them sum to 1."""

    fit: float = 0.6
    arc: float = 0.0
    pref: float = 0.3
    novelty: float = 0.1

    def as_array(self) -> np.ndarray:
        return np.array([self.fit, self.arc, self.pref, self.novelty], np.float64)

    @classmethod
    def from_array(cls, w) -> HybridWeights:
        w = np.asarray(w, np.float64).reshape(-1)
        if w.shape != (len(TERMS),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise MoodsicError(f"hybrid weights must be {len(TERMS)} non-negative numbers ({', '.join(TERMS)}) "
                               f"with a positive sum, not {w.tolist()}")
        w = w / w.sum()
        return cls(*(float(x) for x in w))

    def normalised(self) -> HybridWeights:
        return HybridWeights.from_array(self.as_array())

    def to_dict(self) -> dict[str, float]:
        return {t: round(float(v), 4) for t, v in zip(TERMS, self.as_array())}


def fit_term(distance) -> np.ndarray:
    """The moment's term from the V/A distance(s) to the target (library units)."""
    d = np.asarray(distance, np.float64)
    return np.exp(-0.5 * (d / FIT_SIGMA) ** 2)


def novelty_term(plays_ago) -> np.ndarray:
    """1 for a track never or long ago played; ``plays_ago`` = how many choices ago it last
    played (0 = playing now), ``inf`` or negative for never: 1 - 0.8^(n+1) recovers in ~10 choices."""
    n = np.asarray(plays_ago, np.float64)
    never = ~np.isfinite(n) | (n < 0)
    return np.where(never, 1.0, 1.0 - 0.8 ** (np.where(never, 0.0, n) + 1.0))


def combine(terms: np.ndarray, weights: HybridWeights) -> np.ndarray:
    """Scores (higher is better) of the rows of ``terms`` (n, 4), each term in [0, 1]."""
    terms = np.asarray(terms, np.float64)
    if terms.ndim != 2 or terms.shape[1] != len(TERMS):
        raise ValueError(f"terms must be (n, {len(TERMS)}), got {terms.shape}")
    return terms @ weights.normalised().as_array()


@dataclass(frozen=True)
class Ranked:
    """One ranked track: its score, its terms and where in it to start."""

    track: int
    score: float
    terms: tuple[float, float, float, float]  # fit, arc, pref, novelty
    offset_s: float = 0.0

    def shares(self, weights: HybridWeights) -> dict[str, float]:
        """Each term's weighted contribution to the score."""
        w = weights.normalised().as_array()
        return {t: float(w[i] * self.terms[i]) for i, t in enumerate(TERMS)}


def rank(terms: np.ndarray, weights: HybridWeights, top: int | None = None,
         offsets: np.ndarray | None = None, tracks: np.ndarray | None = None) -> list[Ranked]:
    """Candidates best first (ties: lower track number first, so the order is deterministic)."""
    terms = np.asarray(terms, np.float64)
    scores = combine(terms, weights)
    tracks = np.arange(len(terms)) if tracks is None else np.asarray(tracks)
    order = np.lexsort((tracks, -scores))
    if top is not None:
        order = order[:top]
    return [Ranked(int(tracks[i]), float(scores[i]), tuple(float(x) for x in terms[i]),
                   0.0 if offsets is None else float(offsets[i])) for i in order]


def explain(ranked: Ranked, weights: HybridWeights) -> str:
    """"why this song" in one line: the terms by their share of the score, largest first."""
    shares = ranked.shares(weights)
    parts = [f"{LABELS[t]} {ranked.terms[TERMS.index(t)]:.2f}×{weights.normalised().as_array()[TERMS.index(t)]:.2f}"
             for t in sorted(shares, key=lambda t: -shares[t]) if shares[t] > 0 or t == "fit"]
    return f"score {ranked.score:.2f} = " + " + ".join(parts)


def reasons(ranked: Ranked, weights: HybridWeights) -> str:
    """"why this song" for a glance: each term's share of the score, largest first, e.g.
    ``"fits the moment 58 % · you like it 28 % · not heard lately 14 %"`` (terms with no share left out)."""
    shares = ranked.shares(weights)
    total = sum(shares.values())
    if total <= 0:
        return "nothing near the mood: the nearest song"
    parts = [f"{LABELS[t]} {100 * v / total:.0f} %" for t, v in sorted(shares.items(), key=lambda kv: -kv[1])
             if v / total >= 0.005]
    return " · ".join(parts)


def weights_for(config, context: str) -> HybridWeights:
    """The configured weights of a context: a live mode (mirror, regulate, target) or "video"."""
    table = getattr(config, context, None)
    if table is None:
        raise MoodsicError(f"no hybrid weights for {context!r} (known: mirror, regulate, target, video)")
    return HybridWeights(table.fit, table.arc, table.pref, table.novelty).normalised()
