"""Convert a Keras 2.x functional model saved as HDF5 into an ONNX graph, without TensorFlow.

Reads the architecture from the file's ``model_config`` JSON and the weights with h5py,
and writes NCHW ONNX with ``onnx.helper``. What it reproduces exactly:

- Keras ``padding='same'`` is TensorFlow's rule: total padding
  ``max((ceil(n/s) - 1) * s + k - n, 0)``, the odd pixel going to the bottom/right. The
  pads are computed from the static shapes and written explicitly, so the graph does not
  depend on a runtime's reading of ``auto_pad``.
- BatchNormalization that directly follows a linear convolution (and is its only
  consumer) is folded into that convolution's weights and bias:
  ``w' = w * g / sqrt(v + eps)``, ``b' = beta + (b - m) * g / sqrt(v + eps)``. Other
  BatchNormalization layers become an ONNX ``BatchNormalization``.
- SeparableConv2D is a depthwise convolution (``group = channels``) then a 1x1 pointwise
  one; Keras kernels are ``(kh, kw, in, out)`` and become ONNX ``(out, in, kh, kw)``.

Supported layers are the ones the shipped models use (InputLayer, Conv2D,
SeparableConv2D, DepthwiseConv2D, BatchNormalization, Activation, ReLU, MaxPooling2D,
AveragePooling2D, Add, GlobalAveragePooling2D, Flatten, Dense, Dropout); anything else
is a clear error naming the layer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from moodsic_live.errors import ModelError

OPSET = 17
_CONV_LAYERS = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")


@dataclass
class _Tensor:
    name: str  # ONNX value name
    shape: tuple[int, int, int]  # (C, H, W); (C, 1, 1) after flattening


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _out_size(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "same":
        return math.ceil(size / stride)
    if padding == "valid":
        return (size - kernel) // stride + 1
    raise ModelError(f"padding {padding!r} is not supported (only 'same' and 'valid')")


def _pads(h: int, w: int, kernel: tuple[int, int], strides: tuple[int, int], padding: str) -> list[int]:
    if padding == "valid":
        return [0, 0, 0, 0]
    top, bottom = _same_pads(h, kernel[0], strides[0])
    left, right = _same_pads(w, kernel[1], strides[1])
    return [top, left, bottom, right]


def _inbound(layer: dict) -> list[str]:
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return []
    if len(nodes) > 1:
        raise ModelError(f"layer {layer['config']['name']!r} is shared between several calls; not supported")
    return [entry[0] for entry in nodes[0]]


class _Builder:
    def __init__(self, weights: h5py.Group):
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def weight(self, layer: str) -> dict[str, np.ndarray]:
        if layer not in self.weights:
            return {}
        group = self.weights[layer]
        out = {}
        for raw in group.attrs.get("weight_names", []):
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            short = name.split("/")[-1].split(":")[0]
            out[short] = np.asarray(group[name], dtype=np.float32)
        return out

    def const(self, base: str, array: np.ndarray) -> str:
        self._count += 1
        name = f"{base}__{self._count}"
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def _bn_params(w: dict[str, np.ndarray], channels: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """BatchNormalization as y = x * scale + shift."""
    gamma = w.get("gamma", np.ones(channels, np.float32))
    beta = w.get("beta", np.zeros(channels, np.float32))
    mean, var = w["moving_mean"], w["moving_variance"]
    scale = gamma / np.sqrt(var + eps)
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)


_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


def _activation(b: _Builder, kind: str, x: str, out: str) -> str:
    if kind in (None, "linear"):
        return x
    if kind == "softmax":
        return b.node("Softmax", [x], out, axis=1)
    if kind in _ACTIVATIONS:
        return b.node(_ACTIVATIONS[kind], [x], out)
    raise ModelError(f"activation {kind!r} is not supported by the converter")


def convert_keras_h5(path: Path, *, input_name: str = "input", output_name: str = "output",
                     doc: str = "") -> onnx.ModelProto:
    """Read a Keras HDF5 model and return the equivalent NCHW ONNX model."""
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ModelError(f"{path}: not a readable Keras HDF5 file ({exc})") from None
    with handle as f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise ModelError(f"{path}: HDF5 file has no Keras model_config/model_weights")
        raw = f.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if config.get("class_name") not in ("Model", "Functional"):
            raise ModelError(f"{path}: only functional Keras models are supported, not {config.get('class_name')}")
        return _convert(config["config"], f["model_weights"], input_name, output_name, doc)


def _convert(config: dict, weights: h5py.Group, input_name: str, output_name: str, doc: str) -> onnx.ModelProto:
    layers = config["layers"]
    by_name = {layer["config"]["name"]: layer for layer in layers}
    consumers: dict[str, list[str]] = {name: [] for name in by_name}
    for layer in layers:
        for src in _inbound(layer):
            consumers[src].append(layer["config"]["name"])

    b = _Builder(weights)
    tensors: dict[str, _Tensor] = {}
    graph_inputs = []
    folded: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # conv name -> BN (scale, shift)
    skip: set[str] = set()

    # Find BatchNormalization layers that fold into the convolution before them.
    for layer in layers:
        if layer["class_name"] != "BatchNormalization":
            continue
        srcs = _inbound(layer)
        src = by_name[srcs[0]]
        if (src["class_name"] in _CONV_LAYERS and src["config"].get("activation", "linear") == "linear"
                and consumers[src["config"]["name"]] == [layer["config"]["name"]]):
            cfg = layer["config"]
            axis = cfg.get("axis", -1)
            if axis not in (-1, 3, [3], [-1]):
                raise ModelError(f"BatchNormalization {cfg['name']!r} on axis {axis} is not supported")
            w = b.weight(cfg["name"])
            folded[src["config"]["name"]] = _bn_params(w, w["moving_mean"].shape[0], cfg.get("epsilon", 1e-3))
            skip.add(cfg["name"])

    for layer in layers:
        kind, cfg = layer["class_name"], layer["config"]
        name = cfg["name"]
        if name in skip:
            # folded BN: its output is the convolution's output
            tensors[name] = tensors[_inbound(layer)[0]]
            continue
        srcs = [tensors[s] for s in _inbound(layer)]

        if kind == "InputLayer":
            shape = cfg["batch_input_shape"]
            if len(shape) != 4:
                raise ModelError(f"input {name!r} has shape {shape}; only image inputs (N, H, W, C) are supported")
            _, h, w, c = shape
            graph_inputs.append(helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", c, h, w]))
            tensors[name] = _Tensor(input_name, (c, h, w))
        elif kind in _CONV_LAYERS:
            tensors[name] = _conv(b, kind, cfg, srcs[0], folded.get(name))
        elif kind == "BatchNormalization":
            x = srcs[0]
            w = b.weight(name)
            c = x.shape[0]
            scale, shift = _bn_params(w, c, cfg.get("epsilon", 1e-3))
            out = b.node("BatchNormalization", [x.name, b.const(name + "_scale", scale), b.const(name + "_bias", shift),
                                                b.const(name + "_mean", np.zeros(c)), b.const(name + "_var", np.ones(c))],
                         name, epsilon=0.0)
            tensors[name] = _Tensor(out, x.shape)
        elif kind == "Activation":
            tensors[name] = _Tensor(_activation(b, cfg["activation"], srcs[0].name, name), srcs[0].shape)
        elif kind == "ReLU":
            if cfg.get("max_value") is not None or cfg.get("negative_slope", 0.0):
                raise ModelError(f"ReLU {name!r} with max_value/negative_slope is not supported")
            tensors[name] = _Tensor(b.node("Relu", [srcs[0].name], name), srcs[0].shape)
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            x = srcs[0]
            c, h, w = x.shape
            k = tuple(cfg["pool_size"])
            s = tuple(cfg.get("strides") or k)
            pads = _pads(h, w, k, s, cfg["padding"])
            op = "MaxPool" if kind == "MaxPooling2D" else "AveragePool"
            extra = {} if op == "MaxPool" else {"count_include_pad": 0}  # TF averages real pixels only
            out = b.node(op, [x.name], name, kernel_shape=list(k), strides=list(s), pads=pads, **extra)
            tensors[name] = _Tensor(out, (c, _out_size(h, k[0], s[0], cfg["padding"]),
                                          _out_size(w, k[1], s[1], cfg["padding"])))
        elif kind == "Add":
            shapes = {t.shape for t in srcs}
            if len(shapes) != 1:
                raise ModelError(f"Add {name!r} joins tensors of different shapes {shapes}")
            acc = srcs[0].name
            for i, t in enumerate(srcs[1:]):
                acc = b.node("Add", [acc, t.name], name if i == len(srcs) - 2 else f"{name}_{i}")
            tensors[name] = _Tensor(acc, srcs[0].shape)
        elif kind == "GlobalAveragePooling2D":
            x = srcs[0]
            pooled = b.node("GlobalAveragePool", [x.name], name + "_pool")
            tensors[name] = _Tensor(b.node("Flatten", [pooled], name, axis=1), (x.shape[0], 1, 1))
        elif kind == "Flatten":
            x = srcs[0]
            c, h, w = x.shape
            # Keras flattens NHWC order: transpose back before flattening.
            t = b.node("Transpose", [x.name], name + "_nhwc", perm=[0, 2, 3, 1])
            tensors[name] = _Tensor(b.node("Flatten", [t], name, axis=1), (c * h * w, 1, 1))
        elif kind == "Dense":
            x = srcs[0]
            w = b.weight(name)
            kernel = w["kernel"]
            y = b.node("MatMul", [x.name, b.const(name + "_kernel", kernel)], name + "_mm")
            if cfg.get("use_bias", True):
                y = b.node("Add", [y, b.const(name + "_bias", w["bias"])], name + "_biased")
            tensors[name] = _Tensor(_activation(b, cfg.get("activation"), y, name), (kernel.shape[1], 1, 1))
        elif kind == "Dropout":
            tensors[name] = _Tensor(b.node("Identity", [srcs[0].name], name), srcs[0].shape)
        else:
            raise ModelError(f"layer {name!r} of type {kind} is not supported by the converter")

    outputs = config["output_layers"]
    if len(outputs) != 1:
        raise ModelError(f"model has {len(outputs)} outputs; only single-output models are supported")
    last = tensors[outputs[0][0]]
    b.node("Identity", [last.name], output_name)
    out_dims: list = ["N", last.shape[0]] if last.shape[1:] == (1, 1) else ["N", *last.shape]
    graph = helper.make_graph(b.nodes, "keras_model", graph_inputs,
                              [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, out_dims)],
                              initializer=b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="moodsic-live", doc_string=doc)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _conv(b: _Builder, kind: str, cfg: dict, x: _Tensor, bn: tuple[np.ndarray, np.ndarray] | None) -> _Tensor:
    name = cfg["name"]
    c, h, w = x.shape
    k = tuple(cfg["kernel_size"])
    s = tuple(cfg["strides"])
    if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1):
        raise ModelError(f"{kind} {name!r} uses dilation; not supported")
    pads = _pads(h, w, k, s, cfg["padding"])
    weights = b.weight(name)
    oh, ow = _out_size(h, k[0], s[0], cfg["padding"]), _out_size(w, k[1], s[1], cfg["padding"])

    if kind == "Conv2D":
        kernel = weights["kernel"].transpose(3, 2, 0, 1)  # (kh,kw,in,out) -> (out,in,kh,kw)
        bias = weights.get("bias", np.zeros(kernel.shape[0], np.float32)) if cfg.get("use_bias", True) else \
            np.zeros(kernel.shape[0], np.float32)
        kernel, bias = _fold(kernel, bias, bn)
        y = b.node("Conv", [x.name, b.const(name + "_w", kernel), b.const(name + "_b", bias)], name + "_conv",
                   kernel_shape=list(k), strides=list(s), pads=pads)
        out_c = kernel.shape[0]
    else:
        mult = int(cfg.get("depth_multiplier", 1))
        dw = weights["depthwise_kernel"]  # (kh, kw, in, mult)
        dw = dw.transpose(2, 3, 0, 1).reshape(c * mult, 1, k[0], k[1])
        if kind == "DepthwiseConv2D":
            bias = weights.get("bias", np.zeros(c * mult, np.float32)) if cfg.get("use_bias", True) else \
                np.zeros(c * mult, np.float32)
            dw, bias = _fold(dw, bias, bn)
            y = b.node("Conv", [x.name, b.const(name + "_dw", dw), b.const(name + "_b", bias)], name + "_conv",
                       kernel_shape=list(k), strides=list(s), pads=pads, group=c)
            out_c = c * mult
        else:
            d = b.node("Conv", [x.name, b.const(name + "_dw", dw)], name + "_depthwise",
                       kernel_shape=list(k), strides=list(s), pads=pads, group=c)
            pw = weights["pointwise_kernel"].transpose(3, 2, 0, 1)  # (1,1,in*mult,out) -> (out,in*mult,1,1)
            bias = weights.get("bias", np.zeros(pw.shape[0], np.float32)) if cfg.get("use_bias", True) else \
                np.zeros(pw.shape[0], np.float32)
            pw, bias = _fold(pw, bias, bn)
            y = b.node("Conv", [d, b.const(name + "_pw", pw), b.const(name + "_b", bias)], name + "_conv",
                       kernel_shape=[1, 1])
            out_c = pw.shape[0]
    out = _activation(b, cfg.get("activation", "linear"), y, name)
    return _Tensor(out, (out_c, oh, ow))


def _fold(kernel: np.ndarray, bias: np.ndarray, bn: tuple[np.ndarray, np.ndarray] | None):
    if bn is None:
        return kernel, bias
    scale, shift = bn
    return kernel * scale[:, None, None, None], bias * scale + shift
