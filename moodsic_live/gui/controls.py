"""The settings panel: source, library, mode, dwell, crossfade, experts, detector range, atmosphere only.

The panel only holds and shows choices, as one :class:`Choices` value; it emits ``changed(key)`` when a
person changes one. The window decides what that means for the engine (a source or library change
restarts it; everything else is applied to the running engine) and remembers the choices.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QInputDialog, QLabel, QSpinBox, QWidget)

GOALS = ("calm", "energise", "uplift")
MODES = ("mirror", "regulate", "target")
MODE_TEXT = {"mirror": "Mirror the room", "regulate": "Regulate toward a goal", "target": "Target atmosphere"}
DETECTORS = {"short": "Near (webcam, < 2 m)", "full": "Far (ambient camera, < 5 m)"}


@dataclass
class Choices:
    source: str = "demo"
    library: str = ""
    mode: str = "mirror"
    goal: str = "calm"
    target_valence: float = 0.4
    target_arousal: float = 0.0
    dwell: int = 25
    crossfade: float = 4.0
    face: bool = True
    scene: bool = True
    detector: str = "short"
    atmosphere: bool = False
    volume: float = 0.8

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def cameras() -> list[tuple[str, str]]:
    """(label, source) of the cameras this machine has: ``/dev/video*`` on Linux (the even nodes are the
    capture ones on most webcams; all are listed), indices 0–2 elsewhere. Nothing is opened here."""
    if sys.platform.startswith("linux"):
        nodes = sorted(Path("/dev").glob("video[0-9]*"), key=lambda p: int(p.name[5:]))
        return [(f"Camera {p.name[5:]} ({p})", p.name[5:]) for p in nodes]
    return [(f"Camera {i}", str(i)) for i in range(3)]


def source_label(source: str) -> str:
    if source == "demo":
        return "Demo (built-in scenes)"
    if source.isdigit():
        return f"Camera {source}"
    if "://" in source:
        return f"Stream: {source.split('@')[-1]}"
    return f"Video: {Path(source).name}"


class ControlsPanel(QWidget):
    changed = Signal(str)      # the key of Choices that a person changed
    build_library = Signal()   # "Build from a folder…" was picked

    def __init__(self, libraries: list[str], choices: Choices, parent: QWidget | None = None):
        super().__init__(parent)
        self._choices = choices
        self._updating = False
        form = QFormLayout(self)

        self.source = QComboBox()
        self.source.setToolTip("Where the pictures come from")
        form.addRow("Source", self.source)
        self.library = QComboBox()
        self.library.setToolTip("The music to choose from")
        form.addRow("Music", self.library)

        self.mode = QComboBox()
        for m in MODES:
            self.mode.addItem(MODE_TEXT[m], m)
        form.addRow("Mode", self.mode)
        self.goal = QComboBox()
        for g in GOALS:
            self.goal.addItem(g, g)
        form.addRow("Goal", self.goal)
        self.target_v = QDoubleSpinBox()
        self.target_a = QDoubleSpinBox()
        target = QHBoxLayout()
        for box, name in ((self.target_v, "V"), (self.target_a, "A")):
            box.setRange(-1.0, 1.0)
            box.setSingleStep(0.1)
            box.setDecimals(2)
            target.addWidget(QLabel(name))
            target.addWidget(box)
        self.target_row = QWidget()
        self.target_row.setLayout(target)
        form.addRow("Target", self.target_row)

        self.dwell = QSpinBox()
        self.dwell.setRange(20, 30)
        self.dwell.setSuffix(" s")
        self.dwell.setToolTip("Minimum time on a song before the music may follow the room again")
        form.addRow("Min. dwell", self.dwell)
        self.crossfade = QDoubleSpinBox()
        self.crossfade.setRange(0.0, 12.0)
        self.crossfade.setSingleStep(0.5)
        self.crossfade.setSuffix(" s")
        form.addRow("Crossfade", self.crossfade)

        self.face = QCheckBox("Face expert")
        self.scene = QCheckBox("Scene expert")
        experts = QHBoxLayout()
        experts.addWidget(self.face)
        experts.addWidget(self.scene)
        form.addRow("Experts", experts)
        self.detector = QComboBox()
        for key, text in DETECTORS.items():
            self.detector.addItem(text, key)
        form.addRow("Faces", self.detector)
        self.atmosphere = QCheckBox("Atmosphere only (no face analysis, faces blurred)")
        self.atmosphere.setToolTip("For shops and cafés: the mood comes from the scene; faces are not read "
                                   "and are blurred in the preview")
        form.addRow("Privacy", self.atmosphere)

        self.set_libraries(libraries)
        self.show_choices(choices)
        self.source.activated.connect(self._source_picked)
        self.library.activated.connect(self._library_picked)
        self.mode.currentIndexChanged.connect(lambda: self._set("mode", self.mode.currentData()))
        self.goal.currentIndexChanged.connect(lambda: self._set("goal", self.goal.currentData()))
        self.target_v.valueChanged.connect(lambda v: self._set("target_valence", v))
        self.target_a.valueChanged.connect(lambda v: self._set("target_arousal", v))
        self.dwell.valueChanged.connect(lambda v: self._set("dwell", v))
        self.crossfade.valueChanged.connect(lambda v: self._set("crossfade", v))
        self.face.toggled.connect(lambda on: self._set("face", on))
        self.scene.toggled.connect(lambda on: self._set("scene", on))
        self.detector.currentIndexChanged.connect(lambda: self._set("detector", self.detector.currentData()))
        self.atmosphere.toggled.connect(lambda on: self._set("atmosphere", on))

    @property
    def choices(self) -> Choices:
        return self._choices

    def _set(self, key: str, value) -> None:
        if self._updating or getattr(self._choices, key) == value:
            return
        setattr(self._choices, key, value)
        self._show_mode_rows()
        self.changed.emit(key)

    def set_choice(self, key: str, value) -> None:
        """Change a choice from outside (a shortcut): shown and emitted like a person's change."""
        self._set(key, value)
        self.show_choices(self._choices)

    # -- sources and libraries ------------------------------------------------------------------

    def _fill_sources(self) -> None:
        self.source.clear()
        self.source.addItem(source_label("demo"), "demo")
        for label, value in cameras():
            self.source.addItem(label, value)
        current = self._choices.source
        if self.source.findData(current) < 0:
            self.source.addItem(source_label(current), current)
        self.source.addItem("Video file…", "?file")
        self.source.addItem("Stream URL…", "?url")
        self.source.setCurrentIndex(self.source.findData(current))

    def _source_picked(self, index: int) -> None:
        value = self.source.itemData(index)
        if value == "?file":
            path, _ = QFileDialog.getOpenFileName(self, "Open a video", str(Path.home()),
                                                  "Videos (*.mp4 *.mkv *.avi *.mov *.webm);;All files (*)")
            value = path or ""
        elif value == "?url":
            value, ok = QInputDialog.getText(self, "Stream URL", "rtsp:// or http(s):// address of the stream:")
            value = value.strip() if ok else ""
        if value:
            self._set("source", value)
        self.show_choices(self._choices)

    def set_libraries(self, names: list[str]) -> None:
        self._libraries = list(names)
        if self.isVisible() or self.library.count():
            self.show_choices(self._choices)

    def _fill_libraries(self) -> None:
        self.library.clear()
        self.library.addItem("Newest built (or the demo)", "")
        for name in self._libraries:
            self.library.addItem(name, name)
        if "demo" not in self._libraries:
            self.library.addItem("demo (generated music; built on first use)", "demo")
        if self._choices.library and self.library.findData(self._choices.library) < 0:
            self.library.addItem(self._choices.library, self._choices.library)
        self.library.addItem("Build from a folder…", "?build")
        self.library.setCurrentIndex(max(0, self.library.findData(self._choices.library)))

    def _library_picked(self, index: int) -> None:
        value = self.library.itemData(index)
        if value == "?build":
            self.build_library.emit()
        else:
            self._set("library", value)
        self.show_choices(self._choices)

    # -- showing ------------------------------------------------------------------------------

    def _show_mode_rows(self) -> None:
        form = self.layout()
        form.setRowVisible(self.goal, self._choices.mode == "regulate")
        form.setRowVisible(self.target_row, self._choices.mode == "target")

    def show_choices(self, c: Choices) -> None:
        self._updating = True
        try:
            self._fill_sources()
            self._fill_libraries()
            self.mode.setCurrentIndex(max(0, self.mode.findData(c.mode)))
            self.goal.setCurrentIndex(max(0, self.goal.findData(c.goal)))
            self.target_v.setValue(c.target_valence)
            self.target_a.setValue(c.target_arousal)
            self.dwell.setValue(int(c.dwell))
            self.crossfade.setValue(c.crossfade)
            self.face.setChecked(c.face)
            self.scene.setChecked(c.scene)
            self.detector.setCurrentIndex(max(0, self.detector.findData(c.detector)))
            self.atmosphere.setChecked(c.atmosphere)
            self.face.setEnabled(not c.atmosphere)
            self._show_mode_rows()
        finally:
            self._updating = False
