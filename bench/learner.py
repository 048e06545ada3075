"""The learner against a simulated listener: does it learn the hidden weights, do skips fall, what
does it cost (regret) against the fixed configured weights? Writes the "Simulation results" section
of docs/learning.md and the plot docs/images/learner_regret.png.

    python bench/learner.py [--sessions 30] [--plays 40] [--seed 0] [--write]

Three runs face the same simulated world and listener (moodsic_live/match/simulate.py): the learner
as configured (Thompson sampling), the learner without exploration (greedy, ``explore = 0``) and
learning off (the configured video weights, preferences 0.5). The plot is drawn with Qt offscreen
(QImage + QPainter), no matplotlib.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import machine_line, write_section  # noqa: E402
from moodsic_live.match.hybrid import TERMS  # noqa: E402
from moodsic_live.match.learner import LearnerSettings  # noqa: E402
from moodsic_live.match.simulate import DEFAULT_DISLIKED, SimulationResult, simulate  # noqa: E402

DOC = ROOT / "docs" / "learning.md"
IMAGE = ROOT / "docs" / "images" / "learner_regret.png"
SECTION = "Simulation results"

LEARN = "#1f77b4"
GREEDY = "#2ca02c"
FIXED = "#d62728"
TERM_COLOURS = {"fit": "#1f77b4", "arc": "#ff7f0e", "pref": "#2ca02c", "novelty": "#9467bd"}


# -- plot ---------------------------------------------------------------------------------------

def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = max(hi - lo, 1e-9)
    raw = span / n
    step = 10 ** np.floor(np.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * step >= raw:
            step *= m
            break
    first = np.ceil(lo / step - 1e-9) * step
    return [float(v) for v in np.arange(first, hi + step * 1e-6, step)]


class _Panel:
    """One chart in a rectangle of the image: data -> pixels, axes, ticks, labels, legend."""

    def __init__(self, painter, rect, x_range, y_range, title: str, xlabel: str, ylabel: str) -> None:
        from PySide6.QtCore import QRectF

        self.p = painter
        self.outer = rect
        self.area = QRectF(rect.x() + 78, rect.y() + 44, rect.width() - 100, rect.height() - 106)
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel

    def px(self, x, y):
        a = self.area
        fx = (np.asarray(x, float) - self.x0) / (self.x1 - self.x0)
        fy = (np.asarray(y, float) - self.y0) / (self.y1 - self.y0)
        return a.left() + fx * a.width(), a.bottom() - fy * a.height()

    def axes(self, font, small) -> None:
        from PySide6.QtCore import QPointF, QRectF, Qt
        from PySide6.QtGui import QColor, QPen

        p, a = self.p, self.area
        p.setFont(font)
        p.setPen(QColor("#111111"))
        p.drawText(QRectF(self.outer.x(), self.outer.y() + 6, self.outer.width(), 30),
                   Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, self.title)
        p.setFont(small)
        for v in _nice_ticks(self.y0, self.y1):
            _, y = self.px(self.x0, v)
            p.setPen(QPen(QColor("#e3e3e3"), 1))
            p.drawLine(QPointF(a.left(), y), QPointF(a.right(), y))
            p.setPen(QColor("#333333"))
            p.drawText(QRectF(a.left() - 70, y - 10, 62, 20), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       f"{v + 0.0:g}")
        for v in _nice_ticks(self.x0, self.x1, 6):
            x, _ = self.px(v, self.y0)
            p.setPen(QPen(QColor("#333333"), 1))
            p.drawLine(QPointF(x, a.bottom()), QPointF(x, a.bottom() + 5))
            p.drawText(QRectF(x - 40, a.bottom() + 6, 80, 20), Qt.AlignmentFlag.AlignHCenter, f"{v + 0.0:g}")
        p.setPen(QPen(QColor("#333333"), 1.5))
        p.drawLine(QPointF(a.left(), a.bottom()), QPointF(a.right(), a.bottom()))
        p.drawLine(QPointF(a.left(), a.top()), QPointF(a.left(), a.bottom()))
        p.setFont(font)
        p.drawText(QRectF(a.left(), a.bottom() + 28, a.width(), 26), Qt.AlignmentFlag.AlignHCenter, self.xlabel)
        p.save()
        p.translate(self.outer.x() + 18, a.center().y())
        p.rotate(-90)
        p.drawText(QRectF(-a.height() / 2, -12, a.height(), 26), Qt.AlignmentFlag.AlignHCenter, self.ylabel)
        p.restore()

    def line(self, x, y, colour: str, width: float = 2.5, dashed: bool = False, dots: bool = False) -> None:
        from PySide6.QtCore import QPointF, Qt
        from PySide6.QtGui import QColor, QPainterPath, QPen

        xs, ys = self.px(x, y)
        pen = QPen(QColor(colour), width)
        if dashed:
            pen.setStyle(Qt.PenStyle.DashLine)
        self.p.setPen(pen)
        if dots:
            self.p.setBrush(QColor(colour))
            for a, b in zip(xs, ys):
                self.p.drawEllipse(QPointF(a, b), 3.0, 3.0)
            self.p.setBrush(Qt.BrushStyle.NoBrush)
            return
        path = QPainterPath(QPointF(xs[0], ys[0]))
        for a, b in zip(xs[1:], ys[1:]):
            path.lineTo(a, b)
        self.p.drawPath(path)

    def legend(self, entries: list[tuple[str, str, bool]], font, corner: str = "top-left") -> None:
        from PySide6.QtCore import QPointF, QRectF, Qt
        from PySide6.QtGui import QColor, QFontMetricsF, QPen

        p, a = self.p, self.area
        fm = QFontMetricsF(font)
        w = max(fm.horizontalAdvance(label) for label, _, _ in entries) + 52
        h = 22 * len(entries) + 10
        x = a.left() + 12 if corner.endswith("left") else a.right() - w - 12
        y = a.top() + 8 if corner.startswith("top") else a.bottom() - h - 8
        p.setPen(QPen(QColor("#bbbbbb"), 1))
        p.setBrush(QColor(255, 255, 255, 235))
        p.drawRect(QRectF(x, y, w, h))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setFont(font)
        for i, (label, colour, dashed) in enumerate(entries):
            yy = y + 16 + 22 * i
            pen = QPen(QColor(colour), 3)
            if dashed:
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawLine(QPointF(x + 8, yy), QPointF(x + 36, yy))
            p.setPen(QColor("#111111"))
            p.drawText(QRectF(x + 42, yy - 10, w - 44, 20), Qt.AlignmentFlag.AlignVCenter, label)


def draw(learn: SimulationResult, greedy: SimulationResult, fixed: SimulationResult, path: Path,
         seed: int) -> None:
    """2 × 2 charts: cumulative regret, skip rate per session, learned weights, trade-off distance."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter

    app = QGuiApplication.instance() or QGuiApplication([])  # fonts need an application
    width, height = 1500, 1000
    image = QImage(width, height, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    font, small = QFont(), QFont()
    font.setPixelSize(17)
    small.setPixelSize(14)
    title = QFont()
    title.setPixelSize(20)
    title.setBold(True)
    p.setFont(title)
    p.setPen(QColor("#111111"))
    p.drawText(QRectF(0, 8, width, 30), Qt.AlignmentFlag.AlignHCenter,
               f"Learner vs fixed weights: simulated listener, {len(learn.skip_rate)} sessions × "
               f"{len(learn.regret) // len(learn.skip_rate)} plays, seed {seed}")
    cells = [QRectF(10 + (i % 2) * 745, 44 + (i // 2) * 478, 735, 470) for i in range(4)]
    sessions = np.arange(1, len(learn.skip_rate) + 1)
    plays = np.arange(1, len(learn.regret) + 1)

    # (a) cumulative regret
    top = max(fixed.cumulative_regret[-1], learn.cumulative_regret[-1], greedy.cumulative_regret[-1]) * 1.08
    a = _Panel(p, cells[0], (0, len(plays)), (0, top), "Cumulative regret (lower is better)",
               "plays", "expected reward lost vs oracle")
    a.axes(font, small)
    a.line(plays, fixed.cumulative_regret, FIXED)
    a.line(plays, greedy.cumulative_regret, GREEDY, 2.0, dashed=True)
    a.line(plays, learn.cumulative_regret, LEARN)
    a.legend([("fixed configured weights", FIXED, False), ("learner, greedy (explore 0)", GREEDY, True),
              ("learner, Thompson sampling", LEARN, False)], small)

    # (b) skip rate per session: dots per session, 5-session moving average as lines
    b = _Panel(p, cells[1], (0.5, len(sessions) + 0.5), (0, 0.6), "Skip rate per session",
               "session", "share of plays skipped")
    b.axes(font, small)
    for result, colour in ((fixed, FIXED), (learn, LEARN)):
        b.line(sessions, result.skip_rate, colour, dots=True)
        k = 5
        avg = np.convolve(result.skip_rate, np.ones(k) / k, mode="valid")
        b.line(sessions[k - 1:], avg, colour)
    b.legend([("fixed weights (dots: session, line: 5-session mean)", FIXED, False),
              ("learner (Thompson)", LEARN, False)], small, "top-right")

    # (c) learned weights per session vs hidden
    c = _Panel(p, cells[2], (0, len(sessions)), (0, 0.8), "Learned weights (solid) vs the listener's hidden (dashed)",
               "session (0 = configured prior)", "weight")
    c.axes(font, small)
    xs = np.arange(0, len(sessions) + 1)
    for i, t in enumerate(TERMS):
        ys = [learn.prior.as_array()[i]] + [w.as_array()[i] for w in learn.learned]
        c.line(xs, ys, TERM_COLOURS[t])
        c.line([0, len(sessions)], [learn.hidden.as_array()[i]] * 2, TERM_COLOURS[t], 1.8, dashed=True)
    c.legend([(f"{t} (hidden {learn.hidden.as_array()[i]:.2f})", TERM_COLOURS[t], False)
              for i, t in enumerate(TERMS)], small, "top-right")

    # (d) trade-off distance
    d = _Panel(p, cells[3], (0, len(sessions)), (0, max(0.4, float(learn.weight_distance.max()) * 1.1)),
               "Distance of fit/arc/novelty shares to the hidden ones", "session (0 = configured prior)",
               "L1 distance")
    d.axes(font, small)
    d.line(xs, fixed.weight_distance, FIXED)
    d.line(xs, greedy.weight_distance, GREEDY, 2.0, dashed=True)
    d.line(xs, learn.weight_distance, LEARN)
    d.legend([("fixed", FIXED, False), ("greedy", GREEDY, True), ("Thompson", LEARN, False)], small, "top-right")
    p.end()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(path), "PNG") or app is None:
        raise SystemExit(f"could not write {path}")


# -- report -------------------------------------------------------------------------------------

def _w(w) -> str:
    return ", ".join(f"{t} {v:.2f}" for t, v in zip(TERMS, w.as_array()))


def report(learn: SimulationResult, greedy: SimulationResult, fixed: SimulationResult, seed: int,
           seconds: float) -> str:
    n_s = len(learn.skip_rate)
    n_p = len(learn.regret) // n_s
    first, last = slice(0, 5), slice(n_s - 5, n_s)
    rows = []
    for name, r in (("learner (Thompson sampling)", learn), ("learner, greedy (explore 0)", greedy),
                    ("fixed configured weights", fixed)):
        rows.append(f"| {name} | {r.skip_rate[first].mean():.1%} | {r.skip_rate[last].mean():.1%} | "
                    f"{r.cumulative_regret[-1]:.1f} | {r.weight_distance[-1]:.3f} | "
                    f"{r.disliked_share[first].mean():.1%} → {r.disliked_share[last].mean():.1%} | "
                    f"{r.learned_transition:g} | {r.unsafe_picks} |")
    return "\n".join([
        f"## {SECTION}",
        "",
        f"`python bench/learner.py --write`: {n_s} sessions × {n_p} plays, seed {seed}, the same world and "
        f"listener for every run ({seconds:.1f} s for the three runs). {machine_line()}",
        "",
        "| | value |",
        "|---|---|",
        f"| hidden weights (the listener) | {_w(learn.hidden)} |",
        f"| configured prior (`match.hybrid.video`) | {_w(learn.prior)} |",
        f"| learned after {n_s} sessions | {_w(learn.learned[-1])} |",
        f"| fit/arc/novelty trade-off distance to hidden (L1 of shares, 0..2) | {learn.weight_distance[0]:.3f} "
        f"(prior) → {learn.weight_distance[-1]:.3f} (min over sessions {learn.weight_distance.min():.3f}) |",
        f"| all four weights, L1 to hidden | {learn.weight_distance_all[0]:.3f} → {learn.weight_distance_all[-1]:.3f} |",
        f"| mean learned preference of played tracks | {DEFAULT_DISLIKED} (disliked) {learn.preference_disliked:.2f}, "
        f"other genres {learn.preference_others:.2f} |",
        f"| DTW transition weight | learned {learn.learned_transition:g}, listener's best {learn.best_transition:g}, "
        f"configured 1 |",
        f"| exploratory picks | {learn.explored_share[first].mean():.0%} of plays in the first 5 sessions, "
        f"{learn.explored_share[last].mean():.0%} in the last 5 |",
        "",
        f"| run | skip rate, first 5 sessions | skip rate, last 5 | cumulative regret ({n_s * n_p} plays) "
        "| trade-off distance at the end | disliked genre's share of plays, first 5 → last 5 "
        "| transition weight at the end | picks outside the safety bound |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"No pick of any run was farther than the safety distance ({learn.safety_distance:g}) while a safe "
        f"candidate existed; no-safe-candidate fallbacks: {learn.fallbacks}. The pref weight ends above the "
        "listener's because the learner weighs its own, shrunk estimate of the taste (see above); the "
        "trade-off distance leaves it out.",
        "",
        f"Without exploration (greedy) the regret is {greedy.cumulative_regret[-1]:.1f} against "
        f"{learn.cumulative_regret[-1]:.1f}: in this world the candidates vary by themselves (the target walks, "
        "arcs are redrawn every play), so even greedy choices teach the weights; what greedy misses is the "
        f"transition weight, which it never moves from the first arm that looked good "
        f"({greedy.learned_transition:g} at the end, best {learn.best_transition:g}).",
        "",
        "![Cumulative regret, skip rate per session, learned weights and their distance to the hidden ones]"
        "(images/learner_regret.png)",
    ])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--plays", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="write docs/learning.md's section and the plot")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    learn = simulate(args.sessions, args.plays, args.seed)
    greedy = simulate(args.sessions, args.plays, args.seed, settings=LearnerSettings(explore=0.0))
    fixed = simulate(args.sessions, args.plays, args.seed, learn=False)
    seconds = time.perf_counter() - t0
    text = report(learn, greedy, fixed, args.seed, seconds)
    print(text)
    if args.write:
        draw(learn, greedy, fixed, IMAGE, args.seed)
        write_section(SECTION, text, DOC)
        print(f"\nwrote {DOC.relative_to(ROOT)} and {IMAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
