"""The "Soundtrack for a video" view: the background job on a real video made from real photos (real
models, the real 8-song library), cancelling it, a file that is no video, the DTW overlay mapped point
by point, and the dialog end to end (list, selection, silent preview, like, screenshot, closing), also
opened from the main window's File menu."""

from __future__ import annotations

import copy
import math
import os
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from conftest import DEMO  # noqa: E402
from moodsic_live.engine.soundtrack_job import CANCELLED, Preview, SoundtrackJob, clock  # noqa: E402

VIDEO_S, VIDEO_FPS = 12, 10
PREVIEW_THREADS = {"soundtrack-preview", "moodsic-silent-output", "moodsic-loader"}
SCREENSHOT = Path("/tmp/soundtrack_view.png")


@pytest.fixture(scope="module")
def st_config(small_library, models_dir, tmp_path_factory):
    """The small library's config on the real models, analysing 2 frames a second (quick)."""
    _library, base = small_library
    config = copy.deepcopy(base)
    config.paths.models_dir = models_dir
    config.paths.feedback = tmp_path_factory.mktemp("feedback") / "feedback.sqlite"
    config.perceive.tta_samples = 2
    config.perceive.video_fps = 2.0
    return config


@pytest.fixture(scope="module")
def photo_video(tmp_path_factory) -> Path:
    """12 s at 10 fps (640x480 MP4): the astronaut's face, then the coffee, then the rocket (real photos)."""
    path = tmp_path_factory.mktemp("video") / "photos.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (640, 480))
    frames = []
    for name in ("astronaut", "coffee", "rocket"):
        image = cv2.imread(str(DEMO / f"{name}.jpg"))
        scale = min(640 / image.shape[1], 480 / image.shape[0])
        small = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)))
        frame = np.zeros((480, 640, 3), np.uint8)
        y, x = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
        frame[y:y + small.shape[0], x:x + small.shape[1]] = small
        frames.append(frame)
    for i in range(VIDEO_S * VIDEO_FPS):
        writer.write(frames[min(i * len(frames) // (VIDEO_S * VIDEO_FPS), len(frames) - 1)])
    writer.release()
    return path


@pytest.fixture(scope="module")
def finished(photo_video, small_library, st_config):
    """A job run to its end, and the progress it published on the way."""
    library, _ = small_library
    job = SoundtrackJob(photo_video, library, st_config, top=5).start()
    seen = []
    deadline = time.monotonic() + 180
    while not job.done and time.monotonic() < deadline:
        seen.append(job.progress)
        time.sleep(0.02)
    assert job.wait(1.0), "the job did not finish in 3 minutes"
    seen.append(job.progress)
    return job, seen


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


# ------------------------------------------------------------------------------------------------- the job
def test_the_job_ranks_library_songs_for_a_real_video(finished, small_library):
    job, seen = finished
    library, config = small_library
    assert job.error == "" and job.result is not None, job.error
    result = job.result
    ranking = result.ranking
    assert len(ranking.songs) == 5 and ranking.compared == len(library.tracks)
    assert abs(result.plan.video["duration"] - VIDEO_S) < 0.2 and len(result.plan.emotion) >= 2 * VIDEO_S - 1
    tracks = {t.id: t for t in library.tracks}
    for song, arc in zip(ranking.songs, result.song_arcs, strict=True):
        track = tracks[song.track_id]                      # every song is a track of the library
        assert song.path == str(track.path) and song.title == track.title
        assert 0.0 <= song.ranked.offset_s <= track.duration - VIDEO_S + 1.0
        path = song.alignment.path
        assert path[0, 0] == 0 and path[-1, 0] == len(ranking.video_arc) - 1
        assert 0 <= path[:, 1].min() and path[:, 1].max() < len(arc)
        assert song.alignment.offset_s == pytest.approx(arc.t0 + path[0, 1] / arc.rate)
    scores = [s.ranked.score for s in ranking.songs]
    assert scores == sorted(scores, reverse=True)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    texts = [t for _, t in seen]
    assert any(t.startswith("watching the video: ") for t in texts) and "5 songs ranked" in texts[-1]
    assert "soundtrack-job" not in _threads()


def test_cancel_stops_the_job_within_a_frame_and_closes_the_perceiver(photo_video, small_library, st_config):
    from moodsic_live.perceive.perceiver import Perceiver

    library, _ = small_library
    closed = []

    class Recorded(Perceiver):
        def close(self) -> None:
            closed.append(time.monotonic())
            super().close()

    job = SoundtrackJob(photo_video, library, st_config, fps=10,
                        perceiver_factory=lambda: Recorded(st_config.perceive, st_config.paths.models_dir)).start()
    deadline = time.monotonic() + 120
    while job.progress[0] < 0.15 and not job.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not job.done and job.progress[1].startswith("watching the video")
    asked = time.monotonic()
    job.cancel()
    assert job.wait(3.0)
    took = time.monotonic() - asked
    print(f"\ncancelled in {took * 1000:.0f} ms at {job.progress[0]:.0%}")
    assert took < 1.5 and job.error == CANCELLED and job.result is None and job.cancelled
    assert len(closed) == 1


@pytest.mark.parametrize("kind", ["garbage", "missing"])
def test_a_file_that_is_no_video_fails_fast_in_one_line_naming_it(kind, tmp_path, small_library, st_config):
    library, _ = small_library
    video = tmp_path / "holiday.mp4"
    if kind == "garbage":
        video.write_bytes(b"this is not a video at all " * 64)
    made = []
    job = SoundtrackJob(video, library, st_config, perceiver_factory=lambda: made.append(1)).start()
    assert job.wait(10.0)
    assert job.result is None and "holiday.mp4" in job.error and "\n" not in job.error
    assert "Traceback" not in job.error and made == []          # no models loaded for a file that is no video
    assert ("does not exist" if kind == "missing" else "not a video") in job.error


def test_an_unexpected_failure_is_one_line_too(photo_video, small_library, st_config):
    library, _ = small_library

    def broken():
        raise RuntimeError("the model file\nis half written")

    job = SoundtrackJob(photo_video, library, st_config, perceiver_factory=broken).start()
    assert job.wait(10.0)
    assert job.error == "soundtrack for photos.mp4 failed: RuntimeError: the model file is half written"


# ------------------------------------------------------------------------------------------ the overlay
def _ranked_song(path, offset_s=2.0):
    from moodsic_live.engine.soundtrack_rank import RankedSong
    from moodsic_live.match.arcs import Alignment
    from moodsic_live.match.hybrid import Ranked

    alignment = Alignment(0.8, offset_s, np.array(path, np.int64), 0.05, 1.0)
    return RankedSong(Ranked(3, 0.7, (0.6, 0.8, 0.5, 1.0), offset_s), "song3.wav", "Song 3", "Band", "/x/song3.wav",
                      alignment, "score 0.70 = …")


def _arcs():
    from moodsic_live.match.arcs import Arc

    video = Arc(np.array([[-0.5, 0.1], [0.0, 0.2], [0.4, -0.3], [0.6, 0.5]]), np.zeros((4, 2)), 1.0, 0.5)
    level = np.column_stack([np.linspace(-0.9, 0.9, 7), np.linspace(0.6, -0.6, 7)])
    song = Arc(level, np.zeros((7, 2)), 1.0, 0.0)
    return video, song


def test_overlay_points_put_song_point_j_at_the_video_time_of_i():
    from moodsic_live.gui.soundtrack_view import overlay_points

    video, song_arc = _arcs()
    path = [[0, 2], [1, 2], [1, 3], [2, 4], [3, 5]]          # the song lingers, then catches up
    points = overlay_points(_ranked_song(path), video, song_arc)
    level = song_arc.level
    assert points == [(0.5, level[2, 0], level[2, 1]), (1.5, level[2, 0], level[2, 1]),
                      (1.5, level[3, 0], level[3, 1]), (2.5, level[4, 0], level[4, 1]),
                      (3.5, level[5, 0], level[5, 1])]
    # the same times as the JSON contract's dtw_path (video seconds)
    data = _ranked_song(path).to_json(video.rate, video.t0)
    assert [p[0] for p in data["dtw_path"]] == [t for t, _, _ in points]


def _near_colour(image, x: float, y: float, colour: QColor, radius: int = 3, tol: int = 40) -> bool:
    for dx in range(-radius, radius + 1):
        for dy in range(-radius, radius + 1):
            c = image.pixelColor(int(math.floor(x)) + dx, int(math.floor(y)) + dy)
            if all(abs(a - b) <= tol for a, b in zip((c.red(), c.green(), c.blue()),
                                                     (colour.red(), colour.green(), colour.blue()))):
                return True
    return False


def test_the_plot_draws_the_video_and_the_song_where_they_belong(qtbot):
    from moodsic_live.gui import timeline as tl
    from moodsic_live.gui.soundtrack_view import ArcPlot, overlay_points

    plot = ArcPlot()
    qtbot.addWidget(plot)
    plot.resize(800, 320)
    video, song_arc = _arcs()
    plot.set_video(video, duration_s=4.0)
    assert plot.time_to_x(0.0) == pytest.approx(plot.lane_rect(0).left())
    assert plot.time_to_x(4.0) == pytest.approx(plot.lane_rect(0).right())
    assert plot.value_to_y(1, 1.0) == pytest.approx(plot.lane_rect(1).top())
    assert plot.value_to_y(0, -1.0) == pytest.approx(plot.lane_rect(0).bottom())
    points = overlay_points(_ranked_song([[0, 1], [1, 1], [2, 3], [3, 6]]), video, song_arc)
    plot.set_song(points, "♪ Band – Song 3, from 0:02")
    image = plot.grab().toImage()
    for t, (v, a) in zip(video.times(), video.level):          # the video in the lanes' colours
        assert _near_colour(image, plot.time_to_x(t), plot.value_to_y(0, v), tl.VALENCE)
        assert _near_colour(image, plot.time_to_x(t), plot.value_to_y(1, a), tl.AROUSAL)
    t, v, a = points[2]                                          # the song (dashed): near its points
    assert _near_colour(image, plot.time_to_x(t), plot.value_to_y(0, v), tl.SONG, radius=4)
    assert _near_colour(image, plot.time_to_x(t), plot.value_to_y(1, a), tl.SONG, radius=4)
    # no song pixel where the song is not (the valence lane's top left corner region)
    assert not _near_colour(image, plot.time_to_x(0.5), plot.value_to_y(0, 0.9), tl.SONG, radius=4)
    plot.set_playhead(2.0)
    assert plot.playhead == 2.0
    image = plot.grab().toImage()
    x = round(plot.time_to_x(2.0))
    assert _near_colour(image, x, plot.lane_rect(0).top() + 6, QColor(255, 255, 255), radius=1, tol=70)
    assert "%" not in plot.song_text and plot.span_s == 4.0
    assert tl  # (the colours are the timeline's: one palette for the app)


# -------------------------------------------------------------------------------------------- the dialog
class Calls:
    def __init__(self) -> None:
        self.log: list = []

    def __call__(self, name: str):
        return lambda *args: self.log.append((name, *args))

    def names(self) -> list[str]:
        """The calls steering the live music and likes (how previews went: :meth:`heard`)."""
        return [c[0] for c in self.log if c[0] != "listen"]

    def heard(self) -> list[tuple[str, str, float]]:
        """(kind, track id, seconds heard) of each preview event told to ``on_listen``."""
        return [(c[1], c[2].track_id, c[4]) for c in self.log if c[0] == "listen"]


def _dialog(qtbot, config, library, calls: Calls, output=None):
    from moodsic_live.gui.app import DARK
    from moodsic_live.gui.soundtrack_view import SoundtrackDialog
    from moodsic_live.play.player import silent_output

    dialog = SoundtrackDialog(config, lambda: library, output or (lambda: silent_output(config.play)),
                              pause_live=calls("pause"), resume_live=calls("resume"), on_like=calls("like"), on_listen=calls("listen"), top=5)
    dialog.setStyleSheet(DARK + dialog.styleSheet())    # as the app looks (set on the dialog only)
    qtbot.addWidget(dialog)
    dialog.resize(1000, 700)
    dialog.show()
    return dialog


def test_the_dialog_ranks_previews_likes_and_closes_cleanly(qtbot, photo_video, small_library, st_config):
    from moodsic_live.gui.soundtrack_view import overlay_points, song_label

    library, _ = small_library
    calls = Calls()
    dialog = _dialog(qtbot, st_config, library, calls)
    assert not dialog.play_button.isEnabled() and not dialog.like_button.isEnabled()
    dialog.analyse(photo_video)
    assert dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: "watching the video" in dialog.progress.format(), timeout=60_000)
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=180_000)
    ranking = dialog.result.ranking
    assert dialog.table.rowCount() == len(ranking.songs) == 5 and not dialog.cancel_button.isEnabled()
    assert dialog.progress.value() == 1000 and "5 best of 8 songs" in dialog.progress.format()
    for row, song in enumerate(ranking.songs):
        assert dialog.table.item(row, 0).text() == str(row + 1)
        assert dialog.table.item(row, 1).text() == song_label(song)
        assert dialog.table.item(row, 2).text() == clock(song.ranked.offset_s)
        assert dialog.table.item(row, 3).text() == f"{song.ranked.score:.2f}"
        assert song.why in dialog.table.item(row, 1).toolTip() and dialog.table.item(row, 5).text() == song.why
    assert "photos.mp4 · 0:12 · 640×480" == dialog.video_label.text()

    # the first song is selected and overlaid; selecting row 2 overlays the second song
    first = ranking.songs[0]
    assert dialog.selected_index() == 0 and song_label(first) in dialog.plot.song_text
    assert f"from {clock(first.ranked.offset_s)}" in dialog.plot.song_text
    dialog.table.selectRow(1)
    second = ranking.songs[1]
    assert dialog.selected_song() is second and song_label(second) in dialog.plot.song_text
    expected = overlay_points(second, ranking.video_arc, dialog.result.song_arcs[1])
    assert np.array_equal(dialog.plot.song, np.array(expected))
    assert dialog.plot.span_s == pytest.approx(VIDEO_S, abs=0.2)

    # preview (silent output): the live music pauses, the playhead moves, Stop ends it and the music resumes
    qtbot.mouseClick(dialog.play_button, Qt.MouseButton.LeftButton)
    assert calls.names() == ["pause"]
    qtbot.waitUntil(lambda: dialog.preview is not None and dialog.preview.state == "playing", timeout=10_000)
    assert PREVIEW_THREADS <= _threads()
    qtbot.waitUntil(lambda: (dialog.plot.playhead or 0.0) > 0.3, timeout=5_000)
    assert dialog.status.text().startswith("▶ 0:0") and song_label(second) in dialog.status.text()
    assert dialog.stop_button.isEnabled()
    dialog.grab().save(str(SCREENSHOT))                        # mid-preview: the playhead is on the plot
    assert SCREENSHOT.stat().st_size > 20_000
    preview = dialog.preview
    stopped = time.monotonic()
    qtbot.mouseClick(dialog.stop_button, Qt.MouseButton.LeftButton)
    assert time.monotonic() - stopped < 0.2                    # the GUI thread does not wait for the fade
    assert calls.names() == ["pause", "resume"] and dialog.plot.playhead is None
    qtbot.waitUntil(lambda: not (PREVIEW_THREADS & _threads()), timeout=1_500)
    assert preview.state == "stopped" and not dialog.stop_button.isEnabled()
    (k1, id1, h1), (k2, id2, h2) = calls.heard()           # heard, then stopped by the listener
    assert (k1, k2) == ("started", "skipped") and id1 == id2 == second.track_id and h1 == 0.0 and h2 > 0.3

    # like: the selected song and the ranking go to the callback
    qtbot.mouseClick(dialog.like_button, Qt.MouseButton.LeftButton)
    assert calls.log[-1] == ("like", second, ranking) and "liked" in dialog.status.text()

    # Space in the list plays the selected song; closing stops it, gives the music back and ends the threads
    dialog.table.setFocus()
    qtbot.keyClick(dialog.table, Qt.Key.Key_Space)
    assert calls.names()[-1] == "pause"
    qtbot.waitUntil(lambda: dialog.preview is not None and dialog.preview.state == "playing", timeout=10_000)
    dialog.close()
    assert calls.names()[-1] == "resume" and not dialog.isVisible()
    qtbot.waitUntil(lambda: not (PREVIEW_THREADS & _threads()), timeout=1_500)
    assert not dialog.problem.isVisible()


def test_the_screenshot_reads_well(qtbot, photo_video, small_library, st_config, finished):
    """The dialog as a user sees it (also written to /tmp/soundtrack_view.png by the test above)."""
    library, _ = small_library
    dialog = _dialog(qtbot, st_config, library, Calls())
    dialog.show_result(finished[0].result)
    dialog.select(1)
    image = dialog.grab().toImage()
    assert image.width() == 1000 and image.height() == 700
    colours = {image.pixel(x, y) for x in range(0, 1000, 7) for y in range(0, 700, 7)}
    assert len(colours) > 40                                     # drawn, not a blank sheet
    plot = dialog.plot
    assert plot.height() > 200 and dialog.table.height() > 120     # room for the arcs and the list
    if not SCREENSHOT.exists():
        dialog.grab().save(str(SCREENSHOT))


def test_closing_the_dialog_cancels_the_analysis(qtbot, photo_video, small_library, st_config):
    library, _ = small_library
    dialog = _dialog(qtbot, st_config, library, Calls())
    dialog.analyse(photo_video)
    job = dialog.job
    qtbot.waitUntil(lambda: "watching the video" in job.progress[1], timeout=60_000)
    dialog.close()
    assert job.wait(2.0) and job.error == CANCELLED
    assert dialog.job is None and "cancelled" in dialog.progress.format()


def test_cancel_button_and_a_second_video_while_the_first_is_analysed(qtbot, photo_video, small_library, st_config,
                                                                      tmp_path):
    library, _ = small_library
    dialog = _dialog(qtbot, st_config, library, Calls())
    dialog.analyse(photo_video)
    first = dialog.job
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"nope" * 256)
    dialog.analyse(broken)                                      # the first is cancelled, the second fails in one line
    assert first.wait(3.0) and first.error == CANCELLED
    qtbot.waitUntil(lambda: dialog.problem.isVisible(), timeout=10_000)
    assert "broken.mp4" in dialog.problem.text() and "\n" not in dialog.problem.text()
    assert dialog.progress.format() == "could not analyse broken.mp4"
    assert dialog.table.rowCount() == 0 and dialog.result is None
    dialog.analyse(photo_video)
    qtbot.waitUntil(lambda: "watching the video" in dialog.progress.format(), timeout=60_000)
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.job is None, timeout=3_000)
    assert dialog.progress.format() == CANCELLED and not dialog.problem.isVisible()    # asked for: no problem


