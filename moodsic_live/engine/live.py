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
it once a second; the window draws it), and :attr:`LiveEngine.latest_frame` the newest camera
frame (for the preview; it never leaves the process).

Controls (any thread, never blocking): :meth:`LiveEngine.skip`, :meth:`like`, :meth:`replay`, :meth:`pause`,
:meth:`resume`, :meth:`set_volume`, :meth:`set_mode`, :meth:`set_dwell`, :meth:`set_crossfade` go
through a bounded command queue to the conductor, which applies them between two estimates (within
``TICK_S / 2``); :meth:`set_perception` (experts on/off, detector range, atmosphere only) rebuilds the
perceiver on the perceive worker's own thread. While paused, the music holds where it is, the matcher's
clock stands still (a song's dwell and position continue after resume) and estimates go on.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from moodsic_live.capture.source import CaptureThread, RetryPolicy, SourceSpec, VideoLike, open_video
from moodsic_live.config import Config, PerceiveConfig
from moodsic_live.engine.learning import Learning, LivePicker
from moodsic_live.engine.soundtrack import matcher_for
from moodsic_live.errors import MoodsicError
from moodsic_live.feedback import Feedback, FeedbackStore
from moodsic_live.frames import Frame
from moodsic_live.library.store import Library
from moodsic_live.match.hybrid import Ranked, reasons
from moodsic_live.match.matcher import DWELL_RANGE, MatchDecision, validate_config
from moodsic_live.memory import prompt_gil, return_big_buffers_to_the_os
from moodsic_live.perceive.estimate import VA, Perception
from moodsic_live.perceive.worker import InferenceWorker
from moodsic_live.play.player import OutputFactory, Player
from moodsic_live.stabilise.metrics import RunMetrics
from moodsic_live.stabilise.stabiliser import Stabiliser, Stable

log = logging.getLogger("moodsic_live")
Say = Callable[[str], None]
TICK_S = 0.25
START_WAIT_S = 3.0
NEUTRAL = VA(0.0, 0.0, 1.0 / 3.0, 1.0 / 3.0)
RATE_WINDOW_S = 2.0        # frame rates are measured over the last this many seconds
RECENT = 100               # detection rate and gating share: over the last this many estimates
STOP_FADE_SHARE = 0.6     # of stop()'s time: the fade-out (at most play.fade_out_s); the rest: threads, margins
COMMANDS = 64              # bounded control queue (a person cannot click faster than the conductor drains)


@dataclass(frozen=True)
class VideoSong:
    """A song ranked for a video, as the listening history keeps it: where it starts, how long the video
    is, and the ranking's context (the hybrid terms and weights, the DTW transition weight)."""

    library: str
    track_id: str
    title: str
    artist: str
    offset_s: float
    length_s: float
    context: dict


@dataclass(frozen=True)
class NowPlaying:
    """The current choice, for display."""

    track_id: str
    title: str
    artist: str
    mood: str
    position_s: float              # where the music is in the song (the mixer's play position)
    duration_s: float
    segment_va: tuple[float, float]  # the playing segment's V/A in the estimate space (the plane the window draws)
    target_va: tuple[float, float]   # the mode's target in the estimate space
    tags: str = ""                   # what the music tagger hears most clearly ("slow, quiet, ambient")
    why: str = ""                    # why this song, at a glance: "fits the moment 58 % · you like it 28 % · …"
    why_detail: str = ""             # the whole line: "score 0.74 = fits the moment 0.90×0.60 + …"


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
    # -- for the window (defaults keep the headless line unchanged) ---------------------------------
    perception: Perception | None = None   # the newest perception (faces with boxes, experts, raw estimate)
    now: NowPlaying | None = None
    up_next: str = ""                      # what a switch now would pick: "artist – title [mood]"
    crossfading: bool = False
    paused: bool = False
    volume: float = 1.0
    mode: str = "mirror"
    fps_in: float = 0.0                    # frames from the source per second
    fps_analysed: float = 0.0              # perceptions per second
    detection_rate: float = 0.0            # share of recent perceptions with a face
    gating_share: float = 0.0              # share of recent estimates with a gate closed (either dimension)
    switches_per_min: float = 0.0
    songs: int = 0                         # songs started so far (a change of this marks a song change)
    capture_error: str = ""
    problem: str = ""                      # the newest problem worth showing (one line; "" when none)

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
                 opener: Callable[[SourceSpec], VideoLike] = open_video, retry: RetryPolicy = RetryPolicy(),
                 feedback: FeedbackStore | None = None):
        self.config = config
        self.library = library
        self.source = source
        self.clock = clock
        self._say = say
        self.feedback = feedback if feedback is not None else FeedbackStore(config.paths.feedback)
        self.worker = InferenceWorker(config.perceive, config.paths.models_dir)
        self.latest_frame: Frame | None = None   # the newest frame from the source (the window's preview)
        self.capture = CaptureThread(source, self._on_frame, clock=clock, opener=opener, retry=retry)
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
        self._play_event: int | None = None   # the listening history's id of the current play
        self._video_play: tuple[int, str] | None = None   # a soundtrack preview playing: (its id, track)
        self._why = ("", "")                  # why the current song was chosen: (at a glance, the whole line)
        self.learning: Learning | None = None  # the learner, in step with the listening history (from start)
        self._picker: LivePicker | None = None
        self.errors: list[str] = []
        self._said_capture = ""
        self._track_of = {t.id: i for i, t in enumerate(library.tracks)}
        self._switch_interval: float | None = None
        self._commands: queue.Queue[Callable[[], None]] = queue.Queue(COMMANDS)
        self._paused_at: float | None = None      # engine time the pause began
        self._paused_total = 0.0                  # seconds paused before that
        self._perception: Perception | None = None
        self._faces_seen: deque[bool] = deque(maxlen=RECENT)
        self._gated_seen: deque[bool] = deque(maxlen=RECENT)
        self._rates: deque[tuple[float, int, int]] = deque()
        self._problem = ""
        self._up_next_text, self._up_next_at, self._up_next_for = "", -math.inf, None  # the look-ahead, once a tick

    def say(self, text: str) -> None:
        self._problem = text
        self._say(text)

    def _on_frame(self, frame: Frame) -> None:
        """Capture thread: keep the newest frame for the preview, hand it to perceive."""
        self.latest_frame = frame
        self.worker.submit(frame)

    # -- control (the caller's thread) --------------------------------------------------------

    def start(self) -> None:
        self.capture.check()               # a video file that cannot be opened fails here, in one line
        self.worker.start()                # loads the models (raises their one-line error)
        if self.worker.provider_note:       # information, not a problem (Status.problem stays empty)
            self._say(f"inference runs on {self.worker.provider_note}")
        return_big_buffers_to_the_os()     # song buffers go back to the OS when freed: RSS stays flat
        try:
            if self.feedback.open():       # a damaged listening history is kept aside and a new one started
                self.say(self.feedback.notice)
        except MoodsicError as exc:        # the music plays without a history
            self.say(str(exc))
        # the learner picks among the matcher's candidates by the hybrid score (learned from earlier runs)
        self.learning = Learning.open(self.config, self.feedback, say=self.say)
        self._picker = LivePicker(self.learning.learner, [t.id for t in self.library.tracks],
                                  lambda: self.config.match.mode)
        self.matcher.picker = self._picker
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
        """Stop every thread within about ``timeout``: the conductor, then the music fades out
        (``play.fade_out_s``, at most 0.6 × ``timeout``) while capture and perceive stop, then the
        output closes. The conductor applies the controls still queued (a like just before the stop is recorded)
        before it ends; every listening event is committed when it is added. Safe on an engine
        that never started or stopped half way through :meth:`start` (a stop signal during the
        model load)."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        ok = True
        faded = 0.0                        # when the fade-out ends (time.monotonic()); 0: no fade
        if self._thread.ident is not None:  # the conductor was started: it wakes within TICK_S / 2
            self._thread.join(max(0.05, 0.3 * timeout))
            ok &= not self._thread.is_alive()
        if self.player is not None and ok:  # this thread alone controls the player now: the fade-out
            # starts at once and runs while capture and perceive stop (the player's close waits for it)
            fade = min(self.config.play.fade_out_s, STOP_FADE_SHARE * timeout)
            self.player.mixer.stop(fade)
            faded = time.monotonic() + fade
        ok &= self.capture.stop(max(0.05, 0.25 * timeout))
        try:
            ok &= self.worker.stop(max(0.05, 0.25 * timeout))
        except RuntimeError:               # its thread was never started (stopped during start)
            pass
        if self.player is not None:
            # the fade is never cut short by a slow capture or perceive stop: close waits for its end
            now = time.monotonic()
            ok &= self.player.close(max(0.1, deadline - now, (faded - now) / 0.8 + 0.1))  # it waits 0.8 of this
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
        return ok

    @property
    def status(self) -> Status | None:
        return self._status

    # -- controls (any thread; applied by the conductor) ------------------------------------------

    def _send(self, what: str, command: Callable[[], None]) -> None:
        try:
            self._commands.put_nowait(command)
        except queue.Full:
            self.say(f"too many controls at once; {what} was not applied, try again")

    def skip(self) -> None:
        """Crossfade to the matcher's next choice now (another song), whatever the dwell; recorded."""
        self._send("skip", self._do_skip)

    def replay(self) -> None:
        """Play the current song again from where its choice started (recorded: the listener wants more)."""
        self._send("replay", self._do_replay)

    def like(self) -> None:
        """Record that the current song fits (with the time, the song position and the room's estimate)."""
        self._send("like", lambda: self._record("liked"))

    def pause(self) -> None:
        self._send("pause", self._do_pause)

    def reset_learning(self) -> None:
        """Forget the learned weights and preferences (the listening history stays)."""
        self._send("reset learning", self._do_reset_learning)

    def delete_history(self) -> None:
        """Delete the listening history and everything learned from it."""
        self._send("delete history", self._do_delete_history)

    def like_soundtrack(self, song: VideoSong) -> None:
        """Record that the listener likes a song ranked for a video, and learn from it (when its preview
        is playing: once the preview ends, with how it ended)."""
        self._send("like", lambda: self._do_video_event("liked", song, 0.0))

    def soundtrack_preview(self, kind: str, song: VideoSong, heard_s: float) -> None:
        """How a preview of a song ranked for a video went: ``started``, ``skipped`` (``heard_s`` seconds
        in) or ``completed``; recorded like a live play (a skip in the first 10 s is a strong no) and
        learned from when it ends."""
        if kind not in ("started", "skipped", "completed"):
            raise ValueError(f"no preview event {kind!r}")
        self._send("preview", lambda: self._do_video_event(kind, song, heard_s))

    def resume(self) -> None:
        self._send("resume", self._do_resume)

    def set_volume(self, volume: float) -> None:
        volume = min(1.0, max(0.0, float(volume)))
        self._send("volume", lambda: self.player.set_volume(volume))

    def set_mode(self, mode: str, *, goal: str | None = None, target: tuple[float, float] | None = None) -> None:
        """mirror / regulate (toward ``goal``: calm, energise, uplift) / target (the venue's ``target`` V/A).
        Raises MoodsicError (one line) for a value the matcher cannot use; nothing changes then."""
        changes: dict = {"mode": mode}
        if goal is not None:
            changes["regulate_goal"] = goal
        if target is not None:
            changes["target_valence"], changes["target_arousal"] = (float(x) for x in target)
        validate_config(dataclasses.replace(self.config.match, **changes))
        self._send("mode", lambda: self._apply_match(changes, mode_changed=True))

    def set_dwell(self, seconds: float) -> None:
        lo, hi = DWELL_RANGE
        if not lo <= seconds <= hi:
            raise MoodsicError(f"dwell {seconds:g} s is outside {lo:g}..{hi:g} s")
        self._send("dwell", lambda: self._apply_match({"dwell_seconds": float(seconds)}))

    def set_crossfade(self, seconds: float) -> None:
        if not 0.0 <= seconds <= 12.0:
            raise MoodsicError(f"crossfade {seconds:g} s is outside 0..12 s")
        self._send("crossfade", lambda: setattr(self.config.play, "crossfade_s", float(seconds)))

    def set_perception(self, **changes) -> PerceiveConfig:
        """Experts on/off (``face_enabled``, ``scene_enabled``), ``detector_range``, ``atmosphere_only``:
        the perceive worker rebuilds its models on its own thread before its next frame."""
        config = dataclasses.replace(self.worker.config, **changes)
        self.worker.reconfigure(config)
        return config

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- the conductor thread -----------------------------------------------------------------

    def _now(self) -> float:
        return self.clock() - self._t0

    def _music_now(self, now: float) -> float:
        """The matcher's clock: engine time without the time spent paused."""
        paused = self._paused_total + (now - self._paused_at if self._paused_at is not None else 0.0)
        return now - paused

    def _estimate(self) -> VA:
        return self._last.as_va() if self._last is not None else NEUTRAL

    def _apply_match(self, changes: dict, mode_changed: bool = False) -> None:
        for key, value in changes.items():
            setattr(self.config.match, key, value)
        if mode_changed:
            self.matcher.restart_mode()

    def _do_skip(self) -> None:
        if self._decision is None:
            return
        self._record("skipped")
        self._cue(self.matcher.skip(self._music_now(self._now()), self._estimate()))

    def _do_replay(self) -> None:
        d = self.matcher.replay(self._music_now(self._now()), self._estimate())
        if d is None:
            return
        self._record("replayed")
        if self._stop.is_set():
            return
        track = self.library.tracks[d.track_index]
        self.player.cue(track.path, track.id, d.position, fade_s=self.config.play.crossfade_s)
        self._decision = d

    def _do_pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = self._now()
            self.player.pause()

    def _do_resume(self) -> None:
        if self._paused_at is not None:
            self._paused_total += self._now() - self._paused_at
            self._paused_at = None
            self.player.resume()

    def _do_reset_learning(self) -> None:
        if self.learning is not None:
            self.learning.reset()
            self._say("forgot what was learned from listening (the history is kept)")

    def _do_delete_history(self) -> None:
        removed = self.feedback.delete_all()
        self._play_event = None
        if self.learning is not None:
            self.learning.learner.reset()
            self.learning.through = 0
        self._say(f"listening history deleted ({len(removed)} file{'s' if len(removed) != 1 else ''})")

    def _do_video_event(self, kind: str, song: VideoSong, heard_s: float) -> None:
        def add(kind: str, **fields) -> int:
            return self.feedback.add(Feedback.now(
                kind, library=song.library, track_id=song.track_id, title=song.title, artist=song.artist,
                mode="video", **fields))

        open_play = self._video_play if self._video_play and self._video_play[1] == song.track_id else None
        try:
            if kind == "started":
                context = {**song.context, "duration_s": round(song.offset_s + song.length_s, 2)}
                self._video_play = (add("started", position_s=song.offset_s, context=context), song.track_id)
                return
            if kind == "liked" and open_play is not None:
                add("liked", position_s=song.offset_s, recommendation=open_play[0])
                return                      # learned when the preview ends, with how it ended
            if kind == "liked":
                shown = add("shown", position_s=song.offset_s, context=song.context)
                add("liked", position_s=song.offset_s, recommendation=shown)
            elif open_play is not None:     # skipped / completed: the preview is over
                add(kind, position_s=song.offset_s + max(0.0, heard_s), recommendation=open_play[0])
                self._video_play = None
            else:
                return
        except MoodsicError as exc:
            self.say(str(exc))
            return
        if self.learning is not None:
            self.learning.learn()

    def _record(self, kind: str, position: float | None = None, context: dict | None = None) -> int | None:
        """One listening event about the current choice (``started`` opens a play; the listener's
        actions and ``completed`` answer it); a history that cannot be written is said, once a time."""
        d = self._decision
        if d is None:
            return None
        track = self.library.tracks[d.track_index]
        if position is None:
            position = self.player.mixer.current_song_position_s if self.player else None
        s = self._last
        try:
            return self.feedback.add(Feedback.now(
                kind, library=self.library.name, track_id=track.id, title=track.title, artist=track.artist,
                position_s=float(position if position is not None else d.position),
                valence=s.valence if s else None, arousal=s.arousal if s else None, mode=self.config.match.mode,
                context=context or {}, recommendation=None if kind in ("shown", "started") else self._play_event))
        except MoodsicError as exc:
            self.say(str(exc))
            return None

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command()
            except MoodsicError as exc:
                self.say(str(exc))

    def _cue(self, d: MatchDecision, ended: bool = False) -> None:
        if self._stop.is_set():            # stopping: no new song (nor a play in the history that is never heard)
            return
        if ended:
            self._record("completed")      # the previous song played to its end
        track = self.library.tracks[d.track_index]
        self.player.cue(track.path, track.id, d.position, fade_s=self.config.play.crossfade_s)
        self.metrics.add_switch(d.t)
        if self.learning is not None:
            self.learning.learn()          # the plays before this one are over: their rewards are final
        self._decision = d
        picked = self._picker.last if self._picker is not None else None
        self._why = ("", "")
        if picked is not None and picked.track_id == track.id:
            c = picked.choice
            glance = reasons(Ranked(0, c.score, c.terms), c.weights)
            self._why = (glance + (" (trying a safe alternative)" if c.explored else ""), c.explanation)
            self._record("shown", position=d.position, context={
                "hybrid": c.context, "terms": [round(float(x), 4) for x in c.terms], "weights": c.weights.to_dict(),
                "why": c.explanation, "explored": c.explored, "safe": c.safe, "candidates": picked.candidates,
                "distance": round(c.distance, 4)})
        self._play_event = self._record("started", position=d.position, context={
            "duration_s": round(float(track.duration), 2), "reason": str(d.reason),
            "target": [round(float(x), 4) for x in d.target]})

    def _conduct(self) -> None:
        self._last: Stable | None = None
        faces = 0
        next_tick = 0.0
        player = self.player
        while not self._stop.is_set():
            try:
                p = self.worker.results.get(timeout=TICK_S / 2)
            except queue.Empty:
                p = None
            self._run_commands()
            now = self._now()
            if p is not None:
                last = self._last = self.stabiliser.update(p.t, p.fused)  # frame time: seconds since capture start
                faces = len(p.faces)
                self._perception = p
                self._faces_seen.append(bool(p.boxes))
                self._gated_seen.append(last.gated_valence or last.gated_arousal)
                self.metrics.add(last)
                self.metrics.add_latency(self._latency(p.t))
            elif now < next_tick:
                continue
            last = self._last
            next_tick = now + TICK_S
            for event in player.poll():
                if event.kind == "failed":
                    self.errors.append(event.message)
                    self.say(f"{event.message}; skipping to another song")
                    track = self._track_of.get(event.song_id)
                    if track is not None:
                        self.matcher.mark_unplayable(track)  # not chosen again this run
            if (last is None and now < START_WAIT_S) or self._paused_at is not None:
                self._publish(now, last, faces)
                continue
            estimate = self._estimate()
            mnow = self._music_now(now)
            if self._decision is not None and player.needs_next:
                self._cue(self.matcher.skip(mnow, estimate), ended=True)
            else:
                d = self.matcher.update(mnow, estimate)
                if d.switched:
                    self._cue(d)
                else:
                    self._decision = d
            self._publish(now, last, faces)
            self._watch_capture()
        self._run_commands()               # stopping: the listener's last actions still reach the history
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

    def _rates_now(self, now: float, delivered: int, processed: int) -> tuple[float, float]:
        rates = self._rates
        rates.append((now, delivered, processed))
        while len(rates) > 2 and now - rates[1][0] >= RATE_WINDOW_S:
            rates.popleft()
        t0, d0, p0 = rates[0]
        span = now - t0
        return ((delivered - d0) / span, (processed - p0) / span) if span > 0 else (0.0, 0.0)

    def _now_playing(self, d: MatchDecision) -> NowPlaying:
        track = self.library.tracks[d.track_index]
        mixer = self.player.mixer
        position = mixer.current_song_position_s
        if position is None or mixer.current_song_id != track.id:
            position = d.position            # still loading: where the matcher says it will start
        inverse = self.matcher.aligner.inverse
        seg = inverse(d.segment.valence, d.segment.arousal)
        target = inverse(*d.target)
        return NowPlaying(track.id, track.title, track.artist, d.cluster, float(position), float(track.duration),
                          (float(seg[0]), float(seg[1])), (float(target[0]), float(target[1])),
                          track.top_tags, *self._why)

    def _up_next(self, now: float) -> str:
        """What a switch now would pick, looked ahead at most once a tick (a status is published for every
        perception; the learner's ranking of the candidates need not run that often), and again at once
        after a song change."""
        playing = self.matcher.playing
        key = (playing.track, playing.since) if playing is not None else None
        if key == self._up_next_for and now - self._up_next_at < TICK_S:
            return self._up_next_text
        nxt = self.matcher.peek(self._music_now(now), self._estimate())
        text = ""
        if nxt is not None:
            track = self.library.tracks[nxt.track_index]
            text = f"{track.label()} [{nxt.cluster}]" if nxt.cluster else track.label()
        self._up_next_text, self._up_next_at, self._up_next_for = text, now, key
        return text

    def _publish(self, now: float, stable: Stable | None, faces: int) -> None:
        d = self._decision
        playing = mood = ""
        dwell_left = 0.0
        now_playing = None
        up_next = ""
        if d is not None:
            track = self.library.tracks[d.track_index]
            playing, mood = track.label(), d.cluster
            p = self.matcher.playing
            if p is not None:
                dwell_left = max(0.0, self.config.match.dwell_seconds - (self._music_now(now) - p.since))
            now_playing = self._now_playing(d)
            up_next = self._up_next(now)
        st = self.capture.stats
        fps_in, fps_analysed = self._rates_now(now, st.frames_delivered, self.worker.stats.processed)
        switches = len(self.metrics.switches)
        minutes = self._music_now(now) / 60.0
        player = self.player
        self._status = Status(
            t=now, stable=stable, faces=faces, mood=mood, playing=playing, dwell_left=dwell_left,
            capture=st.state, dropped_frames=self.worker.stats.dropped_frames,
            underflows=player.underflows if player else 0, provider=self.worker.provider_note,
            perception=self._perception, now=now_playing, up_next=up_next,
            crossfading=player is not None and sum(1 for v in player.mixer.voices() if v.fading_out) > 0,
            paused=self._paused_at is not None, volume=self.config.play.volume, mode=self.config.match.mode,
            fps_in=fps_in, fps_analysed=fps_analysed,
            detection_rate=_share(self._faces_seen), gating_share=_share(self._gated_seen),
            switches_per_min=max(0, switches - 1) / minutes if minutes > 0.5 else 0.0, songs=switches,
            capture_error=st.last_error if st.state != "running" else "",
            problem=self.worker.problem or self._problem)


def _share(flags: deque[bool]) -> float:
    return sum(flags) / len(flags) if flags else math.nan
