"""The DEAM dataset (Aljanaki, Yang & Soleymani 2017) in its real release layout.

Files are found by name anywhere under the given root, since people unzip the release in
different ways:

* ``{song_id}.mp3`` (in ``MEMD_audio/`` in the release) — the audio;
* ``valence.csv`` / ``arousal.csv`` (``annotations averaged per song/dynamic ...``) — 2 Hz
  human series in [-1, 1]: ``song_id,sample_15000ms,sample_15500ms,...``; rows are ragged
  (the 2015 full songs are longer; missing cells are empty) and may hold ``NaN``;
* ``static_annotations_averaged_songs_*.csv`` — song-level SAM ratings on 1..9, with leading
  spaces in the header names and, in the 2000–2058 file, extra columns;
* ``metadata_2013.csv`` / ``metadata_2014.csv`` / ``metadata_2015.csv`` — three different
  headers (``song_id``/``Id``/``id``; ``Song title``/``Track``/``title``), quoted values with
  stray tabs and spaces, and rows with more cells than the header.

**The first 15 s.** DEAM's annotators' first 15 s were discarded as unstable, so the human
series starts at ``sample_15000ms``. We keep the human series as it is: a DEAM track's series
(and so its segments) starts at 15 s. The intro is still played when a segment's song is
started before that segment, but it is never *matched* on a guess.

Songs with annotations but no audio, and audio with no dynamic annotation, are counted and
reported, not fatal; the latter are analysed from their audio like any user file.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError, ScaleError
from moodsic_live.library.model import SERIES_HZ, VASeries
from moodsic_live.scales import to_reference

_SAMPLE = re.compile(r"^sample_(\d+)ms$")
_MAX_GAP_STEPS = 6  # interior NaN gaps up to 3 s are interpolated; longer gaps end the series


@dataclass(frozen=True)
class SongInfo:
    title: str = ""
    artist: str = ""
    genre: str = ""


@dataclass
class DeamRelease:
    root: Path
    audio: dict[str, Path] = field(default_factory=dict)
    dynamic: dict[str, VASeries] = field(default_factory=dict)
    static: dict[str, tuple[float, float]] = field(default_factory=dict)
    info: dict[str, SongInfo] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def annotated(self) -> set[str]:
        return set(self.dynamic) | set(self.static)

    @property
    def with_both(self) -> list[str]:
        """Songs with audio and a dynamic annotation, in id order."""
        return sorted(set(self.audio) & set(self.dynamic), key=_id_key)

    @property
    def annotation_only(self) -> list[str]:
        return sorted(self.annotated - set(self.audio), key=_id_key)

    @property
    def audio_only(self) -> list[str]:
        return sorted(set(self.audio) - set(self.dynamic), key=_id_key)


def _id_key(song_id: str) -> tuple[int, str]:
    return (int(song_id), "") if song_id.isdigit() else (10**12, song_id)


def _clean(cell: str) -> str:
    """Strip quotes, tabs and runs of whitespace that DEAM's metadata carries."""
    return re.sub(r"\s+", " ", cell.replace("\t", " ")).strip().strip('"').strip()


def _read_rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    sample = text[:4096]
    delimiter = "\t" if sample.count("\t") > sample.count(",") and '"' not in sample else ","
    return [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in row)]