def test_no_library_and_no_sound_card_are_one_line_each(qtbot, small_library, st_config, finished):
    from moodsic_live.gui.soundtrack_view import NO_LIBRARY, SoundtrackDialog
    from moodsic_live.play.player import device_output

    library, _ = small_library
    calls = Calls()
    dialog = SoundtrackDialog(st_config, lambda: None, lambda: device_output(st_config.play))
    qtbot.addWidget(dialog)
    dialog.analyse("/nowhere/video.mp4")
    assert dialog.job is None and dialog.problem.text() == f"⚠  {NO_LIBRARY}" and "no library yet" in NO_LIBRARY

    play = copy.deepcopy(st_config.play)
    play.device = "no-such-sound-card-here"
    dialog = _dialog(qtbot, st_config, library, calls, output=lambda: device_output(play))
    dialog.show_result(finished[0].result)
    dialog.play_preview()
    qtbot.waitUntil(lambda: dialog.problem.isVisible(), timeout=10_000)
    text = dialog.problem.text()
    assert text.startswith("⚠  cannot play the preview: ") and "\n" not in text and "Traceback" not in text
    assert calls.names() == ["pause", "resume"] and dialog.preview is None
    assert "soundtrack-preview" not in _threads()


def test_a_preview_plays_for_the_videos_length_and_ends_by_itself(small_library, st_config):
    from moodsic_live.play.player import silent_output

    library, _ = small_library
    track = library.tracks[0]
    preview = Preview(st_config.play, lambda: silent_output(st_config.play))
    preview.start(track.path, track.id, 10.0, 1.5)
    deadline = time.monotonic() + 10
    while preview.state != "finished" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert preview.state == "finished" and preview.position_s == 1.5 and preview.error == ""
    assert preview.stop(1.0) and not preview.alive
    with pytest.raises(RuntimeError):
        preview.start(track.path, track.id, 0.0, 1.0)


