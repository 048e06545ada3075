"""Perceive one frame: detect faces, run the face and scene experts, fuse."""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from moodsic_live.config import PerceiveConfig
from moodsic_live.frames import Frame
from moodsic_live.perceive.estimate import Perception
from moodsic_live.perceive.face_detector import FaceDetector, choose_primary
from moodsic_live.perceive.face_expert import FaceExpert
from moodsic_live.perceive.fusion import fuse
from moodsic_live.perceive.runtime import InferenceRuntime
from moodsic_live.perceive.scene_expert import SceneExpert

FACE_MODEL = "face_fer2013.onnx"
SCENE_MODEL = "scene_affect.onnx"


class Perceiver:
    """Owns the detector and the ONNX sessions; use it from one thread only."""

    def __init__(self, config: PerceiveConfig, models_dir: Path, runtime: InferenceRuntime | None = None):
        self.config = config
        self.runtime = runtime or InferenceRuntime(config.provider)
        self.detector: FaceDetector | None = None
        self.face: FaceExpert | None = None
        self.scene: SceneExpert | None = None
        if config.face_enabled:
            self.face = FaceExpert(self.runtime, config.face_model or models_dir / FACE_MODEL,
                                   tta=config.tta_samples, padding=config.face_padding)
            self.detector = FaceDetector(config.detector_range, config.min_face_confidence, config.max_faces)
        if config.scene_enabled:
            self.scene = SceneExpert(self.runtime, config.scene_model or models_dir / SCENE_MODEL)

    @property
    def provider(self) -> str:
        return self.runtime.provider

    def perceive(self, frame: Frame) -> Perception:
        timings = {}
        t0 = time.perf_counter()
        readings = []
        if self.detector is not None and self.face is not None:
            rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
            faces = self.detector.detect(rgb)
            t1 = time.perf_counter()
            timings["detect"] = (t1 - t0) * 1e3
            primary = choose_primary(faces, *frame.size)
            if primary is not None:
                faces.insert(0, faces.pop(primary))
            readings = self.face.read(frame.image, faces)
            t0, timings["face"] = time.perf_counter(), (time.perf_counter() - t1) * 1e3
        scene, features = (None, {})
        if self.scene is not None:
            t1 = time.perf_counter()
            scene, features = self.scene.read(frame, readings)
            t0, timings["scene"] = time.perf_counter(), (time.perf_counter() - t1) * 1e3
        face = readings[0] if readings else None
        fused = fuse([face.estimate if face else None, scene])
        timings["fusion"] = (time.perf_counter() - t0) * 1e3
        return Perception(frame.t, frame.index, fused, face, tuple(readings), scene, features,
                          self.runtime.provider, timings)

    def close(self) -> None:
        if self.detector is not None:
            self.detector.close()
