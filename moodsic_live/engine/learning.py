"""What the app learns from its listeners, kept between runs: the learner and its place in the history.

The listening history (:mod:`moodsic_live.feedback`) holds every play with the hybrid terms and
weights it was chosen with (the ``shown`` event's context: ``hybrid`` = the learner's context,
``terms``, ``weights``, ``why``) and the listener's actions on it. :class:`Learning` keeps a
:class:`~moodsic_live.match.learner.Learner` in step with that history:

* on :meth:`Learning.open` the saved learner (the ``state`` row ``learner``: its state and
  ``through``, the last event already learned from) is restored, or a new one is made from the
  config, and every play recorded since ``through`` is learned from (plays of earlier runs, or of
  the CLI);
* the live engine calls :meth:`Learning.learn` when a new play starts: the plays before it are
  over, so their rewards (:func:`~moodsic_live.feedback.outcomes`) are final; each play that had a
  reaction and carries its terms updates the weights of its context and its track's preference,
  and a video play with a ``transition_weight`` the DTW transition bandit. The state is saved.
* :meth:`Learning.reset` forgets what was learned but not the history: ``through`` stays at the
  newest event so old plays are not learned again.

:class:`LivePicker` is the matcher's :data:`~moodsic_live.match.matcher.Picker` for the live loop:
the candidates' terms (``fit`` from the matcher's score, distance plus penalties; ``arc`` 0: no arc
is compared live; ``pref`` the learner's; ``novelty`` from how many songs ago each last played) go
to :meth:`Learner.choose`, which explores only among candidates within the safety distance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from moodsic_live.config import Config
from moodsic_live.errors import MoodsicError
from moodsic_live.feedback import FeedbackStore, outcomes
from moodsic_live.match.hybrid import TERMS, fit_term, novelty_term
from moodsic_live.match.learner import CONTEXTS, Choice, Learner
from moodsic_live.match.matcher import Candidates

STATE = "learner"
Say = Callable[[str], None]


def _terms_of(context: dict) -> np.ndarray | None:
    terms = context.get("terms")
    try:
        x = np.asarray(terms, np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    if x.shape != (len(TERMS),) or not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
        return None
    return x


class Learning:
    """A learner in step with a listening history (see the module docstring)."""

    def __init__(self, config: Config, store: FeedbackStore, learner: Learner, through: int = 0,
                 read_only: bool = False):
        self.config = config
        self.read_only = read_only        # learn in memory only (a CLI command beside a running app)
        self.store = store
        self.learner = learner
        self.through = int(through)
        self.learned = 0                  # plays learned from by this object

    @classmethod
    def open(cls, config: Config, store: FeedbackStore, *, seed: int | None = None, say: Say = lambda s: None,
             catch_up: bool = True, read_only: bool = False) -> Learning:
        """The saved learner (config priors applied), caught up with the history; a fresh one when
        nothing is saved or the saved state is unusable (said in one line). A history that cannot be
        read leaves a fresh learner that learns nothing (said). ``read_only``: never save (the app that
        owns the history may be running)."""
        hybrid, arcs = config.match.hybrid, config.match.arcs
        learner, through = None, 0
        try:
            state = store.load_state(STATE)
        except MoodsicError as exc:
            say(f"{exc}; learning from listeners is off this run")
            return cls(config, store, Learner.from_config(hybrid, arcs, seed=seed), through=-1, read_only=True)
        if state is not None:
            try:
                learner = Learner.from_dict(state.get("learner", {}), hybrid, arcs, seed=seed)
                through = int(state.get("through", 0))
            except (MoodsicError, TypeError, ValueError) as exc:
                say(f"{exc}: starting to learn afresh")
                learner, through = None, 0
        out = cls(config, store, learner or Learner.from_config(hybrid, arcs, seed=seed), through, read_only)
        if catch_up:
            out.learn()
        return out

    @property
    def enabled(self) -> bool:
        return self.through >= 0

    def learn(self, before: int | None = None) -> int:
        """Learn from the plays recorded after ``through`` whose events come before event id ``before``
        (None: all of them), then save. Returns how many plays were learned from."""
        if not self.enabled:
            return 0
        try:
            events = self.store.rows(after=self.through)
        except MoodsicError:
            return 0
        if before is not None:
            events = [e for e in events if e.id is not None and e.id < before]
        if not events:
            return 0
        n = 0
        for o in outcomes(events):
            context = o.context.get("hybrid")
            x = _terms_of(o.context)
            if not o.known or context not in CONTEXTS or x is None:
                continue
            self.learner.update(context, x, o.track_id, o.reward)
            tw = o.context.get("transition_weight")
            if context == "video" and isinstance(tw, (int, float)):
                try:
                    self.learner.update_transition(float(tw), o.reward)
                except MoodsicError:
                    pass                   # a weight the config no longer offers
            n += 1
        self.through = max(e.id for e in events if e.id is not None)
        self.learned += n
        self.save()
        return n

    def save(self) -> None:
        if self.enabled and not self.read_only:
            self.store.save_state(STATE, {"learner": self.learner.to_dict(), "through": self.through})

    def reset(self) -> None:
        """Forget the learned weights, preferences and transition weight; the history stays and is not
        learned from again."""
        self.learner.reset()
        self.store.reset_learning()
        if self.enabled:
            rows = self.store.rows(after=self.through)
            if rows:
                self.through = max(e.id for e in rows if e.id is not None)
            self.save()


def reset_learning(config: Config, store: FeedbackStore) -> int:
    """``feedback reset``: forget what was learned, keep the history (not learned from again).
    Returns how many states were removed."""
    if not store.path.exists():
        return 0                          # nothing recorded, nothing learned: create nothing
    n = len(store.state_names())
    Learning.open(config, store, catch_up=False).reset()
    return n


@dataclass(frozen=True)
class Picked:
    """What the live picker chose last: the learner's choice and the candidates' track ids."""

    choice: Choice
    track_id: str
    candidates: int


class LivePicker:
    """The live loop's picker: the learner ranks the matcher's candidates by the hybrid score."""

    def __init__(self, learner: Learner, track_ids: list[str], context: Callable[[], str]):
        self.learner = learner
        self.track_ids = track_ids
        self.context = context
        self.last: Picked | None = None

    def terms(self, c: Candidates) -> np.ndarray:
        """(n, 4): fit from the matcher's score, arc 0, pref 0.5 (the learner fills it), novelty."""
        n = len(c)
        return np.column_stack([fit_term(c.scores), np.zeros(n), np.full(n, 0.5),
                                novelty_term(np.where(c.plays_ago < 0, np.inf, c.plays_ago))])

    def __call__(self, c: Candidates, final: bool) -> int:
        ids = [self.track_ids[int(t)] for t in c.tracks]
        choice = self.learner.choose(self.context(), self.terms(c), c.distances, ids, explore=final)
        if final:
            self.last = Picked(choice, ids[choice.index], len(c))
        return choice.index