def test_the_main_window_opens_the_view_from_the_file_menu(qtbot, st_config, tmp_path, photo_video):
    from moodsic_live.gui.controls import Choices
    from moodsic_live.gui.host import EngineHost
    from moodsic_live.gui.window import MainWindow

    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    window = MainWindow(EngineHost(st_config), settings, Choices(library="songs"), libraries=["songs"],
                        output="none")
    qtbot.addWidget(window)
    file_menu = window.menuBar().actions()[0].menu()
    action = next(a for a in file_menu.actions() if a.text() == "Soundtrack for a video…")
    assert action.shortcut().toString() == "Ctrl+T"
    action.trigger()
    dialog = window._soundtrack
    assert dialog.isVisible() and not dialog.isModal()
    window.open_soundtrack(str(photo_video))                    # no engine yet, so no library: one line
    assert window._soundtrack is dialog and "no library yet" in dialog.problem.text()
    # while the view has the keyboard, the window's one-key shortcuts (live music) do not fire
    # (keys go to the QWindow, so they pass Qt's shortcut map as a user's would)
    steered = []
    window._engine_call = lambda name, *a, **k: steered.append(name)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=2_000)
    QTest.keyClick(window.windowHandle(), Qt.Key.Key_L)
    assert steered == ["like"]                                 # the window's own: likes the live song
    dialog.activateWindow()
    dialog.table.setFocus()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog, timeout=2_000)
    for key in (Qt.Key.Key_Space, Qt.Key.Key_L, Qt.Key.Key_S, Qt.Key.Key_Right):
        QTest.keyClick(dialog.windowHandle(), key)
    assert steered == ["like"]
    dialog.close()
    window.close()


