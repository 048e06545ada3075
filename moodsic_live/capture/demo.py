"""The built-in demo source: a slow pan and zoom across the demo scenes in ``assets/demo``.

It lets the app run on a fresh machine with no camera: each scene is shown for
``scene_seconds`` while the view drifts (so there is gentle motion), then the next one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from moodsic_live.capture.stills import read_image
from moodsic_live.errors import InputError
from moodsic_live.frames import Frame

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "demo"


def demo_scenes(folder: Path = ASSETS) -> list[Path]:
    scenes = sorted(p for p in folder.glob("*.jpg"))
    if not scenes:
        raise InputError(f"no demo scenes in {folder}; reinstall from a full checkout of the project")
    return scenes


def demo_frames(fps: float = 10.0, size: tuple[int, int] = (640, 480), scene_seconds: float = 12.0,
                folder: Path = ASSETS) -> Iterator[Frame]:
    """Endless frames (BGR, ``size`` = (w, h)) with timestamps at ``fps``; the caller paces them."""
    paths = demo_scenes(folder)
    images = [read_image(p) for p in paths]
    out_w, out_h = size
    i = 0
    while True:
        t = i / fps
        k = int(t // scene_seconds) % len(images)
        phase = (t % scene_seconds) / scene_seconds
        img = images[k]
        h, w = img.shape[:2]
        zoom = 1.0 + 0.15 * math.sin(math.pi * phase)  # in and out again
        base = max(out_w / w, out_h / h)
        s = base * zoom
        cx = w / 2 + (phase - 0.5) * 0.1 * w
        cy = h / 2
        m = np.array([[s, 0, out_w / 2 - s * cx], [0, s, out_h / 2 - s * cy]], dtype=np.float64)
        frame = cv2.warpAffine(img, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        yield Frame(frame, t=t, index=i, source=f"demo:{paths[k].stem}")
        i += 1
