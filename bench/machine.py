"""What machine a benchmark ran on (shared by the bench scripts)."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    return (f"Machine: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
            f"date {dt.date.today().isoformat()}.")
