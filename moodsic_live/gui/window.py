"""The main window: what the camera sees, what the app thinks the mood is and why, what plays and
what comes next; and the controls to steer it.

    ┌──────────────────────────┬──────────────────┬───────────┐
    │ camera view              │ circumplex       │ settings  │
    │ (faces, estimates,       ├──────────────────┤ (dock)    │
    │  privacy indicator)      │ now playing      │           │
    ├──────────────────────────┴──────────────────┤           │
    │ timeline (last 3 minutes)                    │           │
    └──────────────────────────────────────────────┴───────────┘
    status bar: source · fps in/analysed · dropped · provider · faces · gated · switches/min

Every widget is fed by :class:`~moodsic_live.gui.bridge.EngineBridge` signals on the GUI thread; the
window calls the engine's non-blocking controls and restarts it (off the GUI thread, through
:class:`~moodsic_live.gui.host.EngineHost`) when the source or the library changes. Choices are
remembered in a QSettings file. Kiosk mode: full screen, large type, no menus or settings; Esc twice
(or Ctrl+Q) leaves.
"""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QFont, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QInputDialog, QLabel, QMainWindow, QMessageBox,
                               QProgressDialog, QSplitter, QVBoxLayout, QWidget)

from moodsic_live.errors import MoodsicError
from moodsic_live.gui.bridge import EngineBridge
from moodsic_live.gui.camera_view import CameraView, FaceOverlay
from moodsic_live.gui.circumplex import CircumplexView
from moodsic_live.gui.controls import Choices, ControlsPanel, source_label
from moodsic_live.gui.host import EngineHost, Launch
from moodsic_live.gui.now_playing import NowPlayingPanel
from moodsic_live.gui.timeline import TimelineView
from moodsic_live.perceive.fusion import face_share

SHORTCUTS = (
    ("Space", "pause / resume the music"),
    ("L", "like the current song"),
    ("S", "skip to the next choice now"),
    ("R", "play the current song again"),
    ("Up / Down", "volume"),
    ("M", "next mode (mirror, regulate, target)"),
    ("A", "atmosphere only on/off"),
    ("Ctrl+O", "open a video file"),
    ("Ctrl+B", "build a library from a music folder"),
    ("Ctrl+T", "soundtrack for a video (songs ranked by its emotional arc)"),
    ("F11", "kiosk (full screen)"),
    ("Esc Esc", "leave kiosk"),
    ("Ctrl+Q", "quit"),
)
PROBLEM_SHOW_S = 20.0
INFO = ("inference runs on", "forgot what was learned", "listening history deleted")   # said, not problems
# Kiosk: type readable across a room (the window's sheet cascades over the application's).
KIOSK_STYLE = """
QWidget { font-size: 16pt; }
QLabel#title { font-size: 30pt; }
QLabel#heading { font-size: 14pt; }
QLabel#problem { font-size: 18pt; }
QPushButton { padding: 12px 20px; }
"""


def face_label(reading) -> str:
    e = reading.estimate
    text = f"V {e.valence:+.2f}  A {e.arousal:+.2f}"
    if reading.probabilities:
        top = max(reading.probabilities, key=reading.probabilities.get)
        text = f"{top} {reading.probabilities[top]:.0%} · {text}"
    return text


def load_choices(settings: QSettings) -> Choices:
    c = Choices()
    for key in Choices.keys():
        default = getattr(c, key)
        value = settings.value(key, default)
        try:
            if isinstance(default, bool):
                value = value if isinstance(value, bool) else str(value).lower() in ("true", "1")
            elif isinstance(default, int):
                value = int(float(value))
            elif isinstance(default, float):
                value = float(value)
            else:
                value = str(value)
        except (TypeError, ValueError):
            value = default
        setattr(c, key, value)
    c.dwell = min(30, max(20, c.dwell))
    c.crossfade = min(12.0, max(0.0, c.crossfade))
    c.volume = min(1.0, max(0.0, c.volume))
    return c


def launch_for(c: Choices, output: str = "device") -> Launch:
    return Launch(source=c.source, library=c.library, output=output,
                  perceive={"face_enabled": c.face, "scene_enabled": c.scene, "detector_range": c.detector,
                            "atmosphere_only": c.atmosphere},
                  match={"mode": c.mode, "regulate_goal": c.goal, "target_valence": c.target_valence,
                         "target_arousal": c.target_arousal, "dwell_seconds": float(c.dwell)},
                  play={"volume": c.volume, "crossfade_s": c.crossfade})


