"""The circumplex and timeline widgets: geometry, what lands on which pixel, bounded memory, no synchronous paint.

Pixels are read from ``widget.grab()`` under the offscreen platform (device pixel ratio 1). Nothing is written to
disk.
"""

from __future__ import annotations

import math
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("PySide6")

from PySide6.QtCore import QPointF  # noqa: E402
from PySide6.QtGui import QColor, QImage  # noqa: E402


def test_the_pinned_qt_binding_keeps_none_alive():
    """PySide6 6.12 on CPython 3.11 drops a reference to ``None`` on every ``void`` call (``update()``,
    ``setPen()``...): a live window aborts within minutes ("none_dealloc: deallocating None"). The pinned
    6.11.3 does not; this fails if a bump brings the bug back."""
    point = QPointF()
    before = sys.getrefcount(None)
    for _ in range(1000):
        point.setX(1.0)
    assert sys.getrefcount(None) >= before - 10

from moodsic_live.gui import circumplex as cx  # noqa: E402
from moodsic_live.gui import timeline as tl  # noqa: E402
from moodsic_live.gui.circumplex import CircumplexView  # noqa: E402
from moodsic_live.gui.timeline import TimelineView  # noqa: E402


# ------------------------------------------------------------------------------------------------------ helpers
def rgb(image: QImage, point: QPointF | tuple[float, float]) -> tuple[int, int, int]:
    x, y = (point.x(), point.y()) if isinstance(point, QPointF) else point
    c = image.pixelColor(int(math.floor(x)), int(math.floor(y)))
    return c.red(), c.green(), c.blue()


def near(a: tuple[int, int, int], b: QColor | tuple[int, int, int] | np.ndarray, tol: int = 8) -> bool:
    if isinstance(b, QColor):
        b = (b.red(), b.green(), b.blue())
    return all(abs(int(x) - int(y)) <= tol for x, y in zip(a, b))


def two_region_grid(n: int = 32, split: float = 0.5) -> np.ndarray:
    """Label 0 left of valence ``split``, label 1 right of it (cell centres evenly spaced over [-1, 1])."""
    centres = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    row = (centres > split).astype(np.int64)
    return np.tile(row, (n, 1))


def state(w: CircumplexView, t: float = 0.0, **kw) -> None:
    args = {"raw": None, "stable": None, "stable_sd": None, "gated": False, "segment": None}
    args.update(kw)
    w.set_state(t, **args)


@pytest.fixture
def plane(qtbot) -> CircumplexView:
    w = CircumplexView()
    qtbot.addWidget(w)
    w.resize(400, 400)
    w.set_moods(["left", "right"], np.array([[-0.5, -0.5], [0.75, -0.5]]), two_region_grid())
    return w


# ---------------------------------------------------------------------------------------------- circumplex
def test_plane_is_a_centred_square_and_maps_valence_right_arousal_up(qtbot):
    w = CircumplexView()
    qtbot.addWidget(w)
    w.resize(600, 400)
    r = w.plane_rect()
    assert r.width() == pytest.approx(r.height())
    assert r.center().x() == pytest.approx(300) and r.center().y() == pytest.approx(200)
    assert 300 < r.width() < 400  # a margin for the axis labels, not more
    centre = w.plane_to_widget(0.0, 0.0)
    assert (centre.x(), centre.y()) == pytest.approx((r.center().x(), r.center().y()))
    top_right = w.plane_to_widget(1.0, 1.0)
    assert (top_right.x(), top_right.y()) == pytest.approx((r.right(), r.top()))
    bottom_left = w.plane_to_widget(-1.0, -1.0)
    assert (bottom_left.x(), bottom_left.y()) == pytest.approx((r.left(), r.bottom()))
    clipped = w.plane_to_widget(2.5, -7.0)
    assert (clipped.x(), clipped.y()) == pytest.approx((r.right(), r.bottom()))
    assert w.minimumSizeHint().width() >= 250 and w.minimumSizeHint().height() >= 250


def test_stable_dot_is_drawn_at_its_point_and_not_mirrored(plane):
    state(plane, stable=(0.6, 0.5))
    image = plane.grab().toImage()
    assert near(rgb(image, plane.plane_to_widget(0.6, 0.5)), cx.STABLE)
    for v, a in ((-0.6, -0.5), (-0.6, 0.5), (0.6, -0.5)):
        assert not near(rgb(image, plane.plane_to_widget(v, a)), cx.STABLE, 40)


