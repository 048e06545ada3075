"""The "Soundtrack for a video" view: whole songs ranked by how well their arc follows the video's.

    ┌──────────────────────────────────────────────────────────────────────────┐
    │ [Choose video…]  moods.mp4 · 0:24 · 640×480                              │
    │ [████████ watching the video: 0:12 of 0:24 ·········]  [Cancel]          │
    │ ┌ ArcPlot ─────────────────────────────────────────────────────────────┐ │
    │ │ ━ video   ╍ ♪ Artist – Title, from 1:12 (arc 0.83)                   │ │
    │ │ valence  ── the video's arc ──   ╍╍ the song's along the DTW path ╍╍ │ │
    │ │ arousal  ──                              ╎ (the playhead)            │ │
    │ │          0 s      5 s      10 s      15 s      20 s                  │ │
    │ └──────────────────────────────────────────────────────────────────────┘ │
    │  # │ Song                   │ From │ Score │ Arc  │ Why                  │
    │ [▶ Play preview] [■ Stop] [♥ Like]   ▶ 0:05 / 0:24 · Title    [Close]    │
    └──────────────────────────────────────────────────────────────────────────┘

Design
------
* Nothing slow runs on the GUI thread: the analysis is a
  :class:`~moodsic_live.engine.soundtrack_job.SoundtrackJob` and the preview a
  :class:`~moodsic_live.engine.soundtrack_job.Preview`, each on a thread of its own. One QTimer
  polls them (25 Hz, only while either is busy) and repaints only what changed.
* :class:`ArcPlot` is a passive QPainter widget in the house style of the timeline: two lanes
  (valence above arousal) over the video's time, the video's arc in the lanes' colours, the
  chosen song's arc in the music colour drawn along its DTW path (song point ``j`` at the video
  time of ``i``, :func:`overlay_points`), and a playhead while the preview plays.
* Errors are one line in the dialog, never a traceback. Closing the dialog cancels the job,
  stops the preview and resumes the live music if the preview had paused it.
* While the dialog has the keyboard, Space plays or stops the preview and L likes the selected
  song; the main window's one-key shortcuts (which steer the live music) do not fire meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QKeyEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QDialog, QFileDialog, QHBoxLayout, QHeaderView,
                               QLabel, QProgressBar, QPushButton, QSizePolicy, QSplitter, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from moodsic_live.config import Config
from moodsic_live.engine.soundtrack_job import CANCELLED, Preview, SoundtrackJob, SoundtrackResult, clock, took
from moodsic_live.engine.soundtrack_rank import RankedSong, SoundtrackRanking
from moodsic_live.errors import MoodsicError
from moodsic_live.gui.timeline import (AROUSAL, AXIS_TEXT, BACKGROUND, GRID, SONG, VALENCE, WAITING, draw_lane,
                                       polygon_from_xy)
from moodsic_live.match.arcs import Arc
from moodsic_live.play.player import OutputFactory

PLAYHEAD = QColor(255, 255, 255, 200)
LEGEND_TEXT = QColor("#d3d7e2")
# The app's sheet gives every widget one text colour; a disabled button should look it.
STYLE = "QPushButton:disabled { color: #6c7683; border-color: #2b3139; }"
POLL_MS = 40
VIDEO_FILTER = "Videos (*.mp4 *.mkv *.avi *.mov *.webm *.m4v);;All files (*)"
NO_LIBRARY = "no library yet: wait until the music plays, or build one (File › Build library from folder…)"
_TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
# The main window's one-key shortcuts; the dialog keeps them while it has the keyboard.
_PLAIN_KEYS = {Qt.Key.Key_Space, Qt.Key.Key_L, Qt.Key.Key_S, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down,
               Qt.Key.Key_Plus, Qt.Key.Key_Minus, Qt.Key.Key_M, Qt.Key.Key_A, Qt.Key.Key_R}

Overlay = list[tuple[float, float, float]]


def overlay_points(song: RankedSong, video_arc: Arc, song_arc: Arc) -> Overlay:
    """The song's arc along its DTW path, in video time: ``(t, valence, arousal)`` for every path
    pair ``(i, j)``, with ``t`` the video time of point ``i`` and the values the song's point ``j``
    (``song_arc`` is the track's whole arc, the index space of the path's second column)."""
    path = np.asarray(song.alignment.path, np.int64).reshape(-1, 2)
    if len(path) == 0:
        return []
    j = np.clip(path[:, 1], 0, len(song_arc.level) - 1)
    t = video_arc.t0 + path[:, 0] / video_arc.rate
    va = song_arc.level[j]
    return [(float(a), float(b), float(c)) for a, b, c in zip(t, va[:, 0], va[:, 1])]


def song_label(song: RankedSong) -> str:
    """``Artist – Title`` (the title alone when the artist is unknown)."""
    return f"{song.artist} – {song.title}" if song.artist else song.title


def tick_step(span_s: float, max_ticks: int) -> int:
    """Seconds between x-axis labels: the smallest step of :data:`_TICK_STEPS_S` giving at most
    ``max_ticks`` labels."""
    for step in _TICK_STEPS_S:
        if span_s / step <= max(1, max_ticks):
            return step
    return _TICK_STEPS_S[-1]


def tick_label(t: float, span_s: float) -> str:
    """``12 s`` for a video under two minutes, ``1:30`` from there on."""
    return f"{t:.0f} s" if span_s < 120 else clock(t)


class ArcPlot(QWidget):
    """The video's valence and arousal arcs over its time, the chosen song's arc along its DTW path
    and the preview's playhead. Setters only record and call ``update()``; ``paintEvent`` draws."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._t = np.zeros(0)
        self._va = np.zeros((0, 2))
        self._span = 0.0
        self._song = np.zeros((0, 3))
        self._song_label = ""
        self._playhead: float | None = None
        self._message = "choose a video to see its emotional arc"
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(320, 180)

    # -- inputs ---------------------------------------------------------------------------------

    def set_video(self, arc: Arc | None, duration_s: float = 0.0) -> None:
        """The video's arc (None: none yet); the x axis spans ``duration_s`` or the arc, the longer."""
        if arc is None:
            self._t, self._va, self._span = np.zeros(0), np.zeros((0, 2)), 0.0
        else:
            self._t = np.asarray(arc.times(), np.float64)
            self._va = np.asarray(arc.level, np.float64).reshape(-1, 2)
            self._span = max(float(duration_s), float(self._t[-1]) if len(self._t) else 0.0)
        self.set_song(None)

    def set_song(self, points: Overlay | None, label: str = "") -> None:
        """The chosen song along its DTW path (:func:`overlay_points`) and its legend text."""
        self._song = np.asarray(points, np.float64).reshape(-1, 3) if points else np.zeros((0, 3))
        self._song_label = label if points else ""
        self.update()

    def set_playhead(self, t: float | None) -> None:
        """The preview's position in video time (None: no preview)."""
        t = None if t is None or not math.isfinite(t) else float(t)
        if t != self._playhead:
            self._playhead = t
            self.update()

    def set_message(self, text: str) -> None:
        """A line drawn across the lanes while there is no arc to draw ("" for none)."""
        if text != self._message:
            self._message = text
            self.update()

    # -- queries --------------------------------------------------------------------------------

    @property
    def song(self) -> np.ndarray:
        """A copy of the overlay's (t, valence, arousal) points."""
        return self._song.copy()

    @property
    def song_text(self) -> str:
        return self._song_label

    @property
    def playhead(self) -> float | None:
        return self._playhead

    @property
    def span_s(self) -> float:
        return self._span

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(820, 300)

    def _font(self, scale: float = 1.0, *, bold: bool = False) -> QFont:
        font = QFont(self.font())
        font.setPointSizeF(max(7.5, min(12.0, max(8.5, min(self.height() / 26.0, self.width() / 80.0))) * scale))
        font.setBold(bold)
        return font

    def _layout(self) -> tuple[QRectF, QRectF, QRectF, QRectF]:
        """(valence lane, arousal lane, x-axis strip, legend strip) in widget pixels."""
        fm = QFontMetricsF(self._font())
        legend_h = fm.height() + 10.0
        axis_h = QFontMetricsF(self._font(0.9)).height() + 8.0
        left = fm.horizontalAdvance("arousal") + 34.0
        right = 16.0
        gap = max(6.0, fm.height() * 0.5)
        width = max(10.0, self.width() - left - right)
        lane_h = max(10.0, (self.height() - legend_h - axis_h - gap - 4.0) / 2.0)
        valence = QRectF(left, legend_h, width, lane_h)
        arousal = QRectF(left, valence.bottom() + gap, width, lane_h)
        strip = QRectF(left, arousal.bottom(), width, axis_h)
        legend = QRectF(8.0, 0.0, self.width() - 8.0 - right, legend_h)
        return valence, arousal, strip, legend

    def lane_rect(self, dimension: int) -> QRectF:
        """The lane of valence (0) or arousal (1) in widget pixels."""
        return self._layout()[dimension]

    def time_to_x(self, t: float) -> float:
        """Widget x of video time ``t`` (s); times outside the video sit on its edges."""
        return float(self._xs(np.array([float(t)]))[0])

    def _xs(self, t: np.ndarray) -> np.ndarray:
        lane = self._layout()[0]
        span = self._span if self._span > 0 else 1.0
        return lane.left() + np.clip(np.asarray(t, np.float64) / span, 0.0, 1.0) * lane.width()

    def value_to_y(self, dimension: int, value: float) -> float:
        """Widget y of ``value`` in a lane ([-1, 1] bottom to top; outside values sit on the border)."""
        lane = self._layout()[dimension]
        return lane.top() + (1.0 - min(max(float(value), -1.0), 1.0)) * 0.5 * lane.height()

    # -- painting -------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        try:
            p.setRenderHint(QPainter.RenderHint.TextAntialiasing)
            p.fillRect(self.rect(), BACKGROUND)
            valence, arousal, strip, legend = self._layout()
            self._draw_lanes(p, valence, arousal)
            if self._span > 0:
                self._draw_axis(p, valence, arousal, strip)
            if not len(self._t):
                self._draw_message(p, valence, arousal)
                return
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            bold = max(2.0, min(3.5, self.height() / 110.0))
            x = self._xs(self._t)
            for dim, lane, colour in ((0, valence, VALENCE), (1, arousal, AROUSAL)):
                self._line(p, lane, x, self._va[:, dim], colour, bold)
            if len(self._song):
                xs = self._xs(self._song[:, 0])
                for dim, lane in ((0, valence), (1, arousal)):
                    self._line(p, lane, xs, self._song[:, 1 + dim], SONG, bold * 0.8, dashed=True)
            self._draw_legend(p, legend)
            if self._playhead is not None:
                xp = round(self.time_to_x(self._playhead)) + 0.5
                p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
                p.setPen(QPen(PLAYHEAD, 1.5))
                for lane in (valence, arousal):
                    p.drawLine(QPointF(xp, lane.top() + 1), QPointF(xp, lane.bottom() - 1))
        finally:
            p.end()

    def _draw_lanes(self, p: QPainter, valence: QRectF, arousal: QRectF) -> None:
        font, small = self._font(), self._font(0.8)
        for lane, name, colour in ((valence, "valence", VALENCE), (arousal, "arousal", AROUSAL)):
            draw_lane(p, lane, name, colour, font, small, QRectF(8.0, lane.top(), lane.left() - 14.0, lane.height()))

    def _draw_axis(self, p: QPainter, valence: QRectF, arousal: QRectF, strip: QRectF) -> None:
        font = self._font(0.9)
        fm = QFontMetricsF(font)
        p.setFont(font)
        widest = fm.horizontalAdvance(tick_label(self._span, self._span))
        step = tick_step(self._span, int(strip.width() // (widest * 2.2 + 1)))
        t = 0.0
        while t <= self._span + 1e-9:
            x = self.time_to_x(t)
            if t > 0:
                p.setPen(QPen(GRID, 1.0))
                xl = round(x) + 0.5
                for lane in (valence, arousal):
                    p.drawLine(QPointF(xl, lane.top() + 1), QPointF(xl, lane.bottom() - 1))
            label = tick_label(t, self._span)
            w = fm.horizontalAdvance(label) + 2.0
            left = min(max(x - w / 2.0, strip.left() - 4.0), strip.right() - w)
            p.setPen(AXIS_TEXT)
            p.drawText(QRectF(left, strip.top() + 3.0, w, fm.height()), int(Qt.AlignmentFlag.AlignCenter), label)
            t += step

    def _draw_message(self, p: QPainter, valence: QRectF, arousal: QRectF) -> None:
        if not self._message:
            return
        font = self._font()
        fm = QFontMetricsF(font)
        text = fm.elidedText(self._message, Qt.TextElideMode.ElideMiddle, valence.width() - 2 * fm.height())
        w, h = fm.horizontalAdvance(text) + fm.height(), fm.height() * 1.5
        centre = QPointF(valence.center().x(), (valence.bottom() + arousal.top()) / 2.0)
        box = QRectF(centre.x() - w / 2.0, centre.y() - h / 2.0, w, h)
        p.fillRect(box, BACKGROUND)
        p.setFont(font)
        p.setPen(WAITING)
        p.drawText(box, int(Qt.AlignmentFlag.AlignCenter), text)

    def _line(self, p: QPainter, lane: QRectF, x: np.ndarray, values: np.ndarray, colour: QColor, width: float,
              *, dashed: bool = False) -> None:
        ok = np.isfinite(values)
        if ok.sum() < 1:
            return
        y = lane.top() + (1.0 - np.clip(values, -1.0, 1.0)) * 0.5 * lane.height()
        polygon = polygon_from_xy(x[ok], y[ok])
        p.save()
        p.setClipRect(lane.adjusted(1, 1, -1, -1))
        underlay = QColor(BACKGROUND)
        underlay.setAlphaF(0.7)
        pens = [QPen(underlay, width + 2.5), QPen(colour, width)]
        if dashed:
            pens[1].setStyle(Qt.PenStyle.CustomDashLine)
            pens[1].setDashPattern([3.0, 1.6])
        for pen in pens:
            pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap if not dashed else Qt.PenCapStyle.FlatCap)
            p.setPen(pen)
            p.drawPolyline(polygon)
        p.restore()

    def _draw_legend(self, p: QPainter, box: QRectF) -> None:
        font = self._font(0.95)
        fm = QFontMetricsF(font)
        p.setFont(font)
        y = box.center().y()
        x = box.left() + 4.0
        swatch = fm.height() * 1.3
        half = swatch / 2.0
        p.setPen(QPen(VALENCE, 2.5))
        p.drawLine(QPointF(x, y - 2.0), QPointF(x + half, y - 2.0))
        p.setPen(QPen(AROUSAL, 2.5))
        p.drawLine(QPointF(x + half, y + 2.0), QPointF(x + swatch, y + 2.0))
        x += swatch + 6.0
        p.setPen(LEGEND_TEXT)
        text = "video"
        p.drawText(QRectF(x, box.top(), fm.horizontalAdvance(text) + 2.0, box.height()),
                   int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), text)
        x += fm.horizontalAdvance(text) + fm.height() * 1.2
        if not self._song_label:
            return
        pen = QPen(SONG, 2.5, Qt.PenStyle.CustomDashLine)
        pen.setDashPattern([3.0, 1.6])
        pen.setCapStyle(Qt.PenCapStyle.FlatCap)
        p.setPen(pen)
        p.drawLine(QPointF(x, y), QPointF(x + swatch, y))
        x += swatch + 6.0
        room = box.right() - x
        if room > fm.height():
            p.setPen(SONG)
            text = fm.elidedText(self._song_label, Qt.TextElideMode.ElideMiddle, room)
            p.drawText(QRectF(x, box.top(), room, box.height()),
                       int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), text)


