"""The timeline view: the last few minutes of valence and arousal, raw and stable, with the songs that played.

Design
------
* A passive widget: the window hands it estimates (``add_sample``, 5-30 Hz) and song changes
  (``add_song_change``); both only record and call ``update()``, ``paintEvent`` only draws.
* Samples live in preallocated numpy ring buffers (``capacity`` samples, 8192 by default: 4.5 minutes at 30 Hz),
  so memory is fixed however long the app runs. Song changes keep the last :data:`MAX_SONG_CHANGES`.
* The x scale is the fixed window: the right edge is the newest time ("now"), the left edge ``window_s`` earlier.
  Two lanes, valence above arousal, each span [-1, 1] with a zero line.
* Paint cost is bounded by the widget's width, not by the sample count: each series is decimated to the minimum
  and maximum of every pixel column (at most two points a column, which draws the same picture), and gate
  shading is rasterised to pixel columns before it becomes rectangles. Polygons are filled straight from numpy
  (:func:`polygon_from_xy`) instead of one ``QPointF`` per point.
* Non-finite values are gaps in a line, never drawn as zero; values outside [-1, 1] are clipped to the lane.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import shiboken6
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QWidget

BACKGROUND = QColor("#15171f")
LANE = QColor("#1c1f29")
LANE_BORDER = QColor(255, 255, 255, 40)
ZERO_LINE = QColor(255, 255, 255, 70)
GRID = QColor(255, 255, 255, 22)
AXIS_TEXT = QColor("#aab0c0")
VALENCE = QColor("#5ec8f2")
AROUSAL = QColor("#f27ec0")
SONG = QColor("#ffa040")
SONG_OLD = QColor("#c98a4b")  # the title of the song that started before the window
WAITING = QColor("#6f7587")
RAW_ALPHA = 0.32
GATE_ALPHA = 0.16
MAX_SONG_CHANGES = 64
DEFAULT_CAPACITY = 8192
_TICK_STEPS_S = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


def polygon_from_xy(x: np.ndarray, y: np.ndarray) -> QPolygonF:
    """A ``QPolygonF`` holding the points (x[i], y[i]), written straight into its buffer.

    The polygon is allocated in one call from a list repeating one ``QPointF``, then its storage is reached through
    the address of ``data()``'s first point, as pyqtgraph does. That the address really is the polygon's storage
    is checked on the first point before anything more is written; a per-point copy is the fallback. About ten
    times faster than building one ``QPointF`` per point."""
    n = int(len(x))
    if n == 0:
        return QPolygonF()
    xy = np.empty((n, 2), np.float64)
    xy[:, 0] = x
    xy[:, 1] = y
    poly = QPolygonF([QPointF()] * n)
    probe = (float(xy[0, 0]) + 0.25, float(xy[0, 1]) - 0.25)
    np.frombuffer(shiboken6.VoidPtr(poly.data(), 16, True), np.float64)[:] = probe
    head = poly.at(0)
    if head.x() == probe[0] and head.y() == probe[1]:
        np.frombuffer(shiboken6.VoidPtr(poly.data(), 16 * n, True), np.float64)[:] = xy.ravel()
        return poly
    return QPolygonF(list(map(QPointF, xy[:, 0].tolist(), xy[:, 1].tolist())))  # pragma: no cover


def decimate_minmax(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most two points per integer pixel column of ``x`` (non-decreasing): the column's minimum then maximum
    of ``y``, at the column's centre. Inputs with at most two points per column come back unchanged."""
    n = len(x)
    if n == 0:
        return x, y
    cols = np.floor(x).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
    if n <= 2 * len(starts):
        return x, y
    lo = np.minimum.reduceat(y, starts)
    hi = np.maximum.reduceat(y, starts)
    xs = np.repeat(cols[starts] + 0.5, 2)
    ys = np.column_stack((lo, hi)).ravel()
    return xs, ys


