"""Still images and video files as frames, with clear errors for bad input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from moodsic_live.errors import InputError
from moodsic_live.frames import Frame

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{what} {path} does not exist")
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder, not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{what} {path} cannot be read (permission denied)")
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path} is empty (0 bytes)")


def to_bgr8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Any decoded image (grey, grey+alpha, BGR, BGRA, 8 or 16 bit) as H x W x 3 uint8 BGR.

    Transparent pixels are composited over white, as image viewers show them.
    """
    if image is None or image.size == 0 or min(image.shape[:2]) == 0:
        raise InputError(f"{name} has no pixels (zero width or height)")
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"{name} has pixel type {image.dtype}, which is not supported")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if channels == 2:  # grey + alpha
        return _over_white(cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR), image[:, :, 1])
    if channels == 3:
        return image
    if channels == 4:
        return _over_white(image[:, :, :3], image[:, :, 3])
    raise InputError(f"{name} has {channels} channels; expected grey, colour or colour + alpha")


def _over_white(bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32)[..., None] / 255.0
    return (bgr.astype(np.float32) * a + 255.0 * (1.0 - a)).round().astype(np.uint8)


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to BGR uint8, or raise a one-line :class:`InputError`."""
    _check_file(path, "image")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"image {path} cannot be read ({exc.strerror or exc})") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise InputError(f"{path} is not an image OpenCV can decode (use JPEG, PNG, BMP, TIFF or WebP)")
    return to_bgr8(image, f"image {path}")


def image_frame(path: Path, index: int = 0) -> Frame:
    return Frame(read_image(path), t=0.0, index=index, source=str(path), still=True)


def sample_video(path: Path, fps: float) -> Iterator[Frame]:
    """Frames of a video file at ``fps`` (by their timestamps, not by frame count)."""
    if fps <= 0:
        raise InputError(f"--fps must be positive, got {fps:g}")
    _check_file(path, "video")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(f"{path} is not a video OpenCV can open (try MP4/H.264, MKV or AVI)")
        native = cap.get(cv2.CAP_PROP_FPS)
        if not native or not np.isfinite(native) or native <= 0:
            native = 30.0
        step = 1.0 / fps
        next_t = 0.0
        i = 0
        out_index = 0
        while cap.grab():
            t = i / native
            i += 1
            if t + 1e-6 < next_t:
                continue
            ok, image = cap.retrieve()
            if not ok or image is None:
                break
            yield Frame(to_bgr8(image, f"video {path}"), t=t, index=out_index, source=str(path))
            out_index += 1
            next_t += step
            while next_t <= t:
                next_t += step
        if i == 0:
            raise InputError(f"{path} has no readable video frames")
    finally:
        cap.release()


_END = object()


def read_ahead(frames: Iterator[Frame], depth: int = 4) -> Iterator[Frame]:
    """``frames``, decoded on a thread of their own up to ``depth`` ahead, so an offline pass decodes
    the next frames while the current one is perceived (OpenCV and onnxruntime release the GIL: on
    two cores this nearly hides the decoding). Errors of the reader are raised here, in order; a
    consumer that stops early stops the reader too."""
    import queue
    import threading

    out: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def run() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
            return
        finally:
            close = getattr(frames, "close", None)
            if close is not None and stop.is_set():
                close()
        put(_END)

    thread = threading.Thread(target=run, name="video-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=2.0)
