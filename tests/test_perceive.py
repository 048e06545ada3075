"""Perceive on real photos: faces, expressions, scenes, fusion."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from conftest import DEMO
from moodsic_live.capture.stills import read_image
from moodsic_live.frames import Frame


def test_astronaut_one_face_positive_valence(perceiver, astronaut_bgr):
    p = perceiver.perceive(Frame(astronaut_bgr, 0.0, still=True))
    assert len(p.faces) == 1
    assert p.face is not None and p.face.probabilities is not None
    assert max(p.face.probabilities, key=p.face.probabilities.get) == "happiness"
    assert p.face.estimate.valence > 0.3
    assert p.fused.valence > 0
    assert 0 < p.fused.valence_var < p.scene.valence_var  # fusion gains from the face
    x, y, w, h = p.face.box.x, p.face.box.y, p.face.box.w, p.face.box.h
    assert 150 < x + w / 2 < 300 and 60 < y + h / 2 < 200  # Eileen Collins' face, upper middle


def test_smiling_beats_neutral_for_the_same_person(perceiver, faces_dev):
    rows = list(csv.DictReader(open(faces_dev / "labels.csv")))
    by_person: dict[str, dict[str, float]] = {}
    for row in rows:
        p = perceiver.perceive(Frame(read_image(faces_dev / row["file"]), 0.0, still=True))
        assert len(p.faces) >= 1, row["file"]
        by_person.setdefault(row["face_id"], {})[row["emotion"]] = p.fused.valence
    pairs = [(d["neutral"], d["happiness"]) for d in by_person.values()]
    wins = sum(smile > neutral for neutral, smile in pairs)
    print(f"\nsmiling > neutral (fused valence) in {wins} of {len(pairs)} pairs")
    assert len(pairs) == 24
    assert wins >= 22


def _sequence(image: np.ndarray, n: int, shift: int) -> list[Frame]:
    h, w = image.shape[:2]
    frames = []
    for i in range(n):
        m = np.float32([[1, 0, shift * i], [0, 1, 0]])
        moved = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        frames.append(Frame(moved, t=i / 10.0, index=i))
    return frames


def test_dark_grey_static_is_calmer_than_bright_saturated_moving(perceiver):
    photo = cv2.resize(read_image(DEMO / "coffee.jpg"), (640, 480))
    grey = cv2.cvtColor(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    dark_grey = (grey * 0.25).astype(np.uint8)
    hsv = cv2.cvtColor(photo, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.6, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * 1.3 + 30, 0, 255)
    vivid = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)

    def last(frames):
        perceiver.scene.reset()
        out = None
        for f in frames:
            out = perceiver.perceive(f)
        return out

    calm = last(_sequence(dark_grey, 6, 0))
    lively = last(_sequence(vivid, 6, 12))
    assert lively.scene_features["motion"] > 0.01 and calm.scene_features["motion"] == 0.0
    assert calm.scene_features["brightness"] < lively.scene_features["brightness"]
    assert calm.scene_features["saturation"] < 0.02 < lively.scene_features["saturation"]
    assert calm.fused.arousal < lively.fused.arousal - 0.3
    assert calm.scene.arousal < lively.scene.arousal


def test_no_face_means_scene_only(perceiver):
    p = perceiver.perceive(Frame(read_image(DEMO / "hubble_deep_field.jpg"), 0.0, still=True))
    assert p.faces == () and p.face is None
    assert p.fused.valence == pytest.approx(p.scene.valence)
    assert p.fused.valence_var == pytest.approx(p.scene.valence_var)
    assert p.scene.valence_var > 0.15  # weak evidence, honest variance


def test_scene_variance_falls_with_evidence(perceiver, astronaut_bgr):
    flat = np.full((480, 640, 3), 128, np.uint8)
    perceiver.scene.reset()
    weak = perceiver.perceive(Frame(flat, 0.0, still=True)).scene
    with_face = perceiver.perceive(Frame(astronaut_bgr, 0.0, still=True)).scene
    assert weak.valence_var == pytest.approx(0.25, abs=1e-3)  # flat grey: prior variance
    assert with_face.valence_var < weak.valence_var


def test_rotated_face_is_aligned_and_read_the_same(perceiver, astronaut_bgr):
    upright = perceiver.perceive(Frame(astronaut_bgr, 0.0, still=True)).face
    h, w = astronaut_bgr.shape[:2]
    cx, cy = upright.box.centre
    m = cv2.getRotationMatrix2D((cx, cy), 15, 1.0)
    tilted_img = cv2.warpAffine(astronaut_bgr, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    tilted = perceiver.perceive(Frame(tilted_img, 0.0, still=True)).face
    assert tilted is not None
    assert abs(tilted.estimate.valence - upright.estimate.valence) < 0.1


def test_primary_face_prefers_big_confident_central_faces():
    from moodsic_live.perceive.estimate import FaceBox
    from moodsic_live.perceive.face_detector import choose_primary, primary_score

    centre_small = FaceBox(300, 220, 40, 40, 0.9)
    corner_big = FaceBox(0, 0, 120, 120, 0.9)
    centre_big_unsure = FaceBox(280, 200, 120, 120, 0.3)
    faces = [centre_small, corner_big, centre_big_unsure]
    assert choose_primary(faces, 640, 480) == 1
    assert choose_primary([], 640, 480) is None
    # same box: the central one outranks the corner one by the 0.7 + 0.3 x proximity term
    central = FaceBox(260, 180, 120, 120, 0.9)
    assert primary_score(central, 640, 480) / primary_score(corner_big, 640, 480) == pytest.approx(
        1.0 / (0.7 + 0.3 * (1 - np.hypot(260, 180) / np.hypot(320, 240))), rel=1e-6)


def test_every_face_is_reported_with_the_primary_first(perceiver, astronaut_bgr):
    head = astronaut_bgr[20:280, 110:360]  # 260 x 250
    canvas = np.full((400, 800, 3), 90, np.uint8)
    canvas[120:380, 60:310] = cv2.resize(head, (250, 260))  # off centre
    canvas[70:340, 420:680] = cv2.resize(head, (260, 270))  # nearer the centre, a little bigger
    p = perceiver.perceive(Frame(canvas, 0.0, still=True))
    assert len(p.faces) == 2
    assert p.face is p.faces[0]
    assert p.face.box.x > 400  # the central, bigger face is primary
    assert all(f.probabilities is not None for f in p.faces)