def test_a_like_in_the_view_is_kept_and_learned_and_the_window_resets_exports_and_deletes(
        qtbot, st_config, tmp_path, photo_video):
    """With the music running: the view ranks with what the engine learned, a Like goes into the listening
    history (shown + liked, the video's terms) and the learner's video weights; the preview pauses only music
    that was playing; the window's Play menu forgets what was learned, exports the history and deletes it."""
    import json

    from moodsic_live.gui.controls import Choices
    from moodsic_live.gui.host import EngineHost
    from moodsic_live.gui.window import MainWindow

    config = copy.deepcopy(st_config)
    config.paths.feedback = tmp_path / "feedback.sqlite"
    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    window = MainWindow(EngineHost(config), settings, Choices(library="songs"), libraries=["songs"], output="none")
    qtbot.addWidget(window)
    window.show()
    window.start()
    qtbot.waitUntil(lambda: window.host.engine is not None and window.host.engine.status is not None
                    and window.host.engine.status.now is not None, timeout=60_000)
    engine = window.host.engine
    qtbot.waitUntil(lambda: window.now_playing.why.text().startswith("why: "), timeout=2_000)

    window.open_soundtrack(str(photo_video))
    dialog = window._soundtrack
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=180_000)
    ranking = dialog.result.ranking
    assert ranking.weights == engine.learning.learner.weights("video")   # ranked with what was learned
    dialog.table.selectRow(1)
    song = dialog.selected_song()
    qtbot.mouseClick(dialog.like_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: engine.learning.learner.plays("video") == 1, timeout=2_000)
    video_rows = [r for r in engine.feedback.rows() if r.mode == "video"]
    assert [r.kind for r in video_rows] == ["shown", "liked"] and video_rows[1].recommendation == video_rows[0].id
    assert video_rows[0].track_id == song.track_id and video_rows[0].context["rank"] == 2
    assert video_rows[0].context["terms"] == [round(x, 4) for x in song.ranked.terms]
    assert engine.learning.learner.preference([song.track_id])[0] > 0.5

    # a preview pauses the live music and gives it back; stopped after a moment it is an early skip (-1),
    # kept as a play of the video's song and learned from; music the listener paused stays paused
    qtbot.mouseClick(dialog.play_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: engine.status.paused, timeout=2_000)
    qtbot.waitUntil(lambda: (dialog.plot.playhead or 0.0) > 0.5, timeout=10_000)
    qtbot.mouseClick(dialog.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not engine.status.paused, timeout=2_000)
    qtbot.waitUntil(lambda: engine.learning.learner.plays("video") == 2, timeout=2_000)
    started, skipped = [r for r in engine.feedback.rows() if r.mode == "video"][2:]
    assert (started.kind, skipped.kind) == ("started", "skipped") and skipped.recommendation == started.id
    assert started.position_s == pytest.approx(song.ranked.offset_s, abs=0.01)
    assert 0.5 < skipped.position_s - started.position_s < 5.0 and started.context["hybrid"] == "video"
    assert started.context["duration_s"] == pytest.approx(song.ranked.offset_s + VIDEO_S, abs=1.0)
    engine.pause()
    qtbot.waitUntil(lambda: engine.status.paused, timeout=2_000)
    qtbot.mouseClick(dialog.play_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dialog.stop_button, Qt.MouseButton.LeftButton)
    qtbot.wait(600)
    assert engine.status.paused
    engine.resume()
    dialog.close()

    play_menu = window.menuBar().actions()[1].menu()
    names = [a.text() for a in play_menu.actions()]
    assert {"Forget what I like (reset learning)", "Export listening history…", "Delete listening history…"} <= \
        set(names)
    engine.reset_learning()                                    # what the menu's Yes does
    qtbot.waitUntil(lambda: engine.learning.learner.plays("video") == 0, timeout=2_000)
    assert engine.learning.learner.preference([song.track_id])[0] == 0.5
    out = tmp_path / "history.jsonl"
    window.export_history(str(out))
    kinds = [json.loads(line)["kind"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert "shown" in kinds and "liked" in kinds and "started" in kinds
    window.delete_history(confirm=False)
    qtbot.waitUntil(lambda: not config.paths.feedback.exists(), timeout=2_000)
    qtbot.waitUntil(lambda: "listening history deleted" in window.statusBar().currentMessage(), timeout=2_000)
    assert not window.problem.isVisible()                      # information, not a problem
    window.close()
