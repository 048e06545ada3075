"""Audio analysis of many files: a process pool, a progress bar, and a resumable cache.

Each file's features are cached under ``<cache>/features/v<FEATURE_VERSION>/<sha1>.npz`` as
soon as they are computed (written atomically), keyed by the file's content hash. An
interrupted build therefore resumes where it stopped, a renamed or touched file is not analysed
again, and re-calibrating the V/A model needs no new analysis.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError
from moodsic_live.library.features import FEATURE_VERSION, AudioFeatures, extract_features


def sha1_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_file(cache_dir: Path, sha1: str) -> Path:
    return Path(cache_dir) / "features" / f"v{FEATURE_VERSION}" / f"{sha1}.npz"


def save_features(path: Path, features: AudioFeatures) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}.npz")
    np.savez(tmp, values=features.values, info=np.array([features.duration, features.sample_rate,
                                                         features.channels], np.float64))
    os.replace(tmp, path)


def load_features(path: Path) -> AudioFeatures | None:
    try:
        with np.load(path) as z:
            duration, sr, ch = z["info"]
            return AudioFeatures(values=z["values"].astype(np.float32), duration=float(duration),
                                 sample_rate=int(sr), channels=int(ch))
    except Exception:  # a damaged cache entry is just analysed again
        return None


@dataclass(frozen=True)
class Analysed:
    path: Path
    sha1: str
    features: AudioFeatures | None
    error: str = ""
    cached: bool = False


def _limit_threads() -> None:
    """One analysis process per core: keep each to one BLAS/FFT thread."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


def analyse_one(path: Path, sha1: str, cache_dir: Path) -> Analysed:
    """Features of one file, from the cache or computed (and cached). Never raises for a bad
    file: the error is returned so one file never stops a library build."""
    cached = cache_file(cache_dir, sha1)
    features = load_features(cached) if cached.is_file() else None
    if features is not None:
        return Analysed(path, sha1, features, cached=True)
    try:
        features = extract_features(path)
    except InputError as exc:
        return Analysed(path, sha1, None, error=str(exc))
    except Exception as exc:  # a decoder bug on one odd file must not stop the build
        return Analysed(path, sha1, None, error=f"{path}: analysis failed ({exc.__class__.__name__}: {exc})")
    save_features(cached, features)
    return Analysed(path, sha1, features)


def _analyse_job(path: str, sha1: str, cache_dir: str) -> Analysed:
    return analyse_one(Path(path), sha1, Path(cache_dir))


def analyse_files(jobs: Iterable[tuple[Path, str]], cache_dir: Path, workers: int = 0,
                  progress: bool = True, on_done: Callable[[Analysed], None] | None = None) -> list[Analysed]:
    """Analyse ``(path, sha1)`` jobs, cached ones first, the rest in a process pool (``workers``
    processes; 0 = one per core) with a progress bar on stderr."""
    from tqdm import tqdm

    jobs = list(jobs)
    results: list[Analysed] = []
    todo = []
    for path, sha1 in jobs:
        cached = cache_file(cache_dir, sha1)
        hit = load_features(cached) if cached.is_file() else None
        if hit is not None:
            results.append(Analysed(path, sha1, hit, cached=True))
        else:
            todo.append((path, sha1))
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(todo), desc="analysing audio", unit="file", disable=not progress or not todo,
               dynamic_ncols=True)
    try:
        if len(todo) <= 1 or workers == 1:
            for path, sha1 in todo:
                results.append(analyse_one(path, sha1, cache_dir))
                bar.update(1)
        else:
            # spawn: a clean interpreter per worker, safe from any thread the caller runs.
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                                     initializer=_limit_threads) as pool:
                futures = [pool.submit(_analyse_job, str(p), s, str(cache_dir)) for p, s in todo]
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update(1)
    finally:
        bar.close()
    if on_done:
        for r in results:
            on_done(r)
    order = {p: i for i, (p, _) in enumerate(jobs)}
    return sorted(results, key=lambda r: order[r.path])
