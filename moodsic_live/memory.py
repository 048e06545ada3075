"""Process-wide settings a long live run needs: memory that goes back to the OS, a prompt GIL.

Both are set by :meth:`moodsic_live.engine.live.LiveEngine.start` (idempotent, harmless for
everything else in the process).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3        # glibc <malloc.h>
BIG_BUFFER_BYTES = 1 << 20   # audio segments (~15 MB), decoded chunks, model inputs and up


def return_big_buffers_to_the_os(threshold: int = BIG_BUFFER_BYTES) -> bool:
    """Make glibc serve every allocation of ``threshold`` bytes or more with its own ``mmap``, so
    freeing it returns the memory to the OS at once.

    By default glibc raises this threshold dynamically (up to 32 MiB) once a large block has
    been freed; from then on the player's prepared segments (40 s of 48 kHz stereo float32,
    15 MB each, one or two per song change) come from the heap, where freed space is reused only
    if the next request fits and is never returned: a 10-minute live run grew by a quarter.
    Setting the threshold explicitly turns the dynamic adjustment off. False where the C library
    is not glibc (nothing to do there)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, int(threshold)) == 1


AUDIO_SWITCH_INTERVAL_S = 0.001


def prompt_gil(interval_s: float = AUDIO_SWITCH_INTERVAL_S) -> float:
    """Let a thread waiting for the GIL (PortAudio's callback, which runs Python) get it within
    ``interval_s`` instead of CPython's default 5 ms: half of a 10 ms audio block. Returns the
    previous interval, to restore."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval_s)
    return previous
