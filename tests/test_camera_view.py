"""The live camera view (moodsic_live.gui.camera_view) on a real photo: conversion, face blurring, geometry, and
what a grab of the widget really shows. Runs headless (Qt's offscreen platform)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QRectF  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

from moodsic_live.gui.camera_view import CameraView, FaceOverlay, blur_regions, to_qimage  # noqa: E402

FACE = (172, 62, 106, 122)  # the astronaut's face in the 512x512 photo: forehead/hair line to chin, ear to ear
OTHER = (400, 20, 50, 60)  # a second, non-primary "face" (the rocket's nose)
ACCENT_RGB = np.array([0x4F, 0xC3, 0xF7])


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., ::-1])  # RGB -> BGR, as a camera frame


@pytest.fixture
def view(qtbot) -> CameraView:
    widget = CameraView()
    qtbot.addWidget(widget)
    widget.resize(800, 600)
    return widget


def qimage_rgb(image: QImage) -> np.ndarray:
    """A QImage as an HxWx3 uint8 RGB array (a copy)."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    flat = np.frombuffer(image.constBits(), np.uint8, count=h * stride)
    return flat.reshape(h, stride)[:, : w * 3].reshape(h, w, 3).copy()


def grab_rgb(widget: CameraView) -> np.ndarray:
    pixels = qimage_rgb(widget.grab().toImage())
    assert pixels.shape[:2] == (widget.height(), widget.width())  # offscreen: device pixel ratio 1
    return pixels


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: high for fine detail, low for blur."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def crop(image: np.ndarray, rect: QRectF, inset: float = 0.0) -> np.ndarray:
    """The pixels of a widget-space rect, shrunk by ``inset`` of its size per side (away from drawn edges)."""
    dx, dy = rect.width() * inset, rect.height() * inset
    x0, y0 = int(np.ceil(rect.left() + dx)), int(np.ceil(rect.top() + dy))
    x1, y1 = int(rect.right() - dx), int(rect.bottom() - dy)
    return image[y0:y1, x0:x1]


# ---------------------------------------------------------------- to_qimage


def test_to_qimage_round_trips_every_pixel(astronaut):
    image = to_qimage(astronaut)
    assert (image.width(), image.height()) == (512, 512)
    for x, y in [(0, 0), (220, 120), (511, 300), (37, 511)]:
        colour = image.pixelColor(x, y)
        b, g, r = astronaut[y, x]
        assert (colour.red(), colour.green(), colour.blue()) == (r, g, b)
    np.testing.assert_array_equal(qimage_rgb(image), astronaut[..., ::-1])


def test_to_qimage_takes_non_contiguous_frames_and_owns_its_pixels(astronaut):
    strided = astronaut[::2, 1::3]  # neither C-contiguous nor a whole buffer
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(qimage_rgb(to_qimage(strided)), strided[..., ::-1])

    source = astronaut.copy()
    image = to_qimage(source)
    source[:] = 0  # the caller recycles its buffer ...
    del source
    np.testing.assert_array_equal(qimage_rgb(image), astronaut[..., ::-1])  # ... the image keeps its own copy


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4, 4, 3), np.float32)])
def test_to_qimage_rejects_what_is_not_a_bgr_frame(bad):
    with pytest.raises(ValueError):
        to_qimage(bad)


# ---------------------------------------------------------------- blur_regions


def padded(box, pad, shape):
    x, y, w, h = box
    return (max(0, int(round(x - pad * w))), max(0, int(round(y - pad * h))),
            min(shape[1], int(round(x + w + pad * w))), min(shape[0], int(round(y + h + pad * h))))


