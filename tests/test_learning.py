"""The learner in the app: kept in the listening history between runs, fed by the plays' rewards, picking
among the live matcher's candidates inside the safety bound, and ranking soundtracks with what it learned."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from moodsic_live.engine.learning import STATE, Learning, LivePicker, reset_learning
from moodsic_live.feedback import Feedback, FeedbackStore
from moodsic_live.perceive.estimate import VA

KW = dict(library="lib", title="T", artist="A", mode="mirror")


def _play(store: FeedbackStore, track: str, terms, action: str | None, at: float, heard: float = 3.0,
          context: str = "mirror") -> int:
    """One live play as the engine records it: shown (terms, weights), started, then the listener's action."""
    shown = store.add(Feedback(at=at, kind="shown", track_id=track, context={
        "hybrid": context, "terms": list(terms), "weights": {"fit": 0.6, "arc": 0.0, "pref": 0.3, "novelty": 0.1}},
        **KW))
    started = store.add(Feedback(at=at, kind="started", track_id=track, context={"duration_s": 120.0}, **KW))
    if action is not None:
        store.add(Feedback(at=at + heard, kind=action, track_id=track, position_s=heard, recommendation=started, **KW))
    return shown


@pytest.fixture()
def fresh():
    from moodsic_live.config import Config

    return Config()


def test_learning_catches_up_once_survives_restarts_and_reset_does_not_relearn(tmp_path, fresh):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    _play(store, "a", (0.9, 0.0, 0.5, 1.0), "skipped", 1000.0)          # skipped after 3 s: -1
    _play(store, "b", (0.8, 0.0, 0.5, 1.0), "completed", 1100.0)
    _play(store, "c", (0.7, 0.0, 0.5, 1.0), None, 1200.0)               # no reaction: not learned from
    store.add(Feedback(at=1300.0, kind="started", track_id="d", **KW))  # no terms (an older run): not learned

    first = Learning.open(fresh, store, seed=0)
    assert first.learned == 2 and first.learner.plays("mirror") == 2
    pref = first.learner.preference(["a", "b", "zzz"])
    assert pref[0] < 0.5 < pref[1] and pref[2] == 0.5
    saved = store.load_state(STATE)
    assert saved["through"] == store.rows()[-1].id and saved["learner"]["contexts"]["mirror"]["n"] == 2

    again = Learning.open(fresh, store, seed=0)                       # a restart: nothing learned twice
    assert again.learned == 0 and again.learner.plays("mirror") == 2
    np.testing.assert_allclose(again.learner.preference(["a", "b", "zzz"]), pref)

    _play(store, "e", (0.6, 0.0, 0.5, 0.2), "liked", 1400.0, context="regulate")
    assert again.learn() == 1 and again.learner.plays("regulate") == 1 and again.learner.plays("mirror") == 2
    # a play still going on (its events after `before`) waits until it is over
    running = _play(store, "f", (0.5, 0.0, 0.5, 1.0), "skipped", 1500.0)
    assert again.learn(before=running) == 0 and again.learn() == 1

    peek = Learning.open(fresh, store, read_only=True)                 # a CLI beside the app: never saves
    _play(store, "g", (0.5, 0.0, 0.5, 1.0), "completed", 1600.0)
    assert Learning.open(fresh, store, read_only=True).learned == 1 == \
        Learning.open(fresh, store, read_only=True).learned and peek.learner.plays("mirror") == 3
    assert again.learn() == 1                                          # the owner still learns it

    reset_learning(fresh, store)                                      # `feedback reset`
    after = Learning.open(fresh, store, seed=0)
    assert after.learned == 0 and all(after.learner.plays(c) == 0 for c in ("mirror", "regulate"))
    assert after.learner.preference(["a"])[0] == 0.5 and len(store.rows()) == 18   # the history stays


def test_a_damaged_saved_state_is_said_and_learning_starts_afresh(tmp_path, fresh):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    _play(store, "a", (0.9, 0.0, 0.5, 1.0), "completed", 1000.0)
    store.save_state(STATE, {"learner": {"version": 99}, "through": 0})
    said: list[str] = []
    learning = Learning.open(fresh, store, say=said.append)
    assert len(said) == 1 and "saved learner state is not usable" in said[0] and "afresh" in said[0]
    assert learning.learner.plays("mirror") == 1                       # relearned from the history


def test_reset_of_an_empty_history_creates_nothing(tmp_path, fresh):
    store = FeedbackStore(tmp_path / "none" / "feedback.sqlite")
    assert reset_learning(fresh, store) == 0 and not store.path.exists()


def _matcher(small_library, picker=None, **match):
    from moodsic_live.engine.soundtrack import matcher_for

    library, base = small_library
    config = copy.deepcopy(base)
    for key, value in match.items():
        setattr(config.match, key, value)
    m = matcher_for(library, config)
    m.picker = picker
    return library, config, m


