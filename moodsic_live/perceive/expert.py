"""Loading any expert by its contract and reading its outputs into calibrated estimates."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moodsic_live.errors import ModelError
from moodsic_live.perceive.circumplex import class_va, softmax
from moodsic_live.perceive.contract import Manifest, check_session, load_manifest
from moodsic_live.perceive.estimate import VA
from moodsic_live.perceive.fusion import calibrate
from moodsic_live.perceive.runtime import InferenceRuntime
from moodsic_live.scales import get_scale, to_reference, variance_to_reference


class ModelOutputs:
    """Reads one expert's raw outputs into V/A samples, variances and class probabilities."""

    def __init__(self, manifest: Manifest, session):
        self.m = manifest
        self.session = session
        names = [n for n in (manifest.va_output, manifest.variance_output) if n]
        if manifest.probabilities:
            names.append(manifest.probabilities.name)
        self.names = list(dict.fromkeys(names))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(self.names, feeds)
        except Exception as exc:  # onnxruntime's own error types
            raise ModelError(f"model {self.m.name} failed to run on its input ({str(exc).splitlines()[0][:160]}); "
                             "check the manifest's input size, colour and layout") from None
        return dict(zip(self.names, (np.asarray(v, dtype=np.float64) for v in values)))

    def probabilities(self, out: dict[str, np.ndarray]) -> np.ndarray | None:
        spec = self.m.probabilities
        if spec is None:
            return None
        p = out[spec.name].reshape(out[spec.name].shape[0], -1)
        return softmax(p) if spec.softmax else np.clip(p, 0.0, None)

    def estimate(self, out: dict[str, np.ndarray], rows: np.ndarray) -> tuple[VA, np.ndarray | None]:
        """Aggregate the samples ``rows`` of one input into a calibrated estimate."""
        m = self.m
        probs = self.probabilities(out)
        p_mean = probs[rows].mean(axis=0) if probs is not None else None
        if m.va_output:
            rng_v, rng_a = get_scale(m.va_scale).valence, get_scale(m.va_scale).arousal
            raw = out[m.va_output].reshape(-1, 2)[rows]
            raw = np.stack([np.clip(raw[:, 0], rng_v.low, rng_v.high), np.clip(raw[:, 1], rng_a.low, rng_a.high)], 1)
            samples = np.stack([to_reference(raw[:, 0], m.va_scale, "valence"),
                                to_reference(raw[:, 1], m.va_scale, "arousal")], 1)
            if m.variance_output:
                var = np.maximum(out[m.variance_output].reshape(-1, 2)[rows], 0.0).mean(axis=0)
                model_var = np.array([variance_to_reference(var[0], m.va_scale, "valence"),
                                      variance_to_reference(var[1], m.va_scale, "arousal")])
            elif p_mean is not None:
                model_var = class_va(p_mean, m.probabilities.positions, m.probabilities.spreads)[1]
            else:
                model_var = np.zeros(2)
        else:
            spec = m.probabilities
            samples = class_va(probs[rows], spec.positions, spec.spreads)[0]
            model_var = class_va(p_mean, spec.positions, spec.spreads)[1]
        mean = samples.mean(axis=0)
        spread = samples.var(axis=0) if len(rows) > 1 else np.zeros(2)
        var = calibrate(spread + model_var, m.calibration.scale, m.calibration.floor)
        return VA(float(np.clip(mean[0], -1, 1)), float(np.clip(mean[1], -1, 1)), float(var[0]), float(var[1])), p_mean


def open_expert(runtime: InferenceRuntime, path: Path, manifest: Manifest, expert: str, threads: int = 0):
    """The checked ONNX session of the ``expert`` model at ``path`` described by ``manifest``."""
    if manifest.expert != expert:
        raise ModelError(f"model {path.name} is a {manifest.expert} expert, but was given as the {expert} model")
    session = runtime.session(path, threads=threads)
    check_session(session, manifest, path)
    return session


def load_expert(runtime: InferenceRuntime, path: Path, expert: str) -> tuple[Manifest, object]:
    manifest = load_manifest(path)
    return manifest, open_expert(runtime, path, manifest, expert)
