"""A live switch: what the conductor thread spends choosing the next song, the plain matcher's pick
against the learner's (the live loop's :class:`~moodsic_live.engine.learning.LivePicker`: hybrid terms,
a Thompson draw, safety filter, explanation). Synthetic segment tables of several sizes (the same as
bench/library.py), one ``Matcher.skip`` per random mood (a switch every call, the costly path); writes
the "Live choice with the learner" section of docs/performance.md.

    python bench/live_choice.py [--sizes 2000,40000,400000] [--switches 500] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from library import synthetic_segments  # noqa: E402
from machine import machine_line, write_section  # noqa: E402

from moodsic_live.config import Config  # noqa: E402
from moodsic_live.engine.learning import LivePicker  # noqa: E402
from moodsic_live.match.alignment import Aligner  # noqa: E402
from moodsic_live.match.index import SegmentIndex  # noqa: E402
from moodsic_live.match.learner import Learner  # noqa: E402
from moodsic_live.match.matcher import Matcher  # noqa: E402
from moodsic_live.match.moods import MoodClusters  # noqa: E402
from moodsic_live.perceive.estimate import VA  # noqa: E402

SECTION = "Live choice with the learner"


def switches(matcher: Matcher, moods: np.ndarray) -> np.ndarray:
    """Milliseconds of each switch (``skip``) for the moods in turn."""
    out = np.empty(len(moods))
    matcher.update(0.0, VA(0.0, 0.0, 0.01, 0.01))
    for i, (v, a) in enumerate(moods):
        e = VA(float(v), float(a), 0.01, 0.01)
        t0 = time.perf_counter()
        matcher.skip(30.0 * (i + 1), e)
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000,40000,400000")
    ap.add_argument("--switches", type=int, default=500)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args(argv)
    config = Config()
    rng = np.random.default_rng(0)
    moods = rng.uniform(-1, 1, (args.switches, 2))
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        table, durations = synthetic_segments(n, 0)
        aligner = Aligner.fit(table.va, "quantile")
        clusters = MoodClusters.fit(table.va, aligner)
        index = SegmentIndex(table)
        ids = [f"track{t}" for t in range(len(durations))]
        learner = Learner.from_config(config.match.hybrid, config.match.arcs, seed=0)
        for k in range(200):                      # a listener with some history
            learner.update("mirror", rng.uniform(0, 1, 4), ids[k % len(ids)], float(rng.uniform(-1, 1)))
        plain = Matcher(table, durations, config.match, aligner, clusters, index)
        picked = Matcher(table, durations, config.match, aligner, clusters, index,
                         picker=LivePicker(learner, ids, lambda: "mirror"))
        switches(plain, moods[:20])               # warm-up
        a, b = switches(plain, moods), switches(picked, moods)
        rows.append((n, len(durations), *np.percentile(a, [50, 95]), *np.percentile(b, [50, 95])))
        print(f"{n:>9,} segments: plain p50 {rows[-1][2]:.2f} p95 {rows[-1][3]:.2f} ms; with the learner p50 "
              f"{rows[-1][4]:.2f} p95 {rows[-1][5]:.2f} ms", flush=True)
    table = ["| segments (songs) | plain matcher p50 ms | p95 ms | with the learner p50 ms | p95 ms |",
             "|---:|---:|---:|---:|---:|"]
    table += [f"| {n:,} ({songs:,}) | {p50:.2f} | {p95:.2f} | {l50:.2f} | {l95:.2f} |"
              for n, songs, p50, p95, l50, l95 in rows]
    body = "\n".join([
        f"## {SECTION}", "", machine_line(),
        f"Command: `python bench/live_choice.py --sizes {args.sizes} --switches {args.switches} --write`.", "",
        "One switch of the live loop (`Matcher.skip`: target, candidates from the k-d tree, penalties, one "
        "candidate per song), with the matcher's own pick and with the learner's (`LivePicker`: hybrid terms, "
        "a Thompson draw of the weights, the safety filter, the explanation). It happens once per song change "
        "(a few per minute) on the conductor thread, never in the audio callback.", "", *table, ""])
    print(body)
    if args.write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
