"""Evaluation: the metrics (pure) and `eval faces` on real labelled face photos (../shared/data/faces_dev)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import FACES_DEV, run_cli
from moodsic_live.evaluate.metrics import ccc, confusion, mae, pearson, spearman


def test_metrics_on_known_values():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    assert mae(t, t + 0.5) == 0.5 and pearson(t, 2 * t) == pytest.approx(1.0)
    assert ccc(t, t) == pytest.approx(1.0) and ccc(t, 2 * t) < 0.8        # CCC punishes scale, r does not
    assert spearman(t, t ** 3) == pytest.approx(1.0) and pearson(t, t ** 3) < 1.0
    assert math.isnan(pearson(t, np.ones(4))) and math.isnan(ccc([1.0], [1.0]))
    assert mae([1.0, np.nan], [2.0, 5.0]) == 1.0                            # pairs with a NaN are left out
    m = confusion(["a", "b", "b"], ["a", "a", "b"], ["a", "b"])
    assert m.tolist() == [[1, 0], [1, 1]]


def test_eval_faces_on_real_photos(models_dir, tmp_path):
    if not (FACES_DEV / "labels.csv").is_file():
        pytest.skip(f"faces_dev not found at {FACES_DEV} (../shared is absent)")
    r = run_cli("eval", "faces", str(FACES_DEV), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    print(f"\nfaces_dev: coverage {report['coverage']:.2f}, accuracy {report['accuracy']:.2f}, macro "
          f"{report['macro_accuracy']:.2f}, sign agreement {report['valence_sign_agreement']:.2f}, mean valence "
          f"{report['mean_valence']}")
    assert report["photos"] == 48 and report["coverage"] > 0.9
    assert set(report["per_class"]) == {"neutral", "happiness"}
    # FER2013 mini-Xception on these photos (measured: accuracy 0.71 over 7 classes, smiling valence +0.27 vs
    # neutral -0.10, sign agreement 0.58): better than chance, and the valence ordering is right
    assert report["accuracy"] > 0.6
    assert report["mean_valence"]["happiness"] > report["mean_valence"]["neutral"] + 0.2
    assert report["valence_sign_agreement"] > 0.5
    m = np.array(report["confusion"]["matrix"])
    assert m.sum() == report["faces_found"] and np.trace(m) / m.sum() == pytest.approx(report["accuracy"])

    # a label outside FER's seven is one line naming the row; a missing photo is counted and skipped
    bad = tmp_path / "labels.csv"
    bad.write_text("file,emotion\nneutral/006_03.jpg,bored\n")
    r = run_cli("eval", "faces", str(FACES_DEV), "--labels", str(bad))
    assert r.returncode == 2 and "line 2: 'bored' is not one of" in r.stderr and "Traceback" not in r.stderr
    some = tmp_path / "some.csv"
    some.write_text("file,emotion\nneutral/006_03.jpg,neutral\nneutral/nope.jpg,neutral\n")
    r = run_cli("eval", "faces", str(FACES_DEV), "--labels", str(some))
    assert r.returncode == 0 and "skipped" in r.stderr and "nope.jpg" in r.stderr and "| neutral | 1 |" in r.stdout


def test_eval_findingemo_scores_the_face_expert_on_the_images_with_a_face(tmp_path, faces_dev, perceiver):
    """FindingEmo layout made of real photos (faces_dev) and generated scenes without anyone in them:
    face-only scores cover just the images with a face, and the coverage says how many that was."""
    import csv

    import cv2

    from findingemo_fixture import HEADER, scene_image
    from moodsic_live.evaluate.findingemo import evaluate_findingemo

    rows = list(csv.DictReader(open(faces_dev / "labels.csv", encoding="utf-8")))
    (tmp_path / "Run_2" / "people").mkdir(parents=True)
    (tmp_path / "Run_1" / "empty").mkdir(parents=True)
    rng = np.random.default_rng(0)
    ann = []
    for i, row in enumerate(rows):   # smiling: V +2, A 3; neutral: V 0, A 2 (FindingEmo units)
        name = f"Run_2/people/{i:03d}.jpg"
        (tmp_path / name).write_bytes((faces_dev / row["file"]).read_bytes())
        ann.append([i, "u", "/" + name, "Undefined", "Adults", 2 if row["emotion"] == "happiness" else 0,
                    3 if row["emotion"] == "happiness" else 2, "Joy", "FacialExpression", 0, "2023-09-01"])
    for j in range(16):
        name = f"Run_1/empty/{j:03d}.jpg"
        cv2.imwrite(str(tmp_path / name), scene_image(-1, 1, rng, (240, 320)))
        ann.append([100 + j, "u", "/" + name, "Undefined", "Adults", -1, 1, "Boredom", "", 0, "2023-09-01"])
    with open(tmp_path / "annotations_single.ann", "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([HEADER, *ann])
    report = evaluate_findingemo(tmp_path, perceiver, "all", say=lambda s: None)
    assert report["evaluated"] == 64
    assert report["face_coverage"] == pytest.approx(report["face"]["n"] / 64)
    assert 40 <= report["face"]["n"] <= 48           # faces found in the photos, none in the empty scenes
    assert report["baseline_on_faces"]["n"] == report["face"]["n"]
    assert report["scene"]["n"] == report["fused"]["n"] == 64
    # on the photos the face expert ranks smiling above neutral: better than chance
    assert report["face"]["valence"]["spearman"] > 0.2
