"""The listener-event store on real SQLite files: events, WAL, versions and migration, kills, damage,
implicit rewards, learner state, export/delete, and its command line (through a subprocess)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from moodsic_live.errors import MoodsicError
from moodsic_live.feedback import KINDS, Feedback, FeedbackKindError, FeedbackStore, Outcome, outcomes


# The schema as moodsic-live wrote it before events (version 1: no user_version), verbatim.
V1_SCHEMA = """CREATE TABLE IF NOT EXISTS feedback (
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

# One event per index, the same in this process and in the child that is killed while writing.
MAKE_EVENT = '''
def make_event(i, session):
    from moodsic_live.feedback import KINDS, Feedback
    return Feedback(at=1_700_000_000.0 + i / 8, kind=KINDS[i % 6], library="lib", track_id=f"t{i % 17}",
                    title=f"Title {i} \\u00e9", artist=f"Artist {i % 5}", position_s=i * 0.25,
                    valence=None if i % 7 == 0 else (i % 11) / 10 - 0.5, arousal=(i % 13) / 13,
                    mode=("mirror", "regulate", "target", "video")[i % 4],
                    context={"i": i, "weights": {"fit": 0.6, "pref": 0.3}, "terms": [i, i / 3], "why": "x" * (i % 50)},
                    recommendation=None if i % 3 == 0 else i, session=session)
'''
_ns: dict = {}
exec(MAKE_EVENT, _ns)
make_event = _ns["make_event"]


def _fields(e: Feedback) -> dict:
    d = e.as_dict()
    d.pop("id")
    return d


def _one(path: Path, sql: str):
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def _tables(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()


def _fill(store: FeedbackStore, n: int) -> list[int]:
    return [store.add(make_event(i, "s")) for i in range(n)]


# ---- events, WAL, versions -------------------------------------------------------------------------------

def test_events_come_back_whole_in_order_with_their_ids(tmp_path):
    store = FeedbackStore(tmp_path / "deep" / "feedback.sqlite", session="run-1")
    assert store.rows() == [] and not store.path.exists()       # reading creates nothing
    sent = [make_event(i, "") for i in range(12)]
    ids = [store.add(e) for e in sent]
    assert ids == list(range(1, 13))
    back = store.rows()
    assert [e.id for e in back] == ids
    for s, b in zip(sent, back):
        assert _fields(b) == {**_fields(s), "session": "run-1"}   # an empty session is the store's
    assert isinstance(back[1].context, dict) and back[1].context["weights"] == {"fit": 0.6, "pref": 0.3}
    assert [e.id for e in store.rows(after=10)] == [11, 12]
    explicit = store.add(Feedback.now("liked", library="l", track_id="t", title="T", artist="A", session="other"))
    assert store.rows(after=12)[0].session == "other" and explicit == 13
    now = Feedback.now("started", library="l", track_id="t", title="T", artist="A")
    assert now.context == {} and now.recommendation is None and abs(now.at - time.time()) < 5


def test_the_file_is_wal_at_schema_version_2(tmp_path):
    path = tmp_path / "feedback.sqlite"
    store = FeedbackStore(path)
    store.add(make_event(1, "s"))
    assert _one(path, "PRAGMA journal_mode") == "wal"
    assert _one(path, "PRAGMA user_version") == 2
    assert {"events", "state"} <= _tables(path)
    assert store.open() is None and store.notice is None


def test_kinds_are_exactly_the_six(tmp_path):
    assert KINDS == ("shown", "started", "skipped", "replayed", "liked", "completed")
    with pytest.raises(FeedbackKindError, match="unknown feedback kind 'like'"):
        Feedback.now("like", library="l", track_id="t", title="T", artist="A")
    assert issubclass(FeedbackKindError, MoodsicError)
    store = FeedbackStore(tmp_path / "f.sqlite")
    store.add(make_event(0, "s"))
    con = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        con.execute("INSERT INTO events (at, session, kind, library, track_id, title, artist, position_s, mode) "
                    "VALUES (0, 's', 'skip', 'l', 't', 'T', 'A', 0, 'mirror')")
    con.close()


def test_numpy_and_non_finite_values_in_the_context_are_stored_as_json(tmp_path):
    np = pytest.importorskip("numpy")
    store = FeedbackStore(tmp_path / "f.sqlite")
    store.add(Feedback.now("shown", library="l", track_id="t", title="T", artist="A",
                           context={"fit": np.float32(0.5), "v": np.arange(3), "bad": float("nan"), "p": tmp_path}))
    ctx = store.rows()[0].context
    assert ctx == {"fit": 0.5, "v": [0, 1, 2], "bad": None, "p": str(tmp_path)}


def test_any_thread_may_add(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite")
    got: list[int] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        for j in range(15):
            i = store.add(make_event(k * 100 + j, f"thread{k}"))
            with lock:
                got.append(i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 61))
    assert sorted(e.context["i"] for e in store.rows()) == sorted(k * 100 + j for k in range(4) for j in range(15))


def _write_v1(path: Path, rows: list[tuple], schema: str = V1_SCHEMA) -> None:
    con = sqlite3.connect(path)
    with con:
        con.execute(schema)
        con.executemany("INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.close()


V1_ROWS = [
    (1_700_000_300.0, "skip", "demo", "t2", "Two", "B", 12.5, -0.2, 0.4, "regulate"),
    (1_700_000_100.0, "like", "demo", "t1", "One", "A", 30.0, None, None, "mirror"),
    (1_700_000_200.0, "like", "deam", "t3", "Three é", "C", 0.0, 0.5, -0.5, "target"),
]


def test_a_version_1_file_is_migrated_keeping_every_row(tmp_path):
    path = tmp_path / "feedback.sqlite"
    _write_v1(path, V1_ROWS)
    assert _one(path, "PRAGMA user_version") == 0
    store = FeedbackStore(path)
    rows = store.rows()
    assert [(e.id, e.at, e.kind, e.library, e.track_id, e.title, e.artist, e.position_s, e.valence, e.arousal,
             e.mode, e.session, e.context, e.recommendation) for e in rows] == [
        (1, 1_700_000_100.0, "liked", "demo", "t1", "One", "A", 30.0, None, None, "mirror", "migrated", {}, None),
        (2, 1_700_000_200.0, "liked", "deam", "t3", "Three é", "C", 0.0, 0.5, -0.5, "target", "migrated", {}, None),
        (3, 1_700_000_300.0, "skipped", "demo", "t2", "Two", "B", 12.5, -0.2, 0.4, "regulate", "migrated", {}, None),
    ]
    assert _one(path, "PRAGMA user_version") == 2
    assert _one(path, "PRAGMA journal_mode") == "wal"
    assert "feedback" not in _tables(path)
    assert store.add(make_event(5, "new")) == 4
    assert FeedbackStore(path).rows()[:3] == rows                  # a second open leaves it as it is


def test_a_migration_that_fails_leaves_the_version_1_file_as_it_was(tmp_path):
    path = tmp_path / "feedback.sqlite"
    loose = V1_SCHEMA.replace("title TEXT NOT NULL", "title TEXT")  # a row the new schema cannot take
    _write_v1(path, [*V1_ROWS, (1_700_000_400.0, "like", "demo", "t9", None, "Z", 1.0, 0.0, 0.0, "mirror")], loose)
    with pytest.raises(MoodsicError) as err:
        FeedbackStore(path).rows()
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "cannot be upgraded" in msg and "unchanged" in msg
    assert _tables(path) == {"feedback"}                            # no half-made events table
    assert _one(path, "PRAGMA user_version") == 0
    assert _one(path, "SELECT count(*) FROM feedback") == 4


def test_a_file_from_a_newer_version_is_refused_and_not_touched(tmp_path):
    path = tmp_path / "feedback.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE events_v3 (x)")
    con.execute("PRAGMA user_version = 3")
    con.commit()
    con.close()
    before = path.read_bytes()
    store = FeedbackStore(path)
    for call in (lambda: store.add(make_event(1, "s")), store.rows, store.open):
        with pytest.raises(MoodsicError) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg and str(path) in msg and "newer" in msg and "version 3" in msg
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feedback.sqlite"]


def test_a_database_of_something_else_is_refused(tmp_path):
    path = tmp_path / "music.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE tracks (id)")
    con.commit()
    con.close()
    with pytest.raises(MoodsicError, match="database of something else.*tracks.*paths.feedback"):
        FeedbackStore(path).add(make_event(1, "s"))
    assert _tables(path) == {"tracks"}


# ---- kill safety ------------------------------------------------------------------------------------------

CHILD = MAKE_EVENT + '''
import sys
from moodsic_live.feedback import FeedbackStore
store = FeedbackStore(sys.argv[1])
i = int(sys.argv[2])
while True:
    event_id = store.add(make_event(i, sys.argv[3]))
    print(event_id, i, flush=True)
    i += 1
'''


def test_every_acknowledged_event_survives_sigkill(tmp_path):
    path = tmp_path / "feedback.sqlite"
    rng = random.Random(7)
    acked: dict[int, tuple[int, str]] = {}
    rounds = 5
    for r in range(rounds):
        session = f"kill-{r}"
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(r * 1000), session], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        want = rng.randint(30, 90)
        seen = 0
        try:
            while seen < want:
                line = child.stdout.readline()
                assert line, f"the writer died: {child.stderr.read()}"
                event_id, i = map(int, line.split())
                acked[event_id] = (i, session)
                seen += 1
        finally:
            os.kill(child.pid, signal.SIGKILL)
            rest, _ = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL
        for line in rest.splitlines():        # printed whole before the kill: acknowledged too
            if line.endswith(tuple("0123456789")) and len(line.split()) == 2:
                event_id, i = map(int, line.split())
                acked[event_id] = (i, session)
    assert len(acked) >= rounds * 30
    store = FeedbackStore(path)
    rows = {e.id: e for e in store.rows()}
    assert store.notice is None
    for event_id, (i, session) in acked.items():
        assert event_id in rows, f"acknowledged event {event_id} is gone"
        assert _fields(rows[event_id]) == _fields(make_event(i, session))
    assert len(rows) <= len(acked) + rounds          # at most the one in flight per kill was not acknowledged
    assert _one(path, "PRAGMA integrity_check") == "ok"


