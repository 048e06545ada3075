"""Listener feedback: likes and skips, each with its time and the context it was given in.

Rows go to a local SQLite file (``paths.feedback``, by default ``~/.local/share/moodsic-live/
feedback.sqlite``) for the learning-from-listeners work: which song, which part of it, the room's
stable estimate and the mode at that moment. Nothing leaves the machine. Each :meth:`FeedbackStore.add`
opens, writes and closes the file in one transaction, so any thread may call it and a crash never
leaves half a row; an existing file is only ever appended to.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Literal

from moodsic_live.errors import MoodsicError

Kind = Literal["like", "skip"]

_SCHEMA = """CREATE TABLE IF NOT EXISTS feedback (
    at REAL NOT NULL,             -- unix time (seconds)
    kind TEXT NOT NULL CHECK (kind IN ('like', 'skip')),
    library TEXT NOT NULL,
    track_id TEXT NOT NULL,
    title TEXT NOT NULL,
    artist TEXT NOT NULL,
    position_s REAL NOT NULL,     -- where in the song
    valence REAL,                 -- the room's stable estimate (NULL before the first)
    arousal REAL,
    mode TEXT NOT NULL            -- mirror / regulate / target
)"""


@dataclass(frozen=True)
class Feedback:
    at: float
    kind: Kind
    library: str
    track_id: str
    title: str
    artist: str
    position_s: float
    valence: float | None
    arousal: float | None
    mode: str

    @classmethod
    def now(cls, kind: Kind, **context) -> Feedback:
        return cls(at=time.time(), kind=kind, **context)


class FeedbackStore:
    def __init__(self, path: Path):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=2.0)
            con.execute(_SCHEMA)
            return con
        except (OSError, sqlite3.Error) as exc:
            raise MoodsicError(f"feedback file {self.path} cannot be written ({exc}); set paths.feedback "
                               "in the config to a writable file") from None

    def add(self, row: Feedback) -> None:
        con = self._connect()
        try:
            with con:
                marks = ", ".join("?" * len(fields(Feedback)))
                con.execute(f"INSERT INTO feedback VALUES ({marks})", astuple(row))
        except sqlite3.Error as exc:
            raise MoodsicError(f"feedback file {self.path}: {exc}; move it aside to start a new one") from None
        finally:
            con.close()

    def rows(self) -> list[Feedback]:
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            names = ", ".join(f.name for f in fields(Feedback))
            return [Feedback(*r) for r in con.execute(f"SELECT {names} FROM feedback ORDER BY at")]
        except sqlite3.Error as exc:
            raise MoodsicError(f"feedback file {self.path}: {exc}; move it aside to start a new one") from None
        finally:
            con.close()
