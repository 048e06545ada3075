"""musicnn: our checkpoint reader and ONNX graph, against what TensorFlow itself reads and computes.

The reference numbers (``tests/fixtures/musicnn_reference.*``) were made once by
``tools/musicnn_reference.py`` with the original musicnn and TensorFlow, in a throwaway
environment; TensorFlow is never needed here.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import ROOT
from moodsic_live.errors import ModelError
from moodsic_live.models import musicnn_onnx
from moodsic_live.models.registry import FACE_MODEL, MUSIC_MODELS, MUSICNN, BuildError, build_models
from moodsic_live.models.sources import source_file
from moodsic_live.models.tf_bundle import _raw_update, crc32c, mask, read_bundle, read_bundle_index, unmask
from moodsic_live.perceive.contract import manifest_path

FIXTURES = ROOT / "tests" / "fixtures"
REF_NPZ = FIXTURES / "musicnn_reference.npz"
REF_JSON = FIXTURES / "musicnn_reference.json"
SHORT = {"music_musicnn_msd": "msd", "music_musicnn_mtt": "mtt"}
INDEX, DATA = ".index", ".data-00000-of-00001"


def _reference() -> tuple[dict, dict]:
    if not (REF_NPZ.is_file() and REF_JSON.is_file()):
        pytest.skip(f"TensorFlow reference fixture not found ({REF_NPZ.name}, {REF_JSON.name} in {FIXTURES}); "
                    "make it with tools/musicnn_reference.py")
    with np.load(REF_NPZ) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(REF_JSON.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def reference():
    return _reference()


@pytest.fixture(scope="session")
def checkpoints(config, models_dir) -> dict[str, Path]:
    """musicnn's checkpoint folders (extracted from the verified wheel by `models build`)."""
    out = {}
    for folder in musicnn_onnx.MODELS:
        for name in (INDEX, DATA):
            path = source_file(MUSICNN, f"musicnn/{folder}/{name}", config.paths.cache_dir)
        out[folder] = path.parent
    return out


@pytest.fixture(scope="session")
def sessions(models_dir) -> dict[str, ort.InferenceSession]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return {name: ort.InferenceSession(str(models_dir / spec[0]), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
            for name, spec in MUSIC_MODELS.items()}


# --- the checkpoint reader ---------------------------------------------------------------------

def test_crc32c_known_values_and_masking():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    data = np.random.default_rng(1).integers(0, 256, 300_001, dtype=np.uint8).tobytes()
    for n in (2048 * 8 - 1, 2048 * 37 + 5, len(data)):  # numpy lanes + GF(2) shifts == the plain byte loop
        assert crc32c(data[:n]) == _raw_update(0xFFFFFFFF, data[:n]) ^ 0xFFFFFFFF
    assert unmask(mask(0x12345678)) == 0x12345678


@pytest.mark.parametrize("folder", musicnn_onnx.MODELS)
def test_reader_lists_what_tensorflow_lists(folder, checkpoints, reference):
    _, meta = reference
    tf_vars = {v["name"]: v for v in meta["checkpoints"][folder]}
    ours = read_bundle_index(checkpoints[folder])
    assert sorted(ours) == sorted(tf_vars)
    for name, entry in ours.items():
        assert list(entry.shape) == tf_vars[name]["shape"], name
        assert entry.dtype == tf_vars[name]["dtype"], name
    tensors = read_bundle(checkpoints[folder])  # every tensor, each crc32c checked
    assert sorted(tensors) == sorted(tf_vars)
    for name, array in tensors.items():
        assert array.shape == tuple(tf_vars[name]["shape"]) and np.isfinite(array).all(), name


@pytest.mark.parametrize("folder", musicnn_onnx.MODELS)
def test_checkpoint_holds_the_architecture_of_models_py(folder, checkpoints):
    entries = read_bundle_index(checkpoints[folder])
    for name, shape in musicnn_onnx.expected_shapes().items():
        assert entries[name].shape == shape and entries[name].dtype == "float32", name


def _copy(checkpoints, tmp_path: Path) -> Path:
    target = tmp_path / "MSD_musicnn"
    shutil.copytree(checkpoints["MSD_musicnn"], target)
    return target


def _damage(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage,says", [
    ("truncate", "bad magic number"),
    ("magic", "bad magic number"),
    ("block", "checksum mismatch"),
    ("short", "shorter than the 48-byte table footer"),
    ("missing", "is missing"),
])
def test_a_damaged_index_is_a_one_line_model_error(damage, says, checkpoints, tmp_path):
    ckpt = _copy(checkpoints, tmp_path)
    index = ckpt / INDEX
    raw = index.read_bytes()
    if damage == "truncate":
        index.write_bytes(raw[:-100])
    elif damage == "magic":
        _damage(index, len(raw) - 1)
    elif damage == "block":
        _damage(index, 40)  # inside the first data block's keys
    elif damage == "short":
        index.write_bytes(raw[:20])
    else:
        index.unlink()
    for reader in (read_bundle_index, read_bundle):
        with pytest.raises(ModelError) as err:
            reader(ckpt)
        msg = str(err.value)
        assert says in msg and str(index) in msg and "moodsic-live models build --force" in msg
        assert "\n" not in msg


