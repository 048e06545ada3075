"""The on-disk library index: one SQLite file per library, written atomically.

Layout (``<library.dir>/<name>.sqlite``):

* ``meta``     key → JSON (name, source, root, audio model fingerprint, segment settings,
               alignment and mood clusters fitted at build time, build report);
* ``tracks``   one row per track: identity, tags, file identity (size, mtime, sha1), the 2 Hz
               V/A series as float32 blobs and where it came from (human / audio);
* ``segments`` the whole :class:`SegmentTable`, one float32/int32 blob per column, so a
               million segments load in milliseconds.

A build writes ``<name>.sqlite.tmp-<pid>`` and renames it over the old index only when it is
complete, so an interrupted build never leaves a half-written index behind and never loses
the previous one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError
from moodsic_live.library.model import SegmentTable, Track, VASeries

SCHEMA_VERSION = 2  # 2: tracks.top_tags
READABLE_SCHEMAS = (1, 2)

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tracks (
    idx INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, title TEXT, artist TEXT, genre TEXT,
    path TEXT NOT NULL, duration REAL, sample_rate INTEGER, source TEXT, series_source TEXT,
    size INTEGER, mtime_ns INTEGER, sha1 TEXT, static_v REAL, static_a REAL,
    t BLOB, valence BLOB, arousal BLOB, top_tags TEXT);
CREATE TABLE segments (column TEXT PRIMARY KEY, dtype TEXT, data BLOB);
"""


class LibraryDamaged(InputError):
    """The index exists but cannot be used (unreadable, inconsistent, another version); ``reason``
    says why in a few words."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Library:
    """A loaded library: its tracks (index = position), segments, and build metadata."""

    name: str
    tracks: list[Track]
    segments: SegmentTable
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def durations(self) -> np.ndarray:
        return np.array([t.duration for t in self.tracks], np.float32)


def _blob(a: np.ndarray, dtype: str = "<f4") -> bytes:
    return np.ascontiguousarray(a, dtype=dtype).tobytes()


# A temporary file older than this is left over from a killed build whatever its PID says (PIDs are
# reused): writing one cache entry or one library index takes seconds.
STALE_TMP_SECONDS = 3600.0


def _stale(path: Path, now: float) -> bool:
    """A ``*.tmp-PID*`` file whose writer is gone (or that is older than :data:`STALE_TMP_SECONDS`)."""
    try:
        pid = int(path.name.rsplit(".tmp-", 1)[1].split(".", 1)[0])
    except (IndexError, ValueError):
        return False
    try:
        if now - path.stat().st_mtime > STALE_TMP_SECONDS:
            return True
    except OSError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        return False
    return False


def remove_stale_temporaries(folder: Path, pattern: str, recursive: bool = True) -> int:
    """Delete the temporary files (``pattern``, in ``folder`` and, if ``recursive``, below it) that
    killed writers left behind: their PID is not alive, or they are older than
    :data:`STALE_TMP_SECONDS`. Returns how many. Never fails a build."""
    folder, now, removed = Path(folder), time.time(), 0
    if not folder.is_dir():
        return 0
    try:
        candidates = list(folder.rglob(pattern) if recursive else folder.glob(pattern))
    except OSError:
        return 0
    for p in candidates:
        if _stale(p, now):
            try:
                p.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def clean_library_temporaries(libraries_dir: Path) -> int:
    """Index files half-written by a killed build (``<name>.sqlite.tmp-PID``)."""
    return remove_stale_temporaries(libraries_dir, "*.sqlite.tmp-*", recursive=False)


def write_library(path: Path, library: Library) -> None:
    """Write ``library`` to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        con = sqlite3.connect(tmp)
        try:
            con.executescript(_SCHEMA)
            meta = dict(library.meta, name=library.name, schema=SCHEMA_VERSION)
            con.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
            con.executemany(
                "INSERT INTO tracks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(i, t.id, t.title, t.artist, t.genre, str(t.path), t.duration, t.sample_rate, t.source,
                  t.series.source, t.size, t.mtime_ns, t.sha1,
                  t.static_va[0] if t.static_va else None, t.static_va[1] if t.static_va else None,
                  _blob(t.series.t), _blob(t.series.valence), _blob(t.series.arousal), t.top_tags)
                 for i, t in enumerate(library.tracks)])
            seg = library.segments
            con.executemany("INSERT INTO segments VALUES (?, ?, ?)",
                            [(c, "<i4" if c == "track" else "<f4",
                              _blob(getattr(seg, c), "<i4" if c == "track" else "<f4")) for c in seg.COLUMNS])
            con.commit()
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_library(path: Path) -> Library:
    """Load an index written by :func:`write_library`. Missing or unreadable → InputError."""
    path = Path(path)
    name = path.stem
    fix = f"rebuild it with `moodsic-live library build SOURCE --name {name}`"
    if not path.is_file():
        raise InputError(f"library {name!r} does not exist ({path}); build it with "
                         f"`moodsic-live library build SOURCE --name {name}` (SOURCE: a folder, a DEAM root or demo)")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
            if meta.get("schema") not in READABLE_SCHEMAS:
                raise LibraryDamaged(f"library index {path} is from another version of Moodsic Live; {fix}",
                                     "from another version of Moodsic Live")
            tracks = []
            for row in con.execute("SELECT * FROM tracks ORDER BY idx"):
                (_, tid, title, artist, genre, p, duration, sr, source, s_source, size, mtime_ns, sha1,
                 sv, sa, t, v, a, *rest) = row  # schema 1 has no top_tags
                series = VASeries(np.frombuffer(t, "<f4"), np.frombuffer(v, "<f4"), np.frombuffer(a, "<f4"),
                                  s_source)
                tracks.append(Track(id=tid, title=title, artist=artist, genre=genre, path=Path(p),
                                    duration=duration, sample_rate=sr, source=source, series=series,
                                    size=size, mtime_ns=mtime_ns, sha1=sha1,
                                    static_va=(sv, sa) if sv is not None else None,
                                    top_tags=(rest[0] or "") if rest else ""))
            cols = {c: np.frombuffer(data, dtype) for c, dtype, data in
                    con.execute("SELECT column, dtype, data FROM segments")}
            segments = SegmentTable(**{c: cols[c] for c in SegmentTable.COLUMNS})
        finally:
            con.close()
    except InputError:
        raise
    except (sqlite3.Error, KeyError, ValueError, TypeError) as exc:
        raise LibraryDamaged(f"library index {path} is unreadable ({exc.__class__.__name__}); {fix}",
                             f"unreadable: {exc.__class__.__name__}") from None
    if len(segments) and int(segments.track.max()) >= len(tracks):
        raise LibraryDamaged(f"library index {path} is inconsistent; {fix}", "inconsistent")
    return Library(name=meta.get("name", name), tracks=tracks, segments=segments, meta=meta, path=path)


def library_path(libraries_dir: Path, name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"library name {name!r} is not usable; use letters, digits, '-' or '_'")
    return Path(libraries_dir) / f"{name}.sqlite"


def list_libraries(libraries_dir: Path) -> list[Path]:
    """Built libraries, newest first."""
    d = Path(libraries_dir)
    if not d.is_dir():
        return []
    def mtime(p: Path) -> int:
        try:
            return p.stat().st_mtime_ns
        except OSError:  # removed meanwhile
            return -1

    return sorted(d.glob("*.sqlite"), key=mtime, reverse=True)