def test_two_instances_share_one_history(tmp_path):
    """Two app instances (the window and a CLI, or two windows) write the same file at once:
    every event each one acknowledged is there, whole, and the file stays sound."""
    path = tmp_path / "feedback.sqlite"
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(start), session], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for start, session in ((0, "one"), (5000, "two"))]
    acked: dict[int, tuple[int, str]] = {}
    try:
        for _ in range(150):
            for child, session in zip(children, ("one", "two")):
                line = child.stdout.readline()
                assert line, f"a writer died: {child.stderr.read()}"
                event_id, i = map(int, line.split())
                assert event_id not in acked, f"two instances were given the same event id {event_id}"
                acked[event_id] = (i, session)
    finally:
        for child in children:
            child.kill()
            child.communicate(timeout=10)
    rows = {e.id: e for e in FeedbackStore(path).rows()}
    assert len(acked) == 300
    for event_id, (i, session) in acked.items():
        assert _fields(rows[event_id]) == _fields(make_event(i, session))
    assert {rows[e].session for e in acked} == {"one", "two"}
    assert _one(path, "PRAGMA integrity_check") == "ok"


# ---- damage and unwritable places -------------------------------------------------------------------------

def _backups(folder: Path, name: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(f"{name}.corrupt-"))


def test_random_bytes_are_kept_aside_and_a_new_store_started(tmp_path):
    path = tmp_path / "feedback.sqlite"
    junk = random.Random(3).randbytes(10_000)
    path.write_bytes(junk)
    store = FeedbackStore(path)
    notice = store.open()
    backups = _backups(tmp_path, "feedback.sqlite")
    assert len(backups) == 1 and backups[0].read_bytes() == junk
    assert backups[0].name[len("feedback.sqlite.corrupt-"):].replace("-", "").isdigit()
    assert notice == store.notice == (f"feedback database {path} was damaged; kept a copy at {backups[0]}, "
                                      "started a new one")
    assert store.rows() == []
    assert store.add(make_event(1, "s")) == 1
    assert _one(path, "PRAGMA integrity_check") == "ok"