def decimate_mean(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One point per integer pixel column of ``x`` (non-decreasing): the column's mean of ``y`` at the column's
    centre — for a smooth series (the stable estimate), which min/max would only thicken."""
    n = len(x)
    if n == 0:
        return x, y
    cols = np.floor(x).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
    if n == len(starts):
        return x, y
    sums = np.add.reduceat(y, starts)
    counts = np.diff(np.r_[starts, n])
    return cols[starts] + 0.5, sums / counts


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the True runs of a 1-D bool array."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def tick_step(window_s: float, max_ticks: int) -> int:
    """Seconds between x-axis labels: the smallest step in :data:`_TICK_STEPS_S` giving at most ``max_ticks``
    labels (whole minutes once the window spans two minutes or more)."""
    for step in _TICK_STEPS_S:
        if window_s >= 120.0 and step < 60:
            continue
        if window_s / step <= max(1, max_ticks):
            return step
    return _TICK_STEPS_S[-1]


def tick_label(seconds_ago: int) -> str:
    if seconds_ago == 0:
        return "now"
    if seconds_ago % 60 == 0:
        return f"-{seconds_ago // 60} min"
    return f"-{seconds_ago} s"


def draw_lane(p: QPainter, lane: QRectF, name: str, colour: QColor, font: QFont, small: QFont, gutter: QRectF,
              name_inset: float = 0.0) -> None:
    """One V/A lane: its background and border, the dashed zero line, the dimension's name in the
    ``gutter`` on its left and, where the lane is tall enough, its +1 / −1 ends."""
    fm, sm = QFontMetricsF(font), QFontMetricsF(small)
    p.fillRect(lane, LANE)
    p.setPen(QPen(LANE_BORDER, 1.0))
    p.drawRect(lane)
    p.setPen(QPen(ZERO_LINE, 1.0, Qt.PenStyle.DashLine))
    y0 = round(lane.center().y()) + 0.5
    p.drawLine(QPointF(lane.left(), y0), QPointF(lane.right(), y0))
    p.setFont(font)
    p.setPen(colour)
    p.drawText(gutter.adjusted(name_inset, 0, 0, 0), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
               name)
    if lane.height() >= fm.height() + 2.2 * sm.height():
        p.setFont(small)
        p.setPen(AXIS_TEXT)
        flags = int(Qt.AlignmentFlag.AlignRight)
        p.drawText(QRectF(gutter.left(), lane.top(), gutter.width(), sm.height()),
                   flags | int(Qt.AlignmentFlag.AlignTop), "+1")
        p.drawText(QRectF(gutter.left(), lane.bottom() - sm.height(), gutter.width(), sm.height()),
                   flags | int(Qt.AlignmentFlag.AlignBottom), "\u22121")


class TimelineView(QWidget):
    """Valence and arousal over the last ``window_s`` seconds, with gate shading and song changes."""

    def __init__(self, parent: QWidget | None = None, *, window_s: float = 180.0,
                 capacity: int = DEFAULT_CAPACITY) -> None:
        super().__init__(parent)
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity}")
        self._window_s = float(window_s)
        self._cap = int(capacity)
        self._t = np.zeros(self._cap, np.float64)
        self._raw = np.zeros((self._cap, 2), np.float32)
        self._stable = np.zeros((self._cap, 2), np.float32)
        self._gated = np.zeros((self._cap, 2), bool)
        self._next = 0  # where the next sample goes
        self._count = 0  # samples stored (<= capacity)
        self._songs: deque[tuple[float, str]] = deque(maxlen=MAX_SONG_CHANGES)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumHeight(140)
        self.setMinimumWidth(240)

    # ----------------------------------------------------------------------------------------------- inputs
    def add_sample(self, t: float, raw: tuple[float, float], stable: tuple[float, float],
                   gated: tuple[bool, bool]) -> None:
        """One estimate at time ``t`` (seconds, non-decreasing): raw and stable (valence, arousal), and whether
        each dimension's gate held. A ``t`` earlier than the newest sample raises ``ValueError`` (call
        :meth:`clear` when the clock restarts)."""
        t = float(t)
        if self._count and t < self._t[(self._next - 1) % self._cap]:
            raise ValueError(f"sample time {t} is earlier than the newest sample; clear() first")
        i = self._next
        self._t[i] = t
        self._raw[i] = raw
        self._stable[i] = stable
        self._gated[i] = gated
        self._next = (i + 1) % self._cap
        self._count = min(self._count + 1, self._cap)
        self.update()

    def add_song_change(self, t: float, title: str) -> None:
        """A song started at time ``t`` (the last :data:`MAX_SONG_CHANGES` are kept)."""
        self._songs.append((float(t), str(title)))
        self.update()

    def clear(self) -> None:
        self._next = 0
        self._count = 0
        self._songs.clear()
        self.update()

    # ---------------------------------------------------------------------------------------------- queries
    @property
    def window_s(self) -> float:
        return self._window_s

    @property
    def capacity(self) -> int:
        return self._cap

    @property
    def sample_count(self) -> int:
        """Samples within the window (not older than ``window_s`` before the newest)."""
        if self._count == 0:
            return 0
        t = self._ordered_times()
        return int(len(t) - np.searchsorted(t, t[-1] - self._window_s, side="left"))

    def now(self) -> float | None:
        """The time at the right edge: the newest sample or song change; None before either."""
        times = []
        if self._count:
            times.append(float(self._t[(self._next - 1) % self._cap]))
        if self._songs:
            times.append(max(t for t, _ in self._songs))
        return max(times) if times else None

    def samples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the samples within the window, oldest first: t (k,), raw (k, 2), stable (k, 2), gated (k, 2)."""
        order = self._order()
        t = self._t[order]
        keep = slice(int(np.searchsorted(t, t[-1] - self._window_s, side="left")) if len(t) else 0, None)
        return t[keep], self._raw[order][keep], self._stable[order][keep], self._gated[order][keep]

    def _order(self) -> np.ndarray:
        """Ring indices of the stored samples, oldest first."""
        start = (self._next - self._count) % self._cap
        return (start + np.arange(self._count)) % self._cap

    def _ordered_times(self) -> np.ndarray:
        start = (self._next - self._count) % self._cap
        if start + self._count <= self._cap:
            return self._t[start:start + self._count]
        return np.concatenate((self._t[start:], self._t[:self._next]))

    # --------------------------------------------------------------------------------------------- geometry
    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(720, 220)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(240, 140)

    def _font(self, scale: float = 1.0, *, bold: bool = False) -> QFont:
        font = QFont(self.font())
        font.setPointSizeF(max(7.5, max(8.0, min(self.height() / 24.0, self.width() / 60.0)) * scale))
        font.setBold(bold)
        return font

    def _layout(self) -> tuple[QRectF, QRectF, QRectF, float]:
        """(valence lane, arousal lane, x-axis strip, header height) in widget pixels."""
        fm = QFontMetricsF(self._font())
        header = fm.height() + 6.0
        axis = QFontMetricsF(self._font(0.9)).height() + 6.0
        gutter = fm.horizontalAdvance("arousal") + 14.0
        right = 10.0
        gap = max(4.0, fm.height() * 0.35)
        left = gutter
        width = max(10.0, self.width() - left - right)
        lanes_h = max(20.0, self.height() - header - axis - gap)
        lane_h = lanes_h / 2.0
        valence = QRectF(left, header, width, lane_h)
        arousal = QRectF(left, header + lane_h + gap, width, lane_h)
        strip = QRectF(left, arousal.bottom(), width, axis)
        return valence, arousal, strip, header

    def lane_rect(self, dimension: int) -> QRectF:
        """The lane of valence (0) or arousal (1) in widget pixels."""
        return self._layout()[dimension]

    def time_to_x(self, t: float) -> float:
        """Widget x of time ``t`` (the right edge is :meth:`now`)."""
        lane = self._layout()[0]
        now = self.now()
        now = t if now is None else now
        return lane.right() - (now - float(t)) / self._window_s * lane.width()

    # --------------------------------------------------------------------------------------------- painting
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        try:
            p.setRenderHint(QPainter.RenderHint.TextAntialiasing)
            p.fillRect(self.rect(), BACKGROUND)
            valence, arousal, strip, header = self._layout()
            now = self.now()
            self._draw_lanes(p, (valence, arousal))
            self._draw_axis(p, valence, arousal, strip)
            if now is None:
                font = self._font()
                fm = QFontMetricsF(font)
                text = "waiting for estimates\u2026"
                w, h = fm.horizontalAdvance(text) + fm.height(), fm.height() * 1.4
                centre = QPointF(valence.center().x(), (valence.bottom() + arousal.top()) / 2.0)
                box = QRectF(centre.x() - w / 2.0, centre.y() - h / 2.0, w, h)
                p.fillRect(box, BACKGROUND)
                p.setFont(font)
                p.setPen(WAITING)
                p.drawText(box, int(Qt.AlignmentFlag.AlignCenter), text)
                return
            if self._count:
                order = self._order()
                t = self._t[order]
                first = int(np.searchsorted(t, now - self._window_s, side="left"))
                first = max(0, first - 1)  # one sample beyond the left edge, so lines reach it
                t = t[first:]
                idx = order[first:]
                x = valence.right() - (now - t) / self._window_s * valence.width()
                for dim, lane, colour in ((0, valence, VALENCE), (1, arousal, AROUSAL)):
                    self._draw_series(p, lane, colour, x, self._raw[idx, dim], self._stable[idx, dim],
                                      self._gated[idx, dim])
            self._draw_songs(p, now, valence, arousal, header)
        finally:
            p.end()

    def _draw_lanes(self, p: QPainter, lanes: tuple[QRectF, QRectF]) -> None:
        font, small = self._font(), self._font(0.8)
        for lane, name, colour in ((lanes[0], "valence", VALENCE), (lanes[1], "arousal", AROUSAL)):
            draw_lane(p, lane, name, colour, font, small, QRectF(0.0, lane.top(), lane.left() - 6.0, lane.height()),
                      name_inset=4.0)

    def _draw_axis(self, p: QPainter, valence: QRectF, arousal: QRectF, strip: QRectF) -> None:
        font = self._font(0.9)
        fm = QFontMetricsF(font)
        p.setFont(font)
        max_ticks = int(strip.width() // (fm.horizontalAdvance("-10 min") * 1.8))
        step = tick_step(self._window_s, max_ticks)
        ago = 0
        while ago <= self._window_s + 1e-9:
            x = valence.right() - ago / self._window_s * valence.width()
            if 0 < ago:
                p.setPen(QPen(GRID, 1.0))
                xl = round(x) + 0.5
                p.drawLine(QPointF(xl, valence.top() + 1), QPointF(xl, valence.bottom() - 1))
                p.drawLine(QPointF(xl, arousal.top() + 1), QPointF(xl, arousal.bottom() - 1))
            label = tick_label(ago)
            w = fm.horizontalAdvance(label) + 2.0
            left = min(max(x - w / 2.0, strip.left() - 4.0), strip.right() - w)
            p.setPen(AXIS_TEXT)
            p.drawText(QRectF(left, strip.top() + 2.0, w, fm.height()), int(Qt.AlignmentFlag.AlignCenter), label)
            ago += step

    def _draw_series(self, p: QPainter, lane: QRectF, colour: QColor, x: np.ndarray, raw: np.ndarray,
                     stable: np.ndarray, gated: np.ndarray) -> None:
        p.save()
        p.setClipRect(lane.adjusted(1, 1, -1, -1))
        self._draw_gates(p, lane, colour, x, gated)
        raw_colour = QColor(colour)
        raw_colour.setAlphaF(RAW_ALPHA)
        bold = max(2.0, self.height() / 90.0)
        underlay = QColor(BACKGROUND)
        underlay.setAlphaF(0.75)
        # The raw line: min/max per column, 1 px, not antialiased (its jitter is the point, and stroking
        # antialiased zig-zags was most of the paint); the stable line: one mean per column, antialiased.
        for values, pens, decimate, smooth in (
                (raw, (QPen(raw_colour, 1.0),), decimate_minmax, False),
                (stable, (QPen(underlay, bold + 2.5), QPen(colour, bold)), decimate_mean, True)):
            p.setRenderHint(QPainter.RenderHint.Antialiasing, smooth)
            y = lane.top() + (1.0 - np.clip(values.astype(np.float64), -1.0, 1.0)) * 0.5 * lane.height()
            polygons = []
            for s, e in zip(*_runs(np.isfinite(y))):
                xs, ys = decimate(x[s:e] - lane.left(), y[s:e])
                if len(xs) == 1:
                    xs, ys = np.r_[xs, xs + 0.01], np.r_[ys, ys]  # a lone point still shows as a dot
                polygons.append(polygon_from_xy(xs + lane.left(), ys))
            for pen in pens:  # the stable line over a dark underlay, so it stands out of the raw line's band
                pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
                pen.setCapStyle(Qt.PenCapStyle.RoundCap)
                p.setPen(pen)
                for polygon in polygons:
                    p.drawPolyline(polygon)
        p.restore()

    def _draw_gates(self, p: QPainter, lane: QRectF, colour: QColor, x: np.ndarray, gated: np.ndarray) -> None:
        if not gated.any():
            return
        width = int(np.ceil(lane.width()))
        cols = np.floor(x - lane.left()).astype(np.int64)
        # sample i held from its time to the next sample's (the newest: to the right edge)
        ends = np.r_[cols[1:], width]
        starts = cols[gated]
        stops = np.maximum(ends[gated], starts + 1)
        starts = np.clip(starts, 0, width)
        stops = np.clip(stops, 0, width)
        cover = np.zeros(width + 1, np.int32)
        np.add.at(cover, starts, 1)
        np.add.at(cover, stops, -1)
        held = np.cumsum(cover[:-1]) > 0
        shade = QColor(colour)
        shade.setAlphaF(GATE_ALPHA)
        for s, e in zip(*_runs(held)):
            p.fillRect(QRectF(lane.left() + s, lane.top(), float(e - s), lane.height()), shade)

    def _draw_songs(self, p: QPainter, now: float, valence: QRectF, arousal: QRectF, header: float) -> None:
        if not self._songs:
            return
        left_t = now - self._window_s
        songs = sorted(self._songs, key=lambda s: s[0])
        visible = [(t, title) for t, title in songs if left_t <= t <= now]
        before = [title for t, title in songs if t < left_t]
        font = self._font(0.9)
        fm = QFontMetricsF(font)
        p.setFont(font)
        xs = [valence.right() - (now - t) / self._window_s * valence.width() for t, _ in visible]
        mark_w = max(2, round(self.height() / 110.0))
        top, bottom = 2, int(round(arousal.bottom()))
        text_h = fm.height()
        text_y = (header - text_h) / 2.0
        pad = fm.height() * 0.3
        # titles are laid out right to left: each goes right of its mark, up to the next title; one with too
        # little room there (the newest, near "now") goes left of its mark and takes at most half the gap
        min_room = fm.height() * 4.0
        next_start = valence.right() + 8.0
        for k in range(len(visible) - 1, -1, -1):
            x, title = xs[k], visible[k][1]
            xi = int(round(x))
            p.fillRect(QRect(xi - mark_w // 2, top, mark_w, bottom - top), SONG)
            want = fm.horizontalAdvance(title) + 2.0
            room_right = next_start - pad - (x + pad)
            prev_x = xs[k - 1] if k > 0 else (x if before else valence.left() - pad)
            room_left = (x - prev_x) / 2.0 - pad if k > 0 else x - prev_x - 2.0 * pad
            p.setPen(SONG)
            if room_right >= min(want, min_room) or room_right >= room_left:
                width = max(0.0, room_right)
                box = QRectF(x + pad, text_y, width, text_h)
                flags = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
                next_start = x
            else:
                width = min(want, room_left)
                box = QRectF(x - pad - width, text_y, width, text_h)
                flags = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                next_start = box.left()
            text = fm.elidedText(title, Qt.TextElideMode.ElideRight, width)
            if text:
                p.drawText(box, flags, text)
        if before:  # the song already playing when the window begins: its title at the left edge, dimmer
            avail = next_start - pad - (valence.left() + pad)
            if avail > fm.horizontalAdvance("\u25c2 W\u2026"):
                p.setPen(SONG_OLD)
                text = fm.elidedText("\u25c2 " + before[-1], Qt.TextElideMode.ElideRight, avail)
                p.drawText(QRectF(valence.left() + pad, text_y, avail, text_h),
                           int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), text)
