"""export-backbone: tiny randomly initialised CLIP / DINOv2 checkpoints, exported and run on real photos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
from skimage import data
from transformers import (CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection, Dinov2Config,
                          Dinov2Model)

from moodsic_live.errors import InputError, ModelError
from moodsic_live.perceive.contract import FORMAT as EXPERT_FORMAT
from moodsic_live.perceive.contract import parse_manifest
from moodsic_live.train.backbone import BackboneManifest, export_backbone, load_backbone_manifest

torch.set_num_threads(1)

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
            patch_size=8)


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _batch(manifest: BackboneManifest, images_rgb: list[np.ndarray]) -> np.ndarray:
    """The documented contract: whole image resized to H x W, x * scale, (x - mean) / std, NCHW."""
    h, w = manifest.size
    mean, std = np.asarray(manifest.mean, np.float32), np.asarray(manifest.std, np.float32)
    out = [(cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) * manifest.scale - mean) / std
           for im in images_rgb]
    return np.ascontiguousarray(np.stack(out).transpose(0, 3, 1, 2), dtype=np.float32)


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [data.astronaut(), data.coffee(), data.chelsea()]  # RGB uint8


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY, projection_dim=16)).save_pretrained(root / "clip")
    Dinov2Model(Dinov2Config(**TINY)).save_pretrained(root / "dinov2")
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, vocab_size=64,
                bos_token_id=0, eos_token_id=1, pad_token_id=1)
    CLIPModel(CLIPConfig(text_config=text, vision_config=TINY, projection_dim=24)).save_pretrained(root / "clip_full")
    return {"clip": root / "clip", "dinov2": root / "dinov2", "clip_full": root / "clip_full"}


@pytest.fixture(scope="module")
def exported(weights, tmp_path_factory) -> dict[str, tuple[Path, dict, list[str]]]:
    root = tmp_path_factory.mktemp("onnx")
    done = {}
    for kind in ("clip", "dinov2"):
        lines: list[str] = []
        out = root / f"{kind}.onnx"
        done[kind] = (out, export_backbone(kind, weights[kind], out, say=lines.append), lines)
    return done


def _torch_embedding(kind: str, source: Path, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        if kind == "clip":
            return CLIPVisionModelWithProjection.from_pretrained(source).eval()(
                pixel_values=torch.from_numpy(x)).image_embeds.numpy()
        return Dinov2Model.from_pretrained(source).eval()(pixel_values=torch.from_numpy(x)).pooler_output.numpy()


@pytest.mark.parametrize("kind,dim", [("clip", 16), ("dinov2", 32)])
def test_sidecar_parses_and_feeds_an_expert_manifest(exported, weights, kind, dim):
    out, manifest, lines = exported[kind]
    m = load_backbone_manifest(out)
    assert (m.kind, m.dim, m.size, m.colour, m.input_name, m.output_name) == (
        kind, dim, (32, 32), "rgb", "pixel_values", "embedding")
    assert m.scale == pytest.approx(1 / 255) and len(m.mean) == len(m.std) == 3
    assert m.source == str(weights[kind]) and len(m.sha256) == 64
    on_disk = json.loads(out.with_suffix(".json").read_text())
    assert on_disk == manifest and on_disk["format"] == "moodsic-backbone/1"
    assert on_disk["output"] == {"name": "embedding", "size": dim} and on_disk["build"]["opset"] == 17
    assert m.input_section() == on_disk["input"]
    # The scene-model trainer copies the input section verbatim into an expert manifest.
    expert = {"format": EXPERT_FORMAT, "expert": "scene", "input": on_disk["input"],
              "outputs": {"valence_arousal": {"name": "va"}}}
    spec = parse_manifest(expert, "expert").input
    assert (spec.kind, spec.layout, spec.size, spec.colour, spec.mean, spec.std) == (
        "image", "NCHW", (32, 32), "rgb", m.mean, m.std)
    assert not list(out.parent.glob("*.tmp"))
    assert len(lines) == 4 and str(out) in lines[-1] and "MB" in lines[-1] and f"dim {dim}" in lines[-1]


@pytest.mark.parametrize("kind", ["clip", "dinov2"])
def test_onnx_matches_torch_on_real_photos_with_a_free_batch_size(exported, weights, photos, kind):
    out, _, _ = exported[kind]
    manifest = load_backbone_manifest(out)
    session = _session(out)
    assert [i.name for i in session.get_inputs()] == ["pixel_values"]
    assert session.get_inputs()[0].shape[1:] == [3, 32, 32]
    assert [o.name for o in session.get_outputs()] == ["embedding"]
    x = _batch(manifest, photos)
    got = session.run(["embedding"], {"pixel_values": x})[0]
    want = _torch_embedding(kind, weights[kind], x)
    assert got.shape == (3, manifest.dim) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    one = session.run(["embedding"], {"pixel_values": x[1:2]})[0]
    np.testing.assert_allclose(one, got[1:2], rtol=0, atol=1e-5)
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(got[a] - got[b]).max() > 1e-3, f"photos {a} and {b} give the same embedding"


def test_a_full_clip_model_exports_its_vision_tower_and_projection(weights, photos, tmp_path):
    out = tmp_path / "full.onnx"
    manifest = export_backbone("clip", weights["clip_full"], out, say=lambda _: None)
    assert manifest["output"]["size"] == 24  # CLIPConfig.projection_dim, not the vision config's default 512
    x = _batch(load_backbone_manifest(out), photos)
    with torch.no_grad():
        want = CLIPModel.from_pretrained(weights["clip_full"]).eval().get_image_features(pixel_values=torch.from_numpy(x))
    want = want if isinstance(want, torch.Tensor) else want.pooler_output
    np.testing.assert_allclose(_session(out).run(None, {"pixel_values": x})[0], want.numpy(), rtol=0, atol=1e-4)


def test_preprocessor_config_sets_mean_std_and_size_and_size_overrides(weights, tmp_path):
    src = tmp_path / "dino"
    src.mkdir()
    for f in weights["dinov2"].iterdir():
        (src / f.name).write_bytes(f.read_bytes())
    (src / "preprocessor_config.json").write_text(json.dumps({
        "do_center_crop": True, "crop_size": {"height": 40, "width": 40}, "size": {"shortest_edge": 48},
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}))
    m = export_backbone("dinov2", src, tmp_path / "pre.onnx", say=lambda _: None)
    assert m["input"]["size"] == [40, 40] and m["input"]["mean"] == [0.5] * 3 and m["input"]["std"] == [0.25] * 3
    m = export_backbone("dinov2", src, tmp_path / "big.onnx", size=48, say=lambda _: None)
    assert m["input"]["size"] == [48, 48] and _session(tmp_path / "big.onnx").get_inputs()[0].shape[2:] == [48, 48]
    with pytest.raises(InputError, match="multiple of the patch size"):
        export_backbone("dinov2", src, tmp_path / "odd.onnx", size=44, say=lambda _: None)


def test_missing_source_is_a_one_line_model_error_naming_it(tmp_path):
    missing = tmp_path / "no_such_weights"
    with pytest.raises(ModelError) as err:
        export_backbone("clip", missing, tmp_path / "x.onnx", say=lambda _: None)
    msg = str(err.value)
    assert str(missing) in msg and "nothing is downloaded" in msg and "\n" not in msg
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.json").exists()


def test_bad_arguments_are_refused(weights, tmp_path):
    with pytest.raises(InputError, match="unknown backbone kind 'resnet'"):
        export_backbone("resnet", weights["clip"], tmp_path / "x.onnx", say=lambda _: None)
    with pytest.raises(ModelError, match="--kind dinov2"):
        export_backbone("clip", weights["dinov2"], tmp_path / "x.onnx", say=lambda _: None)
    with pytest.raises(InputError, match=r"must end in \.onnx"):
        export_backbone("clip", weights["clip"], tmp_path / "x.json", say=lambda _: None)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(InputError, match="not writable"):
        export_backbone("clip", weights["clip"], blocker / "x.onnx", say=lambda _: None)


def test_without_torch_it_names_the_training_extra(weights, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(ModelError, match=r"pip install -e '\.\[train\]'"):
        export_backbone("clip", weights["clip"], tmp_path / "x.onnx", say=lambda _: None)


def test_missing_corrupt_or_stale_sidecars_are_model_errors(exported, tmp_path):
    src, _, _ = exported["dinov2"]
    onnx = tmp_path / "b.onnx"
    onnx.write_bytes(src.read_bytes())
    sidecar = onnx.with_suffix(".json")
    good = json.loads(src.with_suffix(".json").read_text())

    with pytest.raises(ModelError, match="has no sidecar b.json"):
        load_backbone_manifest(onnx)
    sidecar.write_text('{"format": "moodsic-backbone/1", ')
    with pytest.raises(ModelError, match="not valid JSON") as err:
        load_backbone_manifest(onnx)
    assert str(sidecar) in str(err.value) and "export-backbone" in str(err.value)
    for change, pattern in [({"format": "other/1"}, "'format'"), ({"kind": "vit"}, "'kind'"),
                            ({"input": {**good["input"], "colour": "purple"}}, "colour"),
                            ({"input": {**good["input"], "mean": [0.5, 0.5]}}, "'mean'"),
                            ({"output": {"name": "embedding", "size": 0}}, "positive integer"),
                            ({"sha256": "abc"}, "sha256")]:
        sidecar.write_text(json.dumps({**good, **change}))
        with pytest.raises(ModelError, match=pattern):
            load_backbone_manifest(onnx)
    sidecar.write_text(json.dumps(good))
    assert load_backbone_manifest(onnx).dim == 32
    onnx.write_bytes(src.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="does not match its sidecar"):
        load_backbone_manifest(onnx)
    assert load_backbone_manifest(onnx, verify=False).dim == 32
