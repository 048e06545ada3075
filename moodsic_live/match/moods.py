"""Mood clusters of a library: a Gaussian mixture over its segments' valence/arousal, each
component named for people ("Calm & Content", "Tense & Agitated", ...).

Clusters are for display (what kind of music is playing, what a library holds) and a soft
prior for the matcher; they never decide alone what plays.

Fitting: ``sklearn.mixture.GaussianMixture`` with full covariances, 2..8 components chosen by
BIC, ``random_state=0`` and a fixed subsample of at most 20,000 segments, so the same library
always gives the same clusters. Small libraries get at most one component per 10 segments
(a library of fewer than 20 segments gets a single cluster).

Naming: a cluster is named from the angle and radius of its centre around the *neutral point*
of the matching space: the centre is mapped back into the estimate space with the library's
:class:`~moodsic_live.match.alignment.Aligner` (``aligner.inverse``) and read there around the
origin. With quantile alignment the neutral point is the library's median, with linear
alignment the middle of its range, with ``none`` the origin of the reference space. This is
the right reference after alignment: the matcher sends a room whose estimate lies at angle θ
to the music at angle θ around that same point, so a cluster called "Calm & Content" is what a
calm, content room gets. (Naming around the absolute origin would call every cluster of an
all-pop library "Bright & Energetic" and give a calm room the cluster named otherwise.)
Eight 45° sectors name the direction; centres within :data:`CENTRE_RADIUS` of the neutral
point are "Easygoing & Balanced". Names are unique within a library: two clusters with the
same name become "... (softer)" and "... (stronger)" by radius when their radii differ
clearly, otherwise (and for three or more) "... I", "... II", ... from the centre outwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from moodsic_live.errors import MoodsicError
from moodsic_live.match.alignment import Aligner
from moodsic_live.match.index import EMPTY_LIBRARY

# Sector names by the direction of a cluster's centre from the neutral point: degrees
# counter-clockwise from +valence (arousal is up), each sector 45° wide.
SECTORS: tuple[tuple[float, str], ...] = (
    (0.0, "Warm & Upbeat"),             # V+, A~0
    (45.0, "Bright & Energetic"),       # V+, A+
    (90.0, "Restless & Driving"),       # V~0, A++
    (135.0, "Tense & Agitated"),        # V-, A+
    (180.0, "Brooding & Heavy"),        # V-, A~0
    (225.0, "Downcast & Low-energy"),   # V-, A-
    (270.0, "Dreamy & Still"),          # V~0, A--
    (315.0, "Calm & Content"),          # V+, A-
)
CENTRE_NAME = "Easygoing & Balanced"
CENTRE_RADIUS = 0.2  # in the estimate space ([-1, 1] per dimension)

MAX_COMPONENTS = 8
MIN_COMPONENTS = 2
POINTS_PER_COMPONENT = 10
MAX_FIT_POINTS = 20_000
RANDOM_STATE = 0
REG_COVAR = 1e-5  # added to covariances' diagonal (segments with identical means)
_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X")


def direction(valence: float, arousal: float) -> tuple[float, float]:
    """(angle in degrees in [0, 360), radius) of a point around the origin."""
    return math.degrees(math.atan2(arousal, valence)) % 360.0, math.hypot(valence, arousal)


def base_name(valence: float, arousal: float) -> str:
    """The name of a point of the estimate space, before making names unique."""
    angle, radius = direction(valence, arousal)
    if radius < CENTRE_RADIUS:
        return CENTRE_NAME
    return SECTORS[int(((angle + 22.5) % 360.0) // 45.0)][1]


def unique_names(points: np.ndarray) -> list[str]:
    """Names for estimate-space points (m, 2), unique among them."""
    names = [base_name(float(v), float(a)) for v, a in points]
    radii = np.hypot(points[:, 0], points[:, 1])
    out = list(names)
    for name in dict.fromkeys(names):
        group = [i for i, n in enumerate(names) if n == name]
        if len(group) < 2:
            continue
        by_radius = sorted(group, key=lambda i: (radii[i], i))
        r_in, r_out = radii[by_radius[0]], radii[by_radius[1]]
        if len(group) == 2 and name != CENTRE_NAME and r_out - r_in >= 0.1 and r_out >= 1.25 * r_in:
            out[by_radius[0]] = f"{name} (softer)"
            out[by_radius[1]] = f"{name} (stronger)"
        else:
            for rank, i in enumerate(by_radius):
                out[i] = f"{name} {_ROMAN[rank] if rank < len(_ROMAN) else rank + 1}"
    return out


def _component_range(n_points: int, n_distinct: int) -> range:
    hi = max(1, min(MAX_COMPONENTS, n_points // POINTS_PER_COMPONENT, n_distinct))
    return range(min(MIN_COMPONENTS, hi), hi + 1)


@dataclass(frozen=True, eq=False)
class MoodClusters:
    """A fitted mixture: ``names[j]``, ``centres[j]`` (library space), ``weights[j]``,
    ``covariances[j]`` (2x2) and ``name_points[j]`` (the centre in the estimate space, which
    its name describes). Cluster ``j`` is label ``j`` of :meth:`predict`; clusters are ordered
    by the direction of their name point (counter-clockwise from +valence), the centre first."""

    names: list[str]
    centres: np.ndarray
    weights: np.ndarray
    covariances: np.ndarray
    name_points: np.ndarray

    def __post_init__(self) -> None:
        m = len(self.names)
        if self.centres.shape != (m, 2) or self.weights.shape != (m,) or self.covariances.shape != (m, 2, 2) \
                or self.name_points.shape != (m, 2) or m == 0:
            raise ValueError("inconsistent mood cluster parameters")
        a, b, c = self.covariances[:, 0, 0], self.covariances[:, 0, 1], self.covariances[:, 1, 1]
        det = a * c - b * b
        if np.any(det <= 0) or np.any(a <= 0) or np.any(~(self.weights > 0)):
            raise ValueError("mood cluster weights must be positive and covariances positive definite")
        object.__setattr__(self, "_inv", np.stack([c / det, -b / det, a / det], axis=1))
        object.__setattr__(self, "_log_norm",
                           np.log(self.weights) - math.log(2 * math.pi) - 0.5 * np.log(det))

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def fit(cls, va: np.ndarray, aligner: Aligner | None = None, *, max_points: int = MAX_FIT_POINTS,
            random_state: int = RANDOM_STATE) -> MoodClusters:
        """Fit to the library's (n, 2) segment means (library space).

        ``aligner`` is the library's aligner, used to name the clusters (see the module
        docstring); ``None`` fits the default (quantile) aligner on ``va``; pass
        ``Aligner.identity()`` to name clusters around the absolute origin.
        """
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        va = np.asarray(va, np.float64).reshape(-1, 2)
        va = va[np.all(np.isfinite(va), axis=1)]
        if len(va) == 0:
            raise MoodsicError(EMPTY_LIBRARY)
        if aligner is None:
            aligner = Aligner.fit(va, "quantile")
        if len(va) > max_points:
            rng = np.random.default_rng(random_state)
            va = va[np.sort(rng.choice(len(va), max_points, replace=False))]
        n_distinct = len(np.unique(va, axis=0))
        components = _component_range(len(va), n_distinct)
        if components.stop - 1 == 1:  # one cluster: the mean and covariance (GMM needs >= 2 points)
            centres = va.mean(axis=0, keepdims=True)
            covariances = (np.cov(va.T, bias=True).reshape(2, 2) + REG_COVAR * np.eye(2))[None]
            weights = np.ones(1)
        else:
            best, best_bic = None, math.inf
            # One thread: on 2 cores under load, OpenMP/BLAS threads in k-means and EM made the
            # fit 5x slower (6 s instead of 1.2 s for 20k points); one thread is steady.
            with threadpool_limits(1):
                for k in components:
                    gm = GaussianMixture(n_components=k, covariance_type="full", random_state=random_state,
                                         n_init=1, max_iter=300, reg_covar=REG_COVAR)
                    gm.fit(va)
                    bic = gm.bic(va)
                    if bic < best_bic - 1e-9:
                        best, best_bic = gm, bic
            assert best is not None
            centres = np.asarray(best.means_, np.float64)
            covariances = np.asarray(best.covariances_, np.float64)
            weights = np.asarray(best.weights_, np.float64)
        name_points = aligner.apply_inverse(centres)
        angle_radius = [direction(float(v), float(a)) for v, a in name_points]
        order = sorted(range(len(centres)),
                       key=lambda j: (angle_radius[j][1] >= CENTRE_RADIUS, angle_radius[j][0], angle_radius[j][1]))
        centres, name_points = centres[order], name_points[order]
        weights, covariances = weights[order], covariances[order]
        return cls(unique_names(name_points), centres, weights / weights.sum(), covariances, name_points)

    def log_likelihoods(self, va: np.ndarray) -> np.ndarray:
        """(n, m): log(weight_j) + log N(x | centre_j, covariance_j)."""
        va = np.asarray(va, np.float64).reshape(-1, 2)
        dv = va[:, 0:1] - self.centres[None, :, 0]
        da = va[:, 1:2] - self.centres[None, :, 1]
        inv = self._inv  # type: ignore[attr-defined]
        maha = inv[:, 0] * dv * dv + 2 * inv[:, 1] * dv * da + inv[:, 2] * da * da
        return self._log_norm - 0.5 * maha  # type: ignore[attr-defined]

    def proba(self, va: np.ndarray) -> np.ndarray:
        """(n, m) posterior probability of each cluster for (n, 2) library-space points."""
        ll = self.log_likelihoods(va)
        ll -= ll.max(axis=1, keepdims=True)
        p = np.exp(ll)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, va: np.ndarray) -> np.ndarray:
        """(n,) label (index into ``names``) of the most probable cluster of each point."""
        return np.argmax(self.log_likelihoods(va), axis=1)

    def name_of(self, valence: float, arousal: float) -> str:
        return self.names[int(self.predict(np.array([[valence, arousal]]))[0])]

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names),
                "centres": self.centres.tolist(),
                "weights": self.weights.tolist(),
                "covariances": self.covariances.tolist(),
                "name_points": self.name_points.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MoodClusters:
        try:
            names = [str(n) for n in data["names"]]
            if len(set(names)) != len(names):
                raise ValueError("names")
            return cls(names, np.asarray(data["centres"], np.float64), np.asarray(data["weights"], np.float64),
                       np.asarray(data["covariances"], np.float64), np.asarray(data["name_points"], np.float64))
        except (KeyError, TypeError, ValueError):
            raise MoodsicError("the library's mood clusters are damaged; rebuild the library with "
                               "`moodsic-live library build SOURCE`") from None


def region_grid(clusters: MoodClusters, aligner: Aligner, n: int = 96) -> np.ndarray:
    """The mood region of every cell of an ``n × n`` grid over the estimate plane (what a display of
    the circumplex colours): row 0 = arousal +1, column 0 = valence -1, cell centres evenly spaced
    over [-1, 1]. Each cell's point is aligned into the library's space and labelled by ``clusters``."""
    centres = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    v, a = np.meshgrid(centres, centres[::-1])
    points = aligner.apply(np.column_stack([v.ravel(), a.ravel()]))
    return clusters.predict(points).reshape(n, n).astype(np.int32)
