"""Frames: what the capture step hands to perceive."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    image: np.ndarray  # H x W x 3, uint8, BGR (OpenCV's order)
    t: float  # seconds: capture time (live) or position in the video
    index: int = 0
    source: str = ""
    still: bool = False  # an unrelated photo: no motion against the previous frame

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.image.shape[:2]
        return w, h
