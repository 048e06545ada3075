"""The circumplex view: the room's mood as a point on the valence/arousal plane, over the library's mood regions.

Design
------
* A passive widget: the window hands it the library's moods (``set_moods``, rarely) and the newest engine state
  (``set_state``, 5-30 Hz); ``set_state`` only records and calls ``update()``, ``paintEvent`` only draws.
* The plane is a square centred in the widget (valence right, arousal up, both [-1, 1]); the axis labels live in a
  margin around it. Everything is sized from the widget's short side, fonts included (point size
  ``max(8, side / 40)``), so the same widget reads well in a small panel and full-screen in a kiosk.
* Mood regions come as a coarse label grid. They are painted into one cached ``QImage`` at the plane's pixel size
  (capped at :data:`MAX_REGION_PX` and scaled when drawn), rebuilt only after ``set_moods`` or a resize. The
  image is upsampled smoothly: each label's indicator is lightly smoothed on the grid and interpolated
  bilinearly, and every pixel takes the largest, so region boundaries follow the grid's contour instead of its
  cell staircase (a region of a single cell may vanish). Boundaries are the pixels whose label differs from a
  neighbour's.
* Region colours are pastels blended into the dark plane, so light text, the white estimate dot and the orange
  music marker stay the brightest things on screen.
* The trail of stable estimates is a bounded deque (at most :data:`MAX_TRAIL_POINTS` points, and none older than
  ``trail_seconds`` before the newest state); it is drawn as a few polylines whose opacity falls with age, so
  paint cost stays a handful of calls however many points it holds.
* Values outside [-1, 1] are clipped to the plane's border; non-finite values are not drawn.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import (QBrush, QColor, QFont, QFontMetricsF, QImage, QPainter, QPaintEvent, QPen, QPixmap,
                           QPolygonF)
from PySide6.QtWidgets import QWidget

from moodsic_live.gui.timeline import polygon_from_xy

Point = tuple[float, float]

BACKGROUND = QColor("#15171f")
PLANE = np.array([0x1d, 0x21, 0x2c], np.float64)  # the plane where no region is labelled
PLANE_BORDER = QColor(255, 255, 255, 70)
AXIS = QColor(255, 255, 255, 95)
AXIS_LABEL = QColor("#d3d7e2")
CAPTION = QColor("#8d93a5")
PANEL = QColor(0, 0, 0, 150)  # translucent dark background behind text on the plane
NAME_TEXT = QColor("#f1f2f6")
STABLE = QColor(248, 248, 242)
OUTLINE = QColor(16, 17, 24)
RAW = QColor(255, 255, 255, 130)
TRAIL = QColor(225, 235, 255)
UNCERTAINTY_FILL = QColor(255, 255, 255, 36)
UNCERTAINTY_LINE = QColor(255, 255, 255, 110)
SEGMENT = QColor("#ffa040")
HELD_TEXT = QColor("#ffe08a")

# Soft hues, one per region (cycled, lighter each round, past the end); blended into PLANE by REGION_ALPHA.
PASTELS = ("#7cc6f4", "#ff9e8f", "#9be08a", "#c49cff", "#ffd27a", "#6fe0d6", "#ff8fc8", "#e0ea8c",
           "#9fb4ff", "#ffb88a", "#8ff0b4", "#f0a6ff")
REGION_ALPHA = 0.40
BOUNDARY_RGB = np.array([236, 238, 246], np.float64)
BOUNDARY_ALPHA = 0.55
MAX_REGION_PX = 900  # the region image's largest side; larger planes draw it scaled (smoothly)
MAX_TRAIL_POINTS = 4096
_TRAIL_BUCKETS = 12  # opacity steps of the trail


def pastel(index: int) -> QColor:
    """The undiluted pastel of region ``index`` (``index >= 0``)."""
    colour = QColor(PASTELS[index % len(PASTELS)])
    rounds = index // len(PASTELS)
    return colour.lighter(100 + 8 * rounds) if rounds else colour


def region_palette(m: int) -> np.ndarray:
    """(m + 1, 3) uint8 RGB of what the plane shows for labels 0..m-1, then for -1 (no region)."""
    rgb = np.empty((m + 1, 3), np.float64)
    for j in range(m):
        c = pastel(j)
        rgb[j] = (1 - REGION_ALPHA) * PLANE + REGION_ALPHA * np.array([c.red(), c.green(), c.blue()], np.float64)
    rgb[m] = PLANE
    return np.rint(rgb).astype(np.uint8)


def _smooth3(a: np.ndarray) -> np.ndarray:
    """[1, 2, 1] / 4 along axis 0, edges repeated: rounds the grid's cell staircase before upsampling."""
    if a.shape[0] < 3:
        return a
    padded = np.concatenate((a[:1], a, a[-1:]))
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


