"""Emotional arcs, DTW alignment and whole-song ranking (moodsic_live.match.arcs / arc_rank / hybrid)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from moodsic_live.config import Config, TransitionWeights
from moodsic_live.errors import MoodsicError
from moodsic_live.match import arcs
from moodsic_live.match.arc_rank import ArcTable, rank_soundtracks, score_tracks
from moodsic_live.match.arcs import Arc, align, banded, cost_matrix, extract_arc, locate, transition_weights
from moodsic_live.match.hybrid import HybridWeights, combine, explain, rank, weights_for


def _walk(rng, seconds: float, hz: float = 2.0, step: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """A random V/A series like a song's (2 Hz), bounded by tanh."""
    t = np.arange(0, seconds, 1 / hz)
    return t, np.tanh(np.cumsum(rng.standard_normal((len(t), 2)) * step, axis=0))


def _arc(level, delta=None) -> Arc:
    level = np.asarray(level, float).reshape(-1, 2)
    return Arc(level, np.zeros_like(level) if delta is None else np.asarray(delta, float).reshape(-1, 2), 1.0)


# --- extraction -------------------------------------------------------------------------------

def test_extraction_resamples_smooths_and_maps_into_the_library():
    t = np.arange(0, 20, 0.5)                      # 2 Hz
    va = np.column_stack([np.where(t < 10, -0.5, 0.5), np.zeros_like(t)])
    raw = extract_arc(t, va, rate=1.0, smooth_s=1.0)
    assert len(raw) == 20 and raw.t0 == 0.0 and raw.rate == 1.0
    assert np.allclose(raw.level[:10, 0], -0.5) and np.allclose(raw.level[10:, 0], 0.5)
    smooth = extract_arc(t, va, rate=1.0, smooth_s=5.0)
    assert -0.5 < smooth.level[9, 0] < 0 < smooth.level[10, 0] < 0.5          # the step is spread over 5 s
    assert smooth.delta[10, 0] == pytest.approx((smooth.level[11, 0] - smooth.level[9, 0]) / 2 * 5)

    class Halve:  # any aligner: the video's arc is mapped into the library's space
        def apply(self, x):
            return x / 2
    assert np.allclose(extract_arc(t, va, rate=1.0, smooth_s=1.0, aligner=Halve()).level, raw.level / 2)


def test_too_short_or_empty_series_is_a_clear_error():
    with pytest.raises(MoodsicError, match=r"track deam:9: too short for an emotional arc \(2 points"):
        extract_arc([0.0, 0.5, 1.0], np.zeros((3, 2)), rate=1.0, what="track deam:9")
    with pytest.raises(MoodsicError, match="too short"):
        extract_arc([], np.zeros((0, 2)), what="video x.mp4")
    # NaN rows are dropped, not propagated
    t = np.arange(10.0)
    va = np.zeros((10, 2))
    va[3] = np.nan
    assert np.all(np.isfinite(extract_arc(t, va).level))


# --- DTW ----------------------------------------------------------------------------------------

def test_dtw_on_a_hand_computed_case():
    # video valence 0, 2; track valence 1, 1, 3 (arousal 0): C = |a - b| = [[1, 1, 3], [1, 1, 1]]
    video, track = _arc([[0, 0], [2, 0]]), _arc([[1, 0], [1, 0], [3, 0]])
    c = cost_matrix(video, track, transition_weight=0.0)
    assert np.allclose(c, [[1, 1, 3], [1, 1, 1]])
    # accumulated: D = [[1, 2, 5], [2, 2, 3]]; D[1,2] = 1 + min(D[0,1], D[0,2], D[1,1]): a tie of 2,
    # broken for the diagonal step (librosa's order): path (0,0) (0,1) (1,2), 3 over 3 steps
    mean, path = banded(c, band=10)
    assert mean == pytest.approx(1.0) and path.tolist() == [[0, 0], [0, 1], [1, 2]]
    # the transition term: C = sqrt(|level diff|^2 + lambda * w * |delta diff|^2)
    v = _arc([[0, 0], [0, 0]], delta=[[0.3, 0], [0, 0.4]])
    tr = _arc([[0.3, 0.4]], delta=[[0, 0]])
    got = cost_matrix(v, tr, transition_weight=2.0, w=np.array([1.0, 3.0]))
    assert got[:, 0] == pytest.approx([np.sqrt(0.25 + 2 * 0.09), np.sqrt(0.25 + 6 * 0.16)])


def test_with_the_custom_terms_off_it_is_librosas_plain_dtw():
    rng = np.random.default_rng(3)
    video = extract_arc(*_walk(rng, 40))
    track = extract_arc(*_walk(rng, 90))
    c = cost_matrix(video, track, transition_weight=0.0)
    assert np.allclose(c, cdist(video.level, track.level))          # Euclidean on V/A
    excerpt = track.level[:len(video)]
    D, wp = librosa.sequence.dtw(X=video.level.T, Y=excerpt.T, metric="euclidean")
    mean, path = banded(cost_matrix(video, _arc(excerpt), 0.0), band=10_000)
    assert mean * len(path) == pytest.approx(D[-1, -1]) and np.array_equal(path, wp[::-1])
    # subsequence search with unit steps equals librosa's own subsequence DTW
    D, wp = librosa.sequence.dtw(X=video.level.T, Y=track.level.T, metric="euclidean", subseq=True,
                                 step_sizes_sigma=np.array([[1, 1]]))
    start, mean_per_point = locate(c, max_stretch=1)
    assert start == wp[-1, 1] and mean_per_point * len(video) == pytest.approx(D[-1].min())


