"""Face detection with MediaPipe BlazeFace, the primary face, and eye-aligned crops.

BlazeFace ships inside mediapipe 0.10.21 (no download): the short-range model for faces
within about 2 m of the camera (a desk webcam, the mirror) and the full-range model for
faces up to about 5 m (an ambient camera in a café or shop).

Frames of any size: BlazeFace reads a 128 (short range) or 192 px (full range) square, which
MediaPipe warps from the whole frame with its bundled OpenCV; a side of 32767 px or more aborts
the process there. :meth:`FaceDetector.detect_bgr` therefore gives MediaPipe at most
``DETECT_SIDE`` px on a side: ordinary frames (long side <= ``DETECT_MAX_SIDE``, at most 3:1) go in
as they are; a larger frame is shrunk first, and a panorama (longer than 3:1, which a square input
would shrink to a sliver) is searched in overlapping square tiles. Boxes and keypoints come back
in the frame's own pixels.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from moodsic_live.errors import ModelError
from moodsic_live.perceive.estimate import FaceBox
from moodsic_live.perceive.preprocess import fit_within

DETECT_MAX_SIDE = 4096  # a frame up to this long side (and at most TILE_ASPECT:1) goes to MediaPipe as it is
DETECT_SIDE = 1024      # otherwise each tile (or the whole frame) is shrunk to this: 5x+ BlazeFace's input
TILE_ASPECT = 3.0       # frames longer than 3:1 are searched in square tiles overlapping by half
MAX_TILES = 160         # at most this many tiles (a 40000 x 600 panorama needs 133); beyond it they widen


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
        """Faces in an RGB frame that MediaPipe can take whole (both sides < 32767 px; see
        :meth:`detect_bgr` for frames of any size)."""
        faces = [map_box(*found) for found in self._find(rgb)]
        faces.sort(key=lambda f: f.score, reverse=True)
        return faces[: self.max_faces]

    def detect_bgr(self, bgr: np.ndarray) -> list[FaceBox]:
        """Faces in a BGR frame of any size, in the frame's pixels. An ordinary frame costs what
        :meth:`detect` does (one colour conversion, no other copy)."""
        h, w = bgr.shape[:2]
        if max(h, w) <= DETECT_MAX_SIDE and max(h, w) <= TILE_ASPECT * min(h, w):
            return self.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        found: list[tuple[bool, FaceBox]] = []
        for x0, y0, x1, y1 in detection_tiles(w, h):
            tile, sx, sy = fit_within(bgr[y0:y1, x0:x1], DETECT_SIDE)
            th, tw = tile.shape[:2]
            for bx0, by0, bx1, by1, score, kps in self._find(cv2.cvtColor(tile, cv2.COLOR_BGR2RGB)):
                # a box that touches a tile's inner edge may be part of a face that the next tile holds whole
                cut = (x0 > 0 and bx0 <= 1) or (y0 > 0 and by0 <= 1) or (x1 < w and bx1 >= tw - 1) or \
                    (y1 < h and by1 >= th - 1)
                found.append((cut, map_box(bx0, by0, bx1, by1, score, kps, sx, sy, x0, y0)))
        return merge_faces(found)[: self.max_faces]

    def _find(self, rgb: np.ndarray) -> list[tuple]:
        """MediaPipe's detections as (x0, y0, x1, y1, score, keypoints) in ``rgb``'s pixels (floats)."""
        h, w = rgb.shape[:2]
        result = self._detector.process(rgb)
        found = []
        for det in result.detections or ():
            rel = det.location_data.relative_bounding_box
            x0, y0 = max(0.0, rel.xmin * w), max(0.0, rel.ymin * h)
            x1, y1 = min(float(w), (rel.xmin + rel.width) * w), min(float(h), (rel.ymin + rel.height) * h)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            kps = tuple((k.x * w, k.y * h) for k in det.location_data.relative_keypoints)
            found.append((x0, y0, x1, y1, float(det.score[0]), kps))
        return found

    def close(self) -> None:
        self._detector.close()


def map_box(x0: float, y0: float, x1: float, y1: float, score: float, keypoints: Sequence[tuple[float, float]],
            sx: float = 1.0, sy: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> FaceBox:
    """A box (corners) and keypoints found in a tile that starts at (``dx``, ``dy``) of the frame and
    was scaled by (``sx``, ``sy``) (new / old, as :func:`~moodsic_live.perceive.preprocess.fit_within`
    says), as a :class:`FaceBox` in the frame's pixels."""
    x0, x1 = x0 / sx + dx, x1 / sx + dx
    y0, y1 = y0 / sy + dy, y1 / sy + dy
    kps = tuple((kx / sx + dx, ky / sy + dy) for kx, ky in keypoints)
    return FaceBox(int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0)), score, kps)


