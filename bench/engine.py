"""Live engine benchmark: the real LiveEngine for N minutes, then the offline ``analyze`` speed;
writes the Engine section of docs/performance.md.

    python bench/engine.py [--minutes 10] [--device DEV] [--source demo] [--library NAME]
                           [--analyze-seconds 60] [--write]

Live part: ``LiveEngine`` (capture thread, inference worker, conductor, player) runs the
``--source`` (default: the built-in demo, real photographs panned, 30 fps; perceived at most
``perceive.max_rate_hz`` = 10 times a second) into the demo
library (built on first use, then cached) for ``--minutes``, playing on a real-time device:
``--device`` (a PortAudio device), else JACK's dummy driver (``jackd --no-realtime -d dummy
-r 48000 -p 480``, started here when ``jackd`` is installed and no JACK server runs; it consumes
blocks at the wall clock's pace like a sound card), else the real-time-paced file output (no
callback times then: said in the report). Every second it samples RSS (``VmRSS`` of
/proc/self/status), the underflow count, the process CPU time and the callback durations
(harvested from ``DeviceOutput.callback_stats`` before its ring wraps); every 20 ms the
hypervisor's CPU steal (/proc/stat), to tell the underflows that coincide with steal (the VM
stood still, not our callback) from the others. Capture-to-stable latency comes from the
engine's ``RunMetrics`` (frame grabbed on the capture clock → stable estimate made).

Offline part: a 640x480 MP4 (mp4v, ``--video-fps``) of ``--analyze-seconds`` made from real
photos (../shared/data/faces_dev, else scikit-image's sample photos) with a slow pan, then
the code path of ``moodsic-live analyze VIDEO --out plan.json --fps 5`` (``plan_soundtrack``:
decode, perceive, stabilise, match) and, timed apart, ``--render`` (``render_soundtrack``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# libjack would otherwise try to start a JACK server of its own whenever PortAudio initialises
# without one running (set before sounddevice is imported anywhere).
os.environ.setdefault("JACK_NO_START_SERVER", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import machine_line, write_section  # noqa: E402
from moodsic_live.config import Config  # noqa: E402
from moodsic_live.play.jack import DummyJack  # noqa: E402
from moodsic_live.play.steal import steal_jiffies, unexplained_underflows  # noqa: E402

DOC = ROOT / "docs" / "performance.md"
SECTION = "## Engine"
FACES_DEV = Path(os.environ.get("MOODSIC_SHARED", ROOT.parent / "shared")) / "data" / "faces_dev"
STEAL_PERIOD_S = 0.02
WARMUP_S = 60.0
ANALYZE_FPS = 5.0
TARGETS = {"callback_p99_pct": 10.0, "underflows": 0, "latency_p95_ms": 100.0, "analyze_x": 20.0,
           "rss_growth_pct": 5.0}


# ---- the machine ------------------------------------------------------------------------------

def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory of this process in MB from /proc/self/status (``VmRSS``: all of it;
    ``RssAnon``: its private heap and stacks, where a leak or fragmentation would show, without
    the shared libraries and the JACK server's shared-memory buffers), NaN where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return math.nan


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def ticks_per_second() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100


# ---- the audio device -------------------------------------------------------------------------



# ---- the live run -----------------------------------------------------------------------------

@dataclass
class Sample:
    t: float           # seconds since the engine started
    rss_mb: float
    underflows: int
    steal: int | None
    cpu_s: float
    anon_mb: float = math.nan


def load_library(config: Config, name: str | None):
    """``name``, else the demo library (built on first use: it renders and analyses music, a minute or more)."""
    from moodsic_live.library.builder import build_library, open_library, resolve_library_path

    if name:
        return open_library(config, name)
    path = resolve_library_path(config, "demo")
    if path is not None and path.is_file():
        return open_library(config, "demo")
    print("building the demo library (first use only)", flush=True)
    library, _ = build_library("demo", config, "demo", say=lambda s: print(f"  {s}", flush=True))
    return library


def _harvest(output, seen: int, into: list[np.ndarray]) -> tuple[int, int]:
    """Append the callback durations since ``seen`` callbacks; returns (callbacks now, durations lost)."""
    stats = output.callback_stats
    new = stats.callbacks - seen
    if new <= 0:
        return stats.callbacks, 0
    k = min(new, len(stats.durations_ns))
    # a copy: a slice would be a view keeping the whole 128 KB snapshot alive (the bench itself grew
    # by 7 MB a minute that way)
    into.append(stats.durations_ns[len(stats.durations_ns) - k:].copy())
    return stats.callbacks, new - k


def _per_minute(samples: list[Sample]) -> list[tuple[str, float]]:
    """RSS at the start, at each whole minute and at the end: ``(label, MB)``."""
    if not samples:
        return []
    out = [("0 s", samples[0].rss_mb)]
    for k in range(1, int(samples[-1].t // 60) + 1):
        s = next(s for s in samples if s.t >= 60 * k)
        out.append((f"{k} min", s.rss_mb))
    if samples[-1].t - 60 * (len(out) - 1) >= 1:
        out.append((f"end ({samples[-1].t:.0f} s)", samples[-1].rss_mb))
    return [(label, round(mb, 1)) for label, mb in out]


def run_live(config: Config, library, source: str, output, minutes: float, output_note: str) -> dict:
    from moodsic_live.capture.source import parse_source
    from moodsic_live.engine.live import LiveEngine

    seconds = minutes * 60.0
    spec = parse_source(source, loop=True)
    engine = LiveEngine(config, library, spec, output, say=lambda s: print(f"  engine: {s}", flush=True))
    engine.start()
    dev = engine.player.output if hasattr(engine.player.output, "callback_stats") else None
    print(f"live: {spec.label} -> library {library.name!r} ({len(library.tracks)} tracks) -> {output_note}; "
          f"{minutes:g} min", flush=True)
    steal: list[tuple[int, int | None]] = [(time.perf_counter_ns(), steal_jiffies())]
    samples: list[Sample] = []
    durations: list[np.ndarray] = []
    seen = lost = 0
    cpu0 = cpu_seconds()
    started = time.monotonic()
    next_sample = started
    stopped_early = ""
    try:
        while (now := time.monotonic()) - started < seconds:
            steal.append((time.perf_counter_ns(), steal_jiffies()))
            if now >= next_sample:
                next_sample += 1.0
                samples.append(Sample(now - started, rss_mb(), engine.player.underflows, steal[-1][1],
                                      cpu_seconds() - cpu0, rss_mb("RssAnon")))
                if dev is not None:
                    seen, n = _harvest(dev, seen, durations)
                    lost += n
                if len(samples) % 30 == 0:
                    s, st = samples[-1], engine.status
                    print(f"  {s.t:5.0f} s  RSS {s.rss_mb:6.1f} MB  underflows {s.underflows}  "
                          f"estimates {engine.metrics.latency_count}  {st.line() if st else ''}", flush=True)
                if not engine.running:
                    stopped_early = "the conductor thread stopped"
                    break
            time.sleep(STEAL_PERIOD_S)
        wall = time.monotonic() - started
    finally:
        clean = engine.stop()
    time.sleep(0.05)
    steal.append((time.perf_counter_ns(), steal_jiffies()))
    cpu = cpu_seconds() - cpu0

    out: dict = {"source": spec.label, "output": output_note, "minutes": minutes, "wall_s": wall,
                 "clean_stop": clean, "errors": list(engine.errors), "stopped_early": stopped_early,
                 "cpu_pct_of_one_core": 100.0 * cpu / wall if wall > 0 else math.nan,
                 "dropped_frames": engine.worker.stats.dropped_frames}
    m = engine.metrics
    kept = np.array(m.latencies_s) * 1e3
    out["latency_ms"] = {"p50": m.latency_ms(50), "p95": m.latency_ms(95), "p99": m.latency_ms(99),
                         "max": float(kept.max()) if kept.size else math.nan, "count": m.latency_count}
    out["estimates_per_s"] = m.latency_count / wall if wall > 0 else math.nan
    out["switches"] = len(m.switches)

    known = [v for _, v in steal if v is not None]
    out["steal_s"] = (known[-1] - known[0]) / ticks_per_second() if len(known) >= 2 else math.nan
    if dev is not None:
        seen, n = _harvest(dev, seen, durations)
        lost += n
        stats = dev.callback_stats
        all_ns = np.concatenate(durations) if durations else np.zeros(0, np.int64)
        block_ns = stats.block_s * 1e9
        pct = (lambda q: 100.0 * float(np.percentile(all_ns, q)) / block_ns) if all_ns.size and block_ns else (
            lambda q: math.nan)
        unexplained = unexplained_underflows(stats.underflow_times_ns, steal)
        out["callback"] = {"callbacks": stats.callbacks, "timed": int(all_ns.size), "lost": lost,
                           "block_ms": stats.block_s * 1e3, "p50_pct": pct(50), "p99_pct": pct(99),
                           "max_pct": 100.0 * float(all_ns.max()) / block_ns if all_ns.size and block_ns else math.nan,
                           "errors": stats.errors, "priming": stats.priming}
        out["underflows"] = stats.underflows
        classified = len(stats.underflow_times_ns)
        out["underflows_with_steal"] = classified - len(unexplained)
        out["underflows_unclassified"] = stats.underflows - classified   # beyond the ring of times kept
    else:
        out["callback"] = None
        out["underflows"] = engine.player.underflows if engine.player else 0
        out["underflows_with_steal"] = None
        out["underflows_unclassified"] = None

    # RSS after the warm-up (a minute, or half of a shorter run) vs at the end
    warm = min(WARMUP_S, wall / 2)
    after = [s for s in samples if s.t >= warm]
    if after:
        first, last = after[0], samples[-1]
        out["rss"] = {"warmup_s": warm, "at_warmup_mb": first.rss_mb, "end_mb": last.rss_mb,
                      "max_mb": max(s.rss_mb for s in after), "end_t": last.t,
                      "growth_pct": 100.0 * (last.rss_mb - first.rss_mb) / first.rss_mb,
                      "anon_at_warmup_mb": first.anon_mb, "anon_end_mb": last.anon_mb,
                      "anon_max_mb": max(s.anon_mb for s in after),
                      "anon_growth_pct": 100.0 * (last.anon_mb - first.anon_mb) / first.anon_mb,
                      "per_minute_mb": _per_minute(samples)}
    else:
        out["rss"] = None
    out["samples"] = [s.__dict__ for s in samples]
    return out


# ---- the offline analyze ----------------------------------------------------------------------

def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Cover ``size`` (w, h) with ``image`` (scaled up a little so the pan never shows a border)."""
    w, h = size
    scale = 1.1 * max(w / image.shape[1], h / image.shape[0])
    return cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                      interpolation=cv2.INTER_AREA)


