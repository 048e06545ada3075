"""Moodsic Live: perceive -> stabilise -> match -> play."""

# First, before anything can import onnxruntime: its telemetry off (see privacy.py).
from moodsic_live import privacy as _privacy  # noqa: F401  (isort: skip)

__version__ = "0.1.0"
