"""A k-d tree over the segments' mean valence/arousal: the k nearest segments to a point.

Built with the library (it is cheap: about 0.2 s for a million segments) rather than stored.
``balanced_tree=False, compact_nodes=False`` builds about twice as fast as scipy's defaults
on V/A data (sliding-midpoint splits, no node shrinking) with the same query time; see
``bench/library.py`` and docs/performance.md.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from moodsic_live.errors import MoodsicError
from moodsic_live.library.model import SegmentTable

EMPTY_LIBRARY = "the library has no segments; build one with `moodsic-live library build SOURCE`"


class SegmentIndex:
    """Nearest segments by Euclidean distance in the (valence, arousal) plane."""

    def __init__(self, segments: SegmentTable) -> None:
        self.segments = segments
        self.n = len(segments)
        self._tree: cKDTree | None = None
        if self.n:
            va = np.ascontiguousarray(segments.va, dtype=np.float64)
            if not np.all(np.isfinite(va)):
                raise MoodsicError("the library has segments without a valence/arousal value; "
                                   "rebuild it with `moodsic-live library build SOURCE`")
            self._tree = cKDTree(va, leafsize=16, balanced_tree=False, compact_nodes=False)

    def __len__(self) -> int:
        return self.n

    def query(self, point: tuple[float, float] | np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Distances and row indices of the ``min(k, n)`` nearest segments, nearest first.

        ``point`` is one (valence, arousal) pair, giving 1-D arrays, or an (m, 2) array of
        points, giving (m, min(k, n)) arrays. An empty library raises :class:`MoodsicError`.
        """
        if self._tree is None:
            raise MoodsicError(EMPTY_LIBRARY)
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        p = np.asarray(point, dtype=np.float64)
        if p.shape[-1:] != (2,) or p.ndim > 2:
            raise ValueError(f"a query point is (valence, arousal); got shape {p.shape}")
        if not np.all(np.isfinite(p)):
            raise ValueError("a query point must be finite")
        k = min(k, self.n)
        d, i = self._tree.query(p, k=k)
        if k == 1:  # scipy drops the k axis for k == 1
            d, i = np.asarray(d)[..., None], np.asarray(i)[..., None]
        return np.asarray(d, np.float64), np.asarray(i, np.intp)
