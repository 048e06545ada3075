"""Long audio in bounded memory (issue 17): the streamed decode and the chunked features and tags
give today's whole-file results, a long file is analysed in a fraction of the memory the whole
file took, and unreadable files say why in one line.

Real audio (the DEAM sample, and multi-minute files made from it), real ONNX taggers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT
from moodsic_live.errors import InputError
from moodsic_live.library.analysis import Tagging, analyse_one
from moodsic_live.library.audio_va import _TYPICAL_SCALE
from moodsic_live.library.features import (FEATURES, HOP, N_FFT, SAMPLE_RATE, Decoded, Framer,
                                           decode_audio, extract_features, n_steps_of, stream_audio, tonal_features,
                                           _per_step)
from moodsic_live.library.tagger import MusicTagger, resample_for_tagger

# -- the whole-file analysis of FEATURE_VERSION 1, as it was before streaming (the reference) ----


def whole_file_decode(path: Path) -> Decoded:
    """The decode of FEATURE_VERSION 1: the whole file in one read."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return Decoded(np.ascontiguousarray(mono, dtype=np.float32), int(sr), data.shape[1], len(mono) / sr)


def whole_file_features(d: Decoded) -> np.ndarray:
    """extract_features of FEATURE_VERSION 1, verbatim but for the decode: every step on the whole file."""
    import librosa

    y = d.at(SAMPLE_RATE)
    n_steps = n_steps_of(d.duration)
    fps = SAMPLE_RATE / HOP
    per = fps / 2.0
    spec = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP, center=True))
    power = spec ** 2
    rms = librosa.feature.rms(S=spec, frame_length=N_FFT)[0] ** 2
    frame_db = 10.0 * np.log10(rms + 1e-10)
    mel = librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_mels=64, fmax=8000)
    onset_env = librosa.onset.onset_strength(S=librosa.power_to_db(mel, ref=np.max), sr=SAMPLE_RATE, hop_length=HOP)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_env, sr=SAMPLE_RATE, hop_length=HOP, units="frames")
    onset_train = np.zeros_like(onset_env)
    onset_train[np.clip(onsets, 0, len(onset_train) - 1)] = 1.0
    tempo = librosa.feature.tempo(onset_envelope=onset_env, sr=SAMPLE_RATE, hop_length=HOP, aggregate=None,
                                  ac_size=6.0)
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
    weight = rms + 1e-12
    centroid_step = _per_step(centroid * weight, n_steps, per, 1.0) / _per_step(weight, n_steps, per, 1.0)
    centroid_step = np.log2(np.maximum(centroid_step, 50.0) / 1000.0)
    flat_db = 10.0 * np.log10(_per_step(flatness, n_steps, per, 1.0) + 1e-10)
    chroma_win = np.stack([_per_step(chroma[k] * weight, n_steps, per, 6.0) for k in range(12)])
    mode, clarity, dissonance = tonal_features(chroma_win)
    return np.column_stack([loudness, loudness_range, onset_rate, flux, tempo_step, centroid_step,
                            flat_db, mode, clarity, dissonance]).astype(np.float32)


# MP3 only: libsndfile's MP3 decoder (libmpg123) gives samples that differ by about one float32
# rounding step (<= 2.4e-7) when a file is read in blocks instead of in one read (the block
# boundaries change how libmpg123 hands its frames over; FLAC and WAV read the same either way).
# The features then differ by at most a ten-thousandth of each feature's typical spread.
MP3_SAMPLE_TOLERANCE = 2.4e-7
MP3_FEATURE_TOLERANCE = np.array([1e-4 * _TYPICAL_SCALE[f] for f in FEATURES])


@pytest.fixture(scope="module")
def long_flac(tmp_path_factory, deam_sample) -> Path:
    """3 min 40 s of music, stereo FLAC at 44.1 kHz (five DEAM songs one after another; the
    right channel a little later): four chunks of 60 s and a part."""
    songs = [whole_file_decode(p).mono for p in sorted((deam_sample / "MEMD_audio").glob("*.mp3"))[:5]]
    y = np.concatenate(songs)[:44100 * 220]
    path = tmp_path_factory.mktemp("long") / "set.flac"
    sf.write(str(path), np.column_stack([y, np.roll(y, 16_000)]), 44100, subtype="PCM_16")
    return path


