"""Backbone embeddings of a set of images, computed once and cached on disk in resumable shards.

Images are fed exactly as the scene expert feeds a frame (:func:`moodsic_live.perceive.preprocess.
whole_image`, then the manifest's scale/mean/std). The cache lives in ``CACHE/embeddings-<backbone
sha256[:16]>/``: one ``shard-NNNNN.npz`` per batch of images (their relative paths and embeddings;
an unreadable image is stored as a row of NaN so it is not retried). A run that stops half-way keeps
every finished shard; the next run computes only the images no shard holds.
"""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from moodsic_live.perceive.contract import InputSpec
from moodsic_live.perceive.preprocess import to_model_input, whole_image

SHARD = 256   # images per shard: at most this much work is lost by an interruption
BATCH = 16    # images per ONNX call


def read_image(path: Path) -> np.ndarray | None:
    """A BGR uint8 image, or None when the file cannot be decoded."""
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    if data is None or data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return image if image is not None and image.size else None


def embed_batch(session, spec: InputSpec, output: str, images: Sequence[np.ndarray]) -> np.ndarray:
    x = to_model_input(np.stack([whole_image(im, spec) for im in images]), spec)
    return np.asarray(session.run([output], {spec.name: x})[0], np.float32).reshape(len(images), -1)


class EmbeddingCache:
    def __init__(self, cache_dir: Path, backbone_sha256: str):
        self.dir = Path(cache_dir) / f"embeddings-{backbone_sha256[:16]}"

    def load(self) -> dict[str, np.ndarray]:
        known: dict[str, np.ndarray] = {}
        for shard in sorted(self.dir.glob("shard-*.npz")):
            try:
                with np.load(shard) as data:
                    for name, row in zip(data["paths"].tolist(), data["embeddings"]):
                        known[str(name)] = row
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # cut short by a crash: redo it
                shard.unlink(missing_ok=True)
        return known

    def _write(self, names: list[str], rows: np.ndarray) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        index = len(list(self.dir.glob("shard-*.npz")))
        while (self.dir / f"shard-{index:05d}.npz").exists():
            index += 1
        final = self.dir / f"shard-{index:05d}.npz"
        tmp = final.with_name(final.stem + ".tmp.npz")
        np.savez(tmp, paths=np.array(names), embeddings=rows.astype(np.float32))
        os.replace(tmp, final)

    def embeddings(self, root: Path, names: Sequence[str], session, spec: InputSpec, output: str,
                   say: Callable[[str], None] = print) -> np.ndarray:
        """[len(names), D] float32 embeddings of ``root/name``; NaN rows for unreadable images."""
        known = self.load()
        todo = [n for n in dict.fromkeys(names) if n not in known]
        if todo:
            done_before = len(names) - len(todo)
            say(f"embeddings: {done_before} cached, {len(todo)} to compute in {self.dir}")
            start = time.monotonic()
            for s in range(0, len(todo), SHARD):
                part = todo[s:s + SHARD]
                rows: list[np.ndarray | None] = []
                for b in range(0, len(part), BATCH):
                    images = [read_image(root / n) for n in part[b:b + BATCH]]
                    good = [im for im in images if im is not None]
                    out = iter(embed_batch(session, spec, output, good)) if good else iter(())
                    rows += [next(out) if im is not None else None for im in images]
                dim = next((len(r) for r in rows if r is not None), None)
                if dim is None:
                    dim = next((len(v) for v in known.values()), 1)
                matrix = np.stack([r if r is not None else np.full(dim, np.nan, np.float32) for r in rows])
                self._write(part, matrix)
                known.update(zip(part, matrix))
                n = s + len(part)
                rate = n / max(time.monotonic() - start, 1e-6)
                say(f"embeddings {done_before + n}/{len(names)}  {rate:.1f} images/s  "
                    f"ETA {(len(todo) - n) / rate / 60:.1f} min")
        return np.stack([known[n] for n in names]) if names else np.zeros((0, 1), np.float32)
