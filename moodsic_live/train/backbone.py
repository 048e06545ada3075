"""Export an image backbone (CLIP or DINOv2 weights already on disk) to ONNX.

``moodsic-live models export-backbone --kind clip|dinov2 --from PATH_OR_NAME --out FILE.onnx``
writes ``FILE.onnx`` and its sidecar ``FILE.json`` (format ``moodsic-backbone/1``). Nothing
is downloaded: ``--from`` is a Hugging Face model directory or a name already in the cache.

Input contract: one input ``pixel_values``, float32 ``[N, 3, H, W]`` (N dynamic, H and W
fixed): the whole image in RGB, resized to H x W without cropping, then ``x / 255`` and
``(x - mean) / std`` per channel. One output ``embedding``, float32 ``[N, D]``: CLIP's
projected ``image_embeds`` or DINOv2's ``pooler_output`` (the layer-normed CLS token).
The sidecar's ``"input"`` section is an expert manifest's (``perceive/contract.py``).
H x W is ``size`` if given, else the preprocessor's crop size, else the config's image size;
mean and std come from ``preprocessor_config.json`` when there is one.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moodsic_live.errors import InputError, ModelError
from moodsic_live.models.sources import sha256_file
from moodsic_live.perceive.contract import FORMAT as EXPERT_FORMAT
from moodsic_live.perceive.contract import parse_manifest, read_json_object, write_manifest

FORMAT = "moodsic-backbone/1"
KINDS = ("clip", "dinov2")
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "embedding"
SCALE = 1.0 / 255.0
DEFAULT_MEAN = {"clip": (0.48145466, 0.4578275, 0.40821073), "dinov2": (0.485, 0.456, 0.406)}
DEFAULT_STD = {"clip": (0.26862954, 0.26130258, 0.27577711), "dinov2": (0.229, 0.224, 0.225)}
MODEL_TYPES = {"clip": ("clip", "clip_vision_model"), "dinov2": ("dinov2",)}
ONNX_LIMIT = 2 * 1024**3 - 64 * 1024**2  # one protobuf file; leave room for the graph itself
TOLERANCE = 1e-4  # max |onnx - torch|, relative to max(1, max |torch|)
EXPORT_HINT = "moodsic-live models export-backbone --kind clip|dinov2 --from WEIGHTS --out"


@dataclass(frozen=True)
class BackboneManifest:
    kind: str
    input_name: str
    size: tuple[int, int]  # (H, W)
    colour: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output_name: str
    dim: int
    source: str
    sha256: str

    def input_section(self) -> dict[str, Any]:
        """The ``"input"`` section of an expert manifest fed by this backbone."""
        return {"name": self.input_name, "layout": "NCHW", "size": list(self.size), "colour": self.colour,
                "scale": self.scale, "mean": list(self.mean), "std": list(self.std)}


def sidecar_path(onnx_path: Path) -> Path:
    return Path(onnx_path).with_suffix(".json")


def _import_train() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError:
        raise ModelError("export-backbone needs the training extra: pip install -e '.[train]'") from None
    return torch, transformers


@contextlib.contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """Silence transformers' load report and progress bars; restore them afterwards."""
    logging = transformers.utils.logging
    verbosity, bar = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bar:
            logging.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_out(out: Path) -> Path:
    """Refuse an ``out`` that cannot be written, before any slow work (its folder is made later)."""
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise InputError(f"--out {out} must end in .onnx (its manifest goes beside it as {out.stem}.json)")
    if out.is_dir():
        raise InputError(f"--out {out} is a directory; give a file name ending in .onnx")
    existing = out.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"directory {existing} is not writable, so {out} cannot be written; "
                         "choose a writable --out")
    return out


