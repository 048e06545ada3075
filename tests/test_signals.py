"""A requested stop: SIGTERM (systemd), SIGHUP (a closed terminal) and Ctrl+C take the clean path.

Every test runs the real command line in a subprocess, with its own HOME and XDG folders (the
developer's files are never touched), the suite's models and small library, and sends it real
signals: the live loop and the window fade the music out, say which signal stopped them, keep the
listening history and the settings, and exit 0; a long command stops with one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, write_config

WINDOW_S = 0.05


class Proc:
    """A subprocess of the CLI whose stdout and stderr are collected line by line as they come."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(s, lines), daemon=True)
                         for s, lines in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def wait_for(self, ready, timeout: float = 180.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.p.poll() is not None:
                self.finish()
                pytest.fail(f"exited ({self.p.returncode}) before {what}: {self.stderr[-2000:]}")
            if time.monotonic() > deadline:
                self.p.kill()
                self.finish()
                pytest.fail(f"no {what} within {timeout:.0f} s: {self.stderr[-2000:]}")
            time.sleep(0.05)

    def handles(self, signum: int) -> bool:
        """The process has a handler for ``signum`` (its SigCgt mask in /proc): the CLI's main() has begun."""
        try:
            status = Path(f"/proc/{self.p.pid}/status").read_text()
        except OSError:
            return False
        mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        return bool(mask >> (signum - 1) & 1)

    def stop(self, signum: int, again_after: float | None = None, again: int | None = None,
             timeout: float = 20.0) -> float:
        """Send ``signum`` (and ``again`` after ``again_after`` s); returns the seconds until it exited."""
        sent = time.monotonic()
        self.p.send_signal(signum)
        if again_after is not None:
            time.sleep(again_after)
            if self.p.poll() is None:
                self.p.send_signal(again or signum)
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.finish()
            pytest.fail(f"still running {timeout:.0f} s after {signal.Signals(signum).name}: {self.stderr[-2000:]}")
        took = time.monotonic() - sent
        self.finish()
        return took

    def finish(self) -> None:
        self.p.wait(30)
        for t in self._readers:
            t.join(5)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)


@pytest.fixture()
def sandbox(tmp_path, models_dir, small_library) -> tuple[dict[str, str], Path]:
    """(environment, config file): a fresh HOME and XDG folders; the suite's models and small library;
    the listening history beside the config file."""
    _, config = small_library
    home = tmp_path / "home"
    for d in (".config", ".local/share", ".cache", ".local/state"):
        (home / d).mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local/share"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_STATE_HOME=str(home / ".local/state"),
               QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1")
    return env, write_config(tmp_path / "c.toml", config)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "moodsic_live", *args]


def _playing(proc: Proc) -> bool:
    """A status line shows a song playing ("♪ artist – title", not "♪ —")."""
    return any("\u266a" in line and "\u266a \u2014" not in line for line in proc.out)


def _history(cfg: Path) -> list:
    from moodsic_live.feedback import FeedbackStore

    return FeedbackStore(cfg.parent / "feedback.sqlite").rows()


