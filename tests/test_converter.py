"""The Keras HDF5 -> ONNX converter, against TensorFlow's own semantics and the tflite twin."""

from __future__ import annotations

import csv
import json

import cv2
import h5py
import numpy as np
import onnxruntime as ort
import pytest

from moodsic_live.models.keras_onnx import _same_pads, convert_keras_h5
from moodsic_live.perceive.estimate import FaceBox
from moodsic_live.perceive.face_detector import FaceDetector, choose_primary, crop_transform


@pytest.mark.parametrize("size,k,s,expected", [(60, 3, 2, (0, 1)), (15, 3, 2, (1, 1)), (8, 3, 2, (0, 1)),
                                               (60, 1, 2, (0, 0)), (64, 3, 1, (1, 1)), (7, 4, 1, (1, 2))])
def test_same_padding_follows_tensorflow(size, k, s, expected):
    assert _same_pads(size, k, s) == expected


# --- a tiny Keras-format model written with h5py, checked against a numpy reference -------------

def _write_keras_h5(path, weights):
    layers = [
        {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [None, 8, 8, 2]},
         "inbound_nodes": []},
        {"class_name": "Conv2D", "config": {"name": "conv", "filters": 3, "kernel_size": [3, 3], "strides": [2, 2],
                                            "padding": "same", "use_bias": True, "activation": "linear"},
         "inbound_nodes": [[["in", 0, 0, {}]]]},
        {"class_name": "BatchNormalization", "config": {"name": "bn", "axis": -1, "epsilon": 0.001},
         "inbound_nodes": [[["conv", 0, 0, {}]]]},
        {"class_name": "Activation", "config": {"name": "relu", "activation": "relu"},
         "inbound_nodes": [[["bn", 0, 0, {}]]]},
        {"class_name": "MaxPooling2D", "config": {"name": "pool", "pool_size": [3, 3], "strides": [2, 2],
                                                  "padding": "same"}, "inbound_nodes": [[["relu", 0, 0, {}]]]},
        {"class_name": "GlobalAveragePooling2D", "config": {"name": "gap"}, "inbound_nodes": [[["pool", 0, 0, {}]]]},
        {"class_name": "Activation", "config": {"name": "out", "activation": "softmax"},
         "inbound_nodes": [[["gap", 0, 0, {}]]]},
    ]
    config = {"class_name": "Model", "config": {"name": "tiny", "layers": layers, "input_layers": [["in", 0, 0]],
                                                 "output_layers": [["out", 0, 0]]}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.0.5"
        g = f.create_group("model_weights")
        for layer, named in weights.items():
            lg = g.create_group(layer)
            names = []
            for short, arr in named.items():
                full = f"{layer}_1/{short}:0"
                lg.create_dataset(full, data=arr)
                names.append(full.encode())
            lg.attrs["weight_names"] = names


def _tf_reference(x, w, pads=_same_pads):
    """TensorFlow semantics in numpy: NHWC, 'same' pads with the odd pixel at the end."""
    k, b = w["conv"]["kernel"], w["conv"]["bias"]
    t, bot = pads(8, 3, 2)
    xp = np.pad(x, ((0, 0), (t, bot), (t, bot), (0, 0)))
    out = np.zeros((1, 4, 4, 3))
    for i in range(4):
        for j in range(4):
            patch = xp[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :]
            out[0, i, j] = np.tensordot(patch, k, axes=([0, 1, 2], [0, 1, 2])) + b
    bn = w["bn"]
    out = (out - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-3) * bn["gamma"] + bn["beta"]
    out = np.maximum(out, 0)
    t, bot = pads(4, 3, 2)
    op = np.pad(out, ((0, 0), (t, bot), (t, bot), (0, 0)), constant_values=-np.inf)
    pooled = np.array([[op[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :].max(axis=(0, 1)) for j in range(2)]
                       for i in range(2)])
    gap = pooled.mean(axis=(0, 1))
    e = np.exp(gap - gap.max())
    return e / e.sum()


def test_converter_matches_tensorflow_semantics_exactly(tmp_path):
    rng = np.random.default_rng(7)
    w = {"conv": {"kernel": rng.normal(size=(3, 3, 2, 3)).astype(np.float32),
                  "bias": rng.normal(size=3).astype(np.float32)},
         "bn": {"gamma": rng.uniform(0.5, 2, 3).astype(np.float32), "beta": rng.normal(size=3).astype(np.float32),
                "moving_mean": rng.normal(size=3).astype(np.float32),
                "moving_variance": rng.uniform(0.5, 2, 3).astype(np.float32)}}
    path = tmp_path / "tiny.hdf5"
    _write_keras_h5(path, w)
    model = convert_keras_h5(path, output_name="p")
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node), "BN should be folded"
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.normal(size=(1, 8, 8, 2)).astype(np.float32)
    got = sess.run(None, {"input": x.transpose(0, 3, 1, 2)})[0][0]
    expected = _tf_reference(x, w)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the check is sharp: symmetric padding (a common converter bug) gives another answer
    symmetric = _tf_reference(x, w, pads=lambda n, k, s: (1, 1))
    assert np.abs(got - symmetric).max() > 1e-4


