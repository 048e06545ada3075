"""The live camera view: one passive widget that draws the newest frame and what the engine said about it.

Design
------
* The widget never blocks and never computes perception: the window hands it frames (``set_frame``, 25-30 Hz),
  detections (``set_faces``, 5-10 Hz), status lines, the privacy state and a message; ``paintEvent`` only draws.
  Like every QWidget it is called from the GUI thread only (worker threads reach it through queued signals).
* Conversion to a ``QImage`` happens in ``set_frame``, not in ``paintEvent``: Qt may repaint far more often than
  frames arrive (resizes, overlapping windows, overlay changes), so each frame is converted exactly once, and the
  paint path stays a plain scaled ``drawImage``. Face blurring also happens there, *before* conversion, so a
  picture with recognisable faces never reaches the painter while blurring is on.
* ``to_qimage`` copies the pixels into memory owned by the ``QImage`` (``QImage.copy()``): a ``QImage`` built on
  a numpy buffer does not keep that buffer alive, and the caller may reuse or free it (camera drivers recycle
  buffers). One 640x480 copy costs a fraction of a millisecond, far less than a dangling pointer.

Privacy rules
-------------
* Frames never leave the process and are never written to disk by this widget; it keeps only the newest frame
  (for re-drawing) and its converted image, both replaced by the next frame.
* While ``set_privacy(camera_on=True)`` is in force a red "CAMERA ON" pill is drawn at the top-left.
* In blur mode ("atmosphere only") every face box, grown by a margin, is pixelated and blurred on every frame,
  including the one already on screen when the mode is switched on, and no per-face labels are drawn; only a
  small "faces blurred" caption says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

Box = tuple[int, int, int, int]

ACCENT = QColor("#4fc3f7")  # the primary face
OTHER = QColor(230, 230, 230, 210)  # every other face
PANEL = QColor(0, 0, 0, 170)  # translucent dark background behind text
PRIVACY_RED = QColor("#e53935")
TEXT = QColor(255, 255, 255)
_CELL = 8  # working pixels per pixelation cell in blur_regions


@dataclass(frozen=True)
class FaceOverlay:
    """One detected face as the view draws it."""

    box: Box  # x, y, w, h in frame pixels
    primary: bool  # the face the engine listens to
    label: str  # e.g. "happiness 71% · V +0.42 A +0.10"; may be ""
    score: float  # detector confidence, 0..1


def _check_frame(image_bgr: np.ndarray) -> None:
    if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 BGR frame, got {getattr(image_bgr, 'shape', type(image_bgr))}")
    if image_bgr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame, got {image_bgr.dtype}")


def to_qimage(image_bgr: np.ndarray) -> QImage:
    """An HxWx3 uint8 BGR frame as a ``QImage`` that owns its pixels (a copy; see the module docstring)."""
    _check_frame(image_bgr)
    frame = np.ascontiguousarray(image_bgr)
    height, width = frame.shape[:2]
    # Built on the numpy buffer, then detached by copy(): the result references no numpy memory.
    return QImage(frame.data, width, height, frame.strides[0], QImage.Format.Format_BGR888).copy()


def blur_regions(image_bgr: np.ndarray, boxes: Sequence[Box], pad: float = 0.35) -> np.ndarray:
    """A copy of the frame with each box, grown by ``pad`` of its size per side and clipped to the frame, made
    unrecognisable: pixelated to about 8 cells across (nearest-neighbour upscale), then Gaussian-blurred with a
    sigma of half a cell, so the cell edges melt and no fine detail survives.

    Pure: the input is never modified. Boxes that fall outside the frame are ignored."""
    _check_frame(image_bgr)
    out = np.array(image_bgr, dtype=np.uint8, order="C", copy=True)
    frame_h, frame_w = out.shape[:2]
    for x, y, w, h in boxes:
        if w <= 0 or h <= 0:
            continue
        x0 = max(0, int(round(x - pad * w)))
        y0 = max(0, int(round(y - pad * h)))
        x1 = min(frame_w, int(round(x + w + pad * w)))
        y1 = min(frame_h, int(round(y + h + pad * h)))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        region = out[y0:y1, x0:x1]
        rw, rh = x1 - x0, y1 - y0
        cells_x = min(8, rw)
        cells_y = max(1, min(rh, int(round(cells_x * rh / rw))))
        small = cv2.resize(region, (cells_x, cells_y), interpolation=cv2.INTER_AREA)
        # Upscale and blur at a fixed working size of _CELL px per cell, then stretch (linear) to the region:
        # the same look as blurring at full size, at a cost that does not grow with the face (a 40 px sigma
        # on a large face would take ~15 ms at full size; this takes well under 1 ms).
        blocky = cv2.resize(small, (cells_x * _CELL, cells_y * _CELL), interpolation=cv2.INTER_NEAREST)
        soft = cv2.GaussianBlur(blocky, (0, 0), sigmaX=0.5 * _CELL, borderType=cv2.BORDER_REPLICATE)
        out[y0:y1, x0:x1] = cv2.resize(soft, (rw, rh), interpolation=cv2.INTER_LINEAR)
    return out


class CameraView(QWidget):
    """Draws the newest camera frame letterboxed, face boxes with labels, status lines, a privacy pill and a
    message. Public counter ``frames_shown`` counts the frames passed to ``set_frame`` (for display fps)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.frames_shown: int = 0
        self._raw: np.ndarray | None = None  # the newest frame as given (re-blurred when the faces change)
        self._image: QImage | None = None  # the newest frame as drawn (blurred if blurring is on)
        self._faces: tuple[FaceOverlay, ...] = ()
        self._blur = False
        self._frame_size: tuple[int, int] | None = None   # (w, h) of the newest frame, before scaling
        self._overlay: tuple[str, ...] = ()
        self._camera_on = False
        self._privacy_text = ""
        self._message = ""
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # paintEvent covers every pixel
        self.setMinimumSize(160, 120)

    # ------------------------------------------------------------------ inputs

    def set_frame(self, image_bgr: np.ndarray) -> None:
        """Show a new HxWx3 uint8 BGR frame (blurred here when blurring is on); cheap, never blocks."""
        _check_frame(image_bgr)
        self._raw = image_bgr
        self._image = self._convert(image_bgr)
        self.frames_shown += 1
        self.update()

    def set_faces(self, faces: Sequence[FaceOverlay], *, blur: bool) -> None:
        """The newest detections; with ``blur`` the faces are blurred on every frame and no labels are drawn.
        The frame already on screen is redrawn at once, so switching blur on never leaves a face visible."""
        changed_mode = blur != self._blur
        self._faces = tuple(faces)
        self._blur = bool(blur)
        if self._raw is not None and (self._blur or changed_mode):
            self._image = self._convert(self._raw)
        self.update()

    def set_overlay(self, lines: Sequence[str]) -> None:
        """A few short status lines, drawn bottom-left on a translucent dark panel."""
        self._overlay = tuple(str(line) for line in lines)
        self.update()

    def set_privacy(self, camera_on: bool, text: str = "") -> None:
        """While the camera is on, a red dot and ``text`` (default "CAMERA ON") in a pill at the top-left."""
        self._camera_on = bool(camera_on)
        self._privacy_text = text
        self.update()

    def set_message(self, text: str) -> None:
        """A centred message over the dimmed last frame (or black); ``""`` clears it. Frames do not clear it."""
        self._message = text
        self.update()

    # ------------------------------------------------------------------ geometry

    def frame_rect(self) -> QRectF:
        """Where the frame is drawn: the largest rect of the frame's aspect ratio, centred (empty if no frame)."""
        if self._frame_size is None:
            return QRectF()
        fw, fh = self._frame_size
        vw, vh = float(self.width()), float(self.height())
        scale = min(vw / fw, vh / fh)
        w, h = fw * scale, fh * scale
        return QRectF((vw - w) / 2.0, (vh - h) / 2.0, w, h)

    def map_box(self, box: Box) -> QRectF:
        """A box (x, y, w, h) in frame pixels as a rect in widget coordinates (empty if no frame)."""
        target = self.frame_rect()
        if target.isEmpty() or self._image is None:
            return QRectF()
        sx = target.width() / self._frame_size[0]
        sy = target.height() / self._frame_size[1]
        x, y, w, h = box
        return QRectF(target.x() + x * sx, target.y() + y * sy, w * sx, h * sy)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(640, 480)

    # ------------------------------------------------------------------ drawing

    def _convert(self, image_bgr: np.ndarray) -> QImage:
        """Blur (if on), then scale to the size it is drawn at with OpenCV (~1 ms for 640x480 on one core),
        so that paintEvent blits the frame instead of smooth-scaling it (~5 ms)."""
        if self._blur and self._faces:
            image_bgr = blur_regions(image_bgr, [face.box for face in self._faces])
        self._frame_size = (image_bgr.shape[1], image_bgr.shape[0])
        target = self.frame_rect()
        w, h = round(target.width()), round(target.height())
        if w > 0 and h > 0 and (w, h) != self._frame_size:
            interpolation = cv2.INTER_AREA if w < self._frame_size[0] else cv2.INTER_LINEAR
            image_bgr = cv2.resize(image_bgr, (w, h), interpolation=interpolation)
        return to_qimage(image_bgr)

    def _font(self, scale: float = 1.0, bold: bool = False) -> QFont:
        font = QFont(self.font())
        font.setPointSizeF(max(9.0, self.height() / 40.0) * scale)
        font.setBold(bold)
        return font

    def _margin(self) -> float:
        return max(6.0, self.height() / 60.0)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if self._raw is not None:
            self._image = self._convert(self._raw)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.fillRect(self.rect(), Qt.GlobalColor.black)
            if self._image is not None:
                target = self.frame_rect()
                if (self._image.width(), self._image.height()) == (round(target.width()), round(target.height())):
                    painter.drawImage(target.topLeft(), self._image)     # scaled in _convert: a blit
                else:
                    painter.drawImage(target, self._image)
                if self._message:
                    painter.fillRect(self.rect(), QColor(0, 0, 0, 150))  # dim the frame under the message
                elif self._blur:
                    self._draw_blur_caption(painter)
                else:
                    self._draw_faces(painter)
            if self._camera_on:
                self._draw_privacy(painter)
            if self._overlay:
                self._draw_overlay(painter)
            if self._message:
                self._draw_message(painter)
        finally:
            painter.end()

    def _draw_faces(self, painter: QPainter) -> None:
        unit = max(1.0, self.height() / 300.0)
        font = self._font(0.85)
        metrics = QFontMetricsF(font)
        painter.setFont(font)
        # The primary face last, so its box and label lie on top.
        for face in sorted(self._faces, key=lambda f: f.primary):
            rect = self.map_box(face.box)
            if rect.isEmpty():
                continue
            pen = QPen(ACCENT if face.primary else OTHER, (3.0 if face.primary else 1.5) * unit)
            pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(rect)
            if face.label:
                self._draw_label(painter, metrics, rect, face.label, pen.widthF(), face.primary)

    def _draw_label(self, painter: QPainter, metrics: QFontMetricsF, box: QRectF, label: str, pen_w: float,
                    primary: bool) -> None:
        margin = self._margin()
        pad = metrics.height() * 0.25
        text = metrics.elidedText(label, Qt.TextElideMode.ElideRight, max(0.0, self.width() - 2 * margin - 2 * pad))
        width = metrics.horizontalAdvance(text) + 2 * pad
        height = metrics.height() + pad
        top = box.top() - pen_w / 2 - height
        if top < 0:  # no room above: inside the box, under its top edge
            top = box.top() + pen_w / 2
        left = min(max(box.left() - pen_w / 2, margin), self.width() - margin - width)
        back = QRectF(max(0.0, left), top, width, height)
        painter.fillRect(back, PANEL)
        painter.setPen(ACCENT if primary else TEXT)
        painter.drawText(back, Qt.AlignmentFlag.AlignCenter, text)

    def _draw_blur_caption(self, painter: QPainter) -> None:
        font = self._font(0.8)
        metrics = QFontMetricsF(font)
        margin = self._margin()
        pad = metrics.height() * 0.3
        text = "faces blurred"
        back = QRectF(0, 0, metrics.horizontalAdvance(text) + 2 * pad, metrics.height() + pad)
        back.moveTopRight(QPointF(self.width() - margin, margin))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(PANEL)
        painter.drawRoundedRect(back, back.height() / 4, back.height() / 4)
        painter.setFont(font)
        painter.setPen(TEXT)
        painter.drawText(back, Qt.AlignmentFlag.AlignCenter, text)

    def _draw_privacy(self, painter: QPainter) -> None:
        font = self._font(0.9, bold=True)
        metrics = QFontMetricsF(font)
        margin = self._margin()
        height = metrics.height() * 1.5
        dot = metrics.height() * 0.55
        pad = height * 0.4  # pill edge to dot, and text to pill edge
        gap = dot * 0.6  # dot to text
        avail = max(0.0, self.width() - 2 * margin - 2 * pad - dot - gap)
        text = metrics.elidedText(self._privacy_text or "CAMERA ON", Qt.TextElideMode.ElideRight, avail)
        text_w = metrics.horizontalAdvance(text)
        pill = QRectF(margin, margin, pad + dot + gap + text_w + pad, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 190))
        painter.drawRoundedRect(pill, height / 2, height / 2)
        painter.setBrush(PRIVACY_RED)
        painter.drawEllipse(QPointF(pill.left() + pad + dot / 2, pill.center().y()), dot / 2, dot / 2)
        painter.setFont(font)
        painter.setPen(TEXT)
        text_rect = QRectF(pill.left() + pad + dot + gap, pill.top(), text_w + 1, height)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)

    def _draw_overlay(self, painter: QPainter) -> None:
        font = self._font(0.8)
        metrics = QFontMetricsF(font)
        margin = self._margin()
        pad = metrics.height() * 0.4
        avail = max(0.0, self.width() - 2 * margin - 2 * pad)
        lines = [metrics.elidedText(line, Qt.TextElideMode.ElideRight, avail) for line in self._overlay]
        line_h = metrics.lineSpacing()
        width = max(metrics.horizontalAdvance(line) for line in lines) + 2 * pad
        height = line_h * len(lines) + 2 * pad
        panel = QRectF(margin, self.height() - margin - height, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(PANEL)
        painter.drawRoundedRect(panel, pad, pad)
        painter.setFont(font)
        painter.setPen(TEXT)
        for i, line in enumerate(lines):
            row = QRectF(panel.left() + pad, panel.top() + pad + i * line_h, width - 2 * pad, line_h)
            painter.drawText(row, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, line)

    def _draw_message(self, painter: QPainter) -> None:
        font = self._font(1.1)
        metrics = QFontMetricsF(font)
        pad = metrics.height()
        flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
        max_w = max(1.0, min(self.width() * 0.8, metrics.averageCharWidth() * 48))
        bound = metrics.boundingRect(QRectF(0, 0, max_w, self.height()), int(flags), self._message)
        back = QRectF(0, 0, min(self.width() - 4.0, bound.width() + 2 * pad),
                      min(self.height() - 4.0, bound.height() + 2 * pad))
        back.moveCenter(QRectF(self.rect()).center())
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(20, 20, 20, 225))
        painter.drawRoundedRect(back, pad / 2, pad / 2)
        painter.setFont(font)
        painter.setPen(TEXT)
        painter.drawText(back.adjusted(pad, pad, -pad, -pad), int(flags), self._message)