def test_blur_regions_destroys_the_face_and_nothing_else(astronaut):
    before = astronaut.copy()
    out = blur_regions(astronaut, [FACE])
    np.testing.assert_array_equal(astronaut, before)  # pure: the input is untouched
    assert out.shape == astronaut.shape and out.dtype == np.uint8 and out is not astronaut

    x0, y0, x1, y1 = padded(FACE, 0.35, astronaut.shape)
    outside = np.ones(astronaut.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], astronaut[outside])

    x, y, w, h = FACE
    face_in, face_out = astronaut[y:y + h, x:x + w], out[y:y + h, x:x + w]
    diff = np.abs(face_in.astype(int) - face_out.astype(int)).mean()
    assert diff > 15, f"face barely changed: mean abs difference {diff:.1f}"
    drop = 1 - sharpness(face_out) / sharpness(face_in)
    assert drop > 0.8, f"Laplacian variance fell only {drop:.0%}"
    # pixelated, then blurred: no hard cell edges are left (neighbours differ by a few levels, not tens)
    steps = np.abs(np.diff(face_out.astype(int), axis=1)).max(), np.abs(np.diff(face_out.astype(int), axis=0)).max()
    assert max(steps) <= 20, f"hard edges survive the blur: neighbour steps {steps}"
    # the padding is blurred too: the hair above the box and the collar below it lose their detail
    assert sharpness(out[y0:y, x0:x1]) < 0.2 * sharpness(astronaut[y0:y, x0:x1])
    assert sharpness(out[y + h:y1, x0:x1]) < 0.2 * sharpness(astronaut[y + h:y1, x0:x1])


def test_blur_regions_clips_boxes_at_the_frame_edge_and_skips_empty_ones(astronaut):
    out = blur_regions(astronaut, [(-30, -30, 80, 80), (600, 600, 40, 40), (10, 10, 0, 50)], pad=0.0)
    assert out.shape == astronaut.shape
    np.testing.assert_array_equal(out[50:, :], astronaut[50:, :])
    np.testing.assert_array_equal(out[:, 50:], astronaut[:, 50:])
    assert not np.array_equal(out[:50, :50], astronaut[:50, :50])
    np.testing.assert_array_equal(blur_regions(astronaut, []), astronaut)


# ---------------------------------------------------------------- geometry


def test_frame_rect_letterboxes_with_the_aspect_kept(view):
    assert view.frame_rect().isEmpty()  # nothing to place yet
    view.resize(800, 400)
    view.set_frame(np.zeros((480, 640, 3), np.uint8))
    rect = view.frame_rect()
    assert rect.height() == pytest.approx(400)
    assert rect.width() / rect.height() == pytest.approx(4 / 3)
    assert rect.center().x() == pytest.approx(400) and rect.center().y() == pytest.approx(200)
    assert rect.left() == pytest.approx((800 - 400 * 4 / 3) / 2)

    view.resize(400, 800)  # now the bars are above and below
    rect = view.frame_rect()
    assert (rect.left(), rect.width()) == (pytest.approx(0), pytest.approx(400))
    assert rect.height() == pytest.approx(300) and rect.top() == pytest.approx(250)


def test_map_box_scales_and_offsets_frame_pixels(view):
    view.resize(800, 400)
    view.set_frame(np.zeros((480, 640, 3), np.uint8))
    scale, left = 400 / 480, (800 - 400 * 4 / 3) / 2
    rect = view.map_box((64, 48, 128, 96))
    assert rect.left() == pytest.approx(left + 64 * scale)
    assert rect.top() == pytest.approx(48 * scale)
    assert rect.width() == pytest.approx(128 * scale) and rect.height() == pytest.approx(96 * scale)
    assert view.map_box((0, 0, 640, 480)) == view.frame_rect()


# ---------------------------------------------------------------- what is drawn


def near(pixel: np.ndarray, colour: np.ndarray, tolerance: int = 40) -> bool:
    return int(np.abs(pixel.astype(int) - colour).max()) <= tolerance


def test_primary_face_box_is_drawn_in_the_accent_colour(view, astronaut):
    view.set_frame(astronaut)
    face, other = view.map_box(FACE), view.map_box(OTHER)
    mid_y = int(face.center().y())
    assert not near(grab_rgb(view)[mid_y, round(face.left())], ACCENT_RGB)

    view.set_faces([FaceOverlay(FACE, True, "happiness 71% · V +0.42 A +0.10", 0.93),
                    FaceOverlay(OTHER, False, "neutral", 0.41)], blur=False)
    pixels = grab_rgb(view)
    for x in (round(face.left()), round(face.right())):
        assert near(pixels[mid_y, x], ACCENT_RGB), pixels[mid_y, x]
    other_edge = pixels[round(other.bottom()), int(other.center().x())]  # (its top-left lies under a label)
    assert not near(other_edge, ACCENT_RGB) and other_edge.min() > 150  # thin light grey, not the accent
    # the label sits above the box on a dark panel, with accent-coloured text
    label = pixels[max(0, int(face.top()) - 30):int(face.top()) - 4, int(face.left()):int(face.right())]
    assert np.median(label) < 80
    assert any(near(p, ACCENT_RGB, 60) for p in label.reshape(-1, 3))


