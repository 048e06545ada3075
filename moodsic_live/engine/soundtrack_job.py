"""Background work for the "Soundtrack for a video" view: the ranking job and the song preview.

No Qt here: the view polls both from a timer, and the tests drive them without a display.

* :class:`SoundtrackJob` runs the steps of ``moodsic-live soundtrack VIDEO`` on a daemon thread of
  its own: :func:`video_info` (a file that cannot be opened fails at once, before any model loads),
  a :class:`~moodsic_live.perceive.perceiver.Perceiver`, :func:`plan_soundtrack` (perceive →
  stabilise → match every frame) and :func:`rank_for_video` (whole songs by their emotional arc).
  It publishes a fraction and a line of text, can be cancelled between two frames, and ends with a
  :class:`SoundtrackResult` or a one-line error, never a traceback.
* :class:`Preview` plays one song from an offset for the video's length on a
  :class:`~moodsic_live.play.player.Player` owned by a control thread of its own, so neither
  opening the sound card nor the fade-out on :meth:`Preview.stop` ever blocks the caller.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from moodsic_live.config import Config, PlayConfig
from moodsic_live.engine.soundtrack import SoundtrackCancelled, SoundtrackPlan
from moodsic_live.engine.soundtrack_rank import SoundtrackRanking
from moodsic_live.errors import MoodsicError
from moodsic_live.library.store import Library
from moodsic_live.match.arcs import Arc
from moodsic_live.play.player import OutputFactory

log = logging.getLogger(__name__)

CANCELLED = "soundtrack cancelled"
POLL_S = 0.03                      # the preview thread's loop: how soon it reacts to stop() and to loads
# Shares of the progress bar: opening and loading models, watching the video, ranking the songs.
_MODELS, _WATCH = 0.04, 0.90


def one_line(exc: BaseException) -> str:
    """An exception as one line for the user: a :class:`MoodsicError`'s own text, anything else
    with its type (the traceback goes to the log, not to the screen)."""
    text = " ".join(str(exc).split())     # not errors.one_line: an empty message names the exception's type
    if isinstance(exc, MoodsicError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def took(seconds: float) -> str:
    """A duration for a status line: ``0.4 s``, ``12 s``."""
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour) of a non-negative number of seconds."""
    s = int(round(max(0.0, float(seconds))))
    h, m = divmod(s, 3600)
    m, s = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass(frozen=True, eq=False)
class SoundtrackResult:
    """What a finished job found. ``song_arcs[k]`` is the whole arc of ``ranking.songs[k]``'s track
    (the index space of its alignment path's second column)."""

    video: Path
    plan: SoundtrackPlan
    ranking: SoundtrackRanking
    song_arcs: list[Arc]
    notes: list[str]               # lines said on the way (a truncated video, tracks too short for an arc)
    seconds: float                 # wall time the job took


