"""The desktop window on the real engine (offscreen Qt, real models, real songs, silent real-time output):
it builds, the demo plays through the engine, widgets follow the engine's signals, controls change the
engine, bad input is shown in the window while the app keeps running, and closing stops every thread
within a second. Also the command: --screenshot, and what it says without a display."""

from __future__ import annotations

import copy
import os
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt  # noqa: E402

from conftest import ROOT, run_cli, write_config  # noqa: E402

ENGINE_THREADS = {"capture", "perceive", "stabilise-match", "engine-host", "moodsic-silent-output"}


@pytest.fixture()
def gui_config(small_library, models_dir, tmp_path):
    library, base = small_library
    config = copy.deepcopy(base)
    config.paths.models_dir = models_dir
    config.paths.feedback = tmp_path / "feedback.sqlite"
    config.perceive.tta_samples = 2
    return config


def _window(gui_config, tmp_path, **choices):
    from moodsic_live.gui.controls import Choices
    from moodsic_live.gui.host import EngineHost
    from moodsic_live.gui.window import MainWindow

    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    c = Choices(library="songs", **choices)
    window = MainWindow(EngineHost(gui_config), settings, c, libraries=["songs"], output="none")
    window.resize(1280, 800)
    return window


def _started(qtbot, window) -> None:
    window.show()
    window.start()
    qtbot.waitUntil(lambda: window.host.engine is not None and window.host.engine.status is not None
                    and window.host.engine.status.now is not None, timeout=60_000)


def _alive() -> set[str]:
    return {t.name for t in threading.enumerate()} & ENGINE_THREADS


def test_the_window_plays_the_demo_follows_the_engine_and_steers_it(qtbot, gui_config, tmp_path):
    window = _window(gui_config, tmp_path)
    qtbot.addWidget(window)
    _started(qtbot, window)
    engine = window.host.engine

    # widgets follow the engine's signals
    with qtbot.waitSignal(window.bridge.status, timeout=2000) as blocker:
        pass
    status = blocker.args[0]
    shown = window.camera.frames_shown
    qtbot.wait(1000)
    assert window.camera.frames_shown - shown >= 15          # the preview follows the 30 fps demo
    qtbot.waitUntil(lambda: window.timeline.sample_count > 3, timeout=5000)
    assert len(window.circumplex.trail_points()) > 0
    assert window.now_playing.title.text() == engine.status.now.title
    tags = engine.status.now.tags  # the tagger's top tags (this features-only test library has none)
    assert window.now_playing.tags.text() == (f"sounds: {tags}" if tags else "")
    assert "/" in window.now_playing.progress.format() and window.now_playing.dwell.text()
    assert window.now_playing.up_next.text().startswith("Up next: ") and status.up_next
    assert "fps in" in window.status_labels["fps"].text() and "CPU" in window.status_labels["provider"].text()

    # controls change the engine
    c = window.controls
    c.mode.setCurrentIndex(c.mode.findData("regulate"))
    qtbot.waitUntil(lambda: engine.config.match.mode == "regulate", timeout=2000)
    c.goal.setCurrentIndex(c.goal.findData("energise"))
    qtbot.waitUntil(lambda: engine.config.match.regulate_goal == "energise", timeout=2000)
    c.dwell.setValue(20)
    qtbot.waitUntil(lambda: engine.config.match.dwell_seconds == 20.0, timeout=2000)
    c.crossfade.setValue(2.5)
    qtbot.waitUntil(lambda: engine.config.play.crossfade_s == 2.5, timeout=2000)
    first = engine.status.now.track_id
    qtbot.mouseClick(window.now_playing.skip_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: engine.status.now.track_id != first, timeout=2000)
    qtbot.mouseClick(window.now_playing.like_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: [r.kind for r in engine.feedback.rows() if r.kind in ("skipped", "liked")]
                    == ["skipped", "liked"], timeout=2000)
    qtbot.mouseClick(window.now_playing.replay_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: engine.feedback.rows()[-1].kind == "replayed", timeout=2000)
    qtbot.mouseClick(window.now_playing.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: engine.status.paused and window.now_playing.dwell.text() == "paused", timeout=2000)
    qtbot.mouseClick(window.now_playing.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not engine.status.paused, timeout=2000)
    generation = engine.worker.generation
    c.face.setChecked(False)
    qtbot.waitUntil(lambda: engine.worker.generation > generation and not engine.worker.config.face_enabled,
                    timeout=15_000)
    c.face.setChecked(True)
    c.atmosphere.setChecked(True)
    qtbot.waitUntil(lambda: engine.worker.config.atmosphere_only, timeout=15_000)
    qtbot.waitUntil(lambda: window.camera._blur, timeout=5000)
    assert "atmosphere only" in window.camera._privacy_text

    # choices are remembered
    window.settings.sync()
    again = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    from moodsic_live.gui.window import load_choices

    remembered = load_choices(again)
    assert (remembered.mode, remembered.goal, remembered.dwell, remembered.crossfade, remembered.atmosphere) == \
        ("regulate", "energise", 20, 2.5, True)

    # closing stops every thread within a second
    t0 = time.monotonic()
    window.close()
    took = time.monotonic() - t0
    assert took < 1.0, took
    assert not _alive(), _alive()


