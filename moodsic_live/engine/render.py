"""A soundtrack plan as audio: the same mixer as live playback, driven by a file sink.

Each cue's song is decoded from its segment start for as long as the cue lasts (plus its
fade-out); cues become play/crossfade events at their start times, and the whole mix is
rendered to exactly the video's duration, with the master fade-out ending at the last sample.
A song that cannot be decoded is left out and the song before it plays on, so a bad file never
leaves a gap.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from moodsic_live.config import PlayConfig
from moodsic_live.engine.soundtrack import MusicCue, SoundtrackPlan
from moodsic_live.errors import InputError, MoodsicError
from moodsic_live.play.loader import PreparedBuffer, load_segment
from moodsic_live.play.sink import FileSink, PlanEvent, SinkReport

Say = Callable[[str], None]
SAMPLE_RATE = 48000


def _load(cue: MusicCue, rate: int, fade_out_s: float) -> PreparedBuffer:
    return load_segment(cue.path, rate, cue.segment_start, cue.end - cue.start + fade_out_s, song_id=cue.song_id)


def playable_cues(cues: list[MusicCue], rate: int, fade_out_s: float,
                  say: Say) -> list[tuple[MusicCue, PreparedBuffer]]:
    """Decode every cue; a cue whose song fails is dropped and the previous cue extended over it."""
    out: list[tuple[MusicCue, PreparedBuffer]] = []
    for cue in cues:
        try:
            out.append((cue, _load(cue, rate, fade_out_s)))
            continue
        except InputError as exc:
            say(f"{exc}; the previous song plays on")
        if out:  # extend the previous cue over this one
            prev, _ = out.pop()
            longer = replace(prev, end=cue.end)
            try:
                out.append((longer, _load(longer, rate, fade_out_s)))
            except InputError:
                out.append((prev, _load(prev, rate, fade_out_s)))
    return out


def plan_events(cues: list[tuple[MusicCue, PreparedBuffer]], duration: float, config: PlayConfig) -> list[PlanEvent]:
    events: list[PlanEvent] = []
    for i, (cue, buffer) in enumerate(cues):
        if i == 0:
            events.append(PlanEvent.play(cue.start, buffer))
        else:
            events.append(PlanEvent.crossfade(cue.start, buffer, cue.crossfade_s))
    fade = min(config.fade_out_s, duration)
    events.append(PlanEvent.stop(max(duration - fade, 0.0), fade))
    return events


def render_soundtrack(plan: SoundtrackPlan, out: Path, config: PlayConfig, say: Say = lambda s: None,
                      sample_rate: int = SAMPLE_RATE) -> SinkReport:
    """Write the plan's music to ``out`` (WAV/FLAC/OGG by suffix), exactly the video's length."""
    duration = float(plan.video["duration"])
    cues = playable_cues(plan.music, sample_rate, config.fade_out_s, say)
    if not cues:
        raise MoodsicError("no song of the soundtrack could be decoded; rebuild the library "
                           "(`moodsic-live library build SOURCE`)")
    try:
        return FileSink(out, sample_rate, config).render(plan_events(cues, duration, config), duration)
    except (OSError, RuntimeError, TypeError) as exc:  # soundfile: unknown format, unwritable path
        raise MoodsicError(f"cannot write {out} ({str(exc).splitlines()[0][:120]}); use a .wav or .flac path "
                           "in a writable folder") from None


def mux(video: Path, audio: Path, out: Path) -> None:
    """``video`` with ``audio`` as its soundtrack, via ffmpeg (video stream copied, audio AAC)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise MoodsicError(f"--mux {out}: ffmpeg is not installed (apt-get install ffmpeg); the plan and the "
                           "soundtrack were written")
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-i", str(video), "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0",
           "-c:v", "copy", "-c:a", "aac", "-shortest", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise MoodsicError(f"--mux {out}: ffmpeg failed ({last[:160]})")