def test_gated_dot_is_hollow(plane):
    state(plane, stable=(-0.4, 0.3), gated=True)
    image = plane.grab().toImage()
    centre = plane.plane_to_widget(-0.4, 0.3)
    region_left = cx.region_palette(2)[0]
    assert near(rgb(image, centre), region_left)  # hollow: the region shows through
    r = plane._dot_radius(plane.plane_rect().width())
    ring = [rgb(image, (centre.x() + dx, centre.y())) for dx in np.arange(r - 2.0, r + 2.0, 0.5)]
    assert any(near(c, cx.STABLE, 30) for c in ring)
    state(plane, stable=(-0.4, 0.3), gated=False)
    assert near(rgb(plane.grab().toImage(), centre), cx.STABLE)


def test_out_of_range_values_are_clipped_to_the_border(plane):
    state(plane, stable=(3.0, 0.2))
    image = plane.grab().toImage()
    edge = plane.plane_to_widget(1.0, 0.2)
    assert near(rgb(image, (edge.x() - 2, edge.y())), cx.STABLE)


def test_regions_differ_across_a_boundary_and_the_boundary_is_drawn(plane):
    image = plane.grab().toImage()
    palette = cx.region_palette(2)
    assert not np.array_equal(palette[0], palette[1])
    left = rgb(image, plane.plane_to_widget(-0.2, 0.6))
    right = rgb(image, plane.plane_to_widget(0.8, 0.6))
    assert near(left, palette[0]) and near(right, palette[1])
    assert not near(left, right, 10)
    # the boundary, at valence 0.5, is a thin line lighter than both sides
    x0, x1 = plane.plane_to_widget(0.4, 0.6), plane.plane_to_widget(0.6, 0.6)
    row = [rgb(image, (x, x0.y())) for x in np.arange(x0.x(), x1.x())]
    brightest = max(row, key=sum)
    assert sum(brightest) > max(sum(left), sum(right)) + 60
    assert sum(1 for c in row if sum(c) > max(sum(left), sum(right)) + 30) <= 4  # thin


def test_unlabelled_cells_show_the_plain_plane(qtbot):
    w = CircumplexView()
    qtbot.addWidget(w)
    w.resize(300, 300)
    grid = np.full((8, 8), -1)
    grid[:, 4:] = 0
    w.set_moods(["only"], np.array([[0.5, 0.5]]), grid)
    image = w.grab().toImage()
    assert near(rgb(image, w.plane_to_widget(-0.5, -0.5)), tuple(cx.PLANE.astype(int)))
    assert near(rgb(image, w.plane_to_widget(0.6, -0.6)), cx.region_palette(1)[0])


def test_names_are_written_at_their_points(plane):
    image = plane.grab().toImage()
    at = plane.plane_to_widget(-0.5, -0.5)
    patch = [rgb(image, (at.x() + dx, at.y() + dy)) for dx in range(-12, 13) for dy in range(-5, 6)]
    region = cx.region_palette(2)[0]
    assert sum(not near(c, region, 12) for c in patch) > len(patch) // 2  # the dark name panel and its text
    empty = plane.plane_to_widget(-0.5, 0.5)
    assert near(rgb(image, empty), region)


def test_names_stay_inside_the_plane(qtbot):
    w = CircumplexView()
    qtbot.addWidget(w)
    w.resize(300, 300)
    w.set_moods(["A very long mood name & more words"], np.array([[1.0, -1.0]]), np.zeros((4, 4), np.int64))
    image = w.grab().toImage()
    r = w.plane_rect()
    outside = (r.right() + 3, r.bottom() - 6)  # right of the plane at the name's height: background only
    assert near(rgb(image, outside), cx.BACKGROUND)


def test_uncertainty_ellipse_and_segment_marker(plane):
    centre = (-0.5, 0.4)
    probe = plane.plane_to_widget(centre[0] + 0.15, centre[1])  # inside the 1-sd ellipse, outside the dot
    state(plane, stable=centre)
    without = rgb(plane.grab().toImage(), probe)
    state(plane, stable=centre, stable_sd=(0.2, 0.1))
    image = plane.grab().toImage()
    with_sd = rgb(image, probe)
    assert sum(with_sd) > sum(without) + 15  # a light, translucent fill
    outside = plane.plane_to_widget(centre[0] + 0.3, centre[1])
    assert near(rgb(image, outside), cx.region_palette(2)[0])  # the ellipse ends at 1 sd
    state(plane, stable=centre, segment=(0.2, -0.6), segment_label="Calm & Content")
    image = plane.grab().toImage()
    assert near(rgb(image, plane.plane_to_widget(0.2, -0.6)), cx.SEGMENT)


