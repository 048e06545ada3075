"""The music side of the command line (match, and the library it matches from).

    moodsic-live library build SOURCE [--name N]   SOURCE: a DEAM root, a music folder, or demo
    moodsic-live library info [--name N] [--json]
    moodsic-live library calibrate --deam ROOT     fit the audio -> V/A model on human annotations
    moodsic-live audio-va FILE... [--json]         V/A of audio files (2 Hz series)
    moodsic-live match VALENCE AROUSAL [--k 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from moodsic_live.errors import MoodsicError

Say = Callable[[str], None]


def add_music_commands(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    lib = sub.add_parser("library", help="build, inspect or calibrate a music library")
    lsub = lib.add_subparsers(dest="library_command", required=True)
    b = lsub.add_parser("build", help="build or refresh a library from a DEAM root, a music folder, or demo",
                        description="Build (or refresh: only new or changed files are analysed) a music library. "
                                    "SOURCE is a folder of music, the folder where DEAM was unzipped, or `demo`.")
    common(b)
    b.add_argument("source", metavar="SOURCE")
    b.add_argument("--name", help="library name (default: demo, deam or music, by source)")
    b.add_argument("--workers", type=int,
                   help="analysis processes (default: one per core; fewer when free memory is short, 800 MB each)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--json", action="store_true", help="print the build report as JSON")
    _music_model_flag(b)
    i = lsub.add_parser("info", help="what a library holds")
    common(i)
    i.add_argument("--name", help="library name (default: the configured or newest one)")
    i.add_argument("--json", action="store_true", help="one JSON object")
    i.add_argument("--tracks", action="store_true", help="list every track")
    c = lsub.add_parser("calibrate", help="fit the audio -> valence/arousal model on human annotations",
                        description="Fit the audio -> V/A model on a library in DEAM's layout and save it; "
                                    "reports song-wise held-out Pearson r and RMSE.")
    common(c)
    c.add_argument("--deam", type=Path, required=True, metavar="ROOT", help="folder with DEAM (or same layout)")
    c.add_argument("--out", type=Path, help="where to save the model (default: beside the libraries)")
    c.add_argument("--workers", type=int)
    c.add_argument("--no-progress", action="store_true")
    c.add_argument("--json", action="store_true")
    _music_model_flag(c)

    a = sub.add_parser("audio-va", help="valence/arousal of audio files, 2 Hz series",
                       description="Valence and arousal (reference space [-1, 1]) of audio files from our audio "
                                   "analysis. --json: one line per file with the 2 Hz series.")
    common(a)
    a.add_argument("files", nargs="+", type=Path, metavar="FILE")
    a.add_argument("--json", action="store_true")
    _music_model_flag(a)

    m = sub.add_parser("match", help="rank the library's segments for a valence/arousal",
                       description="Rank the library's segments for VALENCE AROUSAL (reference space [-1, 1]).")
    common(m)
    m.add_argument("valence", type=float)
    m.add_argument("arousal", type=float)
    m.add_argument("--k", type=int, default=None, help="how many segments (default 20)")
    m.add_argument("--name", help="library name (default: the configured or newest one)")
    m.add_argument("--alignment", choices=["quantile", "linear", "none"])
    m.add_argument("--json", action="store_true")


def _music_model_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--music-model", choices=["musicnn", "features"],
                   help="musicnn: the music tagger fused with the hand-made features (default); "
                        "features: the lightweight hand-made features only")


def _apply_music_model(args, config) -> None:
    if getattr(args, "music_model", None):
        config.library.music_model = args.music_model


def _progress(args) -> bool:
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


def cmd_library(args, config, say: Say) -> int:
    from moodsic_live.library.builder import build_library, calibrated_model_path, resolve_library_path
    from moodsic_live.library.store import read_library

    if getattr(args, "workers", None) is not None:
        config.library.workers = args.workers
    _apply_music_model(args, config)
    if args.library_command == "build":
        library, report = build_library(args.source, config, args.name, say=say, progress=_progress(args))
        if args.json:
            print(json.dumps({"name": library.name, "path": str(library.path), **{
                k: v for k, v in report.__dict__.items() if k != "name"}}))
        else:
            for line in report.lines():
                print(line)
            print(f"index: {library.path}")
        return 0
    if args.library_command == "calibrate":
        from moodsic_live.library.builder import AudioVA
        from moodsic_live.library.calibrate import calibrate

        va = AudioVA.for_config(config)
        if va.note:
            say(f"note: {va.note}")
        model = calibrate(args.deam, config.paths.cache_dir / "analysis", config.library.workers,
                          progress=_progress(args), va=va)
        out = args.out or calibrated_model_path(config)
        model.save(out)
        m = model.metrics
        if args.json:
            print(json.dumps({"path": str(out), **m}))
        else:
            print(f"calibrated on {m['songs']} songs ({m['steps']} annotated 0.5 s steps), "
                  f"inputs: {m['inputs']}; song-wise {m['folds']}-fold held-out:")
            for dim in ("valence", "arousal"):
                h, b = m["held_out"][dim], m["builtin"][dim]
                line = (f"  {dim:8s} after r {h['r']:+.2f}  RMSE {h['rmse']:.3f}   before (built-in): "
                        f"r {b['r']:+.2f}  RMSE {b['rmse']:.3f}")
                if "features_builtin" in m:
                    f = m["features_builtin"][dim]
                    line += f"   features only: r {f['r']:+.2f}  RMSE {f['rmse']:.3f}"
                print(line)
            print(f"saved: {out}")
            worse = [d for d in ("valence", "arousal") if m["held_out"][d]["r"] < m["builtin"][d]["r"]]
            if worse:
                print(f"note: on held-out songs the calibrated model does worse than the built-in one for "
                      f"{' and '.join(worse)} ({m['songs']} songs are few); delete {out} to keep the built-in model")
            if args.out:
                print("use it with library.audio_model in the config file")
            print("libraries analysed from audio use it from their next `library build`")
        return 0
    path = resolve_library_path(config, args.name)
    if path is None:
        raise MoodsicError("no library built yet; build one with `moodsic-live library build SOURCE` "
                           "(SOURCE: a music folder, a DEAM root, or demo)")
    library = read_library(path)
    info = library_summary(library)
    if args.tracks:
        info["tracks"] = [{"id": t.id, "title": t.title, "artist": t.artist, "duration": round(t.duration, 2),
                           "series": t.series.source, "valence": round(t.series.mean()[0], 3),
                           "arousal": round(t.series.mean()[1], 3), "top_tags": t.top_tags}
                          for t in library.tracks]
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"library {info['name']!r} ({info['kind']}) at {info['path']}")
    print(f"  source: {info['source']}")
    print(f"  {info['tracks_count']} tracks ({info['human']} human-annotated, {info['audio']} from audio "
          f"analysis), {info['segments']} segments of {info['segment_seconds']:g} s")
    print(f"  valence {info['valence_range'][0]:+.2f}..{info['valence_range'][1]:+.2f}  "
          f"arousal {info['arousal_range'][0]:+.2f}..{info['arousal_range'][1]:+.2f}")
    print(f"  audio model: {info['audio_model']}" + ("; fused with the musicnn tags" if info["music_tagger"] else ""))
    print("  moods:")
    for c in info["moods"]:
        print(f"    {c['name']:28s} centre ({c['valence']:+.2f}, {c['arousal']:+.2f})  {c['share']:.0%}")
    for t in info.get("tracks", []):
        print(f"  {t['id']}: {t['title']} — {t['artist']}  {t['duration']:.0f} s  "
              f"V {t['valence']:+.2f} A {t['arousal']:+.2f} ({t['series']})"
              + (f"  [{t['top_tags']}]" if t["top_tags"] else ""))
    return 0


def library_summary(library) -> dict:
    from moodsic_live.match.moods import MoodClusters

    seg = library.segments
    clusters = MoodClusters.from_dict(library.meta["clusters"])
    labels = clusters.predict(seg.va)
    return {"name": library.name, "path": str(library.path), "kind": library.meta.get("kind"),
            "source": library.meta.get("source"), "tracks_count": len(library.tracks),
            "human": sum(t.series.source == "human" for t in library.tracks),
            "audio": sum(t.series.source == "audio" for t in library.tracks), "segments": len(seg),
            "segment_seconds": library.meta.get("segment_seconds"),
            "valence_range": [float(seg.valence.min()), float(seg.valence.max())],
            "arousal_range": [float(seg.arousal.min()), float(seg.arousal.max())],
            "audio_model": library.meta.get("audio_model_origin"),
            "music_tagger": bool(library.meta.get("music_tagger", False)),
            "moods": [{"name": n, "valence": float(c[0]), "arousal": float(c[1]),
                       "share": float(np.mean(labels == k))}
                      for k, (n, c) in enumerate(zip(clusters.names, clusters.centres))]}


def cmd_audio_va(args, config, say: Say) -> int:
    from moodsic_live.library.analysis import analyse_one, sha1_file
    from moodsic_live.library.builder import AudioVA

    _apply_music_model(args, config)
    va = AudioVA.for_config(config)
    if va.note:
        say(f"note: {va.note}")
    failures = 0
    for path in args.files:
        try:
            sha1 = sha1_file(path)
        except OSError as exc:
            say(f"error: {path}: {'no such audio file' if not path.exists() else exc.strerror}")
            failures += 1
            continue
        r = analyse_one(path, sha1, config.paths.cache_dir / "analysis", va.tagging)
        if r.features is None:
            say(f"error: {r.error}")
            failures += 1
            continue
        if r.tag_error:
            say(f"note: {r.tag_error}; using the hand-made features only")
        series, top, model = va.series(r)
        v, a = series.mean()
        if args.json:
            print(json.dumps({"path": str(path), "valence": round(v, 4), "arousal": round(a, 4),
                              "model": model.origin, "top_tags": top.split(", ") if top else [],
                              "series": {"t": [round(float(x), 2) for x in series.t],
                                         "valence": [round(float(x), 4) for x in series.valence],
                                         "arousal": [round(float(x), 4) for x in series.arousal]}}),
                  flush=True)
        else:
            print(f"{path}: valence {v:+.2f}  arousal {a:+.2f}  ({len(series)} steps of 0.5 s)"
                  + (f"  [{top}]" if top else ""), flush=True)
    return 1 if failures else 0


def cmd_match(args, config, say: Say) -> int:
    from moodsic_live.library.builder import open_library
    from moodsic_live.match.alignment import Aligner
    from moodsic_live.match.index import SegmentIndex
    from moodsic_live.match.matcher import rank
    from moodsic_live.match.moods import MoodClusters
    from moodsic_live.scales import to_reference

    if args.alignment:
        config.match.alignment = args.alignment
    v = float(to_reference(args.valence, "reference", "valence"))
    a = float(to_reference(args.arousal, "reference", "arousal"))
    k = args.k or config.match.k
    library = open_library(config, args.name, say=say)
    seg = library.segments
    aligner = Aligner.fit(seg.va, config.match.alignment)
    clusters = MoodClusters.from_dict(library.meta["clusters"])
    ranked = rank(seg, SegmentIndex(seg), aligner, clusters, v, a, k)
    target = aligner(v, a)
    rows = []
    for n, (s, dist, cluster) in enumerate(ranked, 1):
        t = library.tracks[s.track]
        rows.append({"rank": n, "track": t.id, "title": t.title, "artist": t.artist, "path": str(t.path),
                     "start": round(s.start, 2), "end": round(s.end, 2), "valence": round(s.valence, 4),
                     "arousal": round(s.arousal, 4), "distance": round(float(dist), 4), "cluster": cluster})
    if args.json:
        print(json.dumps({"library": library.name, "query": {"valence": v, "arousal": a},
                          "target": {"valence": round(float(target[0]), 4), "arousal": round(float(target[1]), 4)},
                          "alignment": config.match.alignment, "results": rows}))
        return 0
    print(f"library {library.name!r}: query ({v:+.2f}, {a:+.2f}) -> target ({float(target[0]):+.2f}, "
          f"{float(target[1]):+.2f}) after {config.match.alignment} alignment")
    for r in rows:
        print(f"{r['rank']:3d}. {r['title'][:34]:34s} {r['start']:6.1f}-{r['end']:6.1f} s  "
              f"V {r['valence']:+.2f} A {r['arousal']:+.2f}  d {r['distance']:.3f}  {r['cluster']}")
    return 0
