"""Turn uint8 image batches into a model's input tensor, as its manifest describes."""

from __future__ import annotations

import cv2
import numpy as np

from moodsic_live.perceive.contract import InputSpec


def to_model_input(batch: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``batch`` is [N, H, W, C] uint8 in the model's colour order; returns float32 in its layout."""
    x = batch.astype(np.float32) * np.float32(spec.scale)
    x -= np.asarray(spec.mean, dtype=np.float32)
    x /= np.asarray(spec.std, dtype=np.float32)
    if spec.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def whole_image(image_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A whole BGR frame as an image model's [H, W, C] uint8 input: resized to the input size without
    cropping (INTER_AREA), in the model's colour order. The scene expert and the scene trainer both use
    it, so a trained model sees exactly what it was trained on."""
    h, w = spec.size
    small = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_AREA)
    if spec.colour == "gray":
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)[..., None]
    return small[..., ::-1] if spec.colour == "rgb" else small  # a view: to_model_input copies once


# OpenCV's geometric warps (warpAffine, remap) take images only with both sides < SHRT_MAX (32767).
# MediaPipe's face detection warps the whole frame with its own bundled OpenCV, where the failed
# assertion is not caught and aborts the process (`cols < SHRT_MAX` in remap); OpenCV's Python binding
# raises cv2.error instead. Frames at or above this side never reach a warp whole.
WARP_MAX_SIDE = 32766


def fit_within(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
    """``image`` shrunk (INTER_AREA, which is safe at any size) so that its longer side is at most
    ``max_side``, with the scale factors applied along x and y (new / old). An image that fits is
    returned itself, not copied, with scale 1.0."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, 1.0, 1.0
    s = max_side / max(h, w)
    size = (min(max_side, max(1, round(w * s))), min(max_side, max(1, round(h * s))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), size[0] / w, size[1] / h
