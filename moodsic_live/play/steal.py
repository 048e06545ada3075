"""Hypervisor CPU steal, to tell the underflows a virtual machine causes from those we would.

On a VM whose hypervisor takes CPU time away ("steal" in ``/proc/stat``), JACK reports xruns even
for a C client, and PortAudio passes each one to every stream as an output underflow. The
real-time test and ``bench/engine.py`` sample the steal counter every ~20 ms and count apart the
underflows that happened while the machine itself stood still.
"""

from __future__ import annotations

import numpy as np


def steal_jiffies() -> int | None:
    """CPU time the hypervisor gave to other guests (all CPUs, in clock ticks), from /proc/stat; None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            return int(fh.readline().split()[8])     # cpu user nice system idle iowait irq softirq steal
    except (OSError, IndexError, ValueError):
        return None


def unexplained_underflows(times_ns: np.ndarray, samples: list[tuple[int, int | None]], before_s: float = 0.1,
                           after_s: float = 0.02) -> list[float]:
    """The underflows (callback start times, perf_counter_ns) during which the hypervisor took no CPU:
    no steal in ``[t - before_s, t + after_s]`` between the bracketing ``(perf_counter_ns, steal)``
    samples, in seconds. Without steal figures every underflow is unexplained."""
    known = [(t, v) for t, v in samples if v is not None]
    if len(known) < 2:
        return [float(t) / 1e9 for t in times_ns]
    at = np.array([t for t, _ in known])
    steal = np.array([v for _, v in known])
    out = []
    for t in times_ns:
        lo = max(int(np.searchsorted(at, t - before_s * 1e9)) - 1, 0)
        hi = min(int(np.searchsorted(at, t + after_s * 1e9)), len(at) - 1)
        if steal[hi] - steal[lo] <= 0:
            out.append(float(t) / 1e9)
    return out