def _float(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return math.nan


def read_dynamic_csv(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """``{song_id: (t, values)}`` of one dynamic file, and how many rows needed NaN repair.

    Ragged rows end where their cells end; trailing empty/NaN cells are dropped; interior gaps
    of up to 3 s are linearly interpolated and a longer gap ends the series there.
    """
    rows = _read_rows(path)
    if not rows:
        raise InputError(f"{path}: empty annotation file")
    header = [_clean(h) for h in rows[0]]
    times = []
    for h in header[1:]:
        m = _SAMPLE.match(h)
        if not m:
            raise InputError(f"{path}: unexpected column {h!r}; expected sample_<ms>ms columns (DEAM dynamic)")
        times.append(int(m.group(1)) / 1000.0)
    t_all = np.asarray(times, np.float64)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    repaired = 0
    for row in rows[1:]:
        song = _clean(row[0])
        if not song:
            continue
        vals = np.array([_float(c) if c.strip() else math.nan for c in row[1:len(t_all) + 1]], np.float64)
        finite = np.flatnonzero(np.isfinite(vals))
        if len(finite) == 0:
            continue
        vals = vals[finite[0]:finite[-1] + 1]
        t = t_all[finite[0]:finite[0] + len(vals)]
        bad = ~np.isfinite(vals)
        if bad.any():
            repaired += 1
            # A gap longer than the limit ends the series before it.
            run = 0
            for i, b in enumerate(bad):
                run = run + 1 if b else 0
                if run > _MAX_GAP_STEPS:
                    cut = i - run + 1
                    vals, t, bad = vals[:cut], t[:cut], bad[:cut]
                    break
            idx = np.arange(len(vals))
            vals[bad] = np.interp(idx[bad], idx[~bad], vals[~bad])
        out[song] = (t, vals)
    return out, repaired


def read_dynamic(valence_csv: Path, arousal_csv: Path, notes: list[str]) -> dict[str, VASeries]:
    """Human 2 Hz series for songs present in both files (cut to their common length)."""
    val, rv = read_dynamic_csv(valence_csv)
    aro, ra = read_dynamic_csv(arousal_csv)
    if rv or ra:
        notes.append(f"{max(rv, ra)} annotation rows had missing (NaN/empty) values inside; short gaps "
                     "were interpolated")
    series: dict[str, VASeries] = {}
    out_of_range = 0
    for song in sorted(set(val) & set(aro), key=_id_key):
        (tv, v), (ta, a) = val[song], aro[song]
        t0 = max(tv[0], ta[0])
        v, a = v[tv >= t0 - 1e-6], a[ta >= t0 - 1e-6]
        n = min(len(v), len(a))
        if n == 0:
            continue
        try:
            v = to_reference(v[:n], "deam_dynamic", "valence")
            a = to_reference(a[:n], "deam_dynamic", "arousal")
        except ScaleError:
            out_of_range += 1
            continue
        t = (t0 + np.arange(n) / SERIES_HZ).astype(np.float32)
        series[song] = VASeries(t, np.asarray(v, np.float32), np.asarray(a, np.float32), "human")
    if out_of_range:
        notes.append(f"{out_of_range} songs skipped: dynamic values outside DEAM's [-1, 1]")
    only_one = len(set(val) ^ set(aro))
    if only_one:
        notes.append(f"{only_one} songs have only a valence or only an arousal series; skipped")
    return series


def read_static(path: Path) -> dict[str, tuple[float, float]]:
    """Song-level SAM means (1..9) of one static file, mapped to the reference space."""
    rows = _read_rows(path)
    if not rows:
        return {}
    header = [_clean(h).lower().replace(" ", "") for h in rows[0]]
    try:
        i_id, i_v, i_a = header.index("song_id"), header.index("valence_mean"), header.index("arousal_mean")
    except ValueError:
        raise InputError(f"{path}: no song_id/valence_mean/arousal_mean columns (DEAM static)") from None
    out = {}
    for row in rows[1:]:
        if len(row) <= max(i_id, i_v, i_a):
            continue
        v, a = _float(row[i_v]), _float(row[i_a])
        if not (1.0 <= v <= 9.0 and 1.0 <= a <= 9.0):
            continue
        out[_clean(row[i_id])] = (float(to_reference(v, "deam_static", "valence")),
                                  float(to_reference(a, "deam_static", "arousal")))
    return out


_ID_NAMES = ("song_id", "id")
_TITLE_NAMES = ("song title", "title", "track", "song")
_ARTIST_NAMES = ("artist",)
_GENRE_NAMES = ("genre",)


def read_metadata(path: Path) -> dict[str, SongInfo]:
    """Title/artist/genre from any of DEAM's three metadata formats, by header name."""
    rows = _read_rows(path)
    if not rows:
        return {}
    header = [_clean(h).lower() for h in rows[0]]

    def col(names: tuple[str, ...]) -> int | None:
        for name in names:
            if name in header:
                return header.index(name)
        return None

    i_id = col(_ID_NAMES)
    if i_id is None:
        raise InputError(f"{path}: no song_id/id column (DEAM metadata)")
    i_title, i_artist, i_genre = col(_TITLE_NAMES), col(_ARTIST_NAMES), col(_GENRE_NAMES)

    def cell(row: list[str], i: int | None) -> str:
        return _clean(row[i]) if i is not None and i < len(row) else ""

    out = {}
    for row in rows[1:]:
        song = cell(row, i_id)
        if song.isdigit():
            out[song] = SongInfo(cell(row, i_title), cell(row, i_artist), cell(row, i_genre))
    return out


def _pick(paths: list[Path]) -> Path | None:
    """Of several files with one name, the one in an 'averaged' folder, else the shortest path."""
    if not paths:
        return None
    averaged = [p for p in paths if "averaged" in str(p.parent).lower()]
    return min(averaged or paths, key=lambda p: (len(p.parts), str(p)))


def looks_like_deam(root: Path) -> bool:
    names = {p.name for p in Path(root).rglob("*.csv")} if Path(root).is_dir() else set()
    return ("valence.csv" in names and "arousal.csv" in names) or any(
        n.startswith("static_annotations_averaged_songs") for n in names)


def find_deam(root: Path) -> DeamRelease:
    """Find and read every DEAM file under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; give the folder where the DEAM release was unzipped")
    rel = DeamRelease(root=root)
    by_name: dict[str, list[Path]] = {}
    for p in root.rglob("*"):
        if p.is_file():
            by_name.setdefault(p.name.lower(), []).append(p)
            if p.suffix.lower() == ".mp3" and p.stem.isdigit():
                if p.stem in rel.audio:
                    rel.notes.append(f"song {p.stem}: two audio files; using {rel.audio[p.stem]}")
                else:
                    rel.audio[p.stem] = p
    valence, arousal = _pick(by_name.get("valence.csv", [])), _pick(by_name.get("arousal.csv", []))
    if valence and arousal:
        rel.dynamic = read_dynamic(valence, arousal, rel.notes)
    else:
        rel.notes.append("no dynamic valence.csv/arousal.csv found: no human 2 Hz series")
    for name in sorted(by_name):
        if name.startswith("static_annotations_averaged_songs") and name.endswith(".csv"):
            rel.static.update(read_static(_pick(by_name[name])))
        elif re.fullmatch(r"metadata_\d{4}\.csv", name):
            rel.info.update(read_metadata(_pick(by_name[name])))
    if not rel.audio and not rel.annotated:
        raise InputError(f"{root}: no DEAM files found (MEMD_audio/*.mp3, valence.csv, arousal.csv, "
                         "static_annotations_averaged_songs_*.csv)")
    return rel