def detection_tiles(width: int, height: int, aspect: float = TILE_ASPECT,
                    max_tiles: int = MAX_TILES) -> list[tuple[int, int, int, int]]:
    """Where to look for faces in a ``width`` x ``height`` frame, as (x0, y0, x1, y1) windows: the whole
    frame when it is at most ``aspect``:1, else square windows (the short side) along the long side,
    each overlapping the next by at least half, so every face up to half the short side lies whole in
    one of them; never more than ``max_tiles`` (the windows widen instead)."""
    long, short = max(width, height), min(width, height)
    if long <= aspect * short:
        return [(0, 0, width, height)]
    window = max(short, math.ceil(2 * long / (max_tiles + 1)))
    n = math.ceil((long - window) / (window / 2)) + 1
    starts = [round(i * (long - window) / (n - 1)) for i in range(n)]
    if width >= height:
        return [(s, 0, s + window, height) for s in starts]
    return [(0, s, width, s + window) for s in starts]


def merge_faces(found: Sequence[tuple[bool, FaceBox]]) -> list[FaceBox]:
    """One box per face from overlapping tiles, best first. ``found`` holds (cut, box): a box cut
    by a tile's inner edge gives way to an uncut one of the same face, else the higher score wins."""
    kept: list[FaceBox] = []
    for _cut, face in sorted(found, key=lambda cf: (cf[0], -cf[1].score)):
        if not any(_same_face(face, other) for other in kept):
            kept.append(face)
    kept.sort(key=lambda f: f.score, reverse=True)
    return kept


def _same_face(a: FaceBox, b: FaceBox) -> bool:
    iw = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    ih = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    if iw <= 0 or ih <= 0:
        return False
    inter = iw * ih
    return inter > 0.3 * (a.area + b.area - inter) or inter > 0.5 * min(a.area, b.area)


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


def crop_source(image: np.ndarray, maps: Sequence[np.ndarray], out_size: tuple[int, int],
                max_side: int = DETECT_MAX_SIDE) -> tuple[np.ndarray, list[np.ndarray]]:
    """The part of ``image`` that crops through the 3x3 ``maps`` (frame -> crop) read, as a view, and
    the maps re-based onto it; a part longer than ``max_side`` is shrunk (INTER_AREA). For frames too
    large for OpenCV's warps (a side of 32767 px or more): the crops come out as from the whole frame,
    with BORDER_REPLICATE too, since the part is clipped only at the frame's own edges."""
    out_h, out_w = out_size
    corners = np.array([[0.0, out_w, 0.0, out_w], [0.0, 0.0, out_h, out_h], [1.0, 1.0, 1.0, 1.0]])
    pts = np.hstack([(np.linalg.inv(m) @ corners)[:2] for m in maps])
    h, w = image.shape[:2]
    x0 = int(np.clip(np.floor(pts[0].min()) - 2, 0, w - 1))
    y0 = int(np.clip(np.floor(pts[1].min()) - 2, 0, h - 1))
    x1 = int(np.clip(np.ceil(pts[0].max()) + 3, x0 + 1, w))
    y1 = int(np.clip(np.ceil(pts[1].max()) + 3, y0 + 1, h))
    part, sx, sy = fit_within(image[y0:y1, x0:x1], max_side)
    # frame pixel = part pixel + (x0, y0); a shrunk part's pixel centres: part = (small + 0.5) / s - 0.5
    to_frame = np.array([[1.0 / sx, 0.0, 0.5 / sx - 0.5 + x0], [0.0, 1.0 / sy, 0.5 / sy - 0.5 + y0],
                         [0.0, 0.0, 1.0]])
    return part, [m @ to_frame for m in maps]


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