@pytest.mark.parametrize("damage,says", [("flip", "checksum of tensor"), ("truncate", "is truncated"),
                                         ("missing", "is missing")])
def test_damaged_data_is_a_one_line_model_error(damage, says, checkpoints, tmp_path):
    ckpt = _copy(checkpoints, tmp_path)
    data = ckpt / DATA
    entry = read_bundle_index(ckpt)["dense/kernel"]
    if damage == "flip":
        _damage(data, entry.offset + entry.size // 2)
    elif damage == "truncate":
        data.write_bytes(data.read_bytes()[:entry.offset + 10])
    else:
        data.unlink()
    with pytest.raises(ModelError) as err:
        read_bundle(ckpt, ["dense/kernel"])
    msg = str(err.value)
    assert says in msg and str(data) in msg and "moodsic-live models build --force" in msg and "\n" not in msg


def test_a_checkpoint_without_a_needed_tensor_is_refused(checkpoints):
    tensors = read_bundle(checkpoints["MTT_musicnn"], lambda n: "Adam" not in n)
    del tensors["dense_1/kernel"]
    with pytest.raises(ModelError, match="no tensor 'dense_1/kernel'"):
        musicnn_onnx.build_musicnn(tensors)
    tensors = read_bundle(checkpoints["MTT_musicnn"], lambda n: "Adam" not in n)
    tensors["conv2d/kernel"] = tensors["conv2d/kernel"][:, :30]
    with pytest.raises(ModelError, match="conv2d/kernel"):
        musicnn_onnx.build_musicnn(tensors)


# --- the ONNX models ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(MUSIC_MODELS))
def test_built_model_is_a_clean_opset_17_graph_over_any_length(name, models_dir, sessions):
    path = models_dir / MUSIC_MODELS[name][0]
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims == {"mel": ["T", 96], "starts": ["P"]}
    assert [o.name for o in model.graph.output] == ["tags", "embedding"]
    x = np.random.default_rng(2).uniform(0, 3, (500, 96)).astype(np.float32)
    starts = np.array([0, 100, 313], np.int64)  # 313 = T - 187: the last possible window
    tags, emb = sessions[name].run(["tags", "embedding"], {"mel": x, "starts": starts})
    assert tags.shape == (3, 50) and emb.shape == (3, 200) and ((tags > 0) & (tags < 1)).all()
    one_tags, one_emb = sessions[name].run(["tags", "embedding"], {"mel": x, "starts": starts[1:2]})
    assert np.allclose(one_tags, tags[1:2], atol=1e-6) and np.allclose(one_emb, emb[1:2], atol=1e-5)
    # a window sees its neighbours, so in a longer piece it differs from the same frames alone
    alone = sessions[name].run(["tags"], {"mel": x[100:287], "starts": np.array([0], np.int64)})[0]
    assert not np.allclose(alone, tags[1:2], atol=1e-4)


def _with_pooling_taps(path: Path) -> ort.InferenceSession:
    """The model with its windows' max and mean pooling (P, 753) as extra outputs."""
    model = onnx.load(str(path))
    for tap in ("max_pool", "mean_pool"):
        model.graph.output.append(onnx.helper.make_tensor_value_info(tap, onnx.TensorProto.FLOAT, ["P", 753]))
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", list(MUSIC_MODELS))
def test_onnx_matches_tensorflow_on_real_patches(name, models_dir, reference):
    """Each of musicnn's own 3 s patches, alone (``starts = [0]``), against TensorFlow."""
    arrays, meta = reference
    short = SHORT[name]
    session = _with_pooling_taps(models_dir / MUSIC_MODELS[name][0])
    worst = {"tags": 0.0, "embedding": 0.0, "max_pool": 0.0, "mean_pool": 0.0}
    for clip in (2, 7):
        patches = arrays[f"input_{clip}"].astype(np.float32)
        runs = [session.run(list(worst), {"mel": p, "starts": np.array([0], np.int64)}) for p in patches]
        got = {key: np.concatenate([r[i] for r in runs]) for i, key in enumerate(worst)}
        ref = {"tags": arrays[f"{short}_tags_{clip}"], "embedding": arrays[f"{short}_emb_{clip}"],
               "max_pool": arrays[f"{short}_max_pool_{clip}"], "mean_pool": arrays[f"{short}_mean_pool_{clip}"]}
        for key in worst:
            assert got[key].shape == ref[key].shape, key
            worst[key] = max(worst[key], float(np.abs(got[key] - ref[key]).max()))
        # the pooling taps reach ~100: compare them relative to their size
        for key in ("max_pool", "mean_pool"):
            np.testing.assert_allclose(got[key], ref[key], rtol=1e-5, atol=1e-3)
    print(f"\n{name} vs TensorFlow (clips 2 and 7, 30 patches): max |diff| "
          + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    assert worst["tags"] <= 1e-3
    assert worst["embedding"] <= 1e-3


@pytest.mark.parametrize("name", list(MUSIC_MODELS))
def test_manifest_says_where_the_model_comes_from_and_how_to_feed_it(name, models_dir, reference):
    arrays, meta = reference
    data = json.loads(manifest_path(models_dir / MUSIC_MODELS[name][0]).read_text(encoding="utf-8"))
    assert data["license"] == "ISC" and data["source_wheel"]["requirement"] == "musicnn==0.1.0"
    assert data["source_wheel"]["sha256"] == MUSICNN.sha256 == meta["musicnn_wheel"]["sha256"]
    assert data["outputs"]["tags"]["labels"] == [str(v) for v in arrays[f"{SHORT[name]}_tag_names"]]
    fe, ref = data["input"]["frontend"], meta["front_end"]
    assert (fe["sample_rate"], fe["n_fft"], fe["hop_length"], fe["n_mels"], fe["frames_per_patch"]) == \
        (ref["sample_rate"], ref["n_fft"], ref["hop_length"], ref["n_mels"], ref["patch_frames"])
    assert fe["compression"] == "log10(10000 * x + 1)" and fe["cast_before_log"] == "float16"
    assert len(data["build"]["sha256"]) == 64


# --- building -----------------------------------------------------------------------------------

def _link_cache(config, tmp_path: Path) -> Path:
    """A fresh cache that shares the (verified) wheels already fetched."""
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    for wheel in (config.paths.cache_dir / "wheels").glob("*.whl"):
        os.symlink(wheel, cache / "wheels" / wheel.name)
    return cache


def test_a_music_failure_leaves_the_other_models_built(models_dir, config, tmp_path):
    target = tmp_path / "models"
    bogus = tmp_path / MUSICNN.filename
    bogus.write_bytes(b"not a zip")
    with pytest.raises(BuildError) as err:
        build_models(target, _link_cache(config, tmp_path), musicnn_wheel=bogus)
    msg = str(err.value)
    assert "\n" not in msg and "2 of 4 models failed" in msg and "is not the published musicnn" in msg
    status = {r.name: r.status for r in err.value.results}
    assert status == {"face_fer2013": "built", "scene_affect": "built",
                      "music_musicnn_msd": "failed", "music_musicnn_mtt": "failed"}
    assert (target / FACE_MODEL).is_file() and not (target / MUSIC_MODELS["music_musicnn_msd"][0]).exists()


def test_force_repairs_a_damaged_cached_checkpoint(models_dir, config, tmp_path):
    target, cache = tmp_path / "models", _link_cache(config, tmp_path)
    assert {r.status for r in build_models(target, cache)} == {"built"}
    assert {r.status for r in build_models(target, cache)} == {"up to date"}
    data = cache / "extracted" / MUSICNN.sha256[:16] / "musicnn" / "MTT_musicnn" / DATA
    entry = read_bundle_index(data.parent)["dense/kernel"]
    _damage(data, entry.offset + entry.size // 2)
    with pytest.raises(BuildError) as err:
        build_models(target, cache)
    assert "music_musicnn_mtt" in str(err.value) and "models build --force" in str(err.value)
    assert {r.name for r in err.value.results if r.status == "failed"} == {"music_musicnn_mtt"}
    results = build_models(target, cache, force=True)
    assert {r.status for r in results} == {"built"}
    assert {r.status for r in build_models(target, cache)} == {"up to date"}