def _pair(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    raise ModelError(f"model config has an unusable {what} {value!r}")


def _load(kind: str, source: str, torch: Any, transformers: Any) -> Any:
    """The model in eval mode, float32, eager attention; every weight from ``source``."""
    from transformers import AutoConfig, CLIPVisionModelWithProjection, Dinov2Model

    def unloadable(exc: BaseException) -> ModelError:
        if Path(source).exists():
            return ModelError(f"{kind} weights {source} cannot be loaded ({_first_line(exc)}); give a Hugging Face "
                              "model directory with config.json and the weights (nothing is downloaded)")
        return ModelError(f"{kind} weights {source} are neither a directory on disk nor a model in the local "
                          "Hugging Face cache; put the weights on disk first (nothing is downloaded)")

    try:
        with _quiet(transformers):
            config = AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise unloadable(exc) from None
    model_type = getattr(config, "model_type", None)
    if model_type not in MODEL_TYPES[kind]:
        other = next((k for k, types in MODEL_TYPES.items() if model_type in types), None)
        fix = f"use --kind {other}" if other else f"give {kind} weights"
        raise ModelError(f"{source} holds a {model_type!r} model, not {kind}; {fix}")
    if model_type == "clip":  # a full CLIPModel: its vision tower and visual projection
        vision = config.vision_config
        vision.projection_dim = config.projection_dim
        config = vision
    cls = CLIPVisionModelWithProjection if kind == "clip" else Dinov2Model
    try:
        with _quiet(transformers):
            model, info = cls.from_pretrained(source, config=config, local_files_only=True, dtype=torch.float32,
                                              attn_implementation="eager", output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise unloadable(exc) from None
    except RuntimeError as exc:  # e.g. a weight of the wrong shape
        raise ModelError(f"{kind} weights {source} do not fit their config ({_first_line(exc)})") from None
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        whole = "CLIPVisionModelWithProjection or CLIPModel" if kind == "clip" else "Dinov2Model"
        raise ModelError(f"{kind} weights {source} lack {len(missing)} tensor(s) ({shown}); "
                         f"give a complete {whole} checkpoint")
    return model.eval()


def _read_preprocessor(source: str) -> dict[str, Any] | None:
    path = Path(source)
    if path.is_dir():
        found = path / "preprocessor_config.json"
        if not found.is_file():
            return None
    else:
        from transformers.utils import cached_file

        try:
            name = cached_file(source, "preprocessor_config.json", local_files_only=True,
                               _raise_exceptions_for_missing_entries=False,
                               _raise_exceptions_for_connection_errors=False)
        except (OSError, ValueError):
            return None
        if not name:
            return None
        found = Path(name)
    return read_json_object(found, fix="fix or delete it")


def _preprocessor_size(pre: dict[str, Any]) -> tuple[int, int] | None:
    candidates = [pre.get("crop_size")] if pre.get("do_center_crop", True) else []
    for value in candidates + [pre.get("size")]:
        if isinstance(value, int):
            return value, value
        if isinstance(value, dict):
            if "height" in value and "width" in value:
                return int(value["height"]), int(value["width"])
            if "shortest_edge" in value:
                return int(value["shortest_edge"]), int(value["shortest_edge"])
    return None


def _preprocessor_vector(pre: dict[str, Any], key: str, default: tuple[float, ...],
                         source: str) -> tuple[float, float, float]:
    value = pre.get(key, default)
    try:
        vec = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        vec = ()
    if len(vec) != 3 or (key == "image_std" and min(abs(v) for v in vec) == 0):
        raise ModelError(f"{source}: preprocessor_config.json {key} must be 3 numbers (non-zero for std), "
                         f"found {value!r}")
    return vec  # type: ignore[return-value]


def _input_size(config: Any, pre: dict[str, Any] | None, size: int | None) -> tuple[int, int]:
    patch = _pair(config.patch_size, "patch_size")
    if size is not None:
        hw, error = (int(size), int(size)), InputError
    else:
        hw = (_preprocessor_size(pre) if pre else None) or _pair(config.image_size, "image_size")
        error = ModelError
    for side, p in zip(hw, patch):
        if side < p or side % p:
            raise error(f"input size {hw[0]}x{hw[1]} is not a multiple of the patch size {patch[0]}x{patch[1]}; "
                        f"pass --size {max(p, round(side / p) * p)}")
    return hw


def _wrapper(torch: Any, model: Any, kind: str, interpolate: bool) -> Any:
    class Backbone(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values):  # [N, 3, H, W] -> [N, D]
            if kind == "clip":
                return self.model(pixel_values=pixel_values, interpolate_pos_encoding=interpolate).image_embeds
            return self.model(pixel_values=pixel_values).pooler_output

    return Backbone().eval()


def _verify(path: Path, wrapper: Any, torch: Any, size: tuple[int, int]) -> int:
    """Run the ONNX file and the torch model on one random batch; return the embedding size."""
    import onnxruntime as ort

    from moodsic_live.privacy import disable_telemetry_events

    disable_telemetry_events(ort)
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"the exported backbone does not load in onnxruntime ({_first_line(exc)})") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = inputs[0].shape if len(inputs) == 1 else None
    if shape is None or inputs[0].name != INPUT_NAME or list(shape[1:]) != [3, *size] or isinstance(shape[0], int):
        raise ModelError(f"the exported backbone has inputs {[(i.name, i.shape) for i in inputs]}, "
                         f"expected {INPUT_NAME} [N, 3, {size[0]}, {size[1]}]")
    if [o.name for o in outputs] != [OUTPUT_NAME]:
        raise ModelError(f"the exported backbone has outputs {[o.name for o in outputs]}, expected [{OUTPUT_NAME}]")
    x = np.random.default_rng(0).standard_normal((2, 3, *size)).astype(np.float32)
    with torch.no_grad():
        want = wrapper(torch.from_numpy(x)).numpy()
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    one = session.run([OUTPUT_NAME], {INPUT_NAME: x[:1]})[0]  # the batch size is really free
    if got.shape != want.shape or one.shape != want[:1].shape or want.ndim != 2:
        raise ModelError(f"the exported backbone gives shape {list(got.shape)}, torch gives {list(want.shape)}")
    limit = TOLERANCE * max(1.0, float(np.abs(want).max()))
    diff = max(float(np.abs(got - want).max()), float(np.abs(one - want[:1]).max()))
    if not diff <= limit:
        raise ModelError(f"the exported backbone differs from torch by {diff:.2g} (limit {limit:.2g}); "
                         "try another --opset")
    return int(want.shape[1])


def export_backbone(kind: str, source: str | Path, out: Path, *, size: int | None = None, opset: int = 17,
                    say: Callable[[str], Any] = print) -> dict[str, Any]:
    """Export ``kind`` weights from ``source`` to ``out`` (ONNX) and its sidecar; return the sidecar."""
    if kind not in KINDS:
        raise InputError(f"unknown backbone kind {kind!r}; use --kind {' or '.join(KINDS)}")
    if size is not None and (isinstance(size, bool) or int(size) <= 0):
        raise InputError(f"--size must be a positive number of pixels, got {size!r}")
    out = _check_out(out)
    source = str(source)
    torch, transformers = _import_train()

    say(f"loading {kind} weights from {source} (offline)")
    model = _load(kind, source, torch, transformers)
    config = model.config
    n_params = sum(p.numel() for p in model.parameters())
    if n_params * 4 > ONNX_LIMIT:
        raise ModelError(f"{kind} weights {source} have {n_params / 1e9:.2f}B parameters, over ONNX's 2 GB "
                         "single-file limit; export a smaller variant")
    pre = _read_preprocessor(source)
    hw = _input_size(config, pre, size)
    mean = _preprocessor_vector(pre or {}, "image_mean", DEFAULT_MEAN[kind], source)
    std = _preprocessor_vector(pre or {}, "image_std", DEFAULT_STD[kind], source)
    interpolate = hw != _pair(config.image_size, "image_size")
    wrapper = _wrapper(torch, model, kind, interpolate)

    tmp = out.with_name(out.name + ".tmp")
    sidecar = sidecar_path(out)
    try:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create directory {out.parent} ({exc.strerror or exc}); "
                             "choose a writable --out") from None
        say(f"exporting to ONNX (opset {opset}, input {hw[0]}x{hw[1]}, {n_params / 1e6:.1f}M parameters)")
        dummy = torch.zeros((2, 3, *hw), dtype=torch.float32)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                # Expected with dynamo=False: the TorchScript exporter's deprecation notice, and
                # tracer notes on the H/W checks (H and W are fixed; the batch axis is verified).
                warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
                for note in ("You are using the legacy TorchScript", "The feature will be removed"):
                    warnings.filterwarnings("ignore", message=note, category=DeprecationWarning)
                torch.onnx.export(wrapper, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                                  opset_version=opset, do_constant_folding=True, dynamo=False)
        except OSError as exc:
            raise InputError(f"cannot write {tmp} ({exc.strerror or exc}); choose a writable --out") from None
        except Exception as exc:  # the exporter raises many types; one line is what the user can act on
            raise ModelError(f"exporting {kind} weights {source} to ONNX (opset {opset}) failed "
                             f"({type(exc).__name__}: {_first_line(exc)})") from None
        say("verifying the ONNX file against torch with onnxruntime")
        dim = _verify(tmp, wrapper, torch, hw)
        manifest = {
            "format": FORMAT,
            "kind": kind,
            "source": source,
            "input": {"name": INPUT_NAME, "layout": "NCHW", "size": list(hw), "colour": "rgb", "scale": SCALE,
                      "mean": list(mean), "std": list(std)},
            "output": {"name": OUTPUT_NAME, "size": dim},
            "sha256": sha256_file(tmp),
            "build": {"torch": torch.__version__, "transformers": transformers.__version__, "opset": opset},
        }
        sidecar.unlink(missing_ok=True)  # never leave an old sidecar beside a new graph
        tmp.replace(out)
        write_manifest(sidecar, manifest)
    finally:
        tmp.unlink(missing_ok=True)
    mb = out.stat().st_size / 1e6
    say(f"wrote {out} (embedding dim {dim}, input {hw[0]}x{hw[1]}, {mb:.1f} MB) and {sidecar.name}")
    return manifest


