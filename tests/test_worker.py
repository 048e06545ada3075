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
    import dataclasses

    worker = InferenceWorker(dataclasses.replace(config.perceive, max_rate_hz=0.0), models_dir)
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


def test_worker_analyses_at_most_max_rate_hz_and_counts_the_rest_as_skipped(models_dir, config):
    import dataclasses

    worker = InferenceWorker(dataclasses.replace(config.perceive, max_rate_hz=4.0, tta_samples=1), models_dir)
    worker.start()
    frames = demo_frames(fps=30, size=(320, 240))
    start = time.monotonic()
    for i, f in enumerate(itertools.islice(frames, 90)):   # 3 s of a 30 fps camera, in real time
        time.sleep(max(0.0, start + i / 30 - time.monotonic()))
        worker.submit(f)
    time.sleep(0.3)
    assert worker.stop(timeout=1.0)
    s = worker.stats
    print(f"\nprocessed {s.processed}, skipped {s.skipped_frames}, dropped {s.dropped_frames}")
    assert 9 <= s.processed <= 14                             # ~4 per second over 3 s (+ the first at once)
    assert s.skipped_frames > 3 * s.dropped_frames           # the rest were skipped on purpose, not late
    assert s.processed + s.skipped_frames + s.dropped_frames <= 90