def test_the_live_picker_explores_only_inside_the_safety_bound(small_library):
    """Thompson draws with a wide spread over random moods, skipping song after song (so novelty and the
    learned preferences differ between candidates): every choice with a candidate within the safety
    distance is within it, and the picker does explore (picks other than the greedy ranking's)."""
    from moodsic_live.match.learner import Learner, LearnerSettings

    library, config, _ = _matcher(small_library)
    ids = [t.id for t in library.tracks]
    learner = Learner.from_config(config.match.hybrid, config.match.arcs, seed=3,
                                  settings=LearnerSettings(explore=3.0))
    for k, track in enumerate(ids):                     # some songs liked, some skipped
        learner.update("mirror", (0.8, 0.0, 0.5, 1.0), track, 1.0 if k % 2 else -1.0)
    offered = []

    class Recording(LivePicker):
        def __call__(self, c, final):
            offered.append(c)
            return super().__call__(c, final)

    picker = Recording(learner, ids, lambda: "mirror")
    _, _, m = _matcher(small_library, picker)
    rng = np.random.default_rng(0)
    safe_picks = explored = 0
    for k in range(300):
        est = VA(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1)), 0.05, 0.05)
        d = m.update(float(k), est) if k == 0 else m.skip(float(k), est)
        c = picker.last
        assert c is not None and c.track_id == library.tracks[d.track_index].id
        nearest = offered[-1].distances.min()
        assert d.distance == pytest.approx(c.choice.distance, abs=1e-9)
        if c.choice.safe:
            assert c.choice.distance <= learner.safety_distance + 1e-12
            safe_picks += 1
        else:                                           # nothing near enough: the nearest, unexplored
            assert not c.choice.explored and nearest > learner.safety_distance
            assert c.choice.distance == nearest
        explored += c.choice.explored
        assert c.choice.explanation.startswith("score ")
    assert safe_picks > 100 and explored > 10


def test_a_better_switch_only_goes_to_songs_that_beat_the_playing_one(small_library):
    """With a picker the rule's hysteresis holds: on a 'better' switch the picker only sees songs that beat
    the playing segment by the margin, so even a picker that wants the worst one switches to a better song."""
    seen = []

    def worst(c, final):      # a picker that always wants the worst candidate it is offered
        seen.append(c)
        return len(c) - 1

    library, config, m = _matcher(small_library, worst)
    margin = config.match.switch_margin
    m.update(0.0, VA(-0.9, -0.9, 0.05, 0.05))
    switches = []
    for t in np.arange(1.0, 400.0, 1.0):
        mood = VA(0.9, 0.9, 0.05, 0.05) if (t // 60) % 2 == 0 else VA(-0.9, -0.9, 0.05, 0.05)
        d = m.update(float(t), mood)
        if d.switched and d.reason == "better":
            switches.append(d)
            c = seen[-1]
            assert c.kind == "better" and np.all(c.scores + margin < c.current)
            assert d.segment.index in c.rows.tolist() and d.segment.index == int(c.rows[-1])
    assert switches, "the mood moved across the plane and nothing switched"
    assert all(c.kind != "better" or np.isfinite(c.current) for c in seen)


def test_what_was_learned_ranks_soundtracks(mood_video, small_library, perceiver):
    """A learner that saw one song liked and another skipped moves the liked one up the video ranking;
    its weights for videos are the ones used, and its transition weight the one aligned with."""
    from moodsic_live.engine.soundtrack import plan_soundtrack
    from moodsic_live.engine.soundtrack_rank import rank_for_video
    from moodsic_live.match.learner import Learner

    path, _ = mood_video
    library, config = small_library
    plan = plan_soundtrack(path, library, config, perceiver, fps=2)
    plain = rank_for_video(plan, library, config, top=len(library.tracks))
    order = [s.track_id for s in plain.songs]
    low, high = order[-1], order[0]
    learner = Learner.from_config(config.match.hybrid, config.match.arcs, seed=0)
    for _ in range(30):
        learner.update("video", (0.5, 0.5, 0.5, 1.0), low, +1.0)
        learner.update("video", (0.5, 0.5, 0.5, 1.0), high, -1.0)
    learned = rank_for_video(plan, library, config, top=len(library.tracks), learner=learner)
    new = [s.track_id for s in learned.songs]
    assert new.index(low) < order.index(low)
    before = {s.track_id: s.ranked for s in plain.songs}
    after = {s.track_id: s.ranked for s in learned.songs}
    assert after[low].terms[2] > 0.5 > after[high].terms[2] and after[high].score < before[high].score
    assert learned.weights == learner.weights("video")
    assert learned.transition_weight == learner.transition_weight(explore=False)
    ctx = learned.context(learned.songs[0])
    assert ctx["hybrid"] == "video" and len(ctx["terms"]) == 4 and ctx["rank"] == 1
