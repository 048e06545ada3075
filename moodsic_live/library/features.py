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

Long files are analysed in bounded memory (:class:`FeatureStream`): the decode streams
(:func:`stream_audio`), the STFT frames are made a chunk at a time (:class:`Framer`: exactly the
frames of the whole signal), and only ~80 numbers per frame are kept for the few whole-file steps
(the onset envelope's dB reference and floor, onset peak picking, the tempogram a chunk at a time),
which give the whole-file numbers bit for bit. MP3 is the one exception: libmpg123 decodes a file
read in blocks about one float32 rounding step differently from one read, which moves a feature by
less than 1e-4 of its typical spread (tests/test_streaming_analysis.py); FEATURE_VERSION stays 1.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
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


# -- reading a file -------------------------------------------------------------------------------

# libmpg123 (inside libsndfile) prints its own diagnostics on file descriptor 2, e.g. "[src/libmpg123/
# parse.c:skip_junk():1260] error: Giving up searching valid MPEG header ..." for a file that is not
# MP3 at all; libsndfile then reports "File does not exist or is not a regular file (possibly a
# pipe?)". Neither libsndfile nor soundfile can silence it, so the open is done with fd 2 pointing
# at a temporary file (see _quiet_open).
_MPG123_LINE = "libmpg123"
_FD2_LOCK = threading.Lock()


def _describe_unreadable(path: Path, exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    if "does not exist" in text or "possibly a pipe" in text or "unknown format" in text.lower() \
            or "format not recognised" in text.lower():
        return (f"{path}: not readable audio (not an MP3/FLAC/WAV/OGG/AIFF file, or damaged); "
                "check that it plays in a media player, or remove it from the folder")
    text = text.replace(f"Error opening {str(path)!r}: ", "")
    return f"{path}: not readable audio ({text[:120]})"


def _quiet_open(path: Path):
    """``soundfile.SoundFile(path)`` with whatever the C decoders write to fd 2 meanwhile kept
    from the user: fd 2 goes to a temporary file for the open and is restored after it; lines
    that are not libmpg123's are written back to stderr (another thread's output in that
    moment is delayed, never lost). A lock serialises concurrent opens in one process."""
    import sys
    import tempfile

    import soundfile as sf

    try:
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed or replaced stderr must not stop decoding
        pass
    with _FD2_LOCK, tempfile.TemporaryFile() as capture:
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all (a daemon): nothing to hide
            return sf.SoundFile(str(path))
        try:
            os.dup2(capture.fileno(), 2)
            try:
                return sf.SoundFile(str(path))
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
            capture.seek(0)
            other = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                     if _MPG123_LINE not in line]
            if other:
                try:
                    os.write(2, "".join(other).encode())
                except OSError:
                    pass


def open_audio(path: Path):
    """An open ``soundfile.SoundFile`` of ``path``; unusable files raise :class:`InputError` with
    one line that says why (missing, a symbolic link loop, unreadable, empty, not audio)."""
    import errno

    from moodsic_live.library.folder import os_error_reason

    path = Path(path)
    try:
        st = os.stat(path)  # follows links: a loop raises ELOOP, a broken link ENOENT
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb"):  # permission denied is said as such, not as "not audio"
                pass
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR) and not path.is_symlink():
            raise InputError(f"{path}: no such audio file") from None
        raise InputError(f"{path}: {os_error_reason(path, exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: a folder, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file (a pipe, socket or device)")
    if st.st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes)")
    try:
        return _quiet_open(path)
    except Exception as exc:  # libsndfile raises LibsndfileError / RuntimeError / TypeError
        raise InputError(_describe_unreadable(path, exc)) from None


@dataclass
class AudioInfo:
    """What a streamed decode found: the file's rate and channels, and its length so far."""

    sample_rate: int
    channels: int
    frames: int = 0

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


class Resampler:
    """soxr resampling of a stream of mono blocks; the concatenated output equals
    ``soxr.resample`` of the whole signal (tests/test_streaming_analysis.py checks it)."""

    def __init__(self, rate_in: int, rate_out: int, quality: str = "MQ"):
        import soxr

        self.same = rate_in == rate_out
        self.stream = None if self.same else soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32",
                                                                 quality=quality)

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self.same:
            return x
        return np.ascontiguousarray(self.stream.resample_chunk(x, last=last), np.float32)


