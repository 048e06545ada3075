"""The listener-event store: every recommendation and every listener action, with its time and context.

Rows go to a local SQLite file (``paths.feedback``, by default ``~/.local/share/moodsic-live/
feedback.sqlite``) for learning from listeners. Nothing leaves the machine; ``moodsic-live feedback
export`` copies it out as JSON lines and ``moodsic-live feedback delete --yes`` removes it.

Schema (version 2, kept in ``PRAGMA user_version``)::

    events                        one row per event, never updated
      id             INTEGER PRIMARY KEY   returned by FeedbackStore.add
      at             REAL NOT NULL         unix time (s)
      session        TEXT NOT NULL         one id per app run (FeedbackStore.session); "migrated" for v1 rows
      kind           TEXT NOT NULL         shown | started | skipped | replayed | liked | completed (CHECK)
      library        TEXT NOT NULL         library name
      track_id       TEXT NOT NULL
      title          TEXT NOT NULL
      artist         TEXT NOT NULL
      position_s     REAL NOT NULL         where in the song (s): the start of play, where a skip happened
      valence        REAL                  the room's stable estimate (NULL before the first)
      arousal        REAL
      mode           TEXT NOT NULL         mirror / regulate / target / video
      context        TEXT NOT NULL         a JSON object: weights used, score terms (fit, arc, pref,
                                           novelty), duration_s of the song, the explanation, ...
      recommendation INTEGER               id of the shown/started event this action answers, when known
    state                         what the learner keeps between runs (weights, preferences)
      name TEXT PRIMARY KEY, at REAL NOT NULL (unix s), json TEXT NOT NULL (a JSON object)

Version 1 (no user_version; one table ``feedback`` of likes and skips) is upgraded in ONE transaction
when first opened: every row is kept, ``like`` -> ``liked``, ``skip`` -> ``skipped``, session
``migrated``, context ``{}``. A file from a newer version is refused with a one-line
:class:`MoodsicError` and left as it is.

Durability: the file is in WAL mode with ``synchronous=FULL``. In WAL mode NORMAL already survives
the app being killed, but a power cut may lose the last commits; FULL syncs the log at every commit,
so an event that :meth:`FeedbackStore.add` has returned an id for survives a power cut too. That costs
one fsync per event, which at a few events a minute is nothing. Each call opens its own connection
and writes its event in one transaction (a single INSERT), under a lock, so any thread (or process)
may call it and a crash never leaves half a row.

Damage: when the file is not a database, or fails ``PRAGMA quick_check`` when first opened, it (with
its ``-wal``/``-shm``) is moved aside to ``<name>.corrupt-<YYYYmmdd-HHMMSS>`` and a new store is started;
:attr:`FeedbackStore.notice` then holds the one line to show the user. A location that cannot be
written is a one-line :class:`MoodsicError` naming the file and ``paths.feedback``.

Implicit signals (:func:`outcomes`, pure, no SQLite). Each play -- a ``started`` event, or a ``shown``
one that was never started -- is rewarded by the actions on the same track that follow it, until the
next ``started``:

    =================================  ===========================================================
    action                             reward
    =================================  ===========================================================
    skipped within the first 10 s      -1.0                           (why: "skipped after 4 s")
    skipped later                      -0.5 * (1 - heard / available)  heard = skip position - play
                                       position; available = duration_s (from the skip's or the
                                       play's context) - play position; without duration_s: -0.5
    completed                          +1.0
    liked                              +1.0
    replayed                           +0.5
    nothing                             0.0  (unknown: Outcome.known is False)
    =================================  ===========================================================

Rewards of several actions add up and the sum is clipped to [-1, 1].
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from moodsic_live.errors import MoodsicError

Kind = Literal["shown", "started", "skipped", "replayed", "liked", "completed"]
KINDS: tuple[str, ...] = get_args(Kind)
ACTIONS = frozenset({"skipped", "replayed", "liked", "completed"})
SCHEMA_VERSION = 2
EARLY_SKIP_S = 10.0

_KIND_LIST = ", ".join(f"'{k}'" for k in KINDS)
_SCHEMA = (f"""CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    session TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ({_KIND_LIST})),
    library TEXT NOT NULL,
    track_id TEXT NOT NULL,
    title TEXT NOT NULL,
    artist TEXT NOT NULL,
    position_s REAL NOT NULL,
    valence REAL,
    arousal REAL,
    mode TEXT NOT NULL,
    context TEXT NOT NULL DEFAULT '{{}}',
    recommendation INTEGER
)""", "CREATE INDEX IF NOT EXISTS events_track ON events (library, track_id)",
    """CREATE TABLE IF NOT EXISTS state (
    name TEXT PRIMARY KEY,
    at REAL NOT NULL,
    json TEXT NOT NULL
)""")
_COLUMNS = ("at", "session", "kind", "library", "track_id", "title", "artist", "position_s", "valence", "arousal",
            "mode", "context", "recommendation")
_V1_COLUMNS = {"at", "kind", "library", "track_id", "title", "artist", "position_s", "valence", "arousal", "mode"}
_MIGRATE_V1 = f"""INSERT INTO events ({", ".join(_COLUMNS)})
    SELECT at, 'migrated', CASE kind WHEN 'like' THEN 'liked' WHEN 'skip' THEN 'skipped' ELSE kind END,
           library, track_id, title, artist, position_s, valence, arousal, mode, '{{}}', NULL
    FROM feedback ORDER BY at, rowid"""
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_BUSY_CODES = {5, 6}      # SQLITE_BUSY, SQLITE_LOCKED
_SIDE_FILES = ("-wal", "-shm", "-journal")


class FeedbackKindError(MoodsicError, ValueError):
    """An event kind that is not one of :data:`KINDS` (a programming error, said in one line)."""


def new_session_id() -> str:
    """A fresh id for one run of the app: its local start time and 8 random hex digits."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON: numpy scalars/arrays as numbers/lists, non-finite floats as null,
    paths and other objects as their text (an event is never lost over its context)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _jsonable(value.tolist())
    return str(value)