def test_trail_keeps_only_recent_points(qtbot):
    w = CircumplexView(trail_seconds=10.0)
    qtbot.addWidget(w)
    for t in range(21):
        state(w, float(t), stable=(t / 40.0, 0.0))
    times = w.trail_points()[:, 0]
    assert times.tolist() == [float(t) for t in range(10, 21)]
    state(w, 21.0, stable=None)  # no estimate: nothing joins, old points still age out
    assert w.trail_points()[:, 0].tolist() == [float(t) for t in range(11, 21)]
    state(w, 22.0, stable=(float("nan"), 0.0))
    assert len(w.trail_points()) == 9
    state(w, 3.0, stable=(0.1, 0.1))  # the clock restarted: the old trail is dropped
    assert w.trail_points()[:, 0].tolist() == [3.0]
    w.clear_trail()
    assert len(w.trail_points()) == 0


def test_trail_is_drawn_and_fades(qtbot):
    w = CircumplexView(trail_seconds=30.0)
    qtbot.addWidget(w)
    w.resize(400, 400)
    for i in range(61):  # left to right along arousal -0.5 over 30 s
        state(w, i * 0.5, stable=(-0.8 + 1.6 * i / 60, -0.5))
    image = w.grab().toImage()
    plain = rgb(image, w.plane_to_widget(0.3, -0.8))
    old = rgb(image, w.plane_to_widget(-0.7, -0.5))
    new = rgb(image, w.plane_to_widget(0.55, -0.5))
    assert sum(new) > sum(old) > sum(plain)


def test_region_image_is_cached_until_moods_or_size_change(plane, monkeypatch):
    calls = []
    real = cx.region_image

    def counting(*args):
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(cx, "region_image", counting)
    plane.grab()
    state(plane, stable=(0.1, 0.1))
    plane.grab()
    assert len(calls) == 1
    plane.resize(500, 500)
    plane.grab()
    assert len(calls) == 2 and calls[1] > calls[0]
    plane.set_moods(["a"], np.zeros((1, 2)), np.zeros((4, 4), np.int64))
    plane.grab()
    assert len(calls) == 3


def test_set_moods_rejects_bad_input(plane):
    with pytest.raises(ValueError):
        plane.set_moods(["a", "b"], np.zeros((1, 2)), np.zeros((4, 4), np.int64))
    with pytest.raises(ValueError):
        plane.set_moods(["a"], np.zeros((1, 2)), np.zeros((4, 5), np.int64))
    with pytest.raises(ValueError):
        plane.set_moods(["a"], np.zeros((1, 2)), np.zeros((4, 4)))


def test_upsampled_regions_follow_the_grid_and_are_smooth():
    grid = two_region_grid(16, split=0.0)
    labels = cx.upsample_labels(grid, 160)
    assert labels[:, :78].max() == 0 and labels[:, 82:].min() == 1
    diagonal = np.fromfunction(lambda i, j: (j > i).astype(np.int64), (16, 16))
    up = cx.upsample_labels(diagonal, 160)
    first_one = (up == 1).argmax(axis=1)[10:-10]
    steps = np.diff(first_one)
    assert steps.max() <= 3  # the staircase of 10-pixel cells is gone: the edge moves about a pixel a row


def _paint_counter(qtbot, widget_type):
    class Counting(widget_type):
        paints = 0

        def paintEvent(self, event):  # noqa: N802
            type(self).paints += 1
            super().paintEvent(event)

    w = Counting()
    qtbot.addWidget(w)
    w.resize(400, 300)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: Counting.paints > 0)
    return w, Counting


def test_set_state_never_paints_synchronously(qtbot):
    w, counting = _paint_counter(qtbot, CircumplexView)
    before = counting.paints
    for i in range(5):
        state(w, float(i), stable=(0.1 * i, 0.0))
    assert counting.paints == before
    qtbot.waitUntil(lambda: counting.paints > before)


# ------------------------------------------------------------------------------------------------ timeline
@pytest.fixture
def timeline(qtbot) -> TimelineView:
    w = TimelineView(window_s=180.0)
    qtbot.addWidget(w)
    w.resize(900, 220)
    return w


