"""The scene expert: the emotional tone of the whole frame.

The built-in model (``scene_statistics`` input) reads colour statistics, motion between
consecutive frames and the faces in view (see ``moodsic_live/models/scene_graph.py``).
A plug-in model (``image`` input, e.g. a CLIP backbone with a V/A head) gets the whole
frame resized to its input size, with MC-dropout samples in one batched call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moodsic_live.frames import Frame
from moodsic_live.models.scene_graph import FEATURES
from moodsic_live.perceive.contract import load_manifest
from moodsic_live.perceive.estimate import VA, FaceReading
from moodsic_live.perceive.expert import ModelOutputs, open_expert
from moodsic_live.perceive.fusion import calibrate
from moodsic_live.perceive.preprocess import to_model_input, whole_image
from moodsic_live.perceive.runtime import InferenceRuntime


class SceneExpert:
    def __init__(self, runtime: InferenceRuntime, model_path: Path):
        self.manifest = load_manifest(model_path)
        self.spec = self.manifest.input
        self.statistics = self.spec.kind == "scene_statistics"
        # the statistics graph is tiny and runs beside the face expert: one thread is enough
        self.session = open_expert(runtime, model_path, self.manifest, "scene", threads=1 if self.statistics else 0)
        self.outputs = ModelOutputs(self.manifest, self.session)
        self.mc = max(1, self.manifest.mc_dropout_samples)
        self._previous: np.ndarray | None = None
        self._previous_t = 0.0

    def read(self, frame: Frame, faces: list[FaceReading]) -> tuple[VA, dict[str, float]]:
        x = to_model_input(whole_image(frame.image, self.spec)[None], self.spec)
        if not self.statistics:
            if self.mc > 1:
                x = np.concatenate([x] * self.mc)
            out = self.outputs.run({self.spec.name: x})
            va, _ = self.outputs.estimate(out, np.arange(x.shape[0]))
            return va, {}
        dt = frame.t - self._previous_t
        has_prev = self._previous is not None and not frame.still and dt > 0
        previous = self._previous if has_prev else x
        n = len(faces)
        mean_v = float(np.mean([f.estimate.valence for f in faces])) if n else 0.0
        mean_a = float(np.mean([f.estimate.arousal for f in faces])) if n else 0.0
        context = np.array([[1.0 if has_prev else 0.0, dt if has_prev else 0.0, n, mean_v, mean_a]], np.float32)
        va, var, feats = self.session.run(["va", "va_var", "features"],
                                          {"frame": x, "previous": previous, "context": context})
        self._previous, self._previous_t = x, frame.t
        var = calibrate(var[0], self.manifest.calibration.scale, self.manifest.calibration.floor)
        estimate = VA(float(va[0, 0]), float(va[0, 1]), float(var[0]), float(var[1]))
        return estimate, {k: float(v) for k, v in zip(FEATURES, feats[0])}

    def reset(self) -> None:
        self._previous = None