# --- the real FER2013 model against the tflite twin in the same wheel ---------------------------

def _crops(models_dir, astronaut_bgr, faces_dev_dir):
    detector = FaceDetector("short")
    images = [("astronaut", astronaut_bgr)]
    if faces_dev_dir is not None:
        for row in csv.DictReader(open(faces_dev_dir / "labels.csv")):
            images.append((row["file"], cv2.imread(str(faces_dev_dir / row["file"]))))
    crops = []
    for name, img in images:
        faces = detector.detect(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        assert faces, f"no face found in {name}"
        face = faces[choose_primary(faces, img.shape[1], img.shape[0])]
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        crop = cv2.warpAffine(grey, crop_transform(face, (64, 64), 0.2), (64, 64), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        crops.append((name, (crop.astype(np.float32) / 255.0 - 0.5) / 0.5))
    detector.close()
    return crops


def test_onnx_agrees_with_the_tflite_twin_on_real_faces(models_dir, astronaut_bgr, fer_tflite, request):
    from ai_edge_litert.interpreter import Interpreter

    try:
        faces_dev_dir = request.getfixturevalue("faces_dev")
    except pytest.skip.Exception:
        faces_dev_dir = None
    crops = _crops(models_dir, astronaut_bgr, faces_dev_dir)
    sess = ort.InferenceSession(str(models_dir / "face_fer2013.onnx"), providers=["CPUExecutionProvider"])
    interp = Interpreter(model_path=str(fer_tflite))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    worst = 0.0
    for name, x in crops:
        ours = sess.run(None, {"input": x[None, None]})[0][0]
        interp.set_tensor(inp, x[None, :, :, None])
        interp.invoke()
        ref = interp.get_tensor(out)[0]
        assert ours.argmax() == ref.argmax(), f"{name}: ONNX says {ours.argmax()}, tflite {ref.argmax()}"
        worst = max(worst, float(np.abs(ours - ref).max()))
    print(f"\nONNX vs tflite (quantised twin): {len(crops)} real face crops, same argmax on all, "
          f"max abs difference {worst:.4f}")
    # the twin is weight-quantised, so exact equality is not expected; a wrong layer gives > 0.3
    assert worst < 0.05
    assert len(crops) >= (49 if faces_dev_dir is not None else 1)


def test_unsupported_or_broken_files_are_clear_errors(tmp_path):
    from moodsic_live.errors import ModelError

    bad = tmp_path / "x.hdf5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(ModelError, match="not a readable Keras HDF5"):
        convert_keras_h5(bad)
    empty = tmp_path / "e.hdf5"
    with h5py.File(empty, "w"):
        pass
    with pytest.raises(ModelError, match="no Keras model_config"):
        convert_keras_h5(empty)


def test_crop_transform_levels_the_eyes():
    # eyes at a 20 degree roll: after the transform they must lie on one row
    import math
    rx, ry = 100.0, 100.0
    lx, ly = rx + 40 * math.cos(math.radians(20)), ry + 40 * math.sin(math.radians(20))
    face = FaceBox(80, 70, 80, 90, 0.9, ((rx, ry), (lx, ly)))
    m = crop_transform(face, (64, 64), 0.2)
    r = m @ np.array([rx, ry, 1.0])
    left = m @ np.array([lx, ly, 1.0])
    assert abs(r[1] - left[1]) < 1e-9
    assert left[0] > r[0]
