"""Frames of any size: huge and oddly shaped images, decompression bombs and half-readable videos
reach perceive safely (issue 17). Real photos, the real detector and experts, the real CLI."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DEMO, run_cli
from moodsic_live.capture.stills import declared_size, read_image, to_bgr8
from moodsic_live.errors import InputError
from moodsic_live.frames import Frame
from moodsic_live.perceive.face_detector import (FaceDetector, augmentations, crop_source, crop_transform,
                                                 detection_tiles, map_box, merge_faces)
from moodsic_live.perceive.estimate import FaceBox
from moodsic_live.perceive.preprocess import WARP_MAX_SIDE, fit_within

SIDE = 600  # the photo's size inside the panoramas


@pytest.fixture(scope="module")
def astronaut600() -> np.ndarray:
    """The astronaut photo (512 x 512 JPEG the other tests use) at 600 x 600."""
    return cv2.resize(read_image(DEMO / "astronaut.jpg"), (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def detector():
    d = FaceDetector("short")
    yield d
    d.close()


def panorama(photo: np.ndarray, length: int, at: int, vertical: bool = False) -> np.ndarray:
    """``photo`` pasted at ``at`` along a ``length``-long grey strip as tall (wide) as the photo."""
    h, w = photo.shape[:2]
    if vertical:
        canvas = np.full((length, w, 3), 110, np.uint8)
        canvas[at:at + h] = photo
    else:
        canvas = np.full((h, length, 3), 110, np.uint8)
        canvas[:, at:at + w] = photo
    return canvas


def near(a: FaceBox, b: FaceBox, tol: float) -> bool:
    """Boxes within ``tol`` of the face's size at every edge."""
    edges = lambda f: np.array([f.x, f.y, f.x + f.w, f.y + f.h], float)  # noqa: E731
    return bool(np.all(np.abs(edges(a) - edges(b)) <= tol * max(b.w, b.h)))


# ------------------------------------------------------------------ the CLI on a 40000 x 600 photo


def test_a_40000_px_panorama_in_the_middle_of_a_batch(tmp_path, astronaut600):
    at = 23457  # odd, so the face does not sit on a tile's edge by luck
    huge = tmp_path / "panorama.png"
    assert cv2.imwrite(str(huge), panorama(astronaut600, 40000, at))
    first, last = DEMO / "astronaut.jpg", DEMO / "coffee.jpg"
    t0 = time.monotonic()
    r = run_cli("perceive", "--json", str(first), str(huge), str(last))
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-2000:]  # before: rc 134 (a C++ abort in MediaPipe), the rest lost
    assert "Traceback" not in r.stderr and "SHRT_MAX" not in r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["path"] for row in rows] == [str(first), str(huge), str(last)]
    assert all("error" not in row for row in rows)
    reference, found = rows[0]["face"], rows[1]["face"]
    assert rows[1]["faces"] == 1 and found is not None
    # where the face was put: the 512 px photo's face, scaled to 600 px, shifted to `at`
    s = SIDE / 512
    x, y, w, h = reference["box"]
    expected = FaceBox(round(at + x * s), round(y * s), round(w * s), round(h * s), 1.0)
    assert near(FaceBox(*found["box"], 1.0), expected, 0.15), (found["box"], expected)
    assert max(found["probabilities"], key=found["probabilities"].get) == "happiness"
    assert abs(found["valence"] - reference["valence"]) < 0.15
    assert took < 60, took


def test_a_decompression_bomb_in_a_batch_is_one_error_line_and_the_rest_is_read(tmp_path):
    bomb = _png_declaring(tmp_path / "bomb.png", 50000, 50000)
    first, last = DEMO / "astronaut.jpg", DEMO / "rocket.jpg"
    r = run_cli("perceive", "--json", str(first), str(bomb), str(last))
    assert r.returncode == 1  # documented: 1 when any input failed
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["path"] for row in rows] == [str(first), str(bomb), str(last)]
    assert "error" not in rows[0] and "error" not in rows[2] and rows[0]["faces"] == 1
    error = rows[1]["error"]
    assert "bomb.png" in error and "50000 x 50000" in error and "268 Mpx" in error and "\n" not in error
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------ detection on frames of any size


def test_map_box_scales_and_shifts_box_and_keypoints():
    # a tile that starts at (1000, 50), shrunk to a quarter along x and a half along y
    box = map_box(10.0, 20.0, 30.0, 60.0, 0.9, ((12.0, 30.0), (28.0, 30.0)), sx=0.25, sy=0.5, dx=1000, dy=50)
    assert (box.x, box.y, box.w, box.h, box.score) == (1040, 90, 80, 80, 0.9)
    assert box.keypoints == ((1048.0, 110.0), (1112.0, 110.0))
    assert map_box(1.4, 2.6, 11.4, 12.6, 0.5, ()) == FaceBox(1, 3, 10, 10, 0.5, ())


