"""A long live run must not creep in memory: freed song buffers go back to the OS."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPT = r"""
import sys
import numpy as np
from moodsic_live.memory import return_big_buffers_to_the_os

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

if sys.argv[1] == "on":
    assert return_big_buffers_to_the_os()
warm = np.ones(4_000_000, np.float32); del warm     # a first big free: glibc raises its threshold to 16 MB
base = rss_mb()
songs = [np.ones(3_840_000, np.float32) for _ in range(4)]   # four prepared segments, 15 MB each
later = np.ones(1000)                                 # something small allocated after them, still alive
del songs
print(round(rss_mb() - base, 1))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_song_buffers_are_returned_to_the_os():
    grown = {}
    for mode in ("off", "on"):
        r = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, cwd=ROOT,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        grown[mode] = float(r.stdout.strip())
    print(f"\nRSS left after freeing 60 MB of song buffers: glibc default {grown['off']} MB, "
          f"fixed mmap threshold {grown['on']} MB")
    assert grown["on"] < 5.0
    assert grown["off"] > 40.0      # the creep the setting prevents (a 10-minute run grew by a quarter)