def test_bad_input_is_shown_in_the_window_and_the_music_goes_on(qtbot, gui_config, tmp_path):
    gui_config.play.device = "no-such-sound-card"
    window = _window(gui_config, tmp_path)
    window.output = "device"
    qtbot.addWidget(window)
    _started(qtbot, window)
    engine = window.host.engine
    # no audio device: said in the window; the loop runs silently
    qtbot.waitUntil(lambda: "no audio output device" in window.problem.text().lower(), timeout=3000)
    assert window.problem.isVisible()

    # a video that cannot be opened: one line in the window; the running engine keeps playing
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    window.controls.set_choice("source", str(broken))
    qtbot.waitUntil(lambda: "broken.mp4" in window.problem.text(), timeout=10_000)
    assert window.host.engine is engine and engine.running

    # a folder without music: one line in the window; the music goes on
    empty = tmp_path / "no-music"
    empty.mkdir()
    (empty / "notes.txt").write_text("no songs here")
    window.build_library(str(empty))
    qtbot.waitUntil(lambda: "no audio files found" in window.problem.text(), timeout=10_000)
    assert window.host.engine is engine and engine.running and window._progress is None

    # a camera that is missing: said on the camera view, the music keeps playing from the last estimate
    window.controls.set_choice("source", "9")
    qtbot.waitUntil(lambda: window.host.engine is not None and window.host.engine is not engine, timeout=30_000)
    qtbot.waitUntil(lambda: "camera 9" in window.camera._message, timeout=10_000)
    assert window.host.engine.running and "CAMERA ON" in window.camera._privacy_text
    window.close()
    assert not _alive(), _alive()


def test_kiosk_is_full_screen_without_menus_and_esc_twice_leaves(qtbot, gui_config, tmp_path):
    window = _window(gui_config, tmp_path)
    qtbot.addWidget(window)
    normal = window.now_playing.title.font().pointSizeF()
    window.set_kiosk(True)
    qtbot.waitUntil(window.isFullScreen, timeout=2000)
    assert not window.menuBar().isVisible() and not window.dock.isVisible() and not window.statusBar().isVisible()
    window.now_playing.title.ensurePolished()
    assert window.now_playing.title.font().pointSizeF() >= 1.5 * normal      # large type
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert window.isFullScreen() and "Esc again" in window.problem.text()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=2000)
    assert window.menuBar().isVisible() and window.dock.isVisible()
    window.close()