def lane_y(w: TimelineView, dim: int, value: float) -> float:
    lane = w.lane_rect(dim)
    return lane.top() + (1.0 - value) / 2.0 * lane.height()


def test_timeline_keeps_only_samples_within_the_window(qtbot):
    w = TimelineView(window_s=60.0)
    qtbot.addWidget(w)
    assert w.sample_count == 0 and w.now() is None
    for t in range(120):
        w.add_sample(float(t), (0.1, 0.2), (0.3, 0.4), (False, True))
    assert w.sample_count == 61  # t = 59 .. 119
    t, raw, stable, gated = w.samples()
    assert t[0] == 59.0 and t[-1] == 119.0
    assert raw.shape == (61, 2) and np.allclose(raw[-1], (0.1, 0.2)) and np.allclose(stable[0], (0.3, 0.4))
    assert gated[:, 1].all() and not gated[:, 0].any()
    assert w.minimumSizeHint().height() >= 140
    w.clear()
    assert w.sample_count == 0 and w.now() is None


def test_timeline_ring_buffer_stays_bounded(qtbot):
    w = TimelineView(window_s=1e6)
    qtbot.addWidget(w)
    buffers = (w._t, w._raw, w._stable, w._gated)
    for i in range(20_000):
        v = i / 20_000
        w.add_sample(i / 30.0, (v, -v), (v, -v), (i % 2 == 0, False))
    assert w.sample_count == w.capacity == 8192
    assert all(a is b for a, b in zip(buffers, (w._t, w._raw, w._stable, w._gated)))  # no reallocation
    assert w._t.shape == (w.capacity,)
    t, raw, _, gated = w.samples()
    expected = np.arange(20_000 - 8192, 20_000)
    assert np.array_equal(t, expected / 30.0)  # the newest samples, oldest first
    assert np.allclose(raw[:, 0], expected / 20_000)
    assert np.array_equal(gated[:, 0], expected % 2 == 0)


def test_timeline_rejects_time_going_backwards(timeline):
    timeline.add_sample(5.0, (0, 0), (0, 0), (False, False))
    timeline.add_sample(5.0, (0, 0), (0, 0), (False, False))  # equal is fine
    with pytest.raises(ValueError):
        timeline.add_sample(4.0, (0, 0), (0, 0), (False, False))


def test_song_change_draws_a_vertical_mark_at_its_time(timeline):
    for t in range(101):
        timeline.add_sample(float(t), (0.8, 0.8), (0.8, 0.8), (False, False))
    timeline.add_song_change(70.0, "Golden Hour")
    image = timeline.grab().toImage()
    x = timeline.time_to_x(70.0)
    assert x == pytest.approx(timeline.lane_rect(0).right() - 30.0 / 180.0 * timeline.lane_rect(0).width())
    xi = round(x)
    for dim in (0, 1):
        y = lane_y(timeline, dim, -0.5)
        assert near(rgb(image, (xi, y)), tl.SONG)
        assert not near(rgb(image, (xi + 12, y)), tl.SONG, 60)
        assert not near(rgb(image, (xi - 12, y)), tl.SONG, 60)
    # the title is written right of the mark, in the strip above the lanes
    top = int(timeline.lane_rect(0).top())
    header = [rgb(image, (hx, hy)) for hx in range(xi + 4, xi + 90) for hy in range(top)]
    assert sum(near(c, tl.SONG, 40) for c in header) > 20


def test_song_changes_are_bounded(timeline):
    for i in range(200):
        timeline.add_song_change(float(i), f"song {i}")
    assert len(timeline._songs) == tl.MAX_SONG_CHANGES
    assert timeline._songs[-1] == (199.0, "song 199")


def test_stable_lines_and_gate_shading(timeline):
    for t in range(181):
        gated_v = 20 <= t <= 60
        timeline.add_sample(float(t), (0.5, -0.5), (0.5, -0.5), (gated_v, False))
    image = timeline.grab().toImage()
    x_mid = timeline.time_to_x(100.0)
    assert near(rgb(image, (x_mid, lane_y(timeline, 0, 0.5))), tl.VALENCE, 12)
    assert near(rgb(image, (x_mid, lane_y(timeline, 1, -0.5))), tl.AROUSAL, 12)
    # shading behind the held span of valence only, away from the lines
    held = rgb(image, (timeline.time_to_x(40.0), lane_y(timeline, 0, -0.6)))
    free = rgb(image, (timeline.time_to_x(120.0), lane_y(timeline, 0, -0.6)))
    arousal_then = rgb(image, (timeline.time_to_x(40.0), lane_y(timeline, 1, 0.6)))
    assert near(free, tl.LANE, 3) and near(arousal_then, tl.LANE, 3)
    assert sum(held) > sum(free) + 20 and held[2] > held[0]  # tinted with valence's blue


