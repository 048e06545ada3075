"""Map emotion estimates into the library's valence/arousal distribution.

Estimates span the whole reference square [-1, 1]², but music does not: DEAM's segment means
cover about ±0.85 with a standard deviation near 0.3. Matching raw estimates would send every
strong mood to the same few extreme segments and leave most of the library unreachable.
An :class:`Aligner` maps each dimension separately with a monotone piecewise-linear function:

``quantile``
    Quantile mapping from a uniform distribution on [-1, 1] to the library's empirical
    distribution of segment means: x ↦ Q((x + 1) / 2), with Q the library's quantile function
    sampled at ``levels`` (101) evenly spaced probabilities. -1 goes to the library's minimum,
    +1 to its maximum, 0 to its median, and every region holds as much of the estimate range
    as it holds of the library.
``linear``
    The affine map of [-1, 1] onto [min, max] of the library.
``none``
    The identity.

Inputs outside [-1, 1] are clamped by ``quantile`` and ``linear`` (they have no image in the
library); ``none`` passes them through. :meth:`Aligner.inverse` maps library values back
into the estimate space (used to name mood clusters and to show targets to people).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from moodsic_live.errors import MoodsicError
from moodsic_live.match.index import EMPTY_LIBRARY

Method = Literal["quantile", "linear", "none"]
METHODS: tuple[str, ...] = ("quantile", "linear", "none")
DIMENSIONS = ("valence", "arousal")


def _strictly_increasing(y: np.ndarray) -> np.ndarray:
    """``y`` (non-decreasing) nudged by at most 1e-9 per knot so it can serve as ``np.interp``'s
    ``xp`` (ties in the library's quantiles would otherwise make the inverse ambiguous)."""
    y = np.maximum.accumulate(np.asarray(y, np.float64))
    return y + np.arange(len(y)) * 1e-9


@dataclass(frozen=True, eq=False)
class Aligner:
    """Per-dimension knots: estimate value ``x[d][j]`` maps to library value ``y[d][j]``."""

    method: Method
    x: tuple[np.ndarray, np.ndarray]
    y: tuple[np.ndarray, np.ndarray]

    @classmethod
    def identity(cls) -> Aligner:
        knots = np.array([-1.0, 1.0])
        return cls("none", (knots, knots), (knots, knots))

    @classmethod
    def fit(cls, va: np.ndarray, method: Method = "quantile", levels: int = 101) -> Aligner:
        """Fit to the library's (n, 2) segment means. Rows with a non-finite value are ignored."""
        if method not in METHODS:
            raise MoodsicError(f"config match.alignment: {method!r} is not one of {', '.join(METHODS)}")
        if method == "none":
            return cls.identity()
        va = np.asarray(va, np.float64).reshape(-1, 2)
        va = va[np.all(np.isfinite(va), axis=1)]
        if len(va) == 0:
            raise MoodsicError(EMPTY_LIBRARY)
        if method == "linear":
            x = np.array([-1.0, 1.0])
            ys = tuple(np.array([va[:, d].min(), va[:, d].max()]) for d in range(2))
            return cls("linear", (x, x), ys)  # type: ignore[arg-type]
        if levels < 2:
            raise ValueError("quantile alignment needs at least 2 levels")
        p = np.linspace(0.0, 1.0, levels)
        x = 2.0 * p - 1.0
        ys = tuple(np.maximum.accumulate(np.quantile(va[:, d], p)) for d in range(2))
        return cls("quantile", (x, x), ys)  # type: ignore[arg-type]

    def _map(self, values: Any, d: int, inverse: bool) -> Any:
        scalar = np.ndim(values) == 0
        v = np.asarray(values, np.float64)
        if self.method == "none":
            out = v.copy()
        elif inverse:
            out = np.interp(v, _strictly_increasing(self.y[d]), self.x[d])
        else:
            out = np.interp(v, self.x[d], self.y[d])
        return float(out) if scalar else out

    def __call__(self, valence: Any, arousal: Any) -> tuple[Any, Any]:
        """Estimate space -> library space. Floats give floats, arrays give arrays."""
        return self._map(valence, 0, False), self._map(arousal, 1, False)

    def inverse(self, valence: Any, arousal: Any) -> tuple[Any, Any]:
        """Library space -> estimate space (the monotone inverse of :meth:`__call__`)."""
        return self._map(valence, 0, True), self._map(arousal, 1, True)

    def apply(self, va: np.ndarray) -> np.ndarray:
        """(n, 2) estimate-space points -> (n, 2) library-space points."""
        va = np.asarray(va, np.float64).reshape(-1, 2)
        return np.column_stack(self(va[:, 0], va[:, 1]))

    def apply_inverse(self, va: np.ndarray) -> np.ndarray:
        va = np.asarray(va, np.float64).reshape(-1, 2)
        return np.column_stack(self.inverse(va[:, 0], va[:, 1]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: ``{"method": ..., "valence": {"x": [...], "y": [...]}, "arousal": ...}``."""
        out: dict[str, Any] = {"method": self.method}
        for d, name in enumerate(DIMENSIONS):
            out[name] = {"x": [float(v) for v in self.x[d]], "y": [float(v) for v in self.y[d]]}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Aligner:
        try:
            method = data["method"]
            if method not in METHODS:
                raise ValueError(method)
            xs, ys = [], []
            for name in DIMENSIONS:
                x = np.asarray(data[name]["x"], np.float64)
                y = np.asarray(data[name]["y"], np.float64)
                if x.ndim != 1 or x.shape != y.shape or len(x) < 2 or np.any(np.diff(x) <= 0) \
                        or np.any(np.diff(y) < 0) or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
                    raise ValueError(name)
                xs.append(x)
                ys.append(y)
        except (KeyError, TypeError, ValueError):
            raise MoodsicError("the library's alignment data is damaged; rebuild the library with "
                               "`moodsic-live library build SOURCE`") from None
        return cls(method, (xs[0], xs[1]), (ys[0], ys[1]))
