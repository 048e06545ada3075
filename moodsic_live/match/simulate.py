"""A simulated listener with hidden tastes, to check that the learner learns them (and safely).

The model
---------
**Catalogue**: ``n_tracks`` tracks (80 by default) with a V/A position, uniform in [-1, 1]², and
one of :data:`GENRES` at random.

**The world, per play**: sessions are videos (context ``video``). A session's target mood starts
at a random point and walks (steps N(0, 0.12) per play, clipped to [-0.9, 0.9]). The candidates
are the ``candidates`` tracks nearest the target, as the index would return them, with their terms
as the app computes them:

* ``fit`` = :func:`hybrid.fit_term` of the V/A distance (some candidates lie beyond the safety
  distance: however good their other terms, the learner must not take them);
* ``arc`` = a DTW similarity drawn per play and candidate, Beta(2, 2);
* ``novelty`` = :func:`hybrid.novelty_term` of how many plays ago the track last played;
* ``pref`` = the learner's :meth:`Learner.preference` of the track (0.5 for the fixed baseline).

**The listener** has hidden weights over the same terms (default fit 0.2, arc 0.5, pref 0.2,
novelty 0.1: it cares most about the arc) and a hidden taste per track in place of the learned
``pref``: U(0.6, 1) for most tracks, 0 for one disliked genre (``metal``). The arc it feels also
depends on the DTW transition weight the learner picked for the session: ``TRANSITION_QUALITY`` (multiplier ->
factor on the arc term), best at half the configured weight. Its utility of a candidate is

    u = w_fit · fit + w_arc · q(transition) · arc + w_pref · taste + w_novelty · novelty   (in [0, 1])

and it reacts to a play with

* completes with probability ``p = sigmoid((u - 0.62) / 0.07)``, and then likes it with probability
  ``0.3 · u``;
* otherwise skips, early (first 10 s) with probability ``1 - u``, late otherwise;

rewards as the event store gives them: early skip -1, late skip -0.5, completed +1 (+1 liked,
clipped to 1), so its expected reward is ``p - (1 - p)(1 - u / 2)``, increasing in ``u``.

**Regret** of a play: the expected reward of the candidate an oracle who knows the hidden utility
would pick among the *same safe candidates* (distance <= the safety distance; the nearest when none
is) minus the expected reward of the learner's pick. The fixed-weight baseline is the same learner
with learning off (configured weights, preferences 0.5, configured transition weight) facing the
same world: the targets, arcs and the listener's random draws come from their own generators, so
both runs see the same candidates apart from novelty, which follows each run's own plays.

**Convergence** is measured by :func:`trade_off_distance`: the L1 distance of the learned and hidden
shares of fit, arc and novelty. The pref weight has no like-for-like hidden counterpart: the listener
weighs its true taste (0 or 0.6-1), the learner weighs its own estimate, shrunk toward 0.5, so it needs
a larger weight to carry the same taste; that it learned the taste shows in the disliked genre's
preference and share of plays instead. The all-four-weights distance is kept too.

Everything is seeded (one :class:`numpy.random.SeedSequence` split into catalogue, world, listener
and learner streams): a seed gives the same result on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from moodsic_live.errors import MoodsicError
from moodsic_live.match.hybrid import TERMS, HybridWeights, fit_term, novelty_term
from moodsic_live.match.learner import Learner, LearnerSettings

GENRES = ("ambient", "classical", "electronic", "jazz", "metal", "pop")
DEFAULT_HIDDEN = HybridWeights(fit=0.2, arc=0.5, pref=0.2, novelty=0.1)
DEFAULT_DISLIKED = "metal"
# multiplier of the configured DTW transition weight -> how much of the arc term the listener feels
TRANSITION_QUALITY: Mapping[float, float] = {0.0: 0.6, 0.5: 1.0, 1.0: 0.85, 2.0: 0.65}
COMPLETE_AT = 0.62       # utility at which the listener completes half its plays
COMPLETE_SPREAD = 0.07   # how sharp that is (sigmoid scale)
LIKE_RATE = 0.3          # P(like | completed) = LIKE_RATE · u
DISLIKED_TASTE = 0.0
TRADE_OFF = ("fit", "arc", "novelty")  # the terms whose weights are compared with the hidden ones


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Synthetic tracks: ids, V/A positions (n, 2) and genres."""

    ids: tuple[str, ...]
    va: np.ndarray
    genre: tuple[str, ...]

    @classmethod
    def synthetic(cls, n_tracks: int, rng: np.random.Generator) -> Catalogue:
        if n_tracks < 2:
            raise MoodsicError(f"a simulated catalogue needs at least 2 tracks, not {n_tracks}")
        va = rng.uniform(-1.0, 1.0, (n_tracks, 2))
        genre = tuple(GENRES[i] for i in rng.integers(0, len(GENRES), n_tracks))
        return cls(tuple(f"sim:{i}" for i in range(n_tracks)), va, genre)


@dataclass(frozen=True)
class Reaction:
    """One play's outcome and reward."""

    outcome: str      # "skip_early", "skip_late" or "complete"
    liked: bool
    reward: float