def test_streamed_decode_is_the_whole_read(long_flac, deam_sample):
    def streamed(path: Path) -> tuple[np.ndarray, object]:
        blocks: list[np.ndarray] = []
        info = stream_audio(path, [(0, "", lambda x, last: blocks.append(x))])
        return np.concatenate(blocks), info

    whole = whole_file_decode(long_flac)
    mono, info = streamed(long_flac)
    assert np.array_equal(whole.mono, mono) and info.duration == whole.duration == 220.0
    assert (info.sample_rate, info.channels) == (44100, 2)
    assert np.array_equal(decode_audio(long_flac).mono, whole.mono)
    mp3 = deam_sample / "MEMD_audio" / "2.mp3"
    a, (b, _) = whole_file_decode(mp3).mono, streamed(mp3)
    assert np.array_equal(decode_audio(mp3).mono, a)  # decode_audio still reads in one go
    assert len(a) == len(b) and 0 < np.abs(a - b).max() <= MP3_SAMPLE_TOLERANCE


@pytest.mark.parametrize("chunk_seconds", [60.0, 13.7])
def test_streamed_features_equal_the_whole_file_ones_exactly(long_flac, chunk_seconds):
    """Chunks of 60 s (the default) and of an odd length whose pieces end anywhere: bit for bit."""
    reference = whole_file_features(whole_file_decode(long_flac))
    got = extract_features(long_flac, chunk_seconds=chunk_seconds)
    assert got.values.shape == reference.shape == (440, len(FEATURES))
    assert np.array_equal(got.values, reference)
    assert (got.duration, got.sample_rate, got.channels) == (220.0, 44100, 2)


def test_deam_songs_same_features_as_whole_file(deam_sample):
    """The same samples give the same features bit for bit; the streamed MP3 decode moves them
    by less than MP3_FEATURE_TOLERANCE (see there)."""
    worst = np.zeros(len(FEATURES))
    for path in sorted((deam_sample / "MEMD_audio").glob("*.mp3")):
        decoded = whole_file_decode(path)
        reference = whole_file_features(decoded)
        assert np.array_equal(extract_features(path, decoded).values, reference), path.name
        streamed = extract_features(path).values
        assert streamed.shape == reference.shape
        worst = np.maximum(worst, np.abs(streamed - reference).max(axis=0))
    print("\nstreamed MP3 decode vs one read, max |diff| per feature:",
          dict(zip(FEATURES, np.round(worst, 8))))
    assert np.all(worst <= MP3_FEATURE_TOLERANCE), dict(zip(FEATURES, worst))


@pytest.mark.parametrize("n", [1, 300, 511, 512, 2047, 2048, 2049, 300_000, 331_264, 331_776, 400_000])
def test_framer_pieces_are_the_frames_of_the_whole_signal(n):
    """Whatever the length and the blocks, the pieces' STFT frames are the whole signal's
    centred STFT, exactly, and no piece is smaller than MIN_PIECE frames unless the signal is."""
    import librosa

    y = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    whole = librosa.stft(y, n_fft=N_FFT, hop_length=HOP, center=True)
    for block, chunk in ((n, 600), (7777, 600), (7777, 3), (40_960, 513)):
        framer, parts = Framer(N_FFT, HOP, chunk), []
        for i in range(0, max(n, 1), block):
            last = i + block >= n
            for first, samples in framer.push(y[i:i + block], last):
                assert first == sum(p.shape[1] for p in parts)
                parts.append(librosa.stft(samples, n_fft=N_FFT, hop_length=HOP, center=False))
        got = np.concatenate(parts, axis=1)
        assert got.shape == whole.shape and np.array_equal(got, whole), (block, chunk)
        assert all(p.shape[1] >= Framer.MIN_PIECE for p in parts) or len(parts) == 1


@pytest.fixture(scope="module")
def tagger(models_dir) -> MusicTagger:
    return MusicTagger(models_dir, threads=2)


def test_streamed_tags_equal_the_whole_file_tags_exactly(tagger, long_flac, deam_sample):
    for path in (long_flac, deam_sample / "MEMD_audio" / "13.mp3"):
        blocks: list[np.ndarray] = []  # the very samples the stream decodes (for MP3 see above)
        info = stream_audio(path, [(0, "", lambda x, last: blocks.append(x))])
        decoded = Decoded(np.concatenate(blocks), info.sample_rate, info.channels, info.duration)
        reference = tagger.tag(resample_for_tagger(decoded), n_steps_of(decoded.duration))
        stream = tagger.stream()
        info = stream_audio(path, [(16000, "HQ", stream.push)])
        got = stream.result(n_steps_of(info.duration))
        for name, probs in reference.probs.items():
            assert got.probs[name].shape == probs.shape and np.array_equal(got.probs[name], probs), (path, name)


def test_analyse_one_streams_both_and_matches_the_whole_file(models_dir, long_flac, tmp_path):
    result = analyse_one(long_flac, "long", tmp_path, Tagging.load(models_dir))
    assert not result.error and not result.tag_error
    assert np.array_equal(result.features.values, whole_file_features(whole_file_decode(long_flac)))
    tagger = MusicTagger(models_dir, threads=1)
    d = whole_file_decode(long_flac)
    reference = tagger.tag(resample_for_tagger(d), n_steps_of(d.duration))
    for name, probs in reference.probs.items():
        assert np.array_equal(result.tags.probs[name], probs.astype(np.float16).astype(np.float32))


