"""Offline: a soundtrack plan for a video file, by the same perceive → stabilise → match steps as live.

The video is sampled at ``--fps`` by its timestamps; every sampled frame is perceived, the
estimate is stabilised on the video's own clock, and the matcher decides (holding each choice
20–30 s) what plays. The plan lists the emotion at every sample and the music cues, in seconds
of the video; :mod:`moodsic_live.engine.render` turns it into audio of exactly the video's
duration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from moodsic_live.config import Config
from moodsic_live.errors import InputError, MoodsicError
from moodsic_live.library.store import Library
from moodsic_live.match.matcher import MatchDecision, Matcher
from moodsic_live.stabilise.metrics import RunMetrics
from moodsic_live.stabilise.stabiliser import Stabiliser

Say = Callable[[str], None]


class SoundtrackCancelled(MoodsicError):
    """The analysis of a video was cancelled (by its ``cancelled`` callback)."""


@dataclass(frozen=True)
class EmotionPoint:
    t: float
    valence_raw: float
    arousal_raw: float
    valence: float
    arousal: float
    valence_var: float
    arousal_var: float
    gated: bool
    faces: int


@dataclass(frozen=True)
class MusicCue:
    """Song ``song_id`` plays from ``segment_start`` (seconds into the song) at ``start`` (seconds
    into the video) until ``end``; it fades in over ``crossfade_s`` (the previous cue fades out
    over the same time, so cues overlap by it)."""

    start: float
    end: float
    song_id: str
    title: str
    artist: str
    path: str
    segment_start: float
    crossfade_s: float
    mood: str
    reason: str


@dataclass
class SoundtrackPlan:
    video: dict
    emotion: list[EmotionPoint] = field(default_factory=list)
    music: list[MusicCue] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The contract of ``analyze --out plan.json`` (other tools parse it)."""
        def rounded(d: dict) -> dict:
            return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}
        music = []
        for c in self.music:
            d = rounded(asdict(c))
            d.pop("reason")
            music.append(d)
        return {"video": self.video, "emotion": [rounded(asdict(e)) for e in self.emotion], "music": music,
                "metrics": self.metrics}


def matcher_for(library: Library, config: Config) -> Matcher:
    """The matcher over ``library`` as the config asks (alignment, mood clusters, mode)."""
    from moodsic_live.match.alignment import Aligner
    from moodsic_live.match.moods import MoodClusters

    seg = library.segments
    aligner = Aligner.fit(seg.va, config.match.alignment)
    clusters = MoodClusters.from_dict(library.meta["clusters"]) if "clusters" in library.meta else None
    return Matcher(seg, library.durations, config.match, aligner, clusters)


def cue_for(decision: MatchDecision, library: Library, crossfade_s: float) -> MusicCue:
    track = library.tracks[decision.track_index]
    return MusicCue(start=decision.t, end=decision.t, song_id=track.id, title=track.title, artist=track.artist,
                    path=str(track.path), segment_start=float(decision.position), crossfade_s=crossfade_s,
                    mood=decision.cluster, reason=decision.reason)


def close_cues(cues: list[MusicCue], duration: float) -> list[MusicCue]:
    """Each cue ends when the next one has faded in (its start + crossfade), the last one at
    ``duration``; the first one starts at 0 with no fade-in from another song."""
    out = []
    for i, c in enumerate(cues):
        nxt = cues[i + 1] if i + 1 < len(cues) else None
        end = min(duration, nxt.start + nxt.crossfade_s) if nxt else duration
        start = 0.0 if i == 0 else c.start
        out.append(MusicCue(**{**asdict(c), "start": start, "end": max(end, start),
                               "crossfade_s": 0.0 if i == 0 else c.crossfade_s}))
    return out


def video_info(path: Path) -> dict:
    """Duration, frame rate, frame count and size that the container declares. A missing file or
    one OpenCV cannot open raises :class:`InputError` (one line)."""
    import cv2

    from moodsic_live.capture.stills import _check_file

    _check_file(Path(path), "video")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(f"{path} is not a video OpenCV can open (try MP4/H.264, MKV or AVI)")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    fps = fps if fps and fps > 0 else 30.0
    return {"path": str(path), "fps": round(float(fps), 3), "frames": frames, "width": width, "height": height,
            "duration": round(frames / fps, 3) if frames else 0.0}


def plan_soundtrack(video: Path, library: Library, config: Config, perceiver, fps: float = 5.0,
                    say: Say = lambda s: None, info: dict | None = None, *,
                    progress: Callable[[float], None] | None = None,
                    cancelled: Callable[[], bool] | None = None) -> SoundtrackPlan:
    """Perceive, stabilise and match every ``1/fps`` s of ``video`` (``info``: its :func:`video_info`,
    when the caller has it already). A video that ends early (truncated or damaged) is planned up to
    where it could be read, and that is said.

    ``progress`` is called with the share of the video analysed (0..1) after every frame;
    ``cancelled`` is asked before every frame, and when it answers True the pass stops with
    :class:`SoundtrackCancelled`."""
    from moodsic_live.capture.stills import read_ahead, sample_video

    info = dict(info) if info is not None else video_info(Path(video))
    stabiliser = Stabiliser(config.stabilise)
    matcher = matcher_for(library, config)
    metrics = RunMetrics()
    plan = SoundtrackPlan(video=info)
    cues: list[MusicCue] = []
    last_t = -1.0
    length = float(info.get("duration") or 0.0)
    for frame in read_ahead(sample_video(Path(video), fps)):  # decoding overlaps perceiving
        if cancelled is not None and cancelled():
            raise SoundtrackCancelled("soundtrack cancelled")
        p = perceiver.perceive(frame)
        s = stabiliser.update(frame.t, p.fused)
        metrics.add(s)
        plan.emotion.append(EmotionPoint(t=frame.t, valence_raw=s.valence_raw, arousal_raw=s.arousal_raw,
                                         valence=s.valence, arousal=s.arousal, valence_var=s.valence_var,
                                         arousal_var=s.arousal_var, gated=s.gated_valence or s.gated_arousal,
                                         faces=len(p.faces)))
        decision = matcher.update(frame.t, s.as_va())
        if decision.switched:
            metrics.add_switch(frame.t)
            cues.append(cue_for(decision, library, config.play.crossfade_s))
        last_t = frame.t
        if progress is not None:
            progress(min(1.0, frame.t / length) if length > 0 else 0.0)
    read_to = last_t + 1.0 / max(info["fps"], 1e-6)
    duration = info["duration"]
    if not duration or read_to < duration - max(1.0 / fps, 0.5):
        if duration:
            say(f"{video}: the video could only be read to {read_to:.1f} s of its {duration:.1f} s; "
                "the soundtrack covers what could be read")
        duration = read_to
        info["duration"] = round(duration, 3)
        info["truncated"] = True
    plan.music = close_cues(cues, duration)
    plan.metrics = metrics.to_dict()
    return plan
