"""``moodsic-live eval veatic ROOT``: the live pipeline against VEATIC's continuous human ratings.

VEATIC (Ren et al., "VEATIC: Video-based Emotion and Affect Tracking in Context Dataset", WACV
2024) has 124 film, documentary and home-video clips whose target character's valence and arousal
observers tracked in real time; the averaged ratings hold one value per video frame, on the
annotation grid's [-1, 1] (the ``veatic`` scale). The release layout, as its own code reads it::

    ROOT/videos/<id>.mp4                    (``video/`` is accepted too)
    ROOT/rating_averaged/<id>_valence.csv   row i = frame i, no header: ``frame,value``
    ROOT/rating_averaged/<id>_arousal.csv   (a file of values alone, one a line, is read too)

Every video runs through exactly what ``analyze`` runs on a video file: it is sampled at
``perceive.video_fps`` (5 Hz by default) by its timestamps, each sample is perceived (detector,
face and scene experts, fusion) and the fused estimate is stabilised on the video's own clock.
Each annotated frame is then given the estimate in force at its time (the last sample at or
before it; frames before the first sample are dropped, as are frames past the end of what could
be read), and the ratings are compared with the *raw* fused estimates and the *stabilised*
output: MAE, Spearman rho and Lin's CCC per dimension, per video and pooled over all frames of all
videos. Face coverage is the share of perceived samples that had a face.

Bad input: a missing ROOT or video folder is one :class:`InputError` line; a video without both
rating files, with unreadable or out-of-scale ratings, or one OpenCV cannot read is counted and
skipped with one line; no usable video at all is an :class:`InputError`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError, ScaleError
from moodsic_live.evaluate.metrics import ccc, mae, spearman
from moodsic_live.scales import to_reference

Say = Callable[[str], None]
DIMS = ("valence", "arousal")
KINDS = ("raw", "stabilised")
MEASURES = {"mae": mae, "spearman": spearman, "ccc": ccc}
VIDEO_DIRS = ("videos", "video")
RATINGS_DIR = "rating_averaged"


# --- the dataset ------------------------------------------------------------------------------

def _id_key(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (10**12, name)


def find_videos(root: Path) -> tuple[Path, dict[str, Path]]:
    """The video folder under ``root`` and its videos by id (file stem), in id order."""
    from moodsic_live.capture.stills import is_video

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; give the VEATIC root (videos/<id>.mp4 and "
                         f"{RATINGS_DIR}/<id>_valence.csv, <id>_arousal.csv)")
    folder = next((root / d for d in VIDEO_DIRS if (root / d).is_dir()), None)
    if folder is None:
        raise InputError(f"{root}: no videos/ folder; expected the VEATIC layout videos/<id>.mp4 and "
                         f"{RATINGS_DIR}/<id>_valence.csv, <id>_arousal.csv")
    videos = {p.stem: p for p in folder.iterdir() if p.is_file() and is_video(p)}
    if not videos:
        raise InputError(f"{folder}: no video files (expected <id>.mp4)")
    if not (root / RATINGS_DIR).is_dir():
        raise InputError(f"{root}: no {RATINGS_DIR}/ folder; expected {RATINGS_DIR}/<id>_valence.csv and "
                         "<id>_arousal.csv beside videos/")
    return folder, dict(sorted(videos.items(), key=lambda kv: _id_key(kv[0])))


def read_ratings(path: Path, dim: str) -> np.ndarray:
    """One rating file as reference-space values, index = frame. Rows are ``frame,value`` (the
    release; the value is the second cell, row i is frame i as VEATIC's own loader reads them) or a
    value alone; a header line and blank lines are skipped. Raises :class:`InputError` (unreadable,
    empty, not numbers) or :class:`ScaleError` (a value outside [-1, 1])."""
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name} cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    values = []
    for n, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row if c.strip()]
        if not cells:
            continue
        try:
            values.append(float(cells[1] if len(cells) >= 2 else cells[0]))
        except ValueError:
            if values:  # only a first (header) line may be text
                raise InputError(f"{path.name} line {n}: {','.join(row)!r} is not frame,value") from None
    if not values:
        raise InputError(f"{path.name} has no ratings")
    return np.asarray(to_reference(np.asarray(values), "veatic", dim, allow_nan=True), np.float64)


# --- running the pipeline over one video ---------------------------------------------------------

@dataclass
class Track:
    """What the pipeline said about one video: per perceived sample, its time, the raw fused and
    the stabilised estimate (columns valence, arousal) and whether it had a face."""

    t: np.ndarray
    raw: np.ndarray
    stable: np.ndarray
    face: np.ndarray
    read_to: float  # seconds of video that could be read


def run_pipeline(video: Path, perceiver, config, fps: float) -> Track:
    """Perceive -> stabilise over ``video`` sampled at ``fps``, as ``analyze`` does."""
    from moodsic_live.capture.stills import read_ahead, sample_video
    from moodsic_live.stabilise.stabiliser import Stabiliser

    stabiliser = Stabiliser(config.stabilise)
    t, raw, stable, face = [], [], [], []
    for frame in read_ahead(sample_video(Path(video), fps)):  # decoding overlaps perceiving
        p = perceiver.perceive(frame)
        s = stabiliser.update(frame.t, p.fused)
        t.append(frame.t)
        raw.append((s.valence_raw, s.arousal_raw))
        stable.append((s.valence, s.arousal))
        face.append(p.face is not None)
    if not t:
        raise InputError(f"{video} has no readable video frames")
    return Track(np.asarray(t), np.asarray(raw, np.float64).reshape(-1, 2),
                 np.asarray(stable, np.float64).reshape(-1, 2), np.asarray(face, bool), t[-1] + 1.0 / fps)


def align(track: Track, n_frames: int, native_fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Annotated frames ``0..n_frames-1`` (frame k at ``k / native_fps``) that have an estimate, and
    for each the index of the sample in force then: the last at or before it (half a frame of
    slack absorbs the rounding of the declared frame rate). Frames before the first sample and past
    what could be read are left out."""
    times = np.arange(n_frames) / native_fps
    idx = np.searchsorted(track.t, times + 0.5 / native_fps, side="right") - 1
    keep = (idx >= 0) & (times < track.read_to - 1e-9)
    return np.flatnonzero(keep), idx[keep]


# --- the report ------------------------------------------------------------------------------

def _nan_to_none(x):
    if isinstance(x, float):
        return None if not math.isfinite(x) else round(x, 4)
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


def agreement(truth: np.ndarray, raw: np.ndarray, stable: np.ndarray) -> dict:
    """``{kind: {dim: {measure: value}}}`` of (n, 2) ratings against (n, 2) estimates."""
    out = {}
    for kind, pred in (("raw", raw), ("stabilised", stable)):
        out[kind] = {dim: {name: fn(truth[:, d], pred[:, d]) for name, fn in MEASURES.items()}
                     for d, dim in enumerate(DIMS)}
    return out


@dataclass
class VideoResult:
    video: str
    frames: int          # annotated frames compared
    samples: int         # perceived samples
    face_coverage: float  # share of samples with a face
    scores: dict         # {raw|stabilised: {valence|arousal: {mae, spearman, ccc}}}

    def as_dict(self) -> dict:
        return _nan_to_none({"video": self.video, "frames": self.frames, "samples": self.samples,
                             "face_coverage": self.face_coverage, "scores": self.scores})


@dataclass
class VeaticReport:
    root: str
    fps: float
    videos: list[VideoResult] = field(default_factory=list)
    overall: VideoResult | None = None  # pooled over every compared frame of every video
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"root": self.root, "fps": self.fps, "videos_used": len(self.videos),
                "videos_skipped": len(self.skipped), "skipped": list(self.skipped),
                "overall": self.overall.as_dict() if self.overall else None,
                "videos": [v.as_dict() for v in self.videos]}