def test_compiled_ranking_gives_the_same_offsets_and_similarities_as_librosa():
    rng = np.random.default_rng(1)
    video = extract_arc(*_walk(rng, 120))
    tracks = [extract_arc(*_walk(rng, s)) for s in rng.uniform(40, 260, 25)]   # shorter and longer than the video
    w = rng.uniform(1, 2, len(video))
    s = score_tracks(video, ArcTable.of(tracks, np.arange(25)), transition_weight=1.5, w=w, band_s=15)
    for k, tr in enumerate(tracks):
        a = align(video, tr, transition_weight=1.5, w=w, band_s=15)
        assert s.offset_s[k] == pytest.approx(a.offset_s) and s.similarity[k] == pytest.approx(a.similarity, abs=1e-12)
        assert 0 < a.similarity <= 1 and (a.coverage < 1) == (len(tr) < len(video))


def test_a_time_stretched_copy_matches_its_source_best():
    rng = np.random.default_rng(7)
    songs = [_walk(rng, 240, step=0.05) for _ in range(40)]
    t, va = songs[17]
    # the video: 60..120 s of song 17, played 1.3x slower (78 s), sampled at 5 Hz like analyze
    vt = np.arange(0, 78, 0.2)
    part = np.column_stack([np.interp(60 + vt / 1.3, t, va[:, d]) for d in (0, 1)])
    video = extract_arc(vt, part)
    table = ArcTable.of([extract_arc(*s) for s in songs], np.arange(40))
    ranked = rank_soundtracks(video, table, HybridWeights(fit=0, arc=1, pref=0, novelty=0), top=3)
    assert ranked[0].track == 17
    assert 52 <= ranked[0].offset_s <= 68
    assert ranked[0].terms[1] > ranked[1].terms[1]


def test_subsequence_matching_finds_the_planted_part():
    rng = np.random.default_rng(11)
    vt, video_va = _walk(rng, 60, step=0.06)
    t, song = _walk(rng, 240, step=0.06)
    plant = (t >= 130) & (t < 190)
    song[plant] = video_va[:plant.sum()]
    a = align(extract_arc(vt, video_va), extract_arc(t, song))
    assert a.offset_s == pytest.approx(130, abs=3) and a.similarity > 0.75   # edges are smoothed into their neighbours
    assert a.path[0, 0] == 0 and a.path[-1, 0] == 59


def test_transition_terms_prefer_music_with_the_same_shift():
    # the video turns from sad to joyful at 40 s; track A makes the same turn at 35 s,
    # track B sits between the two moods (same mean level, no turn)
    t = np.arange(0, 80, 0.5)
    video = extract_arc(t, np.where((t < 40)[:, None], [-0.5, -0.5], [0.5, 0.5]))
    turn = extract_arc(t, np.where((t < 35)[:, None], [-0.4, -0.4], [0.4, 0.4]))
    flat = extract_arc(t, np.column_stack([np.linspace(-0.3, 0.3, len(t))] * 2))
    w = transition_weights(video, TransitionWeights())
    assert w.max() == TransitionWeights().sad_to_joyful and w[5] == 1.0    # weighted only around the turn
    gap = {}
    for lam in (0.0, 2.0):
        s = score_tracks(video, ArcTable.of([turn, flat], [0, 1]), transition_weight=lam, w=w)
        gap[lam] = s.similarity[0] - s.similarity[1]
    assert gap[0.0] > 0 and gap[2.0] > gap[0.0]   # the turn wins, and more so with the transition terms


def test_hybrid_ranking_follows_the_weights():
    terms = np.array([[0.9, 0.2, 0.5, 1.0],    # fits the moment
                      [0.3, 0.9, 0.5, 1.0],    # follows the arc
                      [0.5, 0.5, 0.95, 1.0]])  # liked
    assert rank(terms, HybridWeights(1, 0, 0, 0))[0].track == 0
    assert rank(terms, HybridWeights(0.2, 0.7, 0.1, 0))[0].track == 1
    assert rank(terms, HybridWeights(0.1, 0.1, 0.8, 0))[0].track == 2
    assert np.allclose(combine(terms, HybridWeights(2, 2, 0, 0)), terms[:, :2].mean(axis=1))   # normalised
    best = rank(terms, HybridWeights(0.2, 0.7, 0.1, 0))[0]
    assert explain(best, HybridWeights(0.2, 0.7, 0.1, 0)).startswith("score 0.74 = follows the arc 0.90×0.70")
    with pytest.raises(MoodsicError, match="non-negative"):
        HybridWeights(-1, 1, 0, 0).normalised()
    c = Config()
    assert weights_for(c.match.hybrid, "video").arc > weights_for(c.match.hybrid, "mirror").arc


def test_prefilter_keeps_the_planted_best_among_many():
    rng = np.random.default_rng(5)
    vt, video_va = _walk(rng, 90, step=0.06)
    songs = [_walk(rng, rng.uniform(150, 260), step=0.06) for _ in range(1500)]
    t, song = songs[900]
    plant = (t >= 40) & (t < 130)
    song[plant] = video_va[:plant.sum()]
    table = ArcTable.of([extract_arc(*s) for s in songs], np.arange(1500))
    video = extract_arc(vt, video_va)
    weights = HybridWeights(0.3, 0.7, 0, 0)
    full = rank_soundtracks(video, table, weights, top=5, prefilter=False)
    fast = rank_soundtracks(video, table, weights, top=5, prefilter=True, keep=150)
    assert full[0].track == fast[0].track == 900 and fast[0].offset_s == pytest.approx(full[0].offset_s)
    assert fast[0].score == pytest.approx(full[0].score)


def test_quadrants_are_named_around_the_centre():
    q = arcs.quadrant(np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]]))
    assert [arcs.QUADRANTS[i] for i in q] == ["joyful", "tense", "sad", "calm"]
    assert arcs.quadrant(np.array([[0.1, 0.1]]), centre=(0.2, 0.2))[0] == 2
