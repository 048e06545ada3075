"""Window benchmark: the real app window on the real engine, analysing while it displays; writes the GUI
section of docs/performance.md.

    QT_QPA_PLATFORM=offscreen python bench/gui.py [--seconds 120] [--source demo] [--library NAME]
                                                  [--output none] [--write]

The window (``MainWindow``, as ``moodsic-live gui`` builds it) runs ``--source`` (default: the built-in
demo, 30 fps) into ``--library`` (default: the newest built, else the demo, built on first use), so the
perceive worker analyses frames on the same 2 cores while the GUI thread draws. Measured on the GUI thread:

* frames shown per second: camera-view paints that put a new frame on screen (repaints of the same
  frame, e.g. for an overlay change, are not counted), per second; the report gives the median and
  the 5th percentile of the per-second counts;
* GUI-thread busy share: the time spent in the bridge's ticks (the slots they drive included) plus the
  time in every ``paintEvent`` of the window's widgets, over the wall time;
* event-loop lateness: a 10 ms timer's delay beyond its interval (p50/p95): how long input waits;
* RSS (``VmRSS``), sampled every second (max), and the analysed frames per second from the engine;
* the hypervisor's CPU steal over the run (/proc/stat), since a shared VM's paint times move with it.

Offscreen, Qt paints into its own backing store exactly as on a desktop, minus the compositor's copy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from machine import machine_line, write_section  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PaintMeter:
    """Wraps a widget class's paintEvent: counts calls and their time."""

    def __init__(self, cls):
        self.calls = 0
        self.seconds = 0.0
        self.new_frames = 0        # paints that showed a frame not painted before (CameraView)
        self._last_frame = -1
        original = cls.paintEvent
        meter = self

        def timed(widget, event):
            t0 = time.perf_counter()
            try:
                return original(widget, event)
            finally:
                meter.calls += 1
                meter.seconds += time.perf_counter() - t0
                shown = getattr(widget, "frames_shown", None)
                if shown is not None and shown != meter._last_frame:
                    meter._last_frame = shown
                    meter.new_frames += 1

        cls.paintEvent = timed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--source", default="demo")
    ap.add_argument("--library", default="")
    ap.add_argument("--output", default="none", help="device, none (default: silent real-time output) or FILE.wav")
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring (models, first song)")
    ap.add_argument("--write", action="store_true", help="write the GUI section of docs/performance.md")
    args = ap.parse_args()

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from moodsic_live.config import load_config
    from moodsic_live.play.steal import steal_jiffies
    from moodsic_live.gui.app import DARK
    from moodsic_live.gui.camera_view import CameraView
    from moodsic_live.gui.circumplex import CircumplexView
    from moodsic_live.gui.controls import Choices
    from moodsic_live.gui.host import EngineHost
    from moodsic_live.gui.timeline import TimelineView
    from moodsic_live.gui.window import MainWindow

    meters = {cls.__name__: PaintMeter(cls) for cls in (CameraView, CircumplexView, TimelineView)}
    app = QApplication([sys.argv[0]])
    app.setStyle("Fusion")
    app.setStyleSheet(DARK)
    config = load_config()
    settings = QSettings(str(Path("/tmp") / f"moodsic-bench-gui-{os.getpid()}.ini"), QSettings.Format.IniFormat)
    window = MainWindow(EngineHost(config), settings, Choices(source=args.source, library=args.library),
                        libraries=[], output=args.output)
    window.resize(1400, 860)
    window.show()
    window.start()

    camera = meters["CameraView"]
    samples: list[tuple[float, int, float, float, float]] = []   # t, camera paints, busy s, rss, fps analysed
    lateness: list[float] = []
    state = {"t0": None, "last": time.perf_counter()}

    def busy() -> float:
        return window.bridge.busy_s + sum(m.seconds for m in meters.values())

    def per_second() -> None:
        engine = window.host.engine
        if engine is None or engine.status is None or engine.status.now is None:
            return
        now = time.perf_counter()
        if state["t0"] is None:
            state["t0"] = now
        if now - state["t0"] < args.warmup:
            return
        samples.append((now, camera.new_frames, busy(), rss_mb(), engine.status.fps_analysed, steal_jiffies() or 0))
        if now - state["t0"] >= args.warmup + args.seconds:
            app.quit()

    def tick10() -> None:
        now = time.perf_counter()
        if state["t0"] is not None and now - state["t0"] >= args.warmup:
            lateness.append(max(0.0, (now - state["last"]) - 0.010) * 1e3)
        state["last"] = now

    sec = QTimer()
    sec.timeout.connect(per_second)
    sec.start(1000)
    fast = QTimer()
    fast.timeout.connect(tick10)
    fast.start(10)
    app.exec()
    window.close()

    if len(samples) < 3:
        print("not enough samples (did the engine start?)", file=sys.stderr)
        return 1
    t = np.array([s[0] for s in samples])
    paints = np.diff([s[1] for s in samples]) / np.diff(t)
    busy_share = (samples[-1][2] - samples[0][2]) / (t[-1] - t[0])
    rss = np.array([s[3] for s in samples])
    analysed = np.array([s[4] for s in samples])
    late = np.array(lateness)
    hz = os.sysconf("SC_CLK_TCK")
    steal = (samples[-1][5] - samples[0][5]) / hz / (t[-1] - t[0]) / (os.cpu_count() or 1)
    per_widget = {name: (m.seconds / max(1, m.calls) * 1e3) for name, m in meters.items()}
    lines = [
        "## GUI",
        "",
        f"`QT_QPA_PLATFORM=offscreen python bench/gui.py --seconds {args.seconds:g}` — the real window "
        f"(`MainWindow`) on the real engine: source `{args.source}`, output `{args.output}`, "
        f"{args.warmup:g} s warm-up, then {t[-1] - t[0]:.0f} s measured. {machine_line()}",
        "",
        "| measure | p50 | p5 / p95 | target |",
        "|---|---|---|---|",
        f"| new frames shown per second (camera view) | {np.median(paints):.1f} | p5 {np.percentile(paints, 5):.1f} "
        "| ≥ 25 |",
        f"| frames analysed per second (perceive, same CPU) | {np.median(analysed):.1f} | "
        f"p5 {np.percentile(analysed, 5):.1f} | |",
        f"| GUI-thread busy share (ticks + paints) | {100 * busy_share:.1f} % | | |",
        f"| event-loop lateness of a 10 ms timer | {np.median(late):.1f} ms | p95 {np.percentile(late, 95):.1f} ms | |",
        f"| RSS (VmRSS) | {np.median(rss):.0f} MB | max {rss.max():.0f} MB | ≤ 700 MB |",
        "",
        "Mean paint time per widget: " + ", ".join(f"{k} {v:.1f} ms" for k, v in per_widget.items()) + ". "
        f"Hypervisor steal during the run: {100 * steal:.1f} % of the CPUs (this VM shares its cores; paint times "
        "and the low percentiles move with it).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section("GUI", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
