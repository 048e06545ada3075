"""The window's handle on the live engine: starts, restarts and stops it off the GUI thread.

Everything slow happens on a short-lived "engine-host" thread, never on the GUI thread: building the
models and the demo library on the first run, opening or building a library, loading the models and
opening the camera and the sound card (:meth:`LiveEngine.start`), and stopping the previous engine
when the source or the library changes. The GUI thread only calls :meth:`EngineHost.start`, reads
:attr:`EngineHost.engine` (a plain attribute) and drains :meth:`EngineHost.events` from its timer:
lines said by the engine or the set-up (progress, problems) and the outcome of a start. No Qt here,
so the host is tested without a display.

Bad input (a folder without music, a video that cannot be opened) is found before the running engine
is stopped, so the music goes on and the window shows the one-line error. Only closing the window
waits: :meth:`EngineHost.close` stops the engine (every thread within about a second) on the caller's
thread.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from moodsic_live.config import Config
from moodsic_live.errors import MoodsicError

EventKind = Literal["say", "progress", "started", "failed", "library"]
ENGINE_STOP_S = 1.0


@dataclass(frozen=True)
class Event:
    kind: EventKind
    text: str = ""


@dataclass
class Launch:
    """What to run: a source (``parse_source`` text), a library name ("" = configured or newest, else
    the demo), an optional folder to build a library from first, and how the music plays."""

    source: str = "demo"
    library: str = ""
    build_from: str = ""            # a folder (own music or DEAM) or "demo": build this library first
    build_name: str = ""
    output: str = "device"          # device | none | FILE.wav
    loop: bool = True               # a video file source loops (a kiosk keeps going)
    perceive: dict = field(default_factory=dict)   # PerceiveConfig overrides (experts, detector, atmosphere)
    match: dict = field(default_factory=dict)      # MatchConfig overrides (mode, goal, target, dwell)
    play: dict = field(default_factory=dict)       # PlayConfig overrides (volume, crossfade)


def models_missing(config: Config) -> list[Path]:
    from moodsic_live.perceive.perceiver import FACE_MODEL, SCENE_MODEL

    need = []
    if config.perceive.face_enabled and config.perceive.face_model is None:
        need.append(config.paths.models_dir / FACE_MODEL)
    if config.perceive.scene_enabled and config.perceive.scene_model is None:
        need.append(config.paths.models_dir / SCENE_MODEL)
    return [p for p in need if not p.is_file()]


class EngineHost:
    def __init__(self, config: Config, engine_factory: Callable | None = None):
        self.base_config = config
        self.engine = None                         # the running LiveEngine (None while none runs)
        self.launch: Launch | None = None
        self._events: deque[Event] = deque(maxlen=256)
        self._lock = threading.Lock()
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._factory = engine_factory
        self._cancel = threading.Event()           # set: the start under way stops its library build

    # -- GUI thread -----------------------------------------------------------------------------

    def start(self, launch: Launch) -> None:
        """Stop what runs (if anything) and start ``launch``, on a background thread; returns at once."""
        with self._lock:
            self._generation += 1
            generation = self._generation
            self.launch = launch
            self._cancel.set()                     # a build for the start this one replaces stops now
            self._cancel = cancel = threading.Event()
        thread = threading.Thread(target=self._start, args=(launch, generation, cancel), name="engine-host",
                                  daemon=True)
        self._thread = thread
        thread.start()

    def events(self) -> list[Event]:
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out

    def close(self, timeout: float = ENGINE_STOP_S) -> bool:
        """Stop the engine now (the window is closing); a start under way is abandoned."""
        with self._lock:
            self._generation += 1
            self._cancel.set()                     # a library build under way stops its workers
            engine, self.engine = self.engine, None
        return engine.stop(timeout) if engine is not None else True

    # -- the host thread ------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self._events.append(Event("say", text))

    def _progress(self, text: str) -> None:
        self._events.append(Event("progress", text))

    def _current(self, generation: int) -> bool:
        return generation == self._generation

    def _stop_old(self) -> None:
        with self._lock:
            old, self.engine = self.engine, None
        if old is not None:
            old.stop(ENGINE_STOP_S)

    def _start(self, launch: Launch, generation: int, cancel: threading.Event | None = None) -> None:
        try:
            engine = self._make(launch, generation, cancel)
        except MoodsicError as exc:
            if self._current(generation):
                self._events.append(Event("failed", str(exc)))
            return
        if engine is None:
            return
        with self._lock:
            if not self._current(generation):     # closed or restarted while this one was starting
                stale = True
            else:
                stale = False
                self.engine = engine
        if stale:
            engine.stop(ENGINE_STOP_S)
            return
        self._events.append(Event("started", engine.source.label))

    def _make(self, launch: Launch, generation: int, cancel: threading.Event | None = None):
        from moodsic_live.capture.source import CaptureThread, parse_source
        from moodsic_live.config import set_value
        from moodsic_live.engine.live import LiveEngine
        from moodsic_live.library.builder import build_library, open_library
        from moodsic_live.library.store import library_path
        from moodsic_live.play.player import device_or_silent, paced_file_output, silent_output

        config = copy.deepcopy(self.base_config)
        for section, changes in (("perceive", launch.perceive), ("match", launch.match), ("play", launch.play)):
            for key, value in changes.items():
                set_value(config, f"{section}.{key}", value)
        spec = parse_source(launch.source, loop=launch.loop)
        missing = models_missing(config)
        if missing:
            from moodsic_live.models.registry import build_models

            self._progress("building the emotion models (first run only; about a minute)")
            build_models(config.paths.models_dir, config.paths.cache_dir, say=self._progress)
        if launch.build_from:
            self._progress(f"analysing the music in {launch.build_from} …")
            library, report = build_library(launch.build_from, config, launch.build_name or None,
                                            say=self._progress, progress=False, cancel=cancel)
            for line in report.lines():
                self._progress(line)
            self._events.append(Event("library", library.name))
        elif launch.library == "demo" and not library_path(config.library.dir, "demo").exists():
            self._progress("building the demo library (generated music; first use only, about two minutes)")
            library, _ = build_library("demo", config, "demo", say=self._progress, progress=False, cancel=cancel)
            self._events.append(Event("library", library.name))
        else:
            library = open_library(config, launch.library or None, say=self._progress)
        factory = self._factory or LiveEngine
        if not self._current(generation):
            return None
        # Everything that can fail on bad input is checked while the old engine still plays: the
        # library above, and here the source (a video that cannot be opened fails in one line).
        CaptureThread(spec, lambda frame: None).check()
        self._stop_old()                  # one engine at a time owns the camera and the sound card
        if launch.output == "device":
            output = device_or_silent(config.play, self._say)
        elif launch.output == "none":
            output = silent_output(config.play)
        else:
            output = paced_file_output(Path(launch.output), config.play)
        self._progress(f"starting: {spec.label} → library {library.name!r} ({len(library.tracks)} songs)")
        engine = factory(config, library, spec, output, say=self._say)
        engine.start()
        return engine
