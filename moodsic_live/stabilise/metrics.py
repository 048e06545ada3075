"""Run metrics of the stabilise and match steps: how calm, how responsive, how often it switches.

What and why. Stabilising trades responsiveness for calm, and the trade must be measured,
not guessed: every run reports these numbers at its end (:class:`RunMetrics`), and the maths
lives in small pure functions so tests and benchmarks can check each one on known series.

* **Jitter**: mean ``|x[i+1] - x[i]|`` between consecutive values, for the raw input and the
  stable output; the *jitter reduction* is ``100 * (1 - stable / raw)`` percent. For white
  noise of s.d. ``sigma`` the raw jitter is ``2 sigma / sqrt(pi)``; an EMA of weight ``w``
  per sample cuts it to about ``w`` times that, so 10 Hz with ``tau = 4 s`` removes ~97 %.
* **Gating share**: per dimension, the share of updates whose gate was closed (output held).
* **Response time**: seconds from a step change of the input until the output has covered
  ``1 - 1/e`` (63.2 %) of the step, the time a first-order low-pass takes per definition of
  its time constant; the crossing is interpolated linearly between samples.
* **Switching frequency**: music switches per minute of run.
* **Dwell times**: durations between consecutive switches (the last choice, still playing at
  the end, is censored and not counted), summarised as min / median / p90 / max.
* **Latency** (live runs): seconds from a frame being grabbed (the capture clock) to the stable
  estimate for it being produced, fed by the engine with :meth:`RunMetrics.add_latency`;
  reported as p50 / p95 in milliseconds over the most recent :data:`LATENCY_KEEP` values.

Undefined numbers (fewer than two samples, no switches, no step) are NaN in the functions
and ``None`` in :meth:`RunMetrics.to_dict`, which is plain JSON (``json.dumps(...,
allow_nan=False)`` works) with sensible rounding: values 4 decimals, jitter 5, seconds 3,
percentages 1, milliseconds 2.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from moodsic_live.stabilise.stabiliser import Stable

STEP_FRACTION = 1.0 - math.exp(-1.0)  # 0.632: reached after one time constant
DIMENSIONS = ("valence", "arousal")
LATENCY_KEEP = 1 << 16  # latencies kept for the percentiles: the last ~1.8 h at 10 Hz (~2 MB of floats)


def jitter(values: Sequence[float] | np.ndarray) -> float:
    """Mean absolute difference between consecutive values (NaN with fewer than two).

    For an ``(n, d)`` array the step is the Euclidean norm of each row difference.
    """
    x = np.asarray(values, dtype=float)
    if x.shape[0] < 2:
        return math.nan
    d = np.diff(x, axis=0)
    steps = np.abs(d) if d.ndim == 1 else np.linalg.norm(d.reshape(len(d), -1), axis=1)
    return float(steps.mean())


def jitter_reduction_pct(raw: Sequence[float] | np.ndarray, stable: Sequence[float] | np.ndarray) -> float:
    """``100 * (1 - jitter(stable) / jitter(raw))``: 100 % = perfectly still, 0 % = no calmer (NaN if raw is still)."""
    j_raw, j_stable = jitter(raw), jitter(stable)
    if not j_raw > 0.0 or math.isnan(j_stable):
        return math.nan
    return 100.0 * (1.0 - j_stable / j_raw)


def gating_share(gated: Sequence[bool] | np.ndarray) -> float:
    """Share (0..1) of updates with the gate closed (NaN when there are none)."""
    g = np.asarray(gated, dtype=bool)
    return float(g.mean()) if g.size else math.nan


def response_time(times: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray, step_t: float, *,
                  start: float | None = None, end: float | None = None, fraction: float = STEP_FRACTION) -> float:
    """Seconds after ``step_t`` until ``values`` first covers ``fraction`` of the step from ``start`` to ``end``.

    ``start`` defaults to the last value before ``step_t`` (else the first value), ``end`` to the
    last value of the series (assumed settled). The progress ``p = (y - start) / (end - start)`` is
    searched from the first sample at or after ``step_t`` and the crossing interpolated linearly
    from the sample before it (a crossing interpolated to before ``step_t`` counts as 0). NaN when
    the step is zero, the series never gets there, or nothing follows ``step_t``.
    """
    t = np.asarray(times, dtype=float)
    y = np.asarray(values, dtype=float)
    if t.shape != y.shape or t.size == 0:
        return math.nan
    before = np.flatnonzero(t < step_t)
    if start is None:
        start = float(y[before[-1]]) if before.size else float(y[0])
    if end is None:
        end = float(y[-1])
    span = end - start
    if span == 0.0 or not math.isfinite(span):
        return math.nan
    progress = (y - start) / span
    first = int(before[-1]) + 1 if before.size else 0
    for i in range(first, t.size):
        if progress[i] >= fraction:
            if i == 0:
                return float(max(t[0] - step_t, 0.0))
            p0, p1, t0, t1 = progress[i - 1], progress[i], t[i - 1], t[i]
            crossing = t0 + (fraction - p0) / (p1 - p0) * (t1 - t0) if p1 != p0 else t1
            return float(max(crossing - step_t, 0.0))
    return math.nan


def switches_per_minute(switch_times: Sequence[float], duration_s: float) -> float:
    """Number of switches divided by the run's length in minutes (NaN for a zero-length run)."""
    if not duration_s > 0.0:
        return math.nan
    return 60.0 * len(switch_times) / duration_s


