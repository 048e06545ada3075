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


DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def write_section(title: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the ``## <title>`` section of ``doc`` (docs/performance.md) with ``body``."""
    import re

    text = doc.read_text() if doc.exists() else "# Performance\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\b.*?(?=\n## |\Z)", re.S | re.M)
    body = body.rstrip("\n") + "\n"
    text = pattern.sub(lambda _: body, text, count=1) if pattern.search(text) else text.rstrip() + "\n\n" + body
    doc.write_text(text)