class SoundtrackJob:
    """Ranks whole songs as soundtracks for ``video`` on a daemon thread (call :meth:`start`).

    Any thread may read :attr:`progress`, :attr:`done`, :attr:`result` and :attr:`error` and call
    :meth:`cancel`; the job checks for a cancel before every analysed frame and between steps.
    ``perceiver_factory`` (default: a :class:`Perceiver` on ``config``'s models) is called on the
    job's thread; the perceiver is closed when the job ends, however it ends."""

    def __init__(self, video: str | Path, library: Library, config: Config, *, top: int = 10,
                 fps: float | None = None, learner: Any = None,
                 perceiver_factory: Callable[[], Any] | None = None) -> None:
        if top < 1:
            raise ValueError(f"top must be at least 1, got {top}")
        self.video = Path(video)
        self.library = library
        self.config = config
        self.top = int(top)
        self.fps = float(fps if fps is not None else config.perceive.video_fps)
        self.learner = learner
        self._perceiver_factory = perceiver_factory
        self._lock = threading.Lock()
        self._progress: tuple[float, str] = (0.0, f"waiting to open {self.video.name}")
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._result: SoundtrackResult | None = None
        self._error = ""
        self._thread: threading.Thread | None = None
        self._notes: list[str] = []

    # -- any thread -----------------------------------------------------------------------------

    def start(self) -> SoundtrackJob:
        """Start the work (once); returns at once."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="soundtrack-job", daemon=True)
            self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the job to stop; it ends with the error :data:`CANCELLED` within about one frame."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def progress(self) -> tuple[float, str]:
        """(share done 0..1, one line saying what happens now)."""
        with self._lock:
            return self._progress

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def result(self) -> SoundtrackResult | None:
        """The ranking once the job has succeeded; None before, or after an error."""
        return self._result if self._done.is_set() else None

    @property
    def error(self) -> str:
        """One line once the job has failed or was cancelled; "" otherwise."""
        return self._error if self._done.is_set() else ""

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended (True) or ``timeout`` has passed (False)."""
        return self._done.wait(timeout)

    # -- the job's thread -----------------------------------------------------------------------

    def _set(self, fraction: float, text: str) -> None:
        with self._lock:
            self._progress = (min(1.0, max(0.0, float(fraction))), text)

    def _check(self) -> None:
        if self._cancel.is_set():
            raise SoundtrackCancelled(CANCELLED)

    def _run(self) -> None:
        began = time.monotonic()
        try:
            self._result = self._work(began)
            self._set(1.0, f"{len(self._result.ranking.songs)} songs ranked in {took(self._result.seconds)}")
        except SoundtrackCancelled:
            self._error = CANCELLED
            self._set(self.progress[0], CANCELLED)
        except MoodsicError as exc:
            self._error = one_line(exc)
            self._set(self.progress[0], self._error)
        except Exception as exc:  # noqa: BLE001 - shown as one line; the traceback is logged
            log.exception("soundtrack job for %s failed", self.video)
            self._error = f"soundtrack for {self.video.name} failed: {one_line(exc)}"
            self._set(self.progress[0], self._error)
        finally:
            self._done.set()

    def _work(self, began: float) -> SoundtrackResult:
        from moodsic_live.engine.soundtrack import plan_soundtrack, video_info
        from moodsic_live.engine.soundtrack_rank import library_arcs, rank_for_video

        self._set(0.0, f"opening {self.video.name}")
        info = video_info(self.video)       # fails fast, before the models load
        length = float(info.get("duration") or 0.0)
        self._check()
        self._set(0.01, "loading the emotion models")
        perceiver = self._perceiver_factory() if self._perceiver_factory else self._perceiver()
        try:
            self._check()

            def watched(share: float) -> None:
                self._set(_MODELS + (_WATCH - _MODELS) * share,
                          f"watching the video: {clock(share * length)} of {clock(length)}")

            watched(0.0)
            plan = plan_soundtrack(self.video, self.library, self.config, perceiver, self.fps,
                                   say=self._notes.append, info=info, progress=watched, cancelled=self._cancel.is_set)
        finally:
            perceiver.close()
        self._check()
        self._set(_WATCH, f"comparing the video's arc with {len(self.library.tracks)} songs")
        table = library_arcs(self.library, self.config)
        if table[1]:
            self._notes.append(f"{table[1]} of {len(self.library.tracks)} songs are too short for an arc and were "
                               "not compared")
        self._check()
        # what was learned ranks; the transition weight is explored here, where the listener can answer (Like)
        kwargs = {} if self.learner is None else {"learner": self.learner, "explore": True}
        ranking = rank_for_video(plan, self.library, self.config, top=self.top, table=table, **kwargs)
        self._check()
        where = {int(t): k for k, t in enumerate(table[0].tracks)}
        song_arcs = [table[0].arc(where[s.ranked.track]) for s in ranking.songs]
        return SoundtrackResult(self.video, plan, ranking, song_arcs, list(self._notes), time.monotonic() - began)

    def _perceiver(self):
        from moodsic_live.perceive.perceiver import Perceiver

        return Perceiver(self.config.perceive, self.config.paths.models_dir)


