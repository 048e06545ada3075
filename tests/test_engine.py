"""The engine offline: a video made from real photos → emotion → soundtrack plan (and audio)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import soundfile as sf

from conftest import FACES_DEV
from moodsic_live.config import Config

FPS = 10


def _fit(image: np.ndarray, size=(640, 480)) -> np.ndarray:
    """Letterbox ``image`` into ``size`` (w, h)."""
    w, h = size
    scale = min(w / image.shape[1], h / image.shape[0])
    small = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


@pytest.fixture(scope="session")
def mood_video(tmp_path_factory, faces_dev) -> tuple:
    """30 s of neutral faces, 30 s of the same people smiling, 20 s of a dark empty room, at 10 fps
    (640x480 MP4). Returns (path, part boundaries in seconds)."""
    import csv

    rows = list(csv.DictReader(open(FACES_DEV / "labels.csv", encoding="utf-8")))
    label = {"neutral": "neutral", "smiling": "happiness"}
    ids = sorted({r["face_id"] for r in rows if r["emotion"] == "neutral"} &
                 {r["face_id"] for r in rows if r["emotion"] == "happiness"})[:3]
    pick = {part: [next(r["file"] for r in rows if r["face_id"] == i and r["emotion"] == e) for i in ids]
            for part, e in label.items()}
    path = tmp_path_factory.mktemp("video") / "moods.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (640, 480))
    rng = np.random.default_rng(0)
    room = np.full((480, 640, 3), 18, np.uint8)
    cv2.rectangle(room, (380, 120), (560, 420), (30, 28, 26), -1)  # a dim doorway
    for part, seconds in (("neutral", 30), ("smiling", 30), ("room", 20)):
        for i in range(seconds * FPS):
            if part == "room":
                frame = np.clip(room.astype(np.int16) + rng.integers(-3, 4, room.shape), 0, 255).astype(np.uint8)
            else:
                frame = _fit(cv2.imread(str(FACES_DEV / pick[part][(i // (10 * FPS)) % len(pick[part])])))
            writer.write(frame)
    writer.release()
    return path, (30.0, 60.0, 80.0)


@pytest.fixture(scope="session")
def small_library(tmp_path_factory):
    """A library of 8 generated songs (60 s, calm to lively), analysed from their audio."""
    from moodsic_live.library.builder import build_library

    root = tmp_path_factory.mktemp("songs")
    sr = 22050
    t = np.arange(60 * sr) / sr
    rng = np.random.default_rng(1)
    for k in range(8):
        bpm = 60 + 15 * k
        beat = (np.sin(2 * np.pi * bpm / 60 * t) > 0.95).astype(np.float32)
        tone = np.sin(2 * np.pi * (220 + 40 * k) * t) * (0.05 + 0.04 * k)
        noise = rng.standard_normal(len(t)) * beat * 0.03 * k
        sf.write(root / f"song{k}.wav", np.clip(tone + noise, -0.9, 0.9).astype(np.float32), sr)
    c = Config()
    base = tmp_path_factory.mktemp("lib")
    c.library.dir, c.paths.cache_dir, c.library.workers = base / "libraries", base / "cache", 2
    c.library.music_model = "features"
    library, _ = build_library(root, c, "songs", say=lambda s: None, progress=False)
    return library, c


def test_soundtrack_plan_follows_the_faces(mood_video, small_library, perceiver):
    from moodsic_live.engine.soundtrack import plan_soundtrack

    path, (neutral_end, smiling_end, end) = mood_video
    library, config = small_library
    plan = plan_soundtrack(path, library, config, perceiver, fps=5)
    t = np.array([e.t for e in plan.emotion])
    v = np.array([e.valence for e in plan.emotion])
    assert plan.video["duration"] == pytest.approx(end, abs=0.2) and len(t) == pytest.approx(end * 5, abs=2)
    late_neutral = v[(t > neutral_end - 5) & (t < neutral_end)].mean()
    late_smiling = v[(t > smiling_end - 5) & (t < smiling_end)].mean()
    print(f"\nstable valence: neutral {late_neutral:+.2f}, smiling {late_smiling:+.2f}")
    assert late_smiling > late_neutral + 0.2  # the stable valence rises in the smiling part
    starts = [c.start for c in plan.music]
    assert starts[0] == 0.0 and all(b - a >= config.match.dwell_seconds - 1e-6 for a, b in zip(starts, starts[1:]))
    assert plan.music[-1].end == pytest.approx(plan.video["duration"])
    assert all(c.mood for c in plan.music)
    faces = np.array([e.faces for e in plan.emotion])
    assert (faces[t < smiling_end] == 1).mean() > 0.9 and (faces[t > smiling_end + 1] == 0).all()


def test_analyze_writes_a_plan_and_a_soundtrack_of_the_videos_length(mood_video, small_library, tmp_path):
    import json
    import shutil

    from conftest import run_cli, write_config

    path, (_, _, end) = mood_video
    library, config = small_library
    cfg = write_config(tmp_path / "c.toml", config)
    plan_path, wav = tmp_path / "plan.json", tmp_path / "soundtrack.wav"
    r = run_cli("analyze", str(path), "--out", str(plan_path), "--render", str(wav), "--library", "songs",
                "--fps", "5", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    plan = json.loads(plan_path.read_text())
    assert set(plan) == {"video", "emotion", "music", "metrics"}
    assert set(plan["emotion"][0]) == {"t", "valence_raw", "arousal_raw", "valence", "arousal", "valence_var",
                                       "arousal_var", "gated", "faces"}
    assert set(plan["music"][0]) == {"start", "end", "song_id", "title", "artist", "path", "segment_start",
                                     "crossfade_s", "mood"}
    assert plan["metrics"]["switches"]["count"] == len(plan["music"])
    info = sf.info(str(wav))
    assert info.frames == round(plan["video"]["duration"] * info.samplerate) and abs(info.duration - end) < 0.2
    audio, _ = sf.read(str(wav))
    assert 0.01 < np.abs(audio).max() <= 1.0 and np.abs(audio[-1]).max() < 1e-4  # music, then a clean fade-out
    if shutil.which("ffmpeg") is None:
        m = run_cli("analyze", str(path), "--out", str(plan_path), "--render", str(wav), "--mux",
                    str(tmp_path / "out.mp4"), "--library", "songs", "--config", str(cfg))
        assert m.returncode == 2 and "ffmpeg is not installed" in m.stderr and "Traceback" not in m.stderr


def test_analyze_bad_video_is_one_line_and_keeps_the_old_plan(tmp_path, small_library):
    from conftest import run_cli, write_config

    _, config = small_library
    cfg = write_config(tmp_path / "c.toml", config)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    plan = tmp_path / "plan.json"
    plan.write_text('{"old": true}')
    r = run_cli("analyze", str(bad), "--out", str(plan), "--library", "songs", "--config", str(cfg))
    assert r.returncode == 2 and "broken.mp4" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and plan.read_text() == '{"old": true}'


def test_a_truncated_video_is_planned_as_far_as_it_can_be_read(mood_video, small_library, perceiver, tmp_path):
    from moodsic_live.engine.soundtrack import plan_soundtrack
    from moodsic_live.errors import InputError

    path, _ = mood_video
    library, config = small_library
    # an MP4 cut half-way loses its index (written at the end): a clear error, nothing else
    cut_mp4 = tmp_path / "cut.mp4"
    cut_mp4.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="cut.mp4 is not a video OpenCV can open"):
        plan_soundtrack(cut_mp4, library, config, perceiver, fps=2)
    # an AVI cut half-way still plays to the cut: planned that far, and said so
    cap = cv2.VideoCapture(str(path))
    avi = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (640, 480))
    for _ in range(40 * FPS):
        ok, frame = cap.read()
        writer.write(frame)
    writer.release()
    cap.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])
    said = []
    plan = plan_soundtrack(cut, library, config, perceiver, fps=2, say=said.append)
    print(f"\ntruncated AVI: {plan.video}; said {said}")
    assert plan.video.get("truncated") and 10 < plan.video["duration"] < 30 and "could only be read" in said[0]
    assert plan.emotion and plan.music and plan.music[-1].end == pytest.approx(plan.video["duration"])


def test_live_engine_runs_a_video_source_into_a_file_and_stops_cleanly(mood_video, small_library, tmp_path):
    """The whole live loop, headless: video in (real time), music out to a WAV written at real-time pace."""
    import threading
    import time

    from moodsic_live.capture.source import parse_source
    from moodsic_live.engine.live import LiveEngine
    from moodsic_live.play.player import paced_file_output

    path, _ = mood_video
    library, config = small_library
    out = tmp_path / "live.wav"
    said = []
    engine = LiveEngine(config, library, parse_source(str(path)), paced_file_output(out, config.play), said.append)
    engine.start()
    time.sleep(8.0)
    status = engine.status
    t0 = time.monotonic()
    assert engine.stop()
    stop_s = time.monotonic() - t0
    names = {t.name for t in threading.enumerate()}
    print(f"\nlive: {status.line()}; stopped in {stop_s:.2f} s; said {said}")
    assert stop_s < 1.5 and not names & {"capture", "perceive", "stabilise-match"}
    assert status.stable is not None and status.faces == 1 and status.playing
    m = engine.metrics.to_dict()
    assert m["updates"] >= 10 and m["switches"]["count"] == 1  # one choice, held (dwell 25 s)
    info = sf.info(str(out))
    assert 6.0 < info.duration < 10.0


def test_run_headless_cli_prints_status_and_metrics(mood_video, small_library, tmp_path):
    import json

    from conftest import run_cli, write_config

    path, _ = mood_video
    _, config = small_library
    cfg = write_config(tmp_path / "c.toml", config)
    out = tmp_path / "live.wav"
    r = run_cli("run", "--headless", "--source", str(path), "--library", "songs", "--duration", "5",
                "--output", str(out), "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    statuses = [x["status"] for x in lines if "status" in x]
    assert len(statuses) >= 3 and statuses[-1]["playing"] and statuses[-1]["capture"] == "running"
    assert {"valence", "arousal", "dwell_left", "mood"} <= set(statuses[-1])
    metrics = lines[-1]["metrics"]
    assert metrics["updates"] > 5 and metrics["switches"]["count"] == 1 and "jitter" in metrics
    assert sf.info(str(out)).duration > 3
    bad = run_cli("run", "--headless", "--source", str(tmp_path / "missing.mp4"), "--config", str(cfg))
    assert bad.returncode == 2 and "missing.mp4 does not exist" in bad.stderr and "Traceback" not in bad.stderr
