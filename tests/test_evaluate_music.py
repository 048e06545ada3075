"""`eval music`: our audio-derived V/A against DEAM's human ratings, on the real DEAM sample
(../shared/data/deam_sample: 10 songs in the release's exact layout)."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from moodsic_live.errors import InputError
from moodsic_live.evaluate.music import evaluate_music, markdown


@pytest.fixture(scope="module")
def music_config(tmp_path_factory):
    """Libraries, saved audio model and analysis cache in this module's own folder: the built-in
    audio model is what is measured, and the analysis (musicnn + features) runs once here."""
    from moodsic_live.config import Config

    base = tmp_path_factory.mktemp("music_eval")
    c = Config()
    c.library.dir, c.paths.cache_dir, c.library.workers = base / "libraries", base / "cache", 2
    return c


@pytest.fixture(scope="module")
def report(deam_sample, music_config):
    lines = []
    r = evaluate_music(deam_sample, music_config.paths.cache_dir / "analysis", workers=2, say=lines.append,
                       config=music_config)
    r.lines = lines
    return r


def test_report_on_the_deam_sample(report):
    print(f"\neval music, 10 DEAM songs ({report.inputs}): dynamic {report.dynamic}; static {report.static}")
    assert report.songs == 10 and report.static_songs == 10 and report.inputs == "10 features + musicnn tags"
    assert report.model.startswith("built-in")
    assert report.steps == sum(e["steps"] for e in report.per_song) and report.steps > 10 * 40
    for dim in ("valence", "arousal"):
        d, s = report.dynamic[dim], report.static[dim]
        assert set(d) == {"r", "rmse", "mean_song_r", "songs_with_r"} and set(s) == {"r", "rmse"}
        for x in (d["r"], d["rmse"], d["mean_song_r"], s["r"], s["rmse"]):
            assert math.isfinite(x)
        assert -1 <= d["r"] <= 1 and 0 < d["rmse"] < 1 and 0 < s["rmse"] < 2
        assert d["songs_with_r"] == 10
    # arousal is what audio tells reliably (measured: pooled r +0.84, static r +0.68)
    assert report.dynamic["arousal"]["r"] > 0
    assert [e["song"] for e in report.per_song] == ["2", "3", "4", "5", "7", "8", "10", "12", "13", "17"]
    assert all("ours" in e and "static" in e for e in report.per_song)
    d = report.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["songs"] == 10 and set(d["dynamic"]) == {"valence", "arousal"}
    text = markdown(report)
    assert "| arousal |" in text and "| 17 | " in text and "built-in" in text


def test_features_only_model(deam_sample, music_config):
    r = evaluate_music(deam_sample, music_config.paths.cache_dir / "analysis", music_model="features", workers=2,
                       say=lambda s: None, config=music_config)  # features are cached by then: fast
    assert r.inputs == "10 features" and r.songs == 10 and math.isfinite(r.dynamic["arousal"]["r"])


def test_bad_input_is_one_line(tmp_path, deam_sample, music_config):
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match="not a folder") as err:
        evaluate_music(tmp_path / "nope", cache, say=lambda s: None, config=music_config)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="no DEAM files found"):
        evaluate_music(tmp_path, cache, say=lambda s: None, config=music_config)
    (tmp_path / "MEMD_audio").mkdir()
    shutil.copy(deam_sample / "MEMD_audio" / "2.mp3", tmp_path / "MEMD_audio" / "2.mp3")  # audio, no annotations
    with pytest.raises(InputError, match="0 songs have both audio and a dynamic annotation") as err:
        evaluate_music(tmp_path, cache, say=lambda s: None, config=music_config)
    assert "\n" not in str(err.value)
