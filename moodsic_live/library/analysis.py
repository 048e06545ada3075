"""Audio analysis of many files: a process pool, a progress bar, and a resumable cache.

Each file's features are cached under ``<cache>/features/v<FEATURE_VERSION>/<sha1>.npz`` and
its music-tagger outputs (when the tagger is used) under
``<cache>/tags/v<TAGGER_VERSION>-<model fingerprint>/<sha1>.npz`` as soon as they are computed
(written atomically), keyed by the file's content hash. An interrupted build therefore resumes
where it stopped, a renamed or touched file is not analysed again, re-calibrating the V/A
model needs no new analysis, and rebuilt tagger models are never mixed with old outputs.
A file is decoded once for both.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, CancelledError, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError, ModelError, MoodsicError
from moodsic_live.library.features import FEATURE_VERSION, AudioFeatures, FeatureStream, n_steps_of, stream_audio
from moodsic_live.library.features import SAMPLE_RATE as FEATURE_RATE
from moodsic_live.library.store import remove_stale_temporaries
from moodsic_live.library.tagger import SAMPLE_RATE as TAGGER_RATE
from moodsic_live.library.tagger import TAGGER_VERSION, MusicTagger, TagSeries, read_manifests


def sha1_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_file(cache_dir: Path, sha1: str) -> Path:
    return Path(cache_dir) / "features" / f"v{FEATURE_VERSION}" / f"{sha1}.npz"


def tags_cache_file(cache_dir: Path, sha1: str, fingerprint: str) -> Path:
    return Path(cache_dir) / "tags" / f"v{TAGGER_VERSION}-{fingerprint}" / f"{sha1}.npz"


def _save_npz(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:  # an interrupt or a full disk: nothing half-written stays behind
        tmp.unlink(missing_ok=True)
        raise


def save_features(path: Path, features: AudioFeatures) -> None:
    _save_npz(path, values=features.values,
              info=np.array([features.duration, features.sample_rate, features.channels], np.float64))


def load_features(path: Path) -> AudioFeatures | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            duration, sr, ch = z["info"]
            return AudioFeatures(values=z["values"].astype(np.float32), duration=float(duration),
                                 sample_rate=int(sr), channels=int(ch))
    except Exception:  # a damaged cache entry is just analysed again
        return None


def save_tags(path: Path, tags: TagSeries) -> None:
    _save_npz(path, **{name: probs.astype(np.float16) for name, probs in tags.probs.items()})


def load_tags(path: Path) -> TagSeries | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            return TagSeries({name: z[name].astype(np.float32) for name in z.files})
    except Exception:  # a damaged cache entry is just analysed again
        return None


@dataclass(frozen=True)
class Analysed:
    path: Path
    sha1: str
    features: AudioFeatures | None
    error: str = ""
    cached: bool = False
    tags: TagSeries | None = None
    tag_error: str = ""  # the tagger failed on this file (its features are still usable)


@dataclass(frozen=True)
class Tagging:
    """Use the music tagger in ``models_dir``; ``fingerprint`` names its models (cache key)."""

    models_dir: Path
    fingerprint: str

    @classmethod
    def load(cls, models_dir: Path) -> Tagging:
        """Raises :class:`ModelError` when the tagger models are missing or unusable."""
        return cls(Path(models_dir), read_manifests(models_dir)[1])


def _limit_threads() -> None:
    """One analysis process per core: keep each to one BLAS/FFT thread."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


# --- the pool: sized by cores and free memory; workers that die with their parent -----------------