class SimulatedListener:
    """A listener with hidden weights over the terms, a hidden taste per track and a disliked genre."""

    def __init__(self, catalogue: Catalogue, hidden: HybridWeights = DEFAULT_HIDDEN,
                 disliked_genre: str = DEFAULT_DISLIKED, rng: np.random.Generator | None = None,
                 transition_quality: Mapping[float, float] = TRANSITION_QUALITY) -> None:
        if disliked_genre not in GENRES:
            raise MoodsicError(f"unknown genre {disliked_genre!r} (known: {', '.join(GENRES)})")
        self.hidden = hidden.normalised()
        self.disliked_genre = disliked_genre
        self.transition_quality = dict(transition_quality)
        self._rng = rng if rng is not None else np.random.default_rng(0)
        taste_rng = np.random.default_rng(self._rng.integers(2 ** 32))
        taste = taste_rng.uniform(0.6, 1.0, len(catalogue.ids))
        taste[np.array([g == disliked_genre for g in catalogue.genre])] = DISLIKED_TASTE
        self.taste = taste

    def quality(self, multiplier: float) -> float:
        """How much of the arc term the listener feels with this multiple of the configured transition weight."""
        for m, q in self.transition_quality.items():
            if math.isclose(m, multiplier, abs_tol=1e-9):
                return q
        return 1.0

    def utility(self, terms: np.ndarray, tracks: np.ndarray, multiplier: float = 1.0) -> np.ndarray:
        """Hidden utility in [0, 1] of candidates (terms (n, 4); its pref column is ignored: the taste counts)."""
        x = np.array(terms, np.float64, copy=True)
        x[:, TERMS.index("pref")] = self.taste[np.asarray(tracks)]
        x[:, TERMS.index("arc")] *= self.quality(multiplier)
        return x @ self.hidden.as_array()

    @staticmethod
    def complete_probability(u) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(np.asarray(u, np.float64) - COMPLETE_AT) / COMPLETE_SPREAD))

    @classmethod
    def expected_reward(cls, u) -> np.ndarray:
        u = np.asarray(u, np.float64)
        p = cls.complete_probability(u)
        return p - (1.0 - p) * (1.0 - 0.5 * u)

    def react(self, u: float) -> Reaction:
        """Skip early, skip late or complete (maybe like) a play of utility ``u``; three draws always,
        so the listener's random stream does not depend on what was played."""
        a, b, c = self._rng.random(3)
        if a < float(self.complete_probability(u)):
            liked = bool(c < LIKE_RATE * u)
            return Reaction("complete", liked, 1.0)  # +1 for a like, clipped to the reward range
        if b < 1.0 - u:
            return Reaction("skip_early", False, -1.0)
        return Reaction("skip_late", False, -0.5)


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Per session and per play numbers of one simulated run."""

    learn: bool
    hidden: HybridWeights
    prior: HybridWeights
    learned: tuple[HybridWeights, ...]          # after each session
    weight_distance: np.ndarray                 # (sessions + 1,) trade_off_distance learned-hidden; [0]: the prior's
    weight_distance_all: np.ndarray             # (sessions + 1,) L1 over all four weights, pref included
    skip_rate: np.ndarray                       # (sessions,)
    mean_reward: np.ndarray                     # (sessions,)
    explored_share: np.ndarray                  # (sessions,) share of exploratory picks
    disliked_share: np.ndarray                  # (sessions,) share of plays from the disliked genre
    regret: np.ndarray                          # (plays,) oracle's expected reward - the pick's
    transition: tuple[float, ...]               # transition weight used per session
    learned_transition: float                   # the learner's best transition weight at the end
    best_transition: float                      # the listener's (hidden) best
    unsafe_picks: int                           # picks farther than the safety distance while a safe one existed
    fallbacks: int                              # plays where no candidate was safe (the nearest played)
    preference_disliked: float                  # mean learned preference, disliked genre (played tracks)
    preference_others: float                    # ... other genres
    safety_distance: float = field(default=0.35)

    @property
    def cumulative_regret(self) -> np.ndarray:
        return np.cumsum(self.regret)

    @property
    def all_safe(self) -> bool:
        return self.unsafe_picks == 0


def trade_off_distance(a: HybridWeights, b: HybridWeights) -> float:
    """L1 distance (0..2) of two weightings' shares of fit, arc and novelty (each renormalised to
    sum 1): how differently they trade off the terms a listener and the learner see alike. The
    pref weight is left out: the learner's pref is its own estimate of the taste (shrunk toward 0.5),
    so the weight it needs differs from the weight the listener puts on the taste itself."""
    idx = [TERMS.index(t) for t in TRADE_OFF]
    x, y = a.as_array()[idx], b.as_array()[idx]
    if x.sum() <= 0 or y.sum() <= 0:
        return 2.0
    return float(np.abs(x / x.sum() - y / y.sum()).sum())


def simulate(sessions: int = 30, plays_per_session: int = 40, seed: int = 0, *, learn: bool = True,
             hidden: HybridWeights = DEFAULT_HIDDEN, prior: HybridWeights | None = None,
             disliked_genre: str = DEFAULT_DISLIKED, n_tracks: int = 80, candidates: int = 20,
             safety_distance: float = 0.35, transition_base: float = 1.0,
             settings: LearnerSettings | None = None) -> SimulationResult:
    """Run the learner (or, with ``learn=False``, the fixed configured weights) against a simulated
    listener for ``sessions`` videos of ``plays_per_session`` plays. ``prior``: the configured video
    weights (default: the config's ``match.hybrid.video``)."""
    if sessions < 1 or plays_per_session < 1 or candidates < 1:
        raise MoodsicError("simulate needs at least one session, one play and one candidate")
    if prior is None:
        from moodsic_live.config import HybridConfig

        v = HybridConfig().video
        prior = HybridWeights(v.fit, v.arc, v.pref, v.novelty)
    prior, hidden = prior.normalised(), hidden.normalised()
    ss = np.random.SeedSequence(seed)
    cat_ss, world_ss, listener_ss, learner_ss = ss.spawn(4)
    catalogue = Catalogue.synthetic(n_tracks, np.random.default_rng(cat_ss))
    listener = SimulatedListener(catalogue, hidden, disliked_genre, np.random.default_rng(listener_ss))
    world = np.random.default_rng(world_ss)
    learner = Learner({"video": prior}, safety_distance=safety_distance, transition_base=transition_base,
                      enabled=learn, seed=int(learner_ss.generate_state(1)[0]), settings=settings)
    k = min(candidates, n_tracks)
    last_played = np.full(n_tracks, -np.inf)
    disliked = np.array([g == disliked_genre for g in catalogue.genre])

    learned, distance = [], [trade_off_distance(prior, hidden)]
    distance_all = [float(np.abs(prior.as_array() - hidden.as_array()).sum())]
    skip_rate, mean_reward, explored, disliked_share, transitions = [], [], [], [], []
    regret = np.zeros(sessions * plays_per_session)
    unsafe = fallbacks = play = 0
    for _ in range(sessions):
        value = learner.transition_weight()
        multiplier = 1.0 if transition_base == 0 else value / transition_base
        target = world.uniform(-0.7, 0.7, 2)
        rewards, skips, n_explored, n_disliked = [], 0, 0, 0
        for _ in range(plays_per_session):
            target = np.clip(target + world.normal(0.0, 0.12, 2), -0.9, 0.9)
            arc = world.beta(2.0, 2.0, n_tracks)  # drawn for every track: the same stream whatever was played
            d_all = np.hypot(*(catalogue.va - target).T)
            tracks = np.argsort(d_all, kind="stable")[:k]
            d = d_all[tracks]
            ids = [catalogue.ids[t] for t in tracks]
            terms = np.column_stack([fit_term(d), arc[tracks], learner.preference(ids),
                                     novelty_term(play - 1 - last_played[tracks])])
            choice = learner.choose("video", terms, d, track_ids=ids)
            u = listener.utility(terms, tracks, multiplier)
            safe = d <= safety_distance
            pool = np.flatnonzero(safe) if safe.any() else np.array([int(np.argmin(d))])
            fallbacks += int(not safe.any())
            if safe.any() and not safe[choice.index]:
                unsafe += 1
            expected = listener.expected_reward(u)
            regret[play] = float(expected[pool].max() - expected[choice.index])
            reaction = listener.react(float(u[choice.index]))
            track = int(tracks[choice.index])
            learner.update("video", choice.terms, ids[choice.index], reaction.reward)
            last_played[track] = play
            rewards.append(reaction.reward)
            skips += reaction.outcome != "complete"
            n_explored += choice.explored
            n_disliked += bool(disliked[track])
            play += 1
        learner.update_transition(value, float(np.mean(rewards)))
        transitions.append(value)
        w = learner.weights("video")
        learned.append(w)
        distance.append(trade_off_distance(w, hidden))
        distance_all.append(float(np.abs(w.as_array() - hidden.as_array()).sum()))
        skip_rate.append(skips / plays_per_session)
        mean_reward.append(float(np.mean(rewards)))
        explored.append(n_explored / plays_per_session)
        disliked_share.append(n_disliked / plays_per_session)

    played = np.isfinite(last_played)
    prefs = learner.preference(list(catalogue.ids))
    best_m = max(listener.transition_quality, key=listener.transition_quality.get)
    return SimulationResult(
        learn=learn, hidden=hidden, prior=prior, learned=tuple(learned), weight_distance=np.array(distance),
        weight_distance_all=np.array(distance_all),
        skip_rate=np.array(skip_rate), mean_reward=np.array(mean_reward), explored_share=np.array(explored),
        disliked_share=np.array(disliked_share), regret=regret, transition=tuple(transitions),
        learned_transition=learner.transition_weight(explore=False), best_transition=best_m * transition_base,
        unsafe_picks=unsafe, fallbacks=fallbacks,
        preference_disliked=float(prefs[played & disliked].mean()) if (played & disliked).any() else 0.5,
        preference_others=float(prefs[played & ~disliked].mean()) if (played & ~disliked).any() else 0.5,
        safety_distance=safety_distance)