def test_detection_tiles_cover_the_frame_overlapping_by_half():
    assert detection_tiles(640, 480) == [(0, 0, 640, 480)]
    assert detection_tiles(1800, 600) == [(0, 0, 1800, 600)]  # 3:1 is still one look
    tiles = detection_tiles(40000, 600)
    assert tiles[0][0] == 0 and tiles[-1][2] == 40000 and len(tiles) <= 160
    assert all(x1 - x0 == 600 and (y0, y1) == (0, 600) for x0, y0, x1, y1 in tiles)
    assert all(b[0] - a[0] <= 300 for a, b in zip(tiles, tiles[1:]))  # every face up to 300 px lies whole in one
    tall = detection_tiles(100, 100000)
    assert len(tall) <= 160 and tall[-1][3] == 100000 and all(x0 == 0 and x1 == 100 for x0, _, x1, _ in tall)
    assert all(b[1] - a[1] <= (a[3] - a[1]) / 2 + 1 for a, b in zip(tall, tall[1:]))  # +1: whole pixels


def test_merge_keeps_one_box_per_face_preferring_an_uncut_one():
    whole = FaceBox(100, 0, 100, 100, 0.80)
    cut = FaceBox(150, 0, 50, 100, 0.95)  # the same face's right half, at a tile's edge
    other = FaceBox(400, 0, 100, 100, 0.70)
    assert merge_faces([(True, cut), (False, whole), (False, other)]) == [whole, other]
    assert merge_faces([(False, cut), (False, other)]) == [cut, other]


@pytest.mark.parametrize("vertical", [False, True])
def test_a_panorama_face_is_found_where_it_was_put(detector, astronaut600, vertical):
    at = 2345
    frame = panorama(astronaut600, 5000, at, vertical)
    reference = detector.detect(cv2.cvtColor(astronaut600, cv2.COLOR_BGR2RGB))
    assert len(reference) == 1
    ref = reference[0]
    faces = detector.detect_bgr(frame)
    assert len(faces) == 1
    expected = FaceBox(ref.x + (0 if vertical else at), ref.y + (at if vertical else 0), ref.w, ref.h, 1.0)
    assert near(faces[0], expected, 0.1), (faces[0], expected)
    # the whole strip at once (what MediaPipe saw before) shrinks the face to a few pixels: not found
    assert detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)) == []