class _NumberItem(QTableWidgetItem):
    """A table cell that sorts by its number, not its text."""

    def __init__(self, text: str, value: float) -> None:
        super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole, float(value))
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return float(self.data(Qt.ItemDataRole.UserRole)) < float(other.data(Qt.ItemDataRole.UserRole))


COLUMNS = ("#", "Song", "From", "Score", "Arc", "Why")


class SoundtrackDialog(QDialog):
    """Choose a video, watch it being analysed, browse the ranked songs against its arc, preview
    one from its offset and like it.

    ``library_getter`` returns the library the live music plays from (None before there is one);
    ``output_maker`` makes the preview's output (called on the preview's thread); ``learner_getter``
    (optional) the listener's learner for the ranking; ``pause_live``/``resume_live`` pause the live
    music for the preview's length; ``on_like(song, ranking)`` records a like; ``on_listen(kind, song,
    ranking, heard_s)`` is told how each preview went: ``started`` when it is heard, ``skipped`` when the
    listener stops it (``heard_s`` seconds in), ``completed`` when it plays to its end."""

    def __init__(self, config: Config, library_getter: Callable[[], Any], output_maker: Callable[[], OutputFactory],
                 *, learner_getter: Callable[[], Any] | None = None, pause_live: Callable[[], None] | None = None,
                 resume_live: Callable[[], None] | None = None,
                 on_like: Callable[[RankedSong, SoundtrackRanking], None] | None = None,
                 on_listen: Callable[[str, RankedSong, SoundtrackRanking, float], None] | None = None, top: int = 10,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self._library_getter = library_getter
        self._output_maker = output_maker
        self._learner_getter = learner_getter
        self._pause_live = pause_live
        self._resume_live = resume_live
        self._on_like = on_like
        self._on_listen = on_listen
        self._heard: RankedSong | None = None   # the preview's song once it is heard (told to on_listen)
        self.top = int(top)
        self.job: SoundtrackJob | None = None
        self.result: SoundtrackResult | None = None
        self.preview: Preview | None = None
        self._preview_row = -1
        self._fading: list[Preview] = []      # stopped previews still closing their player
        self._live_paused = False
        self.setWindowTitle("Soundtrack for a video")
        self.setModal(False)
        self.setSizeGripEnabled(True)
        self.setStyleSheet(STYLE)
        self.resize(960, 680)

        self.choose_button = QPushButton("Choose video…")
        self.choose_button.clicked.connect(self.choose_video)
        self.video_label = QLabel("no video chosen")
        self.video_label.setObjectName("upNext")
        self.video_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("choose a video: its emotional arc is compared with every song's")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.problem = QLabel("")
        self.problem.setObjectName("problem")
        self.problem.setWordWrap(True)
        self.problem.hide()
        self.plot = ArcPlot()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.table.horizontalHeader()
        for col, mode in enumerate((QHeaderView.ResizeMode.ResizeToContents, QHeaderView.ResizeMode.Interactive,
                                    QHeaderView.ResizeMode.ResizeToContents, QHeaderView.ResizeMode.ResizeToContents,
                                    QHeaderView.ResizeMode.ResizeToContents, QHeaderView.ResizeMode.Stretch)):
            header.setSectionResizeMode(col, mode)
        header.resizeSection(1, 260)
        header.setHighlightSections(False)
        header.setSortIndicator(0, Qt.SortOrder.AscendingOrder)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.itemDoubleClicked.connect(lambda _item: self.play_preview())
        self.table.installEventFilter(self)
        self.play_button = QPushButton("▶  Play preview")
        self.play_button.setToolTip("play the selected song from its offset for the video's length (Space); "
                                    "the live music pauses meanwhile")
        self.play_button.clicked.connect(self.play_preview)
        self.stop_button = QPushButton("■  Stop")
        self.stop_button.clicked.connect(self.stop_preview)
        self.like_button = QPushButton("♥  Like")
        self.like_button.setToolTip("remember that this song suits this kind of video (L)")
        self.like_button.clicked.connect(self.like)
        self.status = QLabel("")
        self.status.setObjectName("upNext")
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        for b in (self.choose_button, self.cancel_button, self.play_button, self.stop_button, self.like_button, close):
            b.setAutoDefault(False)           # Return in the list plays the preview, not a button
        for label in (self.video_label, self.status):   # a long name or note never widens the dialog
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        for col, tip in ((2, "where in the song the preview starts"), (3, "the hybrid score (see Why)"),
                         (4, "how closely the song's arc follows the video's (DTW similarity, 0..1)")):
            self.table.horizontalHeaderItem(col).setToolTip(tip)

        top_row = QHBoxLayout()
        top_row.addWidget(self.choose_button)
        top_row.addWidget(self.video_label, 1)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.plot)
        split.addWidget(self.table)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        buttons = QHBoxLayout()
        for b in (self.play_button, self.stop_button, self.like_button):
            buttons.addWidget(b)
        buttons.addSpacing(12)
        buttons.addWidget(self.status, 1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)
        layout.addLayout(top_row)
        layout.addLayout(progress_row)
        layout.addWidget(self.problem)
        layout.addWidget(split, 1)
        layout.addLayout(buttons)

        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._quit)
        self._update_buttons()

    # -- the analysis ---------------------------------------------------------------------------

    def choose_video(self) -> None:
        """Ask for a video file and analyse it."""
        start = str(self.job.video.parent) if self.job is not None else ""
        path, _ = QFileDialog.getOpenFileName(self, "Choose a video for its soundtrack", start, VIDEO_FILTER)
        if path:
            self.analyse(path)

    def analyse(self, video: str | Path) -> None:
        """Rank the library's songs for ``video`` (off the GUI thread); a running analysis is cancelled."""
        video = Path(video)
        self._cancel_job()
        self.stop_preview()
        self.result = None
        self._fill([])
        self.plot.set_video(None)
        self.video_label.setText(video.name)
        self.video_label.setToolTip(str(video))
        self.show_problem("")
        self.status.setText("")
        library = self._library_getter()
        if library is None:
            self._set_progress(0.0, "no library to compare with")
            self.plot.set_message(NO_LIBRARY)
            self.show_problem(NO_LIBRARY)
            return
        learner = self._learner_getter() if self._learner_getter is not None else None
        try:
            self.job = SoundtrackJob(video, library, self.config, top=self.top, learner=learner).start()
        except (MoodsicError, ValueError) as exc:
            self.show_problem(str(exc))
            return
        self.plot.set_message(f"watching {video.name} …")
        self._set_progress(0.0, f"opening {video.name}")
        self.cancel_button.setEnabled(True)
        self._timer.start()
        self._update_buttons()

    def cancel(self) -> None:
        """Cancel the analysis under way (the list keeps what it showed)."""
        if self.job is not None and not self.job.done:
            self.job.cancel()
            self._set_progress(self.job.progress[0], "cancelling …")
            self.cancel_button.setEnabled(False)

    def keyPressEvent(self, e: QKeyEvent) -> None:  # noqa: N802 (Qt's name)
        if not (e.modifiers() & ~Qt.KeyboardModifier.KeypadModifier) and e.key() == Qt.Key.Key_Space:
            self.toggle_preview()
        elif not (e.modifiers() & ~Qt.KeyboardModifier.KeypadModifier) and e.key() == Qt.Key.Key_L:
            self.like()
        else:
            super().keyPressEvent(e)

    def _cancel_job(self) -> None:
        if self.job is not None and not self.job.done:
            self.job.cancel()
        self.job = None
        self.cancel_button.setEnabled(False)

    def _set_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(round(1000 * min(1.0, max(0.0, fraction)))))
        self.progress.setFormat(text.replace("%", "%%"))

    def _job_finished(self, job: SoundtrackJob) -> None:
        self.cancel_button.setEnabled(False)
        if job.result is None:
            if job.error == CANCELLED:           # the user's own doing: said on the bar, not as a problem
                self._set_progress(job.progress[0], CANCELLED)
                self.plot.set_message("cancelled: choose a video to analyse")
            else:
                self._set_progress(0.0, f"could not analyse {job.video.name}")
                self.plot.set_message("no arc: choose another video")
                self.show_problem(job.error)
            return
        self.show_result(job.result)

    def show_result(self, result: SoundtrackResult) -> None:
        """Show a finished job's ranking (the first song selected)."""
        self.result = result
        info = result.plan.video
        parts = [result.video.name, clock(float(info.get("duration") or 0.0))]
        if info.get("width") and info.get("height"):
            parts.append(f"{info['width']}×{info['height']}")
        self.video_label.setText(" · ".join(parts))
        self.video_label.setToolTip(str(result.video))
        ranking = result.ranking
        self._set_progress(1.0, f"{len(ranking.songs)} best of {ranking.compared} songs, by how their arc follows "
                                f"the video's (in {took(result.seconds)})")
        self.plot.set_video(ranking.video_arc, float(info.get("duration") or 0.0))
        self.plot.set_message("")
        self.status.setText("  ".join(result.notes))
        self._fill(ranking.songs)
        if ranking.songs:
            self.select(0)

    def _fill(self, songs: Sequence[RankedSong]) -> None:
        self.table.setSortingEnabled(False)
        self.table.clearContents()
        self.table.setRowCount(len(songs))
        for row, song in enumerate(songs):
            r = song.ranked
            tip = f"{song_label(song)}\n{song.why}\nfile: {song.path}"
            items = [_NumberItem(str(row + 1), row + 1), QTableWidgetItem(song_label(song)),
                     _NumberItem(clock(r.offset_s), r.offset_s), _NumberItem(f"{r.score:.2f}", r.score),
                     _NumberItem(f"{r.terms[1]:.2f}", r.terms[1]), QTableWidgetItem(song.why)]
            for col, item in enumerate(items):
                item.setToolTip(tip)
                item.setData(Qt.ItemDataRole.UserRole + 1, row)     # the song's index in the ranking
                self.table.setItem(row, col, item)
        self.table.setSortingEnabled(True)     # by rank at first; a header click sorts by that column
        self._update_buttons()

    # -- the ranked list ------------------------------------------------------------------------

    def select(self, index: int) -> None:
        """Select the song ranked ``index`` (0-based): its arc becomes the overlay."""
        for row in range(self.table.rowCount()):
            if self._song_index(row) == index:
                self.table.selectRow(row)
                return

    def _song_index(self, row: int) -> int:
        item = self.table.item(row, 0)
        return int(item.data(Qt.ItemDataRole.UserRole + 1)) if item is not None else -1

    def selected_index(self) -> int:
        """The selected song's index in the ranking (-1: none)."""
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self._song_index(rows[0].row()) if rows else -1

    def selected_song(self) -> RankedSong | None:
        k = self.selected_index()
        return self.result.ranking.songs[k] if self.result is not None and 0 <= k < len(self.result.ranking.songs) \
            else None

    def _selection_changed(self) -> None:
        k = self.selected_index()
        if self.result is None or k < 0:
            self.plot.set_song(None)
        else:
            song = self.result.ranking.songs[k]
            points = overlay_points(song, self.result.ranking.video_arc, self.result.song_arcs[k])
            self.plot.set_song(points, f"♪ {song_label(song)}, from {clock(song.ranked.offset_s)} "
                                       f"(arc {song.ranked.terms[1]:.2f})")
        self._update_buttons()

    # -- preview and like -----------------------------------------------------------------------

    def play_preview(self) -> None:
        """Play the selected song from its offset for the video's length (the live music pauses)."""
        song = self.selected_song()
        if song is None or self.result is None:
            return
        duration = float(self.result.plan.video.get("duration") or self.result.ranking.video_arc.duration)
        self._retire_preview()
        self.show_problem("")
        if not self._live_paused and self._pause_live is not None:
            self._pause_live()
            self._live_paused = True
        self.preview = Preview(self.config.play, self._output_maker)
        self._preview_row = self.selected_index()
        self.preview.start(song.path, song.track_id, song.ranked.offset_s, duration)
        self.status.setText(f"opening the sound output for {song_label(song)} …")
        self._timer.start()
        self._update_buttons()

    def _listen(self, kind: str, heard_s: float) -> None:
        song, self._heard = self._heard, (self._heard if kind == "started" else None)
        if song is None or self.result is None or self._on_listen is None:
            return
        try:
            self._on_listen(kind, song, self.result.ranking, float(heard_s))
        except MoodsicError as exc:
            self.show_problem(str(exc))

    def stop_preview(self) -> None:
        """Stop the preview (it fades out within a second, off the GUI thread)."""
        if self.preview is not None:
            self._listen("skipped", self.preview.position_s)     # the listener stopped it
        if self._retire_preview():
            self.status.setText("preview stopped")
        self._preview_ended()

    def _retire_preview(self) -> bool:
        if self.preview is not None:
            self._listen("skipped", self.preview.position_s)     # another song or closing stops it
        preview, self.preview = self.preview, None
        self.plot.set_playhead(None)
        if preview is None:
            return False
        preview.stop()
        if preview.alive:
            self._fading.append(preview)
        self._update_buttons()
        return True

    def _preview_ended(self) -> None:
        if self.preview is None and self._live_paused:
            self._live_paused = False
            if self._resume_live is not None:
                self._resume_live()

    def toggle_preview(self) -> None:
        if self.preview is not None and self.preview.active and self._preview_row == self.selected_index():
            self.stop_preview()
        else:
            self.play_preview()

    def like(self) -> None:
        """Tell ``on_like`` that the selected song suits this video."""
        song = self.selected_song()
        if song is None or self.result is None or self._on_like is None:
            return
        try:
            self._on_like(song, self.result.ranking)
        except MoodsicError as exc:
            self.show_problem(str(exc))
            return
        self.status.setText(f"♥ liked {song_label(song)}")

    def show_problem(self, text: str) -> None:
        """One line in the dialog ("" hides it)."""
        text = " ".join(str(text).split())
        self.problem.setText(f"⚠  {text}" if text else "")
        self.problem.setVisible(bool(text))

    # -- the timer ------------------------------------------------------------------------------

    def _poll(self) -> None:
        job = self.job
        if job is not None:
            if job.done:
                self._job_finished(job)
                self.job = None
            else:
                fraction, text = job.progress
                self._set_progress(fraction, text)
        preview = self.preview
        if preview is not None:
            song = self.result.ranking.songs[self._preview_row] if self.result is not None else None
            name = song_label(song) if song is not None else preview.song_id
            state = preview.state
            if state == "playing":
                if self._heard is None and song is not None:
                    self._heard = song
                    self._listen("started", 0.0)
                self.plot.set_playhead(preview.position_s)
                self.status.setText(f"▶ {clock(preview.position_s)} / {clock(preview.duration_s)} · {name}")
            elif state == "loading":
                self.status.setText(f"loading {name} …")
            elif state in ("finished", "stopped", "failed"):
                self._listen("completed" if state == "finished" else "skipped", preview.position_s)
                self.preview = None
                self.plot.set_playhead(None)
                if state == "failed":
                    self.show_problem(preview.error)
                    self.status.setText("")
                else:
                    self.status.setText(f"preview of {name} ended")
                if preview.alive:
                    self._fading.append(preview)
                self._preview_ended()
                self._update_buttons()
        self._fading = [p for p in self._fading if p.alive]
        if self.job is None and self.preview is None and not self._fading:
            self._timer.stop()

    def _update_buttons(self) -> None:
        has_song = self.selected_song() is not None
        playing = self.preview is not None and self.preview.active
        self.play_button.setEnabled(has_song)
        self.stop_button.setEnabled(playing)
        self.like_button.setEnabled(has_song and self._on_like is not None)

    # -- keys and closing ---------------------------------------------------------------------

    def event(self, e: QEvent) -> bool:
        """One-key shortcuts of the main window (they steer the live music) are the dialog's keys
        while it has the keyboard: Space and L act on the preview, the others do nothing."""
        if e.type() == QEvent.Type.ShortcutOverride and isinstance(e, QKeyEvent) and not (
                e.modifiers() & ~Qt.KeyboardModifier.KeypadModifier) and e.key() in _PLAIN_KEYS:
            e.accept()
            return True
        return super().event(e)

    def eventFilter(self, watched: QObject, e: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if watched is self.table and e.type() == QEvent.Type.KeyPress and isinstance(e, QKeyEvent) \
                and not (e.modifiers() & ~Qt.KeyboardModifier.KeypadModifier):
            if e.key() == Qt.Key.Key_Space:
                self.toggle_preview()
                return True
            if e.key() == Qt.Key.Key_L:
                self.like()
                return True
            if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.play_preview()
                return True
        return super().eventFilter(watched, e)

    def shutdown(self, wait_s: float = 0.0) -> None:
        """Cancel the analysis, stop the preview (waiting up to ``wait_s`` for its player to close)
        and give the live music back. The dialog can be shown and used again afterwards."""
        if self.job is not None and not self.job.done:
            self._set_progress(0.0, "cancelled: choose the video again to analyse it")
            self.plot.set_message("cancelled")
        self._cancel_job()
        preview = self.preview
        self.stop_preview()
        if wait_s > 0:
            for p in [preview, *self._fading]:
                if p is not None:
                    p.stop(wait_s)
        self._fading = [p for p in self._fading if p.alive]
        self._timer.stop()

    def _quit(self) -> None:
        self.shutdown(wait_s=1.2)

    def done(self, r: int) -> None:  # Close button, Esc, the window's close box
        self.shutdown()
        super().done(r)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.shutdown()
        super().closeEvent(event)
