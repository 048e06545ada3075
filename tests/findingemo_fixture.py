"""A small dataset in FindingEmo's real layout whose labels depend on the images.

``annotations_single.ann`` has FindingEmo's exact header (as the findingemo-light package ships it);
images live under ``Run_1/<query>/`` and ``Run_2/<query>/`` and are named by ``image_path``
("/Run_2/<query>/<name>.jpg"). Each image is a scene whose colour follows valence (dark blue for
-3 ... warm yellow for +3) and whose texture follows arousal (smooth for 0 ... dense, contrasty
stripes and blobs for 6), with random layout and noise, so a model can only score by reading them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

HEADER = ["index", "user", "image_path", "tags", "age", "valence", "arousal", "emotion", "dec_factors",
          "ambiguity", "datetime"]
EMOTIONS = {-3: "Grief", -2: "Sadness", -1: "Pensiveness", 0: "Interest", 1: "Serenity", 2: "Joy", 3: "Ecstasy"}
QUERIES = ("Joyful adults park", "Lonely seniors kitchen", "Angry youth street", "Calm children beach")


def scene_image(valence: int, arousal: int, rng: np.random.Generator, size=(72, 96)) -> np.ndarray:
    h, w = size
    t = (valence + 3) / 6.0
    dark_blue, warm_yellow = np.array([110, 40, 20.0]), np.array([60, 210, 250.0])  # BGR
    colour = (1 - t) * dark_blue + t * warm_yellow
    img = np.ones((h, w, 3)) * colour
    energy = arousal / 6.0
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, np.pi)
    freq = 0.08 + 0.9 * energy
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * freq + rng.uniform(0, 6.28))
    img += (stripes * 90 * energy)[..., None]
    for _ in range(int(1 + 10 * energy)):
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(3, 12)),
                   tuple(float(c) for c in rng.uniform(0, 255, 3) * energy + colour * (1 - energy)), -1)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_findingemo(root: Path, n: int = 300, seed: int = 7, missing: int = 5, corrupt: int = 1) -> Path:
    """Write the dataset under ``root``; ``missing`` annotated rows have no image, ``corrupt`` images
    are not decodable. Returns ``root``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n + missing):
        v, a = int(rng.integers(-3, 4)), int(rng.integers(0, 7))
        run = "Run_1" if i % 10 == 0 else "Run_2"
        query = QUERIES[i % len(QUERIES)]
        rel = f"/{run}/{query}/img-{i:04d}.jpg"
        if i < n:
            path = root / rel.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            if i < corrupt:
                path.write_bytes(b"\xff\xd8 not a jpeg")
            else:
                cv2.imwrite(str(path), scene_image(v, a, rng))
        rows.append([i, f"{rng.integers(1 << 40):024x}", rel, "Undefined", "Adults", v, a, EMOTIONS[v],
                     "BodyLanguage,FacialExpression", int(rng.integers(0, 5)), "2023-09-01 00:00:00.000000"])
    with open(root / "annotations_single.ann", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return root