def test_a_short_piece_is_one_chunk_and_too_short_is_said(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(str(short), np.sin(np.arange(int(0.7 * 22050)) * 0.05).astype(np.float32) * 0.3, 22050)
    got = extract_features(short)
    assert len(got.values) == 1 and np.array_equal(got.values, whole_file_features(whole_file_decode(short)))
    tiny = tmp_path / "tiny.wav"
    sf.write(str(tiny), np.zeros(3000, np.float32), 22050)
    with pytest.raises(InputError, match="too short to analyse"):
        extract_features(tiny)


# -- memory --------------------------------------------------------------------------------------

LONG_MINUTES = 25
# This 25-minute file (mono 22.05 kHz WAV, features only) peaked at 2192 MB with the whole-file
# analysis (the code before streaming, same child) and peaks at 358 MB streamed (2-core Xeon VM).
PEAK_BOUND_MB = 600

_CHILD = """
import sys, tempfile
from pathlib import Path
from moodsic_live.library.analysis import analyse_one
with tempfile.TemporaryDirectory() as cache:
    r = analyse_one(Path(sys.argv[1]), "long", Path(cache))
assert r.features is not None, r.error
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(len(r.features.values), hwm[0])
"""


def test_a_long_file_is_analysed_in_bounded_memory(tmp_path):
    """A fresh process analyses a 25-minute file (a cheap signal: chirps and noise) and its peak
    resident memory (ru_maxrss of the child, read after it exited) stays far below what the
    whole-file analysis took."""
    path = tmp_path / "long.wav"
    sr, rng = 22050, np.random.default_rng(1)
    with sf.SoundFile(str(path), "w", sr, 1, subtype="PCM_16") as out:
        t = np.arange(60 * sr) / sr
        for minute in range(LONG_MINUTES):
            tone = np.sin(2 * np.pi * (220 + 40 * minute) * t * (1 + 0.1 * np.sin(t)))
            out.write((0.3 * tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", _CHILD, str(path)], cwd=str(ROOT), env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    steps, maxrss_kb = map(int, run.stdout.split()[-2:])
    assert steps == LONG_MINUTES * 120
    # the child's own peak (VmHWM of its address space, read at its end): ru_maxrss would carry the
    # pytest process's peak over fork + exec, and RUSAGE_CHILDREN is the largest child of the whole run
    peak_mb = maxrss_kb / 1024
    print(f"\npeak RSS of the analysis of {LONG_MINUTES} min: {peak_mb:.0f} MB (bound {PEAK_BOUND_MB} MB)")
    assert peak_mb < PEAK_BOUND_MB


# -- what an unreadable file says ------------------------------------------------------------------

def test_random_bytes_named_mp3_say_so_in_one_line(tmp_path, capfd):
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(3).bytes(200_000))
    with pytest.raises(InputError) as err:
        decode_audio(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not readable audio (not an MP3/FLAC/") and "\n" not in message
    assert "pipe" not in message and "does not exist" not in message
    stderr = capfd.readouterr().err
    assert "libmpg123" not in stderr and "MPEG header" not in stderr, stderr  # fd 2 kept quiet
    assert analyse_one(path, "x", tmp_path).error == message


def test_random_bytes_in_a_fresh_process_print_nothing_on_stderr(tmp_path):
    """Outside pytest's capture: the C library's own line never reaches the terminal."""
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(4).bytes(100_000))
    code = ("import sys\nfrom moodsic_live.library.features import decode_audio\n"
            "sys.stderr.write('before\\n')\ntry:\n    decode_audio(sys.argv[1])\n"
            "except Exception as e:\n    print(e)\nsys.stderr.write('after\\n')\n")
    run = subprocess.run([sys.executable, "-c", code, str(path)], cwd=str(ROOT), capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert run.stderr == "before\nafter\n"
    assert "not readable audio (not an MP3/FLAC/" in run.stdout


def test_a_symbolic_link_loop_is_named(tmp_path):
    a, b = tmp_path / "a.flac", tmp_path / "b.flac"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(InputError, match=r"a\.flac: a symbolic link loop"):
        decode_audio(a)
    assert "does not exist" not in analyse_one(a, "x", tmp_path).error
    gone = tmp_path / "gone.mp3"
    gone.symlink_to(tmp_path / "nowhere.mp3")
    with pytest.raises(InputError, match="a broken symbolic link"):
        decode_audio(gone)
