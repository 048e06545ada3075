"""Turn uint8 image batches into a model's input tensor, as its manifest describes."""

from __future__ import annotations

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