# A sink takes (samples at its rate, last) in order: see stream_audio.
Sink = Callable[[np.ndarray, bool], None]


def stream_audio(path: Path, sinks: list[tuple[int, str, Sink]], block_seconds: float = 10.0) -> AudioInfo:
    """Decode ``path`` block by block (``block_seconds`` of audio at a time) to mono float32, and
    feed each sink ``(rate, soxr quality, sink)`` the samples resampled to its rate, ending with a
    call whose ``last`` is true. Memory stays that of a block, whatever the file's length.
    Unreadable, empty or invalid audio raises :class:`InputError`."""
    path = Path(path)
    with open_audio(path) as f:
        info = AudioInfo(int(f.samplerate), int(f.channels))
        resamplers = [(Resampler(info.sample_rate, rate or info.sample_rate, quality), sink)
                      for rate, quality, sink in sinks]
        block = max(1, int(block_seconds * info.sample_rate))
        pending = None
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except Exception as exc:  # a damaged stream part-way through
                raise InputError(f"{path}: not readable audio ({str(exc).splitlines()[0][:120]})") from None
            if len(data) == 0:
                break
            mono = data.mean(axis=1) if info.channels > 1 else data[:, 0]
            if not np.all(np.isfinite(mono)):
                raise InputError(f"{path}: the audio contains invalid samples (NaN/inf)")
            info.frames += len(mono)
            if pending is not None:  # one block behind, so the last one is fed with last=True
                for resample, sink in resamplers:
                    sink(resample(pending), False)
            pending = np.ascontiguousarray(mono, dtype=np.float32)
    if pending is None:
        raise InputError(f"{path}: the audio has no samples")
    for resample, sink in resamplers:
        sink(resample(pending, True), True)
    return info


def decode_audio(path: Path) -> Decoded:
    """Decode ``path`` whole, in one read, to mono float32 (the library analysis streams instead:
    see :func:`stream_audio`). Unreadable or empty files raise :class:`InputError`."""
    path = Path(path)
    with open_audio(path) as f:
        try:
            data = f.read(dtype="float32", always_2d=True)
        except Exception as exc:  # a damaged stream part-way through
            raise InputError(f"{path}: not readable audio ({str(exc).splitlines()[0][:120]})") from None
        sr = int(f.samplerate)
    if data.shape[0] == 0:
        raise InputError(f"{path}: the audio has no samples")
    channels = data.shape[1]
    mono = data.mean(axis=1) if channels > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise InputError(f"{path}: the audio contains invalid samples (NaN/inf)")
    return Decoded(np.ascontiguousarray(mono, dtype=np.float32), sr, int(channels), len(mono) / sr)


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


