"""The engine offline: a video made from real photos → emotion → soundtrack plan (and audio)."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from conftest import fit_frame as _fit
from moodsic_live.config import Config

FPS = 10


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
    import sys

    interval = sys.getswitchinterval()
    engine.start()
    assert sys.getswitchinterval() == 0.001          # the audio callback gets the GIL within 1 ms
    time.sleep(8.0)
    status = engine.status
    t0 = time.monotonic()
    assert engine.stop()
    stop_s = time.monotonic() - t0
    assert sys.getswitchinterval() == interval
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


# ---- the live loop survives bad input ---------------------------------------------------------------

def _silent_stretches(path, window_s: float = 0.05, floor: float = 1e-3) -> tuple[float, float, float]:
    """(music onset s, longest silent stretch after it s, file length s) of a rendered WAV:
    windows of ``window_s`` with an RMS under ``floor`` count as silence."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    n = int(window_s * sr)
    blocks = audio[: len(audio) // n * n].reshape(-1, n, audio.shape[1])
    loud = np.sqrt((blocks ** 2).mean(axis=(1, 2))) >= floor
    onset = int(np.argmax(loud))
    longest = run = 0
    for flag in loud[onset:]:
        run = 0 if flag else run + 1
        longest = max(longest, run)
    return onset * window_s, longest * window_s, len(audio) / sr


def _wait_for(predicate, timeout_s: float) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class _PhotoCamera:
    """A webcam (the VideoLike protocol) that shows a real photo at 10 fps, ``limit`` frames, then is unplugged."""

    def __init__(self, image: np.ndarray, limit: int | None = None):
        self.image, self.limit, self.n = image, limit, 0

    def isOpened(self) -> bool:
        return True

    def read(self):
        import time

        if self.limit is not None and self.n >= self.limit:
            return False, None
        time.sleep(0.1)
        self.n += 1
        return True, self.image.copy()

    def get(self, prop_id: int) -> float:
        return 10.0 if prop_id == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        pass


def test_live_loop_keeps_the_music_playing_while_the_camera_is_unplugged(faces_dev, small_library, tmp_path):
    """Camera lost for ~2.5 s mid-run: said in one line, retried with backoff, back within seconds;
    the song holds and the mix has no gap."""
    import csv
    import time

    from moodsic_live.capture.source import RetryPolicy, parse_source
    from moodsic_live.engine.live import LiveEngine
    from moodsic_live.play.player import paced_file_output

    rows = list(csv.DictReader(open(faces_dev / "labels.csv", encoding="utf-8")))
    photo = _fit(cv2.imread(str(faces_dev / next(r["file"] for r in rows if r["emotion"] == "happiness"))))
    library, config = small_library
    unplugged: list[float] = []

    def opener(spec):
        if not unplugged:
            unplugged.append(0.0)
            return _PhotoCamera(photo, limit=40)                 # 4 s of frames, then the cable is pulled
        if not unplugged[0]:
            unplugged[0] = time.monotonic()
        if time.monotonic() - unplugged[0] < 2.5:
            raise RuntimeError("no such device")                 # what V4L2 says while it is gone
        return _PhotoCamera(photo)                               # plugged back in

    said: list[str] = []
    out = tmp_path / "live.wav"
    engine = LiveEngine(config, library, parse_source("0"), paced_file_output(out, config.play), said.append,
                        opener=opener, retry=RetryPolicy(initial=0.2, factor=2.0, max_delay=1.0))
    engine.start()
    states, songs = [], set()

    def watch() -> bool:
        s = engine.status
        if s is not None:
            if not states or states[-1] != s.capture:
                states.append(s.capture)
            if s.playing:
                songs.add(s.playing)
        return "retrying" in states and states[-1] == "running" and len(states) >= 3

    try:
        assert _wait_for(watch, 15.0), (states, said)
        back_after = time.monotonic() - unplugged[0]
        time.sleep(1.5)
        updates_after = engine.metrics.to_dict()["updates"]
    finally:
        engine.stop()      # its clean-stop timing is test_live_engine_runs_…'s; here the music is the point
    assert _wait_for(lambda: not {t.name for t in threading.enumerate()} & {"capture", "perceive", "stabilise-match"},
                     2.0)                                 # no thread left behind, even on a stalled VM
    print(f"\ncapture states {states}; back {back_after:.1f} s after the unplug; said {said}")
    assert [s for s in states if s != "starting"][:3] == ["running", "retrying", "running"], states
    assert back_after < 2.5 + 2.0                    # backoff capped at 1 s: seen again within ~1 s of its return
    lost = [m for m in said if "the music keeps playing and the camera is retried" in m]
    assert lost and all("\n" not in m and "camera 0" in m for m in lost)
    assert "camera is back" in said
    assert updates_after > 45                        # estimates flow again after the return
    assert len(songs) == 1                           # the song held through the drop-out (dwell 20-30 s)
    onset, gap, length = _silent_stretches(out)
    print(f"music from {onset:.2f} s, longest silence after it {gap:.2f} s, {length:.1f} s written")
    assert onset < 5.0 and gap <= 0.1


def test_live_loop_skips_a_song_that_fails_to_decode_without_a_gap(mood_video, tmp_path):
    """Songs turn unreadable while the first one plays: each failure is one line, the next choice is
    asked for at once, the broken songs are not chosen again, and the music never stops for longer
    than a crossfade."""
    from moodsic_live.capture.source import parse_source
    from moodsic_live.engine.live import LiveEngine
    from moodsic_live.library.builder import build_library
    from moodsic_live.play.player import paced_file_output

    root = tmp_path / "songs"
    root.mkdir()
    sr = 22050
    t = np.arange(40 * sr) / sr
    for k in range(6):
        tone = (0.1 + 0.03 * k) * np.sin(2 * np.pi * (220 + 55 * k) * t) * (1 + 0.3 * np.sin(2 * np.pi * (k + 1) * t))
        sf.write(root / f"song{k}.wav", np.clip(tone, -0.9, 0.9).astype(np.float32), sr)
    c = Config()
    c.library.dir, c.paths.cache_dir, c.library.workers = tmp_path / "libraries", tmp_path / "cache", 1
    c.library.music_model = "features"
    c.play.crossfade_s, c.play.preload_s = 2.0, 9.0   # the first song runs out of prepared audio ~4 s in
    library, _ = build_library(root, c, "songs", say=lambda s: None, progress=False)

    path, _ = mood_video
    said: list[str] = []
    out = tmp_path / "live.wav"
    engine = LiveEngine(c, library, parse_source(str(path)), paced_file_output(out, c.play), said.append)
    engine.start()
    try:
        assert _wait_for(lambda: engine.player.current_song_id is not None, 8.0)
        first = engine.player.current_song_id
        keep = {first, next(tr.id for tr in library.tracks[::-1] if tr.id != first)}
        broken = []
        for tr in library.tracks:
            if tr.id not in keep:
                Path(tr.path).write_bytes(b"RIFF this is not audio any more")
                broken.append(tr.id)
        # the first song runs out of prepared audio ~4 s in: the matcher's next choices are tried
        assert _wait_for(lambda: len(engine.matcher.unplayable) >= 2, 25.0), said
        import time

        time.sleep(2.5)                                  # past the crossfade to a readable song
        now_playing = engine.player.current_song_id
    finally:
        engine.stop()      # its clean-stop timing is test_live_engine_runs_…'s; here the music is the point
    assert _wait_for(lambda: not {t.name for t in threading.enumerate()} & {"capture", "perceive", "stabilise-match"},
                     2.0)                                 # no thread left behind, even on a stalled VM
    failures = [m for m in said if "skipping to another song" in m]
    print(f"\nfirst {first}, now {now_playing}; {len(failures)} failures: {failures[:2]}")
    assert now_playing in keep                           # a readable song plays (maybe the first, further on)
    assert failures and all("\n" not in m for m in failures)
    assert all(any(tr.id in m or Path(tr.path).name in m for tr in library.tracks) for m in failures)
    marked = {library.tracks[i].id for i in engine.matcher.unplayable}
    assert marked and marked <= set(broken)
    assert len(failures) == len(marked)              # each broken song was tried at most once
    onset, gap, length = _silent_stretches(out)
    print(f"music from {onset:.2f} s, longest silence after it {gap:.2f} s, {length:.1f} s written")
    assert gap <= c.play.crossfade_s


def test_whole_songs_are_ranked_by_the_videos_arc(mood_video, small_library, perceiver, tmp_path):
    """soundtrack: the video's arc against every song's, ranked with offsets, terms and DTW paths."""
    import json

    from moodsic_live.engine.soundtrack import SoundtrackPlan, plan_soundtrack
    from moodsic_live.engine.soundtrack_rank import rank_for_video, whole_song_plan
    from moodsic_live.errors import MoodsicError

    path, (_, _, end) = mood_video
    library, config = small_library
    plan = plan_soundtrack(path, library, config, perceiver, fps=2)
    ranking = rank_for_video(plan, library, config, top=5)
    assert len(ranking.songs) == 5 and ranking.compared == len(library.tracks) and ranking.too_short == 0
    scores = [s.ranked.score for s in ranking.songs]
    assert scores == sorted(scores, reverse=True)
    assert len(ranking.video_arc) == pytest.approx(end * config.match.arcs.rate_hz, abs=2)
    for song in ranking.songs:
        track = next(t for t in library.tracks if t.id == song.track_id)
        assert 0 <= song.ranked.offset_s <= max(0.0, track.duration - end) + 1
        assert 0 < song.ranked.terms[1] <= 1 and song.why.startswith("score ")
        assert song.alignment.path[0, 0] == 0 and song.alignment.path[-1, 0] == len(ranking.video_arc) - 1
    data = json.loads(json.dumps(ranking.to_json()))
    assert data["ranked"][0]["terms"].keys() == {"fit", "arc", "pref", "novelty"} and data["ranked"][0]["dtw_path"]
    one = whole_song_plan(plan, ranking.songs[0], 2.0)
    assert len(one.music) == 1 and one.music[0].end == plan.video["duration"]
    assert one.music[0].segment_start == ranking.songs[0].ranked.offset_s
    # a video with no usable frames has no arc: one clear line
    empty = SoundtrackPlan(video={"path": "blank.mp4", "duration": 0.0})
    with pytest.raises(MoodsicError, match="blank.mp4: no usable frames"):
        rank_for_video(empty, library, config)


def test_soundtrack_command_lists_songs_writes_the_plan_and_renders_the_best(mood_video, small_library, tmp_path):
    import json

    from conftest import run_cli, write_config

    path, (_, _, end) = mood_video
    library, config = small_library
    cfg = write_config(tmp_path / "c.toml", config)
    wav, plan_path = tmp_path / "best.wav", tmp_path / "plan.json"
    r = run_cli("soundtrack", str(path), "--top", "3", "--json", "--fps", "2", "--library", "songs",
                "--render", str(wav), "--plan-out", str(plan_path), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["ranked"]) == 3 and out["compared"] == len(library.tracks)
    assert out["weights"]["arc"] > 0 and len(out["video_arc"]["valence"]) == pytest.approx(end, abs=2)
    best = out["ranked"][0]
    assert best["score"] >= out["ranked"][1]["score"] and best["why"].startswith("score ")
    assert json.loads(plan_path.read_text())["music"] == out["plan"]["music"]
    info = sf.info(str(wav))
    assert abs(info.duration - end) < 0.2 and "soundtrack:" in r.stderr
    # the rendered audio is the best song from its offset: compare with the file itself
    song, sr = sf.read(best["path"], dtype="float32", always_2d=True)
    rendered, rsr = sf.read(str(wav), dtype="float32", always_2d=True)
    assert rsr == info.samplerate and np.sqrt(np.mean(rendered ** 2)) > 0.01
    text = run_cli("soundtrack", str(path), "--top", "2", "--fps", "1", "--library", "songs", "--config", str(cfg))
    assert text.returncode == 0 and text.stdout.splitlines()[1].startswith(" 1. ")
    assert "segment plan (analyze):" in text.stdout
    bad = run_cli("soundtrack", str(path), "--top", "0", "--library", "songs", "--config", str(cfg))
    assert bad.returncode == 2 and "--top must be at least 1" in bad.stderr and "Traceback" not in bad.stderr
