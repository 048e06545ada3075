"""`library build` under abuse: unreadable files, a killed parent, Ctrl+C and SIGTERM, left-over
temporaries, resumed builds, a damaged newest library (issue 17).

Real processes and real signals: the CLI runs as a user would, its workers are found in /proc."""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from audio_fixtures import music, write
from conftest import ROOT, run_cli, write_config
from moodsic_live.errors import InputError
from moodsic_live.library import analysis
from moodsic_live.library.analysis import PER_WORKER_BYTES, cache_file, pool_size, sha1_file
from moodsic_live.library.builder import build_library, open_library

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, sends POSIX signals")

BUILD = ("library", "build")
FAST = ("--workers", "2", "--no-progress", "--music-model", "features")


# --- helpers -----------------------------------------------------------------------------------

def _cli(*args: str, config: Path, **kw) -> subprocess.Popen:
    """`python -m moodsic_live ARGS --config CONFIG` in its own session (its own process group, as
    a shell job would be), output captured."""
    return subprocess.Popen([sys.executable, "-m", "moodsic_live", *args, "--config", str(config)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            out += [int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return out


def _is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone: it holds no memory and does nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_for(what, timeout: float, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(step)
    return what()


def _finished_entries(cache_dir: Path) -> list[Path]:
    return [p for p in (cache_dir / "analysis" / "features").glob("*/*.npz") if ".tmp-" not in p.name]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    """Two short songs (sorted first: the workers finish them at once) and six of 4 minutes (each
    a few seconds of analysis: the build is busy when it is stopped)."""
    root = tmp_path_factory.mktemp("songs")
    for k in range(2):
        write(root / f"a_short{k}.wav", music(12, tempo=90 + 20 * k, seed=k))
    for k in range(6):
        write(root / f"b_long{k}.wav", music(240, tempo=70 + 10 * k, seed=10 + k, minor=k % 2 == 1))
    return root


@pytest.fixture()
def cli_config(lib_config, tmp_path) -> Path:
    return write_config(tmp_path / "config.toml", lib_config)


def _one_song_library(lib_config, tmp_path, name: str, seed: int = 0):
    folder = tmp_path / f"src-{name}"
    write(folder / f"{name}.wav", music(12, seed=seed))
    lib_config.library.workers = 1
    return build_library(folder, lib_config, name, say=lambda _line: None, progress=False)


# --- per-file OS errors: named, skipped, the build goes on ---------------------------------------

def _without_file_permission_override():
    """preexec_fn: as root, drop the capabilities that let root read any file (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH) from the bounding set, so the command run next meets file modes as any
    user does (root still owns the test's folders, so everything else works)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            os._exit(97)


def test_unreadable_and_odd_files_are_named_skips_and_the_build_goes_on(lib_config, cli_config, tmp_path):
    root = tmp_path / "music"
    write(root / "good1.wav", music(12, seed=1))
    write(root / "good2.ogg", music(12, seed=2, minor=True))
    locked = write(root / "locked.wav", music(12, seed=3))
    locked.chmod(0)
    os.mkfifo(root / "pipe.mp3")
    (root / "loop.flac").symlink_to("loop.flac")
    (root / "gone.ogg").symlink_to("nowhere.ogg")
    preexec = _without_file_permission_override if os.geteuid() == 0 else None
    r = subprocess.run([sys.executable, "-m", "moodsic_live", *BUILD, str(root), "--name", "odd", *FAST,
                        "--workers", "1", "--config", str(cli_config)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       preexec_fn=preexec)
    if r.returncode == 97:
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE: mode 000 would not stop reading")
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "library 'odd' (folder): 2 tracks" in out
    assert f"skipped: {locked}: not readable: permission denied (make it readable, e.g. `chmod a+r`)" in out
    assert f"skipped: {root / 'pipe.mp3'}: a named pipe, not a regular file" in out
    assert f"skipped: {root / 'loop.flac'}: a symbolic link loop" in out
    assert f"skipped: {root / 'gone.ogg'}: a broken symbolic link (its target does not exist)" in out


def test_files_that_vanish_or_change_after_the_scan_are_named_skips(lib_config, tmp_path):
    root = (tmp_path / "music").resolve()
    write(root / "a_good.wav", music(12))
    for name in ("b_gone.wav", "c_now_a_folder.wav", "d_now_a_loop.wav"):
        write(root / name, music(12, seed=len(name)))

    def say(line: str) -> None:  # runs between the folder scan and the analysis
        if line.startswith("found "):
            (root / "b_gone.wav").unlink()
            (root / "c_now_a_folder.wav").unlink()
            (root / "c_now_a_folder.wav").mkdir()
            (root / "d_now_a_loop.wav").unlink()
            (root / "d_now_a_loop.wav").symlink_to("d_now_a_loop.wav")

    lib_config.library.workers = 1
    library, report = build_library(root, lib_config, "race", say=say, progress=False)
    assert [t.path.name for t in library.tracks] == ["a_good.wav"]
    assert report.failed == [f"{root / 'b_gone.wav'}: no longer there (removed or renamed during the build)",
                             f"{root / 'c_now_a_folder.wav'}: a folder, not an audio file",
                             f"{root / 'd_now_a_loop.wav'}: a symbolic link loop (the link points back at itself)"]


# --- workers die with their parent -----------------------------------------------------------------

def test_killing_the_build_parent_takes_its_workers_down(songs, cli_config):
    proc = _cli(*BUILD, str(songs), "--name", "killed", *FAST, config=cli_config)
    try:
        workers = _wait_for(lambda: (lambda ws: ws if len(ws) >= 2 else None)(
            [k for k in _children(proc.pid) if _is_worker(k)]), 60)
        assert workers, f"no analysis workers appeared: {proc.poll()} {proc.stderr.read() if proc.poll() else ''}"
        time.sleep(1.0)  # past their start-up: analysing
        family = _children(proc.pid)  # the workers and multiprocessing's resource tracker
        assert all(_alive(k) for k in workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        killed = time.monotonic()
        assert _wait_for(lambda: not any(_alive(k) for k in family), 3.0), \
            f"still running 3 s after the parent was killed: {[k for k in family if _alive(k)]}"
        print(f"workers gone {time.monotonic() - killed:.2f} s after SIGKILL of the parent")
    finally:
        for k in _children(proc.pid) if proc.poll() is None else []:
            os.kill(k, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


_CHILD = textwrap.dedent("""
    import os, sys, time
    from moodsic_live.library import analysis
    analysis._parent_death_signal = lambda: None  # the portable watchdog alone
    analysis.die_with_parent(int(sys.argv[1]), interval=0.2)
    print("watching", flush=True)
    time.sleep(60)
""")
_PARENT = textwrap.dedent("""
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())], stdout=subprocess.PIPE, text=True)
    print(child.pid, child.stdout.readline().strip(), flush=True)
    time.sleep(60)
""")


def test_the_watchdog_alone_ends_a_worker_whose_parent_died(tmp_path):
    # a parent gone before the worker could watch it: the worker ends at once
    r = subprocess.run([sys.executable, "-c", _CHILD, str(_dead_pid())], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "watching" not in r.stdout, r
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, _CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pid, state = parent.stdout.readline().split()
        assert state == "watching" and _alive(int(pid))
        parent.kill()
        parent.wait(5)
        assert _wait_for(lambda: not _alive(int(pid)), 2.0), "the watchdog did not end the orphan"
    finally:
        parent.kill()
        parent.communicate()


# --- Ctrl+C and SIGTERM: stop within 2 s, keep what is done, index unchanged, resume ----------------

@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_stopped_build_ends_within_2s_keeps_its_work_and_the_next_build_resumes(how, songs, lib_config,
                                                                                   cli_config, tmp_path):
    root = tmp_path / "music"
    shutil.copytree(songs, root)
    _one_song_library(lib_config, tmp_path, "first")
    first_index = Path(lib_config.library.dir) / "first.sqlite"
    # a previous index of the same library: the stopped build must leave it as it was
    index = Path(lib_config.library.dir) / "stopped.sqlite"
    shutil.copy(first_index, index)
    before = _sha(index)

    proc = _cli(*BUILD, str(root), "--name", "stopped", *FAST, config=cli_config)
    try:
        assert _wait_for(lambda: len(_finished_entries(lib_config.paths.cache_dir)) >= 2 or proc.poll() is not None,
                         90), "no file was analysed"
        time.sleep(1.0)  # their results reach the parent (each file is cached before its result is sent)
        assert proc.poll() is None, proc.communicate()
        workers = [k for k in _children(proc.pid) if _is_worker(k)]
        assert workers
        sent = time.monotonic()
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # a terminal sends Ctrl+C to the whole foreground group
        else:
            proc.send_signal(signal.SIGTERM)  # systemd's stop, to the main process
        proc.wait(30)
        took = time.monotonic() - sent
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    print(f"{how}: stopped {took:.2f} s after the signal")
    assert proc.returncode == (130 if how == "ctrl-c" else 0), err
    assert took <= 2.0, f"{how}: took {took:.2f} s to stop"
    assert "Traceback" not in err, err
    m = re.search(r"library build stopped: (\d+) of 8 files analysed and kept for the next run; "
                  r"the index is unchanged", err)
    assert m, err
    kept = int(m.group(1))  # the files whose results reached the parent before the stop
    assert kept < 8
    assert not any(_alive(k) for k in workers), "workers outlived the stopped build"
    assert _sha(index) == before
    assert not list(Path(lib_config.library.dir).glob("*.tmp-*"))

    # the next build takes every finished file from the cache: keep only those, so nothing is analysed
    cached = {p.stem for p in _finished_entries(lib_config.paths.cache_dir)}
    finished = [f for f in root.iterdir() if sha1_file(f) in cached]
    assert 2 <= len(finished) < 8 and kept <= len(finished)
    for f in root.iterdir():
        if f not in finished:
            f.unlink()
    r = run_cli(*BUILD, str(root), "--name", "stopped", *FAST, "--config", str(cli_config))
    assert r.returncode == 0, r.stderr
    assert f"0 analysed from audio, {len(finished)} from the analysis cache, 0 unchanged since the last build" \
        in r.stdout, r.stdout
    assert _sha(index) != before


def test_a_cancelled_build_on_a_background_thread_and_an_exit_during_one_leave_no_workers(songs, lib_config,
                                                                                          tmp_path):
    """The window builds on a background thread: `cancel` stops it; and a process that exits while
    a build runs (the window closed) ends at once, workers included, instead of waiting for every
    queued file."""
    script = textwrap.dedent(f"""
        import os, sys, threading, time
        from pathlib import Path
        from moodsic_live.config import Config
        from moodsic_live.errors import MoodsicError
        from moodsic_live.library.builder import build_library
        c = Config()
        c.library.dir, c.paths.cache_dir = Path({str(lib_config.library.dir)!r}), Path({str(tmp_path / 'bg')!r})
        c.library.workers, c.library.music_model = 2, "features"
        features = c.paths.cache_dir / "analysis" / "features"
        def finished():
            return [p for p in features.glob("*/*.npz") if ".tmp-" not in p.name]
        outcome = []
        def build(cancel=None):
            try:
                build_library({str(songs)!r}, c, "bg", say=lambda line: None, progress=False, cancel=cancel)
                outcome.append("built")
            except MoodsicError as exc:
                outcome.append(str(exc))
            except BaseException as exc:
                outcome.append(repr(exc))
        def wait_for(what, thread):
            deadline = time.monotonic() + 90
            while not what():
                if not thread.is_alive() or time.monotonic() > deadline:
                    print("the build ended or stalled:", outcome, flush=True)
                    sys.exit(3)
                time.sleep(0.02)
        cancel = threading.Event()
        t = threading.Thread(target=build, args=(cancel,), daemon=True)
        t.start()
        wait_for(lambda: len(finished()) >= 2, t)
        cancel.set()
        t0 = time.monotonic()
        t.join(10)
        print(f"cancelled in {{time.monotonic() - t0:.2f}} s: {{outcome[0]}}", flush=True)
        t = threading.Thread(target=build, daemon=True)
        t.start()
        def workers():
            me = Path(f"/proc/{{os.getpid()}}/task")
            kids = [k for t in me.iterdir() for k in (t / "children").read_text().split()]
            return [k for k in kids if b"spawn_main" in Path(f"/proc/{{k}}/cmdline").read_bytes()]
        wait_for(lambda: len(workers()) >= 2, t)
        time.sleep(1.0)  # analysing
        print("exiting", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        m = re.match(r"cancelled in ([\d.]+) s: library build cancelled: (\d+) of 8 files analysed and kept for "
                     r"the next run; the index is unchanged", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        assert float(m.group(1)) <= 2.0
        assert _wait_for(lambda: [k for k in _children(proc.pid) if _is_worker(k)] or proc.poll() is not None, 60)
        family = _children(proc.pid)
        line = proc.stdout.readline().strip()
        assert line == "exiting", line
        exiting = time.monotonic()
        proc.wait(30)
        took = time.monotonic() - exiting
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.communicate()[1]
    print(f"exit during a background build: {took:.2f} s")
    assert took <= 3.0, f"the process waited {took:.1f} s for queued files at exit"
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert not any(_alive(k) for k in family)
    assert not (Path(lib_config.library.dir) / "bg.sqlite").exists()


# --- left-overs, counts, memory, damaged libraries --------------------------------------------------

def test_stale_temporaries_of_killed_builds_are_removed_by_the_next_build(lib_config, tmp_path):
    libs, cache = Path(lib_config.library.dir), Path(lib_config.paths.cache_dir) / "analysis"
    libs.mkdir(parents=True)
    dead = _dead_pid()
    stale_index = libs / f"music.sqlite.tmp-{dead}"
    live_index = libs / "music.sqlite.tmp-1"           # PID 1 is alive: maybe a build writing now
    old_index = libs / "other.sqlite.tmp-1"            # ... but not for two hours
    entry = cache_file(cache, "0" * 40)
    stale_entry = entry.with_name(f"{entry.stem}.tmp-{dead}.npz")
    for p in (stale_index, live_index, old_index, stale_entry):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half written")
    two_hours_ago = time.time() - 7200
    os.utime(old_index, (two_hours_ago, two_hours_ago))
    _one_song_library(lib_config, tmp_path, "fresh")
    assert not stale_index.exists() and not old_index.exists() and not stale_entry.exists()
    assert live_index.exists()


def test_pool_is_sized_by_free_memory_and_the_report_says_so(lib_config, tmp_path, monkeypatch):
    assert pool_size(4, 10, memory=2 * PER_WORKER_BYTES + 1) == (
        2, "2 analysis processes instead of 4: 1.6 GB of memory free, 800 MB allowed per process")
    assert pool_size(4, 3, memory=None) == (3, "")
    assert pool_size(2, 10, memory=64 * PER_WORKER_BYTES) == (2, "")
    assert pool_size(3, 10, memory=0)[0] == 1
    assert analysis.available_memory() > 0  # Linux: MemAvailable is there
    monkeypatch.setattr(analysis, "available_memory", lambda: PER_WORKER_BYTES + PER_WORKER_BYTES // 2)
    root = tmp_path / "two"
    write(root / "a.wav", music(12, seed=1))
    write(root / "b.wav", music(12, seed=2))
    lib_config.library.workers = 2
    _library, report = build_library(root, lib_config, "two", say=lambda _line: None, progress=False)
    assert "1 analysis process instead of 2: 1.2 GB of memory free, 800 MB allowed per process" in report.notes
    assert report.analysed == 2 and report.from_cache == 0


def test_damaged_newest_library_falls_back_to_a_healthy_one_unless_named(lib_config, cli_config, tmp_path):
    _one_song_library(lib_config, tmp_path, "good")
    bad = Path(lib_config.library.dir) / "bad.sqlite"
    bad.write_bytes(b"not an index " * 100)
    future = time.time() + 60
    os.utime(bad, (future, future))  # the newest
    said = []
    library = open_library(lib_config, None, say=said.append)
    assert library.name == "good"
    assert said == ["library 'bad' is damaged (unreadable: DatabaseError); using library 'good' instead — "
                    "rebuild 'bad' with `moodsic-live library build SOURCE --name bad`"]
    with pytest.raises(InputError, match=r"^library 'bad' is damaged \(unreadable: DatabaseError\); rebuild it "
                                         r"with `moodsic-live library build SOURCE --name bad` or choose another "
                                         r"library: 'good'$"):
        open_library(lib_config, "bad", say=said.append)
    r = run_cli("match", "0.5", "0.5", "--k", "3", "--config", str(cli_config))
    assert r.returncode == 0, r.stderr
    assert "using library 'good' instead" in r.stderr and "library 'good': query" in r.stdout
    bad.unlink()
    (Path(lib_config.library.dir) / "good.sqlite").write_bytes(b"")  # the only one, damaged: a clear refusal
    with pytest.raises(InputError, match="good.sqlite is unreadable"):
        open_library(lib_config, None, say=said.append)


def test_closing_the_window_during_a_library_build_stops_its_workers(songs, lib_config, models_dir, tmp_path):
    """The window builds a library on its engine-host thread: closing it (EngineHost.close) cancels
    the build, whose workers are gone within 2 s, and no engine starts afterwards."""
    from moodsic_live.gui.host import EngineHost, Launch

    lib_config.paths.cache_dir = tmp_path / "host-cache"
    lib_config.library.music_model = "features"
    lib_config.paths.models_dir = models_dir
    host = EngineHost(lib_config)
    host.start(Launch(source="demo", build_from=str(songs), build_name="closing", output="none"))
    me = os.getpid()
    assert _wait_for(lambda: len([k for k in _children(me) if _is_worker(k)]) >= 2, 90), host.events()
    family = [k for k in _children(me) if _is_worker(k)]
    time.sleep(0.5)  # analysing
    t0 = time.monotonic()
    assert host.close()
    host._thread.join(5)
    took = time.monotonic() - t0
    print(f"window closed during a build: host thread ended in {took:.2f} s")
    assert not host._thread.is_alive() and took <= 2.0, f"the build went on for {took:.1f} s after close"
    assert _wait_for(lambda: not any(_alive(k) for k in family), 2.0), "a worker outlived the closed window"
    assert host.engine is None
    assert not (Path(lib_config.library.dir) / "closing.sqlite").exists()
    assert not [e for e in host.events() if e.kind in ("started", "failed")]
