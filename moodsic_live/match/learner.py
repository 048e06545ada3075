"""The learner: adapts the hybrid weights, the tracks' preferences and the DTW transition weight
from listeners' rewards, exploring only among candidates that fit the mood.

Method
------
**Weights: a contextual bandit (Bayesian linear regression + Thompson sampling), one per context**
(``mirror``, ``regulate``, ``target``, ``video``). A play's reward ``r`` in [-1, 1] (skip in the
first 10 s = -1, a later skip about -0.5, completed = +1, ...) is modelled as linear in the chosen
candidate's four terms (:mod:`moodsic_live.match.hybrid`) plus an intercept::

    r = θ₀ + θ · (fit, arc, pref, novelty) + ε,   ε ~ N(0, noise_std²)

with a Gaussian prior ``θ ~ N(scale · w₀, prior_std² I)`` around the configured weights ``w₀``
(the intercept: ``N(-scale / 2, intercept_std²)``: before any play, "reward = 2 · score - 1"). The
posterior is Gaussian and exact; only its sufficient statistics (``Σ x xᵀ``, ``Σ x r``, the count)
are kept, so the prior can change with the config without losing what was learned. The intercept soaks up the overall level of rewards
(a listener who skips a lot), so the slopes say only how the terms *trade off*.

* **Learned weights** (what the GUI shows, :meth:`Learner.weights`): the posterior mean of ``θ``,
  negative parts set to 0 and normalised to sum 1 (:class:`HybridWeights`). Normalising loses only
  the scale, which does not change a ranking. With no data this is exactly ``w₀``, so an untrained
  learner ranks like the configured weights.
* **Exploration** (:meth:`Learner.choose`): Thompson sampling: a ``θ`` is drawn from the posterior
  (its spread times ``explore``), projected the same way, and the candidates are ranked with it.
  Uncertain weights are tried in proportion to the chance that they are the best ones, and the
  draws narrow as plays accumulate.
* **Safety**: exploration only re-orders *safe* candidates, those whose V/A distance to the target
  is at most ``safety_distance`` (config ``match.hybrid.safety_distance``). Nothing farther is ever
  offered to explore; if no candidate is safe, the nearest one plays and nothing is explored.
* **Explanation**: every :class:`Choice` carries the weights it was ranked with, the candidate's
  terms and :func:`hybrid.explain`'s line ("why this song": the terms by their share of the score),
  marked when the pick was exploratory or the fallback to the nearest.

**Per-track preference** (:meth:`Learner.preference`, the ``pref`` term): each play becomes a success
``s = (r - r̂ + 1) / 2`` clipped to [0, 1], where ``r̂`` is the reward the context's model expected of
a neutral track (pref 0.5) with the same fit, arc and novelty, before the play is learned from: a
track is credited for doing better than its situation promised, not for being played at good
moments. The preference is the posterior mean of a Beta prior with ``pref_strength`` pseudo-plays at
0.5: ``(pref_strength / 2 + Σ s) / (pref_strength + n)``. Unknown tracks are 0.5, one skip is not a
verdict, and tracks are shared by all contexts.

**DTW transition weight** (``match.arcs.transition_weight``, the first-difference term of the arc
alignment): a small discrete bandit over ``TRANSITION_MULTIPLIERS`` × the configured value, each arm
with a Gaussian posterior of its mean reward (per video or session: the caller reports one reward per
use, e.g. the mean reward of the plays it chose), picked by Thompson sampling. A configured 0 (plain
DTW) is left alone.

Assumptions: rewards are roughly linear in the terms near where choices are made (a steep skip
curve only bends the scale, which normalising drops); listeners change slowly (no forgetting: call
:meth:`Learner.reset` after a real change); the caller passes the terms the candidate had when it
was chosen (:attr:`Choice.terms`) with its reward. Pure numpy: the app keeps :meth:`Learner.to_dict`
as JSON in its SQLite ``state`` table. All randomness comes from one seeded
:class:`numpy.random.Generator`, saved with the state, so a run can be replayed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from moodsic_live.errors import MoodsicError
from moodsic_live.match.hybrid import TERMS, HybridWeights, Ranked, explain, rank

CONTEXTS = ("mirror", "regulate", "target", "video")
TRANSITION_MULTIPLIERS = (0.0, 0.5, 1.0, 2.0)
STATE_VERSION = 1
_DIM = len(TERMS) + 1  # intercept + terms


@dataclass(frozen=True)
class LearnerSettings:
    """Tuning of the learner (defaults suit rewards in [-1, 1] and terms in [0, 1])."""

    scale: float = 2.0             # prior mean of the slopes = scale · configured weights (reward span / term span)
    prior_std: float = 0.5         # prior spread of each slope: how far a few plays may move the weights
    intercept_std: float = 1.0     # prior spread of the overall reward level
    noise_std: float = 0.8         # spread of one play's reward around its expectation
    explore: float = 0.5           # Thompson draws' spread relative to the posterior (0 = greedy)
    pref_strength: float = 2.0     # pseudo-plays at 0.5 behind every track's preference
    transition_noise_std: float = 0.4   # spread of one reported transition reward
    transition_prior_std: float = 0.5   # prior spread of an arm's mean reward (prior mean 0)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            ok = isinstance(v, (int, float)) and math.isfinite(v) and (v >= 0 if f.name == "explore" else v > 0)
            if not ok:
                raise MoodsicError(f"learner setting {f.name} must be a positive number, not {v!r}")


@dataclass(frozen=True)
class Choice:
    """What :meth:`Learner.choose` picked and why."""

    index: int                                   # row of the candidate in the terms given
    context: str
    weights: HybridWeights                       # the weights it was ranked with (a draw when exploring)
    terms: tuple[float, float, float, float]     # fit, arc, pref, novelty (pref filled by the learner if asked)
    score: float                                 # weights · terms
    distance: float                              # its V/A distance to the target (library units)
    explored: bool                               # True when the greedy (learned) ranking would have picked another
    safe: bool                                   # False only when no candidate was within the safety distance
    explanation: str                             # "why this song", one line


@dataclass
class _Posterior:
    """Sufficient statistics of one context's regression: only data, no prior."""

    xtx: np.ndarray   # (5, 5) Σ x xᵀ, x = (1, fit, arc, pref, novelty)
    xty: np.ndarray   # (5,)   Σ x r
    n: int = 0

    @classmethod
    def empty(cls) -> _Posterior:
        return cls(np.zeros((_DIM, _DIM)), np.zeros(_DIM), 0)


