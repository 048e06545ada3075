"""Music-emotion features of an audio file, one row per 0.5 s step (2 Hz).

The features are the ones music-emotion research relates to arousal and valence
(Gabrielsson & Lindström 2010; Eerola, Lartillot & Toiviainen 2009; Yang & Chen 2012;
Aljanaki et al. 2017 for DEAM's baselines), computed with librosa from one short-time Fourier
transform so analysis runs far faster than real time:

==================  ==========================================================  ==============
feature             how (librosa, 22.05 kHz, 2048-point STFT, hop 512)          relates to
==================  ==========================================================  ==============
loudness            RMS level in dBFS over 1 s                                  arousal +
loudness_range      spread (std, dB) of the frame level over 3 s: dynamics      arousal ±
onset_rate          detected onsets per second over 3 s                         arousal +
flux                mean onset strength (spectral flux of the mel spectrum)     arousal +
tempo               local tempo from the onset autocorrelation (tempogram),      arousal +,
                    log2(bpm / 120)                                             valence +
centroid            spectral centroid, log2(Hz / 1000): brightness              arousal +
flatness            spectral flatness (dB): noisiness vs tonal                  valence −
mode                major minus minor key-profile correlation of the chroma     valence +
                    over 6 s (Krumhansl–Kessler profiles, best tonic)
key_clarity         best key-profile correlation: tonal clarity                 valence +
dissonance          chroma energy on the semitone/tritone intervals of the      valence −
                    strongest pitch class (a roughness proxy)
==================  ==========================================================  ==============

Windows are centred on each 0.5 s step, so a step's features describe the music around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError
from moodsic_live.library.model import SERIES_HZ

FEATURE_VERSION = 1
SAMPLE_RATE = 22050
N_FFT = 2048
HOP = 512
FEATURES = ("loudness", "loudness_range", "onset_rate", "flux", "tempo", "centroid", "flatness",
            "mode", "key_clarity", "dissonance")

# Krumhansl & Kessler (1982) key profiles, C major / C minor.
_KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class AudioFeatures:
    """A file's feature matrix: ``values[i]`` holds :data:`FEATURES` for the step starting at
    ``i * 0.5`` s. ``duration`` and ``sample_rate`` describe the file as decoded."""

    values: np.ndarray        # (n_steps, len(FEATURES)) float32
    duration: float
    sample_rate: int
    channels: int

    @property
    def t(self) -> np.ndarray:
        return np.arange(len(self.values), dtype=np.float32) / SERIES_HZ


@dataclass(frozen=True)
class Decoded:
    """A decoded file: mono float32 samples at the file's own rate."""

    mono: np.ndarray
    sample_rate: int
    channels: int
    duration: float

    def at(self, rate: int, quality: str = "MQ") -> np.ndarray:
        """The samples resampled to ``rate`` (soxr; ``quality`` one of its LQ, MQ, HQ, VHQ)."""
        import soxr

        if rate == self.sample_rate:
            return self.mono
        return np.ascontiguousarray(soxr.resample(self.mono, self.sample_rate, rate, quality=quality), np.float32)


def decode_audio(path: Path) -> Decoded:
    """Decode ``path`` to mono float32. Unreadable or empty files raise :class:`InputError`."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises LibsndfileError / RuntimeError / TypeError
        raise InputError(f"{path}: not readable audio ({str(exc).splitlines()[0][:120]})") from None
    if data.shape[0] == 0:
        raise InputError(f"{path}: the audio has no samples")
    channels = data.shape[1]
    mono = data.mean(axis=1) if channels > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise InputError(f"{path}: the audio contains invalid samples (NaN/inf)")
    return Decoded(np.ascontiguousarray(mono, dtype=np.float32), int(sr), int(channels), len(mono) / sr)


def load_audio(path: Path) -> tuple[np.ndarray, int, int, float]:
    """Decode ``path`` to mono float32 at :data:`SAMPLE_RATE`. Returns (mono, original sample
    rate, channels, duration). Unreadable or empty files raise :class:`InputError`."""
    d = decode_audio(path)
    return d.at(SAMPLE_RATE), d.sample_rate, d.channels, d.duration


def n_steps_of(duration: float) -> int:
    """How many whole 0.5 s steps a piece of ``duration`` seconds has."""
    return int(np.floor(duration * SERIES_HZ + 1e-9))


def _window_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` items, edges averaged over what exists."""
    if width <= 1 or len(x) == 0:
        return x.astype(np.float64)
    kernel = np.ones(width)
    num = np.convolve(x, kernel, mode="same")
    den = np.convolve(np.ones_like(x, dtype=np.float64), kernel, mode="same")
    return num / den


def _per_step(frame_values: np.ndarray, n_steps: int, frames_per_step: float, width_s: float) -> np.ndarray:
    """Average frame-rate values over a centred window of ``width_s`` seconds, sampled at the
    centre of every 0.5 s step."""
    width = max(1, int(round(width_s * SERIES_HZ * frames_per_step)))
    smooth = _window_mean(frame_values, width)
    centres = np.minimum(((np.arange(n_steps) + 0.5) * frames_per_step).astype(int), len(smooth) - 1)
    return smooth[centres]


