"""The expert contract: an ONNX file plus a small JSON manifest beside it.

A user can drop in a stronger model with ``--face-model PATH.onnx`` or
``--scene-model PATH.onnx``; the manifest ``PATH.json`` says how to feed it and how to
read it. Example (an AffectNet-style face model with V/A outputs and MC dropout)::

    {
      "format": "moodsic-expert/1",
      "name": "my_face_model",
      "expert": "face",                       # or "scene"
      "input": {"name": "input", "layout": "NCHW", "size": [112, 112],
                "colour": "rgb",              # gray | rgb | bgr
                "scale": 0.00392156862745098, # applied first: x * scale
                "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
      "outputs": {
        "valence_arousal": {"name": "va", "scale": "affectnet"},   # [N, 2], any known scale
        "variance": {"name": "va_var"},                            # optional [N, 2], same units
        "probabilities": {"name": "logits", "softmax": true,        # optional [N, K]
                          "labels": ["neutral", "happiness", ...],
                          "positions": [[0.0, 0.0], [0.81, 0.61], ...],   # V/A per class
                          "spreads": [[0.2, 0.2], [0.21, 0.26], ...]}     # optional SD per class
      },
      "mc_dropout_samples": 8,                # >0: Dropout(training_mode=True) in the graph
      "variance_calibration": {"valence": [1.0, 0.0], "arousal": [1.0, 0.0]}  # scale, floor
    }

At least one of ``valence_arousal`` and ``probabilities`` is required. Scene models get
the whole frame (resized to ``size``); face models get the aligned face crop. The
built-in scene model uses ``"input": {"kind": "scene_statistics", ...}`` (see
``moodsic_live/models/scene_graph.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from moodsic_live.errors import ModelError
from moodsic_live.scales import SCALES

FORMAT = "moodsic-expert/1"


@dataclass(frozen=True)
class InputSpec:
    name: str
    size: tuple[int, int]  # (H, W)
    colour: Literal["gray", "rgb", "bgr"]
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    kind: Literal["image", "scene_statistics"] = "image"

    @property
    def channels(self) -> int:
        return 1 if self.colour == "gray" else 3


@dataclass(frozen=True)
class ProbabilitiesSpec:
    name: str
    labels: tuple[str, ...]
    positions: np.ndarray  # [K, 2] valence, arousal in reference space
    spreads: np.ndarray  # [K, 2] standard deviations in reference space
    softmax: bool = False


@dataclass(frozen=True)
class VarianceCalibration:
    """``calibrated variance = scale * raw variance + floor``, per dimension."""

    scale: tuple[float, float] = (1.0, 1.0)
    floor: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Manifest:
    name: str
    expert: Literal["face", "scene"]
    input: InputSpec
    probabilities: ProbabilitiesSpec | None = None
    va_output: str | None = None
    va_scale: str = "reference"
    variance_output: str | None = None
    mc_dropout_samples: int = 0
    calibration: VarianceCalibration = field(default_factory=VarianceCalibration)
    extra_outputs: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)


def manifest_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def _need(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise ModelError(f"{where}: missing {key!r}")
    return d[key]


def parse_manifest(data: dict, where: str) -> Manifest:
    if data.get("format") != FORMAT:
        raise ModelError(f"{where}: 'format' must be {FORMAT!r}, found {data.get('format')!r}")
    expert = _need(data, "expert", where)
    if expert not in ("face", "scene"):
        raise ModelError(f"{where}: 'expert' must be 'face' or 'scene', found {expert!r}")
    raw_in = _need(data, "input", where)
    try:
        size = tuple(int(v) for v in _need(raw_in, "size", where + " input"))
        colour = raw_in.get("colour", "rgb")
        inp = InputSpec(
            name=str(_need(raw_in, "name", where + " input")), size=size, colour=colour,
            layout=raw_in.get("layout", "NCHW"), scale=float(raw_in.get("scale", 1.0 / 255.0)),
            mean=tuple(float(v) for v in raw_in.get("mean", [0.0])),
            std=tuple(float(v) for v in raw_in.get("std", [1.0])), kind=raw_in.get("kind", "image"))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: bad 'input' section ({exc})") from None
    if len(size) != 2 or min(size) <= 0:
        raise ModelError(f"{where}: input 'size' must be [height, width], found {raw_in.get('size')}")
    if colour not in ("gray", "rgb", "bgr"):
        raise ModelError(f"{where}: input 'colour' must be gray, rgb or bgr, found {colour!r}")
    if inp.layout not in ("NCHW", "NHWC"):
        raise ModelError(f"{where}: input 'layout' must be NCHW or NHWC, found {inp.layout!r}")
    if inp.kind not in ("image", "scene_statistics"):
        raise ModelError(f"{where}: input 'kind' must be image or scene_statistics, found {inp.kind!r}")
    for vec, label in ((inp.mean, "mean"), (inp.std, "std")):
        if len(vec) not in (1, inp.channels):
            raise ModelError(f"{where}: input {label!r} has {len(vec)} values for {inp.channels} channel(s)")
    if any(s == 0 for s in inp.std):
        raise ModelError(f"{where}: input 'std' must not contain 0")

    outs = _need(data, "outputs", where)
    probs = None
    if "probabilities" in outs:
        p = outs["probabilities"]
        labels = tuple(str(v) for v in _need(p, "labels", where + " probabilities"))
        pos = np.asarray(_need(p, "positions", where + " probabilities"), dtype=np.float64)
        if pos.shape != (len(labels), 2):
            raise ModelError(f"{where}: probabilities 'positions' must be one [valence, arousal] per label "
                             f"({len(labels)} labels, got shape {list(pos.shape)})")
        if np.abs(pos).max(initial=0) > 1.0:
            raise ModelError(f"{where}: probabilities 'positions' must lie in [-1, 1]")
        spreads = np.asarray(p.get("spreads", np.zeros_like(pos)), dtype=np.float64)
        if spreads.shape != pos.shape or (spreads < 0).any():
            raise ModelError(f"{where}: probabilities 'spreads' must be one non-negative [sd_v, sd_a] per label")
        probs = ProbabilitiesSpec(str(_need(p, "name", where + " probabilities")), labels, pos, spreads,
                                  bool(p.get("softmax", False)))
    va = outs.get("valence_arousal")
    if probs is None and va is None:
        raise ModelError(f"{where}: outputs need 'valence_arousal' and/or 'probabilities'")
    va_scale = (va or {}).get("scale", "reference")
    if va_scale not in SCALES:
        raise ModelError(f"{where}: valence_arousal 'scale' {va_scale!r} is unknown (known: {', '.join(SCALES)})")
    cal = data.get("variance_calibration", {})
    try:
        cv, ca = cal.get("valence", [1.0, 0.0]), cal.get("arousal", [1.0, 0.0])
        calibration = VarianceCalibration((float(cv[0]), float(ca[0])), (float(cv[1]), float(ca[1])))
    except (TypeError, ValueError, IndexError):
        raise ModelError(f"{where}: 'variance_calibration' must map valence/arousal to [scale, floor]") from None
    if min(calibration.scale) <= 0 or min(calibration.floor) < 0:
        raise ModelError(f"{where}: variance calibration needs scale > 0 and floor >= 0")
    mc = int(data.get("mc_dropout_samples", 0))
    if not 0 <= mc <= 64:
        raise ModelError(f"{where}: 'mc_dropout_samples' must be between 0 and 64")
    extra = tuple(str(v) for v in outs.get("extra", []))
    return Manifest(name=str(data.get("name", where)), expert=expert, input=inp, probabilities=probs,
                    va_output=(va or {}).get("name"), va_scale=va_scale,
                    variance_output=(outs.get("variance") or {}).get("name"),
                    mc_dropout_samples=mc, calibration=calibration, extra_outputs=extra,
                    info={k: data[k] for k in ("source", "license", "build", "citation") if k in data})


def load_manifest(model_path: Path) -> Manifest:
    path = manifest_path(model_path)
    if not path.is_file():
        raise ModelError(f"model {model_path} has no manifest {path.name} beside it; "
                         "write one (see docs/models.md) or rebuild with `moodsic-live models build`")
    return parse_manifest(read_json_object(path, "manifest"), str(path))


def read_json_object(path: Path, what: str = "", fix: str = "") -> dict:
    """The JSON object in ``path``, or a :class:`ModelError` naming ``what`` the file is and ``fix``."""
    label, tail = f"{what} {path}".strip(), f"; {fix}" if fix else ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{label} is not valid JSON ({exc}){tail}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{label} must be a JSON object{tail}")
    return data


def check_session(session, manifest: Manifest, model_path: Path) -> None:
    """Compare the ONNX graph's inputs/outputs with the manifest; name what does not match."""
    where = f"model {model_path.name}"
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    spec = manifest.input
    if spec.name not in inputs:
        raise ModelError(f"{where}: manifest input {spec.name!r} is not in the graph (graph inputs: "
                         f"{', '.join(inputs)})")
    if spec.kind == "image":
        if len(inputs) != 1:
            raise ModelError(f"{where}: an image expert must have exactly one input, graph has {len(inputs)}")
        shape = inputs[spec.name].shape
        if len(shape) != 4:
            raise ModelError(f"{where}: input {spec.name!r} has rank {len(shape)}; expected 4 ({spec.layout})")
        expected = ([spec.channels, *spec.size] if spec.layout == "NCHW" else [*spec.size, spec.channels])
        for got, want in zip(shape[1:], expected):
            if isinstance(got, int) and got != want:
                raise ModelError(f"{where}: input {spec.name!r} has shape {shape}, manifest says "
                                 f"{spec.layout} {expected} (size {list(spec.size)}, {spec.colour})")
    needed = [n for n in (manifest.va_output, manifest.variance_output) if n]
    if manifest.probabilities:
        needed.append(manifest.probabilities.name)
    for name in needed + list(manifest.extra_outputs):
        if name not in outputs:
            raise ModelError(f"{where}: manifest output {name!r} is not in the graph (graph outputs: "
                             f"{', '.join(outputs)})")
    for name in (manifest.va_output, manifest.variance_output):
        if name:
            last = outputs[name].shape[-1]
            if isinstance(last, int) and last != 2:
                raise ModelError(f"{where}: output {name!r} must end in 2 values (valence, arousal), has {last}")
    if manifest.probabilities:
        last = outputs[manifest.probabilities.name].shape[-1]
        k = len(manifest.probabilities.labels)
        if isinstance(last, int) and last != k:
            raise ModelError(f"{where}: output {manifest.probabilities.name!r} has {last} classes, "
                             f"manifest lists {k} labels")


def write_manifest(path: Path, data: dict) -> None:
    """Write JSON atomically (a half-written manifest must never be left behind)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)
