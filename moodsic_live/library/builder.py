"""Build (or refresh) a named library from a source: a DEAM root, a music folder, or ``demo``.

Rebuilding is incremental: a file whose size and mtime are unchanged — or, if they changed,
whose content hash is unchanged — keeps its series from the previous index; only new or
changed files are analysed (and their features are cached as they finish, so an interrupted
build resumes). The new index replaces the old one atomically, and only when it has tracks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from moodsic_live.config import Config
from moodsic_live.errors import InputError, ModelError
from moodsic_live.library import deam as deam_mod
from moodsic_live.library.analysis import (AnalysisCancelled, Analysed, Tagging, Tally, analyse_files,
                                           clean_cache_temporaries, sha1_file)
from moodsic_live.library.audio_va import AudioVAModel, load_audio_model
from moodsic_live.library.folder import os_error_reason, read_tags, scan_folder
from moodsic_live.library.model import SERIES_HZ, SegmentTable, Track, VASeries, segment_series
from moodsic_live.library.store import (Library, LibraryDamaged, clean_library_temporaries, library_path,
                                        read_library, write_library)

Say = Callable[[str], None]


@dataclass
class BuildReport:
    name: str
    kind: str
    tracks: int = 0
    segments: int = 0
    human: int = 0
    analysed: int = 0    # analysed from audio by this build
    from_cache: int = 0  # new to the index, but their analysis was cached (e.g. by a stopped build)
    reused: int = 0      # unchanged since the last build: kept from the previous index
    failed: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    annotation_only: int = 0
    audio_only: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"library {self.name!r} ({self.kind}): {self.tracks} tracks, {self.segments} segments "
               f"in {self.seconds:.1f} s"]
        if self.human:
            out.append(f"  {self.human} tracks with human V/A annotations")
        out.append(f"  {self.analysed} analysed from audio, {self.from_cache} from the analysis cache, "
                   f"{self.reused} unchanged since the last build")
        if self.annotation_only:
            out.append(f"  {self.annotation_only} annotated songs have no audio here: skipped")
        if self.audio_only:
            out.append(f"  {self.audio_only} songs have audio but no dynamic annotation: V/A from our analysis")
        if self.ignored:
            shown = ", ".join(self.ignored[:3]) + (" ..." if len(self.ignored) > 3 else "")
            out.append(f"  {len(self.ignored)} non-audio files ignored ({shown})")
        for f in self.failed:
            out.append(f"  skipped: {f}")
        out.extend(f"  note: {n}" for n in self.notes)
        return out


def calibrated_model_path(config: Config) -> Path:
    """Where `library calibrate` saves its model: ``library.audio_model``, else beside the
    libraries (``<data dir>/audio_va.json``)."""
    return Path(config.library.audio_model or Path(config.library.dir).parent / "audio_va.json")


def audio_model_for(config: Config) -> AudioVAModel:
    """The calibrated model when one was saved (or named in the config), else the built-in one
    (with the tagger fused in unless ``library.music_model`` is ``features``)."""
    path = calibrated_model_path(config)
    if config.library.audio_model is not None or path.is_file():
        model = load_audio_model(path)
        return model.features_only() if config.library.music_model == "features" else model
    return AudioVAModel.builtin(tags=config.library.music_model == "musicnn")


@dataclass
class AudioVA:
    """How audio becomes V/A in this run: the V/A model, and the music tagger when it is used.

    ``note`` says, once, when the tagger was asked for but cannot be used (the analysis then
    runs on the hand-made features alone)."""

    model: AudioVAModel
    tagging: Tagging | None = None
    meanings: dict | None = None
    note: str = ""

    @classmethod
    def for_config(cls, config: Config) -> AudioVA:
        model = audio_model_for(config)
        if config.library.music_model == "features":
            return cls(model)
        from moodsic_live.library.tagger import read_manifests

        try:
            meanings, fingerprint = read_manifests(config.paths.models_dir)
        except ModelError as exc:
            return cls(model.features_only(), note=f"{exc}; analysing with the hand-made features only")
        return cls(model, Tagging(Path(config.paths.models_dir), fingerprint), meanings)

    def for_demo(self) -> AudioVA:
        """The demo pieces are composed by our code from exactly the cues the hand-made features
        measure (mode, harmony, tempo, dynamics, register); the taggers, trained on produced
        recordings, hear them all as one synthetic genre. Intended vs analysed valence over the 29
        pieces: r +0.62 from the features, +0.19 fused with the tags. So their V/A comes from the
        features; the tags are still analysed and shown."""
        return AudioVA(self.model.features_only(), self.tagging, self.meanings, self.note)

    def fingerprint(self) -> str:
        return self.model.fingerprint() + (f"+{self.tagging.fingerprint}" if self.tagging else "")

    def series(self, r: Analysed) -> tuple[VASeries, str, AudioVAModel]:
        """The track's V/A series, its top tags, and the model that made the series (the
        features-only one when the tagger failed on this file)."""
        from moodsic_live.library.tagger import describe, tag_va

        f = r.features
        if r.tags is None or self.meanings is None:
            model = self.model.features_only()
            v, a = model.predict(f.values)
            return VASeries(f.t, v, a, "audio"), "", model
        n = min(len(f.values), len(r.tags))
        tva = tag_va(r.tags, self.meanings)[:n]
        top = ", ".join(describe(r.tags, self.meanings))
        if self.model.uses_tags:
            v, a = self.model.predict(f.values[:n], tva)
        else:
            v, a = self.model.predict(f.values[:n])
        return VASeries(f.t[:n], v, a, "audio"), top, self.model


def audio_series(features, model: AudioVAModel) -> VASeries:
    """Features-only V/A series of analysed ``features``."""
    v, a = model.predict(features.values)
    return VASeries(features.t, v, a, "audio")


def source_kind(source: str | Path) -> str:
    if str(source) == "demo":
        return "demo"
    path = Path(source)
    if path.is_dir() and deam_mod.looks_like_deam(path):
        return "deam"
    return "folder"


def default_name(source: str | Path) -> str:
    kind = source_kind(source)
    return kind if kind in ("demo", "deam") else "music"


def clip_series(series: VASeries, duration: float) -> VASeries:
    """Drop steps that start after the audio ends (annotations can outlast the file)."""
    keep = series.t + 0.5 / SERIES_HZ <= duration + 1e-3
    if keep.all():
        return series
    return VASeries(series.t[keep], series.valence[keep], series.arousal[keep], series.source)


class _Previous:
    """The last index of this library, for reuse of unchanged files."""

    def __init__(self, path: Path, fingerprint: str):
        self.by_path: dict[str, Track] = {}
        self.by_sha1: dict[str, Track] = {}
        try:
            old = read_library(path)
        except InputError:
            return
        if old.meta.get("audio_model") != fingerprint:
            return  # another V/A model: audio series must be recomputed (features are cached)
        for t in old.tracks:
            if t.series.source == "audio":
                self.by_path[str(t.path)] = t
                if t.sha1:
                    self.by_sha1[t.sha1] = t

    def reuse(self, path: Path, size: int, mtime_ns: int) -> tuple[Track | None, str]:
        """(previous track, sha1) — the track when the file is unchanged."""
        t = self.by_path.get(str(path))
        if t is not None and t.size == size and t.mtime_ns == mtime_ns:
            return t, t.sha1
        sha1 = sha1_file(path)
        return self.by_sha1.get(sha1), sha1


def _analyse_paths(paths: list[Path], source: str, va: AudioVA, previous: _Previous,
                   config: Config, report: BuildReport, progress: bool,
                   info: Callable[[Path], deam_mod.SongInfo], track_id: Callable[[Path], str],
                   tally: Tally | None = None, cancel: threading.Event | None = None) -> list[Track]:
    tracks: dict[Path, Track] = {}
    jobs = []
    identity = {}
    for p in paths:
        try:
            st = p.stat()
            old, sha1 = previous.reuse(p, st.st_size, st.st_mtime_ns)
        except OSError as exc:  # unreadable, gone, a loop, a read error: skip this file, not the build
            report.failed.append(f"{p}: {os_error_reason(p, exc)}")
            continue
        identity[p] = (st.st_size, st.st_mtime_ns, sha1)
        if old is not None:
            tracks[p] = Track(id=track_id(p), title=old.title, artist=old.artist, genre=old.genre, path=p,
                              duration=old.duration, sample_rate=old.sample_rate, source=source,
                              series=old.series, size=st.st_size, mtime_ns=st.st_mtime_ns, sha1=sha1,
                              top_tags=old.top_tags)
            report.reused += 1
        else:
            jobs.append((p, sha1))
    results: list[Analysed] = analyse_files(jobs, config.paths.cache_dir / "analysis", config.library.workers,
                                            progress=progress, tagging=va.tagging, tally=tally,
                                            note=report.notes.append, cancel=cancel)
    for r in results:
        if r.features is None:
            report.failed.append(r.error)
            continue
        if r.tag_error:
            report.notes.append(f"{r.tag_error}; V/A of this track from the hand-made features only")
        size, mtime_ns, sha1 = identity[r.path]
        meta = info(r.path)
        series, top, _model = va.series(r)
        tracks[r.path] = Track(id=track_id(r.path), title=meta.title, artist=meta.artist, genre=meta.genre,
                               path=r.path, duration=r.features.duration, sample_rate=r.features.sample_rate,
                               source=source, series=series, size=size, mtime_ns=mtime_ns, sha1=sha1,
                               top_tags=top)
        if r.cached:
            report.from_cache += 1
        else:
            report.analysed += 1
    return [tracks[p] for p in paths if p in tracks]


def _deam_tracks(root: Path, va: AudioVA, previous: _Previous, config: Config, report: BuildReport,
                 progress: bool, tally: Tally | None = None, cancel: threading.Event | None = None) -> list[Track]:
    import soundfile as sf

    rel = deam_mod.find_deam(root)
    report.annotation_only = len(rel.annotation_only)
    report.audio_only = len(rel.audio_only)
    report.notes.extend(rel.notes)
    tracks = []
    for sid in rel.with_both:
        path = rel.audio[sid]
        try:
            info = sf.info(str(path))
        except Exception as exc:
            report.failed.append(f"{path}: not readable audio ({str(exc).splitlines()[0][:100]})")
            continue
        meta = rel.info.get(sid, deam_mod.SongInfo())
        try:
            st = path.stat()
        except OSError as exc:
            report.failed.append(f"{path}: {os_error_reason(path, exc)}")
            continue
        tracks.append(Track(id=f"deam:{sid}", title=meta.title or f"DEAM song {sid}", artist=meta.artist,
                            genre=meta.genre, path=path, duration=float(info.duration),
                            sample_rate=int(info.samplerate), source="deam",
                            series=clip_series(rel.dynamic[sid], float(info.duration)),
                            size=st.st_size, mtime_ns=st.st_mtime_ns, static_va=rel.static.get(sid)))
        report.human += 1

    def info_of(p: Path) -> deam_mod.SongInfo:
        meta = rel.info.get(p.stem, deam_mod.SongInfo())
        return deam_mod.SongInfo(meta.title or f"DEAM song {p.stem}", meta.artist, meta.genre)

    audio_only = [rel.audio[s] for s in rel.audio_only]
    tracks += _analyse_paths(audio_only, "deam", va, previous, config, report, progress,
                             info_of, lambda p: f"deam:{p.stem}", tally, cancel)
    return tracks


def demo_audio_dir(config: Config) -> Path:
    return Path(config.library.dir) / "demo-audio"


def build_library(source: str | Path, config: Config, name: str | None = None, say: Say = print,
                  progress: bool = True, cancel: threading.Event | None = None) -> tuple[Library, BuildReport]:
    """Build library ``name`` from ``source`` and write its index. Raises InputError when the
    source gives no playable track (the previous index, if any, is kept).

    Stopping: a KeyboardInterrupt in this thread (Ctrl+C; SIGTERM/SIGHUP through
    :mod:`moodsic_live.shutdown`) stops the analysis at once, says in one line how much was analysed
    and kept (in the analysis cache, for the next build) and re-raises; ``cancel`` set (from another
    thread, e.g. the window) does the same and raises :class:`AnalysisCancelled` with that line.
    Either way the index is unchanged. Temporary files left by killed builds are removed first."""
    started = time.monotonic()
    kind = source_kind(source)
    name = name or default_name(source)
    path = library_path(config.library.dir, name)
    clean_library_temporaries(config.library.dir)
    clean_cache_temporaries(config.paths.cache_dir / "analysis")
    tally = Tally()
    written = False
    try:
        va = AudioVA.for_config(config)
        if kind == "demo":
            va = va.for_demo()
        previous = _Previous(path, va.fingerprint())
        report = BuildReport(name=name, kind=kind)
        if va.note:
            report.notes.append(va.note)

        if kind == "deam":
            root = Path(source).resolve()
            say(f"reading DEAM under {root}")
            tracks = _deam_tracks(root, va, previous, config, report, progress, tally, cancel)
        elif kind == "demo":
            from moodsic_live.library.demo import write_demo_library

            root = demo_audio_dir(config)
            say(f"preparing the demo library in {root}")
            paths = write_demo_library(root, say=say)
            tracks = _analyse_paths(paths, "demo", va, previous, config, report, progress, read_tags,
                                    lambda p: f"demo:{p.stem}", tally, cancel)
        else:
            root = Path(source).expanduser().resolve()
            scan = scan_folder(root)
            report.ignored = [str(p.relative_to(root)) for p in scan.other]
            report.failed.extend(scan.unreadable)
            if not scan.audio:
                raise InputError(f"{root}: no audio files found (mp3, flac, ogg, opus, wav, aiff); "
                                 "point `library build` at the folder that holds your music")
            say(f"found {len(scan.audio)} audio files under {root}")
            tracks = _analyse_paths(scan.audio, "folder", va, previous, config, report, progress,
                                    read_tags, lambda p: p.relative_to(root).as_posix(), tally, cancel)

        segments = SegmentTable.concat([
            segment_series(t.series, i, config.library.segment_seconds, config.library.segment_hop_seconds)
            for i, t in enumerate(tracks)])
        report.tracks, report.segments = len(tracks), len(segments)
        if not tracks or not len(segments):
            why = "; ".join(report.failed[:3]) if report.failed else "no track is long enough for one segment"
            raise InputError(f"library {name!r}: no playable tracks from {source} ({why}); the previous index "
                             "(if any) is unchanged")
        from moodsic_live.match.moods import MoodClusters

        clusters = MoodClusters.fit(segments.va)
        report.seconds = time.monotonic() - started
        meta = {"kind": kind, "source": str(root), "audio_model": va.fingerprint(),
                "audio_model_origin": va.model.origin,
                "music_tagger": bool(va.tagging) and va.model.uses_tags,
                "segment_seconds": config.library.segment_seconds,
                "segment_hop_seconds": config.library.segment_hop_seconds, "clusters": clusters.to_dict(),
                "built_at": time.time(), "report": report.lines()}
        library = Library(name=name, tracks=tracks, segments=segments, meta=meta, path=path)
        write_library(path, library)
        written = True
        return library, report
    except KeyboardInterrupt:
        say(_stopped(tally, "stopped", written))
        raise
    except AnalysisCancelled:
        raise AnalysisCancelled(_stopped(tally, "cancelled", written)) from None


def _stopped(tally: Tally, how: str, written: bool) -> str:
    """One line on a build that was stopped: what was kept, and that the index is unchanged."""
    if written:
        return f"library build {how} after its index was written"
    if not tally.total:
        return f"library build {how} before any audio was analysed; the index is unchanged"
    done = tally.analysed + tally.cached
    return (f"library build {how}: {done} of {tally.total} files analysed and kept for the next run; "
            "the index is unchanged")


def resolve_library_path(config: Config, name: str | None = None) -> Path | None:
    """The library to use: ``name``, else ``library.name``, else the newest built one."""
    from moodsic_live.library.store import list_libraries

    name = name or config.library.name
    if name:
        return library_path(config.library.dir, name)
    built = list_libraries(config.library.dir)
    return built[0] if built else None


def _rebuild_hint(name: str) -> str:
    source = "demo" if name == "demo" else "SOURCE"
    return f"`moodsic-live library build {source} --name {name}`"


def open_library(config: Config, name: str | None = None, say: Say = print) -> Library:
    """Load the library to play from; with none built yet, build the demo library first.

    A damaged index (unreadable, inconsistent, another version) that was picked as the newest
    one is passed over for the newest healthy library, saying so in one line; one named by the
    user (``name`` or ``library.name``) is refused, with the names of the libraries there are."""
    from moodsic_live.library.store import list_libraries

    path = resolve_library_path(config, name)
    if path is None:
        say("no music library yet: building the demo library (first start only)")
        library, report = build_library("demo", config, "demo", say=say)
        for line in report.lines():
            say(line)
        return library
    try:
        return read_library(path)
    except LibraryDamaged as exc:
        damaged = path.stem
        others = [p for p in list_libraries(config.library.dir) if p != path]
        if name or config.library.name:
            if not others:
                raise
            names = ", ".join(repr(p.stem) for p in others)
            raise LibraryDamaged(f"library {damaged!r} is damaged ({exc.reason}); rebuild it with "
                                 f"{_rebuild_hint(damaged)} or choose another library: {names}", exc.reason) from None
        for other in others:
            try:
                library = read_library(other)
            except InputError:
                continue
            say(f"library {damaged!r} is damaged ({exc.reason}); using library {library.name!r} instead — "
                f"rebuild {damaged!r} with {_rebuild_hint(damaged)}")
            return library
        raise
