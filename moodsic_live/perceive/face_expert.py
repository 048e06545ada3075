"""The face expert: expression of every face in view, with test-time augmentation.

The primary face is read ``tta`` times (identity, mirror, small shifts and zooms; 8 by
default) and every other face twice (identity, mirror), all in ONE batched ONNX call.
Per face:

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
from moodsic_live.perceive.circumplex import normalised_entropy
from moodsic_live.perceive.estimate import FaceBox, FaceReading
from moodsic_live.perceive.expert import ModelOutputs, load_expert
from moodsic_live.perceive.face_detector import augmentations, crop_source, crop_transform
from moodsic_live.perceive.preprocess import WARP_MAX_SIDE, to_model_input
from moodsic_live.perceive.runtime import InferenceRuntime

OTHER_FACE_SAMPLES = 2


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
        maps = [aug @ base for aug in self.augs[:n]]
        if max(image.shape[:2]) > WARP_MAX_SIDE:  # too large for warpAffine: warp from the face's part only
            image, maps = crop_source(image, maps, self.spec.size)
        return [cv2.warpAffine(image, m[:2], (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE) for m in maps]

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