def dwell_times(switch_times: Iterable[float]) -> np.ndarray:
    """Durations between consecutive switches (sorted first); the open last dwell is not included."""
    return np.diff(np.sort(np.asarray(list(switch_times), dtype=float)))


@dataclass(frozen=True, slots=True)
class DwellStats:
    """Distribution of dwell durations in seconds (NaN when there are none)."""

    count: int
    min: float
    median: float
    p90: float
    max: float

    def to_dict(self) -> dict[str, int | float | None]:
        return {"count": self.count, "min": _num(self.min, 3), "median": _num(self.median, 3),
                "p90": _num(self.p90, 3), "max": _num(self.max, 3)}


def dwell_stats(dwells: Sequence[float] | np.ndarray) -> DwellStats:
    """min / median / 90th percentile (linear interpolation, numpy's default) / max."""
    d = np.asarray(dwells, dtype=float)
    if d.size == 0:
        return DwellStats(0, math.nan, math.nan, math.nan, math.nan)
    return DwellStats(int(d.size), float(d.min()), float(np.median(d)), float(np.percentile(d, 90)), float(d.max()))


def _num(value: float, digits: int) -> float | None:
    """Round for JSON; NaN/inf become ``None``."""
    return round(float(value), digits) if math.isfinite(value) else None