def upsample_labels(label_grid: np.ndarray, size: int) -> np.ndarray:
    """(size, size) labels for pixel centres of a square showing ``label_grid`` (n, n) whose cell centres are
    evenly spaced over it. Each label's indicator is smoothed ([1, 2, 1] / 4 each way) and interpolated
    bilinearly; a pixel takes the largest."""
    grid = np.asarray(label_grid)
    n = grid.shape[0]
    u = np.clip((np.arange(size) + 0.5) * (n / size) - 0.5, 0.0, n - 1.0)
    i0 = np.minimum(np.floor(u).astype(np.intp), max(n - 2, 0))
    i1 = np.minimum(i0 + 1, n - 1)
    f = (u - i0).astype(np.float32)
    g = 1.0 - f
    best = np.full((size, size), -1.0, np.float32)
    out = np.full((size, size), -1, np.int32)
    for label in np.unique(grid):
        ind = _smooth3(_smooth3((grid == label).astype(np.float32)).T).T
        rows = ind[i0] * g[:, None] + ind[i1] * f[:, None]  # (size, n)
        value = rows[:, i0] * g[None, :] + rows[:, i1] * f[None, :]  # (size, size)
        better = value > best
        best[better] = value[better]
        out[better] = label
    return out


def boundary_mask(labels: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Pixels whose label differs from their right or lower neighbour, grown to ``thickness`` pixels."""
    mask = np.zeros(labels.shape, bool)
    horizontal = labels[:, 1:] != labels[:, :-1]
    vertical = labels[1:, :] != labels[:-1, :]
    mask[:, :-1] |= horizontal
    mask[:-1, :] |= vertical
    for _ in range(thickness - 1):
        grown = mask.copy()
        grown[:, 1:] |= mask[:, :-1]
        grown[1:, :] |= mask[:-1, :]
        mask = grown
    return mask


def region_image(label_grid: np.ndarray, m: int, size: int) -> QImage:
    """The plane's region picture, ``size`` x ``size`` pixels (RGB32), boundaries included."""
    labels = upsample_labels(label_grid, size)
    labels = np.where((labels >= 0) & (labels < m), labels, m)  # -1 and unknown labels: no region
    rgb = region_palette(m)[labels].astype(np.float64)
    edges = boundary_mask(labels, max(1, round(size / 450)))
    rgb[edges] = (1 - BOUNDARY_ALPHA) * rgb[edges] + BOUNDARY_ALPHA * BOUNDARY_RGB
    rgba = np.empty((size, size, 4), np.uint8)
    rgba[..., :3] = np.rint(rgb)
    rgba[..., 3] = 255
    image = QImage(rgba.data, size, size, 4 * size, QImage.Format.Format_RGBA8888)
    return image.copy()  # own the pixels: the numpy buffer dies with this function


def _finite_point(p: Point | None) -> Point | None:
    if p is None:
        return None
    v, a = float(p[0]), float(p[1])
    return (v, a) if math.isfinite(v) and math.isfinite(a) else None


def _split_name(name: str) -> str:
    """A long "A & B" name on two lines ("A &" / "B")."""
    head, sep, tail = name.partition(" & ")
    return f"{head} &\n{tail}" if sep else name


class CircumplexView(QWidget):
    """The valence/arousal plane with the library's mood regions, the estimate, its trail and the music."""

    def __init__(self, parent: QWidget | None = None, *, trail_seconds: float = 30.0) -> None:
        super().__init__(parent)
        if not trail_seconds > 0:
            raise ValueError(f"trail_seconds must be positive, got {trail_seconds}")
        self._trail_seconds = float(trail_seconds)
        self._names: list[str] = []
        self._name_points = np.zeros((0, 2), np.float64)
        self._label_grid: np.ndarray | None = None
        self._regions: QImage | None = None  # cache; None = rebuild at the next paint
        self._t = 0.0
        self._raw: Point | None = None
        self._stable: Point | None = None
        self._stable_sd: Point | None = None
        self._gated = False
        self._segment: Point | None = None
        self._segment_label = ""
        self._trail: deque[tuple[float, float, float]] = deque(maxlen=MAX_TRAIL_POINTS)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(200, 200)
        self._static: QPixmap | None = None   # background, regions, axes, names: drawn once per size/moods

    # ----------------------------------------------------------------------------------------------- inputs
    def set_moods(self, names: Sequence[str], name_points: np.ndarray, label_grid: np.ndarray) -> None:
        """The library's moods: ``names[j]`` written at ``name_points[j]`` (valence, arousal), and an (n, n)
        grid of labels 0..m-1 (or -1 = none) sampled on the plane, row 0 at arousal +1, column 0 at valence -1."""
        points = np.asarray(name_points, np.float64).reshape(-1, 2)
        grid = np.asarray(label_grid)
        if len(names) != points.shape[0]:
            raise ValueError(f"{len(names)} names but {points.shape[0]} name points")
        if grid.ndim != 2 or grid.shape[0] != grid.shape[1] or grid.shape[0] < 1:
            raise ValueError(f"label_grid must be a square (n, n) array, got shape {grid.shape}")
        if not np.issubdtype(grid.dtype, np.integer):
            raise ValueError(f"label_grid must hold integer labels, got {grid.dtype}")
        self._names = [str(n) for n in names]
        self._name_points = points.copy()
        self._label_grid = grid.astype(np.int32, copy=True)
        self._regions = None
        self._static = None
        self.update()

    def set_state(self, t: float, *, raw: Point | None, stable: Point | None, stable_sd: Point | None,
                  gated: bool, segment: Point | None, segment_label: str = "") -> None:
        """The newest engine state at time ``t`` (seconds). ``stable`` joins the trail; trail points older than
        ``trail_seconds`` before ``t`` (or later than ``t``: a restarted clock) are dropped."""
        t = float(t)
        self._t = t
        self._raw = _finite_point(raw)
        self._stable = _finite_point(stable)
        self._stable_sd = _finite_point(stable_sd)
        self._gated = bool(gated)
        self._segment = _finite_point(segment)
        self._segment_label = segment_label or ""
        trail = self._trail
        if trail and trail[-1][0] > t:
            trail.clear()
        while trail and trail[0][0] < t - self._trail_seconds:
            trail.popleft()
        if self._stable is not None:
            trail.append((t, self._stable[0], self._stable[1]))
        self.update()

    def clear_trail(self) -> None:
        self._trail.clear()
        self.update()

    @property
    def trail_seconds(self) -> float:
        return self._trail_seconds

    def trail_points(self) -> np.ndarray:
        """(k, 3) copy of the trail: time, valence, arousal, oldest first."""
        return np.array(self._trail, np.float64).reshape(-1, 3)

    # --------------------------------------------------------------------------------------------- geometry
    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(420, 420)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(260, 260)

    def _font_points(self) -> float:
        return max(8.0, min(self.width(), self.height()) / 40.0)

    def _font(self, scale: float = 1.0, *, bold: bool = False) -> QFont:
        font = QFont(self.font())
        font.setPointSizeF(max(7.5, self._font_points() * scale))
        font.setBold(bold)
        return font

    def plane_rect(self) -> QRectF:
        """The square plane in widget pixels (centred; a margin around it holds the axis labels)."""
        margin = QFontMetricsF(self._font()).height() * 1.6 + 4.0
        side = max(10.0, min(self.width(), self.height()) - 2.0 * margin)
        return QRectF((self.width() - side) / 2.0, (self.height() - side) / 2.0, side, side)

    def plane_to_widget(self, valence: float, arousal: float) -> QPointF:
        """Widget pixels of a plane point (valence right, arousal up); values are clipped to [-1, 1]."""
        r = self.plane_rect()
        v = min(1.0, max(-1.0, float(valence)))
        a = min(1.0, max(-1.0, float(arousal)))
        return QPointF(r.left() + (v + 1.0) * 0.5 * r.width(), r.top() + (1.0 - a) * 0.5 * r.height())

    # --------------------------------------------------------------------------------------------- painting
    def _region_image(self, plane: QRectF) -> QImage | None:
        if self._label_grid is None:
            return None
        dpr = self.devicePixelRatioF()
        size = int(min(MAX_REGION_PX, max(8, round(plane.width() * dpr))))
        if self._regions is None or self._regions.width() != size:  # new moods, or resized
            self._regions = region_image(self._label_grid, len(self._names), size)
        return self._regions

    def _static_layer(self, plane: QRectF) -> QPixmap:
        """Everything that changes only with the size or the moods, rendered once into a pixmap (the name
        labels' rounded panels were most of a paint); each paint blits it and draws the estimate on top."""
        dpr = self.devicePixelRatioF()
        if self._static is not None and self._static.size() == self.size() * dpr:
            return self._static
        pixmap = QPixmap(self.size() * dpr)
        pixmap.setDevicePixelRatio(dpr)
        p = QPainter(pixmap)
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setRenderHint(QPainter.RenderHint.TextAntialiasing)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.fillRect(self.rect(), BACKGROUND)
            image = self._region_image(plane)
            if image is not None:
                p.drawImage(plane, image)
            else:
                p.fillRect(plane, QColor(*PLANE.astype(int)))
            self._draw_axes(p, plane)
            self._draw_names(p, plane)
            self._draw_axis_labels(p, plane)
        finally:
            p.end()
        self._static = pixmap
        return pixmap

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange, QEvent.Type.PaletteChange):
            self._static = None          # the names are written in the widget's font
        super().changeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        try:
            plane = self.plane_rect()
            side = plane.width()
            p.drawPixmap(0, 0, self._static_layer(plane))
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setRenderHint(QPainter.RenderHint.TextAntialiasing)
            p.save()
            p.setClipRect(plane.adjusted(-side * 0.03, -side * 0.03, side * 0.03, side * 0.03))
            self._draw_uncertainty(p, plane)
            self._draw_trail(p, side)
            self._draw_raw(p, side)
            self._draw_segment(p, plane)
            self._draw_stable(p, plane)
            p.restore()
        finally:
            p.end()

    def _draw_axes(self, p: QPainter, plane: QRectF) -> None:
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(PLANE_BORDER, 1.0))
        p.drawRect(plane)
        p.setPen(QPen(AXIS, max(1.0, plane.width() / 400.0)))
        centre = plane.center()
        p.drawLine(QPointF(plane.left(), centre.y()), QPointF(plane.right(), centre.y()))
        p.drawLine(QPointF(centre.x(), plane.top()), QPointF(centre.x(), plane.bottom()))

    def _draw_axis_labels(self, p: QPainter, plane: QRectF) -> None:
        font = self._font()
        fm = QFontMetricsF(font)
        gap = fm.height() * 0.25 + 2.0
        p.setFont(font)
        p.setPen(AXIS_LABEL)
        h = fm.height()
        top = QRectF(plane.left(), plane.top() - gap - h, plane.width(), h)
        bottom = QRectF(plane.left(), plane.bottom() + gap, plane.width(), h)
        p.drawText(top, int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom), "excited")
        p.drawText(bottom, int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop), "calm")
        # "pleasant" reads top to bottom on the right, "unpleasant" bottom to top on the left
        for label, x, angle in (("pleasant", plane.right() + gap + h, 90.0),
                                ("unpleasant", plane.left() - gap - h, -90.0)):
            p.save()
            p.translate(x, plane.center().y())
            p.rotate(angle)
            box = QRectF(-plane.height() / 2.0, 0.0, plane.height(), h)
            p.drawText(box, int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop), label)
            p.restore()
        small = self._font(0.78)
        p.setFont(small)
        p.setPen(CAPTION)
        sh = QFontMetricsF(small).height()
        p.drawText(QRectF(plane.left(), plane.bottom() + gap + (h - sh) / 2.0, plane.width(), sh),
                   int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), "valence \u2192")
        p.drawText(QRectF(plane.left(), plane.top() - gap - h + (h - sh) / 2.0, plane.width(), sh),
                   int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), "\u2191 arousal")

    def _text_panel(self, p: QPainter, box: QRectF, text: str, colour: QColor, flags: int) -> None:
        pad = box.height() * 0.08 + 2.0
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(PANEL)
        p.drawRoundedRect(box.adjusted(-pad, -pad * 0.5, pad, pad * 0.5), pad * 1.5, pad * 1.5)
        p.setPen(colour)
        p.drawText(box, flags, text)

    def _draw_names(self, p: QPainter, plane: QRectF) -> None:
        if not self._names:
            return
        font = self._font(0.82)
        fm = QFontMetricsF(font)
        p.setFont(font)
        inset = fm.height() * 0.2 + 3.0
        inner = plane.adjusted(inset, inset, -inset, -inset)
        flags = int(Qt.AlignmentFlag.AlignCenter)
        for name, (v, a) in zip(self._names, self._name_points):
            if not (math.isfinite(v) and math.isfinite(a)):
                continue
            text = name if fm.horizontalAdvance(name) <= plane.width() * 0.3 else _split_name(name)
            lines = text.split("\n")
            width = min(max(fm.horizontalAdvance(line) for line in lines), inner.width())
            height = fm.height() * len(lines)
            at = self.plane_to_widget(v, a)
            x = min(max(at.x() - width / 2.0, inner.left()), inner.right() - width)
            y = min(max(at.y() - height / 2.0, inner.top()), inner.bottom() - height)
            box = QRectF(x, y, width, height)
            if len(lines) == 1:
                text = fm.elidedText(text, Qt.TextElideMode.ElideRight, width + 0.5)
            self._text_panel(p, box, text, NAME_TEXT, flags)

    def _dot_radius(self, side: float) -> float:
        return max(4.0, side / 55.0)

    def _draw_uncertainty(self, p: QPainter, plane: QRectF) -> None:
        if self._stable is None or self._stable_sd is None:
            return
        sd_v, sd_a = abs(self._stable_sd[0]), abs(self._stable_sd[1])
        centre = self.plane_to_widget(*self._stable)
        rx = max(1.0, sd_v * plane.width() / 2.0)
        ry = max(1.0, sd_a * plane.height() / 2.0)
        p.setPen(QPen(UNCERTAINTY_LINE, 1.0))
        p.setBrush(UNCERTAINTY_FILL)
        p.drawEllipse(centre, rx, ry)

    def _draw_trail(self, p: QPainter, side: float) -> None:
        k = len(self._trail)
        if k < 2:
            return
        pts = np.array(self._trail, np.float64)
        r = self.plane_rect()
        x = r.left() + (np.clip(pts[:, 1], -1.0, 1.0) + 1.0) * 0.5 * r.width()
        y = r.top() + (1.0 - np.clip(pts[:, 2], -1.0, 1.0)) * 0.5 * r.height()
        age = np.clip((self._t - pts[:, 0]) / self._trail_seconds, 0.0, 1.0)
        bucket = np.minimum((age * _TRAIL_BUCKETS).astype(np.intp), _TRAIL_BUCKETS - 1)
        width = max(1.5, side / 180.0)
        p.setBrush(Qt.BrushStyle.NoBrush)
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], k]
        for s, e in zip(starts, ends):
            lo = max(0, s - 1)  # overlap one point so consecutive pieces join
            if e - lo < 2:
                continue
            fade = 1.0 - (bucket[s] + 0.5) / _TRAIL_BUCKETS
            colour = QColor(TRAIL)
            colour.setAlphaF(0.08 + 0.62 * fade)
            pen = QPen(colour, width)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
            p.setPen(pen)
            p.drawPolyline(polygon_from_xy(x[lo:e], y[lo:e]))

    def _draw_raw(self, p: QPainter, side: float) -> None:
        if self._raw is None:
            return
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(RAW)
        r = self._dot_radius(side) * 0.45
        p.drawEllipse(self.plane_to_widget(*self._raw), r, r)

    def _draw_segment(self, p: QPainter, plane: QRectF) -> None:
        if self._segment is None:
            return
        at = self.plane_to_widget(*self._segment)
        r = self._dot_radius(plane.width()) * 1.35
        diamond = QPolygonF([QPointF(at.x(), at.y() - r), QPointF(at.x() + r, at.y()),
                             QPointF(at.x(), at.y() + r), QPointF(at.x() - r, at.y())])
        p.setPen(QPen(OUTLINE, max(1.2, r * 0.22)))
        p.setBrush(SEGMENT)
        p.drawPolygon(diamond)
        if self._segment_label:
            self._side_label(p, plane, at, r, self._segment_label, SEGMENT, 0.82)

    def _side_label(self, p: QPainter, plane: QRectF, at: QPointF, r: float, text: str, colour: QColor,
                    scale: float) -> None:
        """``text`` in a panel right of ``at`` (left where the plane ends), kept inside the plane."""
        font = self._font(scale)
        fm = QFontMetricsF(font)
        p.setFont(font)
        text = fm.elidedText(text, Qt.TextElideMode.ElideRight, plane.width() * 0.45)
        width, height = fm.horizontalAdvance(text) + 1.0, fm.height()
        gap = r + fm.height() * 0.35
        x = at.x() + gap
        if x + width > plane.right() - 3.0:
            x = at.x() - gap - width
        x = min(max(x, plane.left() + 3.0), plane.right() - 3.0 - width)
        y = min(max(at.y() - height / 2.0, plane.top() + 3.0), plane.bottom() - 3.0 - height)
        self._text_panel(p, QRectF(x, y, width, height), text, colour, int(Qt.AlignmentFlag.AlignCenter))

    def _draw_stable(self, p: QPainter, plane: QRectF) -> None:
        if self._stable is None:
            return
        at = self.plane_to_widget(*self._stable)
        r = self._dot_radius(plane.width())
        if self._gated:
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(QPen(OUTLINE, max(3.0, r * 0.55)))
            p.drawEllipse(at, r, r)
            p.setPen(QPen(STABLE, max(1.6, r * 0.3)))
            p.drawEllipse(at, r, r)
            self._side_label(p, plane, QPointF(at.x(), at.y() - r * 1.2), r, "held", HELD_TEXT, 0.72)
        else:
            p.setPen(QPen(OUTLINE, max(1.5, r * 0.28)))
            p.setBrush(QBrush(STABLE))
            p.drawEllipse(at, r, r)
