"""Still images and video files as frames, with clear errors for bad input."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from moodsic_live.errors import InputError
from moodsic_live.frames import Frame

# The most pixels an image file may declare: 2**28 (268 Mpx, 16384 x 16384) takes every camera's photo
# (200 Mpx phones, 150 Mpx medium format) and keeps the decoded frame under 0.8 GB (BGR), while a
# "decompression bomb" (a small file declaring, say, 50000 x 50000) is refused from its header before
# anything is decoded. OpenCV's own limit (OPENCV_IO_MAX_IMAGE_PIXELS, default 2**30) is 4x higher and
# would decode 3 GB (BGR; 8 GB for 16-bit RGBA) first. The same variable raises or lowers ours.
DEFAULT_MAX_IMAGE_PIXELS = 1 << 28

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
        image = cv2.convertScaleAbs(image, alpha=1.0 / 257.0)  # = round(x / 257), with no float copy
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
    out = np.empty(bgr.shape, np.uint8)
    for y in range(0, bgr.shape[0], 1024):  # in bands: the float copies stay small for large images
        a = alpha[y:y + 1024].astype(np.float32)[..., None] / 255.0
        out[y:y + 1024] = (bgr[y:y + 1024].astype(np.float32) * a + 255.0 * (1.0 - a)).round()
    return out


def max_image_pixels() -> int:
    """The most pixels an image may declare: ``OPENCV_IO_MAX_IMAGE_PIXELS`` if set, else 2**28."""
    value = os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", "").strip()
    try:
        return int(value) if value else DEFAULT_MAX_IMAGE_PIXELS
    except ValueError:
        return DEFAULT_MAX_IMAGE_PIXELS


def declared_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) as the header of a PNG, JPEG, WebP, GIF, BMP or TIFF file declares it, read
    without decoding; None for other formats or a header too damaged to say."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
            if chunk == b"VP8L" and data[20] == 0x2F:
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            return None
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"BM":
            if struct.unpack("<I", data[14:18])[0] == 12:
                return struct.unpack("<HH", data[18:22])
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
    except (struct.error, IndexError):
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    e = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(e + "I", data[4:8])[0]
    found = {}
    for k in range(struct.unpack(e + "H", data[ifd:ifd + 2])[0]):
        tag, kind = struct.unpack(e + "HH", data[ifd + 2 + 12 * k:ifd + 6 + 12 * k])
        if tag in (256, 257):
            at = ifd + 10 + 12 * k
            found[tag] = struct.unpack(e + "H", data[at:at + 2])[0] if kind == 3 else \
                struct.unpack(e + "I", data[at:at + 4])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _mpx(pixels: int) -> str:
    if pixels < 100_000:
        return f"{pixels} px"
    return f"{pixels / 1e6:.0f} Mpx" if pixels >= 10_000_000 else f"{pixels / 1e6:.1f} Mpx"


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to BGR uint8, or raise a one-line :class:`InputError`."""
    _check_file(path, "image")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"image {path} cannot be read ({exc.strerror or exc})") from None
    limit = max_image_pixels()
    size = declared_size(memoryview(data))
    if size is not None and size[0] * size[1] > limit:
        w, h = size
        raise InputError(f"image {path} declares {w} x {h} pixels ({_mpx(w * h)}), more than the {_mpx(limit)} "
                         "this app decodes (OPENCV_IO_MAX_IMAGE_PIXELS): shrink it, e.g. to 8000 px on its long side")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:  # OpenCV's own size limits (a format whose header is not read above)
        if "CV_IO_MAX_IMAGE" in str(exc):
            raise InputError(f"image {path} is larger than OpenCV decodes (OPENCV_IO_MAX_IMAGE_PIXELS, "
                             "OPENCV_IO_MAX_IMAGE_WIDTH/HEIGHT): shrink it, e.g. to 8000 px on its long side") from None
        raise InputError(f"image {path} cannot be decoded ({str(exc).strip().splitlines()[-1]})") from None
    if image is None:
        raise InputError(f"{path} is not an image OpenCV can decode (use JPEG, PNG, BMP, TIFF or WebP)")
    return to_bgr8(image, f"image {path}")


def image_frame(path: Path, index: int = 0) -> Frame:
    return Frame(read_image(path), t=0.0, index=index, source=str(path), still=True)


def sample_video(path: Path, fps: float, on_short: Callable[[str], None] | None = None,
                 covers: str = "the results cover what could be read") -> Iterator[Frame]:
    """Frames of a video file at ``fps`` (by their timestamps, not by frame count).

    A video that stops decoding before the end its container declares (a truncated or damaged file)
    gives the frames up to there; then ``on_short`` gets one line that says so (the words of
    ``analyze``: "PATH: the video could only be read to X s of its Y s; " + ``covers``)."""
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
        declared = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        declared = int(declared) if declared and np.isfinite(declared) and declared > 0 else 0
        step = 1.0 / fps
        next_t = 0.0
        last_t = -1.0
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
            last_t = t
            out_index += 1
            next_t += step
            while next_t <= t:
                next_t += step
        if i == 0:
            raise InputError(f"{path} has no readable video frames")
        # as analyze reckons it (engine/soundtrack.py): read up to one native frame past the last sample
        read_to, duration = last_t + 1.0 / native, declared / native
        if on_short is not None and declared and read_to < duration - max(1.0 / fps, 0.5):
            on_short(f"{path}: the video could only be read to {read_to:.1f} s of its {duration:.1f} s; {covers}")
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