PreviewState = Literal["idle", "opening", "loading", "playing", "finished", "stopped", "failed"]


class Preview:
    """Plays ``song`` from ``offset_s`` for ``duration_s`` (the video's length), or until :meth:`stop`.

    A control thread of its own makes the output (``output_maker()``: an :class:`OutputFactory`,
    e.g. the sound card), owns the :class:`Player`, cues the excerpt and closes the player at the
    end (the excerpt's last second fades out) or on :meth:`stop`, which returns at once; the
    player is closed within about a second. Read :attr:`state`, :attr:`position_s` (seconds of
    the excerpt heard, from the mixer's clock) and :attr:`error` (one line) from any thread."""

    def __init__(self, play: PlayConfig, output_maker: Callable[[], OutputFactory]) -> None:
        self.play = copy.deepcopy(play)       # the player may change its volume; not the live one's
        self._maker = output_maker
        self._state: PreviewState = "idle"
        self._error = ""
        self._position = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.song_id = ""
        self.duration_s = 0.0

    @property
    def state(self) -> PreviewState:
        return self._state

    @property
    def active(self) -> bool:
        """Opening, loading or playing (the player may still be fading out after :meth:`stop`)."""
        return self._state in ("opening", "loading", "playing")

    @property
    def alive(self) -> bool:
        """The control thread still runs (it owns the player until it has closed it)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def position_s(self) -> float:
        return self._position

    @property
    def error(self) -> str:
        return self._error

    def start(self, path: str | Path, song_id: str, offset_s: float, duration_s: float) -> None:
        """Begin playing (once per preview); returns at once."""
        if self._thread is not None:
            raise RuntimeError("a preview plays once; make a new Preview for another song")
        if not duration_s > 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        self.song_id, self.duration_s = song_id, float(duration_s)
        self._state = "opening"
        self._thread = threading.Thread(target=self._run, args=(str(path), song_id, float(offset_s), float(duration_s)),
                                        name="soundtrack-preview", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 0.0) -> bool:
        """Fade out and close (on the preview's thread); wait up to ``wait`` s for it. True when
        the player is closed (or never opened)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and wait > 0:
            thread.join(wait)
        return not self.alive

    def _run(self, path: str, song_id: str, offset_s: float, duration_s: float) -> None:
        from moodsic_live.play.player import Player

        try:
            player = Player(self.play, self._maker())
        except Exception as exc:  # noqa: BLE001 - no device, PortAudio missing, a busy card: one line
            if not isinstance(exc, MoodsicError):
                log.exception("preview: cannot open the audio output")
            self._error = f"cannot play the preview: {one_line(exc)}"
            self._state = "failed"
            return
        end: PreviewState = "stopped"
        try:
            player.cue(path, song_id, offset_s, duration_s)
            self._state = "loading"
            started_at: float | None = None     # wall clock of the "started" event
            heard = False                       # the mixer has reported a position of this song
            while not self._stop.wait(POLL_S):
                for event in player.poll():
                    if event.kind == "failed":
                        raise MoodsicError(event.message)
                    if event.kind == "started":
                        started_at = time.monotonic()
                if started_at is None:
                    continue
                at = player.mixer.current_song_position_s   # None until the audio thread takes the song
                heard = heard or at is not None
                overdue = time.monotonic() - started_at > duration_s + 3.0
                if (heard and (at is None or at - offset_s >= duration_s - 1e-3)) or overdue:
                    self._position = duration_s                 # the excerpt has run out
                    end = "finished"
                    break
                if at is not None:
                    self._position = max(0.0, at - offset_s)
                    self._state = "playing"
        except Exception as exc:  # noqa: BLE001 - a file that fails to decode: one line
            if not isinstance(exc, MoodsicError):
                log.exception("preview of %s failed", path)
            self._error = f"cannot play the preview: {one_line(exc)}"
            end = "failed"
        finally:
            try:
                player.close()
            finally:
                self._state = end
