"""Face detection with MediaPipe BlazeFace, the primary face, and eye-aligned crops.

BlazeFace ships inside mediapipe 0.10.21 (no download): the short-range model for faces
within about 2 m of the camera (a desk webcam, the mirror) and the full-range model for
faces up to about 5 m (an ambient camera in a café or shop).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, Sequence

import numpy as np

from moodsic_live.errors import ModelError
from moodsic_live.perceive.estimate import FaceBox


class FaceDetector:
    """All faces in an RGB frame, as pixel boxes with six keypoints, best first."""

    def __init__(self, detector_range: str = "short", min_confidence: float = 0.5, max_faces: int = 8):
        if detector_range not in ("short", "full"):
            raise ModelError(f"face detector range must be 'short' or 'full', not {detector_range!r}")
        try:
            from mediapipe.python.solutions import face_detection
        except ImportError as exc:
            raise ModelError(f"mediapipe cannot be imported ({exc}); reinstall with the README's set-up command") \
                from None
        self.range = detector_range
        self.max_faces = max_faces
        self._detector = face_detection.FaceDetection(
            model_selection=0 if detector_range == "short" else 1, min_detection_confidence=min_confidence)
        # TFLite/absl print INFO and warning lines on the first inference; warm up quietly.
        with _quiet_stderr():
            self._detector.process(np.zeros((64, 64, 3), np.uint8))

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        h, w = rgb.shape[:2]
        result = self._detector.process(rgb)
        faces = []
        for det in result.detections or ():
            rel = det.location_data.relative_bounding_box
            x0, y0 = max(0.0, rel.xmin * w), max(0.0, rel.ymin * h)
            x1, y1 = min(float(w), (rel.xmin + rel.width) * w), min(float(h), (rel.ymin + rel.height) * h)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            kps = tuple((k.x * w, k.y * h) for k in det.location_data.relative_keypoints)
            faces.append(FaceBox(int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0)),
                                 float(det.score[0]), kps))
        faces.sort(key=lambda f: f.score, reverse=True)
        return faces[: self.max_faces]

    def close(self) -> None:
        self._detector.close()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C++ libraries write there directly) for a moment."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def primary_score(face: FaceBox, width: int, height: int) -> float:
    """confidence x sqrt(area) x (0.7 + 0.3 x centre proximity); proximity is 1 at the
    centre of the frame and 0 at a corner."""
    cx, cy = face.centre
    half_diag = math.hypot(width / 2.0, height / 2.0)
    proximity = 1.0 - min(1.0, math.hypot(cx - width / 2.0, cy - height / 2.0) / half_diag)
    return face.score * math.sqrt(face.area) * (0.7 + 0.3 * proximity)


def choose_primary(faces: Sequence[FaceBox], width: int, height: int) -> int | None:
    if not faces:
        return None
    return max(range(len(faces)), key=lambda i: primary_score(faces[i], width, height))


def eye_angle(face: FaceBox) -> float:
    """Roll of the face in degrees: the angle of the line from the right to the left eye."""
    if len(face.keypoints) < 2:
        return 0.0
    (rx, ry), (lx, ly) = face.keypoints[0], face.keypoints[1]
    return math.degrees(math.atan2(ly - ry, lx - rx))


def crop_transform(face: FaceBox, out_size: tuple[int, int], padding: float) -> np.ndarray:
    """The 2x3 affine map from frame pixels to an eye-aligned, square, padded crop.

    The crop is centred on the box, its side is the box's longer side grown by
    ``padding`` (0.2: 10 % on each side), and it is rotated so the eyes lie level.
    """
    out_h, out_w = out_size
    cx, cy = face.centre
    side = max(face.w, face.h) * (1.0 + padding)
    theta = math.radians(eye_angle(face))
    sx, sy = out_w / side, out_h / side
    cos, sin = math.cos(theta), math.sin(theta)
    # dest = S * R(-theta) * (src - c) + out_centre
    m = np.array([[sx * cos, sx * sin, 0.0], [-sy * sin, sy * cos, 0.0]], dtype=np.float64)
    m[:, 2] = np.array([out_w / 2.0, out_h / 2.0]) - m[:, :2] @ np.array([cx, cy])
    return m


def augmentations(n: int, out_size: tuple[int, int], shift: float = 2.0, scale: float = 0.07) -> list[np.ndarray]:
    """``n`` 3x3 maps in crop space for test-time augmentation: identity, mirror, two
    diagonal shifts of ``shift`` pixels, zooms of -+``scale``, then the other diagonals."""
    h, w = out_size
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0

    def zoom(f: float) -> np.ndarray:
        return np.array([[f, 0, cx * (1 - f)], [0, f, cy * (1 - f)], [0, 0, 1]], dtype=np.float64)

    def move(dx: float, dy: float) -> np.ndarray:
        return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], dtype=np.float64)

    mirror = np.array([[-1, 0, w - 1], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    variants = [np.eye(3), mirror, move(shift, shift), move(-shift, -shift), zoom(1.0 - scale), zoom(1.0 + scale),
                move(shift, -shift), move(-shift, shift)]
    if not 1 <= n <= len(variants):
        raise ValueError(f"test-time augmentation takes 1..{len(variants)} samples, not {n}")
    return variants[:n]
