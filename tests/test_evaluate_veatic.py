"""`eval veatic`: the perceive -> stabilise pipeline against per-frame ratings in VEATIC's layout.

The dataset here is tiny but real-looking: two short MP4 videos made of real face photos
(../shared/data/faces_dev: a neutral half, then the same person smiling) with rating files whose
valence follows the expression, in the release's ``frame,value`` form.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from moodsic_live.errors import InputError
from moodsic_live.evaluate.veatic import Track, align, evaluate_veatic, markdown, read_ratings

FPS, SECONDS, SIZE = 10, 10, 320
N = FPS * SECONDS
# Two people whose smile the face expert reads clearly (fused valence neutral ~0.0, smiling +0.2..+0.6).
PEOPLE = {"1": "032", "2": "010"}


def _write_video(path, first, second):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (SIZE, SIZE))
    assert writer.isOpened()
    for i in range(N):
        writer.write(first if i < N // 2 else second)
    writer.release()


def _ratings(low, high):
    return np.where(np.arange(N) < N // 2, low, high)


@pytest.fixture(scope="module")
def veatic_root(tmp_path_factory, faces_dev):
    root = tmp_path_factory.mktemp("veatic")
    (root / "videos").mkdir()
    (root / "rating_averaged").mkdir()
    for vid, person in PEOPLE.items():
        photos = [cv2.resize(cv2.imread(str(faces_dev / f"{kind}/{person}_{n}.jpg")), (SIZE, SIZE))
                  for kind, n in (("neutral", "03"), ("smiling", "08"))]
        _write_video(root / "videos" / f"{vid}.mp4", *photos)
        for dim, values in (("valence", _ratings(-0.2, 0.5)), ("arousal", _ratings(-0.1, 0.3))):
            if vid == "1":  # the release's form: frame,value
                text = "".join(f"{i},{v:.6f}\n" for i, v in enumerate(values))
            else:           # a value a line, with a header
                text = "value\n" + "".join(f"{v:.6f}\n" for v in values)
            (root / "rating_averaged" / f"{vid}_{dim}.csv").write_text(text)
    # a video with no rating files, and ratings beside a file no decoder can read: counted, skipped
    _write_video(root / "videos" / "3.mp4", *[np.zeros((SIZE, SIZE, 3), np.uint8)] * 2)
    (root / "videos" / "4.mp4").write_bytes(b"not a video at all" * 100)
    for dim in ("valence", "arousal"):
        (root / "rating_averaged" / f"4_{dim}.csv").write_text("0,0.1\n1,0.2\n")
    return root


@pytest.fixture(scope="module")
def report(veatic_root, config, models_dir):
    lines = []
    r = evaluate_veatic(veatic_root, config, models_dir, say=lines.append)
    r.lines = lines
    return r


def test_report_structure_and_alignment(report):
    assert [v.video for v in report.videos] == ["1", "2"] and report.fps == 5.0
    assert len(report.skipped) == 2
    assert any(s.startswith("3:") and "no rating file" in s for s in report.skipped)
    assert any(s.startswith("4:") for s in report.skipped)
    assert sum(line.startswith("skipped") for line in report.lines) == 2
    for v in report.videos:
        # every annotated frame lies at or after the first sample (t = 0): all N are compared
        assert v.frames == N and v.samples == SECONDS * 5
        assert v.face_coverage > 0.9
        for kind in ("raw", "stabilised"):
            for dim in ("valence", "arousal"):
                assert set(v.scores[kind][dim]) == {"mae", "spearman", "ccc"}
                assert 0 <= v.scores[kind][dim]["mae"] < 1
    o = report.overall
    assert o.video == "all" and o.frames == 2 * N and o.samples == 2 * SECONDS * 5
    d = report.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["videos_used"] == 2 and d["videos_skipped"] == 2 and d["overall"]["frames"] == 2 * N
    text = markdown(report)
    assert "| stabilised | valence |" in text and "| 1 | 100 |" in text and "Skipped:" in text


def test_stabilised_valence_follows_the_ratings(report):
    s, r = report.overall.scores["stabilised"]["valence"], report.overall.scores["raw"]["valence"]
    print(f"\nVEATIC fixture, pooled valence: stabilised {s}, raw {r}")
    assert s["spearman"] > 0 and r["spearman"] > 0
    assert math.isfinite(s["ccc"]) and s["ccc"] > 0


def test_align_keeps_frames_from_the_first_estimate_to_the_end_read():
    track = Track(t=np.array([0.5, 1.0]), raw=np.zeros((2, 2)), stable=np.zeros((2, 2)),
                  face=np.ones(2, bool), read_to=1.2)
    frames, idx = align(track, 20, 10.0)  # frame k at k / 10 s
    assert frames.tolist() == list(range(5, 12))
    assert idx.tolist() == [0] * 5 + [1] * 2  # the last estimate at or before each frame


def test_read_ratings_forms_and_scale(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("0,-1.0\n1,0.25\n\n2,1.0\n")
    assert read_ratings(a, "valence").tolist() == [-1.0, 0.25, 1.0]
    b = tmp_path / "b.csv"
    b.write_text("0,1.5\n")
    with pytest.raises(Exception, match=r"outside its scale \[-1, 1\]"):
        read_ratings(b, "valence")


def test_bad_input_is_one_line(tmp_path, config, models_dir):
    with pytest.raises(InputError, match="not a folder"):
        evaluate_veatic(tmp_path / "nope", config, models_dir, say=lambda s: None)
    with pytest.raises(InputError, match="no videos/ folder"):
        evaluate_veatic(tmp_path, config, models_dir, say=lambda s: None)
    (tmp_path / "videos").mkdir()
    (tmp_path / "rating_averaged").mkdir()
    _write_video(tmp_path / "videos" / "7.mp4", *[np.zeros((SIZE, SIZE, 3), np.uint8)] * 2)
    lines = []
    with pytest.raises(InputError, match="no usable VEATIC video") as err:
        evaluate_veatic(tmp_path, config, models_dir, say=lines.append)
    assert "\n" not in str(err.value) and lines == ["skipped 7: no rating file 7_valence.csv or 7_arousal.csv "
                                                    "in rating_averaged/"]


def test_eval_veatic_command_prints_a_table_or_json(veatic_root):
    from conftest import run_cli

    out = run_cli("eval", "veatic", str(veatic_root), "--videos", "1", "--provider", "cpu", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [v["video"] for v in report["videos"]] == ["1"]
    assert report["overall"]["frames"] > 0
    table = run_cli("eval", "veatic", str(veatic_root), "--videos", "1", "--provider", "cpu")
    assert table.returncode == 0 and "stabilised" in table.stdout and "|" in table.stdout
