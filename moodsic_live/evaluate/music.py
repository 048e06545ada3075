"""``moodsic-live eval music ROOT``: our audio-derived valence/arousal against DEAM's human ratings.

ROOT is any tree in DEAM's release layout (read by :mod:`moodsic_live.library.deam`). Every song
with audio is analysed exactly as a library build analyses it — the hand-made features and, with
the default ``musicnn`` music model, the music tagger, turned into V/A by the app's audio model
(a model saved by ``library calibrate`` when there is one, else the built-in one; its origin is in
the report, since a model calibrated on these very songs scores itself on its training data).

* **Dynamic**: our 2 Hz series at every step DEAM's annotators rated (the pairing of
  ``library calibrate``: :func:`moodsic_live.library.calibrate.annotated_steps`), against the human
  2 Hz series; RMSE and Pearson r per dimension over the pooled steps of all songs, and the mean of
  the per-song r (a song whose human or our series is constant has no r and is left out of it).
* **Static**: per song, the mean of our whole series (the song-level value the app shows) against
  DEAM's song-level SAM average, mapped from 1..9 to the reference [-1, 1]
  (``to_reference(.., "deam_static", ..)``); RMSE and Pearson r over songs.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError
from moodsic_live.evaluate.metrics import pearson

Say = Callable[[str], None]
DIMS = ("valence", "arousal")
MIN_SONGS = 3  # what annotated_steps needs (and pooled correlations over fewer songs say little)


def _clean(x):
    if isinstance(x, float):
        return None if not math.isfinite(x) else round(x, 4)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


@dataclass
class MusicReport:
    root: str
    model: str                 # the audio model's origin
    inputs: str                # "10 features" or "10 features + musicnn tags"
    songs: int                 # songs in the dynamic comparison
    steps: int                 # annotated 0.5 s steps compared
    dynamic: dict              # {dim: {r, rmse, mean_song_r, songs_with_r}}
    static_songs: int
    static: dict               # {dim: {r, rmse}}
    per_song: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return _clean({"root": self.root, "model": self.model, "inputs": self.inputs, "songs": self.songs,
                       "steps": self.steps, "dynamic": self.dynamic, "static_songs": self.static_songs,
                       "static": self.static, "per_song": self.per_song, "notes": list(self.notes)})


def evaluate_music(root: Path, cache_dir: Path, *, music_model: str | None = None, workers: int = 0,
                   say: Say = print, config=None, progress: bool = False) -> MusicReport:
    """Compare the app's audio V/A with DEAM's human ratings under ``root``.

    ``cache_dir``: the analysis cache (the CLI's ``config.paths.cache_dir / "analysis"``, shared with
    library builds and ``library calibrate``). ``music_model``: ``musicnn`` or ``features`` (default:
    the config's). ``config``: the app's :class:`~moodsic_live.config.Config` (models folder for the
    tagger, saved audio model); default: the built-in defaults."""
    from moodsic_live.config import Config
    from moodsic_live.library import deam as deam_mod
    from moodsic_live.library.analysis import analyse_files, sha1_file
    from moodsic_live.library.builder import AudioVA
    from moodsic_live.library.calibrate import predict_steps, annotated_steps, scores

    root, cache_dir = Path(root), Path(cache_dir)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; give the folder where the DEAM release was unzipped "
                         "(MEMD_audio/<id>.mp3 and the annotations)")
    config = copy.deepcopy(config) if config is not None else Config()  # the caller's stays as it is
    if music_model is not None:
        if music_model not in ("musicnn", "features"):
            raise InputError(f"music model {music_model!r}: use musicnn or features")
        config.library.music_model = music_model
    rel = deam_mod.find_deam(root)
    if len(rel.with_both) < MIN_SONGS:
        raise InputError(f"{root}: {len(rel.with_both)} songs have both audio and a dynamic annotation; the "
                         f"evaluation needs at least {MIN_SONGS} (DEAM layout: MEMD_audio/<id>.mp3 + "
                         "valence.csv/arousal.csv)")
    va = AudioVA.for_config(config)
    notes = list(rel.notes)
    if va.note:
        notes.append(va.note)
        say(f"note: {va.note}")

    # Every song with audio and any annotation, analysed once (cached): the dynamic pairing below
    # then reads the same cache.
    songs = sorted(set(rel.audio) & rel.annotated, key=deam_mod._id_key)
    results = analyse_files([(rel.audio[s], sha1_file(rel.audio[s])) for s in songs], cache_dir, workers,
                            progress=progress, tagging=va.tagging)
    for r in results:
        if r.features is None:
            notes.append(f"skipped: {r.error}")
            say(f"skipped {r.error}")
        elif r.tag_error:
            notes.append(r.tag_error)

    # Dynamic: our prediction at every annotated step.
    data = annotated_steps(root, cache_dir, workers, progress=False, va=va)
    pred = np.column_stack(predict_steps(va.model, data)).astype(np.float64)
    ours_mean = {}
    for song, r in zip(songs, results):
        if r.features is not None:
            series, _, _ = va.series(r)
            ours_mean[song] = series.mean()
    dynamic, per_song = {}, []
    song_r = {dim: [] for dim in DIMS}
    for g, song in enumerate(data.songs):
        rows = data.groups == g
        entry = {"song": song, "steps": int(rows.sum())}
        for d, dim in enumerate(DIMS):
            r = pearson(data.y[rows, d], pred[rows, d])
            entry[f"{dim}_r"] = r
            song_r[dim].append(r)
        per_song.append(entry)
    for d, dim in enumerate(DIMS):
        s = scores(data.y[:, d], pred[:, d])
        rs = np.asarray(song_r[dim])
        finite = rs[np.isfinite(rs)]
        dynamic[dim] = {"r": s.r, "rmse": s.rmse, "mean_song_r": float(finite.mean()) if len(finite) else math.nan,
                        "songs_with_r": int(len(finite))}

    # Static: the mean of our whole series against the song-level SAM average (reference space).
    static_ids = [s for s in songs if s in rel.static and s in ours_mean]
    static = {}
    for d, dim in enumerate(DIMS):
        if len(static_ids) >= 2:
            truth = np.array([rel.static[s][d] for s in static_ids])
            ours = np.array([ours_mean[s][d] for s in static_ids])
            s = scores(truth, ours)
            static[dim] = {"r": s.r, "rmse": s.rmse}
        else:
            static[dim] = {"r": math.nan, "rmse": math.nan}
    by_song = {e["song"]: e for e in per_song}
    for s in songs:
        if s not in ours_mean:
            continue
        entry = by_song.get(s)
        if entry is None:
            entry = {"song": s, "steps": 0}
            per_song.append(entry)
        entry["ours"] = {"valence": ours_mean[s][0], "arousal": ours_mean[s][1]}
        if s in rel.static:
            entry["static"] = {"valence": rel.static[s][0], "arousal": rel.static[s][1]}
    per_song.sort(key=lambda e: deam_mod._id_key(e["song"]))
    return MusicReport(root=str(root), model=va.model.origin, inputs=_inputs(va), songs=len(data.songs),
                       steps=int(len(data.y)), dynamic=dynamic, static_songs=len(static_ids), static=static,
                       per_song=per_song, notes=notes)


def _inputs(va) -> str:
    return "10 features + musicnn tags" if va.tagging is not None and va.model.uses_tags else "10 features"


def markdown(report: MusicReport) -> str:
    def num(x, sign=True):
        if x is None or not math.isfinite(x):
            return "–"
        return f"{x:+.2f}" if sign else f"{x:.3f}"

    lines = [f"DEAM: {report.songs} songs, {report.steps} annotated 0.5 s steps (dynamic); {report.static_songs} "
             f"songs with a song-level rating (static). Model: {report.model}; inputs: {report.inputs}.", "",
             "| dimension | dynamic r | dynamic RMSE | mean per-song r | static r | static RMSE |",
             "|---|---|---|---|---|---|"]
    for dim in DIMS:
        d, s = report.dynamic[dim], report.static[dim]
        lines.append(f"| {dim} | {num(d['r'])} | {num(d['rmse'], False)} | {num(d['mean_song_r'])} "
                     f"({d['songs_with_r']} songs) | {num(s['r'])} | {num(s['rmse'], False)} |")
    if "calibrated" in report.model:
        lines += ["", "Note: the audio model was calibrated on annotated songs; if they include these, the "
                      "scores above are on its training data."]
    lines += ["", "Per song:", "", "| song | steps | valence r | arousal r | ours V/A | static V/A |",
              "|---|---|---|---|---|---|"]
    for e in report.per_song:
        ours, st = e.get("ours"), e.get("static")
        pair = (lambda p: f"{p['valence']:+.2f} / {p['arousal']:+.2f}" if p else "–")
        lines.append(f"| {e['song']} | {e['steps']} | {num(e.get('valence_r', math.nan))} | "
                     f"{num(e.get('arousal_r', math.nan))} | {pair(ours)} | {pair(st)} |")
    if report.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines)
