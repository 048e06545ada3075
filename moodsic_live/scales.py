"""Emotion scales: every dataset's valence/arousal range, mapped to one reference space.

The project's reference space is valence and arousal in [-1, 1] (negative..positive,
calm..excited). Every value that enters the app from a dataset or a model goes through
:func:`to_reference` exactly once, with the scale it is on; values outside that scale
are an error, never silently clipped (a clipped label hides a wrong scale).

Scales (valence range, arousal range):

- ``reference``     [-1, 1] x [-1, 1]: this project.
- ``findingemo``    V in [-3, 3], A in [0, 6] (FindingEmo, Mertens et al. 2024).
- ``deam_static``   SAM 1..9 for both (DEAM song-level averages, Aljanaki et al. 2017).
- ``deam_dynamic``  [-1, 1] for both (DEAM per-second 2 Hz averages).
- ``affectnet``     [-1, 1] for both (AffectNet, Mollahosseini et al. 2017; EmoNet outputs).
- ``veatic``        [-1, 1] for both (VEATIC continuous ratings, Ren et al. 2024: the
                    annotation grid spans -1..1 on each axis and the rating files keep it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from moodsic_live.errors import ScaleError

Dimension = Literal["valence", "arousal"]

_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Range:
    low: float
    high: float


@dataclass(frozen=True)
class Scale:
    name: str
    valence: Range
    arousal: Range

    def range(self, dim: Dimension) -> Range:
        if dim == "valence":
            return self.valence
        if dim == "arousal":
            return self.arousal
        raise ValueError(f"unknown dimension {dim!r}: use 'valence' or 'arousal'")


_UNIT = Range(-1.0, 1.0)

SCALES: dict[str, Scale] = {
    "reference": Scale("reference", _UNIT, _UNIT),
    "findingemo": Scale("findingemo", Range(-3.0, 3.0), Range(0.0, 6.0)),
    "deam_static": Scale("deam_static", Range(1.0, 9.0), Range(1.0, 9.0)),
    "deam_dynamic": Scale("deam_dynamic", _UNIT, _UNIT),
    "affectnet": Scale("affectnet", _UNIT, _UNIT),
    "emonet": Scale("emonet", _UNIT, _UNIT),
    "veatic": Scale("veatic", _UNIT, _UNIT),
}


def get_scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise ScaleError(f"unknown emotion scale {name!r}: use one of {', '.join(SCALES)}") from None


def _check(values: np.ndarray, rng: Range, scale: str, dim: str, allow_nan: bool) -> None:
    nan = np.isnan(values)
    if nan.any() and not allow_nan:
        raise ScaleError(f"{scale} {dim}: missing value (NaN); drop missing cells before converting")
    finite = values[~nan]
    bad = (finite < rng.low - _TOLERANCE) | (finite > rng.high + _TOLERANCE)
    if bad.any():
        first = float(finite[bad][0])
        raise ScaleError(
            f"{scale} {dim} value {first:g} is outside its scale [{rng.low:g}, {rng.high:g}]"
            f" ({int(bad.sum())} value(s)); check which scale the data is on"
        )


def to_reference(value, scale: str, dim: Dimension, *, allow_nan: bool = False):
    """Map ``value`` (scalar or array) on ``scale`` to the reference [-1, 1] space."""
    rng = get_scale(scale).range(dim)
    arr = np.asarray(value, dtype=np.float64)
    _check(np.atleast_1d(arr), rng, scale, dim, allow_nan)
    out = 2.0 * (arr - rng.low) / (rng.high - rng.low) - 1.0
    out = np.clip(out, -1.0, 1.0)  # only removes float round-off: range was checked above
    return float(out) if out.ndim == 0 else out


def from_reference(value, scale: str, dim: Dimension, *, allow_nan: bool = False):
    """Map a reference-space ``value`` back onto ``scale`` (for reports in dataset units)."""
    rng = get_scale(scale).range(dim)
    arr = np.asarray(value, dtype=np.float64)
    _check(np.atleast_1d(arr), _UNIT, "reference", dim, allow_nan)
    out = (np.clip(arr, -1.0, 1.0) + 1.0) / 2.0 * (rng.high - rng.low) + rng.low
    return float(out) if out.ndim == 0 else out


def variance_to_reference(variance, scale: str, dim: Dimension):
    """Variances scale with the square of the linear map's slope."""
    rng = get_scale(scale).range(dim)
    slope = 2.0 / (rng.high - rng.low)
    arr = np.asarray(variance, dtype=np.float64)
    if (arr < 0).any():
        raise ScaleError(f"{scale} {dim}: a variance cannot be negative")
    out = arr * slope**2
    return float(out) if out.ndim == 0 else out
