"""The matcher package: k-d index, distribution alignment, mood clusters, and the DJ rules."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from moodsic_live.config import MatchConfig
from moodsic_live.errors import MoodsicError
from moodsic_live.library.model import SegmentTable
from moodsic_live.match.alignment import Aligner
from moodsic_live.match.index import SegmentIndex
from moodsic_live.match.matcher import (GOALS, Matcher, MatchDecision, mode_target, rank, score_candidates,
                                        validate_config)
from moodsic_live.match.moods import CENTRE_NAME, MoodClusters, base_name, unique_names
from moodsic_live.perceive.estimate import VA

QUADRANT_NAMES = {"Bright & Energetic", "Tense & Agitated", "Downcast & Low-energy", "Calm & Content"}


# -- helpers ---------------------------------------------------------------------------------

def points_table(va: np.ndarray, tracks: np.ndarray | None = None) -> SegmentTable:
    """One 10 s segment per point; by default each point is its own track."""
    va = np.asarray(va, np.float32).reshape(-1, 2)
    n = len(va)
    tracks = np.arange(n) if tracks is None else np.asarray(tracks)
    return SegmentTable(track=tracks.astype(np.int32), start=np.zeros(n, np.float32),
                        end=np.full(n, 10.0, np.float32), valence=va[:, 0].copy(), arousal=va[:, 1].copy(),
                        valence_std=np.zeros(n, np.float32), arousal_std=np.zeros(n, np.float32))


def songs_table(songs: list[tuple[float, float, float]], window: float = 10.0, hop: float = 5.0
                ) -> tuple[SegmentTable, np.ndarray]:
    """Songs of constant mood: (valence, arousal, duration) each, cut into windows every hop."""
    cols: dict[str, list[float]] = {c: [] for c in SegmentTable.COLUMNS}
    for i, (v, a, duration) in enumerate(songs):
        for s in np.arange(0.0, duration - window + 1e-9, hop):
            for c, x in zip(SegmentTable.COLUMNS, (i, s, s + window, v, a, 0.0, 0.0)):
                cols[c].append(x)
    table = SegmentTable(track=np.asarray(cols["track"], np.int32),
                         **{c: np.asarray(cols[c], np.float32) for c in SegmentTable.COLUMNS[1:]})
    return table, np.asarray([d for _, _, d in songs], np.float64)


def est(v: float, a: float) -> VA:
    return VA(v, a, 0.01, 0.01)


def matcher(songs, clusters=None, aligner=None, **overrides) -> Matcher:
    table, durations = songs_table(songs)
    return Matcher(table, durations, MatchConfig(**overrides), aligner or Aligner.identity(), clusters)


def blobs(centres, n=150, std=0.06, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, std, (n, 2)) for c in centres])


QUADRANTS = [(0.5, 0.5), (-0.5, 0.5), (-0.5, -0.5), (0.5, -0.5)]


# -- index -------------------------------------------------------------------------------------

def test_index_matches_brute_force():
    rng = np.random.default_rng(1)
    va = rng.uniform(-1, 1, (500, 2))
    index = SegmentIndex(points_table(va))
    stored = points_table(va).va.astype(np.float64)  # float32 as the library holds them
    for q in rng.uniform(-1, 1, (50, 2)):
        d, i = index.query(q, 7)
        brute = np.hypot(*(stored - q).T)
        expected = np.argsort(brute, kind="stable")[:7]
        assert list(i) == list(expected)
        np.testing.assert_allclose(d, brute[expected], rtol=1e-12)
    d, i = index.query(rng.uniform(-1, 1, (3, 2)), 4)
    assert d.shape == i.shape == (3, 4)


def test_index_k_larger_than_library_and_k_one():
    index = SegmentIndex(points_table([[0, 0], [0.1, 0], [0.3, 0], [-0.5, 0.2], [0.9, 0.9]]))
    d, i = index.query((0.0, 0.0), 20)
    assert sorted(i) == [0, 1, 2, 3, 4] and len(d) == 5 and np.all(np.isfinite(d))
    assert list(i[:3]) == [0, 1, 2] and np.all(np.diff(d) >= 0)
    d, i = index.query(np.array([0.29, 0.0]), 1)
    assert d.shape == (1,) and list(i) == [2]


def test_empty_library_is_a_user_error():
    with pytest.raises(MoodsicError, match="library build"):
        SegmentIndex(SegmentTable()).query((0, 0), 5)
    with pytest.raises(MoodsicError, match="no segments"):
        Matcher(SegmentTable(), np.zeros(0), MatchConfig(), Aligner.identity(), None)
    with pytest.raises(MoodsicError, match="no segments"):
        Aligner.fit(np.zeros((0, 2)), "quantile")
    with pytest.raises(MoodsicError, match="no segments"):
        MoodClusters.fit(np.zeros((0, 2)))


# -- alignment ---------------------------------------------------------------------------------

def narrow_library(seed=2) -> np.ndarray:
    """A library spanning only ±0.5, with one segment exactly at each extreme corner."""
    rng = np.random.default_rng(seed)
    va = np.clip(rng.normal(0, 0.2, (400, 2)), -0.49, 0.49)
    return np.vstack([va, [[0.5, 0.5], [-0.5, -0.5]]])


def test_quantile_maps_extremes_to_the_library_extremes():
    va = narrow_library()
    al = Aligner.fit(va, "quantile")
    assert al(1.0, 1.0) == pytest.approx((0.5, 0.5))
    assert al(-1.0, -1.0) == pytest.approx((-0.5, -0.5))
    assert al(0.0, 0.0) == pytest.approx(tuple(np.median(va, axis=0)))
    table = points_table(va)
    best, distance, _ = rank(table, SegmentIndex(table), al, None, 1.0, 1.0, 3)[0]
    assert (best.valence, best.arousal) == (0.5, 0.5) and distance == pytest.approx(0.0, abs=1e-6)
    # without alignment a strong estimate lands far outside the music
    _, far, _ = rank(table, SegmentIndex(table), Aligner.identity(), None, 1.0, 1.0, 1)[0]
    assert far > 0.7


def test_quantile_makes_every_region_reachable():
    """Each estimate quantile goes to the same library quantile: a tenth of the estimate range
    reaches a tenth of the library, not the three segments at its edge."""
    va = narrow_library()
    al = Aligner.fit(va, "quantile")
    x = np.linspace(-1, 1, 11)
    v, _ = al(x, np.zeros_like(x))
    expected = np.quantile(va[:, 0], (x + 1) / 2)
    np.testing.assert_allclose(v, expected, atol=1e-9)
    # an estimate at +0.6 reaches the library's 80th percentile, raw +0.6 is beyond all music
    assert al(0.6, 0.0)[0] == pytest.approx(np.quantile(va[:, 0], 0.8))


def test_alignment_is_monotone_and_inverts():
    va = narrow_library()
    x = np.linspace(-1, 1, 401)
    for method in ("quantile", "linear"):
        al = Aligner.fit(va, method)
        v, a = al(x, x)
        assert np.all(np.diff(v) > 0) and np.all(np.diff(a) > 0)
        bv, ba = al.inverse(v, a)
        np.testing.assert_allclose(bv, x, atol=1e-6)
        np.testing.assert_allclose(ba, x, atol=1e-6)
    lin = Aligner.fit(va, "linear")
    assert lin(-1, 1) == pytest.approx((-0.5, 0.5)) and lin(0, 0) == pytest.approx((0.0, 0.0))
    assert isinstance(lin(0.3, 0.2)[0], float)


def test_none_is_identity():
    al = Aligner.fit(narrow_library(), "none")
    assert al(0.37, -0.81) == (0.37, -0.81)
    assert al.inverse(0.37, -0.81) == (0.37, -0.81)
    np.testing.assert_array_equal(al.apply(np.array([[0.9, -1.0]])), [[0.9, -1.0]])


def test_alignment_round_trips_through_json():
    va = narrow_library()
    x = np.linspace(-1, 1, 57)
    for method in ("quantile", "linear", "none"):
        al = Aligner.fit(va, method)
        back = Aligner.from_dict(json.loads(json.dumps(al.to_dict())))
        assert back.method == method
        np.testing.assert_array_equal(np.column_stack(back(x, -x)), np.column_stack(al(x, -x)))
    with pytest.raises(MoodsicError, match="rebuild"):
        Aligner.from_dict({"method": "quantile", "valence": {"x": [0, 1]}})
    with pytest.raises(MoodsicError, match="match.alignment"):
        Aligner.fit(va, "cubic")  # type: ignore[arg-type]


# -- mood clusters -----------------------------------------------------------------------------

def test_four_quadrant_blobs_give_the_four_quadrant_names():
    va = blobs(QUADRANTS)
    clusters = MoodClusters.fit(va)
    assert len(clusters) == 4
    assert set(clusters.names) == QUADRANT_NAMES
    by_name = dict(zip(clusters.names, clusters.centres))
    np.testing.assert_allclose(by_name["Bright & Energetic"], (0.5, 0.5), atol=0.03)
    np.testing.assert_allclose(by_name["Calm & Content"], (0.5, -0.5), atol=0.03)
    labels = clusters.predict(va)
    expected = ["Bright & Energetic", "Tense & Agitated", "Downcast & Low-energy", "Calm & Content"]
    for q, name in enumerate(expected):
        assert all(clusters.names[j] == name for j in labels[q * 150:(q + 1) * 150])
    p = clusters.proba(va)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_array_equal(p.argmax(axis=1), labels)


def test_clusters_are_deterministic_and_round_trip():
    va = blobs(QUADRANTS + [(0.0, 0.0)], seed=3)
    a, b = MoodClusters.fit(va), MoodClusters.fit(va)
    assert a.names == b.names
    np.testing.assert_array_equal(a.centres, b.centres)
    assert len(set(a.names)) == len(a.names)
    assert CENTRE_NAME in a.names
    back = MoodClusters.from_dict(json.loads(json.dumps(a.to_dict())))
    assert back.names == a.names
    probe = np.random.default_rng(0).uniform(-1, 1, (200, 2))
    np.testing.assert_array_equal(back.predict(probe), a.predict(probe))
    np.testing.assert_allclose(back.proba(probe), a.proba(probe))
    with pytest.raises(MoodsicError, match="rebuild"):
        MoodClusters.from_dict({"names": ["x"]})


def test_names_are_relative_to_the_aligned_neutral_point():
    """A library of only bright, energetic music still has its calm corner called calm when
    names are read after alignment; around the absolute origin every name would be the same
    (and is then made unique)."""
    va = blobs([(0.6 + dv, 0.6 + da) for dv, da in [(0.2, 0.2), (-0.2, 0.2), (-0.2, -0.2), (0.2, -0.2)]],
               std=0.04, seed=4)
    relative = MoodClusters.fit(va, Aligner.fit(va, "quantile"))
    assert set(relative.names) == QUADRANT_NAMES
    absolute = MoodClusters.fit(va, Aligner.identity())
    assert len(set(absolute.names)) == 4
    assert all(n.startswith("Bright & Energetic") for n in absolute.names)


def test_base_names_and_uniqueness():
    assert base_name(0.6, 0.0) == "Warm & Upbeat"
    assert base_name(0.0, -0.7) == "Dreamy & Still"
    assert base_name(0.05, 0.8) == "Restless & Driving"
    assert base_name(-0.6, 0.05) == "Brooding & Heavy"
    assert base_name(0.05, -0.1) == CENTRE_NAME
    assert unique_names(np.array([[0.3, 0.3], [0.7, 0.7], [-0.5, 0.5]])) == [
        "Bright & Energetic (softer)", "Bright & Energetic (stronger)", "Tense & Agitated"]
    three = unique_names(np.array([[0.5, 0.5], [0.4, 0.4], [0.6, 0.6]]))
    assert three == ["Bright & Energetic II", "Bright & Energetic I", "Bright & Energetic III"]


def test_small_libraries_get_fewer_clusters():
    rng = np.random.default_rng(5)
    assert len(MoodClusters.fit(rng.normal(0, 0.3, (8, 2)))) == 1
    assert len(MoodClusters.fit(rng.normal(0, 0.3, (25, 2)))) <= 2
    one = MoodClusters.fit(np.array([[0.2, 0.3]]))
    assert one.predict(np.array([[0.9, 0.9]])).tolist() == [0]


# -- matcher: dwell and hysteresis ---------------------------------------------------------

LONG = 600.0


def test_dwell_holds_then_switches():
    m = matcher([(0.5, 0.5, LONG), (-0.5, -0.5, LONG)])
    first = m.update(0.0, est(0.5, 0.5))
    assert first.reason == "start" and first.switched and first.track_index == 0
    for t in (1.0, 10.0, 24.9):
        d = m.update(t, est(-0.5, -0.5))
        assert d.reason == "hold" and not d.switched and d.track_index == 0
        assert d.position == pytest.approx(first.position + t)
    d = m.update(25.0, est(-0.5, -0.5))
    assert d.reason == "better" and d.switched and d.track_index == 1
    assert d.position == d.segment.start
    assert m.update(40.0, est(0.5, 0.5)).reason == "hold"  # a new dwell started at 25 s


@pytest.mark.parametrize("dwell", [19.9, 30.5, 0.0, -25.0])
def test_dwell_outside_20_to_30_is_an_error(dwell):
    with pytest.raises(MoodsicError, match=r"match\.dwell_seconds") as err:
        matcher([(0, 0, LONG)], dwell_seconds=dwell)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("dwell", [20.0, 30.0])
def test_dwell_bounds_are_allowed(dwell):
    matcher([(0, 0, LONG)], dwell_seconds=dwell)


def test_other_bad_settings_name_their_key():
    for key, value in (("k", 0), ("target_nudge", 1.5), ("recent_penalty", -1.0), ("regulate_step", 0.0)):
        with pytest.raises(MoodsicError, match=rf"match\.{key}"):
            validate_config(dataclasses.replace(MatchConfig(), **{key: value}))


def test_hysteresis_needs_the_margin():
    # A at 0, B at 0.3 on the valence axis; margin 0.12
    def run(estimate_v: float) -> MatchDecision:
        m = matcher([(0.0, 0.0, LONG), (0.3, 0.0, LONG)], switch_margin=0.12)
        assert m.update(0.0, est(0.0, 0.0)).track_index == 0
        return m.update(30.0, est(estimate_v, 0.0))

    small = run(0.2)  # A 0.2 away, B 0.1 away: better by 0.1 < 0.12
    assert small.reason == "hold" and small.track_index == 0
    large = run(0.25)  # A 0.25 away, B 0.05 away: better by 0.2 > 0.12
    assert large.reason == "better" and large.track_index == 1


# -- matcher: recent songs and ending ---------------------------------------------------------

def test_after_playing_a_song_the_next_choice_is_another():
    m = matcher([(0.3, 0.3, 40.0), (0.31, 0.3, 40.0)])
    decisions = [m.update(float(t), est(0.3, 0.3)) for t in range(0, 80)]
    assert decisions[0].track_index == 0
    switches = [d for d in decisions if d.switched]
    assert [d.reason for d in switches[:2]] == ["start", "ending"]
    assert switches[1].track_index == 1  # A is recent: B though A is nearer
    assert switches[1].t == 35.0  # 40 s song, less than 6 s left at 35 s
    assert switches[2].track_index == 0  # both recent now: the nearer one again


def test_a_playing_song_is_not_forced_out_for_being_recent():
    """A and B are equally close. A plays (it is the most recent song); a penalty on the song
    playing now would let B win by recent_penalty (> margin) right after the dwell."""
    m = matcher([(0.0, 0.0, LONG), (0.2, 0.0, LONG)], recent_penalty=0.5, switch_margin=0.05)
    assert m.update(0.0, est(0.1, 0.0)).track_index == 0
    assert m.recent_tracks == [0]
    for t in range(1, 300):
        d = m.update(float(t), est(0.1, 0.0))
        assert d.track_index == 0 and d.reason == "hold"


def test_recent_is_a_penalty_not_an_exclusion():
    # B is much further than the recent penalty: when A ends, A starts again
    m = matcher([(0.0, 0.0, 40.0), (0.9, 0.0, LONG)], recent_penalty=0.25)
    m.update(0.0, est(0.0, 0.0))
    d = next(d for d in (m.update(float(t), est(0.0, 0.0)) for t in range(1, 60)) if d.switched)
    assert d.reason == "ending" and d.track_index == 0 and d.position == 0.0


def test_ending_switches_without_the_margin():
    m = matcher([(0.0, 0.0, 60.0), (0.2, 0.0, LONG)], switch_margin=0.12, ending_seconds=6.0)
    assert m.update(0.0, est(0.0, 0.0)).track_index == 0
    for t in range(1, 55):
        d = m.update(float(t), est(0.0, 0.0))
        assert d.reason == "hold" and d.track_index == 0
    d = m.update(55.0, est(0.0, 0.0))  # 5 s left
    assert d.reason == "ending" and d.switched and d.track_index == 1 and d.position == 0.0


def test_a_song_that_has_run_out_is_replaced_even_within_the_dwell():
    m = matcher([(0.0, 0.0, 40.0), (0.2, 0.0, LONG)])
    m.update(0.0, est(0.0, 0.0))
    d = m.update(200.0, est(0.0, 0.0))
    assert d.reason == "ending" and d.track_index == 1
    d = m.update(210.0, est(0.0, 0.0))
    assert d.reason == "hold" and d.position == pytest.approx(10.0)


def test_hold_reports_the_segment_at_the_playback_position():
    # one song whose mood changes halfway: the current segment follows the position
    table, durations = songs_table([(0.0, 0.0, 120.0)])
    half = table.start >= 60
    table.valence[half] = 0.8
    m = Matcher(table, durations, MatchConfig(), Aligner.identity(), None)
    m.update(0.0, est(0.0, 0.0))
    early, late = m.update(20.0, est(0.0, 0.0)), m.update(90.0, est(0.0, 0.0))
    assert early.segment.start <= 20.0 < early.segment.end and early.segment.valence == 0.0
    assert late.segment.start <= 90.0 < late.segment.end and late.segment.valence == pytest.approx(0.8)


# -- matcher: modes -----------------------------------------------------------------------------

def grid_songs(step=0.1) -> list[tuple[float, float, float]]:
    ticks = np.round(np.arange(-1.0, 1.0 + 1e-9, step), 6)
    return [(float(v), float(a), LONG) for v in ticks for a in ticks]


def test_mirror_follows_the_estimate():
    m = matcher(grid_songs(), mode="mirror", switch_margin=0.05)
    path = [(0.6, 0.6), (-0.6, 0.4), (-0.5, -0.7), (0.7, -0.3)]
    for i, (v, a) in enumerate(path):
        d = m.update(30.0 * i, est(v, a))
        assert d.target == pytest.approx((v, a))
        assert (d.segment.valence, d.segment.arousal) == pytest.approx((v, a), abs=1e-6)
        assert d.switched


def test_regulate_target_moves_step_by_step_and_reaches_the_goal():
    cfg = MatchConfig(mode="regulate", regulate_goal="calm", regulate_step=0.15, dwell_seconds=25.0)
    e = (-0.5, 0.7)
    goal = GOALS["calm"]
    gap = math.dist(e, goal)
    for j in range(0, 16):
        for within in (0.0, 24.0):
            t = mode_target(cfg, *e, elapsed=25.0 * j + within)
            assert math.dist(e, t) == pytest.approx(min(gap, 0.15 * j), abs=1e-9)
            # on the segment from the estimate to the goal
            assert math.dist(e, t) + math.dist(t, goal) == pytest.approx(gap, abs=1e-9)
    assert mode_target(cfg, *e, elapsed=25.0 * math.ceil(gap / 0.15)) == pytest.approx(goal)
    # it follows the person: a new estimate shifts the start, the progress is kept
    moved = mode_target(cfg, 0.0, 0.0, elapsed=50.0)
    assert math.dist((0.0, 0.0), moved) == pytest.approx(0.3)


def test_regulate_matcher_walks_the_music_to_the_goal():
    m = matcher(grid_songs(), mode="regulate", regulate_goal="energise", regulate_step=0.15, switch_margin=0.05)
    e = (-0.6, -0.6)
    goal = GOALS["energise"]
    decisions = [m.update(float(t), est(*e)) for t in range(0, 25 * 14, 5)]
    dist_to_goal = [math.dist(d.target, goal) for d in decisions]
    assert dist_to_goal[0] == pytest.approx(math.dist(e, goal))
    assert all(b <= a + 1e-9 for a, b in zip(dist_to_goal, dist_to_goal[1:]))
    assert decisions[-1].target == pytest.approx(goal)
    played = [(d.segment.valence, d.segment.arousal) for d in decisions if d.switched]
    assert played[-1] == pytest.approx(goal, abs=1e-6)
    assert len(played) >= 5  # many small steps, not one jump
    assert all(math.dist(a, b) <= 0.15 + 0.15 for a, b in zip(played, played[1:]))


def test_target_mode_holds_the_venue_atmosphere():
    cfg = MatchConfig(mode="target", target_valence=0.4, target_arousal=0.0, target_nudge=0.25)
    assert mode_target(cfg, 0.4, 0.0) == pytest.approx((0.4, 0.0))
    assert mode_target(cfg, -0.6, 0.8) == pytest.approx((0.4 - 0.25, 0.2))
    m = matcher(grid_songs(), mode="target", target_valence=0.4, target_arousal=0.0, target_nudge=0.25)
    for t, e in enumerate([(-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0), (0.0, 0.0)]):
        d = m.update(30.0 * t, est(*e))
        assert math.dist(d.target, (0.4, 0.0)) <= 0.25 * math.dist(e, (0.4, 0.0)) + 1e-9
        assert math.dist(d.target, (0.4, 0.0)) == pytest.approx(0.25 * math.dist(e, (0.4, 0.0)))


def test_targets_are_aligned_into_the_library():
    va = np.clip(np.random.default_rng(7).normal(0, 0.2, (300, 2)), -0.5, 0.5)
    table = points_table(va)
    al = Aligner.fit(table.va, "quantile")
    m = Matcher(table, np.full(len(va), LONG), MatchConfig(), al, None)
    d = m.update(0.0, est(1.0, -1.0))
    assert d.target == pytest.approx((va[:, 0].astype(np.float32).max(), va[:, 1].astype(np.float32).min()))
    assert d.estimate == est(1.0, -1.0)


# -- matcher: determinism and the cluster prior ------------------------------------------------

def test_same_inputs_give_the_same_decisions():
    rng = np.random.default_rng(11)
    songs = [(float(v), float(a), float(d)) for v, a, d in
             zip(rng.normal(0, 0.3, 80), rng.normal(0, 0.3, 80), rng.uniform(30, 240, 80))]
    table, durations = songs_table(songs)
    al = Aligner.fit(table.va, "quantile")
    clusters = MoodClusters.fit(table.va, al)
    walk = np.clip(np.cumsum(rng.normal(0, 0.08, (400, 2)), axis=0), -1, 1)

    def run() -> list[MatchDecision]:
        m = Matcher(table, durations, MatchConfig(), al, clusters)
        return [m.update(2.0 * i, est(*p)) for i, p in enumerate(walk)]

    first, second = run(), run()
    assert first == second
    assert len({d.track_index for d in first}) > 5
    assert {d.reason for d in first} >= {"start", "hold", "better", "ending"}
    # and never jumpy: every switch after the start is at least a dwell apart (or an ending)
    times = [d.t for d in first if d.switched and d.reason == "better"]
    assert all(b - a >= 25.0 for a, b in zip(times, times[1:]))
    m = Matcher(table, durations, MatchConfig(), al, clusters)
    m.update(0.0, est(0.1, 0.1))
    m.reset()
    assert m.playing is None and m.recent_tracks == []
    assert m.update(0.0, est(*walk[0])) == first[0]


def two_clusters() -> MoodClusters:
    """Left and right of valence 0, same shape: the boundary is valence = 0."""
    cov = [[[0.05, 0.0], [0.0, 0.05]]] * 2
    return MoodClusters.from_dict({"names": ["Left", "Right"], "centres": [[-0.5, 0.0], [0.5, 0.0]],
                                   "weights": [0.5, 0.5], "covariances": cov,
                                   "name_points": [[-0.5, 0.0], [0.5, 0.0]]})


def test_cluster_prior_never_excludes_the_nearest_segment():
    clusters = two_clusters()
    # the target (valence 0.02) is in "Right"; the nearest segment (-0.01) is in "Left"
    va = np.array([[-0.01, 0.0], [0.2, 0.0], [0.35, 0.0]])
    table = points_table(va)
    assert [clusters.names[j] for j in clusters.predict(va)] == ["Left", "Right", "Right"]
    for prior in (0.0, 0.05, 0.1):
        m = Matcher(table, np.full(3, LONG), MatchConfig(cluster_prior=prior), Aligner.identity(), clusters)
        d = m.update(0.0, est(0.02, 0.0))
        assert d.segment.index == 0 and d.cluster == "Left"
    ranked = rank(table, SegmentIndex(table), Aligner.identity(), clusters, 0.02, 0.0, 3)
    assert [(s.index, c) for s, _, c in ranked] == [(0, "Left"), (1, "Right"), (2, "Right")]
    assert ranked[0][1] == pytest.approx(0.03, abs=1e-6)
    # the prior is soft: it decides between near-equals only
    m = Matcher(table, np.full(3, LONG), MatchConfig(cluster_prior=0.05), Aligner.identity(), clusters)
    assert m.update(0.0, est(0.09, 0.0)).segment.index == 1  # 0.10 + 0.05 vs 0.11


def test_score_candidates_adds_only_penalties():
    d = np.array([0.1, 0.2, 0.3, 0.4])
    tracks = np.array([1, 2, 3, 4])
    labels = np.array([0, 1, 0, 1])
    s = score_candidates(d, tracks, labels, target_label=0, recent_tracks=[2, 3], recent_penalty=0.25,
                         cluster_prior=0.05, short=np.array([False, False, False, True]), tail_penalty=0.3)
    np.testing.assert_allclose(s, [0.1, 0.2 + 0.25 + 0.05, 0.3 + 0.25, 0.4 + 0.05 + 0.3])
    np.testing.assert_array_equal(score_candidates(d, tracks), d)
    assert np.all(s >= d)


def test_short_tails_are_avoided_at_the_start():
    # every segment of the song fits the estimate equally: the start picks one that can be held
    m = matcher([(0.0, 0.0, 45.0)])
    d = m.update(0.0, est(0.0, 0.0))
    assert 45.0 - d.segment.start >= 25.0


def _four_songs_sad_to_happy():
    """Four 55 s songs of ten segments each, valence rising from -0.8 (song 0) to +0.8 (song 3)."""
    from moodsic_live.config import MatchConfig
    from moodsic_live.match.alignment import Aligner
    from moodsic_live.match.matcher import Matcher
    from moodsic_live.library.model import SegmentTable

    n = 40
    track = (np.arange(n) // 10).astype(np.int32)
    start = ((np.arange(n) % 10) * 5.0).astype(np.float32)
    va = np.stack([np.linspace(-0.8, 0.8, n), np.zeros(n)], axis=1).astype(np.float32)
    seg = SegmentTable(track=track, start=start, end=start + 10, valence=va[:, 0].copy(), arousal=va[:, 1].copy(),
                       valence_std=np.zeros(n, np.float32), arousal_std=np.zeros(n, np.float32))
    m = Matcher(seg, np.full(4, 55.0), MatchConfig(), Aligner.fit(seg.va, "none"), None)
    return m


def test_skip_switches_at_once_to_another_song():
    """A song that cannot be decoded (or runs out early) is skipped whatever the dwell."""
    from moodsic_live.perceive.estimate import VA

    m = _four_songs_sad_to_happy()
    first = m.update(0.0, VA(0.8, 0.0, 0.01, 0.01))
    held = m.update(3.0, VA(0.8, 0.0, 0.01, 0.01))
    assert first.switched and not held.switched
    skipped = m.skip(3.0, VA(0.8, 0.0, 0.01, 0.01))
    assert skipped.switched and skipped.reason == "skip" and skipped.track_index != first.track_index
    assert not m.update(4.0, VA(0.8, 0.0, 0.01, 0.01)).switched  # the new choice dwells from now


def test_an_unplayable_song_is_not_chosen_again_unless_nothing_else_is_left():
    from moodsic_live.perceive.estimate import VA

    m = _four_songs_sad_to_happy()
    happy = VA(0.8, 0.0, 0.01, 0.01)
    first = m.update(0.0, happy)
    assert first.track_index == 3                       # the happiest song
    m.mark_unplayable(3)                                # ... and its file turns out to be broken
    skipped = m.skip(1.0, happy)
    assert skipped.track_index == 2                     # the next best
    m.mark_unplayable(2)
    assert m.skip(2.0, happy).track_index not in (2, 3)
    m.reset()
    assert m.update(0.0, happy).track_index == 1       # a fresh start still avoids the broken files
    for t in (0, 1):
        m.mark_unplayable(t)
    assert m.unplayable == [0, 1, 2, 3]
    assert m.update(100.0, happy).track_index in (0, 1, 2, 3)   # nothing playable left: still an answer
