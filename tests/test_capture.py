"""The capture thread: source parsing, real-time files, newest-frame hand-off, demo, lost cameras, clean stop."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from moodsic_live.capture.demo import DemoReel, Grade, demo_frames, demo_scenes, grade_matrix
from moodsic_live.capture.source import (CaptureStats, CaptureThread, RetryPolicy, SourceSpec, open_video,
                                         parse_source)
from moodsic_live.errors import InputError
from moodsic_live.frames import Frame
from moodsic_live.perceive.worker import LatestSlot

FAST_RETRY = RetryPolicy(initial=0.1, factor=2.0, max_delay=0.4)


# ------------------------------------------------------------------------------------- helpers


BITS = 6


def numbered(i: int, w: int = 320, h: int = 240) -> np.ndarray:
    """A frame showing ``i`` in binary as black/white vertical bands (survives lossy codecs)."""
    image = np.zeros((h, w, 3), np.uint8)
    band = w // BITS
    for b in range(BITS):
        if i >> b & 1:
            image[:, b * band:(b + 1) * band] = 255
    return image


def frame_number(image: np.ndarray) -> int:
    h, w = image.shape[:2]
    band = w // BITS
    centre = image[h // 4: 3 * h // 4]
    return sum(1 << b for b in range(BITS) if centre[:, b * band + band // 4: (b + 1) * band - band // 4].mean() > 128)


def make_video(path: Path, n: int, fps: float = 10.0, fourcc: str | None = None) -> Path:
    fourcc = fourcc or ("MJPG" if path.suffix == ".avi" else "mp4v")
    w, h = 320, 240
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"cannot write {path}"
    for i in range(n):
        writer.write(numbered(i, w, h))
    writer.release()
    assert path.stat().st_size > 0
    return path


class Recorder:
    """An ``on_frame`` that keeps what it got (and when)."""

    def __init__(self):
        self.frames: list[Frame] = []
        self.lock = threading.Lock()

    def __call__(self, frame: Frame) -> None:
        with self.lock:
            self.frames.append(frame)

    def snapshot(self) -> list[Frame]:
        with self.lock:
            return list(self.frames)


class FakeCapture:
    """A camera that gives a frame every ``period`` s, ``limit`` frames, then fails (lost)."""

    def __init__(self, opened: bool = True, limit: int | None = None, period: float = 0.03, start: int = 0):
        self.opened = opened
        self.limit = limit
        self.period = period
        self.n = 0
        self.start = start
        self.released = False

    def isOpened(self) -> bool:
        return self.opened

    def read(self):
        if not self.opened or (self.limit is not None and self.n >= self.limit):
            return False, None
        time.sleep(self.period)
        image = numbered((self.start + self.n) % 64, 96, 48)
        self.n += 1
        return True, image

    def get(self, prop_id: int) -> float:
        return 30.0 if prop_id == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True


def wait_for(predicate, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def stop_quickly(cap: CaptureThread) -> None:
    t = time.monotonic()
    assert cap.stop(timeout=1.0)
    assert time.monotonic() - t < 1.0
    assert not cap.is_alive()
    assert cap.ended.is_set()
    assert cap.state in ("stopped", "failed")


def one_line(message: str) -> bool:
    return bool(message) and "\n" not in message and "Traceback" not in message


# ---------------------------------------------------------------------------------------- parse


def test_parse_source_kinds(tmp_path):
    assert parse_source("0") == SourceSpec("camera", "0")
    assert parse_source(" 9 ").camera_index == 9
    assert parse_source("12").kind == "camera"
    assert parse_source("demo").kind == "demo"
    assert parse_source("DEMO").kind == "demo"
    for url in ("rtsp://cam.local:554/stream1", "http://10.0.0.2:8080/video", "https://example.org/clip.mp4"):
        spec = parse_source(url)
        assert spec.kind == "url" and spec.value == url and spec.live
    secret = parse_source("rtsp://admin:hunter2@cam.local/stream")
    assert "hunter2" not in secret.label and "cam.local/stream" in secret.label
    video = make_video(tmp_path / "clip.avi", 3)
    spec = parse_source(str(video))
    assert spec == SourceSpec("file", str(video), False) and not spec.live
    assert parse_source(str(video), loop=True).loop
    assert parse_source("3").label == "camera 3"


@pytest.mark.parametrize("text, words", [
    ("missing.mp4", ["video", "missing.mp4", "does not exist"]),
    ("", ["source is empty", "demo"]),
    ("rtsp://", ["has no host"]),
])
def test_parse_source_errors_are_one_line(tmp_path, text, words):
    if text == "missing.mp4":
        text = str(tmp_path / text)
    with pytest.raises(InputError) as info:
        parse_source(text)
    message = str(info.value)
    assert one_line(message)
    for w in words:
        assert w in message


def test_a_folder_or_an_undecodable_file_fails_before_the_thread_starts(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        parse_source(str(tmp_path))
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("this is not a video\n")
    cap = CaptureThread(parse_source(str(bogus)), Recorder())
    with pytest.raises(InputError) as info:
        cap.start()
    assert one_line(str(info.value)) and "notes.mp4" in str(info.value)
    assert not cap.is_alive()
    assert cap.stop()  # stopping a thread that never started is fine


# ----------------------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", ["clip.avi", "clip.mp4"])
def test_a_file_plays_in_order_in_real_time_and_ends(tmp_path, name):
    video = make_video(tmp_path / name, 20, fps=10.0)  # 2 s
    rec = Recorder()
    cap = CaptureThread(parse_source(str(video)), rec)
    t0 = time.monotonic()
    cap.start()
    assert cap.ended.wait(5.0)
    elapsed = time.monotonic() - t0
    assert 1.7 < elapsed < 3.0, elapsed  # paced at the file's 10 fps, not as fast as it decodes
    frames = rec.snapshot()
    assert [frame_number(f.image) for f in frames] == list(range(20))
    assert [f.index for f in frames] == list(range(20))
    ts = [f.t for f in frames]
    assert ts == sorted(ts)
    assert 1.6 < ts[-1] - ts[0] < 2.5  # 19 frame intervals of 0.1 s
    assert all(f.source == str(video) and f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8
               for f in frames)
    s = cap.stats
    assert isinstance(s, CaptureStats)
    assert (s.state, s.frames_read, s.frames_delivered, s.read_failures, s.loops) == ("stopped", 20, 20, 0, 0)
    assert s.source_fps == pytest.approx(10.0) and s.position_s == pytest.approx(1.9)
    assert not cap.is_alive()


def test_a_looping_file_starts_again(tmp_path):
    video = make_video(tmp_path / "loop.avi", 8, fps=10.0)  # 0.8 s
    rec = Recorder()
    cap = CaptureThread(parse_source(str(video), loop=True), rec)
    cap.start()
    assert wait_for(lambda: cap.stats.frames_read > 20, 4.0)
    assert not cap.ended.is_set() and cap.state == "running"
    stop_quickly(cap)
    frames = rec.snapshot()
    numbers = [frame_number(f.image) for f in frames]
    assert numbers[:20] == [0, 1, 2, 3, 4, 5, 6, 7] * 2 + [0, 1, 2, 3]
    assert [f.index for f in frames] == list(range(len(frames)))  # the sequence keeps counting
    ts = [f.t for f in frames]
    assert ts == sorted(ts)
    s = cap.stats
    assert s.loops >= 2 and s.frames_read > 8 and s.state == "stopped"


def test_a_looping_file_renamed_away_and_back_resumes(tmp_path):
    video = make_video(tmp_path / "away.avi", 5, fps=10.0)  # 0.5 s
    rec = Recorder()
    cap = CaptureThread(parse_source(str(video), loop=True), rec, retry=FAST_RETRY)
    cap.start()
    assert wait_for(lambda: cap.stats.frames_read >= 2, 2.0)
    video.rename(tmp_path / "hidden.avi")
    assert wait_for(lambda: cap.state == "retrying", 2.0)
    s = cap.stats
    assert "away.avi" in s.last_error and one_line(s.last_error)
    (tmp_path / "hidden.avi").rename(video)
    read = cap.stats.frames_read
    assert wait_for(lambda: cap.state == "running" and cap.stats.frames_read > read + 2, 2.0)
    stop_quickly(cap)
    assert cap.stats.reconnects >= 1


def test_a_truncated_file_just_ends(tmp_path):
    video = make_video(tmp_path / "cut.avi", 20, fps=20.0)  # MJPG frames stand alone
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    rec = Recorder()
    cap = CaptureThread(parse_source(str(video)), rec)
    cap.start()
    assert cap.ended.wait(3.0)
    s = cap.stats
    assert s.state == "stopped" and 0 < s.frames_read < 20 and s.read_failures == 0
    assert [frame_number(f.image) for f in rec.snapshot()] == list(range(s.frames_read))


def test_a_truncated_mp4_fails_fast_in_one_line(tmp_path):
    video = make_video(tmp_path / "cut.mp4", 20, fps=20.0)  # its index (moov) is written last
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    cap = CaptureThread(parse_source(str(video)), Recorder())
    with pytest.raises(InputError) as info:
        cap.start()
    assert one_line(str(info.value)) and "cut.mp4" in str(info.value) and "damaged" in str(info.value)
    assert not cap.is_alive()


def test_fps_limit_reads_everything_but_hands_on_at_most_the_limit(tmp_path):
    video = make_video(tmp_path / "fast.avi", 30, fps=30.0)  # 1 s
    rec = Recorder()
    cap = CaptureThread(parse_source(str(video)), rec, fps_limit=5.0)
    cap.start()
    assert cap.ended.wait(3.0)
    s = cap.stats
    assert s.frames_read == 30
    assert 4 <= s.frames_delivered <= 6, s
    assert s.skipped == 30 - s.frames_delivered
    gaps = np.diff([f.t for f in rec.snapshot()])
    assert gaps.min() > 0.15


def test_the_slow_consumer_always_gets_the_newest_frame(tmp_path):
    video = make_video(tmp_path / "drop.avi", 30, fps=30.0)
    slot = LatestSlot()
    cap = CaptureThread(parse_source(str(video), loop=True), slot.put)
    cap.start()
    got = []
    deadline = time.monotonic() + 2.2
    while time.monotonic() < deadline:
        frame = slot.get(timeout=0.5)
        assert frame is not None
        got.append((frame, cap.stats.frames_read))
        time.sleep(0.3)  # a slow model
    stop_quickly(cap)
    assert 5 <= len(got) <= 9  # one frame per get: no backlog
    for frame, read in got[1:]:
        assert frame.index >= read - 2, (frame.index, read)  # the newest (or the one being handed on)
    indices = [f.index for f, _ in got]
    assert indices == sorted(indices)
    assert slot.dropped >= 40  # ~9 frames read per 0.3 s, one taken
    s = cap.stats
    assert s.frames_delivered == s.frames_read  # capture hands every frame on; the slot drops late ones
    assert slot.dropped >= s.frames_delivered - len(got) - 1


# ------------------------------------------------------------------------------------------ demo


def test_the_demo_source_delivers_labelled_frames_at_its_fps():
    rec = Recorder()
    cap = CaptureThread(parse_source("demo"), rec)
    cap.start()
    assert wait_for(lambda: len(rec.snapshot()) >= 45, 4.0)
    stop_quickly(cap)
    frames = rec.snapshot()
    assert all(f.source.startswith("demo") for f in frames)
    assert all(f.image.shape == (480, 640, 3) and f.image.dtype == np.uint8 for f in frames)
    ts = [f.t for f in frames]
    assert ts == sorted(ts)
    rate = (len(frames) - 1) / (ts[-1] - ts[0])
    assert 25.0 < rate < 35.0, rate                   # a webcam's rate: the window's preview is smooth
    assert cap.stats.source_fps == 30.0 and cap.stats.frames_delivered == len(frames)


# --------------------------------------------------------------------------------------- cameras


def test_a_missing_camera_is_retried_with_backoff_and_reported_in_one_line():
    times: list[float] = []

    def opener(spec):
        times.append(time.monotonic())
        return open_video(spec)  # the real opener: camera 9 does not exist here

    rec = Recorder()
    cap = CaptureThread(parse_source("9"), rec, retry=FAST_RETRY, opener=opener)
    cap.start()  # no exception: a camera may appear later
    assert wait_for(lambda: cap.state == "retrying", 1.0)
    time.sleep(1.7)
    s = cap.stats
    stop_quickly(cap)
    assert s.state == "retrying" and not rec.frames and s.frames_read == 0
    assert one_line(s.last_error)
    assert "camera 9" in s.last_error and "--source demo" in s.last_error
    assert s.reconnects == len(times) - 1 >= 4
    gaps = np.diff(times)
    assert gaps[0] == pytest.approx(0.1, abs=0.08)
    assert gaps[1] == pytest.approx(0.2, abs=0.08)
    assert gaps[2] == pytest.approx(0.4, abs=0.1)
    assert all(g < 0.55 for g in gaps)  # capped at max_delay


def test_retry_policy_doubles_up_to_its_cap():
    policy = RetryPolicy()
    assert [policy.delay(i) for i in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(10_000) == 5.0  # retried for ever without overflowing
    with pytest.raises(ValueError):
        RetryPolicy(initial=0)


def test_a_lost_camera_comes_back():
    calls: list[float] = []

    def opener(spec):
        calls.append(time.monotonic())
        n = len(calls)
        if n == 1:
            return FakeCapture(limit=10)  # works, then it is unplugged
        if n == 2:
            raise RuntimeError("device busy")
        if n == 3:
            return FakeCapture(opened=False)
        return FakeCapture(start=10)  # plugged back in

    rec = Recorder()
    cap = CaptureThread(parse_source("0"), rec, retry=FAST_RETRY, opener=opener)
    cap.start()
    states = []
    errors = set()

    def watch() -> bool:
        s = cap.stats
        if not states or states[-1] != s.state:
            states.append(s.state)
        if s.last_error:
            errors.add(s.last_error)
        return states[-1] == "running" and "retrying" in states and len(rec.snapshot()) >= 20

    assert wait_for(watch, 4.0, step=0.005)
    stop_quickly(cap)
    assert [x for x in states if x != "starting"][:3] == ["running", "retrying", "running"], states
    s = cap.stats
    assert s.read_failures == 1 and s.reconnects == 3 and len(calls) == 4
    assert all(one_line(e) and "camera 0" in e for e in errors)
    assert any("lost" in e for e in errors) and any("device busy" in e for e in errors)
    frames = rec.snapshot()
    numbers = [frame_number(f.image) for f in frames]
    assert numbers[:20] == list(range(20))  # frames flow again, from the camera's new frames
    assert [f.index for f in frames] == list(range(len(frames)))
    ts = [f.t for f in frames]
    assert ts == sorted(ts)
    assert ts[10] - ts[9] < 1.5  # back within ~0.1 + 0.2 + 0.4 s of backoff


def test_an_exception_in_the_consumer_fails_the_thread_cleanly():
    def broken(frame: Frame) -> None:
        raise ValueError("consumer is broken")

    cap = CaptureThread(parse_source("0"), broken, opener=lambda spec: FakeCapture())
    cap.start()
    assert cap.ended.wait(2.0)
    s = cap.stats
    assert s.state == "failed" and "consumer is broken" in s.last_error and one_line(s.last_error)
    assert isinstance(cap.error, ValueError)
    assert cap.stop() and not cap.is_alive()


# ------------------------------------------------------------------------------------------ stop


@pytest.mark.parametrize("mode", ["demo", "file", "camera", "slow-camera", "missing-camera", "unreachable-stream"])
def test_stop_returns_within_a_second_in_every_mode(tmp_path, mode):
    period = 0.03 if mode == "camera" else 0.4

    def fake(s):
        return FakeCapture(period=period)

    opener = fake if mode in ("camera", "slow-camera") else open_video
    if mode == "demo":
        spec = parse_source("demo")
    elif mode == "file":
        spec = parse_source(str(make_video(tmp_path / "s.avi", 10)), loop=True)
    elif mode in ("camera", "slow-camera"):
        spec = parse_source("0")
    elif mode == "missing-camera":
        spec = parse_source("7")
    else:
        spec = parse_source("rtsp://127.0.0.1:9/nothing")  # connection refused at once
    cap = CaptureThread(spec, Recorder(), opener=opener)
    cap.start()
    time.sleep(0.5)
    assert cap.is_alive()
    assert cap.state in ("running", "retrying")
    stop_quickly(cap)
    if mode in ("missing-camera", "unreachable-stream"):
        assert cap.stats.last_error and one_line(cap.stats.last_error)
    with pytest.raises(RuntimeError):
        cap.start()  # once only
    names = [t.name for t in threading.enumerate()]
    assert "capture" not in names


def test_fps_limit_must_be_positive():
    with pytest.raises(InputError):
        CaptureThread(parse_source("demo"), Recorder(), fps_limit=0)


# ------------------------------------------------------------------------------ the demo reel


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def _step(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_demo_scenes_are_public_domain_photos_shipped_with_scikit_image():
    scenes = demo_scenes()
    names = [s.name for s in scenes]
    assert names[0] == "astronaut" and len(set(names)) == len(names) >= 4
    for s in scenes:
        rgb = s.loader()  # from the installed wheel: no download
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 256
        assert s.label.startswith("DEMO - scikit-image: " + s.name) and s.credit in s.label
        assert "public domain" in s.credit or "CC0" in s.credit


def test_demo_without_scikit_image_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # as if it were not installed
    with pytest.raises(InputError) as e:
        demo_scenes()
    assert one_line(str(e.value)) and "pip install scikit-image" in str(e.value)
    with pytest.raises(InputError):
        CaptureThread(parse_source("demo"), Recorder()).check()  # fails fast, before the thread starts


def test_demo_frames_have_the_size_type_and_timestamps_asked_for():
    frames = list(itertools.islice(demo_frames(fps=5.0, size=(320, 240), scene_seconds=2.0), 25))
    assert [f.index for f in frames] == list(range(25))
    assert [f.t for f in frames] == pytest.approx([i / 5.0 for i in range(25)])
    for f in frames:
        assert f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
        assert f.source.startswith("demo:") and not f.still
    reel = DemoReel((320, 240), 2.0)  # the generator is the reel, frame by frame
    assert all(np.array_equal(f.image, reel.render(f.t)) for f in frames[::6])


def test_demo_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        next(demo_frames(fps=0))
    with pytest.raises(ValueError):
        DemoReel(scene_seconds=0)
    with pytest.raises(ValueError):
        DemoReel(size=(8, 8))


def test_demo_moves_gently_from_frame_to_frame():
    frames = [f.image for f in itertools.islice(demo_frames(fps=10.0, scene_seconds=12.0), 100)]
    steps = [_step(a, b) for a, b in zip(frames, frames[1:])]
    print(f"\ndemo: mean |difference| between consecutive frames {min(steps):.2f} to {max(steps):.2f}")
    assert min(steps) > 0.1  # it never stands still
    assert max(steps) < 6.0  # but every step is small
    assert _step(frames[0], frames[-1]) > 3 * np.median(steps)  # and it goes somewhere over the scene


def test_demo_changes_scene_every_scene_seconds_with_a_crossfade():
    names = [s.name for s in demo_scenes()]
    n = len(names)
    frames = list(itertools.islice(demo_frames(fps=10.0, size=(160, 120), scene_seconds=1.0), 10 * (n + 2)))
    for i, f in enumerate(frames):
        assert f.source == f"demo:{names[(i // 10) % n]}", (i, f.source)  # back to the first after the last
    # across a boundary the picture changes gradually, not in one cut
    reel = DemoReel((320, 240), 12.0)
    around = [reel.render(t, label=False) for t in np.arange(11.3, 12.75, 0.1)]
    steps = [_step(a, b) for a, b in zip(around, around[1:])]
    assert max(steps) < 0.4 * _step(around[0], around[-1])


def test_demo_colour_grade_drifts_over_each_scene():
    reel = DemoReel((320, 240), 12.0)
    means = {}
    for k, p in enumerate(reel.scenes):
        early, late = (reel.render(k * 12.0 + t, label=False).reshape(-1, 3).mean(axis=0) for t in (1.5, 10.5))
        means[p.scene.name] = early, late
        assert np.abs(early - late).max() > 0.15 * early.mean(), (p.scene.name, early, late)  # BGR means move
    early, late = means["coffee"]  # warm morning into a dim, cool evening
    assert late.mean() < 0.75 * early.mean()
    assert late[2] / late[0] < early[2] / early[0]  # red over blue falls: cooler
    early, late = means["hubble_deep_field"]  # deep space comes alive
    assert late.mean() > early.mean()


def test_demo_grade_matrix_is_neutral_by_default_and_does_what_it_says():
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    same = cv2.transform(image, grade_matrix(Grade()))
    assert np.abs(same.astype(int) - image).max() <= 1
    grey = cv2.transform(image, grade_matrix(Grade(saturation=0.0)))
    assert np.abs(grey.astype(int) - grey[..., :1]).max() <= 1
    warm = cv2.transform(image, grade_matrix(Grade(warmth=1.0))).reshape(-1, 3).mean(axis=0)
    assert warm[2] > image[..., 2].mean() and warm[0] < image[..., 0].mean()
    dim = cv2.transform(image, grade_matrix(Grade(brightness=0.5)))
    assert dim.mean() == pytest.approx(image.mean() * 0.5, rel=0.02)


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (160, 120)])
def test_demo_label_is_drawn_small_in_the_bottom_left_corner(size):
    w, h = size
    reel = DemoReel(size, 12.0)
    for k in range(len(reel.scenes)):
        t = k * 12.0 + 5.0
        labelled, plain = reel.render(t), reel.render(t, label=False)
        x, y, bw, bh = reel.label_box(t)
        assert 0 <= x <= 0.03 * w and y + bh >= 0.96 * h and y + bh <= h and x + bw <= w
        assert bh <= max(0.07 * h, 14)  # a thin strip, well clear of the middle of the picture
        assert bw <= (0.8 if w >= 320 else 1.0) * w  # (tiny frames: the text shrinks to the width)
        changed = np.any(labelled != plain, axis=2)
        changed[y:y + bh, x:x + bw] = False
        assert not changed.any()  # nothing drawn outside the label box
        box, under = labelled[y:y + bh, x:x + bw], plain[y:y + bh, x:x + bw]
        text = box.min(axis=2) > 200  # white letters
        assert 0.03 < text.mean() < 0.5
        lit = _grey(under) > 25  # where the picture is bright enough to see it darkened
        if lit.mean() > 0.3:
            assert np.median(_grey(box)[lit] / _grey(under)[lit]) < 0.5  # on a dark, see-through box


def test_demo_astronaut_face_is_found_by_the_apps_detector(perceiver):
    reel = DemoReel((640, 480), 12.0)
    assert reel.scenes[0].scene.name == "astronaut"
    x, y, bw, bh = reel.label_box(0.0)
    for t in (0.0, 2.5, 5.0, 7.5, 10.0, 11.4):
        p = perceiver.perceive(Frame(reel.render(t), t, still=True))
        assert len(p.faces) == 1, t
        box = p.face.box
        assert box.w > 60 and box.y + box.h < y  # well above the label
        assert p.face.estimate.valence > 0.2, (t, p.face.estimate)  # she is smiling


# ------------------------------------------------------------------------------------- read-ahead

def test_read_ahead_keeps_order_raises_in_order_and_stops_with_its_consumer():
    import threading

    from moodsic_live.capture.stills import read_ahead
    from moodsic_live.errors import InputError

    def frames(n, fail_at=None, closed=None):
        try:
            for i in range(n):
                if i == fail_at:
                    raise InputError("video x.mp4 is damaged at 0.3 s")
                yield Frame(np.zeros((2, 2, 3), np.uint8), t=i / 10, index=i)
        finally:
            if closed is not None:
                closed.set()

    assert [f.index for f in read_ahead(frames(50), depth=3)] == list(range(50))
    got = []
    with pytest.raises(InputError, match="damaged"):
        for f in read_ahead(frames(50, fail_at=3)):
            got.append(f.index)
    assert got == [0, 1, 2]                       # everything before the error, then the error
    closed = threading.Event()
    it = read_ahead(frames(10_000, closed=closed), depth=2)
    assert next(it).index == 0
    it.close()                                     # the consumer stops early
    assert closed.wait(2.0)                        # ... so the reader released its source
    assert not any(t.name == "video-reader" for t in threading.enumerate())