def test_old_samples_are_not_drawn(qtbot):
    w = TimelineView(window_s=60.0)
    qtbot.addWidget(w)
    w.resize(600, 200)
    for t in range(100):  # +0.9 until t = 30, then -0.9: the +0.9 part is out of the window
        value = 0.9 if t < 30 else -0.9
        w.add_sample(float(t), (value, 0.0), (value, 0.0), (False, False))
    image = w.grab().toImage()
    lane = w.lane_rect(0)
    top_band = [rgb(image, (x, lane_y(w, 0, 0.9))) for x in range(int(lane.left()) + 4, int(lane.right()) - 4)]
    assert not any(near(c, tl.VALENCE, 40) for c in top_band)


def test_three_minutes_at_30_hz_paint_with_bounded_points(qtbot):
    w = TimelineView(window_s=180.0)
    qtbot.addWidget(w)
    w.resize(900, 220)
    rng = np.random.default_rng(0)
    n = 180 * 30
    for i in range(n):
        t = i / 30.0
        stable = (0.5 * math.sin(t / 20.0), 0.4 * math.cos(t / 30.0))
        raw = (stable[0] + rng.normal(0, 0.2), stable[1] + rng.normal(0, 0.2))
        w.add_sample(t, raw, stable, (bool(i // 300 % 2), False))
        if i % 1500 == 0:
            w.add_song_change(t, f"Song {i // 1500} with a fairly long title")
    assert w.sample_count == n
    image = w.grab().toImage()
    assert image.width() == 900 and image.height() == 220
    t_probe = 110.0  # between song changes (every 50 s)
    x = w.time_to_x(t_probe)
    y = lane_y(w, 0, 0.5 * math.sin(t_probe / 20.0))
    column = [rgb(image, (x, y + dy)) for dy in (-1, 0, 1)]
    assert any(near(c, tl.VALENCE, 16) for c in column)
    # the decimation behind it: at most two points per pixel column, extremes kept
    t, raw, _, _ = w.samples()
    lane = w.lane_rect(0)
    xs_in = (lane.width() - (t[-1] - t) / 180.0 * lane.width())
    xs, ys = tl.decimate_minmax(xs_in, raw[:, 0].astype(np.float64))
    assert len(xs) <= 2 * (int(lane.width()) + 1) < n
    assert ys.max() == raw[:, 0].max() and ys.min() == raw[:, 0].min()


def test_decimation_keeps_sparse_data_and_min_max_per_column():
    x = np.array([0.1, 0.3, 0.5, 0.9, 1.2, 1.4, 1.6, 2.5])
    y = np.array([3.0, -1.0, 2.0, 0.0, 5.0, 1.0, 2.0, 4.0])
    xs, ys = tl.decimate_minmax(x, y)
    assert xs.tolist() == [0.5, 0.5, 1.5, 1.5, 2.5, 2.5] and ys.tolist() == [-1.0, 3.0, 1.0, 5.0, 4.0, 4.0]
    sparse = np.array([0.0, 3.0, 7.0])
    assert tl.decimate_minmax(sparse, sparse)[0] is sparse


def test_polygon_from_xy_round_trips():
    x = np.linspace(0, 100, 1000)
    y = np.sin(x)
    poly = tl.polygon_from_xy(x, y)
    assert poly.size() == 1000
    for i in (0, 1, 500, 999):
        assert (poly.at(i).x(), poly.at(i).y()) == (x[i], y[i])
    assert tl.polygon_from_xy(np.zeros(0), np.zeros(0)).size() == 0


def test_nan_values_are_gaps_not_zero(timeline):
    for t in range(181):
        value = float("nan") if 60 <= t <= 120 else 0.5
        timeline.add_sample(float(t), (value, value), (value, value), (False, False))
    image = timeline.grab().toImage()
    x = timeline.time_to_x(90.0)
    assert near(rgb(image, (x, lane_y(timeline, 0, 0.0) + 3)), tl.LANE, 3)
    assert not near(rgb(image, (x, lane_y(timeline, 0, 0.5))), tl.VALENCE, 40)
    assert near(rgb(image, (timeline.time_to_x(30.0), lane_y(timeline, 0, 0.5))), tl.VALENCE, 12)


def test_axis_ticks_are_minutes():
    assert tl.tick_step(180.0, 10) == 60
    assert tl.tick_step(180.0, 2) == 120
    assert tl.tick_step(40.0, 10) == 5
    assert [tl.tick_label(s) for s in (0, 60, 120, 30)] == ["now", "-1 min", "-2 min", "-30 s"]


def test_empty_timeline_paints(timeline):
    image = timeline.grab().toImage()
    assert near(rgb(image, (2, 2)), tl.BACKGROUND)


def test_add_sample_never_paints_synchronously(qtbot):
    w, counting = _paint_counter(qtbot, TimelineView)
    before = counting.paints
    for i in range(5):
        w.add_sample(float(i), (0.0, 0.0), (0.1, 0.1), (False, False))
    w.add_song_change(2.0, "x")
    assert counting.paints == before
    qtbot.waitUntil(lambda: counting.paints > before)


def test_decimate_mean_gives_one_point_per_pixel_column():
    x = np.array([0.1, 0.5, 0.9, 1.2, 2.0, 2.7])
    y = np.array([1.0, 2.0, 3.0, 5.0, 0.0, 1.0])
    xs, ys = tl.decimate_mean(x, y)
    assert xs.tolist() == [0.5, 1.5, 2.5] and ys.tolist() == [2.0, 5.0, 0.5]
    one = np.array([0.2, 1.2, 2.2])
    assert tl.decimate_mean(one, y[:3])[0] is one              # one per column: unchanged


def test_now_playing_shows_the_songs_top_tags(qtbot):
    """People like to see why: the tagger's top tags of the playing song, under its mood."""
    from types import SimpleNamespace

    from moodsic_live.engine.live import NowPlaying
    from moodsic_live.gui.now_playing import NowPlayingPanel

    panel = NowPlayingPanel()
    qtbot.addWidget(panel)
    now = NowPlaying("a.ogg", "Rain", "Someone", "Calm & Tender", 12.0, 180.0, (0.1, -0.4), (0.0, -0.3),
                     tags="mellow, acoustic, female vocalists")
    status = SimpleNamespace(now=now, stable=None, dwell_left=8.0, paused=False, crossfading=False, up_next="")
    panel.show_status(status)
    assert panel.tags.text() == "sounds: mellow, acoustic, female vocalists"
    assert panel.mood.text() == "mood: Calm & Tender"
    panel.show_status(SimpleNamespace(**{**vars(status), "now": NowPlaying(*[getattr(now, f) for f in (
        "track_id", "title", "artist", "mood", "position_s", "duration_s", "segment_va", "target_va")])}))
    assert panel.tags.text() == ""  # a song without tags (features-only library) shows no line
    assert panel.why.text() == ""   # nor one chosen without the learner


def test_now_playing_says_why_this_song(qtbot):
    """"Why this song": the hybrid score's terms by their share, the whole line in the tooltip."""
    from types import SimpleNamespace

    from moodsic_live.engine.live import NowPlaying
    from moodsic_live.gui.now_playing import NowPlayingPanel
    from moodsic_live.match.hybrid import HybridWeights, Ranked, explain, reasons

    r, w = Ranked(0, 0.0, (0.9, 0.0, 0.8, 0.5)), HybridWeights(0.6, 0.0, 0.3, 0.1)
    r = Ranked(0, float(np.dot(r.terms, w.as_array())), r.terms)
    glance = reasons(r, w)
    assert glance == "fits the moment 65 % · you like it 29 % · not heard lately 6 %"   # 0.54 : 0.24 : 0.05
    panel = NowPlayingPanel()
    qtbot.addWidget(panel)
    now = NowPlaying("a.ogg", "Rain", "Someone", "Calm", 12.0, 180.0, (0.1, -0.4), (0.0, -0.3),
                     why=glance, why_detail=explain(r, w))
    panel.show_status(SimpleNamespace(now=now, stable=None, dwell_left=8.0, paused=False, crossfading=False,
                                      up_next=""))
    assert panel.why.text() == f"why: {glance}"
    assert panel.why.toolTip() == "Why this song: score 0.83 = fits the moment 0.90×0.60 + you like it 0.80×0.30 + " \
                                  "not heard lately 0.50×0.10"