def test_gui_command_screenshot_and_no_display(small_library, models_dir, tmp_path):
    library, config = small_library
    cfg = write_config(tmp_path / "c.toml", config)
    shot = tmp_path / "window.png"
    r = run_cli("gui", "--source", "demo", "--library", "songs", "--output", "none", "--config", str(cfg),
                "--settings", str(tmp_path / "gui.ini"), "--screenshot", str(shot), "--quit-after", "12",
                env={"QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    from PySide6.QtGui import QImage

    image = QImage(str(shot))
    assert image.width() >= 1000 and image.height() >= 700
    colours = {image.pixel(x, y) for x in range(0, image.width(), 23) for y in range(0, image.height(), 23)}
    assert len(colours) > 200                                  # a real window with a picture, not a blank

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    import subprocess
    import sys

    r = subprocess.run([sys.executable, str(ROOT / "main.py")], capture_output=True, text=True, env=env,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0] and "offscreen" in lines[0] and "run --headless" in lines[0]


def test_region_grid_labels_the_plane_like_the_clusters(small_library):
    import numpy as np

    from moodsic_live.engine.soundtrack import matcher_for
    from moodsic_live.match.moods import region_grid

    library, config = small_library
    m = matcher_for(library, config)
    grid = region_grid(m.clusters, m.aligner, n=40)
    assert grid.shape == (40, 40) and set(np.unique(grid)) <= set(range(len(m.clusters)))
    # each name point lies in its own region
    for j, (v, a) in enumerate(m.clusters.name_points):
        col = min(39, int((v + 1) / 2 * 40))
        row = min(39, int((1 - a) / 2 * 40))
        assert grid[row, col] == j or m.clusters.name_of(*m.aligner(v, a)) == m.clusters.names[grid[row, col]]


def test_face_share_says_which_expert_dominates():
    from moodsic_live.perceive.estimate import VA
    from moodsic_live.perceive.fusion import face_share

    sure_face, vague_scene = VA(0.5, 0.2, 0.02, 0.02), VA(0.0, 0.0, 0.2, 0.2)
    assert face_share(sure_face, vague_scene) == pytest.approx(10 / 11)
    assert face_share(None, vague_scene) == 0.0 and face_share(sure_face, None) == 1.0
    assert face_share(None, None) is None


def test_settings_file_is_read_defensively(tmp_path):
    from moodsic_live.gui.window import load_choices

    path = Path(tmp_path / "gui.ini")
    path.write_text("[General]\ndwell=99\ncrossfade=abc\nvolume=0.3\natmosphere=true\nmode=target\n")
    c = load_choices(QSettings(str(path), QSettings.Format.IniFormat))
    assert c.dwell == 30 and c.crossfade == 4.0 and c.volume == 0.3 and c.atmosphere and c.mode == "target"


def test_building_a_library_from_a_folder_shows_progress_then_plays_from_it(qtbot, gui_config, small_library,
                                                                             tmp_path):
    library, _ = small_library
    window = _window(gui_config, tmp_path)
    qtbot.addWidget(window)
    _started(qtbot, window)
    first = window.host.engine
    progress: list[str] = []
    window.bridge.progress.connect(progress.append)
    gaps, last = [], [time.monotonic()]

    def beat() -> None:                         # the GUI thread keeps turning while the host builds
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    from PySide6.QtCore import QTimer

    timer = QTimer()
    timer.timeout.connect(beat)
    timer.start(50)
    window.build_library(library.meta["source"])
    assert window._progress is not None and "analysing the music in" in window._progress.labelText()
    qtbot.waitUntil(lambda: window.controls.choices.library == "music", timeout=60_000)
    qtbot.waitUntil(lambda: window.host.engine is not None and window.host.engine is not first
                    and window.host.engine.library.name == "music" and window.host.engine.status is not None,
                    timeout=60_000)
    timer.stop()
    assert window._progress is None
    assert any("analysing the music" in line for line in progress) and any("music" in line for line in progress)
    assert window.controls.library.findData("music") >= 0
    assert max(gaps) < 1.0, max(gaps)           # never frozen (models load and the old engine stops off-thread)
    window.close()
    assert not _alive(), _alive()


def test_models_missing_lists_what_the_first_run_builds(tmp_path):
    from moodsic_live.config import Config
    from moodsic_live.gui.host import models_missing

    c = Config()
    c.paths.models_dir = tmp_path
    assert [p.name for p in models_missing(c)] == ["face_fer2013.onnx", "scene_affect.onnx"]
    c.perceive.face_enabled = False
    assert [p.name for p in models_missing(c)] == ["scene_affect.onnx"]
    (tmp_path / "scene_affect.onnx").write_bytes(b"x")
    assert models_missing(c) == []