def test_a_truncated_database_is_kept_aside_and_a_new_one_started(tmp_path):
    path = tmp_path / "feedback.sqlite"
    _fill(FeedbackStore(path), 150)
    size = path.stat().st_size
    assert size > 20_000
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    store = FeedbackStore(path)
    store.add(make_event(1, "s"))                          # damage is found on first use, not only by open()
    assert store.notice and "was damaged" in store.notice and "\n" not in store.notice
    (backup,) = _backups(tmp_path, "feedback.sqlite")
    assert backup.stat().st_size == size // 2
    assert [e.context["i"] for e in store.rows()] == [1]
    assert FeedbackStore(path).open() is None              # the new one is healthy


def test_a_damaged_page_that_quick_check_reports_is_kept_aside(tmp_path):
    path = tmp_path / "feedback.sqlite"
    _fill(FeedbackStore(path), 150)
    data = bytearray(path.read_bytes())
    page = 4096 * 2                                        # page 3: a leaf of the events table
    data[page:page + 4096] = random.Random(5).randbytes(4096)
    path.write_bytes(bytes(data))
    con = sqlite3.connect(path)
    report = [r[0] for r in con.execute("PRAGMA quick_check")]  # says so without raising
    con.close()
    assert report != ["ok"]
    store = FeedbackStore(path)
    assert "was damaged" in (store.open() or "")
    (backup,) = _backups(tmp_path, "feedback.sqlite")
    assert backup.read_bytes() == bytes(data) and store.rows() == []


