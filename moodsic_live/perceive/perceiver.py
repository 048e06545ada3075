"""Perceive one frame: detect faces, run the face and scene experts, fuse."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
        if config.face_enabled and not config.atmosphere_only:
            self.face = FaceExpert(self.runtime, config.face_model or models_dir / FACE_MODEL,
                                   tta=config.tta_samples, padding=config.face_padding)
        if self.face is not None or config.atmosphere_only:  # atmosphere only: boxes to blur, nothing read
            self.detector = FaceDetector(config.detector_range, config.min_face_confidence, config.max_faces)
        if config.scene_enabled:
            self.scene = SceneExpert(self.runtime, config.scene_model or models_dir / SCENE_MODEL)
        # Live/video frames: the scene expert runs beside detection + face expert (2 cores),
        # reading the previous frame's faces for the group mood (one frame of lag).
        self._scene_pool = ThreadPoolExecutor(1, thread_name_prefix="perceive-scene") if self.scene else None
        self._last_readings: list = []

    @property
    def provider(self) -> str:
        return self.runtime.provider

    def perceive(self, frame: Frame) -> Perception:
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = (now - clock) * 1e3
            clock = now

        readings = []
        boxes: tuple = ()
        parallel = self.scene is not None and not frame.still and self.detector is not None
        pending = self._scene_pool.submit(self._timed_scene, frame, self._last_readings) if parallel else None
        if self.detector is not None:
            faces = self.detector.detect_bgr(frame.image)  # any size; boxes in the frame's pixels
            primary = choose_primary(faces, *frame.size)
            if primary is not None:
                faces.insert(0, faces.pop(primary))
            boxes = tuple(faces)
            lap("detect")
            if self.face is not None:
                readings = self.face.read(frame.image, faces)
                lap("face")
        scene, features = None, {}
        if pending is not None:
            scene, features, timings["scene"] = pending.result()
            lap("scene_wait")  # what is left of the scene expert once detect + face are done
        elif self.scene is not None:
            scene, features = self.scene.read(frame, readings)
            lap("scene")
        self._last_readings = readings
        face = readings[0] if readings else None
        fused = fuse([face.estimate if face else None, scene])
        lap("fusion")
        return Perception(frame.t, frame.index, fused, face, tuple(readings), scene, features,
                          self.runtime.provider, timings, boxes)

    def _timed_scene(self, frame: Frame, readings: list) -> tuple:
        t0 = time.perf_counter()
        scene, features = self.scene.read(frame, readings)
        return scene, features, (time.perf_counter() - t0) * 1e3

    def close(self) -> None:
        if self._scene_pool is not None:
            self._scene_pool.shutdown(wait=True)
        if self.detector is not None:
            self.detector.close()
