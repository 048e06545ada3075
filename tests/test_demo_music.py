"""The generated demo library: coverage of the mood plane, sound that behaves like music (measured
with librosa, not with our own code), determinism, and the incremental, atomic folder writer."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from moodsic_live.library import demo
from moodsic_live.library.demo import (ARTIST, DEMO_VERSION, DemoPiece, demo_pieces, piece_styles,
                                       render_piece, section_style, write_demo_library)

librosa = pytest.importorskip("librosa")

SR = 22050
# Krumhansl & Kessler (1982) key profiles, C major and C minor.
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def steady(valence: float, arousal: float) -> DemoPiece:
    """The steady piece whose intended target is (valence, arousal)."""
    [piece] = [p for p in demo_pieces() if p.sections == ((0.0, valence, arousal),)]
    return piece


@pytest.fixture(scope="module")
def rendered():
    """Renders shared by the tests below (each piece at most once)."""
    cache: dict[str, np.ndarray] = {}

    def get(piece: DemoPiece) -> np.ndarray:
        if piece.slug not in cache:
            cache[piece.slug] = render_piece(piece, SR)
        return cache[piece.slug]

    return get


def mono(audio: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(audio.mean(axis=1))


def onset_rate(y: np.ndarray) -> float:
    return len(librosa.onset.onset_detect(y=y, sr=SR)) / (len(y) / SR)


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(y ** 2)))


# --- the pieces -------------------------------------------------------------------------------


def test_pieces_cover_the_mood_plane():
    pieces = demo_pieces()
    assert len(pieces) >= 24
    assert len({p.slug for p in pieces}) == len(pieces)
    assert len({p.seed for p in pieces}) == len(pieces)
    assert all(45.0 <= p.seconds <= 90.0 for p in pieces)
    assert all(p.title and p.slug[:3] == f"{i + 1:02d}-" for i, p in enumerate(pieces))

    def pieces_in(test) -> int:
        return sum(any(test(v, a) for _, v, a in p.sections) for p in pieces)

    for v_sign in (-1, 1):
        for a_sign in (-1, 1):
            assert pieces_in(lambda v, a: v * v_sign >= 0.3 and a * a_sign >= 0.3) >= 4, (v_sign, a_sign)
    assert pieces_in(lambda v, a: abs(v) <= 0.2 and abs(a) <= 0.2) >= 1
    # the grid is even: every intended valence and arousal level is used by several pieces
    targets = [(v, a) for p in pieces for _, v, a in p.sections]
    for level in (-0.8, -0.4, 0.0, 0.4, 0.8):
        assert sum(v == level for v, _ in targets) >= 5
        assert sum(a == level for _, a in targets) >= 5
    changing = [p for p in pieces if p.changes_mood]
    assert len(changing) >= 4
    for p in changing:  # a real change, not a nudge
        (_, v0, a0), (_, v1, a1) = p.sections[0], p.sections[-1]
        assert abs(v1 - v0) + abs(a1 - a0) >= 1.0


def test_piece_validation_and_intended_targets():
    p = DemoPiece("x", "X", 60.0, ((0.0, -0.5, -0.5), (0.5, 0.5, 0.5)), seed=1)
    assert p.intended_at(10.0) == (-0.5, -0.5) and p.intended_at(45.0) == (0.5, 0.5)
    assert p.section_times() == [(0.0, 30.0), (30.0, 60.0)]
    with pytest.raises(ValueError):
        DemoPiece("x", "X", 60.0, ((0.2, 0.0, 0.0),), seed=1)          # must start at 0
    with pytest.raises(ValueError):
        DemoPiece("x", "X", 60.0, ((0.0, 0.0, 1.5),), seed=1)          # outside [-1, 1]


def test_styles_follow_the_emotion_cues():
    # arousal: faster, louder, brighter, denser, more percussion; valence: major vs minor
    calm, mid, energetic = (section_style(0.4, a, 0, seed=3) for a in (-0.8, 0.0, 0.8))
    assert calm.tempo < mid.tempo < energetic.tempo
    assert calm.loudness_db < mid.loudness_db < energetic.loudness_db
    assert calm.brightness < mid.brightness < energetic.brightness
    assert calm.level < mid.level < energetic.level
    assert calm.drums == 0 < mid.drums < energetic.drums
    assert calm.articulation > energetic.articulation          # legato vs staccato
    for a in (-0.8, -0.4, 0.0, 0.4, 0.8):
        assert section_style(0.8, a, 0, seed=3).is_major and section_style(0.4, a, 0, seed=3).is_major
        assert not section_style(-0.4, a, 0, seed=3).is_major
        assert not section_style(-0.8, a, 0, seed=3).is_major
        bright, dark = section_style(0.8, a, 0, seed=3), section_style(-0.8, a, 0, seed=3)
        assert bright.melody_center > dark.melody_center
    harsh, dark_calm = section_style(-0.8, 0.8, 0, seed=3), section_style(-0.8, -0.8, 0, seed=3)
    assert harsh.roughness > 0.5 and dark_calm.roughness == 0.0
    assert section_style(0.8, 0.8, 0, seed=3).roughness == 0.0


# --- the sound --------------------------------------------------------------------------------


def test_render_is_stereo_float32_audible_unclipped_and_deterministic(rendered):
    for piece in (steady(0.8, -0.8), steady(0.8, 0.8), steady(-0.8, 0.8)):
        audio = rendered(piece)
        assert audio.dtype == np.float32 and audio.shape == (round(piece.seconds * SR), 2)
        assert rms(audio) > 0.02
        assert np.max(np.abs(audio)) <= 0.99
        assert not np.allclose(audio[:, 0], audio[:, 1])           # real stereo
    piece = steady(0.8, -0.8)
    assert np.array_equal(render_piece(piece, SR), rendered(piece))
    other = DemoPiece(piece.slug, piece.title, piece.seconds, piece.sections, piece.seed + 1, piece.tonic)
    assert not np.array_equal(render_piece(other, SR), rendered(piece))


def test_high_arousal_has_more_onsets_and_energy_than_low_arousal(rendered):
    for valence in (0.8, -0.4):
        low, high = mono(rendered(steady(valence, -0.8))), mono(rendered(steady(valence, 0.8)))
        assert onset_rate(high) > 1.5 * onset_rate(low)
        assert rms(high) > 2.0 * rms(low)


@pytest.mark.parametrize("target", [(0.8, 0.8), (0.4, 0.4), (0.8, 0.0)])
def test_beat_tracker_finds_the_intended_tempo_of_pieces_with_drums(rendered, target):
    piece = steady(*target)
    [style] = piece_styles(piece)
    assert style.drums > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        tempo, _ = librosa.beat.beat_track(y=mono(rendered(piece)), sr=SR)
    tempo = float(np.atleast_1d(tempo)[0])
    assert min(abs(tempo * k / style.tempo - 1.0) for k in (0.5, 1.0, 2.0)) <= 0.10, (tempo, style.tempo)


@pytest.mark.parametrize("target", [(0.8, 0.8), (0.4, -0.4), (-0.4, -0.4), (-0.4, 0.8)])
def test_chroma_matches_the_intended_mode(rendered, target):
    piece = steady(*target)
    [style] = piece_styles(piece)
    chroma = librosa.feature.chroma_cqt(y=mono(rendered(piece)), sr=SR).mean(axis=1)
    major = np.corrcoef(chroma, np.roll(MAJOR, style.tonic))[0, 1]
    minor = np.corrcoef(chroma, np.roll(MINOR, style.tonic))[0, 1]
    assert (major > minor) == style.is_major, (major, minor, style.mode)
    assert max(major, minor) > 0.5                                  # the tonic is clear


def test_music_is_tonal_not_noise(rendered):
    noise = np.random.default_rng(0).standard_normal(SR * 10).astype(np.float32) * 0.1
    noise_flatness = float(np.mean(librosa.feature.spectral_flatness(y=noise)))
    for piece in (steady(0.8, -0.8), steady(0.8, 0.8), steady(-0.8, 0.8)):
        flatness = float(np.mean(librosa.feature.spectral_flatness(y=mono(rendered(piece)))))
        assert flatness < 0.1 * noise_flatness, (piece.slug, flatness, noise_flatness)


def test_a_mood_change_is_audible():
    [piece] = [p for p in demo_pieces() if p.title == "Dawn Breaks"]
    (_, v0, a0), (_, v1, a1) = piece.sections
    assert a1 > a0 and v1 > v0
    audio = mono(render_piece(piece, SR))
    (s0, e0), (s1, e1) = piece.section_times()
    first, second = audio[int(s0 * SR):int((e0 - 2) * SR)], audio[int((s1 + 2) * SR):int(e1 * SR)]
    assert rms(second) > 2.0 * rms(first)
    assert onset_rate(second) > 1.5 * onset_rate(first)


# --- the folder -------------------------------------------------------------------------------


def short_pieces() -> list[DemoPiece]:
    return [DemoPiece("01-short-bright", "Short Bright", 6.0, ((0.0, 0.7, 0.6),), seed=11, tonic=2),
            DemoPiece("02-short-dark", "Short Dark", 7.0, ((0.0, -0.6, -0.6),), seed=12, tonic=9)]


def stamps(paths: list[Path]) -> list[tuple[int, int]]:
    return [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths]


def test_write_demo_library_writes_tagged_files_once(tmp_path):
    pieces = short_pieces()
    messages: list[str] = []
    paths = write_demo_library(tmp_path, pieces=pieces, say=messages.append)
    assert paths == [tmp_path / "01-short-bright.ogg", tmp_path / "02-short-dark.ogg"]
    assert messages
    for piece, path in zip(pieces, paths):
        with sf.SoundFile(path) as f:
            assert (f.samplerate, f.channels, f.format, f.subtype) == (SR, 2, "OGG", "VORBIS")
            assert f.frames / f.samplerate == pytest.approx(piece.seconds, abs=0.05)
            assert (f.title, f.artist) == (piece.title, ARTIST)
            audio = f.read(dtype="float32")
        assert rms(audio) > 0.02 and np.max(np.abs(audio)) <= 1.0
    assert not list(tmp_path.glob("*.tmp"))
    manifest = json.loads((tmp_path / "demo.json").read_text())
    assert manifest["version"] == DEMO_VERSION and manifest["files"] == [p.name for p in paths]

    before, messages[:] = stamps(paths), []
    assert write_demo_library(tmp_path, pieces=pieces, say=messages.append) == paths
    assert stamps(paths) == before and messages == []


def test_write_demo_library_renders_again_what_changed(tmp_path, monkeypatch):
    pieces = short_pieces()
    paths = write_demo_library(tmp_path, pieces=pieces)
    first, second = stamps(paths)

    # a new piece in the list: only it is rendered
    extra = DemoPiece("03-short-calm", "Short Calm", 6.0, ((0.0, 0.3, -0.7),), seed=13)
    paths3 = write_demo_library(tmp_path, pieces=pieces + [extra])
    assert stamps(paths3[:2]) == [first, second] and paths3[2].is_file()

    # a changed piece (same file name) and a missing file are rendered again
    changed = DemoPiece(pieces[0].slug, pieces[0].title, 6.0, pieces[0].sections, seed=99, tonic=2)
    [extra_stamp] = stamps(paths3[2:])
    paths3[1].unlink()
    write_demo_library(tmp_path, pieces=[changed, pieces[1], extra])
    now = stamps(paths3)
    assert now[0] != first and paths3[1].is_file() and now[2] == extra_stamp

    # a piece dropped from the list: its file goes
    write_demo_library(tmp_path, pieces=[changed, pieces[1]])
    assert not paths3[2].exists()

    # a new demo version renders everything again
    before = stamps(paths)
    monkeypatch.setattr(demo, "DEMO_VERSION", DEMO_VERSION + 1)
    write_demo_library(tmp_path, pieces=[changed, pieces[1]])
    after = stamps(paths)
    assert all(a != b for a, b in zip(after, before))
    assert json.loads((tmp_path / "demo.json").read_text())["version"] == DEMO_VERSION + 1
