"""The face expert: expression of every face in view, with test-time augmentation.

The primary face is read ``tta`` times (identity, mirror, small shifts and zooms; 6 by
default) and
every other face twice (identity, mirror), all in ONE batched ONNX call. Per face:

- class probabilities (averaged over the augmentations) and/or the model's own V/A;
- V/A: the mean over augmentations (and MC-dropout samples, if the model has them);
- variance: the variance across augmentations plus the model's variance, which for a
  class model is the law-of-total-variance spread of its class distribution (see
  :mod:`moodsic_live.perceive.circumplex`), then calibrated per the manifest.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from moodsic_live.errors import ModelError
from moodsic_live.perceive.circumplex import class_va, normalised_entropy, softmax
from moodsic_live.perceive.contract import Manifest, check_session, load_manifest
from moodsic_live.perceive.estimate import VA, FaceBox, FaceReading
from moodsic_live.perceive.face_detector import augmentations, crop_transform
from moodsic_live.perceive.fusion import calibrate
from moodsic_live.perceive.preprocess import to_model_input
from moodsic_live.perceive.runtime import InferenceRuntime
from moodsic_live.scales import get_scale, to_reference, variance_to_reference

OTHER_FACE_SAMPLES = 2


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


def load_expert(runtime: InferenceRuntime, path: Path, expert: str, threads: int = 0) -> tuple[Manifest, object]:
    manifest = load_manifest(path)
    if manifest.expert != expert:
        raise ModelError(f"model {path.name} is a {manifest.expert} expert, but was given as the {expert} model")
    session = runtime.session(path, threads=threads)
    check_session(session, manifest, path)
    return manifest, session


class FaceExpert:
    def __init__(self, runtime: InferenceRuntime, model_path: Path, tta: int = 8, padding: float = 0.2):
        self.manifest, session = load_expert(runtime, model_path, "face")
        if self.manifest.input.kind != "image":
            raise ModelError(f"model {model_path.name}: a face expert takes an image input")
        self.outputs = ModelOutputs(self.manifest, session)
        self.spec = self.manifest.input
        self.padding = padding
        self.augs = augmentations(tta, self.spec.size)
        self.mc = max(1, self.manifest.mc_dropout_samples)
        # one run at load time, so a model that does not fit its manifest fails now, clearly
        self.outputs.run({self.spec.name: to_model_input(
            np.zeros((1, *self.spec.size, self.spec.channels), np.uint8), self.spec)})

    def _crops(self, image: np.ndarray, face: FaceBox, n: int) -> list[np.ndarray]:
        h, w = self.spec.size
        base = np.vstack([crop_transform(face, self.spec.size, self.padding), [0.0, 0.0, 1.0]])
        return [cv2.warpAffine(image, (aug @ base)[:2], (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE) for aug in self.augs[:n]]

    def read(self, frame_bgr: np.ndarray, faces: list[FaceBox]) -> list[FaceReading]:
        """Readings for ``faces`` (the first one is the primary face and gets full TTA)."""
        if not faces:
            return []
        colour = self.spec.colour
        crops, spans = [], []
        for i, face in enumerate(faces):
            n = len(self.augs) if i == 0 else min(OTHER_FACE_SAMPLES, len(self.augs))
            start = len(crops)
            crops.extend(self._crops(frame_bgr, face, n))
            spans.append((start, len(crops)))
        batch = np.stack(crops)  # [N, h, w, 3] BGR: only the small crops change colour space
        if colour == "gray":
            batch = cv2.cvtColor(batch.reshape(-1, batch.shape[2], 3), cv2.COLOR_BGR2GRAY).reshape(
                *batch.shape[:3], 1)
        elif colour == "rgb":
            batch = batch[..., ::-1]
        x = to_model_input(batch, self.spec)
        if self.mc > 1:
            x = np.concatenate([x] * self.mc)
        out = self.outputs.run({self.spec.name: x})
        labels = self.manifest.probabilities.labels if self.manifest.probabilities else None
        readings = []
        total = len(crops)
        for face, (a, b) in zip(faces, spans):
            rows = np.concatenate([np.arange(a, b) + k * total for k in range(self.mc)])
            va, p = self.outputs.estimate(out, rows)
            probs = dict(zip(labels, map(float, p))) if p is not None else None
            entropy = float(normalised_entropy(p)) if p is not None else None
            readings.append(FaceReading(face, va, probs, entropy))
        return readings
