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
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError, ModelError
from moodsic_live.library.features import FEATURE_VERSION, AudioFeatures, decode_audio, extract_features, n_steps_of
from moodsic_live.library.tagger import TAGGER_VERSION, MusicTagger, TagSeries, read_manifests, resample_for_tagger


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
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


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
    try:
        decoded = decode_audio(path)
        if features is None:
            features = extract_features(path, decoded)
            save_features(cache_file(cache_dir, sha1), features)
    except InputError as exc:
        return Analysed(path, sha1, None, error=str(exc))
    except Exception as exc:  # a decoder bug on one odd file must not stop the build
        return Analysed(path, sha1, None, error=f"{path}: analysis failed ({exc.__class__.__name__}: {exc})")
    if tagging is None:
        return Analysed(path, sha1, features)
    try:
        tags = _tagger(str(tagging.models_dir)).tag(resample_for_tagger(decoded), n_steps_of(decoded.duration))
    except ModelError as exc:
        return Analysed(path, sha1, features, tag_error=str(exc))
    except Exception as exc:  # keep the features: the track falls back to them
        return Analysed(path, sha1, features, tag_error=f"{path}: music tagger failed ({exc.__class__.__name__}: "
                                                        f"{str(exc).splitlines()[0][:120]})")
    # cached as float16 (tags of a 10 000-song library stay around a gigabyte); rounded the same
    # way here, so a fresh analysis and a cached one give the same series
    tags = TagSeries({name: p.astype(np.float16).astype(np.float32) for name, p in tags.probs.items()})
    save_tags(tags_cache_file(cache_dir, sha1, tagging.fingerprint), tags)
    return Analysed(path, sha1, features, tags=tags)


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
                  tagging: Tagging | None = None) -> list[Analysed]:
    """Analyse ``(path, sha1)`` jobs, cached ones first, the rest in a process pool (``workers``
    processes; 0 = one per core) with a progress bar on stderr. ``tagging``: also run the
    music tagger (else features only)."""
    from tqdm import tqdm

    jobs = list(jobs)
    results: list[Analysed] = []
    todo = []
    for path, sha1 in jobs:
        hit = _cached(path, sha1, cache_dir, tagging)
        if hit is not None:
            results.append(hit)
        else:
            todo.append((path, sha1))
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(todo), desc="analysing audio", unit="file", disable=not progress or not todo,
               dynamic_ncols=True)
    try:
        if len(todo) <= 1 or workers == 1:
            for path, sha1 in todo:
                results.append(analyse_one(path, sha1, cache_dir, tagging))
                bar.update(1)
        else:
            # spawn: a clean interpreter per worker, safe from any thread the caller runs.
            compile_kernels_once(cache_dir)
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                                     initializer=_limit_threads) as pool:
                futures = [pool.submit(_analyse_job, str(p), s, str(cache_dir), tagging) for p, s in todo]
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
