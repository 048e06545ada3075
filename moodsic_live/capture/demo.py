"""The built-in demo source: an animated reel made at run time from public-domain photos.

What
----
``--source demo`` stands in for a camera on machines that have none, so the whole loop
(capture -> perceive -> music) can be seen working. It plays a reel of five photographs
that ship inside scikit-image's wheel (``skimage.data``; loaded from the installed package,
nothing is downloaded), each shown for ``scene_seconds`` and animated so that the mood the
app reads from it changes:

* a slow pan and zoom (Ken Burns), different for each scene, so there is gentle motion;
* a colour grade that drifts over the scene: white balance from cool to warm, brightness
  and saturation rising or falling, for some scenes a dim blue "evening";
* a short crossfade (1 s, or a quarter of a scene if scenes are shorter) between scenes;
* a small label in the bottom-left corner, "DEMO - scikit-image: <photo> (<credit>)", on
  every frame, so nobody mistakes it for a camera. It stays clear of the astronaut's face,
  which the app's face detector still finds.

Why photos from a dependency: no image files need to be committed to or shipped with this
project, and their licences are settled upstream (see ``skimage.data.<name>.__doc__``).

Credits (all free of copyright restrictions)
--------------------------------------------
==================== ==========================================================================
photo                provenance (from scikit-image's documentation)
==================== ==========================================================================
astronaut            Eileen Collins, NASA astronaut; NASA Great Images database; public domain
coffee               coffee cup, courtesy of Pikolo Espresso Bar; CC0, photographer Rachel Michetti
rocket               DSCOVR launching on a Falcon 9; SpaceX photo released into the public domain
chelsea              Chelsea the cat; CC0, photographer Stefan van der Walt
hubble_deep_field    Hubble eXtreme Deep Field; NASA, public domain
==================== ==========================================================================

Cost: each photo is loaded, converted to BGR and resized once (to just cover the frame at
zoom 1). A frame is then one ``cv2.warpAffine`` (pan and zoom, sub-pixel smooth), one
``cv2.transform`` (the grade as a 3 x 4 colour matrix) and a few operations on the small
label box; crossfade frames render two scenes and blend them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from moodsic_live.errors import InputError
from moodsic_live.frames import Frame

CROSSFADE_S = 1.0  # at most a quarter of a scene
_LUMA_BGR = np.array([0.114, 0.587, 0.299])


@dataclass(frozen=True, slots=True)
class Grade:
    """A colour grade: ``warmth`` -1 (cool, blue) .. +1 (warm, amber); gains for the rest."""

    warmth: float = 0.0
    brightness: float = 1.0
    saturation: float = 1.0
    contrast: float = 1.0  # around mid-grey


@dataclass(frozen=True, slots=True)
class View:
    """Where the camera looks: ``x``, ``y`` from 0 (left/top) to 1 (right/bottom) of the room
    the view has to move in at this ``zoom`` (1 = the photo just covers the frame)."""

    x: float = 0.5
    y: float = 0.5
    zoom: float = 1.0


@dataclass(frozen=True, slots=True)
class DemoScene:
    """One photo of the reel: ``loader()`` gives it as RGB uint8 (a ``skimage.data`` function)."""

    name: str
    loader: Callable[[], np.ndarray]
    credit: str  # short, for the on-screen label
    start: View  # the move goes linearly from start to end over the scene
    end: View
    grades: tuple[Grade, ...]  # keyframes, evenly spaced over the scene, eased in between

    @property
    def label(self) -> str:
        return f"DEMO - scikit-image: {self.name} ({self.credit})"


def demo_scenes() -> list[DemoScene]:
    """The reel, in order. Raises a one-line :class:`InputError` if scikit-image is missing."""
    try:
        from skimage import data
    except ImportError:
        raise InputError("the demo source needs scikit-image, which ships its photos: "
                         "pip install scikit-image==0.26.0 (or reinstall moodsic-live)") from None
    day, golden = Grade(0.0, 1.05, 1.15, 1.1), Grade(0.6, 1.05, 1.2, 1.0)
    evening = Grade(-0.5, 0.55, 0.65, 0.9)
    return [
        # a smiling person, bright: the face stays in view and large enough to be detected
        DemoScene("astronaut", data.astronaut, "NASA, public domain",
                  View(0.35, 0.05, 1.05), View(0.6, 0.2, 1.3),
                  (Grade(-0.2, 1.0, 1.0, 1.0), golden, Grade(0.3, 1.1, 1.3, 1.1))),
        # a calm table: warm morning light fading into a dim, cool evening
        DemoScene("coffee", data.coffee, "CC0, Rachel Michetti",
                  View(0.2, 0.6, 1.0), View(0.55, 0.4, 1.35),
                  (Grade(0.5, 1.1, 1.15, 1.0), Grade(0.1, 0.9, 1.0, 1.0), evening)),
        # a launch at dawn: dark and blue, then bright, vivid and punchy
        DemoScene("rocket", data.rocket, "SpaceX, public domain",
                  View(0.5, 0.7, 1.15), View(0.45, 0.2, 1.0),
                  (Grade(-0.4, 0.75, 0.8, 1.0), day, Grade(0.4, 1.2, 1.5, 1.25))),
        # a cat: cool and grey at first, then cosy and warm
        DemoScene("chelsea", data.chelsea, "CC0, Stefan van der Walt",
                  View(0.7, 0.5, 1.25), View(0.4, 0.45, 1.05),
                  (Grade(-0.6, 0.85, 0.6, 0.95), Grade(0.0, 1.0, 1.0, 1.0), golden)),
        # deep space: dark and still, slowly coming alive
        DemoScene("hubble_deep_field", data.hubble_deep_field, "NASA, public domain",
                  View(0.5, 0.5, 1.0), View(0.3, 0.7, 1.4),
                  (Grade(-0.4, 0.6, 0.5, 1.0), Grade(-0.2, 0.8, 0.9, 1.0), Grade(0.0, 1.15, 1.3, 1.05))),
    ]


# ------------------------------------------------------------------------------------ rendering


def _smooth(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def _lerp(a: float, b: float, u: float) -> float:
    return a + (b - a) * u


def grade_at(grades: tuple[Grade, ...], phase: float) -> Grade:
    """The grade at ``phase`` (0..1) of a scene: keyframes evenly spaced, eased in between."""
    if len(grades) == 1:
        return grades[0]
    pos = min(max(phase, 0.0), 1.0) * (len(grades) - 1)
    i = min(int(pos), len(grades) - 2)
    u = _smooth(pos - i)
    a, b = grades[i], grades[i + 1]
    return Grade(_lerp(a.warmth, b.warmth, u), _lerp(a.brightness, b.brightness, u),
                 _lerp(a.saturation, b.saturation, u), _lerp(a.contrast, b.contrast, u))


def grade_matrix(g: Grade) -> np.ndarray:
    """The 3 x 4 matrix (for BGR pixels and a constant 1) that applies ``g``."""
    s = g.saturation
    sat = s * np.eye(3) + (1.0 - s) * np.outer(np.ones(3), _LUMA_BGR)  # towards grey, luma kept
    balance = np.array([1.0 - 0.15 * g.warmth, 1.0 + 0.02 * g.warmth, 1.0 + 0.12 * g.warmth])  # B, G, R
    m = np.empty((3, 4), np.float32)
    m[:, :3] = g.contrast * g.brightness * balance[:, None] * sat
    m[:, 3] = 128.0 * (1.0 - g.contrast)
    return m


@dataclass(slots=True)
class _Prepared:
    scene: DemoScene
    image: np.ndarray  # BGR, resized once to just cover the output frame
    box: tuple[int, int, int, int]  # the label's x, y, w, h in the output frame
    keep: np.ndarray  # per label-box pixel: how much of the picture stays (float32, h x w x 1)
    add: np.ndarray  # per label-box pixel: what is added (white text)


class DemoReel:
    """Renders the demo at any time ``t``: built once (loads and prepares every photo)."""

    def __init__(self, size: tuple[int, int] = (640, 480), scene_seconds: float = 12.0,
                 scenes: list[DemoScene] | None = None):
        w, h = int(size[0]), int(size[1])
        if w < 16 or h < 16:
            raise ValueError(f"the demo frame size must be at least 16 x 16, got {size}")
        if not (scene_seconds > 0 and math.isfinite(scene_seconds)):
            raise ValueError(f"scene_seconds must be a positive number, got {scene_seconds}")
        self.size = (w, h)
        self.scene_seconds = float(scene_seconds)
        self.crossfade = min(CROSSFADE_S, 0.25 * self.scene_seconds)
        self.scenes = [self._prepare(s) for s in (demo_scenes() if scenes is None else scenes)]
        if not self.scenes:
            raise ValueError("the demo needs at least one scene")

    def _prepare(self, scene: DemoScene) -> _Prepared:
        try:
            rgb = np.asarray(scene.loader())
        except Exception as exc:
            raise InputError(f"demo photo {scene.name} cannot be loaded from scikit-image ({exc}); "
                             f"reinstall it: pip install --force-reinstall scikit-image==0.26.0") from None
        if rgb.ndim == 2:
            rgb = np.dstack([rgb] * 3)
        bgr = np.ascontiguousarray(rgb[..., 2::-1], dtype=np.uint8)
        w, h = self.size
        ih, iw = bgr.shape[:2]
        cover = max(w / iw, h / ih)
        dsize = (max(w, round(iw * cover)), max(h, round(ih * cover)))
        image = cv2.resize(bgr, dsize, interpolation=cv2.INTER_AREA if cover < 1 else cv2.INTER_CUBIC)
        return _Prepared(scene, image, *self._label(scene.label))

    def _label(self, text: str) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
        """A dark, semi-transparent box with white text (its first word bold), as keep/add terms."""
        w, h = self.size
        font = cv2.FONT_HERSHEY_SIMPLEX
        margin = max(2, round(h / 80))
        pad = max(2, round(h / 120))
        tag, _, rest = text.partition(" ")
        rest = " " + rest if rest else ""

        def measure(scale: float) -> tuple[int, int, int, int]:
            (w1, th), base = cv2.getTextSize(tag, font, scale, 2)
            w2 = cv2.getTextSize(rest, font, scale, 1)[0][0] if rest else 0
            return w1, w2, th, base

        scale = max(0.3, 0.4 * h / 480)
        w1, w2, th, base = measure(scale)
        room = w - 2 * margin - 2 * pad
        if w1 + w2 > room:  # a small frame: shrink the text to fit
            scale *= room / (w1 + w2)
            w1, w2, th, base = measure(scale)
        bw, bh = min(w1 + w2 + 2 * pad, w - 2 * margin), min(th + base + 2 * pad, h - 2 * margin)
        x, y = margin, h - margin - bh
        ink = np.zeros((bh, bw), np.uint8)
        cv2.putText(ink, tag, (pad, pad + th), font, scale, 255, 2, cv2.LINE_AA)
        if rest:
            cv2.putText(ink, rest, (pad + w1, pad + th), font, scale, 255, 1, cv2.LINE_AA)
        a = (ink.astype(np.float32) / 255.0)[..., None]
        return (x, y, bw, bh), 0.4 * (1.0 - a), 255.0 * a

    # -------------------------------------------------------------------------- per frame

    def scene_index(self, t: float) -> int:
        """The scene shown at ``t`` (the one a crossfade is going to, from its midpoint)."""
        return int(math.floor(t / self.scene_seconds)) % len(self.scenes)

    def label_box(self, t: float) -> tuple[int, int, int, int]:
        """The label's ``(x, y, w, h)`` in the frame at ``t``."""
        return self.scenes[self.scene_index(t)].box

    def render(self, t: float, label: bool = True) -> np.ndarray:
        """The frame at ``t`` seconds: BGR uint8, ``size``."""
        s, fade = self.scene_seconds, self.crossfade
        n = len(self.scenes)
        k = int(math.floor(t / s))
        boundary = round(t / s)
        d = t - boundary * s  # from the nearest scene boundary
        if n > 1 and boundary > 0 and abs(d) < fade / 2:
            into = _smooth((d + fade / 2) / fade)
            old = self._scene(self.scenes[(boundary - 1) % n], t - (boundary - 1) * s)
            new = self._scene(self.scenes[boundary % n], d)
            frame = cv2.addWeighted(old, 1.0 - into, new, into, 0.0)
        else:
            frame = self._scene(self.scenes[k % n], t - k * s)
        if label:
            self._draw_label(frame, self.scenes[k % n])
        return frame

    def _scene(self, p: _Prepared, local_t: float) -> np.ndarray:
        """Scene ``p`` at ``local_t`` seconds from its start (from -fade/2 to scene + fade/2)."""
        w, h = self.size
        fade = self.crossfade
        phase = min(max((local_t + fade / 2) / (self.scene_seconds + fade), 0.0), 1.0)
        a, b = p.scene.start, p.scene.end
        zoom = max(1.0, _lerp(a.zoom, b.zoom, phase))
        ih, iw = p.image.shape[:2]
        vw, vh = w / zoom, h / zoom  # the part of the photo in view
        cx = vw / 2 + (iw - vw) * _lerp(a.x, b.x, phase)
        cy = vh / 2 + (ih - vh) * _lerp(a.y, b.y, phase)
        m = np.array([[zoom, 0.0, w / 2 - zoom * cx], [0.0, zoom, h / 2 - zoom * cy]])
        frame = cv2.warpAffine(p.image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return cv2.transform(frame, grade_matrix(grade_at(p.scene.grades, phase)))

    @staticmethod
    def _draw_label(frame: np.ndarray, p: _Prepared) -> None:
        x, y, bw, bh = p.box
        roi = frame[y:y + bh, x:x + bw]
        roi[:] = np.clip(roi * p.keep + p.add, 0, 255).astype(np.uint8)


def demo_frames(fps: float = 10.0, size: tuple[int, int] = (640, 480),
                scene_seconds: float = 12.0) -> Iterator[Frame]:
    """Endless demo frames (BGR uint8, ``size`` = (w, h)) timed at ``fps``; the caller paces them.

    Frame ``i`` has ``t = i / fps``, ``index = i`` and ``source = "demo:<photo>"``. The photos
    are loaded when the first frame is asked for.
    """
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps}")
    reel = DemoReel(size, scene_seconds)
    i = 0
    while True:
        t = i / fps
        yield Frame(reel.render(t), t=t, index=i, source=f"demo:{reel.scenes[reel.scene_index(t)].scene.name}")
        i += 1