@dataclass(frozen=True)
class Feedback:
    """One listener event (see the module docstring for the fields). ``id`` is set on rows read back;
    an empty ``session`` is filled in with the store's own when added."""

    at: float
    kind: Kind
    library: str
    track_id: str
    title: str
    artist: str
    position_s: float = 0.0
    valence: float | None = None
    arousal: float | None = None
    mode: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    recommendation: int | None = None
    session: str = ""
    id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FeedbackKindError(f"unknown feedback kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if not isinstance(self.context, Mapping):
            raise TypeError(f"Feedback.context must be a dict, got {type(self.context).__name__}")

    @classmethod
    def now(cls, kind: Kind, **fields: Any) -> Feedback:
        """An event that happens now (``at`` = the current unix time)."""
        return cls(at=time.time(), kind=kind, **fields)

    def as_dict(self) -> dict[str, Any]:
        """The event as one JSON-able object (the context as an object), as ``export`` writes it."""
        return {"id": self.id, "at": self.at, "session": self.session, "kind": self.kind, "library": self.library,
                "track_id": self.track_id, "title": self.title, "artist": self.artist,
                "position_s": self.position_s, "valence": self.valence, "arousal": self.arousal, "mode": self.mode,
                "context": _jsonable(self.context), "recommendation": self.recommendation}


def _code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _is_damage(exc: sqlite3.Error) -> bool:
    code = _code(exc)
    if code is not None:
        return code in _DAMAGE_CODES
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text


def _with_suffix(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


class FeedbackStore:
    """The events and learner state of one SQLite file. Cheap to make: the file is opened (checked,
    upgraded or created) on first use, or by :meth:`open`. Reads of a file that does not exist return
    nothing and create nothing. ``session`` is this store's run id, given to events added without one."""

    def __init__(self, path: Path | str, session: str | None = None):
        self.path = Path(path)
        self.session = session or new_session_id()
        self.notice: str | None = None   # set when a damaged file was moved aside: show it to the user
        self._lock = threading.RLock()
        self._ready = False
        self._suspect = False            # a write hit damage that quick_check may not see: move it aside

    # ---- opening -------------------------------------------------------------------------------------

    def open(self) -> str | None:
        """Check, upgrade or create the file now; returns :attr:`notice` (None when all was well).
        Raises a one-line MoodsicError for an unwritable location or a newer file."""
        with self._lock:
            if not self._ready or not self.path.exists():
                self._prepare()
            return self.notice

    def _unwritable(self, detail: str) -> MoodsicError:
        return MoodsicError(f"feedback file {self.path} cannot be written ({detail}); set paths.feedback "
                            "in the config to a writable file")

    def _failed(self, exc: sqlite3.Error) -> MoodsicError:
        self._ready = False   # check the file again next time (it may have been replaced or removed meanwhile)
        if _is_damage(exc):
            self._suspect = True
            return MoodsicError(f"feedback file {self.path} is damaged ({exc}); it will be kept aside and a new "
                                "one started")
        if _code(exc) in _BUSY_CODES:
            return MoodsicError(f"feedback file {self.path} is busy ({exc}); another program holds it, try again")
        return self._unwritable(str(exc))

    def _newer(self, version: int) -> MoodsicError:
        return MoodsicError(f"feedback file {self.path} is from a newer moodsic-live (schema version {version}, "
                            f"this one knows {SCHEMA_VERSION}); update moodsic-live or set paths.feedback to "
                            "another file")

    def _raw(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA synchronous=FULL")
        return con

    def _inspect(self) -> bool:
        """True when the existing file is healthy; False when damaged. Raises for a newer version."""
        con = None
        try:
            con = self._raw()
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise self._newer(version)
            problems = [r[0] for r in con.execute("PRAGMA quick_check")]
            return problems == ["ok"]
        except sqlite3.Error as exc:
            if _is_damage(exc):
                return False
            raise self._failed(exc) from None
        finally:
            if con is not None:
                con.close()

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = _with_suffix(self.path, f".corrupt-{stamp}")
        n = 1
        while any(_with_suffix(backup, s).exists() for s in ("", *_SIDE_FILES)):
            backup = _with_suffix(self.path, f".corrupt-{stamp}-{n}")
            n += 1
        try:
            for suffix in (*_SIDE_FILES, ""):   # the log first: a fresh file must never meet a stale log
                src = _with_suffix(self.path, suffix)
                if src.exists():
                    os.replace(src, _with_suffix(backup, suffix))
            # The shared-memory index is rebuilt from the log by whoever opens the copy; an empty log is nothing.
            _with_suffix(backup, "-shm").unlink(missing_ok=True)
            wal = _with_suffix(backup, "-wal")
            if wal.exists() and wal.stat().st_size == 0:
                wal.unlink()
        except OSError as exc:
            raise MoodsicError(f"feedback file {self.path} is damaged and cannot be moved aside ({exc.strerror}); "
                               "move it away by hand or set paths.feedback to another file") from None
        return backup

    def _prepare(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
            raise self._unwritable(f"{blocker} is a file, not a folder" if blocker else exc.strerror or str(exc)
                                   ) from None
        if self.path.is_dir():
            raise self._unwritable("it is a folder")
        if self.path.exists() and (self._suspect or not self._inspect()):
            backup = self._move_aside()
            self.notice = (f"feedback database {self.path} was damaged; kept a copy at {backup}, "
                           "started a new one")
        self._suspect = False
        try:
            con = self._raw()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("BEGIN IMMEDIATE")
            try:
                self._create_or_upgrade(con)
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        finally:
            con.close()
        self._ready = True

    def _create_or_upgrade(self, con: sqlite3.Connection) -> None:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise self._newer(version)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                  if not r[0].startswith("sqlite_")}
        if version < SCHEMA_VERSION and "feedback" in tables:
            columns = {r[1] for r in con.execute("PRAGMA table_info(feedback)")}
            if not _V1_COLUMNS <= columns:
                raise MoodsicError(f"feedback file {self.path} has a table 'feedback' that is not moodsic-live's; "
                                   "set paths.feedback to another file")
            for statement in _SCHEMA:
                con.execute(statement)
            try:
                con.execute(_MIGRATE_V1)
            except sqlite3.IntegrityError as exc:
                raise MoodsicError(f"feedback file {self.path} cannot be upgraded ({exc}); it is unchanged; move "
                                   "it aside (or set paths.feedback to another file) to start a new one") from None
            con.execute("DROP TABLE feedback")
        elif version < SCHEMA_VERSION and tables:
            raise MoodsicError(f"feedback file {self.path} is a database of something else (tables: "
                               f"{', '.join(sorted(tables))}); set paths.feedback to another file")
        for statement in _SCHEMA:
            con.execute(statement)
        if version != SCHEMA_VERSION:
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _connect(self) -> sqlite3.Connection:
        if not self._ready or not self.path.exists():
            self._prepare()
        try:
            return self._raw()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def _read(self, query: str, params: tuple = ()) -> list[tuple]:
        """Rows of ``query``; none when the file does not exist (nothing is created)."""
        with self._lock:
            if not self.path.exists():
                return []
            con = self._connect()
            try:
                return con.execute(query, params).fetchall()
            except sqlite3.Error as exc:
                raise self._failed(exc) from None
            finally:
                con.close()

    def _write(self, query: str, params: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            con = self._connect()
            try:
                return con.execute(query, params)   # autocommit: one statement, one transaction
            except sqlite3.Error as exc:
                raise self._failed(exc) from None
            finally:
                con.close()

    # ---- events --------------------------------------------------------------------------------------

    def add(self, event: Feedback) -> int:
        """Write one event in its own transaction; returns its row id once it is committed."""
        values = (float(event.at), event.session or self.session, event.kind, event.library, str(event.track_id),
                  event.title, event.artist, float(event.position_s or 0.0),
                  None if event.valence is None else float(event.valence),
                  None if event.arousal is None else float(event.arousal), event.mode,
                  json.dumps(_jsonable(event.context), ensure_ascii=False, allow_nan=False),
                  None if event.recommendation is None else int(event.recommendation))
        marks = ", ".join("?" * len(_COLUMNS))
        cur = self._write(f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES ({marks})", values)
        return int(cur.lastrowid)

    def rows(self, after: int = 0) -> list[Feedback]:
        """Every event (or those with id > ``after``), in the order they were added (by id)."""
        found = self._read(f"SELECT id, {', '.join(_COLUMNS)} FROM events WHERE id > ? ORDER BY id", (after,))
        events = []
        for (id_, at, session, kind, library, track_id, title, artist, position_s, valence, arousal, mode,
             context, recommendation) in found:
            try:
                ctx = json.loads(context)
            except ValueError:
                ctx = None
            events.append(Feedback(at=at, kind=kind, library=library, track_id=track_id, title=title, artist=artist,
                                   position_s=position_s, valence=valence, arousal=arousal, mode=mode,
                                   context=ctx if isinstance(ctx, dict) else {}, recommendation=recommendation,
                                   session=session, id=id_))
        return events

    # ---- learner state -------------------------------------------------------------------------------

    def save_state(self, name: str, data: Mapping[str, Any]) -> None:
        """Keep the learner's state ``name`` (a JSON-able dict), replacing what was kept under that name."""
        if not isinstance(data, Mapping):
            raise TypeError(f"learner state must be a dict, got {type(data).__name__}")
        text = json.dumps(_jsonable(data), ensure_ascii=False, allow_nan=False)
        self._write("INSERT OR REPLACE INTO state (name, at, json) VALUES (?, ?, ?)", (name, time.time(), text))

    def load_state(self, name: str) -> dict[str, Any] | None:
        """The state kept under ``name``; None when there is none (or it is unreadable: learn afresh)."""
        found = self._read("SELECT json FROM state WHERE name = ?", (name,))
        if not found:
            return None
        try:
            data = json.loads(found[0][0])
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def state_names(self) -> list[str]:
        return [r[0] for r in self._read("SELECT name FROM state ORDER BY name")]

    def reset_learning(self) -> int:
        """Forget every learned state (weights, preferences); the events stay. Returns how many."""
        with self._lock:
            if not self.path.exists():
                return 0
            return max(0, self._write("DELETE FROM state").rowcount)

    # ---- export and delete ---------------------------------------------------------------------------

    def export(self, path: Path | str) -> int:
        """Write every event as JSON lines (one object per event) to ``path``, whole or not at all
        (written aside, then renamed). Returns the number of events."""
        target = Path(path)
        events = self.rows()
        part = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            with open(part, "w", encoding="utf-8") as f:
                for event in events:
                    f.write(json.dumps(event.as_dict(), ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, target)
        except OSError as exc:
            try:
                part.unlink(missing_ok=True)
            except OSError:
                pass
            raise MoodsicError(f"cannot write {target} ({exc.strerror or exc}); choose a writable path") from None
        return len(events)

    def delete_all(self) -> list[Path]:
        """Remove the database with its -wal/-shm and any damaged copies kept aside, so nothing of the
        listening history remains. Returns the files removed. The next event starts a new file."""
        with self._lock:
            doomed = [_with_suffix(self.path, s) for s in (*_SIDE_FILES, "")]
            parent = self.path.parent
            if parent.is_dir():
                prefix = f"{self.path.name}.corrupt-"
                doomed += sorted(p for p in parent.iterdir() if p.name.startswith(prefix))
            removed = []
            for p in doomed:
                try:
                    if p.is_file() or p.is_symlink():
                        p.unlink()
                        removed.append(p)
                except OSError as exc:
                    raise MoodsicError(f"cannot delete {p} ({exc.strerror}); remove it by hand") from None
            self._ready, self._suspect, self.notice = False, False, None
            return removed


# ---- implicit signals ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What one play earned: the play's event id (its ``started`` event, or the ``shown`` one when it
    never started), the track, the mode and context it was chosen with (the ``shown`` context updated
    with the ``started`` one), the reward in [-1, 1] and why. ``known`` is False when no action followed."""

    event_id: int | None
    track_id: str
    mode: str
    context: dict[str, Any]
    reward: float
    why: str
    known: bool
    at: float = 0.0
    library: str = ""


@dataclass(eq=False)
class _Play:
    event: Feedback
    context: dict[str, Any]
    ids: set[int]
    actions: list[Feedback] = field(default_factory=list)


def _duration(skip: Feedback, play: _Play) -> float | None:
    for ctx in (skip.context, play.context):
        value = ctx.get("duration_s") if isinstance(ctx, Mapping) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
            return float(value)
    return None


def _reward(play: _Play) -> tuple[float, str]:
    total, why = 0.0, []
    for a in play.actions:
        if a.kind == "skipped":
            heard = max(0.0, float(a.position_s) - float(play.event.position_s))
            if heard < EARLY_SKIP_S:
                total -= 1.0
            else:
                duration = _duration(a, play)
                if duration is None:
                    total -= 0.5
                else:
                    available = max(duration - float(play.event.position_s), 1e-9)
                    total -= 0.5 * (1.0 - min(1.0, heard / available))
            why.append(f"skipped after {heard:.0f} s")
        elif a.kind in ("completed", "liked"):
            total += 1.0
            why.append(a.kind)
        elif a.kind == "replayed":
            total += 0.5
            why.append("replayed")
    return max(-1.0, min(1.0, total)), ", ".join(why) or "no reaction"


def outcomes(events: Iterable[Feedback]) -> list[Outcome]:
    """Reward each play from the listener's actions on it (table in the module docstring). ``events``
    in the order they happened (as :meth:`FeedbackStore.rows` gives them). An action is credited to
    the play its ``recommendation`` names, else to the current play when it is the same track, else to
    a shown-but-not-started play of that track; other actions are ignored. A ``started`` event takes
    over the pending ``shown`` play of its track (its id, context and actions). Outcomes come in play
    order (the order of the ``started`` events, never-started ``shown`` ones where they were shown)."""
    plays: list[_Play] = []
    by_id: dict[int, _Play] = {}
    pending: dict[tuple[str, str], _Play] = {}     # shown, not yet started, by (library, track)
    current: _Play | None = None

    def key(e: Feedback) -> tuple[str, str]:
        return (e.library, str(e.track_id))

    for e in events:
        if e.kind == "shown":
            play = _Play(e, dict(e.context), {e.id} if e.id is not None else set())
            pending[key(e)] = play
            plays.append(play)
            if e.id is not None:
                by_id[e.id] = play
        elif e.kind == "started":
            shown = pending.pop(key(e), None)
            if shown is not None:
                plays.remove(shown)
                play = _Play(e, {**shown.context, **e.context}, shown.ids | ({e.id} if e.id is not None else set()),
                             shown.actions)
            else:
                play = _Play(e, dict(e.context), {e.id} if e.id is not None else set())
            plays.append(play)
            for i in play.ids:
                by_id[i] = play
            current = play
        elif e.kind in ACTIONS:
            target = by_id.get(e.recommendation) if e.recommendation is not None else None
            if target is None and current is not None and key(current.event) == key(e):
                target = current
            if target is None:
                target = pending.get(key(e))
            if target is not None:
                target.actions.append(e)
    result = []
    for play in plays:
        reward, why = _reward(play)
        ev = play.event
        result.append(Outcome(event_id=ev.id, track_id=str(ev.track_id), mode=ev.mode, context=play.context,
                              reward=reward, why=why, known=bool(play.actions), at=ev.at, library=ev.library))
    return result