class Framer:
    """Cuts a stream of samples into the frames ``librosa.stft(y, center=True)`` makes of the whole
    signal (``n_fft`` samples every ``hop``, the signal padded with n_fft // 2 zeros at each end),
    ``chunk`` frames at a time: :meth:`push` returns the samples of each complete piece, ready for
    ``librosa.stft(..., center=False)``, and keeps only what the next frames need.

    No piece has fewer than ``MIN_PIECE`` frames unless the whole signal has: the filter banks
    (mel, chroma) multiply matrices, and BLAS rounds small products differently from large ones
    (numpy uses a matrix-vector product for one column; OpenBLAS a "small matrix" kernel below
    about a million multiply-adds: the chroma of a 35-frame piece differed in the last bit), while
    every piece must give the very numbers of the whole signal."""

    MIN_PIECE = 256

    def __init__(self, n_fft: int, hop: int, chunk: int):
        self.n_fft, self.hop, self.chunk = n_fft, hop, max(2 * self.MIN_PIECE, chunk)
        self.buf = np.zeros(n_fft // 2, np.float32)   # starts at sample -n_fft // 2 of frame 0
        self.received = 0                              # samples pushed so far
        self.done = 0                                  # frames returned so far

    def _take(self, frames: int) -> tuple[int, np.ndarray]:
        first, y = self.done, self.buf[:(frames - 1) * self.hop + self.n_fft]
        self.buf = self.buf[frames * self.hop:]
        self.done += frames
        return first, y

    def push(self, x: np.ndarray, last: bool = False) -> list[tuple[int, np.ndarray]]:
        """Add samples; returns [(index of the first frame, samples of its frames)] for each
        piece now complete (all the rest when ``last``)."""
        if len(x):
            self.buf = np.concatenate([self.buf, np.asarray(x, np.float32)])
            self.received += len(x)
        pieces = []
        if not last:
            # frame f is complete once samples up to f * hop + n_fft // 2 have arrived; MIN_PIECE
            # complete frames are always kept back, so the last piece has as many or more
            ready = max(0, (self.received - self.n_fft // 2) // self.hop + 1 - self.done)
            while ready - self.chunk >= self.MIN_PIECE:
                pieces.append(self._take(self.chunk))
                ready -= self.chunk
        else:
            total = 1 + self.received // self.hop  # the frames center=True gives the whole signal
            need = (total - 1 - self.done) * self.hop + self.n_fft
            if len(self.buf) < need:
                self.buf = np.concatenate([self.buf, np.zeros(need - len(self.buf), np.float32)])
            left = total - self.done
            while left >= self.chunk + self.MIN_PIECE:
                pieces.append(self._take(self.chunk))
                left -= self.chunk
            if left > self.chunk:  # chunk < left < chunk + MIN_PIECE: two pieces, both big enough
                pieces.append(self._take(left - self.MIN_PIECE))
                left = self.MIN_PIECE
            if left > 0:
                pieces.append(self._take(left))
        if pieces:
            self.buf = self.buf.copy()  # let go of the samples before
        return pieces


class FeatureStream:
    """The :data:`FEATURES` of a stream of 22.05 kHz mono samples, computed ``chunk_seconds`` of
    audio at a time: the spectral features frame by frame (the STFT frames of a chunk are exactly
    those of the whole signal), then the few whole-file steps on what the frames leave, which is
    small (see :meth:`result`). Memory: one chunk's spectra, plus 80 numbers per STFT frame
    (~50 MB per hour of audio)."""

    def __init__(self, chunk_seconds: float = 60.0):
        self.chunk_frames = max(2 * Framer.MIN_PIECE, int(chunk_seconds * SAMPLE_RATE / HOP))
        self.framer = Framer(N_FFT, HOP, self.chunk_frames)
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in ("rms", "centroid", "flatness", "chroma", "mel")}

    def push(self, y: np.ndarray, last: bool = False) -> None:
        import librosa

        for _, part in self.framer.push(y, last):
            spec = np.abs(librosa.stft(part, n_fft=N_FFT, hop_length=HOP, center=False))
            power = spec ** 2
            self.parts["rms"].append(librosa.feature.rms(S=spec, frame_length=N_FFT)[0] ** 2)
            self.parts["mel"].append(librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_mels=64, fmax=8000))
            self.parts["centroid"].append(librosa.feature.spectral_centroid(S=spec, sr=SAMPLE_RATE)[0])
            self.parts["flatness"].append(librosa.feature.spectral_flatness(S=spec)[0])
            self.parts["chroma"].append(librosa.feature.chroma_stft(S=power, sr=SAMPLE_RATE, tuning=0.0))
            del spec, power

    def _onset_envelope(self) -> np.ndarray:
        """librosa's ``onset_strength(S=power_to_db(mel, ref=np.max))`` of the whole mel, a chunk at
        a time: the reference (the whole mel's maximum) and the top_db floor are global, so they
        are taken first, then each chunk is converted with them (the same element-wise arithmetic)
        and differenced with the chunk before's last frame."""
        import librosa

        mels = self.parts["mel"]
        ref = max(m.max() for m in mels)
        top_db = 80.0
        peak = max(librosa.power_to_db(m, ref=ref, top_db=None).max() for m in mels)
        floor = peak - top_db
        diffs, prev = [], None
        for m in mels:
            db = np.maximum(librosa.power_to_db(m, ref=ref, top_db=None), floor)
            s = db if prev is None else np.concatenate([prev, db], axis=1)
            if s.shape[1] > 1:  # onset_strength(center=False) pads lag=1 frame in front: drop it
                diffs.append(librosa.onset.onset_strength(S=s, sr=SAMPLE_RATE, hop_length=HOP, center=False)[1:])
            prev = db[:, -1:]
        d = np.concatenate(diffs) if diffs else np.zeros(0, np.float32)
        n = sum(m.shape[1] for m in mels)
        # center=True shifts the envelope by lag + n_fft // (2 * hop) frames and keeps n of them
        shift = 1 + N_FFT // (2 * HOP)
        env = np.zeros(n, dtype=d.dtype if len(d) else np.float32)
        env[shift:] = d[:max(n - shift, 0)]
        return env

    def _tempo(self, onset_env: np.ndarray) -> np.ndarray:
        """``librosa.feature.tempo(onset_envelope, aggregate=None, ac_size=6)`` frame by frame, its
        tempogram a chunk at a time (the whole one is 258 numbers per frame): each chunk frames the
        envelope padded as tempogram(center=True) pads the whole one."""
        import librosa

        win = int(librosa.time_to_frames(6.0, sr=SAMPLE_RATE, hop_length=HOP).item())
        padded = np.pad(onset_env, (win // 2, win // 2), mode="linear_ramp", end_values=(0, 0))
        n, out = len(onset_env), []
        for a in range(0, n, self.chunk_frames):
            b = min(a + self.chunk_frames, n)
            tg = librosa.feature.tempogram(onset_envelope=padded[a:b + win - 1], sr=SAMPLE_RATE, hop_length=HOP,
                                           win_length=win, center=False)[:, :b - a]
            out.append(librosa.feature.tempo(tg=tg, sr=SAMPLE_RATE, hop_length=HOP, aggregate=None))
        return np.concatenate(out) if out else np.zeros(0)

    def result(self, path: Path, info: AudioInfo) -> AudioFeatures:
        """The features, once the last samples were pushed. Raises :class:`InputError` for a piece
        shorter than one step."""
        import librosa

        duration = info.duration
        n_steps = n_steps_of(duration)
        if n_steps < 1:
            raise InputError(f"{path}: too short to analyse ({duration:.2f} s; at least 0.5 s is needed)")
        fps = SAMPLE_RATE / HOP
        per = fps / SERIES_HZ  # frames per 0.5 s step

        onset_env = self._onset_envelope()
        del self.parts["mel"]
        rms = np.concatenate(self.parts.pop("rms"))
        frame_db = 10.0 * np.log10(rms + 1e-10)
        onsets = librosa.onset.onset_detect(onset_envelope=onset_env, sr=SAMPLE_RATE, hop_length=HOP,
                                            units="frames")
        onset_train = np.zeros_like(onset_env)
        onset_train[np.clip(onsets, 0, len(onset_train) - 1)] = 1.0
        tempo = self._tempo(onset_env)
        centroid = np.concatenate(self.parts.pop("centroid"))
        flatness = np.concatenate(self.parts.pop("flatness"))
        chroma = np.concatenate(self.parts.pop("chroma"), axis=1)

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
        return AudioFeatures(values=values, duration=duration, sample_rate=info.sample_rate, channels=info.channels)


def extract_features(path: Path, decoded: Decoded | None = None, chunk_seconds: float = 60.0) -> AudioFeatures:
    """The :data:`FEATURES` of ``path`` at 2 Hz, streamed (bounded memory for any length), or of
    ``decoded`` when given. Raises :class:`InputError` for unusable files."""
    stream = FeatureStream(chunk_seconds)
    if decoded is not None:
        stream.push(decoded.at(SAMPLE_RATE), last=True)
        info = AudioInfo(decoded.sample_rate, decoded.channels, len(decoded.mono))
    else:
        info = stream_audio(path, [(SAMPLE_RATE, "MQ", stream.push)])
    return stream.result(path, info)
