"""The inference worker: newest frame wins, late frames are dropped and counted, clean stop."""

import itertools
import time

from moodsic_live.capture.demo import demo_frames
from moodsic_live.perceive.worker import InferenceWorker, LatestSlot


def test_latest_slot_drops_older_frames():
    slot = LatestSlot()
    frames = list(itertools.islice(demo_frames(fps=10), 3))
    for f in frames:
        slot.put(f)
    assert slot.dropped == 2
    assert slot.get(0.01) is frames[-1]
    assert slot.get(0.01) is None


def test_worker_keeps_up_by_dropping_late_frames(models_dir, config):
    worker = InferenceWorker(config.perceive, models_dir)
    worker.start()
    frames = list(itertools.islice(demo_frames(fps=30), 60))
    for f in frames:  # a burst far faster than real time
        worker.submit(f)
    deadline = time.monotonic() + 10
    results = []
    while time.monotonic() < deadline and (not results or results[-1].index != frames[-1].index):
        try:
            results.append(worker.results.get(timeout=0.5))
        except Exception:
            pass
    t0 = time.monotonic()
    assert worker.stop(timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert results and results[-1].index == frames[-1].index  # the newest frame always gets through
    assert worker.stats.dropped_frames > 0  # late frames were dropped, not queued
    assert worker.stats.processed + worker.stats.dropped_frames == len(frames)
    indices = [r.index for r in results]
    assert indices == sorted(indices)
