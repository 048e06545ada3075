"""Library benchmarks (audio analysis, music tagger, index, store), CPU; writes the Library section
of docs/performance.md.

    python bench/library.py [--sizes 10000,100000,1000000] [--rounds 3] [--write]

Index: segment V/A drawn from a normal distribution with std 0.3 clipped to [-1, 1] (about
DEAM's spread). Times the SegmentIndex build (median of rounds), 1,000 k=20 queries one at a
time (queries are uniform estimates in [-1, 1]² mapped into the library by the quantile
Aligner, as the matcher sends them), the Aligner and MoodClusters fits, and Matcher.update.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import machine_line, write_section  # noqa: E402
from moodsic_live.config import MatchConfig  # noqa: E402
from moodsic_live.library.model import SegmentTable  # noqa: E402
from moodsic_live.match.alignment import Aligner  # noqa: E402
from moodsic_live.match.index import SegmentIndex  # noqa: E402
from moodsic_live.match.matcher import Matcher  # noqa: E402
from moodsic_live.match.moods import MoodClusters  # noqa: E402
from moodsic_live.perceive.estimate import VA  # noqa: E402

DOC = ROOT / "docs" / "performance.md"
SECTION = "## Library"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
INDEX_TARGET = ("Targets on this 2-core CPU: 1M segments index build <= 5 s, k=20 query p95 <= 1 ms "
                "(one query per matcher update, a few per second).")


# -- index --------------------------------------------------------------------------------------

def synthetic_segments(n: int, seed: int = 0, std: float = 0.3) -> tuple[SegmentTable, np.ndarray]:
    """``n`` segments of 10 s every 5 s, 20 per track (a 105 s song), V/A ~ clipped N(0, std)."""
    rng = np.random.default_rng(seed)
    va = np.clip(rng.normal(0.0, std, (n, 2)), -1.0, 1.0).astype(np.float32)
    per_track = 20
    track = (np.arange(n) // per_track).astype(np.int32)
    start = ((np.arange(n) % per_track) * 5.0).astype(np.float32)
    zeros = np.zeros(n, np.float32)
    table = SegmentTable(track=track, start=start, end=start + 10.0, valence=va[:, 0].copy(),
                         arousal=va[:, 1].copy(), valence_std=zeros, arousal_std=zeros.copy())
    durations = np.full(int(track[-1]) + 1 if n else 0, per_track * 5.0 + 5.0)
    return table, durations


def _timed(fn, rounds: int) -> tuple[float, Any]:
    """Median wall time (s) over ``rounds`` calls and the last result."""
    times, out = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def bench_index(sizes: tuple[int, ...] = DEFAULT_SIZES, queries: int = 1000, k: int = 20,
                rounds: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """One row per library size: build/fit times (s) and per-query latencies (ms)."""
    rows = []
    rng = np.random.default_rng(seed + 1)
    estimates = rng.uniform(-1.0, 1.0, (queries, 2))
    for n in sizes:
        table, durations = synthetic_segments(n, seed)
        va = table.va
        build_s, index = _timed(lambda: SegmentIndex(table), rounds)
        align_s, aligner = _timed(lambda: Aligner.fit(va, "quantile"), rounds)
        clusters_s, clusters = _timed(lambda: MoodClusters.fit(va, aligner), rounds)
        points = aligner.apply(estimates)
        index.query(points[0], k)  # warm-up
        q_ms = np.empty(queries)
        for i, p in enumerate(points):
            t0 = time.perf_counter()
            index.query(p, k)
            q_ms[i] = (time.perf_counter() - t0) * 1e3
        matcher = Matcher(table, durations, MatchConfig(), aligner, clusters, index)
        u_ms = np.empty(queries)
        for i, (v, a) in enumerate(estimates):
            e = VA(float(v), float(a), 0.01, 0.01)
            t0 = time.perf_counter()
            matcher.update(2.0 * i, e)
            u_ms[i] = (time.perf_counter() - t0) * 1e3
        row = {"n": n, "build_s": build_s, "query_p50_ms": float(np.percentile(q_ms, 50)),
               "query_p95_ms": float(np.percentile(q_ms, 95)), "aligner_s": align_s,
               "clusters_s": clusters_s, "clusters": len(clusters),
               "update_p50_ms": float(np.percentile(u_ms, 50)), "update_p95_ms": float(np.percentile(u_ms, 95))}
        rows.append(row)
        print(f"{n:>9,} segments: build {build_s:.3f} s, query k={k} p50 {row['query_p50_ms']:.3f} ms "
              f"p95 {row['query_p95_ms']:.3f} ms, aligner {align_s:.3f} s, clusters {clusters_s:.2f} s "
              f"({len(clusters)}), update p95 {row['update_p95_ms']:.3f} ms", flush=True)
    return rows


def index_table(rows: list[dict[str, Any]], k: int = 20) -> str:
    out = [f"| segments | index build s | query k={k} p50 ms | query p95 ms | aligner fit s "
           "| clusters fit s (found) | matcher update p50 ms | update p95 ms |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['n']:,} | {r['build_s']:.3f} | {r['query_p50_ms']:.3f} | {r['query_p95_ms']:.3f} "
                   f"| {r['aligner_s']:.3f} | {r['clusters_s']:.2f} ({r['clusters']}) "
                   f"| {r['update_p50_ms']:.3f} | {r['update_p95_ms']:.3f} |")
    return "\n".join(out)


# -- the document ----------------------------------------------------------------------------

# -- audio analysis ----------------------------------------------------------------------------

def _audio_files(folder: Path | None) -> tuple[list[Path], str]:
    from moodsic_live.library.folder import AUDIO_EXTENSIONS

    if folder is None:
        deam = ROOT.parent / "shared" / "data" / "deam_sample" / "MEMD_audio"
        if deam.is_dir():
            folder = deam
        else:
            from moodsic_live.library.demo import demo_pieces, write_demo_library

            folder = Path("/tmp/moodsic-bench-demo")
            write_demo_library(folder, pieces=demo_pieces()[:8])
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    try:
        shown = str(folder.resolve().relative_to(ROOT.parent))
    except ValueError:
        shown = str(folder)
    return files, shown


def bench_analysis(folder: Path | None = None, rounds: int = 3) -> tuple[str, str]:
    """Feature extraction (decode + resample + all features) per file on one core: CPU seconds
    per audio second, and the wall time of the process pool over all files."""
    from threadpoolctl import threadpool_limits

    from moodsic_live.library.analysis import analyse_files
    from moodsic_live.library.features import extract_features

    files, where = _audio_files(folder)
    if not files:
        raise SystemExit(f"no audio files under {where}")
    extract_features(files[0])  # imports and first-call compilation are not analysis time
    per_file, audio_s, cpu_s = [], 0.0, 0.0
    with threadpool_limits(1):
        for _ in range(rounds):
            for f in files:
                t0 = time.process_time()
                feats = extract_features(f)
                dt_cpu = time.process_time() - t0
                per_file.append(dt_cpu * 1000.0)
                audio_s += feats.duration
                cpu_s += dt_cpu
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        analyse_files([(f, f"bench{i}") for i, f in enumerate(files)], Path(cache), workers=os.cpu_count() or 1,
                      progress=False)
        pool_wall = time.perf_counter() - t0
    pool_audio = audio_s / rounds
    p50, p95 = np.percentile(per_file, [50, 95])
    table = "\n".join([
        "| files | audio per file s | CPU per file p50 ms | p95 ms | x real time per core | pool of "
        f"{os.cpu_count()} wall s (incl. start-up) | pool x real time |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(files)} | {pool_audio / len(files):.1f} | {p50:.0f} | {p95:.0f} | {audio_s / cpu_s:.0f} | "
        f"{pool_wall:.1f} | {pool_audio / pool_wall:.0f} |"])
    note = (f"Target: analysis >= 100x real time per core. Files: {where} ({len(files)} files, {rounds} rounds, "
            "one BLAS/FFT thread, CPU time of this process). The pool column includes spawning workers and "
            "importing librosa in each, which dominates for a handful of files.")
    return note, table


def bench_tagger(folder: Path | None = None, rounds: int = 3) -> tuple[str, str]:
    """The music tagger per file on one core (one onnxruntime thread): decode + soxr HQ to 16 kHz
    + log-mel (the front-end), then both musicnn models over every 0.5 s window."""
    from threadpoolctl import threadpool_limits

    from moodsic_live.config import Config
    from moodsic_live.library.features import decode_audio, n_steps_of
    from moodsic_live.library.tagger import MusicTagger, log_mel, resample_for_tagger, window_starts

    files, where = _audio_files(folder)
    tagger = MusicTagger(Config().paths.models_dir, threads=1)
    mel = log_mel(resample_for_tagger(decode_audio(files[0])))
    tagger.tag_mel(mel, window_starts(len(mel), 10))  # warm-up
    front, models, per_file, audio_s, windows = [], {n: 0.0 for n in tagger.sessions}, [], 0.0, 0
    with threadpool_limits(1):
        for _ in range(rounds):
            for f in files:
                t0 = time.process_time()
                decoded = decode_audio(f)
                mel = log_mel(resample_for_tagger(decoded))
                t1 = time.process_time()
                starts = window_starts(len(mel), n_steps_of(decoded.duration))
                for name, session in tagger.sessions.items():
                    t2 = time.process_time()
                    session.run(["tags"], {"mel": mel, "starts": starts})
                    models[name] += time.process_time() - t2
                front.append(t1 - t0)
                per_file.append((time.process_time() - t0) * 1000.0)
                audio_s += decoded.duration
                windows += len(starts)
    total = sum(front) + sum(models.values())
    per_frame = sum(conv_macs(Config().paths.models_dir / f"{name}.onnx") for name in tagger.sessions)
    mac_per_s = per_frame * 16000 / 256  # log-mel frames per second of audio
    gemm = gemm_rate()
    p50, p95 = np.percentile(per_file, [50, 95])
    per_model = " / ".join(f"{audio_s / t:.0f}" for t in models.values())
    table = "\n".join([
        "| files | windows per audio s | CPU per file p50 ms | p95 ms | front-end x RT | each model x RT "
        "(MSD / MTT) | both taggers + front-end x real time per core |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(files)} | {windows / audio_s:.1f} | {p50:.0f} | {p95:.0f} | {audio_s / sum(front):.0f} | "
        f"{per_model} | {audio_s / total:.0f} |"])
    note = (f"Target: >= 50x real time per core. Files: {where} ({len(files)} files, {rounds} rounds, one "
            "thread, CPU time). Tags for a 3 s window every 0.5 s; the convolutions run once over the piece and "
            "each window only pools its frames, so the cost is that of musicnn's own non-overlapping patches "
            f"({per_frame / len(tagger.sessions) / 1e6:.2f} M multiply-adds per frame per model, counted from the "
            f"graph). Ceiling: both models need {mac_per_s / 1e9:.2f} G multiply-adds per second of audio, and this "
            f"core multiplies float32 matrices at {gemm / 1e9:.0f} G multiply-adds/s (onnxruntime MatMul, one "
            f"thread), so no float32 implementation of the two taggers runs faster than {gemm / mac_per_s:.0f}x "
            "real time per core here; each model alone can reach about twice that.")
    return note, table


def conv_macs(path: Path, frames: int = 1000) -> float:
    """Multiply-adds per log-mel frame of every convolution in a tagger graph (they are >99 % of
    its work), from the shapes onnx infers for ``frames`` frames."""
    import onnx

    model = onnx.load(str(path))
    for value in model.graph.input:
        value.type.tensor_type.shape.dim[0].dim_value = frames if value.name == "mel" else 1
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    kernels = {t.name: list(t.dims) for t in model.graph.initializer}
    return sum(float(np.prod(shapes[n.output[0]])) * float(np.prod(kernels[n.input[1]][1:]))
               for n in model.graph.node if n.op_type == "Conv") / frames


def gemm_rate(m: int = 65536, k: int = 272, n: int = 208, rounds: int = 3) -> float:
    """Float32 multiply-adds per CPU second of onnxruntime's MatMul on one thread, at the shape of
    the taggers' first convolution (frames x kernel taps times taps x filters)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
                              [numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w")])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                   .SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = rng.standard_normal((m, k)).astype(np.float32)
    session.run(None, {"x": x})
    best = min(_timed_once(lambda: session.run(None, {"x": x})) for _ in range(rounds))
    return m * k * n / best


def _timed_once(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


# -- peak memory of one analysis worker on a long file ------------------------------------------

MEMORY_SECTION = "Library: memory per analysis worker"
_PEAK_CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
from threadpoolctl import threadpool_limits
from moodsic_live.library.analysis import Tagging, analyse_one

threadpool_limits(1)  # as a pool worker
path, models = Path(sys.argv[1]), Path(sys.argv[2])
tagging = Tagging.load(models) if sys.argv[3] == "1" else None
with tempfile.TemporaryDirectory() as cache:
    t0 = time.perf_counter()
    r = analyse_one(path, "bench", Path(cache), tagging)
    wall = time.perf_counter() - t0
ok = r.features is not None and (tagging is None or r.tags is not None)
print(json.dumps({"ok": ok, "error": r.error or r.tag_error, "wall_s": wall,
                  "steps": 0 if r.features is None else len(r.features.values),
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def long_audio(minutes: float, folder: Path, fmt: str = "flac") -> Path:
    """A music-like stereo 44.1 kHz file of ``minutes`` minutes (16-bit FLAC by default): the DEAM
    sample's songs one after another, looped (right channel: the same music 0.37 s later). Made
    once per length and kept in ``folder``; written block by block."""
    import soundfile as sf

    path = Path(folder) / f"long-{minutes:g}min.{fmt}"
    if path.is_file():
        return path
    files, _ = _audio_files(None)
    sr = 44100
    songs = []
    for f in files:
        y, rate = sf.read(str(f), dtype="float32", always_2d=True)
        if rate != sr:
            import soxr

            y = soxr.resample(y, rate, sr)
        songs.append(y.mean(axis=1))
    music = np.concatenate(songs)
    shift = int(0.37 * sr)
    stereo = np.column_stack([music, np.roll(music, shift)])
    total = int(round(minutes * 60 * sr))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with sf.SoundFile(str(tmp), "w", sr, 2, format=fmt.upper(), subtype="PCM_16") as out:
        done = 0
        while done < total:
            n = min(len(stereo), total - done)
            out.write(stereo[:n])
            done += n
    tmp.rename(path)
    return path


def peak_rss(path: Path, code_root: Path = ROOT, models_dir: Path | None = None,
             tagging: bool = True) -> dict[str, Any]:
    """Peak resident memory (ru_maxrss) of a fresh process that runs ``analyse_one`` on ``path``
    (features + both taggers, one BLAS thread, as a pool worker does), with the code of
    ``code_root`` (another checkout measures older code with this same harness)."""
    import json
    import subprocess

    from moodsic_live.config import Config

    models_dir = Path(models_dir or Config().paths.models_dir)
    env = dict(os.environ, PYTHONPATH=str(code_root))
    out = subprocess.run([sys.executable, "-c", _PEAK_CHILD, str(path), str(models_dir), "1" if tagging else "0"],
                         cwd=str(code_root), env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"analysis of {path} failed (rc {out.returncode}): {out.stderr.strip()[-500:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["peak_mb"] = row["maxrss_kb"] / 1024.0
    if not row["ok"]:
        raise SystemExit(f"analysis of {path} failed: {row['error']}")
    return row


def bench_memory(minutes: tuple[float, ...], folder: Path, code_root: Path = ROOT,
                 label: str = "this checkout") -> list[dict[str, Any]]:
    rows = []
    for m in minutes:
        path = long_audio(m, folder)
        row = peak_rss(path, code_root)
        row.update(minutes=m, label=label, file_mb=path.stat().st_size / 1e6)
        rows.append(row)
        print(f"{label}: {m:g} min ({row['file_mb']:.0f} MB FLAC): peak RSS {row['peak_mb']:.0f} MB, "
              f"{row['wall_s']:.0f} s, {row['steps']} steps", flush=True)
    return rows


# -- index on disk -----------------------------------------------------------------------------

def bench_store(tracks: int = 10_000, steps: int = 360, rounds: int = 3) -> tuple[str, str]:
    """Write and load a library of ``tracks`` 3-minute tracks (2 Hz series) and their segments."""
    import tempfile

    from moodsic_live.library.model import Track, VASeries, segment_series
    from moodsic_live.library.store import Library, read_library, write_library

    rng = np.random.default_rng(0)
    items, parts = [], []
    t = (np.arange(steps) / 2.0).astype(np.float32)
    for i in range(tracks):
        v = np.clip(rng.normal(0, 0.3) + np.cumsum(rng.normal(0, 0.02, steps)), -1, 1).astype(np.float32)
        a = np.clip(rng.normal(0, 0.3) + np.cumsum(rng.normal(0, 0.02, steps)), -1, 1).astype(np.float32)
        series = VASeries(t, v, a, "audio")
        items.append(Track(id=f"t{i}", title=f"Track {i}", artist="Bench", genre="", path=Path(f"/music/{i}.mp3"),
                           duration=steps / 2.0, sample_rate=44100, source="folder", series=series))
        parts.append(segment_series(series, i))
    library = Library("bench", items, SegmentTable.concat(parts), {"kind": "folder"})
    writes, reads = [], []
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench.sqlite"
        for _ in range(rounds):
            t0 = time.perf_counter()
            write_library(path, library)
            writes.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            loaded = read_library(path)
            reads.append(time.perf_counter() - t0)
        size_mb = path.stat().st_size / 1e6
    assert len(loaded.segments) == len(library.segments)
    table = "\n".join(["| tracks | segments | file MB | write s (median) | load s (median) |",
                       "|---:|---:|---:|---:|---:|",
                       f"| {tracks:,} | {len(library.segments):,} | {size_mb:.0f} | {np.median(writes):.2f} | "
                       f"{np.median(reads):.2f} |"])
    note = (f"A synthetic library of {tracks:,} three-minute tracks (2 Hz series, 10 s segments, 5 s hop), "
            f"median of {rounds} rounds. Target: loads in well under a second.")
    return note, table


def memory_section(before: list[dict[str, Any]], after: list[dict[str, Any]], before_label: str) -> str:
    rows = ["| file | code | peak RSS MB | wall s (one worker) |", "|---|---|---:|---:|"]
    for r in before + after:
        rows.append(f"| {r['minutes']:g} min, stereo 44.1 kHz FLAC ({r['file_mb']:.0f} MB) | {r['label']} | "
                    f"{r['peak_mb']:.0f} | {r['wall_s']:.0f} |")
    return "\n".join([
        f"## {MEMORY_SECTION}", "", machine_line(),
        "Command: `python bench/library.py --memory 15,60,120 --memory-before /tmp/old --write` (``/tmp/old``: "
        f"`git worktree add /tmp/old <commit>` of the code before streaming, {before_label}).", "",
        "Peak resident memory (ru_maxrss) of a fresh process that runs `analyse_one` on one long file, features "
        "and both musicnn taggers, one BLAS thread, as a pool worker does. The files are the DEAM sample's songs "
        "one after another, looped (made by `long_audio`). Before, a file was decoded and analysed whole (about "
        "80 MB per minute of audio); now the decode streams (10 s blocks, soxr streams to 22.05 and 16 kHz), "
        "the features go a 60 s chunk at a time and the taggers a run of windows at a time, their sessions "
        "without an onnxruntime memory arena (an arena keeps the peak of a run's convolution maps, ~300 MB a "
        "model, for the worker's life: with one shared arena a 2-hour file peaked at 911 MB, 15 minutes at "
        "819 MB; without, tagging costs about 18 % more CPU time, same outputs), and what grows with the "
        "length is 80 numbers per STFT frame (about 50 MB per hour).", "",
        *rows, ""])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                    help="comma-separated library sizes in segments for the index benchmark")
    ap.add_argument("--rounds", type=int, default=3, help="repeat builds and fits; report medians")
    ap.add_argument("--write", action="store_true", help="update the Library section of docs/performance.md")
    ap.add_argument("--audio", type=Path, help="folder of audio for the analysis benchmark (default: the DEAM "
                    "sample in ../shared, else 8 demo pieces)")
    ap.add_argument("--skip-analysis", action="store_true")
    ap.add_argument("--memory", help="only measure the peak memory of one analysis worker on long files of these "
                    "lengths in minutes (e.g. 15,60,120) and write its own section")
    ap.add_argument("--memory-before", type=Path, help="with --memory: a checkout of older code measured the same "
                    "way, on the files up to 60 minutes")
    ap.add_argument("--memory-dir", type=Path, default=Path("/tmp/moodsic-long"),
                    help="where the long files are made (kept for later runs)")
    args = ap.parse_args()
    if args.memory:
        minutes = tuple(float(m) for m in args.memory.split(","))
        before, label = [], ""
        if args.memory_before:
            import subprocess

            label = subprocess.run(["git", "-C", str(args.memory_before), "log", "-1", "--format=%h %cs"],
                                   capture_output=True, text=True).stdout.strip()
            before = bench_memory(tuple(m for m in minutes if m <= 60), args.memory_dir, args.memory_before,
                                  f"before ({label})")
        after = bench_memory(minutes, args.memory_dir, ROOT, "streamed")
        text = memory_section(before, after, label)
        print(text)
        if args.write:
            write_section(MEMORY_SECTION, text)
            print(f"wrote {DOC}")
        return 0
    sizes = tuple(int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip())

    # Each part is (title, explanation, markdown table); bench_analysis() adds its own part here.
    parts: list[tuple[str, str, str]] = []
    rows = bench_index(sizes, rounds=args.rounds)
    parts.append(("Segment index and matcher (synthetic segments, V/A ~ N(0, 0.3) clipped)",
                  f"{INDEX_TARGET} Build and fits: median of {args.rounds} rounds; queries and updates: "
                  "1,000 one at a time.", index_table(rows)))
    note, table = bench_store(rounds=args.rounds)
    parts.append(("Library index on disk (SQLite)", note, table))
    if not args.skip_analysis:
        note, table = bench_analysis(args.audio, rounds=args.rounds)
        parts.insert(0, ("Audio analysis (decode, resample to 22.05 kHz, every feature at 2 Hz)", note, table))
        note, table = bench_tagger(args.audio, rounds=args.rounds)
        parts.insert(1, ("Music tagger (musicnn MSD + MTT, ONNX, CPU)", note, table))

    command = f"`python bench/library.py --sizes {args.sizes} --rounds {args.rounds} --write`"
    if args.audio:
        command = command.replace(" --write", f" --audio {args.audio} --write")
    body = [SECTION, "", machine_line(), f"Command: {command}.", ""]
    for title, note, table in parts:
        body += [f"**{title}**", "", note, "", table, ""]
    text = "\n".join(body)
    print(text)
    if args.write:
        write_section("Library", text)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