def fade_out(path: Path) -> dict[str, float]:
    """The end of a recorded mix: ``level`` (90th percentile of the RMS of 50 ms windows 2..0.6 s before the
    end: the music as it was before the fade, whose loud moments the fade must bring down too), ``fade_s`` (from the last window still at >= 70 % of it to the end), ``tail`` (RMS of the
    last 0.2 s / level) and ``last`` (RMS of the last full window / level)."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    n = int(WINDOW_S * sr)
    m = len(audio) // n
    rms = np.sqrt((audio[: m * n].reshape(m, n, -1) ** 2).mean(axis=(1, 2)))
    level = float(np.percentile(rms[-40:-12], 90))
    loud = np.flatnonzero(rms >= 0.7 * level)
    tail = float(np.sqrt((audio[-int(0.2 * sr):] ** 2).mean()))
    return {"duration": len(audio) / sr, "level": level, "fade_s": (m - 1 - int(loud[-1])) * WINDOW_S,
            "tail": tail / level, "last": float(rms[-1]) / level}


def _assert_faded(path: Path) -> dict[str, float]:
    f = fade_out(path)
    assert f["level"] > 0.01, f                  # music was playing before the stop
    assert 0.15 <= f["fade_s"] <= 1.05, f        # a fade-out of at most a second, not a cut ...
    assert f["tail"] < 0.4 and f["last"] < 0.15, f   # ... that ends in (near) silence
    return f


def _no_traceback(proc: Proc) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_run_headless_stops_cleanly_on_a_stop_signal(sandbox, tmp_path, signum):
    env, cfg = sandbox
    wav = tmp_path / "live.wav"
    proc = Proc(_cli("run", "--headless", "--source", "demo", "--library", "songs", "--output", str(wav),
                     "--crossfade", "0", "--config", str(cfg)), env)
    proc.wait_for(lambda: _playing(proc), what="a song playing")
    time.sleep(2.5)                               # steady music in the file before the stop
    took = proc.stop(signum)
    name = signal.Signals(signum).name
    assert proc.p.returncode == 0, proc.stderr
    assert took < 4.0, f"{took:.1f} s from {name} to exit"
    _no_traceback(proc)
    assert f"stopped by {name}; the music faded out" in proc.stderr
    assert "run: " in proc.stdout and "audio underflows" in proc.stdout   # the summary
    _assert_faded(wav)
    events = _history(cfg)
    kinds = [e.kind for e in events]
    assert "started" in kinds and all(e.library == "songs" for e in events), kinds
    started = next(e for e in events if e.kind == "started")
    assert started.title in proc.stdout            # the play the status line showed is in the history


def test_a_second_signal_while_stopping_is_said_and_the_stop_still_finishes(sandbox, tmp_path):
    """Ctrl+C twice (or systemd's stop and another SIGTERM): the fade is not cut, no traceback."""
    env, cfg = sandbox
    wav = tmp_path / "live.wav"
    proc = Proc(_cli("run", "--headless", "--source", "demo", "--library", "songs", "--output", str(wav),
                     "--crossfade", "0", "--config", str(cfg)), env)
    proc.wait_for(lambda: _playing(proc), what="a song playing")
    time.sleep(2.5)
    took = proc.stop(signal.SIGINT, again_after=0.25, again=signal.SIGTERM)
    assert proc.p.returncode == 0, proc.stderr      # the live loop's normal end: 0 for Ctrl+C too
    assert took < 4.0
    _no_traceback(proc)
    assert "SIGTERM again: already stopping" in proc.stderr
    assert "stopped by Ctrl+C; the music faded out" in proc.stderr
    assert "run: " in proc.stdout
    _assert_faded(wav)


@pytest.mark.parametrize("after", [0.0, 0.6], ids=["importing", "loading"])
def test_a_stop_signal_before_the_music_started_is_a_clean_exit(sandbox, tmp_path, after):
    """SIGTERM while the CLI imports its libraries (a C extension's init turns the stop into an ImportError),
    or while the library opens and the models load: one line, exit 0."""
    env, cfg = sandbox
    proc = Proc(_cli("run", "--headless", "--source", "demo", "--library", "songs", "--output", "none",
                     "--config", str(cfg)), env)
    proc.wait_for(lambda: proc.handles(signal.SIGTERM), timeout=60, what="the CLI's signal handlers")
    time.sleep(after)
    took = proc.stop(signal.SIGTERM)
    assert proc.p.returncode == 0, proc.stderr
    assert took < 4.0
    _no_traceback(proc)
    assert "source: demo" not in proc.stderr      # it did stop before the engine ran
    lines = [line for line in proc.stderr.splitlines() if line.startswith("moodsic-live: stopped by SIGTERM")]
    assert len(lines) == 1, proc.stderr


def test_the_window_closes_cleanly_on_sigterm(sandbox, tmp_path):
    env, cfg = sandbox
    wav = tmp_path / "window.wav"
    settings = tmp_path / "gui.ini"
    proc = Proc([sys.executable, str(ROOT / "main.py"), "gui", "--source", "demo", "--library", "songs",
                 "--output", str(wav), "--crossfade", "0", "--config", str(cfg), "--settings", str(settings)], env)
    proc.wait_for(lambda: any(e.kind == "started" for e in _history(cfg)), what="a song playing in the window")
    time.sleep(2.5)
    took = proc.stop(signal.SIGTERM)
    assert proc.p.returncode == 0, proc.stderr
    assert took < 4.0, f"{took:.1f} s from SIGTERM to exit"
    _no_traceback(proc)
    assert "stopped by SIGTERM; the window closed as if by the user" in proc.stderr
    text = settings.read_text(encoding="utf-8")
    assert "geometry=" in text                   # saved on close, as when the user closes it
    _assert_faded(wav)


def _video(path: Path, seconds: int = 120, fps: int = 10) -> Path:
    import cv2

    from conftest import DEMO

    photo = cv2.resize(cv2.imread(str(DEMO / "astronaut.jpg")), (320, 240))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (320, 240))
    for i in range(seconds * fps):
        writer.write(np.roll(photo, 3 * i, axis=1))
    writer.release()
    return path


@pytest.mark.parametrize("signum, rc", [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl+C"])
def test_a_long_command_stops_with_one_line(sandbox, tmp_path, signum, rc):
    """``analyze`` on a two-minute video: a requested stop exits 0, Ctrl+C 130; one line, nothing half-written."""
    env, cfg = sandbox
    video = _video(tmp_path / "long.avi")
    plan, audio = tmp_path / "plan.json", tmp_path / "soundtrack.wav"
    proc = Proc(_cli("analyze", str(video), "--out", str(plan), "--render", str(audio), "--library", "songs",
                     "--config", str(cfg)), env)
    proc.wait_for(lambda: "inference runs on" in proc.stderr, what="the video's analysis")
    time.sleep(0.5)
    took = proc.stop(signum)
    assert proc.p.returncode == rc, proc.stderr
    assert took < 3.0
    _no_traceback(proc)
    said = proc.stderr.split("inference runs on", 1)[1].splitlines()[1:]
    who = "SIGTERM" if signum == signal.SIGTERM else "Ctrl+C"
    assert said == [f"moodsic-live: stopped by {who}"], proc.stderr
    assert not plan.exists() and not audio.exists()


def test_train_says_the_same_line_and_exits_0_on_a_requested_stop(monkeypatch, tmp_path):
    """``train scene`` keeps Ctrl+C = 130 (tests/test_train_scene.py); SIGTERM/SIGHUP: 0, the same news."""
    import argparse

    from moodsic_live import cli_learn
    from moodsic_live.config import Config
    from moodsic_live.shutdown import StopRequested

    def stopped(*args, **kwargs):
        raise StopRequested("SIGTERM")

    monkeypatch.setattr("moodsic_live.train.scene.train_scene", stopped)
    args = argparse.Namespace(findingemo=tmp_path, backbone=tmp_path / "b.onnx", out=tmp_path / "s.onnx",
                              epochs=5, patience=2, mc_samples=8, annotations=None, provider="cpu",
                              restart=False, json=False)
    said: list[str] = []
    assert cli_learn.cmd_train(args, Config(), said.append) == 0
    assert said == ["stopped by SIGTERM; every finished epoch and embedding shard is saved; "
                    "run the same command to resume"]
