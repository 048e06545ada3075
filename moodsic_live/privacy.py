"""Nothing leaves the machine: ONNX Runtime's telemetry is off before ONNX Runtime loads.

Official onnxruntime builds (onnxruntime-gpu 1.31.1 among them) ship Microsoft's 1DS telemetry:
on Linux it resolves and contacts ``mobile.events.data.microsoft.com`` and keeps a device id
and an event queue under ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/``. Their Privacy.md:
``ORT_DISABLE_TELEMETRY=1`` set *before ONNX Runtime initializes* stops the uploader, the events
and the device id for the life of the process; ``disable_telemetry_events()`` only suppresses
non-essential events once it is loaded.

``moodsic_live/__init__.py`` imports this module first, so every entry point (``moodsic-live``,
``python -m moodsic_live``, ``python main.py``, spawned worker processes, tests) sets the variable
before anything can import onnxruntime; child processes inherit it. It is forced to "1", not
defaulted: the README promises no network traffic, and a stray ``ORT_DISABLE_TELEMETRY=0`` in a
user's environment must not break that promise.
"""

from __future__ import annotations

import os
from typing import Any

TELEMETRY_VARIABLE = "ORT_DISABLE_TELEMETRY"


def disable_onnxruntime_telemetry_env() -> None:
    """Set ``ORT_DISABLE_TELEMETRY=1`` for this process and its children (idempotent)."""
    os.environ[TELEMETRY_VARIABLE] = "1"


def disable_telemetry_events(ort: Any) -> None:
    """Also switch off ONNX Runtime's telemetry events through its API, where the build has it."""
    disable = getattr(ort, "disable_telemetry_events", None)
    if callable(disable):
        disable()


disable_onnxruntime_telemetry_env()