# Peak memory one analysis worker may need, to size the pool by free memory as well as by cores.
# The streaming analysis keeps a worker under ~600 MB even for a 2-hour file (569 MB measured:
# decode buffers, the feature frames, both taggers' ONNX sessions without a memory arena;
# docs/performance.md); 800 MB leaves room for allocator fragmentation and other formats' decoders.
PER_WORKER_BYTES = 800 * 1024 * 1024
_WATCHDOG_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux ``MemAvailable``), None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def pool_size(requested: int, files: int, memory: int | None = -1) -> tuple[int, str]:
    """How many analysis processes for ``files`` files: ``requested`` (0 = one per core), at most
    one per file, and at most one per :data:`PER_WORKER_BYTES` of free memory. Returns the count
    and, when memory limited it, a note that says so (``memory``: bytes free; -1 = read them)."""
    n = max(1, min(requested or _cores(), files))
    memory = available_memory() if memory == -1 else memory
    if memory is None:
        return n, ""
    by_memory = max(1, memory // PER_WORKER_BYTES)
    if by_memory >= n:
        return n, ""
    return by_memory, (f"{by_memory} analysis process{'es' if by_memory > 1 else ''} instead of {n}: "
                       f"{memory / 2**30:.1f} GB of memory free, {PER_WORKER_BYTES // 2**20} MB allowed per process")


def _parent_death_signal() -> None:
    """Linux: SIGKILL this process when the thread that started it exits. Every worker is started
    by the thread that runs :func:`analyse_files` (in ``submit``; no ``max_tasks_per_child``, so the
    executor's manager thread never starts one), and that thread outlives the pool, so the signal
    comes only when the parent is gone (killed, crashed, OOM-killed). Best effort."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl: the watchdog still runs
        pass


def _watch_parent(parent_pid: int, interval: float = _WATCHDOG_SECONDS) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            os._exit(1)


def die_with_parent(parent_pid: int, interval: float = _WATCHDOG_SECONDS) -> None:
    """Make this worker end when ``parent_pid`` (its parent) ends, however it ends: the parent-death
    signal on Linux, plus a portable watchdog thread that checks the parent every ``interval``
    seconds and exits at once (its results have nowhere to go). A parent that died before the
    signal was set is caught here: this process was already handed to another parent."""
    _parent_death_signal()
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid, interval), name="parent-watchdog",
                     daemon=True).start()


def _init_worker(parent_pid: int) -> None:
    """Pool initializer: Ctrl+C reaches the whole foreground process group, but the parent decides
    (it cancels and terminates the workers), so a worker ignores SIGINT; it dies with its parent;
    one BLAS/FFT thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    _limit_threads()


def clean_cache_temporaries(cache_dir: Path) -> int:
    """Cache entries half-written by a killed analysis process (``<sha1>.tmp-PID.npz``)."""
    return remove_stale_temporaries(cache_dir, "*.tmp-*.npz")


@dataclass
class Tally:
    """How far :func:`analyse_files` got, kept up to date while it runs (read after a stop)."""

    total: int = 0      # files asked for
    cached: int = 0     # found in the analysis cache
    analysed: int = 0   # analysed from audio by this run (and cached as each finished)
    failed: int = 0     # could not be analysed


class AnalysisCancelled(MoodsicError):
    """``cancel`` was set: the pool was stopped; what finished stays in the cache."""


_live_pools: weakref.WeakSet = weakref.WeakSet()
_stopped_pools: weakref.WeakSet = weakref.WeakSet()


def _stop_pool(pool: ProcessPoolExecutor, grace: float = 1.0) -> None:
    """Cancel queued work and end the workers now, not after their current file: SIGTERM, then
    SIGKILL after ``grace`` seconds. A file being analysed leaves no cache entry (entries are
    renamed into place only when whole; a killed writer's temporary is removed by the next build)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    _stopped_pools.add(pool)
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        try:
            p.terminate()
        except (OSError, ValueError, AttributeError):
            pass
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(0.5)
        except (OSError, ValueError, AssertionError, AttributeError):
            pass


def _stop_live_pools() -> None:
    """At interpreter exit (e.g. the window closed during a build on a background thread): end
    the workers instead of waiting for every queued file, as concurrent.futures would."""
    for pool in list(_live_pools):
        _stop_pool(pool, grace=0.5)


try:  # threading's exit hooks run newest first: this one before concurrent.futures' own wait
    threading._register_atexit(_stop_live_pools)  # type: ignore[attr-defined]
except (AttributeError, RuntimeError):  # pragma: no cover
    import atexit

    atexit.register(_stop_live_pools)


@lru_cache(maxsize=2)
def _tagger(models_dir: str) -> MusicTagger:
    """One tagger per process (sessions take a moment to create)."""
    return MusicTagger(Path(models_dir), threads=1)


def _cached(path: Path, sha1: str, cache_dir: Path, tagging: Tagging | None) -> Analysed | None:
    features = load_features(cache_file(cache_dir, sha1))
    if features is None:
        return None
    if tagging is None:
        return Analysed(path, sha1, features, cached=True)
    tags = load_tags(tags_cache_file(cache_dir, sha1, tagging.fingerprint))
    return None if tags is None else Analysed(path, sha1, features, cached=True, tags=tags)


def analyse_one(path: Path, sha1: str, cache_dir: Path, tagging: Tagging | None = None) -> Analysed:
    """Features (and tags) of one file, from the cache or computed (and cached). Never raises for
    a bad file: the error is returned so one file never stops a library build."""
    features = load_features(cache_file(cache_dir, sha1))
    if features is not None:
        tags = load_tags(tags_cache_file(cache_dir, sha1, tagging.fingerprint)) if tagging else None
        if tagging is None or tags is not None:
            return Analysed(path, sha1, features, cached=True, tags=tags)
    # One streamed decode feeds both (memory bounded whatever the length: see FeatureStream, TagStream).
    feature_stream = FeatureStream() if features is None else None
    tag_stream, tag_error = None, ""
    if tagging is not None:
        try:
            tag_stream = _tagger(str(tagging.models_dir)).stream()
        except ModelError as exc:
            tag_error = str(exc)
        except Exception as exc:  # keep the features: the track falls back to them
            tag_error = _tagger_failed(path, exc)
    sinks = []
    if feature_stream is not None:
        sinks.append((FEATURE_RATE, "MQ", feature_stream.push))
    failed: list[str] = []

    def tag_sink(y: np.ndarray, last: bool) -> None:
        if failed:
            return
        try:
            tag_stream.push(y, last)
        except Exception as exc:  # the features go on; the tags are given up
            failed.append(_tagger_failed(path, exc))

    if tag_stream is not None:
        sinks.append((TAGGER_RATE, "HQ", tag_sink))
    try:
        info = stream_audio(path, sinks)
        if feature_stream is not None:
            features = feature_stream.result(path, info)
            save_features(cache_file(cache_dir, sha1), features)
    except InputError as exc:
        return Analysed(path, sha1, None, error=str(exc))
    except Exception as exc:  # a decoder bug on one odd file must not stop the build
        return Analysed(path, sha1, None, error=f"{path}: analysis failed ({exc.__class__.__name__}: {exc})")
    if tagging is None:
        return Analysed(path, sha1, features)
    if tag_stream is None or failed:
        return Analysed(path, sha1, features, tag_error=tag_error or failed[0])
    try:
        tags = tag_stream.result(n_steps_of(info.duration))
    except Exception as exc:  # keep the features: the track falls back to them
        return Analysed(path, sha1, features, tag_error=_tagger_failed(path, exc))
    # cached as float16 (tags of a 10 000-song library stay around a gigabyte); rounded the same
    # way here, so a fresh analysis and a cached one give the same series
    tags = TagSeries({name: p.astype(np.float16).astype(np.float32) for name, p in tags.probs.items()})
    save_tags(tags_cache_file(cache_dir, sha1, tagging.fingerprint), tags)
    return Analysed(path, sha1, features, tags=tags)


def _tagger_failed(path: Path, exc: Exception) -> str:
    return f"{path}: music tagger failed ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"


def _analyse_job(path: str, sha1: str, cache_dir: str, tagging: Tagging | None) -> Analysed:
    return analyse_one(Path(path), sha1, Path(cache_dir), tagging)


def compile_kernels_once(scratch: Path) -> None:
    """Run the feature extraction once, in this process, on 3 s of noise, before a pool starts.

    librosa's numba kernels are compiled on first use and cached on disk (``cache=True``, in librosa's
    ``__pycache__``). numba's cache is not safe for several processes writing the same entries at once:
    spawned workers compiling together on a fresh install once left an index that pointed at another
    signature's machine code, and the next process to load it crashed (a segfault in ``peak_pick``).
    Compiled here first, the workers only read the cache."""
    import soundfile as sf

    from moodsic_live.library.features import extract_features

    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f".warm-up-{os.getpid()}.wav"
    noise = np.random.default_rng(0).standard_normal(3 * 22050).astype(np.float32) * 0.1
    try:
        sf.write(path, noise, 22050)
        extract_features(path)
    finally:
        path.unlink(missing_ok=True)


def analyse_files(jobs: Iterable[tuple[Path, str]], cache_dir: Path, workers: int = 0,
                  progress: bool = True, on_done: Callable[[Analysed], None] | None = None,
                  tagging: Tagging | None = None, tally: Tally | None = None,
                  note: Callable[[str], None] | None = None,
                  cancel: threading.Event | None = None) -> list[Analysed]:
    """Analyse ``(path, sha1)`` jobs, cached ones first, the rest in a process pool (``workers``
    processes; 0 = one per core; fewer when free memory is short, said through ``note``) with a
    progress bar on stderr. ``tagging``: also run the music tagger (else features only).
    ``tally`` is kept up to date as files finish.

    Stopping: a KeyboardInterrupt (Ctrl+C, or SIGTERM via :mod:`moodsic_live.shutdown`) in the
    calling thread, or ``cancel`` set (polled every 0.25 s; raises :class:`AnalysisCancelled`),
    cancels the queued files and terminates the workers at once; every file that finished is
    already in the cache, so the next run resumes there."""
    from tqdm import tqdm

    jobs = list(jobs)
    tally = tally if tally is not None else Tally()
    tally.total = len(jobs)
    results: list[Analysed] = []
    todo = []
    for path, sha1 in jobs:
        hit = _cached(path, sha1, cache_dir, tagging)
        if hit is not None:
            results.append(hit)
            tally.cached += 1
        else:
            todo.append((path, sha1))
    clean_cache_temporaries(cache_dir)
    n_workers, why = pool_size(workers, len(todo))
    if why and len(todo) > 1 and note is not None:
        note(why)
    bar = tqdm(total=len(todo), desc="analysing audio", unit="file", disable=not progress or not todo,
               dynamic_ncols=True)

    def finished(r: Analysed) -> None:
        results.append(r)
        if r.features is None:
            tally.failed += 1
        elif r.cached:
            tally.cached += 1
        else:
            tally.analysed += 1
        bar.update(1)

    def cancelled() -> str:
        return f"analysis cancelled: {tally.analysed} of {len(todo)} files analysed and kept for the next run"

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise AnalysisCancelled(cancelled())

    try:
        if len(todo) <= 1 or n_workers == 1:
            for path, sha1 in todo:
                check_cancel()
                finished(analyse_one(path, sha1, cache_dir, tagging))
        else:
            # spawn: a clean interpreter per worker, safe from any thread the caller runs.
            compile_kernels_once(cache_dir)
            check_cancel()
            ctx = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_init_worker,
                                       initargs=(os.getpid(),))
            _live_pools.add(pool)
            try:
                futures = {pool.submit(_analyse_job, str(p), s, str(cache_dir), tagging): p for p, s in todo}
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                    for fut in done:
                        try:
                            finished(fut.result())
                        except CancelledError:  # the pool was stopped from outside (interpreter exit)
                            raise AnalysisCancelled(cancelled()) from None
                        except BrokenProcessPool:
                            if pool in _stopped_pools:
                                raise AnalysisCancelled(cancelled()) from None
                            p = futures[fut]  # a worker died (killed, out of memory, crashed)
                            finished(Analysed(p, "", None, error=f"{p}: not analysed: an analysis process died "
                                                                 "(out of memory? try --workers 1)"))
                        except Exception as exc:  # a bug on one file must not stop the build
                            p = futures[fut]
                            finished(Analysed(p, "", None, error=f"{p}: analysis failed ({exc.__class__.__name__}: "
                                                                 f"{str(exc).splitlines()[0][:120] if str(exc) else ''})"))
                    check_cancel()
            except BaseException:
                _stop_pool(pool)
                raise
            else:
                pool.shutdown(wait=True)
            finally:
                _live_pools.discard(pool)
    finally:
        bar.close()
    if on_done:
        for r in results:
            on_done(r)
    order = {p: i for i, (p, _) in enumerate(jobs)}
    return sorted(results, key=lambda r: order[r.path])