def photos() -> tuple[list[np.ndarray], str]:
    """Real photos (BGR): the faces_dev set (neutral and smiling people), else scikit-image's samples."""
    labels = FACES_DEV / "labels.csv"
    if labels.is_file():
        rows = list(csv.DictReader(open(labels, encoding="utf-8")))
        images = [cv2.imread(str(FACES_DEV / r["file"])) for r in rows]
        images = [im for im in images if im is not None]
        if images:
            return images, f"{len(images)} photos of faces from {FACES_DEV.relative_to(FACES_DEV.parents[2])}"
    from skimage import data

    images = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "motorcycle"):
        fn = getattr(data, name, None) or getattr(data, "stereo_" + name, None)
        if fn is None:
            continue
        im = fn()
        im = im[0] if isinstance(im, tuple) else im
        images.append(cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    return images, f"{len(images)} scikit-image sample photos"


def make_video(path: Path, seconds: float, fps: float, size: tuple[int, int] = (640, 480),
               per_photo_s: float = 5.0) -> str:
    """An MP4 (mp4v) of ``seconds`` at ``fps``: each photo for ``per_photo_s`` with a slow pan."""
    images, what = photos()
    fitted = [_fit(im, size) for im in images]
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} with mp4v")
    n = round(seconds * fps)
    for i in range(n):
        t = i / fps
        im = fitted[int(t // per_photo_s) % len(fitted)]
        phase = (t % per_photo_s) / per_photo_s
        x = round((im.shape[1] - w) * phase)
        y = round((im.shape[0] - h) * 0.5)
        writer.write(np.ascontiguousarray(im[y:y + h, x:x + w]))
    writer.release()
    return what


def run_analyze(config: Config, library, seconds: float, video_fps: float, work: Path) -> dict:
    from moodsic_live.engine.render import render_soundtrack
    from moodsic_live.capture.stills import sample_video
    from moodsic_live.engine.soundtrack import plan_soundtrack, video_info
    from moodsic_live.perceive.perceiver import Perceiver

    video = work / "analyze.mp4"
    t0 = time.perf_counter()
    what = make_video(video, seconds, video_fps)
    make_s = time.perf_counter() - t0
    info = video_info(video)
    t0 = time.perf_counter()
    decoded = sum(1 for _ in sample_video(video, ANALYZE_FPS))   # the decoding alone (every frame is decoded)
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    perceiver = Perceiver(config.perceive, config.paths.models_dir)
    load_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        plan = plan_soundtrack(video, library, config, perceiver, ANALYZE_FPS, info=info)
        plan_s = time.perf_counter() - t0
    finally:
        perceiver.close()
    (work / "plan.json").write_text(json.dumps(plan.to_json()) + "\n", encoding="utf-8")
    t0 = time.perf_counter()
    report = render_soundtrack(plan, work / "soundtrack.wav", config.play)
    render_s = time.perf_counter() - t0
    duration = float(plan.video["duration"])
    return {"video": f"{info['width']}x{info['height']} mp4v at {info['fps']:g} fps, {duration:.1f} s ({what})",
            "duration_s": duration, "make_s": make_s, "decode_s": decode_s, "decoded_samples": decoded, "model_load_s": load_s, "plan_s": plan_s,
            "plan_x": duration / plan_s, "samples": len(plan.emotion), "cues": len(plan.music),
            "render_s": render_s, "render_x": duration / render_s, "render_rate": report.sample_rate,
            "provider": perceiver.runtime.note}


# ---- the report -------------------------------------------------------------------------------

def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def _ok(passed: bool | None) -> str:
    return "n/a" if passed is None else ("yes" if passed else "**no**")


def report(live: dict, analyze: dict, command: str) -> str:
    cb, lat, rss = live["callback"], live["latency_ms"], live["rss"]
    minutes = live["wall_s"] / 60
    u = live["underflows"]
    if live["underflows_with_steal"] is not None:
        u_text = f"{u} ({live['underflows_with_steal']} with hypervisor steal around them"
        u_text += f", {live['underflows_unclassified']} too early to classify)" if live["underflows_unclassified"] else ")"
    else:
        u_text = f"{u} (late blocks of the paced file output)"
    rows = [
        ("audio callback p50, % of the block", "", _f(cb and cb["p50_pct"], ".2f") + " %" if cb else "n/a", None),
        ("audio callback p99, % of the block", f"<= {TARGETS['callback_p99_pct']:g} %",
         _f(cb["p99_pct"], ".2f") + " %" if cb else "n/a (no device)",
         cb["p99_pct"] <= TARGETS["callback_p99_pct"] if cb and math.isfinite(cb["p99_pct"]) else None),
        (f"underflows in {minutes:.1f} min", "0", u_text, u == 0),
        ("capture-to-stable latency p50", "", f"{_f(lat['p50'], '.1f')} ms", None),
        ("capture-to-stable latency p95", f"<= {TARGETS['latency_p95_ms']:g} ms", f"{_f(lat['p95'], '.1f')} ms",
         lat["p95"] <= TARGETS["latency_p95_ms"] if math.isfinite(lat["p95"]) else None),
        (f"RSS growth, {_f(rss and rss['warmup_s'], '.0f')} s to {_f(rss and rss['end_t'], '.0f')} s",
         f"<= {TARGETS['rss_growth_pct']:g} %",
         f"{rss['growth_pct']:+.1f} % ({rss['at_warmup_mb']:.0f} -> {rss['end_mb']:.0f} MB, max {rss['max_mb']:.0f})"
         if rss else "n/a", rss["growth_pct"] <= TARGETS["rss_growth_pct"] if rss else None),
        ("of which private (RssAnon: heap, stacks)", "",
         f"{rss['anon_growth_pct']:+.1f} % ({rss['anon_at_warmup_mb']:.0f} -> {rss['anon_end_mb']:.0f} MB, "
         f"max {rss['anon_max_mb']:.0f})" if rss else "n/a", None),
        (f"analyze plan at {ANALYZE_FPS:g} Hz, x real time", f">= {TARGETS['analyze_x']:g}x",
         f"{analyze['plan_x']:.1f}x ({analyze['plan_s']:.1f} s for {analyze['duration_s']:.0f} s)",
         analyze["plan_x"] >= TARGETS["analyze_x"]),
        ("of which decoding the video alone, x real time", "",
         f"{analyze['duration_s'] / analyze['decode_s']:.0f}x ({analyze['decode_s']:.1f} s)", None),
        ("analyze --render, x real time", "", f"{analyze['render_x']:.0f}x ({analyze['render_s']:.2f} s)", None),
    ]
    table = ["| measure | target | measured | met |", "|---|---:|---:|:---:|"]
    table += [f"| {name} | {target} | {measured} | {_ok(ok) if target else ''} |" for name, target, measured, ok in rows]
    cb_line = (f"{cb['callbacks']:,} callbacks of {cb['block_ms']:.2f} ms ({cb['timed']:,} timed), max "
               f"{_f(cb['max_pct'], '.1f')} % of the block, errors {cb['errors']}" if cb else
               "no device: the mix went to the real-time-paced file output, which has no callback to time")
    per_min = rss["per_minute_mb"] if rss else []
    notes = [
        f"Live: {live['source']} into {live['library']} for {minutes:.1f} min, audio on {live['output']}; "
        f"{cb_line}. Estimates {lat['count']:,} ({live['estimates_per_s']:.1f} per s), frames dropped by the "
        f"worker {live['dropped_frames']:,}, music switches {live['switches']}, process CPU "
        f"{live['cpu_pct_of_one_core']:.0f} % of one core. Latency: frame grabbed (capture clock) to its "
        f"stable estimate made (p99 {_f(lat['p99'], '.1f')} ms, max {_f(lat['max'], '.1f')} ms). "
        f"RSS (MB): {', '.join(f'{label} {mb:.0f}' for label, mb in per_min) or 'n/a'}. CPU stolen by the hypervisor "
        f"during the run: {_f(live['steal_s'], '.1f')} s.",
        f"Analyze: {analyze['video']}; the code path of `moodsic-live analyze VIDEO --out plan.json --fps 5` "
        f"(decode, perceive, stabilise, match: {analyze['samples']} samples, {analyze['cues']} cues; provider "
        f"{analyze['provider']}; model load {analyze['model_load_s']:.2f} s not counted), then `--render` "
        f"at {analyze['render_rate']} Hz timed apart. OpenCV decodes every frame of the video to sample "
        f"it at 5 Hz, so the decoding alone bounds the speed, and more so the higher the video's frame rate.",
    ]
    body = [SECTION, "", "Targets on this 2-core CPU: audio callback p99 <= 10 % of the block; 0 underruns in 10 "
            "minutes; capture-to-stable latency p95 <= 100 ms; analyze >= 20x real time at 5 Hz for 640x480 "
            "video; RSS stable (<= 5 % growth over 10 min, after a warm-up minute).",
            machine_line(), f"Command: `{command}`. The machine is a shared 2-core VM: underflows that "
            "coincide with hypervisor CPU steal (the whole VM stood still) are counted apart.", "",
            "\n".join(table), "", *[n + "\n" for n in notes]]
    return "\n".join(body).rstrip("\n") + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the live run (default 10)")
    ap.add_argument("--device", help="PortAudio output device (name or index); default: JACK's dummy driver, "
                    "started here if jackd is installed, else the real-time-paced file output")
    ap.add_argument("--source", default="demo", help="capture source as for `run --source` (default demo; "
                    "a video file loops)")
    ap.add_argument("--library", help="library name (default: the demo library, built on first use)")
    ap.add_argument("--analyze-seconds", type=float, default=60.0,
                    help="length of the generated 640x480 video for the analyze speed (default 60)")
    ap.add_argument("--video-fps", type=float, default=30.0, help="frame rate of that video (default 30)")
    ap.add_argument("--json", type=Path, help="also write every number (and the per-second samples) here")
    ap.add_argument("--write", action="store_true", help="update the Engine section of docs/performance.md")
    args = ap.parse_args()
    if not args.minutes > 0 or not args.analyze_seconds > 0:
        ap.error("--minutes and --analyze-seconds must be positive")

    from moodsic_live.play.player import device_output, paced_file_output

    config = Config()
    library = load_library(config, args.library)
    with tempfile.TemporaryDirectory(prefix="moodsic-bench-engine-") as tmp:
        work = Path(tmp)
        jack = None
        try:
            if args.device:
                config.play.device = args.device
                output, note = device_output(config.play), f"PortAudio device {args.device!r}"
            else:
                jack = DummyJack(work)
                if jack.device is not None:
                    config.play.device = jack.device
                    output, note = device_output(config.play), jack.note
                else:
                    note = f"the real-time-paced file output ({jack.note}; no callback times, no device underflows)"
                    print(f"no real-time device: {jack.note}; falling back to {note}", flush=True)
                    output = paced_file_output(work / "live.wav", config.play, subtype="PCM_16")
            live = run_live(config, library, args.source, output, args.minutes, note)
        finally:
            if jack is not None:
                jack.close()
        live["library"] = f"library {library.name!r} ({len(library.tracks)} tracks)"
        print(f"analyze: making a {args.analyze_seconds:g} s 640x480 video at {args.video_fps:g} fps", flush=True)
        analyze = run_analyze(config, library, args.analyze_seconds, args.video_fps, work)

    command = f"python bench/engine.py --minutes {args.minutes:g}"
    if args.device:
        command += f" --device {args.device}"
    if args.source != "demo":
        command += f" --source {args.source}"
    if args.library:
        command += f" --library {args.library}"
    command += f" --analyze-seconds {args.analyze_seconds:g}"
    if args.video_fps != 30.0:
        command += f" --video-fps {args.video_fps:g}"
    command += " --write"
    text = report(live, analyze, command)
    print()
    print(text)
    if live["errors"] or live["stopped_early"] or not live["clean_stop"]:
        print(f"run problems: errors {live['errors']}, stopped early: {live['stopped_early'] or 'no'}, "
              f"clean stop: {live['clean_stop']}")
    if args.json:
        args.json.write_text(json.dumps({"live": live, "analyze": analyze}, indent=1, default=str) + "\n")
    if args.write:
        write_section("Engine", text)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
