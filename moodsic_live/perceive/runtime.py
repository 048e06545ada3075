"""ONNX Runtime sessions: CUDA when it really runs, else CPU, and said once, plainly.

onnxruntime-gpu lists ``CUDAExecutionProvider`` even on machines without a GPU; asking
for it there falls back to CPU after printing two error lines per session. So the first
session probes CUDA with ONNX Runtime's own logging muted, reads back
``session.get_providers()`` to see what really runs, and every later session is created
with that answer: the log says one line, once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from moodsic_live.errors import ModelError, ProviderError
from moodsic_live.privacy import disable_telemetry_events

disable_telemetry_events(ort)  # ORT_DISABLE_TELEMETRY=1 is already set (moodsic_live/__init__.py)

log = logging.getLogger(__name__)

_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"

ProviderChoice = Literal["auto", "cpu", "cuda"]


class InferenceRuntime:
    """Creates every ONNX session of one process with one, checked, provider choice."""

    def __init__(self, preference: ProviderChoice = "auto"):
        if preference not in ("auto", "cpu", "cuda"):
            raise ProviderError(f"unknown provider {preference!r}: use auto, cpu or cuda")
        self.preference = preference
        self._providers: list[str] | None = None
        self.provider = "unknown"  # "CUDA" or "CPU" once the first session exists
        self.note = ""

    def _options(self, threads: int = 0) -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # MediaPipe's graph threads share the cores: ORT workers must sleep, not spin, when idle.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
        return opts

    def session(self, model: Path | bytes, name: str | None = None, threads: int = 0) -> ort.InferenceSession:
        """A session for ``model``; ``threads`` > 0 caps its CPU threads (0: ONNX Runtime's choice)."""
        label = name or (model.name if isinstance(model, Path) else "model")
        if isinstance(model, Path) and not model.is_file():
            raise ModelError(f"model {model} is missing; build it with `moodsic-live models build`")
        source = str(model) if isinstance(model, Path) else model
        if self._providers is None:
            return self._first_session(source, label, threads)
        return self._create(source, label, self._providers, threads)

    def _create(self, source, label: str, providers: list[str], threads: int = 0) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(source, sess_options=self._options(threads), providers=providers)
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else exc.__class__.__name__
            raise ModelError(f"model {label} cannot be loaded: not a valid ONNX model ({reason}); "
                             "rebuild it with `moodsic-live models build` or replace the file") from None

    def _first_session(self, source, label: str, threads: int) -> ort.InferenceSession:
        available = ort.get_available_providers()
        if self.preference == "cpu":
            self._settle([_CPU], "CPU", "CPU (chosen in the configuration)")
            return self._create(source, label, [_CPU], threads)
        if _CUDA not in available:
            return self._no_cuda(source, label, threads, "this onnxruntime build has no CUDA provider")
        ort.set_default_logger_severity(4)  # mute the CUDA probe's error lines
        try:
            session = self._create(source, label, [_CUDA, _CPU], threads)
        finally:
            ort.set_default_logger_severity(3)
        if session.get_providers()[0] == _CUDA:
            self._settle([_CUDA, _CPU], "CUDA", "CUDA (NVIDIA GPU)")
            return session
        return self._no_cuda(source, label, threads, "no usable NVIDIA GPU, driver or CUDA 12/cuDNN 9 libraries",
                             session=session)

    def _no_cuda(self, source, label: str, threads: int, reason: str, session=None) -> ort.InferenceSession:
        if self.preference == "cuda":
            raise ProviderError(f"CUDA was requested but is not available ({reason}); install the NVIDIA "
                                "driver with CUDA 12 and cuDNN 9, or use --provider auto")
        self._settle([_CPU], "CPU", f"CPU ({reason})")
        return session if session is not None else self._create(source, label, [_CPU], threads)

    def _settle(self, providers: list[str], provider: str, note: str) -> None:
        self._providers = providers
        self.provider = provider
        self.note = note
        log.info("inference runs on %s", note)