class MainWindow(QMainWindow):
    def __init__(self, host: EngineHost, settings: QSettings, choices: Choices, *, libraries: list[str],
                 output: str = "device", kiosk: bool = False):
        super().__init__()
        self.host = host
        self.settings = settings
        self.output = output
        self.setWindowTitle("Moodsic Live")
        self.bridge = EngineBridge(host, parent=self)
        self._problem_at = 0.0
        self._esc_at = 0.0
        self._kiosk = False
        self._moods_of = None          # the library whose mood regions are drawn
        self._songs = -1
        self._last_stable_t = None
        self._progress: QProgressDialog | None = None
        self._engine_problem = ""
        self._latest = None            # the newest status (the slower widgets draw it on their own clock)
        self._samples: list = []       # stable estimates not yet on the timeline
        self._marks: list = []         # song changes not yet on the timeline
        self._refreshes = 0
        self._slow = QTimer(self)
        self._slow.setInterval(100)
        self._slow.timeout.connect(self._refresh)

        self.camera = CameraView()
        self.circumplex = CircumplexView()
        self.timeline = TimelineView(window_s=180.0)
        self.now_playing = NowPlayingPanel()
        self.controls = ControlsPanel(libraries, choices)
        self.problem = QLabel("")
        self.problem.setObjectName("problem")
        self.problem.setWordWrap(True)
        self.problem.hide()

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.circumplex)
        right.addWidget(self.now_playing)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.camera)
        top.addWidget(right)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(top)
        main.addWidget(self.timeline)
        main.setStretchFactor(0, 4)
        main.setStretchFactor(1, 1)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.problem)
        layout.addWidget(main, 1)
        self.setCentralWidget(central)

        self.dock = QDockWidget("Settings", self)
        self.dock.setObjectName("settings")
        self.dock.setWidget(self.controls)
        self.dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                              | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)

        self.status_labels = {k: QLabel("") for k in ("source", "fps", "dropped", "provider", "faces", "gated",
                                                      "switches")}
        for label in self.status_labels.values():
            self.statusBar().addPermanentWidget(label)

        self._menus()
        self.bridge.frame.connect(self.camera.set_frame)
        self.bridge.status.connect(self.show_status)
        self.bridge.said.connect(self._said)
        self.bridge.progress.connect(self._show_progress)
        self.bridge.started.connect(self._engine_started)
        self.bridge.failed.connect(self._engine_failed)
        self.bridge.library_built.connect(self._library_built)
        self.now_playing.like.connect(lambda: self._engine_call("like"))
        self.now_playing.skip.connect(lambda: self._engine_call("skip"))
        self.now_playing.replay.connect(lambda: self._engine_call("replay"))
        self.now_playing.pause_toggled.connect(lambda p: self._engine_call("pause" if p else "resume"))
        self.now_playing.volume_changed.connect(self._volume)
        self.now_playing.set_volume(choices.volume)
        self.controls.changed.connect(self._choice_changed)
        self.controls.build_library.connect(self.build_library)
        self._show_privacy()
        if kiosk:
            self.set_kiosk(True)

    # -- set-up -------------------------------------------------------------------------------

    def _menus(self) -> None:
        def action(text: str, keys, slot, menu=None) -> QAction:
            a = QAction(text, self)
            a.setShortcuts([QKeySequence(k) for k in (keys if isinstance(keys, tuple) else (keys,))])
            a.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            a.triggered.connect(slot)
            (menu or self).addAction(a)
            if menu is not None:
                self.addAction(a)          # shortcuts keep working while the menu bar is hidden (kiosk)
            return a

        bar = self.menuBar()
        f = bar.addMenu("&File")
        action("Open video…", "Ctrl+O", self.open_video, f)
        action("Open stream…", "Ctrl+U", self.open_stream, f)
        action("Build library from folder…", "Ctrl+B", self.build_library, f)
        action("Soundtrack for a video…", "Ctrl+T", lambda: self.open_soundtrack(), f)
        f.addSeparator()
        action("Quit", "Ctrl+Q", self.close, f)
        p = bar.addMenu("&Play")
        action("Pause / resume", "Space", lambda: self.now_playing.pause_button.toggle(), p)
        action("Like", "L", lambda: self._engine_call("like"), p)
        action("Skip", ("S", "Right"), lambda: self._engine_call("skip"), p)
        action("Play again", "R", lambda: self._engine_call("replay"), p)
        action("Volume up", ("Up", "+"), lambda: self._nudge_volume(+0.05), p)
        action("Volume down", ("Down", "-"), lambda: self._nudge_volume(-0.05), p)
        action("Next mode", "M", self._next_mode, p)
        p.addSeparator()
        action("Forget what I like (reset learning)", (), self.reset_learning, p)
        action("Export listening history…", (), self.export_history, p)
        action("Delete listening history…", (), self.delete_history, p)
        action("Atmosphere only", "A", lambda: self.controls.set_choice("atmosphere",
                                                                        not self.controls.choices.atmosphere), p)
        v = bar.addMenu("&View")
        action("Kiosk (full screen)", "F11", lambda: self.set_kiosk(not self._kiosk), v)
        v.addAction(self.dock.toggleViewAction())
        h = bar.addMenu("&Help")
        action("Keyboard shortcuts", "F1", self._shortcuts, h)

    def start(self) -> None:
        """Start the engine on the current choices (off the GUI thread) and the display timer."""
        self.bridge.start()
        self._slow.start()
        self.host.start(launch_for(self.controls.choices, self.output))

    # -- engine events ------------------------------------------------------------------------

    def _show_progress(self, text: str) -> None:
        if self._progress is None:
            self._progress = QProgressDialog("", "", 0, 0, self)   # busy indicator; the window stays live
            self._progress.setWindowTitle("Moodsic Live is getting ready")
            self._progress.setCancelButton(None)
            self._progress.setMinimumDuration(0)
            self._progress.setWindowModality(Qt.WindowModality.NonModal)
            self._progress.setMinimumWidth(520)
        self._progress.setLabelText(text)
        self._progress.show()
        self.statusBar().showMessage(text, 10_000)
        if self.host.engine is None:     # nothing to show yet (first run): the progress is the picture
            self.camera.set_message(f"Getting ready…\n\n{text}")

    def _close_progress(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress.deleteLater()
            self._progress = None

    def _engine_started(self, label: str) -> None:
        self._close_progress()
        self._moods_of = None
        self._songs = -1
        self._engine_problem = ""
        self._latest = None
        self._last_stable_t = None
        self._samples.clear()
        self._marks.clear()
        self.now_playing.set_paused(False)
        self.timeline.clear()
        self.circumplex.clear_trail()
        self.camera.set_message("")
        self.statusBar().showMessage(f"running on {label}", 5_000)
        self._show_privacy()

    def _engine_failed(self, text: str) -> None:
        self._close_progress()
        self.show_problem(text)
        if self.host.engine is None:
            self.camera.set_message(f"{text}\n\nChoose another source or library in Settings.")

    def _library_built(self, name: str) -> None:
        from moodsic_live.library.store import list_libraries

        names = [p.stem for p in list_libraries(self.host.base_config.library.dir)]
        self.controls.choices.library = name        # the host goes on to start it: no second restart
        self.settings.setValue("library", name)
        self.controls.set_libraries(names)
        self.controls.show_choices(self.controls.choices)

    def _said(self, text: str) -> None:
        if text.startswith(INFO):                    # information (in the status bar), not a problem
            self.statusBar().showMessage(text, 10_000)
        else:
            self.show_problem(text)

    def show_problem(self, text: str) -> None:
        self.problem.setText(f"⚠  {text}")
        self.problem.show()
        self._problem_at = time.monotonic()

    # -- the engine's status → widgets --------------------------------------------------------

    def show_status(self, s) -> None:
        engine = self.host.engine
        if engine is not None and self._moods_of is not engine.library:
            self._moods_of = engine.library
            self._set_moods(engine)
        p = s.perception
        atmosphere = self.controls.choices.atmosphere
        if p is not None:
            if atmosphere or not p.faces:
                faces = [FaceOverlay((b.x, b.y, b.w, b.h), i == 0, "", b.score) for i, b in enumerate(p.boxes)]
            else:
                faces = [FaceOverlay((r.box.x, r.box.y, r.box.w, r.box.h), i == 0, face_label(r), r.box.score)
                         for i, r in enumerate(p.faces)]
            self.camera.set_faces(faces, blur=atmosphere)
            self.camera.set_overlay(self._overlay(p, atmosphere))
        self.camera.set_message(s.capture_error)
        st = s.stable
        if st is not None and st.t != self._last_stable_t:
            self._last_stable_t = st.t
            self._samples.append((s.t, (st.valence_raw, st.arousal_raw), (st.valence, st.arousal),
                                  (st.gated_valence, st.gated_arousal)))
        if s.songs != self._songs and s.now is not None:
            if s.songs > 0:
                self._marks.append((s.t, s.now.title))
            self._songs = s.songs
        self._latest = s
        if s.problem != self._engine_problem:      # a new one (each is shown once; the host's lines too)
            self._engine_problem = s.problem
            if s.problem and s.problem not in self.problem.text():
                self.show_problem(s.problem)
        if self.problem.isVisible() and time.monotonic() - self._problem_at > PROBLEM_SHOW_S:
            self.problem.hide()

    def _refresh(self) -> None:
        """The slower widgets, on their own clock: the plane at 10 Hz; the timeline (3 minutes across the
        window: a pixel is ~0.2 s), now playing and the status bar at ~3 Hz. Estimates arrive at up to
        30 Hz; painting the plots at that rate would keep the GUI thread busy for nothing."""
        s = self._latest
        if s is None:
            return
        self._refreshes += 1
        st, now = s.stable, s.now
        self.circumplex.set_state(
            s.t, raw=(st.valence_raw, st.arousal_raw) if st else None, stable=(st.valence, st.arousal) if st else None,
            stable_sd=(math.sqrt(st.valence_var), math.sqrt(st.arousal_var)) if st else None,
            gated=bool(st and (st.gated_valence or st.gated_arousal)),
            segment=now.segment_va if now else None, segment_label=f"♪ {now.title}" if now else "")
        if self._refreshes % 3:
            return
        for sample in self._samples:
            self.timeline.add_sample(*sample)
        for mark in self._marks:
            self.timeline.add_song_change(*mark)
        self._samples.clear()
        self._marks.clear()
        self.now_playing.show_status(s)
        self._status_bar(s)

    def _set_moods(self, engine) -> None:
        from moodsic_live.match.moods import region_grid

        clusters = engine.matcher.clusters
        if clusters is None:
            return
        self.circumplex.set_moods(clusters.names, clusters.name_points, region_grid(clusters, engine.matcher.aligner))

    def _overlay(self, p, atmosphere: bool) -> list[str]:
        lines = []
        if p.boxes:
            lines.append(f"detector {p.boxes[0].score:.2f} · {len(p.boxes)} face{'s' if len(p.boxes) > 1 else ''}")
        else:
            lines.append("no face in view")
        if atmosphere:
            lines.append("atmosphere only: faces are not analysed")
        share = face_share(p.face.estimate if p.face else None, p.scene)
        if share is not None:
            who = "face expert" if share >= 0.5 else "scene expert"
            lines.append(f"dominant: {who} ({max(share, 1 - share):.0%})")
        f = p.fused
        lines.append(f"this frame: V {f.valence:+.2f} A {f.arousal:+.2f}")
        return lines

    def _status_bar(self, s) -> None:
        engine = self.host.engine
        label = engine.source.label if engine is not None else "—"
        rate = "–" if math.isnan(s.detection_rate) else f"{s.detection_rate:.0%}"
        gated = "–" if math.isnan(s.gating_share) else f"{s.gating_share:.0%}"
        texts = {"source": f"source: {label} ({s.capture})",
                 "fps": f"{s.fps_in:.0f} fps in / {s.fps_analysed:.1f} analysed",
                 "dropped": f"dropped {s.dropped_frames}", "provider": f"on {s.provider.split(' ')[0] or '…'}",
                 "faces": f"faces found {rate}", "gated": f"gated {gated}",
                 "switches": f"{s.switches_per_min:.1f} changes/min"}
        for key, text in texts.items():
            self.status_labels[key].setText(text)
        self.status_labels["provider"].setToolTip(s.provider)

    def _show_privacy(self) -> None:
        c = self.controls.choices
        on = c.source.isdigit() or "://" in c.source       # a camera or a stream: people are being watched
        if c.atmosphere:
            text = "CAMERA ON · atmosphere only" if on else "atmosphere only"
        else:
            text = "CAMERA ON · emotion is estimated" if on else "emotion is estimated"
        self.camera.set_privacy(on or c.atmosphere, text)

    # -- controls → engine --------------------------------------------------------------------

    def _engine_call(self, name: str, *args, **kwargs) -> None:
        engine = self.host.engine
        if engine is None:
            self.statusBar().showMessage("the engine is starting; try again in a moment", 3000)
            return
        try:
            getattr(engine, name)(*args, **kwargs)
        except MoodsicError as exc:
            self.show_problem(str(exc))

    def _volume(self, volume: float) -> None:
        self.controls.choices.volume = volume
        self.settings.setValue("volume", volume)
        self._engine_call("set_volume", volume)

    def _nudge_volume(self, delta: float) -> None:
        v = min(1.0, max(0.0, round(self.controls.choices.volume + delta, 2)))
        self.now_playing.set_volume(v)
        self._volume(v)

    def _next_mode(self) -> None:
        from moodsic_live.gui.controls import MODES

        c = self.controls.choices
        self.controls.set_choice("mode", MODES[(MODES.index(c.mode) + 1) % len(MODES)])

    def _choice_changed(self, key: str) -> None:
        c = self.controls.choices
        self.settings.setValue(key, getattr(c, key))
        if key in ("source", "library"):
            self._show_privacy()
            self.statusBar().showMessage(f"switching to {source_label(c.source)} …", 5000)
            self.host.start(launch_for(c, self.output))
        elif key in ("mode", "goal", "target_valence", "target_arousal"):
            self._engine_call("set_mode", c.mode, goal=c.goal, target=(c.target_valence, c.target_arousal))
        elif key == "dwell":
            self._engine_call("set_dwell", float(c.dwell))
        elif key == "crossfade":
            self._engine_call("set_crossfade", c.crossfade)
        elif key in ("face", "scene", "detector", "atmosphere"):
            self._show_privacy()
            self._engine_call("set_perception", face_enabled=c.face, scene_enabled=c.scene,
                              detector_range=c.detector, atmosphere_only=c.atmosphere)

    def open_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video", "",
                                              "Videos (*.mp4 *.mkv *.avi *.mov *.webm);;All files (*)")
        if path:
            self.controls.set_choice("source", path)

    def open_stream(self) -> None:
        url, ok = QInputDialog.getText(self, "Stream URL", "rtsp:// or http(s):// address of the stream:")
        if ok and url.strip():
            self.controls.set_choice("source", url.strip())

    def build_library(self, folder: str | None = None) -> None:
        """Analyse a music folder (own music or a DEAM root) into a library, then play from it. The
        analysis runs off the GUI thread with a progress dialog; the current music plays on meanwhile."""
        if not folder:
            folder = QFileDialog.getExistingDirectory(self, "Choose a music folder (or a DEAM root)")
        if not folder:
            return
        launch = launch_for(self.controls.choices, self.output)
        launch.build_from = folder
        self._show_progress(f"analysing the music in {folder} …")
        self.host.start(launch)

    def open_soundtrack(self, video: str | None = None) -> None:
        """Show the "Soundtrack for a video" view (one per window); analyse ``video`` when given."""
        from moodsic_live.gui.soundtrack_view import SoundtrackDialog
        from moodsic_live.play.player import device_output, silent_output

        if getattr(self, "_soundtrack", None) is None:
            play = self.host.base_config.play
            self._soundtrack = SoundtrackDialog(
                self.host.base_config, lambda: self.host.engine.library if self.host.engine else None,
                (lambda: device_output(play)) if self.output == "device" else (lambda: silent_output(play)),
                learner_getter=self._learner_snapshot, pause_live=self._pause_for_preview,
                resume_live=self._resume_after_preview, on_like=self._like_soundtrack,
                on_listen=self._preview_heard, parent=self)
        self._soundtrack.show()
        self._soundtrack.raise_()
        self._soundtrack.activateWindow()
        if video:
            self._soundtrack.analyse(video)

    def _learner_snapshot(self):
        """A copy of what the live engine learned (the ranking runs on another thread than the learner)."""
        from moodsic_live.match.learner import Learner

        engine = self.host.engine
        if engine is None or engine.learning is None:
            return None
        c = engine.config.match
        try:
            return Learner.from_dict(engine.learning.learner.to_dict(), c.hybrid, c.arcs)
        except (MoodsicError, RuntimeError):      # changed while copied: rank without it this time
            return None

    def _pause_for_preview(self) -> None:
        engine = self.host.engine
        self._paused_for_preview = engine is not None and not engine.paused
        if self._paused_for_preview:
            self._engine_call("pause")

    def _resume_after_preview(self) -> None:
        if getattr(self, "_paused_for_preview", False):   # music the listener had paused stays paused
            self._paused_for_preview = False
            self._engine_call("resume")

    def _video_song(self, song, ranking):
        from moodsic_live.engine.live import VideoSong

        engine = self.host.engine
        if engine is None:
            raise MoodsicError("the music is not running yet: this was not kept in the listening history")
        return engine, VideoSong(engine.library.name, song.track_id, song.title, song.artist,
                                 float(song.ranked.offset_s), float(ranking.video_arc.duration), ranking.context(song))

    def _like_soundtrack(self, song, ranking) -> None:
        """The listener picked a song for a video: kept in the listening history and learned from."""
        engine, video_song = self._video_song(song, ranking)
        engine.like_soundtrack(video_song)
        self.statusBar().showMessage(f"liked {song.title} for this video: the ranking learns from it", 5_000)

    def _preview_heard(self, kind: str, song, ranking, heard_s: float) -> None:
        """How a soundtrack preview went (started, skipped after heard_s, completed): kept and learned from."""
        engine, video_song = self._video_song(song, ranking)
        engine.soundtrack_preview(kind, video_song, heard_s)

    def reset_learning(self) -> None:
        if QMessageBox.question(self, "Forget what I like",
                                "Forget the learned weights and song preferences? The listening history is kept."
                                ) == QMessageBox.StandardButton.Yes:
            self._engine_call("reset_learning")

    def export_history(self, path: str | None = None) -> None:
        from moodsic_live.feedback import FeedbackStore

        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export listening history", "listening-history.jsonl",
                                                  "JSON lines (*.jsonl)")
        if not path:
            return
        engine = self.host.engine
        store = engine.feedback if engine is not None else FeedbackStore(self.host.base_config.paths.feedback)
        try:
            n = store.export(path)
        except MoodsicError as exc:
            self.show_problem(str(exc))
            return
        self.statusBar().showMessage(f"exported {n} listening event(s) to {path}", 10_000)

    def delete_history(self, confirm: bool = True) -> None:
        if confirm and QMessageBox.question(
                self, "Delete listening history",
                "Delete every recorded play, like and skip, and everything learned from them? This cannot be undone."
        ) != QMessageBox.StandardButton.Yes:
            return
        self._engine_call("delete_history")

    def _shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts", "\n".join(f"{k}\t{t}" for k, t in SHORTCUTS))

    # -- kiosk --------------------------------------------------------------------------------

    def set_kiosk(self, on: bool) -> None:
        self._kiosk = on
        self.menuBar().setVisible(not on)
        self.dock.setVisible(not on)
        self.statusBar().setVisible(not on)
        font = QFont(self.font())
        base = QFont().pointSizeF() if QFont().pointSizeF() > 0 else 10.0
        font.setPointSizeF(base * (1.7 if on else 1.0))
        self.now_playing.setFont(font)
        self.problem.setFont(font)
        self.setStyleSheet(KIOSK_STYLE if on else "")
        if on:
            self.showFullScreen()
            self.statusBar().showMessage("Esc twice to leave", 5000)
        else:
            self.showNormal()

    def keyPressEvent(self, event) -> None:
        if self._kiosk and event.key() == Qt.Key.Key_Escape:
            now = time.monotonic()
            if now - self._esc_at < 2.0:
                self.set_kiosk(False)
            else:
                self._esc_at = now
                self.show_problem("press Esc again to leave kiosk mode")
            return
        super().keyPressEvent(event)

    def closeEvent(self, event) -> None:
        self.bridge.stop()
        self._slow.stop()
        self._close_progress()
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.sync()
        self.host.close()
        super().closeEvent(event)

    # -- for tests and the screenshot option ----------------------------------------------------

    def quit_later(self, seconds: float, screenshot: str | None = None) -> None:
        def done() -> None:
            if screenshot:
                self.grab().save(screenshot)
            self.close()

        QTimer.singleShot(int(seconds * 1000), done)