def _key_profiles() -> tuple[np.ndarray, np.ndarray]:
    """All 12 rotations of the major and minor profiles, z-scored: (12, 12) each."""
    def rotations(profile: np.ndarray) -> np.ndarray:
        rows = np.stack([np.roll(profile, k) for k in range(12)])
        return (rows - rows.mean(axis=1, keepdims=True)) / rows.std(axis=1, keepdims=True)
    return rotations(_KK_MAJOR), rotations(_KK_MINOR)


def tonal_features(chroma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mode, key clarity and dissonance of chroma vectors (12, n): pure maths.

    mode = best major-key correlation − best minor-key correlation (> 0: major);
    key_clarity = the best correlation of either; dissonance = the share of chroma energy a
    semitone or a tritone away from the strongest pitch class.
    """
    major, minor = _key_profiles()
    c = chroma - chroma.mean(axis=0, keepdims=True)
    norm = c.std(axis=0, keepdims=True)
    z = np.divide(c, norm, out=np.zeros_like(c), where=norm > 1e-9)
    r_major = (major @ z) / 12.0
    r_minor = (minor @ z) / 12.0
    best_major, best_minor = r_major.max(axis=0), r_minor.max(axis=0)
    mode = best_major - best_minor
    clarity = np.maximum(best_major, best_minor)
    top = np.argmax(chroma, axis=0)
    cols = np.arange(chroma.shape[1])
    total = chroma.sum(axis=0) + 1e-9
    rough = (chroma[(top + 1) % 12, cols] + chroma[(top - 1) % 12, cols] + chroma[(top + 6) % 12, cols])
    return mode, clarity, rough / total


def extract_features(path: Path, decoded: Decoded | None = None) -> AudioFeatures:
    """The :data:`FEATURES` of ``path`` at 2 Hz. Raises :class:`InputError` for unusable files."""
    import librosa

    d = decoded or decode_audio(path)
    y, sr_in, channels, duration = d.at(SAMPLE_RATE), d.sample_rate, d.channels, d.duration
    n_steps = n_steps_of(duration)
    if n_steps < 1:
        raise InputError(f"{path}: too short to analyse ({duration:.2f} s; at least 0.5 s is needed)")
    fps = SAMPLE_RATE / HOP
    per = fps / SERIES_HZ  # frames per 0.5 s step

    spec = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP, center=True))
    power = spec ** 2
    rms = librosa.feature.rms(S=spec, frame_length=N_FFT)[0] ** 2  # mean square per frame
    frame_db = 10.0 * np.log10(rms + 1e-10)

    mel = librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_mels=64, fmax=8000)
    onset_env = librosa.onset.onset_strength(S=librosa.power_to_db(mel, ref=np.max), sr=SAMPLE_RATE,
                                             hop_length=HOP)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_env, sr=SAMPLE_RATE, hop_length=HOP,
                                        units="frames")
    onset_train = np.zeros_like(onset_env)
    onset_train[np.clip(onsets, 0, len(onset_train) - 1)] = 1.0
    tempo = librosa.feature.tempo(onset_envelope=onset_env, sr=SAMPLE_RATE, hop_length=HOP,
                                  aggregate=None, ac_size=6.0)
    centroid = librosa.feature.spectral_centroid(S=spec, sr=SAMPLE_RATE)[0]
    flatness = librosa.feature.spectral_flatness(S=spec)[0]
    chroma = librosa.feature.chroma_stft(S=power, sr=SAMPLE_RATE, tuning=0.0)

    loud = _per_step(rms, n_steps, per, 1.0)
    loudness = 10.0 * np.log10(loud + 1e-10)
    loud_mean = _per_step(frame_db, n_steps, per, 3.0)
    loud_sq = _per_step(frame_db ** 2, n_steps, per, 3.0)
    loudness_range = np.sqrt(np.maximum(loud_sq - loud_mean ** 2, 0.0))
    onset_rate = _per_step(onset_train, n_steps, per, 3.0) * fps
    flux = _per_step(onset_env, n_steps, per, 1.0)
    tempo_step = np.log2(np.maximum(_per_step(tempo, n_steps, per, 2.0), 30.0) / 120.0)
    # Weight the centroid by frame energy so silences do not read as "bright".
    weight = rms + 1e-12
    centroid_step = _per_step(centroid * weight, n_steps, per, 1.0) / _per_step(weight, n_steps, per, 1.0)
    centroid_step = np.log2(np.maximum(centroid_step, 50.0) / 1000.0)
    flat_db = 10.0 * np.log10(_per_step(flatness, n_steps, per, 1.0) + 1e-10)
    chroma_win = np.stack([_per_step(chroma[k] * weight, n_steps, per, 6.0) for k in range(12)])
    mode, clarity, dissonance = tonal_features(chroma_win)

    values = np.column_stack([loudness, loudness_range, onset_rate, flux, tempo_step, centroid_step,
                              flat_db, mode, clarity, dissonance]).astype(np.float32)
    return AudioFeatures(values=values, duration=duration, sample_rate=sr_in, channels=channels)
