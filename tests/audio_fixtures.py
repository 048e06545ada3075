"""Small generated audio files in real formats (mp3, flac, ogg, wav) for library tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

_MAJOR = (0, 4, 7)
_MINOR = (0, 3, 7)


def music(seconds: float, sr: int = 22050, tempo: float = 100.0, level: float = 0.3, minor: bool = False,
          channels: int = 1, root_hz: float = 220.0, seed: int = 0) -> np.ndarray:
    """Plucked triads on every beat plus a noise tick: simple, but with real onsets, tempo,
    loudness and mode for the analysis to find."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n, np.float64)
    beat = 60.0 / tempo
    note_len = int(min(beat, 0.6) * sr)
    t = np.arange(note_len) / sr
    env = np.exp(-t * 6.0)
    for k, start in enumerate(np.arange(0.0, seconds - 0.05, beat)):
        i = int(start * sr)
        chord_root = root_hz * (2 ** ((0, 5, 7, 0)[k // 4 % 4] / 12))
        tone = sum(np.sin(2 * np.pi * chord_root * 2 ** (iv / 12) * t) for iv in (_MINOR if minor else _MAJOR))
        tick = rng.standard_normal(note_len) * np.exp(-t * 60.0) * 0.3
        seg = (tone / 3 + tick) * env
        out[i:i + note_len] += seg[: n - i]
    out = level * out / max(1e-9, np.abs(out).max())
    data = out.astype(np.float32)
    return np.column_stack([data] * channels) if channels > 1 else data


def write(path: Path, data: np.ndarray, sr: int = 22050, title: str = "", artist: str = "") -> Path:
    fmt = {".mp3": ("MP3", "MPEG_LAYER_III"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
           ".wav": ("WAV", "PCM_16")}[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with sf.SoundFile(str(path), "w", sr, channels, format=fmt[0], subtype=fmt[1]) as f:
        if title:
            f.title = title
        if artist:
            f.artist = artist
        f.write(data)
    return path
