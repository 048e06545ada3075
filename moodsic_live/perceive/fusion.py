"""Fusion of expert estimates by inverse variance, and variance calibration.

Each expert's variance is first calibrated to its real error
(``scale * raw + floor``, fitted on labelled data with :func:`fit_variance_calibration`),
so an over-confident expert does not win every time; then each dimension is fused on
its own: ``mu = sum(mu_i / var_i) / sum(1 / var_i)``, ``var = 1 / sum(1 / var_i)``.
No expert at all gives the neutral point with the variance of a uniform guess on [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moodsic_live.perceive.estimate import VA

UNIFORM_VAR = 1.0 / 3.0  # variance of a uniform distribution on [-1, 1]
NEUTRAL = VA(0.0, 0.0, UNIFORM_VAR, UNIFORM_VAR)
MIN_VAR = 1e-4


def fuse(estimates: Sequence[VA | None]) -> VA:
    present = [e for e in estimates if e is not None]
    if not present:
        return NEUTRAL
    out = []
    for dim in ("valence", "arousal"):
        mu = np.array([getattr(e, dim) for e in present])
        var = np.maximum(np.array([getattr(e, dim + "_var") for e in present]), MIN_VAR)
        w = 1.0 / var
        out.append((float(np.clip((w * mu).sum() / w.sum(), -1.0, 1.0)), float(1.0 / w.sum())))
    (v, vv), (a, av) = out
    return VA(v, a, vv, av)


def calibrate(raw_var: np.ndarray, scale: Sequence[float], floor: Sequence[float]) -> np.ndarray:
    """Apply per-dimension ``scale * raw + floor`` to variances [..., 2]."""
    return np.asarray(raw_var) * np.asarray(scale) + np.asarray(floor)


def fit_variance_calibration(raw_var: np.ndarray, sq_err: np.ndarray) -> tuple[float, float]:
    """Fit ``scale, floor`` so that ``scale * raw_var + floor`` predicts the squared error.

    Maximises the Gaussian likelihood of the errors, i.e. minimises
    ``sum(log s_i + e_i / s_i)`` with ``s_i = scale * raw_i + floor``; at the optimum the
    mean of ``e_i / s_i`` is 1 (the calibrated variance matches the real squared error).
    """
    from scipy.optimize import minimize

    raw = np.asarray(raw_var, dtype=np.float64).ravel()
    err = np.asarray(sq_err, dtype=np.float64).ravel()
    if raw.shape != err.shape or raw.size < 2:
        raise ValueError("need at least two (variance, squared error) pairs of equal length")
    if (raw < 0).any() or (err < 0).any():
        raise ValueError("variances and squared errors cannot be negative")

    def nll(params: np.ndarray) -> float:
        s = np.exp(params[0]) * raw + np.exp(params[1])
        return float(np.sum(np.log(s) + err / s))

    start = np.log([max(np.mean(err) / max(np.mean(raw), 1e-6), 1e-3), max(np.mean(err) * 0.1, 1e-6)])
    res = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})
    scale, floor = np.exp(res.x)
    return float(scale), float(floor)


def face_share(face: VA | None, scene: VA | None) -> float | None:
    """The face expert's share of the fused estimate (its inverse-variance weight, mean of the two
    dimensions): 1 = the face alone, 0 = the scene alone, None when neither spoke."""
    if face is None and scene is None:
        return None
    if face is None or scene is None:
        return 1.0 if scene is None else 0.0
    shares = []
    for fv, sv in ((face.valence_var, scene.valence_var), (face.arousal_var, scene.arousal_var)):
        wf, ws = 1.0 / max(fv, 1e-9), 1.0 / max(sv, 1e-9)
        shares.append(wf / (wf + ws))
    return sum(shares) / 2.0
