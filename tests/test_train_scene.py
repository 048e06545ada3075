"""End to end: export a tiny backbone -> train a scene expert on a FindingEmo-format set -> it beats
the constant baseline on its test split -> the app loads it with --scene-model and it changes the
fused estimate; plus the training command's progress, resumption and errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from findingemo_fixture import make_findingemo, scene_image
from moodsic_live.config import PerceiveConfig
from moodsic_live.errors import ModelError
from moodsic_live.evaluate.findingemo import evaluate_findingemo
from moodsic_live.frames import Frame
from moodsic_live.perceive.contract import load_manifest
from moodsic_live.perceive.perceiver import Perceiver
from moodsic_live.train.backbone import export_backbone
from moodsic_live.train.head import HeadConfig
from moodsic_live.train.scene import train_scene

torch.set_num_threads(1)
CFG = HeadConfig(hidden=64, max_epochs=80, patience=15, batch=32, mc_samples=16)


@pytest.fixture(scope="module")
def world(tmp_path_factory, models_dir):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    base = tmp_path_factory.mktemp("scene-train")
    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=32)
    CLIPVisionModelWithProjection(config).save_pretrained(base / "tiny-clip")
    backbone = base / "backbone.onnx"
    export_backbone("clip", base / "tiny-clip", backbone, say=lambda s: None)
    data = make_findingemo(base / "findingemo", n=320)
    lines: list[str] = []
    out = base / "models" / "scene_findingemo.onnx"
    report = train_scene(data, backbone, out, base / "cache", CFG, provider="cpu", say=lines.append)
    return {"base": base, "backbone": backbone, "data": data, "out": out, "report": report, "lines": lines,
            "models": models_dir}


def test_trained_expert_beats_the_constant_baseline_on_its_test_split(world):
    r = world["report"]
    assert r["images"] == 320 and r["missing"] == 5 and r["unreadable"] == 1
    assert sum(r["split"].values()) == 319
    model, base = r["test"]["model"], r["test"]["baseline_median"]
    for dim in ("valence", "arousal"):
        assert model[dim]["mae"] < 0.8 * base[dim]["mae"], (dim, model[dim], base[dim])
        assert model[dim]["spearman"] > 0.5
        # FindingEmo units: both scales span 6, three times the reference span
        assert model[dim]["mae_findingemo"] == pytest.approx(3 * model[dim]["mae"], rel=1e-6)
    lines = "\n".join(world["lines"])
    for said in ("FindingEmo: 320 images", "5 annotated images missing, skipped", "1 images could not be decoded",
                 "embeddings 320/320", "restored the best weights", "variance calibration, valence",
                 "use it with --scene-model"):
        assert said in lines, said


def test_one_onnx_file_with_mc_dropout_inside_and_a_calibrated_manifest(world):
    out = world["out"]
    model = onnx.load(str(out))
    assert [i.name for i in model.graph.input] == ["pixel_values"]
    assert {o.name for o in model.graph.output} >= {"va", "va_var"}
    assert sum(n.op_type == "RandomUniformLike" for n in model.graph.node) == 2
    m = load_manifest(out)
    assert m.expert == "scene" and m.input.size == (32, 32) and m.input.colour == "rgb"
    assert m.mc_dropout_samples == 0 and m.info["build"]["mc_dropout"] == {"samples": 16, "in_graph": True}
    cal = world["report"]["calibration"]
    for i, dim in enumerate(("valence", "arousal")):
        assert m.calibration.scale[i] == pytest.approx(cal[dim]["scale"])
        after = cal[dim]["validation"]["after"]
        # calibrated on validation: mean squared error / mean predicted variance close to 1
        assert 0.7 < after["ratio"] < 1.4, (dim, after)
        assert after["nll"] <= cal[dim]["validation"]["before"]["nll"] + 1e-9


def test_it_plugs_into_the_app_by_its_contract_and_changes_the_fused_estimate(world):
    rng = np.random.default_rng(5)
    # four scenes of each kind, drawn like the dataset's (the MC-dropout draws differ per call: compare means)
    happy_busy = [scene_image(3, 6, rng) for _ in range(4)]
    sad_calm = [scene_image(-3, 0, rng) for _ in range(4)]
    default = Perceiver(PerceiveConfig(provider="cpu", face_enabled=False), world["models"])
    trained = Perceiver(PerceiveConfig(provider="cpu", face_enabled=False, scene_model=world["out"]), world["models"])

    def mean(perceiver, images):
        out = [perceiver.perceive(Frame(image=im, t=0.0, index=0, still=True)).fused for im in images]
        return np.mean([[e.valence, e.arousal] for e in out], axis=0), out

    try:
        (d_hb, _), (t_hb, fused), (t_sc, _) = mean(default, happy_busy), mean(trained, happy_busy), mean(trained, sad_calm)
    finally:
        default.close()
        trained.close()
    assert np.abs(t_hb - d_hb).max() > 0.1                     # the trained expert changes the fused estimate
    assert t_hb[0] > t_sc[0] + 0.3 and t_hb[1] > t_sc[1] + 0.15
    assert all(e.valence_var > 0 and e.arousal_var > 0 for e in fused)


def test_eval_findingemo_scores_scene_face_and_fused_against_the_median(world):
    perceiver = Perceiver(PerceiveConfig(provider="cpu", scene_model=world["out"]), world["models"])
    try:
        report = evaluate_findingemo(world["data"], perceiver, "test", say=lambda s: None)
    finally:
        perceiver.close()
    assert report["evaluated"] == report["images"] == world["report"]["split"]["test"]
    assert report["face_coverage"] == 0.0 and report["face"] is None   # no faces in these scenes
    scene, base = report["scene"], report["baseline"]
    assert scene["mean_mae"] < 0.8 * base["mean_mae"]
    assert report["fused"]["mean_mae"] < base["mean_mae"]
    assert base["valence"]["pearson"] is None   # a constant has no correlation
    # same numbers as the trainer's own test-split check (same split, same model; MC noise only)
    assert scene["valence"]["mae"] == pytest.approx(world["report"]["test"]["model"]["valence"]["mae"], abs=0.03)


def test_training_cli_reuses_cached_embeddings_resumes_its_saved_state_and_says_bad_input_in_one_line(world, tmp_path):
    data, backbone = world["data"], world["backbone"]
    out = tmp_path / "again.onnx"
    cmd = [sys.executable, "-m", "moodsic_live", "train", "scene", "--findingemo", str(data), "--backbone",
           str(backbone), "--out", str(out), "--cache-dir", str(world["base"] / "cache"), "--epochs", "5",
           "--provider", "cpu"]
    # the embeddings are cached and the finished state resumes: nothing is recomputed
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "embeddings:" not in first.stderr                    # every embedding came from the cache
    assert "starting afresh" in first.stderr                    # 5 epochs is another setting than the fixture's
    again = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "resuming" in again.stderr and "after epoch" in again.stderr
    assert json.loads(again.stdout)["epochs"] == 5

    wrong = tmp_path / "not-findingemo"
    wrong.mkdir()
    bad = subprocess.run(cmd[:6] + [str(wrong)] + cmd[7:], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "no FindingEmo annotation file" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_a_backbone_whose_output_size_does_not_match_its_manifest_is_refused(world, tmp_path):
    backbone = tmp_path / "b.onnx"
    shutil.copy(world["backbone"], backbone)
    side = json.loads(world["backbone"].with_suffix(".json").read_text())
    side["output"]["size"] = side["output"]["size"] + 1
    backbone.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(ModelError, match=r"gives 32-d embeddings but its manifest says 33"):
        train_scene(world["data"], backbone, tmp_path / "x.onnx", tmp_path / "cache", CFG, say=lambda s: None)


def test_cached_embeddings_survive_a_cut_short_shard(world, tmp_path):
    from moodsic_live.train.embeddings import EmbeddingCache

    cache = EmbeddingCache(world["base"] / "cache", json.loads(world["backbone"].with_suffix(".json").read_text())["sha256"])
    shards = sorted(cache.dir.glob("shard-*.npz"))
    assert shards and sum(len(np.load(s)["paths"]) for s in shards) == 320
    broken = tmp_path / "cache"
    shutil.copytree(world["base"] / "cache", broken)
    victim = sorted((broken / cache.dir.name).glob("shard-*.npz"))[-1]
    victim.write_bytes(victim.read_bytes()[:100])
    known = EmbeddingCache(broken, cache.dir.name.split("-", 1)[1]).load()
    assert len(known) == 320 - len(np.load(shards[-1])["paths"]) and not victim.exists()


def test_eval_and_export_commands(world, tmp_path):
    from conftest import run_cli
    from transformers import Dinov2Config, Dinov2Model

    out = run_cli("eval", "findingemo", str(world["data"]), "--split", "test", "--limit", "12", "--no-face",
                  "--scene-model", str(world["out"]), "--provider", "cpu", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["evaluated"] == 12 and report["face"] is None and report["scene"]["n"] == 12
    table = run_cli("eval", "findingemo", str(world["data"]), "--limit", "12", "--no-face", "--provider", "cpu",
                    "--scene-model", str(world["out"]))
    assert table.returncode == 0 and "| scene only | 12 |" in table.stdout and "constant median" in table.stdout

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             image_size=32, patch_size=8)).save_pretrained(tmp_path / "dino")
    made = run_cli("models", "export-backbone", "--kind", "dinov2", "--from", str(tmp_path / "dino"),
                   "--out", str(tmp_path / "dino.onnx"))
    assert made.returncode == 0, made.stderr
    assert json.loads((tmp_path / "dino.json").read_text())["output"]["size"] == 32
    missing = run_cli("models", "export-backbone", "--kind", "clip", "--from", str(tmp_path / "nothing-here"),
                      "--out", str(tmp_path / "x.onnx"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and "nothing-here" in missing.stderr


def test_ctrl_c_during_training_is_one_line_and_exit_130(monkeypatch, tmp_path, capsys):
    import argparse

    from moodsic_live import cli_learn
    from moodsic_live.config import Config

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("moodsic_live.train.scene.train_scene", interrupted)
    said: list[str] = []
    args = argparse.Namespace(epochs=5, patience=3, mc_samples=8, out=tmp_path / "x.onnx", findingemo=tmp_path,
                              backbone=tmp_path / "b.onnx", annotations=None, provider="cpu", restart=False, json=False)
    assert cli_learn.cmd_train(args, Config(), said.append) == 130
    assert said == ["interrupted: every finished epoch and embedding shard is saved; run the same command to resume"]