def evaluate_veatic(root: Path, config, models_dir: Path, *, videos: list[str] | None = None,
                    fps: float | None = None, say: Say = print) -> VeaticReport:
    """Run the pipeline over every VEATIC video under ``root`` (or only the ids in ``videos``) at
    ``fps`` (default ``config.perceive.video_fps``) and compare with the human ratings."""
    from moodsic_live.engine.soundtrack import video_info
    from moodsic_live.perceive.perceiver import Perceiver

    root = Path(root)
    fps = float(fps if fps is not None else config.perceive.video_fps)
    if not fps > 0 or not math.isfinite(fps):
        raise InputError(f"--fps must be a positive number, got {fps:g}")
    _, found = find_videos(root)
    if videos:
        wanted = [str(v) for v in videos]
        missing = [v for v in wanted if v not in found]
        selected = {v: found[v] for v in wanted if v in found}
    else:
        missing, selected = [], found
    report = VeaticReport(root=str(root), fps=fps)

    def skip(line: str) -> None:
        report.skipped.append(line)
        say(f"skipped {line}")

    for v in missing:
        skip(f"{v}: no such video under {root}")
    jobs = []
    for vid, path in selected.items():
        files = [root / RATINGS_DIR / f"{vid}_{dim}.csv" for dim in DIMS]
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            skip(f"{vid}: no rating file {' or '.join(absent)} in {RATINGS_DIR}/")
            continue
        try:
            ratings = [read_ratings(f, dim) for f, dim in zip(files, DIMS)]
        except (InputError, ScaleError) as exc:
            skip(f"{vid}: {exc}")
            continue
        jobs.append((vid, path, ratings))
    if not jobs:
        raise InputError(f"{root}: no usable VEATIC video (each needs videos/<id>.mp4 with "
                         f"{RATINGS_DIR}/<id>_valence.csv and <id>_arousal.csv)")

    perceiver = Perceiver(config.perceive, models_dir)
    pooled_truth, pooled_raw, pooled_stable, pooled_face = [], [], [], []
    try:
        for vid, path, (val, aro) in jobs:
            try:
                info = video_info(path)
                track = run_pipeline(path, perceiver, config, fps)
            except InputError as exc:
                skip(f"{vid}: {exc}")
                continue
            n = min(len(val), len(aro))
            frames, idx = align(track, n, info["fps"])
            if not len(frames):
                skip(f"{vid}: no annotated frame lies within the perceived video")
                continue
            truth = np.column_stack([val[frames], aro[frames]])
            finite = np.isfinite(truth).all(axis=1)
            truth, idx = truth[finite], idx[finite]
            raw, stable = track.raw[idx], track.stable[idx]
            result = VideoResult(vid, int(len(truth)), int(len(track.t)), float(track.face.mean()),
                                 agreement(truth, raw, stable))
            report.videos.append(result)
            pooled_truth.append(truth)
            pooled_raw.append(raw)
            pooled_stable.append(stable)
            pooled_face.append(track.face)
            s = result.scores["stabilised"]
            note = ""
            if info["frames"] and abs(info["frames"] - n) > info["fps"]:
                note = f" (ratings for {n} frames, video declares {info['frames']})"
            say(f"{vid}: {result.frames} frames, {result.samples} samples, face in "
                f"{100 * result.face_coverage:.0f} %; stabilised CCC valence {s['valence']['ccc']:+.2f}, "
                f"arousal {s['arousal']['ccc']:+.2f}{note}")
    finally:
        perceiver.close()
    if not report.videos:
        raise InputError(f"{root}: none of the {len(jobs)} videos with ratings could be read")
    truth = np.vstack(pooled_truth)
    face = np.concatenate(pooled_face)
    report.overall = VideoResult("all", int(len(truth)), int(len(face)), float(face.mean()),
                                 agreement(truth, np.vstack(pooled_raw), np.vstack(pooled_stable)))
    return report


