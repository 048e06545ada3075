"""The expert contract: a user's own ONNX model with a manifest plugs in and just works."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import DEMO, run_cli
from moodsic_live.errors import ModelError
from moodsic_live.frames import Frame
from moodsic_live.perceive.contract import FORMAT
from moodsic_live.perceive.face_expert import FaceExpert
from moodsic_live.perceive.runtime import InferenceRuntime


def build_va_face_model(path: Path, size: int = 48, ratio: float = 0.3) -> Path:
    """A tiny RGB face model: mean of the crop -> V/A, through Dropout(training_mode=True)."""
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["lin"]),
        helper.make_node("Dropout", ["lin", "ratio", "training"], ["dropped"]),
        helper.make_node("Tanh", ["dropped"], ["va"]),
    ]
    inits = [numpy_helper.from_array(np.array([[0.5, -0.2], [0.3, 0.4], [-0.1, 0.6]], np.float32), "w"),
             numpy_helper.from_array(np.array(ratio, np.float32), "ratio"),
             numpy_helper.from_array(np.array(True), "training")]
    graph = helper.make_graph(nodes, "va_face", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                               ["N", 3, size, size])],
                              [helper.make_tensor_value_info("va", TensorProto.FLOAT, ["N", 2])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    manifest = {"format": FORMAT, "name": "test_va_face", "expert": "face",
                "input": {"name": "input", "layout": "NCHW", "size": [size, size], "colour": "rgb",
                          "scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
                "outputs": {"valence_arousal": {"name": "va", "scale": "affectnet"}},
                "mc_dropout_samples": 6,
                "variance_calibration": {"valence": [1.0, 0.01], "arousal": [1.0, 0.01]}}
    path.with_suffix(".json").write_text(json.dumps(manifest))
    return path


def test_plug_in_face_model_with_mc_dropout(models_dir, astronaut_bgr, tmp_path):
    from moodsic_live.config import PerceiveConfig
    from moodsic_live.perceive.perceiver import Perceiver

    model = build_va_face_model(tmp_path / "va_face.onnx")
    p = Perceiver(PerceiveConfig(face_model=model), models_dir)
    try:
        out = p.perceive(Frame(astronaut_bgr, 0.0, still=True))
    finally:
        p.close()
    assert out.face is not None and out.face.probabilities is None
    # MC dropout (6 samples x 8 augmentations in one call) gives a real spread on top of the floor
    assert out.face.estimate.valence_var > 0.01 + 1e-4
    assert -1 <= out.face.estimate.valence <= 1


def test_plug_in_via_cli(models_dir, tmp_path):
    model = build_va_face_model(tmp_path / "va_face.onnx")
    r = run_cli("perceive", "--json", "--face-model", str(model), str(DEMO / "astronaut.jpg"))
    assert r.returncode == 0, r.stderr
    line = json.loads(r.stdout.splitlines()[0])
    assert line["face"]["probabilities"] is None and line["faces"] == 1


@pytest.mark.parametrize("edit,match", [
    (lambda m: m["input"].update(size=[64, 64]), r"input 'input' has shape .* manifest says NCHW \[3, 64, 64\]"),
    (lambda m: m["input"].update(name="image"), "manifest input 'image' is not in the graph"),
    (lambda m: m["outputs"]["valence_arousal"].update(name="valence"), "output 'valence' is not in the graph"),
    (lambda m: m.update(expert="scene"), "is a scene expert"),
    (lambda m: m["outputs"]["valence_arousal"].update(scale="likert"), "'scale' 'likert' is unknown"),
    (lambda m: m.update(format="v0"), "'format' must be"),
])
def test_wrong_manifest_names_what_does_not_match(tmp_path, edit, match):
    model = build_va_face_model(tmp_path / "m.onnx")
    manifest = json.loads(model.with_suffix(".json").read_text())
    edit(manifest)
    model.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=match):
        FaceExpert(InferenceRuntime("cpu"), model)


def test_missing_manifest_and_corrupt_model(tmp_path):
    model = build_va_face_model(tmp_path / "m.onnx")
    lone = tmp_path / "lone.onnx"
    shutil.copy(model, lone)
    with pytest.raises(ModelError, match="has no manifest lone.json"):
        FaceExpert(InferenceRuntime("cpu"), lone)
    model.write_bytes(model.read_bytes()[:200])
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        FaceExpert(InferenceRuntime("cpu"), model)


def test_probability_model_positions_must_fit_labels(tmp_path):
    from moodsic_live.perceive.contract import parse_manifest

    bad = {"format": FORMAT, "expert": "face", "input": {"name": "x", "size": [64, 64], "colour": "gray"},
           "outputs": {"probabilities": {"name": "p", "labels": ["a", "b"], "positions": [[0, 0]]}}}
    with pytest.raises(ModelError, match="one \\[valence, arousal\\] per label"):
        parse_manifest(bad, "m.json")
