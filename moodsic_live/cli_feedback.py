"""The listener-event store on the command line (``paths.feedback``; see moodsic_live.feedback).

    moodsic-live feedback info [--json]    where it is, events by kind, first/last, plays and mean reward
    moodsic-live feedback export FILE      every event as JSON lines (FILE `-`: standard output)
    moodsic-live feedback reset            forget the learned weights and preferences, keep the history
    moodsic-live feedback delete --yes     delete everything: the history and what was learned from it

Exit codes: 0 done, 2 a user error (said in one line).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moodsic_live.feedback import KINDS, SCHEMA_VERSION, FeedbackStore, outcomes

Say = Callable[[str], None]


def add_feedback_commands(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    fb = sub.add_parser("feedback", help="the listening history kept for learning: info, export, reset, delete",
                        description="Every recommendation and listener action (shown, started, skipped, replayed, "
                                    "liked, completed) is kept on this machine only, in the SQLite file "
                                    "paths.feedback, to learn what the listeners like.")
    fsub = fb.add_subparsers(dest="feedback_command", required=True)
    i = fsub.add_parser("info", help="where the history is and what it holds",
                        description="The file, events by kind, the first and last event, the plays and their "
                                    "mean reward (over the plays the listeners reacted to), learned state.")
    i.add_argument("--json", action="store_true", help="one JSON object")
    e = fsub.add_parser("export", help="every event as JSON lines",
                        description="Write every event as one JSON object per line (the context as an object); "
                                    "the file appears whole or not at all.")
    e.add_argument("out", metavar="FILE", help="the file to write (- for standard output)")
    r = fsub.add_parser("reset", help="forget the learned weights and preferences; keep the history",
                        description="Forget what was learned from the listeners (score weights, track "
                                    "preferences); the events stay, so learning can start again from them.")
    d = fsub.add_parser("delete", help="delete the history and everything learned from it",
                        description="Delete the database (with its -wal/-shm files and any damaged copies kept "
                                    "aside), so nothing of the listening history remains on this machine.")
    d.add_argument("--yes", action="store_true", help="really delete")
    for p in (i, e, r, d):
        common(p)


def _iso(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def feedback_info(store: FeedbackStore) -> dict[str, Any]:
    """What ``feedback info`` reports, as one JSON-able dict (reads nothing when the file is absent)."""
    path = store.path
    exists = path.is_file()
    events = store.rows() if exists else []
    by_kind = {k: 0 for k in KINDS}
    for e in events:
        by_kind[e.kind] += 1
    plays = outcomes(events)
    rated = [o.reward for o in plays if o.known]
    return {"path": str(path), "exists": exists, "bytes": path.stat().st_size if exists else 0,
            "schema_version": SCHEMA_VERSION, "events": len(events), "by_kind": by_kind,
            "sessions": len({e.session for e in events}),
            "first": min(e.at for e in events) if events else None,
            "last": max(e.at for e in events) if events else None,
            "plays": len(plays), "plays_with_reaction": len(rated),
            "mean_reward": sum(rated) / len(rated) if rated else None,
            "state": store.state_names() if exists else [], "notice": store.notice}


def _markdown(info: dict[str, Any]) -> str:
    if not info["exists"]:
        return f"feedback file: {info['path']} (none yet: nothing has been recorded)"
    kinds = ", ".join(f"{k} {n}" for k, n in info["by_kind"].items())
    mean = "n/a" if info["mean_reward"] is None else f"{info['mean_reward']:+.2f}"
    lines = [f"feedback file: {info['path']} ({info['bytes'] / 1024:.1f} KiB, schema version "
             f"{info['schema_version']})",
             f"events: {info['events']} ({kinds}) in {info['sessions']} session(s)"]
    if info["events"]:
        lines.append(f"from {_iso(info['first'])} to {_iso(info['last'])}")
    lines.append(f"plays: {info['plays']}, {info['plays_with_reaction']} with a reaction, mean reward {mean}")
    lines.append(f"learned: {', '.join(info['state']) or 'nothing yet'}")
    return "\n".join(lines)


def cmd_feedback(args: argparse.Namespace, config, say: Say) -> int:
    store = FeedbackStore(config.paths.feedback)
    command = args.feedback_command
    if command == "delete":
        if not args.yes:
            say(f"this deletes the whole listening history and what was learned from it ({store.path}); "
                "add --yes to do it")
            return 2
        removed = store.delete_all()
        say(f"deleted {len(removed)} file(s): {', '.join(str(p) for p in removed)}" if removed
            else f"nothing to delete: {store.path} does not exist")
        return 0
    if command == "info":
        info = feedback_info(store)
        if store.notice:
            say(store.notice)
        print(json.dumps(info) if args.json else _markdown(info), flush=True)
        return 0
    if command == "export":
        if args.out == "-":
            events = store.rows()
            for event in events:
                sys.stdout.write(json.dumps(event.as_dict(), ensure_ascii=False) + "\n")
            sys.stdout.flush()
            count, where = len(events), "standard output"
        else:
            count, where = store.export(Path(args.out)), args.out
        if store.notice:
            say(store.notice)
        say(f"exported {count} event(s) to {where}")
        return 0
    if command == "reset":
        from moodsic_live.engine.learning import reset_learning

        n = reset_learning(config, store)
        if store.notice:
            say(store.notice)
        kept = len(store.rows())
        say(f"forgot {n} learned state(s) (weights, preferences); kept the {kept} event(s) of the history")
        return 0
    raise AssertionError(f"unknown feedback command {command}")
