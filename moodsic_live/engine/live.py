"""The live engine: capture → perceive → stabilise → match → play, on four threads and the audio callback.

    capture thread ──newest frame──▶ [LatestSlot] ──▶ perceive worker ──▶ [results Queue(8)]
        ──▶ conductor thread (stabilise + match + the player's control side) ──cue──▶ loader thread
        ──prepared buffers──▶ mixer ◀── audio callback (PortAudio) / paced file sink

The conductor ("stabilise-match") wakes for every perception, and at least every 0.25 s
without one (camera lost: the music keeps following the last stable estimate and songs still
hand over). It stabilises on the frames' own timestamps, asks the matcher (which enforces the
20–30 s dwell) on the engine clock, and cues the player on a switch; when the player says the
song is running out, or a cue failed to decode, it asks the matcher to skip to another song.
Music starts after the first perception, or after ``START_WAIT_S`` with a neutral estimate.

:meth:`LiveEngine.status` is a frozen snapshot, safe to read from any thread (the CLI prints
it once a second; the GUI will draw it).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from moodsic_live.capture.source import CaptureThread, RetryPolicy, SourceSpec, VideoLike, open_video
from moodsic_live.config import Config
from moodsic_live.engine.soundtrack import matcher_for
from moodsic_live.library.store import Library
from moodsic_live.match.matcher import MatchDecision
from moodsic_live.memory import prompt_gil, return_big_buffers_to_the_os
from moodsic_live.perceive.estimate import VA
from moodsic_live.perceive.worker import InferenceWorker
from moodsic_live.play.player import OutputFactory, Player
from moodsic_live.stabilise.metrics import RunMetrics
from moodsic_live.stabilise.stabiliser import Stabiliser, Stable

log = logging.getLogger("moodsic_live")
Say = Callable[[str], None]
TICK_S = 0.25
START_WAIT_S = 3.0
NEUTRAL = VA(0.0, 0.0, 1.0 / 3.0, 1.0 / 3.0)


@dataclass(frozen=True)
class Status:
    t: float
    stable: Stable | None
    faces: int
    mood: str
    playing: str          # "artist – title" of the current choice ("" before the first)
    dwell_left: float     # seconds before the matcher may switch again (0: free to switch)
    capture: str          # capture state: running / retrying / stopped / failed
    dropped_frames: int
    underflows: int
    provider: str

    def line(self) -> str:
        if self.stable is None:
            est = "waiting for the first estimate"
        else:
            s = self.stable
            est = (f"V {s.valence:+.2f} A {s.arousal:+.2f}" + (" (held)" if s.gated_valence or s.gated_arousal else "")
                   + f" faces {self.faces}")
        music = f"♪ {self.playing} [{self.mood}] dwell {self.dwell_left:4.1f} s" if self.playing else "♪ —"
        extra = "" if self.capture == "running" else f"  camera: {self.capture}"
        return f"{self.t:6.1f} s  {est}  {music}{extra}"


class LiveEngine:
    """Owns the threads of one live run. ``start()``, then read ``status``; ``stop()`` returns within
    about a second and leaves no thread behind."""

    def __init__(self, config: Config, library: Library, source: SourceSpec, output: OutputFactory,
                 say: Say = lambda s: None, clock: Callable[[], float] = time.monotonic,
                 opener: Callable[[SourceSpec], VideoLike] = open_video, retry: RetryPolicy = RetryPolicy()):
        self.config = config
        self.library = library
        self.say = say
        self.clock = clock
        self.worker = InferenceWorker(config.perceive, config.paths.models_dir)
        self.capture = CaptureThread(source, self.worker.submit, clock=clock, opener=opener, retry=retry)
        self.matcher = matcher_for(library, config)
        self.stabiliser = Stabiliser(config.stabilise)
        self.metrics = RunMetrics()
        self._output = output
        self.player: Player | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._conduct, name="stabilise-match", daemon=True)
        self._status: Status | None = None
        self._t0 = 0.0
        self._decision: MatchDecision | None = None
        self.errors: list[str] = []
        self._said_capture = ""
        self._track_of = {t.id: i for i, t in enumerate(library.tracks)}
        self._switch_interval: float | None = None

    # -- control (the caller's thread) --------------------------------------------------------

    def start(self) -> None:
        self.capture.check()               # a video file that cannot be opened fails here, in one line
        self.worker.start()                # loads the models (raises their one-line error)
        if self.worker.provider_note:
            self.say(f"inference runs on {self.worker.provider_note}")
        return_big_buffers_to_the_os()     # song buffers go back to the OS when freed: RSS stays flat
        try:
            self.player = Player(self.config.play, self._output)
        except BaseException:
            self.worker.stop()             # an output that cannot open leaves no thread behind
            raise
        self._switch_interval = prompt_gil()  # the audio callback gets the GIL within 1 ms (restored by stop)
        self._t0 = self.clock()
        self.capture.start()
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop every thread: capture, perceive, conductor, then fade the music out and close it."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        ok = self.capture.stop(max(0.05, 0.3 * timeout))
        ok &= self.worker.stop(max(0.05, 0.3 * timeout))
        self._thread.join(max(0.05, deadline - time.monotonic() - 0.3 * timeout))
        ok &= not self._thread.is_alive()
        if self.player is not None:
            ok &= self.player.close(max(0.1, deadline - time.monotonic()))
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
        return ok

    @property
    def status(self) -> Status | None:
        return self._status

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- the conductor thread -----------------------------------------------------------------

    def _now(self) -> float:
        return self.clock() - self._t0

    def _cue(self, d: MatchDecision) -> None:
        track = self.library.tracks[d.track_index]
        self.player.cue(track.path, track.id, d.position, fade_s=self.config.play.crossfade_s)
        self.metrics.add_switch(d.t)
        self._decision = d

    def _conduct(self) -> None:
        last: Stable | None = None
        faces = 0
        next_tick = 0.0
        player = self.player
        while not self._stop.is_set():
            try:
                p = self.worker.results.get(timeout=TICK_S / 2)
            except queue.Empty:
                p = None
            now = self._now()
            if p is not None:
                last = self.stabiliser.update(p.t, p.fused)  # frame time: seconds since capture start
                faces = len(p.faces)
                self.metrics.add(last)
                self.metrics.add_latency(self._latency(p.t))
            elif now < next_tick:
                continue
            next_tick = now + TICK_S
            for event in player.poll():
                if event.kind == "failed":
                    self.errors.append(event.message)
                    self.say(f"{event.message}; skipping to another song")
                    track = self._track_of.get(event.song_id)
                    if track is not None:
                        self.matcher.mark_unplayable(track)  # not chosen again this run
            if last is None and now < START_WAIT_S:
                self._publish(now, last, faces)
                continue
            estimate = last.as_va() if last is not None else NEUTRAL
            if self._decision is not None and player.needs_next:
                self._cue(self.matcher.skip(now, estimate))
            else:
                d = self.matcher.update(now, estimate)
                if d.switched:
                    self._cue(d)
                else:
                    self._decision = d
            self._publish(now, last, faces)
            self._watch_capture()
        if self.worker.error is not None:
            self.errors.append(str(self.worker.error))

    def _latency(self, frame_t: float) -> float:
        """Seconds from the frame being grabbed to now (its stable estimate is made). A frame's ``t`` is
        the capture clock (this engine's ``clock``) minus the capture thread's start, for every kind of
        source: cameras, streams, the demo and video files paced in real time alike."""
        return self.clock() - (self.capture.started_at + frame_t)

    def _watch_capture(self) -> None:
        st = self.capture.stats
        if st.last_error and st.state != "running" and st.last_error != self._said_capture:
            self._said_capture = st.last_error
            self.say(f"{st.last_error}; the music keeps playing and the camera is retried")
        elif st.state == "running" and self._said_capture:
            self._said_capture = ""
            self.say("camera is back")

    def _publish(self, now: float, stable: Stable | None, faces: int) -> None:
        d = self._decision
        playing = mood = ""
        dwell_left = 0.0
        if d is not None:
            track = self.library.tracks[d.track_index]
            playing, mood = track.label(), d.cluster
            p = self.matcher.playing
            if p is not None:
                dwell_left = max(0.0, self.config.match.dwell_seconds - (now - p.since))
        st = self.capture.stats
        self._status = Status(t=now, stable=stable, faces=faces, mood=mood, playing=playing, dwell_left=dwell_left,
                              capture=st.state, dropped_frames=self.worker.stats.dropped_frames,
                              underflows=self.player.underflows if self.player else 0,
                              provider=self.worker.provider_note)