def load_backbone_manifest(onnx_path: Path, *, verify: bool = True) -> BackboneManifest:
    """Read and check ``onnx_path``'s sidecar; with ``verify``, also the ONNX file's sha256."""
    onnx_path = Path(onnx_path)
    path = sidecar_path(onnx_path)
    redo = f"re-export it with `{EXPORT_HINT} {onnx_path}`"
    if not onnx_path.is_file():
        raise ModelError(f"backbone {onnx_path} does not exist; export it with `{EXPORT_HINT} {onnx_path}`")
    if not path.is_file():
        raise ModelError(f"backbone {onnx_path} has no sidecar {path.name} beside it; {redo}")
    data = read_json_object(path, "backbone sidecar", redo)
    if data.get("format") != FORMAT:
        raise ModelError(f"backbone sidecar {path}: 'format' must be {FORMAT!r}, found {data.get('format')!r}; {redo}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ModelError(f"backbone sidecar {path}: 'kind' must be {' or '.join(KINDS)}, found {kind!r}; {redo}")
    raw_in, raw_out = data.get("input"), data.get("output")
    if not isinstance(raw_in, dict) or not isinstance(raw_out, dict):
        raise ModelError(f"backbone sidecar {path} needs 'input' and 'output' objects; {redo}")
    # The same rules as an expert manifest's input section, which is where this one is copied.
    stub = {"format": EXPERT_FORMAT, "expert": "scene", "input": raw_in, "outputs": {"valence_arousal": {"name": "va"}}}
    try:
        spec = parse_manifest(stub, f"backbone sidecar {path}").input
    except ModelError as exc:
        raise ModelError(f"{exc}; {redo}") from None
    if spec.kind != "image" or spec.layout != "NCHW" or spec.colour != "rgb" or len(spec.mean) != 3 \
            or len(spec.std) != 3 or not spec.scale > 0:
        raise ModelError(f"backbone sidecar {path}: input must be NCHW rgb images with 3 means, 3 stds and "
                         f"a positive scale; {redo}")
    name, dim = raw_out.get("name"), raw_out.get("size")
    if not isinstance(name, str) or not name or isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise ModelError(f"backbone sidecar {path}: 'output' needs a 'name' and a positive integer 'size'; {redo}")
    sha = data.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelError(f"backbone sidecar {path}: 'sha256' must be 64 lower-case hex digits; {redo}")
    if verify and sha256_file(onnx_path) != sha:
        raise ModelError(f"backbone {onnx_path} does not match its sidecar {path.name} (sha256 differs); {redo}")
    return BackboneManifest(kind=kind, input_name=spec.name, size=spec.size, colour=spec.colour, scale=spec.scale,
                            mean=spec.mean, std=spec.std, output_name=name, dim=dim,  # type: ignore[arg-type]
                            source=str(data.get("source", "")), sha256=sha)
