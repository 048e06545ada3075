#!/usr/bin/env python3
"""One-off verification script: run the ORIGINAL musicnn (TensorFlow) and store a test fixture.

This is NOT part of the ``moodsic_live`` package and is never imported by it or by the tests.
It exists so that our own ONNX conversion of musicnn (``MSD_musicnn`` and ``MTT_musicnn``,
Pons & Serra 2019, ISC licence) can be checked against the numbers the original TensorFlow
model produces.  The outputs are committed; you only need to run this again if you want to
regenerate or audit them.

Outputs (relative to the repository root):

* ``tests/fixtures/musicnn_reference.npz``  - tag probabilities, logits and 200-d penultimate
  embeddings for 10 DEAM clips and both models, plus the exact network inputs (log-mel patches)
  for clips 2 and 7 so the network can be tested independently of the audio front-end.
* ``tests/fixtures/musicnn_reference.json`` - versions, wheel sha256, front-end parameters,
  the checkpoint variable list (names/shapes/dtypes) of both checkpoints, per-clip metadata.

Throwaway environment (OUTSIDE the repo; never install TensorFlow into the project's .venv).
TensorFlow 2.15 is the last line that still ships a Python 3.11 CPU wheel and needs numpy < 2::

    python3 -m venv /tmp/tfref
    /tmp/tfref/bin/pip install tensorflow-cpu==2.15.1 numpy==1.26.4 librosa==0.11.0 soundfile==0.14.0
    mkdir -p /tmp/mnn && /tmp/tfref/bin/pip download --no-deps -d /tmp/mnn musicnn==0.1.0
    /tmp/tfref/bin/pip install --no-deps /tmp/mnn/musicnn-0.1.0-py3-none-any.whl

(``--no-deps`` is required: the wheel's metadata pins numpy<1.17, which we ignore.)
Versions that were actually used are recorded in the JSON file.  Then, from the repo root::

    /tmp/tfref/bin/python tools/musicnn_reference.py \
        --audio-dir /work/shared/data/deam_sample/MEMD_audio \
        --wheel /tmp/mnn/musicnn-0.1.0-py3-none-any.whl

Optional: ``--dump-graph FILE`` writes the TF op list of the MSD_musicnn graph (used to write
``tools/musicnn_architecture.md``).  Runtime on a 2-core CPU: about a minute.

No patching of musicnn is needed with TF 2.15: the wheel already uses ``tf.compat.v1`` and calls
``tf.compat.v1.disable_eager_execution()`` at import.  We reuse musicnn's own ``batch_data`` (the
audio front-end) and ``models.define_model`` (the graph) and build the graph exactly as
``musicnn.extractor.extractor`` does (same name scope, placeholders, ``is_training=False``,
batch size 1, ``Saver.restore`` of ``<package>/<model>/``).

Why not just use ``extractor(..., extract_features=True)``: in musicnn 0.1.0 the loop that handles
the 2nd and later batches unpacks into ``midend1_, midend2_, midend3_, backend_`` but concatenates
the stale first-batch variables ``cnn1_, cnn2_, cnn3_, penultimate_``, so with BATCH_SIZE=1 every
row of ``features['penultimate']`` (and cnn1/2/3) is a copy of patch 0.  The taggram is correct.
This script therefore fetches the penultimate tensor itself, and cross-checks its taggram against
``extractor()`` (must match) and records the extractor's feature keys/shapes and the bug.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

CLIPS = [2, 3, 4, 5, 7, 8, 10, 12, 13, 17]
INPUT_CLIPS = [2, 7]  # clips whose exact network input patches are stored
MODELS = {"msd": "MSD_musicnn", "mtt": "MTT_musicnn"}
REPO = Path(__file__).resolve().parents[1]
MAX_NPZ_BYTES = 3 * 1024 * 1024


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_variables(tf, prefix: str) -> list[dict]:
    """Variables stored in a checkpoint.

    ``tf.train.list_variables(<dir>/)`` fails on these checkpoints: given a directory it follows the
    ``checkpoint`` file, which points at an absolute path on the author's machine
    (/home/jpons/...).  The data files are ``<dir>/.index`` and ``<dir>/.data-00000-of-00001``, i.e.
    the checkpoint prefix is ``<dir>/`` itself, so we open it with the same reader that
    ``list_variables`` uses internally.
    """
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    return [
        {"name": n, "shape": list(shapes[n]), "dtype": dtypes[n].name,
         "optimizer_slot": n.endswith("/Adam") or n.endswith("/Adam_1") or n.startswith("beta")}
        for n in sorted(shapes)
    ]


def build(tf, models, config, model: str, n_frames: int):
    """Build the graph exactly as musicnn.extractor.extractor() does; return session + tensors."""
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        (y, timbral, temporal, cnn1, cnn2, cnn3,
         mean_pool, max_pool, penultimate) = models.define_model(x, is_training, model, len(
             config.MTT_LABELS if "MTT" in model else config.MSD_LABELS))
        normalized_y = tf.nn.sigmoid(y)
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    saver = tf.compat.v1.train.Saver()
    saver.restore(sess, os.path.dirname(models.__file__) + "/" + model + "/")
    fetch = {"tags": normalized_y, "logits": y, "emb": penultimate,
             "mean_pool": mean_pool, "max_pool": max_pool}
    return sess, x, is_training, fetch


def run_batches(sess, x, is_training, fetch, batch, batch_size):
    out = {k: [] for k in fetch}
    for i in range(0, batch.shape[0], batch_size):
        res = sess.run(fetch, feed_dict={x: batch[i:i + batch_size], is_training: False})
        for k, v in res.items():
            out[k].append(np.asarray(v, dtype=np.float32))
    return {k: np.concatenate(v, axis=0) for k, v in out.items()}


def dump_graph(tf, path: Path) -> None:
    g = tf.compat.v1.get_default_graph()
    with open(path, "w") as f:
        for op in g.get_operations():
            outs = ", ".join(str(t.shape) for t in op.outputs)
            attrs = []
            for a in ("padding", "strides", "ksize", "epsilon", "is_training", "data_format",
                      "keep_dims", "Tpaddings", "perm"):
                try:
                    attrs.append(f"{a}={op.get_attr(a)!r}")
                except (ValueError, TypeError):
                    pass
            f.write(f"{op.type:24s} {op.name:70s} -> {outs} {' '.join(attrs)}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audio-dir", type=Path,
                    default=Path("/work/shared/data/deam_sample/MEMD_audio"))
    ap.add_argument("--wheel", type=Path,
                    default=Path("/tmp/mnn/musicnn-0.1.0-py3-none-any.whl"))
    ap.add_argument("--out-dir", type=Path, default=REPO / "tests" / "fixtures")
    ap.add_argument("--dump-graph", type=Path, default=None)
    args = ap.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import librosa
    import soundfile
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import extractor as mx  # disables eager execution, as musicnn always does
    from musicnn import models
    try:
        from importlib.metadata import version
        musicnn_version = version("musicnn")
    except Exception:  # pragma: no cover
        musicnn_version = "unknown"

    # Front-end constants exactly as musicnn.extractor.extractor() computes them.
    input_length = 3
    n_frames = int(librosa.time_to_frames(input_length, sr=config.SR, n_fft=config.FFT_SIZE,
                                          hop_length=config.FFT_HOP) + 1)
    overlap = n_frames  # input_overlap=False (extractor default) -> non-overlapping patches
    assert n_frames == 187, n_frames

    # ---- audio front-end: musicnn's own batch_data() (librosa load @16 kHz, mel, float16, log)
    batches, clip_meta = {}, {}
    for c in CLIPS:
        path = args.audio_dir / f"{c}.mp3"
        batch, spec = mx.batch_data(str(path), n_frames, overlap)
        assert np.all(np.isfinite(batch)), c
        clip_meta[str(c)] = {"file": path.name, "sha256": sha256(path),
                             "spectrogram_frames": int(spec.shape[0]),
                             "n_patches": int(batch.shape[0]),
                             "batch_dtype_from_batch_data": str(batch.dtype)}
        batches[c] = batch.astype(np.float32)
        print(f"clip {c}: spectrogram {spec.shape} -> batch {batch.shape} {batch.dtype}")

    arrays: dict[str, np.ndarray] = {
        "msd_tag_names": np.array(config.MSD_LABELS),
        "mtt_tag_names": np.array(config.MTT_LABELS),
        "clips": np.array(CLIPS, dtype=np.int32),
    }
    for c in INPUT_CLIPS:
        arrays[f"input_{c}"] = batches[c]

    extractor_check: dict = {}
    for short, model in MODELS.items():
        sess, x, is_training, fetch = build(tf, models, config, model, n_frames)
        if args.dump_graph is not None and short == "msd":
            dump_graph(tf, args.dump_graph)
        for c in CLIPS:
            res = run_batches(sess, x, is_training, fetch, batches[c], config.BATCH_SIZE)
            assert res["tags"].shape == (batches[c].shape[0], 50)
            assert res["emb"].shape == (batches[c].shape[0], 200)
            assert np.all((res["tags"] >= 0) & (res["tags"] <= 1))
            arrays[f"{short}_tags_{c}"] = res["tags"]
            arrays[f"{short}_logits_{c}"] = res["logits"]
            arrays[f"{short}_emb_{c}"] = res["emb"]
            if c in INPUT_CLIPS:
                # same inputs, fed all at once (batch independence check, and mid-network taps)
                full = run_batches(sess, x, is_training, fetch, batches[c], batches[c].shape[0])
                np.testing.assert_allclose(full["tags"], res["tags"], atol=1e-5)
                arrays[f"{short}_mean_pool_{c}"] = res["mean_pool"]
                arrays[f"{short}_max_pool_{c}"] = res["max_pool"]
            labels = config.MSD_LABELS if short == "msd" else config.MTT_LABELS
            top = np.argsort(-res["tags"].mean(0))[:5]
            clip_meta[str(c)][f"{short}_top5"] = [
                [labels[i], round(float(res["tags"].mean(0)[i]), 4)] for i in top]
        sess.close()

        # ---- cross-check against musicnn's own extractor() on every clip
        worst, keys = 0.0, None
        for c in CLIPS:
            taggram, _, feats = mx.extractor(str(args.audio_dir / f"{c}.mp3"), model=model,
                                             input_length=input_length, input_overlap=False,
                                             extract_features=True)
            worst = max(worst, float(np.abs(taggram - arrays[f"{short}_tags_{c}"]).max()))
            if keys is None:
                keys = {k: list(np.shape(v)) for k, v in feats.items()}
                pen = np.asarray(feats["penultimate"])
                extractor_check[model] = {
                    "feature_keys_and_shapes_clip_%d" % c: keys,
                    "penultimate_rows_all_equal_row0": bool(np.allclose(pen, pen[:1])),
                    "penultimate_row0_matches_ours": bool(np.allclose(
                        pen[0], arrays[f"{short}_emb_{c}"][0], atol=1e-4)),
                    "penultimate_matches_ours_all_rows": bool(np.allclose(
                        pen, arrays[f"{short}_emb_{c}"], atol=1e-4)),
                }
        extractor_check[model]["max_abs_taggram_diff_vs_extractor"] = worst
        assert worst < 1e-5, (model, worst)

    # ---- save npz (fall back to the first 5 input patches if it would exceed ~3 MB)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    npz = args.out_dir / "musicnn_reference.npz"
    np.savez_compressed(npz, **arrays)
    truncated = False
    if npz.stat().st_size > MAX_NPZ_BYTES:
        truncated = True
        for c in INPUT_CLIPS:
            arrays[f"input_{c}"] = arrays[f"input_{c}"][:5]
            for short in MODELS:
                for k in ("tags", "logits", "emb", "mean_pool", "max_pool"):
                    arrays[f"{short}_{k}_{c}"] = arrays[f"{short}_{k}_{c}"][:5]
        np.savez_compressed(npz, **arrays)

    pkg = Path(models.__file__).parent
    meta = {
        "generated_by": "tools/musicnn_reference.py (one-off, throwaway venv /tmp/tfref)",
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "numpy": np.__version__,
            "librosa": librosa.__version__,
            "soundfile": soundfile.__version__,
            "libsndfile": soundfile.__libsndfile_version__,
            "soxr": __import__("soxr").__version__,
            "musicnn": musicnn_version,
        },
        "musicnn_wheel": {"file": args.wheel.name,
                          "sha256": sha256(args.wheel) if args.wheel.exists() else None},
        "checkpoint_files_sha256": {
            m: {f: sha256(pkg / m / f) for f in (".index", ".data-00000-of-00001")}
            for m in MODELS.values()},
        "front_end": {
            "sample_rate": config.SR,
            "load": "librosa.load(path, sr=16000) (mono=True, res_type default 'soxr_hq' in "
                    "librosa 0.11; mp3 decoded by soundfile/libsndfile)",
            "mel": "librosa.feature.melspectrogram(y, sr=16000, n_fft=512, hop_length=256, "
                   "n_mels=96) with librosa defaults: window='hann', center=True, "
                   "pad_mode='constant' (zeros), power=2.0, htk=False, norm='slaney', fmin=0, "
                   "fmax=8000; then transposed to (frames, 96)",
            "n_fft": config.FFT_SIZE, "hop_length": config.FFT_HOP, "n_mels": config.N_MELS,
            "power": 2.0, "center": True, "pad_mode": "constant", "htk": False,
            "mel_norm": "slaney",
            "float16_rounding": "mel power is cast to np.float16 BEFORE the log (audio_rep."
                                "astype(np.float16)); with numpy 1.x the product 10000*x is "
                                "promoted to float32 (value-based casting), so the result is "
                                "float32 log10(10000*float16(mel)+1)",
            "log": "log10(10000 * x + 1)",
            "patch_frames": n_frames,
            "patch_hop_frames": overlap,
            "patching": "non-overlapping: starts range(0, frames-187+1, 187); a trailing "
                        "partial patch is dropped",
            "input_length_s": input_length,
            "input_overlap": False,
            "network_batch_size": config.BATCH_SIZE,
            "is_training": False,
        },
        "npz_keys": {
            "{msd,mtt}_tags_<clip>": "(n_patches, 50) float32 sigmoid outputs",
            "{msd,mtt}_logits_<clip>": "(n_patches, 50) float32 pre-sigmoid",
            "{msd,mtt}_emb_<clip>": "(n_patches, 200) float32 'penultimate' = BN(ReLU(dense)), "
                                    "before dropout",
            "input_<clip>": "(n_patches, 187, 96) float32 exact network input, clips "
                            + ", ".join(map(str, INPUT_CLIPS)),
            "{msd,mtt}_{mean,max}_pool_<clip>": "(n_patches, 753) float32 temporal pooling "
                                                "taps, input clips only",
            "msd_tag_names / mtt_tag_names": "(50,) str",
            "clips": "clip ids",
        },
        "inputs_truncated_to_5_patches": truncated,
        "clips": clip_meta,
        "extractor_check": extractor_check,
        "checkpoints": {
            m: checkpoint_variables(tf, str(pkg / m) + "/") for m in MODELS.values()
        },
    }
    js = args.out_dir / "musicnn_reference.json"
    js.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {npz} ({npz.stat().st_size} bytes), {js} ({js.stat().st_size} bytes)")
    for c in CLIPS:
        print(c, "MSD:", clip_meta[str(c)]["msd_top5"][:3], "MTT:", clip_meta[str(c)]["mtt_top5"][:3])
    print(json.dumps(extractor_check, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