def test_a_frame_too_large_for_mediapipe_is_shrunk_and_boxes_come_back_in_its_pixels(detector):
    photo = read_image(DEMO / "astronaut.jpg")  # 512 x 512
    reference = detector.detect(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB))[0]
    side = 33000  # over SHRT_MAX: MediaPipe aborted the process on this; a narrow frame keeps it at ~60 MB
    big = cv2.resize(photo, (side // 16, side // 16))  # 2062 px
    frame = np.full((2062, side, 3), 110, np.uint8)
    frame[:, 10000:10000 + 2062] = big
    faces = detector.detect_bgr(frame)
    s = 2062 / 512
    expected = FaceBox(round(10000 + reference.x * s), round(reference.y * s), round(reference.w * s),
                       round(reference.h * s), 1.0)
    assert len(faces) == 1 and near(faces[0], expected, 0.12), (faces, expected)
    # a 4800 px square frame is shrunk to 1024 for detection; its box comes back scaled up again
    square = cv2.resize(photo, (4800, 4800), interpolation=cv2.INTER_LINEAR)
    s = 4800 / 512
    faces = detector.detect_bgr(square)
    expected = FaceBox(round(reference.x * s), round(reference.y * s), round(reference.w * s),
                       round(reference.h * s), 1.0)
    assert len(faces) == 1 and near(faces[0], expected, 0.1), (faces, expected)


def test_an_ordinary_frame_is_detected_exactly_as_before(detector):
    photo = read_image(DEMO / "astronaut.jpg")
    frame = cv2.resize(photo, (640, 480))
    assert detector.detect_bgr(frame) == detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    same, sx, sy = fit_within(frame, 4096)
    assert same is frame and (sx, sy) == (1.0, 1.0)  # no copy under the limit


# ------------------------------------------------------------------ the face crop and the experts


def _maps(face: FaceBox, size=(64, 64), n=8):
    base = np.vstack([crop_transform(face, size, 0.2), [0.0, 0.0, 1.0]])
    return [aug @ base for aug in augmentations(n, size)]


def _warp(image, maps, size=(64, 64)):
    return [cv2.warpAffine(image, m[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for m in maps]


@pytest.mark.parametrize("where", ["middle", "corner"])
def test_crops_from_the_face_region_equal_crops_from_the_whole_frame(where):
    photo = read_image(DEMO / "astronaut.jpg")
    kps = ((200.0, 120.0), (245.0, 128.0))  # eyes a little tilted: the crop is rotated
    face = FaceBox(177, 83, 96, 96, 0.9, kps) if where == "middle" else \
        FaceBox(0, 0, 80, 90, 0.9, ((20.0, 30.0), (60.0, 34.0)))  # the crop runs past the frame's edge
    maps = _maps(face)
    part, moved = crop_source(photo, maps, (64, 64))
    assert part.base is photo or part.base is photo.base  # a view, not a copy
    assert part.shape[0] < 300 and part.shape[1] < 300
    for a, b in zip(_warp(photo, maps), _warp(part, moved)):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # a part larger than max_side is shrunk; the crops still show the same face
    small, moved = crop_source(photo, maps, (64, 64), max_side=60)
    assert max(small.shape[:2]) <= 60
    for a, b in zip(_warp(photo, maps), _warp(small, moved)):
        assert np.abs(a.astype(float) - b.astype(float)).mean() < 12


def test_perceive_reads_a_40000_px_tall_frame_like_the_photo_in_it(perceiver, astronaut600):
    frame = panorama(astronaut600, 40000, 31000, vertical=True)
    assert max(frame.shape) > WARP_MAX_SIDE
    alone = perceiver.perceive(Frame(astronaut600, 0.0, still=True))
    p = perceiver.perceive(Frame(frame, 0.0, still=True))
    assert len(p.faces) == 1 and p.face is not None
    b, r = p.face.box, alone.face.box
    assert near(b, FaceBox(r.x, r.y + 31000, r.w, r.h, 1.0), 0.1), (b, r)
    assert max(p.face.probabilities, key=p.face.probabilities.get) == "happiness"
    assert abs(p.face.estimate.valence - alone.face.estimate.valence) < 0.1
    assert p.scene is not None and np.isfinite(p.scene.valence) and np.isfinite(p.fused.valence)


# ------------------------------------------------------------------ the loaders


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header (with a valid CRC) declares ``width`` x ``height``: a decompression bomb's
    header without its payload."""
    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(buf.tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_declared_size_reads_the_headers_of_real_files():
    from PIL import Image

    image = read_image(DEMO / "coffee.jpg")[:123, :457]
    for ext, params in [(".png", []), (".jpg", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
                        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".bmp", []), (".tiff", [])]:
        ok, buf = cv2.imencode(ext, image, params)
        assert declared_size(memoryview(buf)) == (457, 123), ext
    rgb = np.ascontiguousarray(image[..., ::-1])
    for fmt, kw in [("GIF", {}), ("TIFF", {"compression": "tiff_deflate"}), ("WEBP", {"lossless": True}),
                    ("JPEG", {"exif": b"Exif\0\0" + bytes(60000), "progressive": True})]:
        out = io.BytesIO()
        Image.fromarray(rgb).save(out, fmt, **kw)
        assert declared_size(out.getvalue()) == (457, 123), fmt
    out = io.BytesIO()
    Image.fromarray(np.dstack([rgb, rgb[..., 0]])).save(out, "WEBP")  # alpha: the extended (VP8X) header
    assert declared_size(out.getvalue()) == (457, 123)
    assert declared_size(b"not an image") is None and declared_size(b"\x89PNG\r\n\x1a\n") is None


def test_bombs_are_refused_from_their_header_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENCV_IO_MAX_IMAGE_PIXELS", raising=False)
    for w, h in [(50000, 50000), (20000, 20000)]:  # 2.5 Gpx (over OpenCV's own limit), 400 Mpx (under it)
        path = _png_declaring(tmp_path / f"bomb{w}.png", w, h)
        with pytest.raises(InputError) as info:
            read_image(path)
        text = str(info.value)
        assert str(path) in text and f"{w} x {h}" in text and "268 Mpx" in text and "\n" not in text
    # a format whose header is not read here: OpenCV's own limit, as one line too
    ppm = tmp_path / "bomb.ppm"
    ppm.write_bytes(b"P6\n50000 50000\n255\n" + bytes(1000))
    with pytest.raises(InputError) as info:
        read_image(ppm)
    assert "bomb.ppm" in str(info.value) and "OPENCV_IO_MAX_IMAGE_PIXELS" in str(info.value)
    # the same variable OpenCV reads sets the limit
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", "200000")
    with pytest.raises(InputError) as info:
        read_image(DEMO / "astronaut.jpg")
    assert "512 x 512" in str(info.value) and "the 0.2 Mpx this app decodes" in str(info.value)


def test_a_40000_px_png_loads(tmp_path, astronaut600):
    path = tmp_path / "wide.png"
    image = panorama(astronaut600, 40000, 100)
    assert cv2.imwrite(str(path), image)
    assert np.array_equal(read_image(path), image)


def test_16_bit_images_convert_exactly_without_a_float_copy():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    rgba = np.dstack([values, values, values, np.full_like(values, 65535)])
    out = to_bgr8(rgba)
    assert out.dtype == np.uint8 and np.array_equal(out[..., 0], (values / 257.0).round().astype(np.uint8))
    half = to_bgr8(np.dstack([values, values, values, np.full_like(values, 32896)]))  # alpha 128/255 over white
    expected = (out[..., 0].astype(np.float32) * (128 / 255) + 255 * (1 - 128 / 255)).round()
    assert np.abs(half[..., 0].astype(int) - expected.astype(int)).max() <= 1


# ------------------------------------------------------------------ a half-readable video


def _video_from_photos(path: Path, frames: int = 100, fps: float = 10.0) -> Path:
    photos = [cv2.resize(read_image(DEMO / f"{n}.jpg"), (320, 240)) for n in ("astronaut", "coffee", "rocket")]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.roll(photos[(i * 3) // frames], 2 * i, axis=1))
    writer.release()
    return path


def test_perceive_says_where_a_truncated_video_stops_and_prints_what_it_read(tmp_path):
    whole = _video_from_photos(tmp_path / "whole.avi")  # 10 s
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    photo = DEMO / "astronaut.jpg"
    r = run_cli("perceive", "--json", "--fps", "2", str(cut), str(photo))
    assert r.returncode == 0, r.stderr[-2000:]  # as analyze: what could be read is a result, not a failure
    rows = [json.loads(line) for line in r.stdout.splitlines()]  # stdout stays one JSON object per line
    video = [row for row in rows if row["path"] == str(cut)]
    assert rows[-1]["path"] == str(photo) and rows[-1]["faces"] == 1
    assert 4 <= len(video) <= 16 and video[0]["t"] == 0.0 and all("error" not in row for row in video)
    assert video[0]["faces"] == 1  # the astronaut opens the clip
    said = [line for line in r.stderr.splitlines() if "could only be read" in line]
    assert len(said) == 1, r.stderr
    line = said[0]
    assert str(cut) in line and "of its 10.0 s" in line and "the results cover what could be read" in line
    read_to = float(line.split("read to ")[1].split(" s")[0])
    assert 2.0 < read_to < 8.0 and abs(read_to - (video[-1]["t"] + 0.1)) < 1e-6
    # the whole video: every sample, and nothing said
    r = run_cli("perceive", "--json", "--fps", "2", str(whole))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 20 and "could only be read" not in r.stderr
    # the human-readable form says the same line
    r = run_cli("perceive", "--fps", "2", str(cut))
    assert r.returncode == 0 and line in r.stderr


# ------------------------------------------------------------------ the live source


def test_a_clip_with_huge_frames_plays_shrunk_to_4096(tmp_path):
    from moodsic_live.capture.source import MAX_FRAME_SIDE, CaptureThread, parse_source

    photo = cv2.resize(read_image(DEMO / "astronaut.jpg"), (600, 600))
    path = tmp_path / "wide.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (6000, 600))
    assert writer.isOpened()
    for i in range(5):
        writer.write(panorama(photo, 6000, 1000 + 100 * i))
    writer.release()
    frames: list[Frame] = []
    cap = CaptureThread(parse_source(str(path)), frames.append)
    cap.start()
    assert cap.ended.wait(5.0)
    assert len(frames) == 5 and MAX_FRAME_SIDE == 4096
    assert all(f.image.shape == (410, 4096, 3) for f in frames)  # 6000 x 600 at 4096 / 6000
    # the photo moved 100 px a frame: 68.3 px at the new scale (its left edge: the first column far from grey)
    col = lambda f: int(np.argmax(np.abs(f.image.astype(int) - 110).mean(axis=(0, 2)) > 25))  # noqa: E731
    assert [col(f) for f in frames] == pytest.approx([1000 * 4096 / 6000 + 68.3 * i for i in range(5)], abs=3)