class Learner:
    """Adapts the hybrid weights per context, the tracks' preferences and the DTW transition weight.

    ``priors``: the configured weights per context (all of :data:`CONTEXTS`; missing ones use
    :class:`HybridWeights`' defaults). ``enabled=False`` (config ``learn = false``) is the fixed
    ranking: configured weights, preferences 0.5, the configured transition weight, no exploration,
    and updates are ignored.
    """

    def __init__(self, priors: Mapping[str, HybridWeights] | None = None, *, safety_distance: float = 0.35,
                 transition_base: float = 1.0, enabled: bool = True, seed: int | None = None,
                 settings: LearnerSettings | None = None) -> None:
        priors = dict(priors or {})
        unknown = sorted(set(priors) - set(CONTEXTS))
        if unknown:
            raise MoodsicError(f"no learner context {unknown[0]!r} (known: {', '.join(CONTEXTS)})")
        if not (isinstance(safety_distance, (int, float)) and math.isfinite(safety_distance) and safety_distance > 0):
            raise MoodsicError(f"safety_distance must be a positive number of library units, not {safety_distance!r}")
        if not (isinstance(transition_base, (int, float)) and math.isfinite(transition_base) and transition_base >= 0):
            raise MoodsicError(f"transition weight must be a non-negative number, not {transition_base!r}")
        self._priors = {c: priors.get(c, HybridWeights()).normalised() for c in CONTEXTS}
        self.safety_distance = float(safety_distance)
        self.transition_base = float(transition_base)
        self.enabled = bool(enabled)
        self.settings = settings or LearnerSettings()
        self._rng = np.random.default_rng(seed)
        self._post: dict[str, _Posterior] = {}
        self._pref: dict[str, list[float]] = {}        # track id -> [plays, Σ success]
        self._arms: dict[float, list[float]] = {}      # multiplier -> [uses, Σ reward]
        self.reset()

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_config(cls, hybrid, arcs=None, seed: int | None = None,
                    settings: LearnerSettings | None = None) -> Learner:
        """From ``config.match.hybrid`` (:class:`HybridConfig`) and ``config.match.arcs`` (:class:`ArcsConfig`)."""
        return cls(_priors_from(hybrid), safety_distance=hybrid.safety_distance,
                   transition_base=1.0 if arcs is None else arcs.transition_weight,
                   enabled=hybrid.learn, seed=seed, settings=settings)

    def reset(self, context: str | None = None) -> None:
        """Forget what was learned: everything, or only one context's weights."""
        if context is not None:
            self._post[_check_context(context)] = _Posterior.empty()
            return
        self._post = {c: _Posterior.empty() for c in CONTEXTS}
        self._pref = {}
        self._arms = {m: [0.0, 0.0] for m in TRANSITION_MULTIPLIERS}

    # -- weights ----------------------------------------------------------------------------

    def prior(self, context: str) -> HybridWeights:
        """The configured weights of a context."""
        return self._priors[_check_context(context)]

    def plays(self, context: str) -> int:
        """How many rewards a context has learned from."""
        return self._post[_check_context(context)].n

    def weights(self, context: str) -> HybridWeights:
        """The learned weights: the posterior mean, non-negative and summing to 1 (the prior with no data)."""
        if not self.enabled or self._post[_check_context(context)].n == 0:
            return self.prior(context)  # exactly the configured weights, not a rounded solve of them
        mean, _ = self._posterior(context)
        return self._project(mean[1:], context)

    def _posterior(self, context: str) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean (5,) and precision (5, 5) of (intercept, slopes)."""
        s = self.settings
        post = self._post[_check_context(context)]
        prior_mean = np.r_[-s.scale / 2.0, s.scale * self.prior(context).as_array()]
        prior_prec = np.diag(np.r_[1.0 / s.intercept_std ** 2, np.full(len(TERMS), 1.0 / s.prior_std ** 2)])
        noise_prec = 1.0 / s.noise_std ** 2
        precision = prior_prec + noise_prec * post.xtx
        mean = np.linalg.solve(precision, prior_prec @ prior_mean + noise_prec * post.xty)
        return mean, precision

    def _project(self, slopes: np.ndarray, context: str) -> HybridWeights:
        w = np.maximum(slopes, 0.0)
        if not np.all(np.isfinite(w)) or w.sum() <= 1e-12:
            return self.prior(context)  # every term looks harmful: no basis to rank on, keep the configured ones
        return HybridWeights.from_array(w)

    def _draw(self, context: str) -> HybridWeights:
        mean, precision = self._posterior(context)
        # θ = mean + explore · L⁻ᵀ z with precision = L Lᵀ has covariance explore² · precision⁻¹.
        chol = np.linalg.cholesky(precision)
        z = self._rng.standard_normal(_DIM)
        theta = mean + self.settings.explore * np.linalg.solve(chol.T, z)
        return self._project(theta[1:], context)

    # -- choosing ---------------------------------------------------------------------------

    def rank(self, context: str, terms, track_ids: Sequence[Any] | None = None) -> list[Ranked]:
        """All candidates ranked greedily by the learned weights (no exploration, no safety filter);
        ``Ranked.track`` is the row in ``terms``."""
        terms = self._terms(terms, track_ids)
        return rank(terms, self.weights(context))

    def choose(self, context: str, terms, distances, track_ids: Sequence[Any] | None = None,
               explore: bool = True) -> Choice:
        """Pick one candidate among those within the safety distance of the target.

        ``terms`` (n, 4): fit, arc, pref, novelty in [0, 1]; ``distances`` (n,): each candidate's V/A
        distance to the target (library units). With ``track_ids`` the learner's :meth:`preference`
        fills the pref column. Exploration (a Thompson draw of the weights) only re-orders the safe
        candidates; if none is safe the nearest plays, unexplored."""
        context = _check_context(context)
        terms = self._terms(terms, track_ids)
        distances = np.asarray(distances, np.float64)
        if distances.shape != (len(terms),) or not np.all(np.isfinite(distances)) or np.any(distances < 0):
            raise MoodsicError(f"distances must be {len(terms)} non-negative numbers (one per candidate), "
                               f"got shape {distances.shape}")
        greedy_w = self.weights(context)
        safe = np.flatnonzero(distances <= self.safety_distance)
        if len(safe) == 0:
            i = int(np.argmin(distances))
            top = rank(terms[i:i + 1], greedy_w, tracks=np.array([i]))[0]
            return self._choice(context, top, greedy_w, distances, explored=False, safe=False)
        greedy = rank(terms[safe], greedy_w, tracks=safe)[0]
        if not (explore and self.enabled and self.settings.explore > 0):
            return self._choice(context, greedy, greedy_w, distances, explored=False, safe=True)
        draw_w = self._draw(context)
        pick = rank(terms[safe], draw_w, tracks=safe)[0]
        return self._choice(context, pick, draw_w, distances, explored=pick.track != greedy.track, safe=True)

    def _choice(self, context: str, top: Ranked, w: HybridWeights, distances: np.ndarray, *,
                explored: bool, safe: bool) -> Choice:
        line = explain(top, w)
        if explored:
            line += " (exploring: a safe alternative)"
        elif not safe:
            line += f" (nothing within {self.safety_distance:g} of the mood: the nearest)"
        return Choice(index=int(top.track), context=context, weights=w, terms=top.terms, score=top.score,
                      distance=float(distances[top.track]), explored=explored, safe=safe, explanation=line)

    def _terms(self, terms, track_ids: Sequence[Any] | None) -> np.ndarray:
        terms = np.array(terms, np.float64, copy=True)
        if terms.ndim != 2 or terms.shape[1] != len(TERMS) or len(terms) == 0:
            raise MoodsicError(f"candidate terms must be an (n, {len(TERMS)}) array with n >= 1 "
                               f"({', '.join(TERMS)}), got shape {terms.shape}")
        if track_ids is not None:
            if len(track_ids) != len(terms):
                raise MoodsicError(f"{len(track_ids)} track ids for {len(terms)} candidates")
            terms[:, TERMS.index("pref")] = self.preference(track_ids)
        if not np.all(np.isfinite(terms)) or terms.min() < 0 or terms.max() > 1:
            raise MoodsicError("candidate terms must lie in [0, 1]")
        return terms

    # -- learning ---------------------------------------------------------------------------

    def update(self, context: str, terms, track_id: Any, reward: float) -> None:
        """Learn from one play: the terms the candidate had when chosen (:attr:`Choice.terms`),
        its track and the listener's reward (clipped to [-1, 1])."""
        context = _check_context(context)
        x = np.asarray(terms, np.float64).reshape(-1)
        if x.shape != (len(TERMS),) or not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
            raise MoodsicError(f"the terms of a play must be {len(TERMS)} numbers in [0, 1] ({', '.join(TERMS)})")
        r = _reward(reward)
        if not self.enabled:
            return
        x = np.r_[1.0, x]
        if track_id is not None:
            # the track's success: its reward against what the context's model expected of a neutral
            # track (pref 0.5) with the same other terms, before this play is learned from
            neutral = x.copy()
            neutral[1 + TERMS.index("pref")] = 0.5
            expected = float(self._posterior(context)[0] @ neutral)
            entry = self._pref.setdefault(str(track_id), [0.0, 0.0])
            entry[0] += 1.0
            entry[1] += min(1.0, max(0.0, (r - expected + 1.0) / 2.0))
        post = self._post[context]
        post.xtx += np.outer(x, x)
        post.xty += x * r
        post.n += 1

    def preference(self, track_ids: Sequence[Any]) -> np.ndarray:
        """Each track's learned preference in [0, 1] (0.5: nothing known, or learning off)."""
        if isinstance(track_ids, (str, bytes)):
            raise MoodsicError("preference() takes a sequence of track ids, not one id")
        k = self.settings.pref_strength
        out = np.full(len(track_ids), 0.5)
        if not self.enabled:
            return out
        for i, t in enumerate(track_ids):
            entry = self._pref.get(str(t))
            if entry is not None:
                out[i] = (k / 2.0 + entry[1]) / (k + entry[0])
        return out

    # -- DTW transition weight --------------------------------------------------------------

    def _arm_values(self) -> dict[float, float]:
        """multiplier -> transition weight (a configured 0 has the one arm 0)."""
        if self.transition_base == 0 or not self.enabled:
            return {1.0: self.transition_base}
        return {m: m * self.transition_base for m in TRANSITION_MULTIPLIERS}

    def _arm_posterior(self, m: float) -> tuple[float, float]:
        """Mean and std of an arm's mean reward."""
        s = self.settings
        uses, total = self._arms[m]
        prec = 1.0 / s.transition_prior_std ** 2 + uses / s.transition_noise_std ** 2
        return (total / s.transition_noise_std ** 2) / prec, 1.0 / math.sqrt(prec)

    def transition_means(self) -> dict[float, float]:
        """Each transition weight's posterior mean reward (0 before any use)."""
        return {v: self._arm_posterior(m)[0] for m, v in self._arm_values().items()}

    def transition_weight(self, explore: bool = True) -> float:
        """The transition weight for the next video or session: a Thompson draw among the arms, or the
        arm with the best mean (ties: the configured value) with ``explore=False``."""
        arms = self._arm_values()
        if len(arms) == 1:
            return next(iter(arms.values()))
        ms = list(arms)
        post = [self._arm_posterior(m) for m in ms]
        if explore and self.settings.explore > 0:
            score = [mu + self.settings.explore * sd * self._rng.standard_normal() for mu, sd in post]
        else:
            score = [mu for mu, _ in post]
        best = max(range(len(ms)), key=lambda i: (score[i], -abs(ms[i] - 1.0)))
        return arms[ms[best]]

    def update_transition(self, value: float, reward: float) -> None:
        """Learn from one use of a transition weight (as returned by :meth:`transition_weight`)."""
        r = _reward(reward)
        arms = self._arm_values()
        match = [m for m, v in arms.items() if math.isclose(v, float(value), rel_tol=1e-9, abs_tol=1e-12)]
        if not match:
            raise MoodsicError(f"transition weight {value!r} is not one the learner offers "
                               f"({', '.join(f'{v:g}' for v in arms.values())})")
        if not self.enabled:
            return
        self._arms[match[0]][0] += 1.0
        self._arms[match[0]][1] += r

    # -- state ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state: config it was built with, what it learned and the random generator."""
        return {
            "version": STATE_VERSION,
            "priors": {c: dict(zip(TERMS, self._priors[c].as_array().tolist())) for c in CONTEXTS},
            "safety_distance": self.safety_distance,
            "transition_base": self.transition_base,
            "enabled": self.enabled,
            "settings": asdict(self.settings),
            "contexts": {c: {"n": p.n, "xtx": p.xtx.tolist(), "xty": p.xty.tolist()} for c, p in self._post.items()},
            "preferences": {t: [v[0], v[1]] for t, v in self._pref.items()},
            "transition": {repr(m): [v[0], v[1]] for m, v in self._arms.items()},
            "rng": self._rng.bit_generator.state,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], hybrid=None, arcs=None, seed: int | None = None) -> Learner:
        """Restore :meth:`to_dict`'s state. With ``hybrid``/``arcs`` configs given, their priors, safety
        distance, learn switch and transition weight replace the saved ones (what was learned is kept).
        With ``seed`` the generator starts afresh from it, otherwise it continues where it was saved."""
        try:
            if data.get("version") != STATE_VERSION:
                raise ValueError("version")
            if hybrid is not None:
                priors, safety, enabled = _priors_from(hybrid), hybrid.safety_distance, hybrid.learn
            else:
                priors = {c: HybridWeights(**{t: float(v) for t, v in w.items()}) for c, w in data["priors"].items()}
                safety, enabled = float(data["safety_distance"]), bool(data["enabled"])
            base = arcs.transition_weight if arcs is not None else float(data["transition_base"])
            out = cls(priors, safety_distance=safety, transition_base=base, enabled=enabled, seed=seed,
                      settings=LearnerSettings(**data["settings"]))
            for c, p in data["contexts"].items():
                post = _Posterior(np.asarray(p["xtx"], np.float64), np.asarray(p["xty"], np.float64), int(p["n"]))
                if c not in CONTEXTS or post.xtx.shape != (_DIM, _DIM) or post.xty.shape != (_DIM,):
                    raise ValueError(c)
                out._post[c] = post
            out._pref = {str(t): [float(v[0]), float(v[1])] for t, v in data["preferences"].items()}
            for m, v in data["transition"].items():
                if float(m) not in out._arms:
                    raise ValueError(m)
                out._arms[float(m)] = [float(v[0]), float(v[1])]
            if seed is None:
                out._rng.bit_generator.state = data["rng"]
        except MoodsicError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MoodsicError(f"saved learner state is not usable ({exc.__class__.__name__}: {exc}); "
                               "reset the learner") from None
        return out


def _priors_from(hybrid) -> dict[str, HybridWeights]:
    out = {}
    for c in CONTEXTS:
        table = getattr(hybrid, c)
        out[c] = HybridWeights(table.fit, table.arc, table.pref, table.novelty)  # normalised once, by Learner
    return out


def _check_context(context: str) -> str:
    if context not in CONTEXTS:
        raise MoodsicError(f"no learner context {context!r} (known: {', '.join(CONTEXTS)})")
    return context


def _reward(reward: float) -> float:
    try:
        r = float(reward)
    except (TypeError, ValueError):
        raise MoodsicError(f"a reward must be a number in [-1, 1], not {reward!r}") from None
    if not math.isfinite(r):
        raise MoodsicError(f"a reward must be a number in [-1, 1], not {reward!r}")
    return min(1.0, max(-1.0, r))