def markdown(report: VeaticReport) -> str:
    def num(x, sign=True):
        if x is None or not math.isfinite(x):
            return "–"
        return f"{x:+.3f}" if sign else f"{x:.3f}"

    o = report.overall
    lines = [f"VEATIC: {len(report.videos)} videos ({len(report.skipped)} skipped), {o.frames} annotated frames, "
             f"{o.samples} samples at {report.fps:g} Hz, face in {100 * o.face_coverage:.1f} % of samples.", "",
             "| estimate | dimension | MAE | Spearman | CCC |", "|---|---|---|---|---|"]
    for kind in KINDS:
        for dim in DIMS:
            m = o.scores[kind][dim]
            lines.append(f"| {kind} | {dim} | {num(m['mae'], False)} | {num(m['spearman'])} | {num(m['ccc'])} |")
    lines += ["", "Per video (stabilised; raw in brackets):", "",
              "| video | frames | face | valence MAE | valence CCC | arousal MAE | arousal CCC |",
              "|---|---|---|---|---|---|---|"]
    for v in report.videos:
        s, r = v.scores["stabilised"], v.scores["raw"]
        cells = []
        for dim in DIMS:
            cells.append(f"{num(s[dim]['mae'], False)} ({num(r[dim]['mae'], False)})")
            cells.append(f"{num(s[dim]['ccc'])} ({num(r[dim]['ccc'])})")
        lines.append(f"| {v.video} | {v.frames} | {100 * v.face_coverage:.0f} % | " + " | ".join(cells) + " |")
    if report.skipped:
        lines += ["", "Skipped:", ""] + [f"- {line}" for line in report.skipped]
    return "\n".join(lines)
