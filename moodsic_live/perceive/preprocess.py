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