def test_blur_mode_blurs_the_face_on_screen_and_draws_no_labels(view, astronaut):
    faces = [FaceOverlay(FACE, True, "happiness 71%", 0.93)]
    view.set_faces(faces, blur=False)
    view.set_frame(astronaut)
    sharp = grab_rgb(view)

    view.set_faces(faces, blur=True)  # the frame already on screen is blurred at once, no new frame needed
    blurred_now = grab_rgb(view)
    view.set_frame(astronaut)
    blurred = grab_rgb(view)

    inner = view.map_box(FACE)
    assert sharpness(crop(blurred, inner, 0.15)) < 0.2 * sharpness(crop(sharp, inner, 0.15))
    np.testing.assert_array_equal(blurred_now, blurred)
    # no box and no label: not one accent pixel anywhere
    assert not any(near(p, ACCENT_RGB, 30) for p in blurred.reshape(-1, 3)[::7])
    # the rest of the picture is untouched (the letterbox bars and the lower body)
    np.testing.assert_array_equal(blurred[400:500, 150:650], sharp[400:500, 150:650])
    # "faces blurred" caption top-right: light text on a dark panel where the plain frame had none
    corner = (slice(0, 50), slice(620, 800))
    assert not np.array_equal(blurred[corner], sharp[corner])

    view.set_faces(faces, blur=False)  # back to plain view: the shown frame is sharp again
    assert sharpness(crop(grab_rgb(view), inner, 0.15)) == pytest.approx(sharpness(crop(sharp, inner, 0.15)))


def test_frames_shown_counts_frames_only(view, astronaut):
    assert view.frames_shown == 0
    for _ in range(5):
        view.set_frame(astronaut)
    view.set_faces([FaceOverlay(FACE, True, "", 0.9)], blur=True)
    view.set_overlay(["detector 0.93"])
    assert view.frames_shown == 5
    with pytest.raises(ValueError):
        view.set_frame(np.zeros((10, 10), np.uint8))
    assert view.frames_shown == 5


def test_message_shows_over_the_dimmed_frame_or_black_and_clears(view, astronaut):
    view.set_message("camera 0 cannot be opened (busy or missing)")  # no frame yet: on black
    on_black = grab_rgb(view)
    assert on_black[300, 400].max() < 60 and on_black[5, 5].max() == 0
    assert (on_black[250:350, 100:700].max(axis=2) > 200).sum() > 200  # white text in the middle

    view.set_message("")
    view.set_frame(astronaut)
    plain = grab_rgb(view)
    view.set_message("camera 0 cannot be opened (busy or missing): close the other app or choose another source")
    view.set_frame(astronaut)  # a new frame does not clear the message
    with_message = grab_rgb(view)
    assert not np.array_equal(plain, with_message)
    bar = (slice(560, 600), slice(150, 650))  # far from the message box: the frame, dimmed
    assert with_message[bar].mean() < 0.6 * plain[bar].mean()

    view.set_message("")
    np.testing.assert_array_equal(grab_rgb(view), plain)


def test_privacy_pill_and_overlay_panel(view, astronaut):
    view.set_frame(astronaut)
    plain = grab_rgb(view)
    view.set_privacy(True)
    pill = grab_rgb(view)
    top_left = pill[:60, :220].reshape(-1, 3).astype(int)
    red = (top_left[:, 0] > 180) & (top_left[:, 1] < 90) & (top_left[:, 2] < 90)
    assert red.sum() > 20  # the red dot
    assert (top_left.min(axis=1) > 220).sum() > 30  # white "CAMERA ON" text
    view.set_privacy(False)
    np.testing.assert_array_equal(grab_rgb(view), plain)

    view.set_overlay(["detector 0.93", "dominant: face expert"])
    panel = grab_rgb(view)
    bottom_left = (slice(500, 600), slice(0, 300))
    assert not np.array_equal(panel[bottom_left], plain[bottom_left])
    np.testing.assert_array_equal(panel[:300], plain[:300])  # nothing drawn elsewhere
    view.set_overlay([])
    np.testing.assert_array_equal(grab_rgb(view), plain)
