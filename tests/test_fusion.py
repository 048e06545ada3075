import numpy as np
import pytest

from moodsic_live.perceive.circumplex import class_va, fer_positions, fer_spreads, normalised_entropy
from moodsic_live.perceive.estimate import VA
from moodsic_live.perceive.fusion import NEUTRAL, UNIFORM_VAR, calibrate, fit_variance_calibration, fuse


def test_inverse_variance_per_dimension():
    face = VA(0.8, 0.2, 0.04, 0.16)
    scene = VA(0.0, 0.6, 0.16, 0.04)
    f = fuse([face, scene])
    assert f.valence == pytest.approx(0.8 * 0.8 + 0.0 * 0.2)  # weights 25 : 6.25
    assert f.arousal == pytest.approx(0.2 * 0.2 + 0.6 * 0.8)
    assert f.valence_var == pytest.approx(1 / (25 + 6.25))
    assert f.arousal_var == pytest.approx(1 / (6.25 + 25))


def test_missing_experts():
    scene = VA(0.3, -0.2, 0.2, 0.2)
    assert fuse([None, scene]) == scene
    assert fuse([]) == NEUTRAL == fuse([None, None])
    assert NEUTRAL.valence == 0 and NEUTRAL.valence_var == pytest.approx(UNIFORM_VAR)


def test_fusion_never_leaves_the_reference_space():
    f = fuse([VA(1.0, -1.0, 1e-9, 1e-9), VA(1.0, -1.0, 0.1, 0.1)])
    assert -1 <= f.valence <= 1 and -1 <= f.arousal <= 1 and f.valence_var > 0


def test_calibration_fit_recovers_known_error_model():
    rng = np.random.default_rng(3)
    raw = rng.uniform(0.005, 0.2, 4000)
    true_var = 2.5 * raw + 0.03  # an over-confident expert: real error is bigger than it says
    err = rng.normal(0.0, np.sqrt(true_var)) ** 2
    scale, floor = fit_variance_calibration(raw, err)
    assert scale == pytest.approx(2.5, rel=0.15)
    assert floor == pytest.approx(0.03, rel=0.35)
    z = err / calibrate(raw, scale, floor)
    assert z.mean() == pytest.approx(1.0, abs=0.05)  # calibrated variance matches the real squared error


def test_an_overconfident_expert_no_longer_always_wins():
    rng = np.random.default_rng(5)
    truth = rng.uniform(-1, 1, 2000)
    face_raw = np.full_like(truth, 0.01)  # says sd 0.1 ...
    face = truth + rng.normal(0, 0.5, truth.size)  # ... is really sd 0.5
    scene = truth + rng.normal(0, 0.3, truth.size)
    scene_var = np.full_like(truth, 0.09)
    s, f0 = fit_variance_calibration(face_raw, (face - truth) ** 2)
    cal = calibrate(face_raw, s, f0)
    before = np.array([fuse([VA(a, 0, v, 1), VA(b, 0, w, 1)]).valence
                       for a, v, b, w in zip(face, face_raw, scene, scene_var)])
    after = np.array([fuse([VA(a, 0, v, 1), VA(b, 0, w, 1)]).valence
                      for a, v, b, w in zip(face, cal, scene, scene_var)])
    assert np.mean((after - truth) ** 2) < 0.7 * np.mean((before - truth) ** 2)


def test_class_mixture_mean_and_total_variance():
    pos, spr = fer_positions(), fer_spreads()
    certain = np.eye(7)[3]  # happiness only
    mean, var = class_va(certain, pos, spr)
    np.testing.assert_allclose(mean, pos[3])
    np.testing.assert_allclose(var, spr[3] ** 2)
    split = np.zeros(7)
    split[[3, 4]] = 0.5  # happiness vs sadness: far apart, so the variance grows
    m2, v2 = class_va(split, pos, spr)
    np.testing.assert_allclose(m2, (pos[3] + pos[4]) / 2)
    assert (v2 > var).all()
    assert normalised_entropy(certain + 1e-12) < 0.01 and normalised_entropy(np.ones(7)) == pytest.approx(1.0)