def test_an_unwritable_place_is_one_line_naming_the_file_and_the_fix(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    path = blocker / "sub" / "feedback.sqlite"
    store = FeedbackStore(path)
    for call in (lambda: store.add(make_event(1, "s")), store.open, lambda: store.save_state("w", {})):
        with pytest.raises(MoodsicError) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg and str(path) in msg and "paths.feedback" in msg and "is a file" in msg
    assert store.rows() == [] and store.load_state("w") is None    # nothing to read is not an error
    assert blocker.read_text() == "x"


# ---- implicit signals -------------------------------------------------------------------------------------

def ev(id_: int, kind: str, track: str = "a", pos: float = 0.0, context: dict | None = None, rec: int | None = None,
       mode: str = "mirror") -> Feedback:
    return Feedback(at=1000.0 + id_, kind=kind, library="lib", track_id=track, title=track.upper(), artist="X",
                    position_s=pos, valence=0.1, arousal=0.2, mode=mode, context=context or {}, recommendation=rec,
                    session="s", id=id_)


@pytest.mark.parametrize("actions, reward, why", [
    ([], 0.0, "no reaction"),
    ([ev(2, "skipped", pos=4.2)], -1.0, "skipped after 4 s"),
    ([ev(2, "skipped", pos=9.9)], -1.0, "skipped after 10 s"),
    ([ev(2, "skipped", pos=60.0)], -0.5, "skipped after 60 s"),                       # no duration: flat
    ([ev(2, "skipped", pos=60.0, context={"duration_s": 240.0})], -0.375, "skipped after 60 s"),
    ([ev(2, "skipped", pos=230.0, context={"duration_s": 240.0})], -0.5 * 10 / 240, "skipped after 230 s"),
    ([ev(2, "completed", pos=240.0)], 1.0, "completed"),
    ([ev(2, "liked", pos=30.0)], 1.0, "liked"),
    ([ev(2, "liked", pos=30.0), ev(3, "completed", pos=240.0)], 1.0, "liked, completed"),   # clipped
    ([ev(2, "replayed", pos=100.0)], 0.5, "replayed"),
    ([ev(2, "liked", pos=1.0), ev(3, "skipped", pos=3.0)], 0.0, "liked, skipped after 3 s"),
    ([ev(2, "skipped", pos=2.0), ev(3, "replayed", pos=2.0)], -0.5, "skipped after 2 s, replayed"),
])
def test_the_reward_of_one_play(actions, reward, why):
    (o,) = outcomes([ev(1, "started", context={"terms": {"fit": 0.8}}), *actions])
    assert isinstance(o, Outcome)
    assert o.event_id == 1 and o.track_id == "a" and o.mode == "mirror" and o.context == {"terms": {"fit": 0.8}}
    assert o.reward == pytest.approx(reward) and o.why == why and o.known == bool(actions)


def test_heard_time_counts_from_where_the_play_started_and_duration_from_its_context():
    # Started 100 s into a 300 s song: a skip at 105 s is early, one at 250 s heard 150 of 200 s.
    early = outcomes([ev(1, "started", pos=100.0), ev(2, "skipped", pos=105.0)])[0]
    assert early.reward == -1.0 and early.why == "skipped after 5 s"
    late = outcomes([ev(1, "started", pos=100.0, context={"duration_s": 300.0}), ev(2, "skipped", pos=250.0)])[0]
    assert late.reward == pytest.approx(-0.5 * (1 - 150 / 200))


def test_plays_shown_started_and_who_gets_the_credit():
    events = [
        ev(1, "shown", "a", context={"weights": {"fit": 0.6}, "duration_s": 200.0}),
        ev(2, "started", "a", context={"gain": 1.0}, rec=1),
        ev(3, "shown", "b", context={"weights": {"fit": 0.5}}),     # decided ahead, while a still plays
        ev(4, "liked", "a", pos=50.0),                              # the current play, same track
        ev(5, "skipped", "c", pos=3.0),                             # a track nobody played: ignored
        ev(6, "shown", "d"),                                        # never started
        ev(7, "started", "b", rec=3),
        ev(8, "completed", "a", pos=200.0),                         # after the next start, unnamed: ignored
        ev(9, "replayed", "a", pos=200.0, rec=2),                   # named: credited to play 2
        ev(10, "skipped", "b", pos=2.0),
    ]
    got = {o.event_id: o for o in outcomes(events)}
    assert sorted(got) == [2, 6, 7]
    a, b, d = got[2], got[7], got[6]
    assert a.context == {"weights": {"fit": 0.6}, "duration_s": 200.0, "gain": 1.0}   # shown + started
    assert a.reward == 1.0 and a.why == "liked, replayed" and a.known
    assert b.reward == -1.0 and b.why == "skipped after 2 s" and b.context == {"weights": {"fit": 0.5}}
    assert d.reward == 0.0 and not d.known and d.why == "no reaction"
    assert [o.event_id for o in outcomes(events)] == [2, 6, 7]


def test_outcomes_read_straight_from_the_store(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite")
    kw = dict(library="lib", title="T", artist="A", mode="target")
    shown = store.add(Feedback.now("shown", track_id="x", context={"duration_s": 100.0, "terms": {"pref": 0.2}},
                                   **kw))
    start = store.add(Feedback.now("started", track_id="x", recommendation=shown, **kw))
    store.add(Feedback.now("skipped", track_id="x", position_s=55.0, recommendation=start, **kw))
    (o,) = outcomes(store.rows())
    assert o.event_id == start and o.mode == "target" and o.context["terms"] == {"pref": 0.2}
    assert o.reward == pytest.approx(-0.5 * 45 / 100) and o.why == "skipped after 55 s"


# ---- learner state, export, delete ------------------------------------------------------------------------

def test_learner_state_is_kept_and_reset_keeps_the_events(tmp_path):
    path = tmp_path / "f.sqlite"
    store = FeedbackStore(path)
    assert store.load_state("weights") is None and store.reset_learning() == 0 and not path.exists()
    _fill(store, 5)
    store.save_state("weights", {"mirror": {"fit": 0.7, "pref": 0.2}})
    store.save_state("prefs", {"t1": 0.4})
    store.save_state("weights", {"mirror": {"fit": 0.5}})            # replaces
    again = FeedbackStore(path)
    assert again.load_state("weights") == {"mirror": {"fit": 0.5}} and again.state_names() == ["prefs", "weights"]
    assert again.reset_learning() == 2
    assert again.load_state("weights") is None and again.load_state("prefs") is None
    assert len(again.rows()) == 5


def test_export_writes_json_lines_whole_or_not_at_all(tmp_path, monkeypatch):
    store = FeedbackStore(tmp_path / "f.sqlite")
    _fill(store, 7)
    out = tmp_path / "out.jsonl"
    assert store.export(out) == 7
    lines = out.read_text(encoding="utf-8").splitlines()
    objs = [json.loads(line) for line in lines]
    assert [o["id"] for o in objs] == list(range(1, 8))
    assert objs[3] == {**make_event(3, "s").as_dict(), "id": 4} and isinstance(objs[3]["context"], dict)
    assert store.export(tmp_path / "empty.jsonl") == 7
    # a failing write leaves the old file as it was and no partial file behind
    before = out.read_bytes()
    store.add(make_event(99, "s"))

    def broken(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(MoodsicError, match="cannot write .*out.jsonl.*No space left.*writable path"):
        store.export(out)
    monkeypatch.undo()
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(MoodsicError, match="cannot write"):
        store.export(tmp_path / "no-such-dir" / "x.jsonl")


def test_delete_all_leaves_nothing_of_the_history(tmp_path):
    path = tmp_path / "feedback.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    store = FeedbackStore(path)
    _fill(store, 4)                                   # with a damaged copy kept aside
    store.save_state("w", {"a": 1})
    con = sqlite3.connect(path)                       # an open reader keeps the -wal and -shm around
    con.execute("SELECT count(*) FROM events").fetchone()
    (tmp_path / "other.txt").write_text("keep me")
    names = {p.name for p in tmp_path.iterdir()}
    assert {"feedback.sqlite", "feedback.sqlite-wal", "feedback.sqlite-shm"} <= names
    assert len(_backups(tmp_path, "feedback.sqlite")) == 1
    removed = store.delete_all()
    con.close()
    assert {p.name for p in tmp_path.iterdir()} == {"other.txt"}
    assert len(removed) == len(names) - 1
    assert store.notice is None and store.rows() == []
    assert store.add(make_event(1, "s")) == 1 and len(store.rows()) == 1   # a new history starts


# ---- the command line -------------------------------------------------------------------------------------

HARNESS = """
import argparse, sys
from moodsic_live.cli import _common, _say
from moodsic_live.cli_feedback import add_feedback_commands, cmd_feedback
from moodsic_live.config import load_config
from moodsic_live.errors import MoodsicError
parser = argparse.ArgumentParser(prog="moodsic-live")
sub = parser.add_subparsers(dest="command", required=True)
add_feedback_commands(sub, _common)
args = parser.parse_args(sys.argv[1:])
try:
    sys.exit(cmd_feedback(args, load_config(args.config), _say))
except MoodsicError as exc:
    _say(f"error: {exc}")
    sys.exit(2)
"""


def feedback_cli(*args: str) -> subprocess.CompletedProcess:
    """`moodsic-live feedback ARGS` as a user runs it (through the main CLI once it knows the command)."""
    from moodsic_live import cli

    if "feedback" in cli.COMMANDS:
        return run_cli("feedback", *args)
    return subprocess.run([sys.executable, "-c", HARNESS, "feedback", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture()
def cli_store(tmp_path):
    db = tmp_path / "data" / "feedback.sqlite"
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[paths]\nfeedback = "{db}"\n', encoding="utf-8")
    return db, str(cfg)


def test_cli_info_on_no_history_creates_nothing(cli_store):
    db, cfg = cli_store
    r = feedback_cli("info", "--json", "--config", cfg)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["exists"] is False and info["events"] == 0 and info["path"] == str(db)
    assert not db.exists() and not db.parent.exists()


def test_cli_info_export_reset_delete(cli_store, tmp_path):
    db, cfg = cli_store
    store = FeedbackStore(db)
    kw = dict(library="lib", title="T", artist="A", mode="mirror")
    s1 = store.add(Feedback(at=1000.0, kind="started", track_id="x", **kw))
    store.add(Feedback(at=1005.0, kind="skipped", track_id="x", position_s=5.0, recommendation=s1, **kw))
    s2 = store.add(Feedback(at=1010.0, kind="started", track_id="y", **kw))
    store.add(Feedback(at=1200.0, kind="completed", track_id="y", position_s=190.0, recommendation=s2, **kw))
    store.add(Feedback(at=1201.0, kind="started", track_id="z", **kw))
    store.save_state("weights", {"fit": 0.5})

    r = feedback_cli("info", "--json", "--config", cfg)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["path"] == str(db) and info["exists"] and info["events"] == 5
    assert info["by_kind"] == {"shown": 0, "started": 3, "skipped": 1, "replayed": 0, "liked": 0, "completed": 1}
    assert info["first"] == 1000.0 and info["last"] == 1201.0
    assert info["plays"] == 3 and info["plays_with_reaction"] == 2 and info["mean_reward"] == pytest.approx(0.0)
    assert info["state"] == ["weights"] and info["schema_version"] == 2

    r = feedback_cli("info", "--config", cfg)
    assert r.returncode == 0 and str(db) in r.stdout and "started 3" in r.stdout and "mean reward +0.00" in r.stdout

    out = tmp_path / "events.jsonl"
    r = feedback_cli("export", str(out), "--config", cfg)
    assert r.returncode == 0 and "exported 5 event(s)" in r.stderr
    from_file = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [o["kind"] for o in from_file] == ["started", "skipped", "started", "completed", "started"]
    r = feedback_cli("export", "-", "--config", cfg)
    assert r.returncode == 0 and [json.loads(line) for line in r.stdout.splitlines()] == from_file

    r = feedback_cli("reset", "--config", cfg)
    assert r.returncode == 0 and "forgot 1 learned state" in r.stderr and "kept the 5 event(s)" in r.stderr
    assert store.load_state("weights") is None and len(store.rows()) == 5

    r = feedback_cli("delete", "--config", cfg)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "--yes" in r.stderr and "Traceback" not in r.stderr
    assert db.exists() and len(store.rows()) == 5
    r = feedback_cli("delete", "--yes", "--config", cfg)
    assert r.returncode == 0, r.stderr
    assert not db.exists() and list(db.parent.iterdir()) == []


def test_cli_says_damage_and_bad_export_paths_in_one_line(tmp_path):
    db = tmp_path / "feedback.sqlite"
    db.write_bytes(b"\x00garbage" * 500)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[paths]\nfeedback = "{db}"\n', encoding="utf-8")
    r = feedback_cli("info", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "was damaged; kept a copy at" in r.stderr and "Traceback" not in r.stderr
    assert json.loads(r.stdout)["events"] == 0 and len(_backups(tmp_path, "feedback.sqlite")) == 1

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = feedback_cli("export", str(blocker / "events.jsonl"), "--config", str(cfg))
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert "error: cannot write" in line and str(blocker / "events.jsonl") in line and "writable path" in line
