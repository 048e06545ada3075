"""Now playing / up next: the song, its mood, where it is, when it may change; like, skip, pause, volume."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QSlider,
                               QVBoxLayout, QWidget)


def clock_text(seconds: float) -> str:
    """``83.4`` → ``1:23``."""
    s = max(0, int(seconds)) if math.isfinite(seconds) else 0
    return f"{s // 60}:{s % 60:02d}"


def dwell_text(dwell_left: float, paused: bool) -> str:
    if paused:
        return "paused"
    if dwell_left <= 0.05:
        return "free to change with the room"
    return f"can change in {math.ceil(dwell_left)} s"


class NowPlayingPanel(QFrame):
    like = Signal()
    replay = Signal()
    skip = Signal()
    pause_toggled = Signal(bool)      # True: pause
    volume_changed = Signal(float)    # 0..1

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("nowPlaying")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.heading = QLabel("Now playing")
        self.heading.setObjectName("heading")
        self.title = QLabel("—")
        self.title.setObjectName("title")
        self.title.setWordWrap(True)
        self.artist = QLabel("")
        self.mood = QLabel("")
        self.mood.setObjectName("mood")
        self.tags = QLabel("")
        self.tags.setObjectName("tags")
        self.tags.setToolTip("What the music tagger hears most clearly in this song")
        self.why = QLabel("")
        self.why.setObjectName("why")
        self.why.setWordWrap(True)
        self.why.setToolTip("Why this song: each part of its score")
        self.tags.hide()
        self.why.hide()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.dwell = QLabel("")
        self.crossfade = QLabel("")
        self.crossfade.setObjectName("crossfade")
        self.up_next = QLabel("Up next: —")
        self.up_next.setWordWrap(True)
        self.up_next.setMinimumHeight(self.up_next.fontMetrics().lineSpacing() * 2 + 4)
        self.up_next.setObjectName("upNext")
        for label in (self.title, self.artist, self.tags, self.why, self.up_next):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.like_button = QPushButton("♥ Like")
        self.like_button.setToolTip("This song fits (L)")
        self.replay_button = QPushButton("↺ Again")
        self.replay_button.setToolTip("Play this song again from where it started (R)")
        self.skip_button = QPushButton("Skip »")
        self.skip_button.setToolTip("Crossfade to the next choice now (S)")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Pause / resume the music (Space)")
        self.volume = QSlider(Qt.Orientation.Horizontal)
        self.volume.setRange(0, 100)
        self.volume.setToolTip("Volume (Up / Down)")
        self.volume_label = QLabel("")

        self.like_button.clicked.connect(self.like)
        self.replay_button.clicked.connect(self.replay)
        self.skip_button.clicked.connect(self.skip)
        self.pause_button.toggled.connect(self._pause_toggled)
        self.volume.valueChanged.connect(self._volume_moved)

        buttons = QHBoxLayout()
        for b in (self.like_button, self.replay_button, self.skip_button, self.pause_button):
            buttons.addWidget(b)
        vol = QHBoxLayout()
        vol.addWidget(QLabel("Volume"))
        vol.addWidget(self.volume, 1)
        vol.addWidget(self.volume_label)
        state = QHBoxLayout()
        state.addWidget(self.dwell, 1)
        state.addWidget(self.crossfade)

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.title)
        layout.addWidget(self.artist)
        layout.addWidget(self.mood)
        layout.addWidget(self.tags)
        layout.addWidget(self.why)
        layout.addWidget(self.progress)
        layout.addLayout(state)
        layout.addWidget(self.up_next)
        layout.addStretch(1)
        layout.addLayout(buttons)
        layout.addLayout(vol)
        self.set_volume(0.8)

    def _pause_toggled(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_toggled.emit(paused)

    def _volume_moved(self, value: int) -> None:
        self.volume_label.setText(f"{value} %")
        self.volume_changed.emit(value / 100.0)

    def set_volume(self, volume: float) -> None:
        """Show ``volume`` without emitting ``volume_changed``."""
        self.volume.blockSignals(True)
        self.volume.setValue(round(100 * volume))
        self.volume.blockSignals(False)
        self.volume_label.setText(f"{round(100 * volume)} %")

    def show_status(self, status) -> None:
        now = status.now
        if now is None:
            self.title.setText("choosing the first song …" if status.stable is None else "starting the music …")
            return
        self.title.setText(now.title)
        self.artist.setText(now.artist or "")
        self.mood.setText(f"mood: {now.mood}" if now.mood else "")
        self.tags.setText(f"sounds: {now.tags}" if now.tags else "")
        self.tags.setVisible(bool(now.tags))       # an empty line costs a kiosk screen its height
        self.why.setText(f"why: {now.why}" if now.why else "")
        self.why.setVisible(bool(now.why))
        self.why.setToolTip(f"Why this song: {now.why_detail}" if now.why_detail else "")
        frac = now.position_s / now.duration_s if now.duration_s > 0 else 0.0
        self.progress.setValue(round(1000 * min(1.0, max(0.0, frac))))
        self.progress.setFormat(f"{clock_text(now.position_s)} / {clock_text(now.duration_s)}")
        self.dwell.setText(dwell_text(status.dwell_left, status.paused))
        self.crossfade.setText("⇄ crossfading" if status.crossfading else "")
        self.up_next.setText(f"Up next: {status.up_next}" if status.up_next else "Up next: —")

    def set_paused(self, paused: bool) -> None:
        """Show ``paused`` without emitting ``pause_toggled`` (a new engine starts playing)."""
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_button.blockSignals(False)
