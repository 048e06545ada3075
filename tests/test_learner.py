"""The learner (contextual bandit over the hybrid terms, track preferences, transition-weight bandit)
and the simulated listener that drives it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moodsic_live.config import ArcsConfig, HybridConfig, WeightsConfig
from moodsic_live.errors import MoodsicError
from moodsic_live.match.hybrid import LABELS, TERMS, HybridWeights, rank, weights_for
from moodsic_live.match.learner import CONTEXTS, Learner
from moodsic_live.match.simulate import simulate

SEED = 0


@pytest.fixture(scope="module")
def runs():
    """The learner and the fixed-weight baseline against the same simulated listener (about 1.5 s)."""
    return simulate(30, 40, SEED), simulate(30, 40, SEED, learn=False)


def _random_candidates(rng, n=12):
    terms = rng.uniform(0.0, 1.0, (n, len(TERMS)))
    distances = rng.uniform(0.0, 0.6, n)
    return terms, distances


# -- the simulation -----------------------------------------------------------------------------

def test_learned_weights_approach_the_hidden_ones(runs):
    learned, fixed = runs
    start, end = learned.weight_distance[0], learned.weight_distance[-1]
    assert end < 0.5 * start, (start, end)
    assert end < 0.15, learned.learned[-1]
    # the baseline keeps the configured weights: the same criterion fails for it
    assert fixed.weight_distance[-1] == pytest.approx(start)
    # the learner also learned the taste: the disliked genre's preference is below the others'
    assert learned.preference_disliked < 0.45 < 0.5 < learned.preference_others
    assert learned.learned[-1].pref > 0.1


def test_skip_rate_falls_and_regret_beats_fixed_weights(runs):
    learned, fixed = runs
    assert learned.skip_rate[-5:].mean() < learned.skip_rate[:5].mean() - 0.1
    assert learned.skip_rate[-5:].mean() < fixed.skip_rate[-5:].mean()
    assert learned.cumulative_regret[-1] < 0.8 * fixed.cumulative_regret[-1]
    # regret per play shrinks: the last third of the plays costs less than the first third
    third = len(learned.regret) // 3
    assert learned.regret[-third:].sum() < 0.7 * learned.regret[:third].sum()
    assert learned.learned_transition == learned.best_transition == 0.5


def test_simulation_never_picks_outside_the_safety_bound(runs):
    for result in runs:
        assert result.unsafe_picks == 0 and result.all_safe
    assert runs[0].explored_share.sum() > 0  # it did explore, only safely


def test_simulation_is_deterministic():
    a, b = simulate(3, 10, seed=7), simulate(3, 10, seed=7)
    np.testing.assert_array_equal(a.regret, b.regret)
    assert a.learned == b.learned and a.transition == b.transition
    assert not np.array_equal(a.regret, simulate(3, 10, seed=8).regret)


# -- safety -------------------------------------------------------------------------------------

def test_best_scoring_unsafe_candidate_is_never_chosen():
    terms = np.array([[1.0, 1.0, 1.0, 1.0],    # perfect, but 0.5 away: unsafe
                      [0.6, 0.3, 0.5, 1.0],
                      [0.5, 0.4, 0.5, 1.0],
                      [0.55, 0.2, 0.5, 0.9]])
    distances = np.array([0.5, 0.2, 0.3, 0.34])
    learner = Learner.from_config(HybridConfig(), seed=1)
    assert rank(terms, learner.weights("video"))[0].track == 0  # the plain ranking would take it
    picks = set()
    for _ in range(300):
        choice = learner.choose("video", terms, distances)
        assert choice.index != 0 and choice.safe and choice.distance <= 0.35
        picks.add(choice.index)
        learner.update("video", choice.terms, f"t{choice.index}", -1.0)  # keep it uncertain: all skipped
    assert len(picks) > 1  # it explored among the safe ones


def test_random_candidates_picks_stay_safe():
    rng = np.random.default_rng(3)
    learner = Learner(seed=3)
    for i in range(300):
        terms, distances = _random_candidates(rng)
        choice = learner.choose(CONTEXTS[i % 4], terms, distances)
        if (distances <= 0.35).any():
            assert choice.distance <= 0.35
        learner.update(choice.context, choice.terms, str(i % 20), float(rng.uniform(-1, 1)))


def test_no_safe_candidate_plays_the_nearest_without_exploring():
    learner = Learner(seed=0)
    terms = np.array([[0.2, 0.9, 0.9, 1.0], [0.3, 0.1, 0.1, 0.1], [0.1, 1.0, 1.0, 1.0]])
    for _ in range(20):
        choice = learner.choose("mirror", terms, [0.6, 0.4, 0.9])
        assert choice.index == 1 and not choice.safe and not choice.explored
        assert "nearest" in choice.explanation


# -- ranking and explanation --------------------------------------------------------------------

def test_untrained_learner_ranks_like_the_configured_weights():
    config = HybridConfig(mirror=WeightsConfig(fit=0.5, arc=0.0, pref=0.2, novelty=0.3))
    learner = Learner.from_config(config, ArcsConfig(), seed=0)
    rng = np.random.default_rng(0)
    for context in CONTEXTS:
        assert learner.weights(context) == weights_for(config, context)
        terms, distances = _random_candidates(rng, 30)
        expected = rank(terms, weights_for(config, context))
        assert [r.track for r in learner.rank(context, terms)] == [r.track for r in expected]
        safe_best = next(r.track for r in expected if distances[r.track] <= 0.35)
        assert learner.choose(context, terms, distances, explore=False).index == safe_best


def test_explanation_names_the_terms_and_weights():
    learner = Learner.from_config(HybridConfig(), seed=0)  # video: every weight > 0
    choice = learner.choose("video", [[0.9, 0.8, 0.6, 1.0], [0.1, 0.1, 0.1, 0.1]], [0.1, 0.1], explore=False)
    assert choice.index == 0 and not choice.explored
    for term in TERMS:
        assert LABELS[term] in choice.explanation
    assert choice.explanation.startswith(f"score {choice.score:.2f}")
    assert choice.score == pytest.approx(float(np.dot(choice.weights.as_array(), choice.terms)))


def test_regression_recovers_linear_weights():
    """Rewards exactly linear in the terms: the learned weights are the true ones."""
    true = np.array([0.1, 0.6, 0.1, 0.2])
    rng = np.random.default_rng(5)
    learner = Learner(seed=5)
    for _ in range(2000):
        x = rng.uniform(0, 1, 4)
        learner.update("target", x, None, 2.0 * true @ x - 1.0 + rng.normal(0, 0.3))
    assert np.abs(learner.weights("target").as_array() - true).sum() < 0.1
    assert learner.weights("mirror") == learner.prior("mirror")  # contexts are separate


# -- preference, reset, state -------------------------------------------------------------------

def test_preference_of_skipped_falls_and_of_completed_rises():
    learner = Learner(seed=0)
    terms = [0.8, 0.5, 0.5, 1.0]
    for _ in range(5):
        learner.update("mirror", terms, "skipped", -1.0)
        learner.update("mirror", terms, "loved", 1.0)
    skipped, loved, unknown = learner.preference(["skipped", "loved", "never"])
    assert skipped < 0.35 and loved > 0.6 and unknown == 0.5
    # it feeds the pref term: with track ids the learner fills the column
    choice = learner.choose("mirror", [terms, terms], [0.1, 0.1], track_ids=["skipped", "loved"], explore=False)
    assert choice.index == 1 and choice.terms[2] == pytest.approx(loved)


def test_reset_forgets():
    learner = Learner(seed=0)
    for i in range(50):
        learner.update("video", [1.0, 0.0, 0.5, 1.0], "a", 1.0)
        learner.update("mirror", [0.0, 1.0, 0.5, 1.0], "b", -1.0)
        learner.update_transition(2.0, 1.0)
    assert learner.weights("video") != learner.prior("video")
    learner.reset("mirror")
    assert learner.weights("mirror") == learner.prior("mirror") and learner.plays("video") == 50
    learner.reset()
    for context in CONTEXTS:
        assert learner.weights(context) == learner.prior(context) and learner.plays(context) == 0
    assert learner.preference(["a", "b"]).tolist() == [0.5, 0.5]
    assert set(learner.transition_means().values()) == {0.0}


def test_state_round_trips_and_replays_the_same_choices():
    rng = np.random.default_rng(2)
    learner = Learner.from_config(HybridConfig(), ArcsConfig(transition_weight=0.8), seed=11)
    for i in range(40):
        terms, distances = _random_candidates(rng)
        choice = learner.choose("video", terms, distances, track_ids=[f"t{j}" for j in range(len(terms))])
        learner.update("video", choice.terms, f"t{choice.index}", float(rng.choice([-1.0, -0.5, 1.0])))
        learner.update_transition(learner.transition_weight(), float(rng.uniform(-1, 1)))
    restored = Learner.from_dict(json.loads(json.dumps(learner.to_dict())))
    assert restored.weights("video") == learner.weights("video")
    ids = [f"t{j}" for j in range(12)]
    np.testing.assert_array_equal(restored.preference(ids), learner.preference(ids))
    assert restored.transition_means() == learner.transition_means()
    for _ in range(20):  # the generator continues where it was saved
        terms, distances = _random_candidates(rng)
        assert restored.choose("video", terms, distances, ids) == learner.choose("video", terms, distances, ids)
        assert restored.transition_weight() == learner.transition_weight()
    # with a seed, a restored copy replays like another restored with the same seed
    a = Learner.from_dict(learner.to_dict(), seed=4)
    b = Learner.from_dict(learner.to_dict(), seed=4)
    terms, distances = _random_candidates(rng)
    assert [a.choose("video", terms, distances).index for _ in range(10)] == \
           [b.choose("video", terms, distances).index for _ in range(10)]
    # the config given on restore replaces the priors, what was learned stays
    other = HybridConfig(video=WeightsConfig(fit=1.0, arc=0.0, pref=0.0, novelty=0.0))
    moved = Learner.from_dict(learner.to_dict(), other)
    assert moved.prior("video") == HybridWeights(1.0, 0.0, 0.0, 0.0) and moved.plays("video") == 40
    with pytest.raises(MoodsicError):
        Learner.from_dict({"version": 1, "priors": {}})


def test_transition_bandit_converges_to_the_best_arm():
    learner = Learner(transition_base=0.8, seed=9)
    rng = np.random.default_rng(9)
    best = 1.6  # 2 × the configured 0.8
    picks = []
    for _ in range(150):
        value = learner.transition_weight()
        picks.append(value)
        learner.update_transition(value, (0.5 if value == pytest.approx(best) else 0.1) + rng.normal(0, 0.3))
    assert sorted(learner.transition_means()) == [0.0, 0.4, 0.8, 1.6]
    assert learner.transition_weight(explore=False) == pytest.approx(best)
    assert np.mean(np.isclose(picks[-50:], best)) > 0.8
    assert Learner(transition_base=0.8).transition_weight(explore=False) == 0.8  # untried: the configured one
    assert Learner(transition_base=0.0).transition_weight() == 0.0  # plain DTW is left alone


def test_learning_off_keeps_the_configured_ranking():
    learner = Learner.from_config(HybridConfig(learn=False), seed=0)
    for _ in range(20):
        learner.update("video", [1.0, 0.0, 0.5, 1.0], "a", 1.0)
    assert learner.weights("video") == learner.prior("video") and learner.preference(["a"])[0] == 0.5
    choice = learner.choose("video", [[0.2, 0.2, 0.5, 1.0], [0.9, 0.9, 0.5, 1.0]], [0.1, 0.1])
    assert choice.index == 1 and not choice.explored


@pytest.mark.parametrize("call", [
    lambda lr: lr.choose("video", np.ones((3, 3)), [0.1] * 3),
    lambda lr: lr.choose("video", np.ones((3, 4)), [0.1] * 2),
    lambda lr: lr.choose("video", np.full((2, 4), 1.5), [0.1] * 2),
    lambda lr: lr.choose("party", np.ones((2, 4)), [0.1] * 2),
    lambda lr: lr.update("video", [0.5] * 4, "a", float("nan")),
    lambda lr: lr.update("video", [0.5] * 3, "a", 1.0),
    lambda lr: lr.update_transition(0.3, 1.0),
    lambda lr: lr.preference("one-id"),
])
def test_bad_input_is_a_one_line_error(call):
    with pytest.raises(MoodsicError) as err:
        call(Learner(seed=0))
    assert "\n" not in str(err.value)