class RunMetrics:
    """Accumulates one run's stable outputs and music switches; :meth:`to_dict` reports them.

    Feed every :class:`Stable` with :meth:`add`, every switch (each new choice that starts
    playing, the first one included) with :meth:`add_switch`, and, when the input is known to
    step (benchmarks, replays), the step times with :meth:`mark_step`: for each step and
    dimension the report gives the response time of the stable output, from the stable value
    before the step to the median raw value up to the next step, or ``None`` when that change is
    smaller than ``min_step`` (no real step in that dimension). Series are kept as compact
    ``array('d')`` (8 bytes a value: a 3-hour run at 30 Hz is ~15 MB). Live runs also feed the
    capture-to-stable latency of each estimate with :meth:`add_latency`; only the most recent
    ``latency_keep`` are kept (bounded memory), ``latency_count`` counts them all.
    """

    def __init__(self, min_step: float = 0.2, latency_keep: int = LATENCY_KEEP) -> None:
        self.min_step = min_step
        self.t = array("d")
        self.raw = {d: array("d") for d in DIMENSIONS}
        self.stable = {d: array("d") for d in DIMENSIONS}
        self.gated = {d: array("b") for d in DIMENSIONS}
        self.switches: list[float] = []
        self.steps: list[float] = []
        self.latencies_s: deque[float] = deque(maxlen=max(1, int(latency_keep)))
        self.latency_count = 0

    def add(self, s: Stable) -> None:
        self.t.append(s.t)
        for d in DIMENSIONS:
            self.raw[d].append(getattr(s, d + "_raw"))
            self.stable[d].append(getattr(s, d))
            self.gated[d].append(bool(getattr(s, "gated_" + d)))

    def add_switch(self, t: float) -> None:
        self.switches.append(float(t))

    def mark_step(self, t: float) -> None:
        self.steps.append(float(t))

    def add_latency(self, seconds: float) -> None:
        """One estimate's capture-to-stable latency in seconds (frame grabbed → stable estimate made)."""
        self.latencies_s.append(float(seconds))
        self.latency_count += 1

    def latency_ms(self, q: float) -> float:
        """The ``q``-th percentile of the kept latencies in milliseconds (NaN when there are none)."""
        kept = np.fromiter(tuple(self.latencies_s), dtype=float)
        return float(np.percentile(kept, q)) * 1e3 if kept.size else math.nan

    @property
    def duration_s(self) -> float:
        """From the first to the last time seen (updates and switches)."""
        times = list(self.t[:1]) + list(self.t[-1:]) + self.switches
        return max(times) - min(times) if times else 0.0

    def response_times(self, dim: str) -> list[float]:
        """Response time (s) of the stable ``dim`` to each marked step (NaN: no real step there)."""
        t = np.asarray(self.t)
        stable, raw = np.asarray(self.stable[dim]), np.asarray(self.raw[dim])
        steps = sorted(self.steps)
        out = []
        for k, step_t in enumerate(steps):
            stop = steps[k + 1] if k + 1 < len(steps) else math.inf
            before = np.flatnonzero(t < step_t)
            seg = np.flatnonzero((t >= step_t) & (t < stop))
            if not before.size or not seg.size:
                out.append(math.nan)
                continue
            start, end = float(stable[before[-1]]), float(np.median(raw[seg]))
            if abs(end - start) < self.min_step:
                out.append(math.nan)
                continue
            keep = np.concatenate([before[-1:], seg])
            out.append(response_time(t[keep], stable[keep], step_t, start=start, end=end))
        return out

    def to_dict(self) -> dict:
        """Plain JSON-serialisable numbers (``None`` where undefined)."""
        n = len(self.t)
        duration = self.duration_s
        span = (self.t[-1] - self.t[0]) if n >= 2 else 0.0
        jit = {}
        for d in DIMENSIONS:
            jit[d] = {"raw": _num(jitter(self.raw[d]), 5), "stable": _num(jitter(self.stable[d]), 5),
                      "reduction_pct": _num(jitter_reduction_pct(self.raw[d], self.stable[d]), 1)}
        dwell = dwell_stats(dwell_times(self.switches))
        return {
            "updates": n,
            "duration_s": _num(duration, 3),
            "rate_hz": _num((n - 1) / span if span > 0 else math.nan, 2),
            "jitter": jit,
            "gating_share": {d: _num(gating_share(self.gated[d]), 4) for d in DIMENSIONS},
            "response_s": {d: [_num(r, 3) for r in self.response_times(d)] for d in DIMENSIONS},
            "switches": {"count": len(self.switches),
                         "per_minute": _num(switches_per_minute(self.switches, duration), 3)},
            "dwell_s": dwell.to_dict(),
            "latency_ms": {"p50": _num(self.latency_ms(50), 2), "p95": _num(self.latency_ms(95), 2),
                           "count": self.latency_count},
        }
