"""musicnn (Pons & Serra, ISMIR 2019 LBD) as an ONNX graph, built from its TensorFlow checkpoint.

The checkpoints ``MSD_musicnn`` and ``MTT_musicnn`` of the ``musicnn==0.1.0`` wheel (ISC) are
read by :mod:`moodsic_live.models.tf_bundle` (no TensorFlow). Every fact below is from
``musicnn/models.py`` (``build_musicnn`` with ``num_filt_midend=64, num_units_backend=200``)
and ``musicnn/extractor.py``. TensorFlow runs NHWC with H = time (187 frames) and W = mel
band (96); the ONNX graph is NCHW, and from the mid-end on it is 1-D: (N, channels, time).

Input ``mel`` (N, 187, 96): log-mel patches exactly as musicnn's extractor makes them
(librosa mel power at 16 kHz, n_fft 512, hop 256, 96 bands, cast to float16, then
``log10(10000 x + 1)``; patches of 187 frames).

Front-end (``batch_normalization`` .. ``_5``, ``conv2d`` .. ``conv2d_4``):

- input BatchNormalization over its single channel: a scalar ``Mul`` + ``Add``, then
  ``Unsqueeze`` to (N, 1, 187, 96);
- timbral: ``tf.pad`` of 3 frames either side then 'valid' convolutions of 204 filters,
  kernels 7 x 38 and 7 x 67 (``int(0.4 * 96)``, ``int(0.7 * 96)``): ONNX ``Conv`` with pads
  (3, 0, 3, 0); temporal: 'same' convolutions of 51 filters, kernels 128 x 1, 64 x 1, 32 x 1,
  padded as TensorFlow does (the odd frame at the end: (63, 64), (31, 32), (15, 16));
- each is conv -> ReLU -> BatchNormalization -> max over all frequency. The BN comes after
  the ReLU, so it cannot be folded into the convolution. Instead the pooling goes first
  (exact, since ReLU and a per-channel affine map are monotonic): for a channel whose BN
  scale is negative the max of BN(ReLU(y)) is BN(ReLU(min y)), so that channel's filter
  and bias are negated (``max(-y) = -min(y)``, exact in floating point) and a ``Mul`` by -1
  after ``ReduceMax`` restores the sign. The large (N, C, 187, F) maps see only ``Conv`` and
  ``ReduceMax``; ReLU and the BN (``Mul`` + ``Add``) run on (N, C, 187).
- the five (N, C, 187) maps are concatenated: 204 + 204 + 51 + 51 + 51 = 561 channels.

Mid-end (``conv2d_5`` .. ``_7``, ``batch_normalization_6`` .. ``_8``): three convolutions of 64
filters whose kernels span 7 frames and the whole feature axis (561, then 64, then 64) with 3
frames of zero padding either side, each followed by ReLU and BN; TensorFlow's transposes
turn the filters back into the feature axis, which in (N, C, T) layout is just the channel
axis, so they become 1-D ``Conv`` (kernel 7, pads 3/3) on (N, C, 187); HWIO (7, C, 1, 64)
becomes (64, C, 7). Residuals: ``res2 = bn2 + bn1``, ``res3 = bn3 + res2``. The dense
connection concatenates [front-end (561), bn1, res2, res3] = 753 channels.

Back-end: max and mean over time (``ReduceMax``, ``ReduceMean``), giving 2 x 753 values.
TensorFlow concatenates them as (753, 2) and flattens, so its feature ``2 f + j`` is the
graph's ``j * 753 + f``; the BN ``batch_normalization_9`` and the rows of the ``dense`` kernel
are permuted accordingly. That BN directly feeds ``dense`` (dropout is the identity at
inference), so it is folded into it: ``W' = s W`` row-wise, ``b' = b + t W``. Then ReLU,
BN ``batch_normalization_10`` = ``penultimate`` (200-d) -> output ``embedding``;
``dense_1`` (200 -> 50) and ``Sigmoid`` -> output ``tags``.

BatchNormalization is inference-mode with the moving statistics and TensorFlow's default
epsilon 0.001: ``y = x * s + t``, ``s = gamma / sqrt(var + eps)``, ``t = beta - mean * s``.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from moodsic_live.errors import ModelError
from moodsic_live.models.keras_onnx import OPSET, _bn_params, _same_pads
from moodsic_live.models.tf_bundle import FIX, read_bundle

MODELS = ("MSD_musicnn", "MTT_musicnn")
N_FRAMES = 187
N_MELS = 96
FRONTEND = {"sr": 16000, "n_fft": 512, "hop": 256, "n_mels": N_MELS, "frames": N_FRAMES}
BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default
N_TAGS = 50
EMBEDDING = 200
MIDEND_FILTERS = 64
TIMBRAL = (("conv2d", "batch_normalization_1", (7, int(0.4 * N_MELS))),
           ("conv2d_1", "batch_normalization_2", (7, int(0.7 * N_MELS))))
TEMPORAL = (("conv2d_2", "batch_normalization_3", (128, 1)),
            ("conv2d_3", "batch_normalization_4", (64, 1)),
            ("conv2d_4", "batch_normalization_5", (32, 1)))
TIMBRAL_FILTERS, TEMPORAL_FILTERS = int(1.6 * 128), int(1.6 * 32)
MIDEND = (("conv2d_5", "batch_normalization_6"), ("conv2d_6", "batch_normalization_7"),
          ("conv2d_7", "batch_normalization_8"))
FRONTEND_CHANNELS = 2 * TIMBRAL_FILTERS + 3 * TEMPORAL_FILTERS  # 561
POOL_FEATURES = FRONTEND_CHANNELS + 3 * MIDEND_FILTERS  # 753


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every checkpoint tensor the graph uses, with the shape ``musicnn/models.py`` implies."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(name: str, c: int) -> None:
        for part in ("gamma", "beta", "moving_mean", "moving_variance"):
            shapes[f"{name}/{part}"] = (c,)

    bn("batch_normalization", 1)
    for conv, norm, (kh, kw) in TIMBRAL:
        shapes[f"{conv}/kernel"], shapes[f"{conv}/bias"] = (kh, kw, 1, TIMBRAL_FILTERS), (TIMBRAL_FILTERS,)
        bn(norm, TIMBRAL_FILTERS)
    for conv, norm, (kh, kw) in TEMPORAL:
        shapes[f"{conv}/kernel"], shapes[f"{conv}/bias"] = (kh, kw, 1, TEMPORAL_FILTERS), (TEMPORAL_FILTERS,)
        bn(norm, TEMPORAL_FILTERS)
    width = FRONTEND_CHANNELS
    for conv, norm in MIDEND:
        shapes[f"{conv}/kernel"], shapes[f"{conv}/bias"] = (7, width, 1, MIDEND_FILTERS), (MIDEND_FILTERS,)
        bn(norm, MIDEND_FILTERS)
        width = MIDEND_FILTERS
    bn("batch_normalization_9", 2 * POOL_FEATURES)
    shapes["dense/kernel"], shapes["dense/bias"] = (2 * POOL_FEATURES, EMBEDDING), (EMBEDDING,)
    bn("batch_normalization_10", EMBEDDING)
    shapes["dense_1/kernel"], shapes["dense_1/bias"] = (EMBEDDING, N_TAGS), (N_TAGS,)
    return shapes


def read_configuration(path: Path) -> dict:
    """The constants of ``musicnn/configuration.py`` (read with ``ast``, never executed)."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a readable musicnn configuration ({exc}); {FIX}") from None
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    for key in ("SR", "FFT_HOP", "FFT_SIZE", "N_MELS", "MSD_LABELS", "MTT_LABELS"):
        if key not in out:
            raise ModelError(f"{path}: musicnn configuration has no {key}; {FIX}")
    got = {"sr": out["SR"], "n_fft": out["FFT_SIZE"], "hop": out["FFT_HOP"], "n_mels": out["N_MELS"]}
    want = {k: FRONTEND[k] for k in got}
    if got != want:
        raise ModelError(f"{path}: musicnn front-end {got} differs from the one this converter knows {want}")
    for key in ("MSD_LABELS", "MTT_LABELS"):
        if len(out[key]) != N_TAGS:
            raise ModelError(f"{path}: {key} has {len(out[key])} tags, expected {N_TAGS}")
    return out


class _Graph:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def const(self, name: str, array: np.ndarray, dtype=np.float32) -> str:
        """An initializer; asking again for the same name reuses it (only for identical constants)."""
        if name not in self._names:
            self._names.add(name)
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def affine(self, x: str, scale: np.ndarray, shift: np.ndarray, name: str, shape: tuple[int, ...]) -> str:
        """``x * scale + shift`` with per-channel constants broadcast as ``shape``."""
        y = self.node("Mul", [x, self.const(name + "_scale", scale.reshape(shape))], name + "_mul")
        return self.node("Add", [y, self.const(name + "_shift", shift.reshape(shape))], name)


def _bn(t: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    w = {part: t[f"{name}/{part}"] for part in ("gamma", "beta", "moving_mean", "moving_variance")}
    return _bn_params(w, w["moving_mean"].shape[0], BN_EPS)


def _frontend_block(g: _Graph, x: str, t: dict[str, np.ndarray], conv: str, norm: str, pads: list[int]) -> str:
    """conv -> ReLU -> BN -> max over frequency, computed as conv -> max -> ReLU -> BN (exact)."""
    kernel = t[f"{conv}/kernel"].transpose(3, 2, 0, 1)  # HWIO -> OIHW
    bias = t[f"{conv}/bias"]
    scale, shift = _bn(t, norm)
    sign = np.where(scale < 0, -1.0, 1.0).astype(np.float32)
    kernel = kernel * sign[:, None, None, None]
    bias = bias * sign
    # Speed: onnxruntime runs these convolutions in a blocked channel layout (NCHWc, blocks of
    # 16 channels) and keeps a MaxPool in it only when the channels fill whole blocks; any other
    # max over frequency first reorders the whole (C, T, F) map, a third of the run time. So
    # the filters are padded with zero filters to a multiple of 16 and sliced off after the pool.
    channels = kernel.shape[0]
    padded = -(-channels // 16) * 16
    if padded != channels:
        kernel = np.concatenate([kernel, np.zeros((padded - channels, *kernel.shape[1:]), np.float32)])
        bias = np.concatenate([bias, np.zeros(padded - channels, np.float32)])
    y = g.node("Conv", [x, g.const(conv + "_w", kernel), g.const(conv + "_b", bias)], conv,
               kernel_shape=list(kernel.shape[2:]), pads=pads)
    width = N_MELS - kernel.shape[3] + 1
    y = g.node("MaxPool", [y], conv + "_freqpool", kernel_shape=[1, width])  # (1, C', T, 1)
    y = g.node("Squeeze", [y, g.const("axis3", np.array([3]), np.int64)], conv + "_freqmax")  # (1, C', T)
    if padded != channels:
        y = g.node("Slice", [y, g.const("axis_0", np.array([0]), np.int64),
                             g.const(f"channels_{channels}", np.array([channels]), np.int64),
                             g.const("axis_1", np.array([1]), np.int64)], conv + "_channels")
    if (sign < 0).any():
        y = g.node("Mul", [y, g.const(conv + "_sign", sign.reshape(-1, 1))], conv + "_unsign")
    y = g.node("Relu", [y], conv + "_relu")
    return g.affine(y, scale, shift, norm, (-1, 1))


def _window_levels(g: _Graph, x: str, op: str, name: str) -> dict[int, str]:
    """Sliding ``op`` (Max or Add) over 1, 2, 4, ... frames of ``x`` (C, T): level ``w`` at
    frame ``t`` combines frames ``t .. t+w-1`` (a sparse table; each level is one op)."""
    levels = {1: x}
    w = 1
    zero = g.const("axis_0", np.array([0]), np.int64)
    one = g.const("axis_1", np.array([1]), np.int64)
    big = g.const("slice_end", np.array([np.iinfo(np.int64).max]), np.int64)
    while 2 * w <= N_FRAMES:
        prev = levels[w]
        shift = g.const(f"shift_{w}", np.array([w]), np.int64)
        neg = g.const(f"shift_neg_{w}", np.array([-w]), np.int64)
        head = g.node("Slice", [prev, zero, neg, one], f"{name}_{w}_head")
        tail = g.node("Slice", [prev, shift, big, one], f"{name}_{w}_tail")
        levels[2 * w] = g.node(op, [head, tail], f"{name}_{2 * w}")
        w *= 2
    return levels


def _windowed(g: _Graph, levels: dict[int, str], starts: str, op: str, name: str) -> str:
    """``op`` over the 187-frame windows starting at ``starts``: (C, P)."""
    parts = []
    if op == "Max":  # two overlapping power-of-two windows cover 187 frames
        w = max(levels)
        offsets = [(w, 0), (w, N_FRAMES - w)]
    else:  # disjoint power-of-two pieces: 187 = 128 + 32 + 16 + 8 + 2 + 1
        offsets, at = [], 0
        for w in sorted(levels, reverse=True):
            if at + w <= N_FRAMES:
                offsets.append((w, at))
                at += w
    for w, off in offsets:
        idx = starts if off == 0 else g.node("Add", [starts, g.const(f"{name}_off_{off}", np.array(off), np.int64)],
                                             f"{name}_idx_{off}")
        parts.append(g.node("Gather", [levels[w], idx], f"{name}_at_{off}", axis=1))
    out = parts[0]
    for i, part in enumerate(parts[1:]):
        out = g.node(op, [out, part], f"{name}_sum_{i}" if op == "Add" else f"{name}_max_{i}")
    return out


def build_musicnn(t: dict[str, np.ndarray], *, name: str = "musicnn", doc: str = "") -> onnx.ModelProto:
    """The ONNX model of musicnn from its checkpoint tensors (names as in the checkpoint).

    Inputs: ``mel`` (T, 96), the log-mel frames of a whole piece (T >= 187), and ``starts``
    (P,) int64, the first frame of each 3 s window to tag (0 <= start <= T - 187). Outputs:
    ``tags`` (P, 50) and ``embedding`` (P, 200), one row per window.

    The front-end and mid-end are convolutions along time, so they run once over all T frames
    and each window only pools its 187 frames (a sparse table of maxima and sums gives each
    window's max and mean in a few ops). Fed one 187-frame patch with ``starts = [0]`` this is
    exactly musicnn on that patch; over a longer piece a window sees its real neighbours where
    musicnn's lone patch sees zero padding (the first and last 3 frames, and the reach of the
    temporal filters).
    """
    shapes = expected_shapes()
    for key, shape in shapes.items():
        if key not in t:
            raise ModelError(f"{name}: checkpoint has no tensor {key!r}; it is not a musicnn checkpoint")
        if tuple(t[key].shape) != shape:
            raise ModelError(f"{name}: checkpoint tensor {key!r} has shape {list(t[key].shape)}, musicnn's "
                             f"architecture needs {list(shape)}")
    t = {k: np.asarray(t[k], np.float32) for k in shapes}
    g = _Graph()

    # front-end
    s0, t0 = _bn(t, "batch_normalization")
    x = g.affine("mel", s0, t0, "batch_normalization", ())
    x = g.node("Unsqueeze", [x, g.const("axes01", np.array([0, 1]), np.int64)], "mel_nchw")  # (1, 1, T, F)
    features = []
    for conv, norm, (kh, _kw) in TIMBRAL:
        features.append(_frontend_block(g, x, t, conv, norm, [kh // 2, 0, kh // 2, 0]))
    for conv, norm, (kh, _kw) in TEMPORAL:
        top, bottom = _same_pads(N_FRAMES, kh, 1)  # stride 1: the same for any length
        features.append(_frontend_block(g, x, t, conv, norm, [top, 0, bottom, 0]))
    frontend = g.node("Concat", features, "frontend", axis=1)  # (1, 561, T)

    # mid-end
    layers = [frontend]
    for i, (conv, norm) in enumerate(MIDEND):
        kernel = t[f"{conv}/kernel"][:, :, 0, :].transpose(2, 1, 0)  # (7, C, 1, O) -> (O, C, 7)
        y = g.node("Conv", [layers[-1], g.const(conv + "_w", kernel), g.const(conv + "_b", t[f"{conv}/bias"])],
                   conv, kernel_shape=[7], pads=[3, 3])
        y = g.node("Relu", [y], conv + "_relu")
        scale, shift = _bn(t, norm)
        y = g.affine(y, scale, shift, norm, (-1, 1))
        if i > 0:  # residual connections of conv layers 2 and 3
            y = g.node("Add", [y, layers[-1]], conv + "_residual")
        layers.append(y)
    midend = g.node("Concat", layers, "midend_batch", axis=1)  # (1, 753, T)
    midend = g.node("Squeeze", [midend, g.const("axis0", np.array([0]), np.int64)], "midend")  # (753, T)

    # back-end: max and mean over each window's 187 frames
    win_max = _windowed(g, _window_levels(g, midend, "Max", "runmax"), "starts", "Max", "win_max")
    win_sum = _windowed(g, _window_levels(g, midend, "Add", "runsum"), "starts", "Add", "win_sum")
    win_mean = g.node("Mul", [win_sum, g.const("inv_frames", np.array(1.0 / N_FRAMES))], "win_mean")
    g.node("Transpose", [win_max], "max_pool", perm=[1, 0])  # (P, 753)
    g.node("Transpose", [win_mean], "mean_pool", perm=[1, 0])
    pooled = g.node("Concat", ["max_pool", "mean_pool"], "pooled", axis=1)  # (P, 2 * 753): [max..., mean...]
    order = np.arange(2 * POOL_FEATURES).reshape(POOL_FEATURES, 2).T.reshape(-1)  # graph j*753+f <- TF 2f+j
    scale, shift = _bn(t, "batch_normalization_9")
    kernel = t["dense/kernel"].astype(np.float64)
    folded = (scale[order].astype(np.float64)[:, None] * kernel[order])
    bias = t["dense/bias"].astype(np.float64) + shift.astype(np.float64) @ kernel
    y = g.node("MatMul", [pooled, g.const("dense_w", folded)], "dense")
    y = g.node("Add", [y, g.const("dense_b", bias)], "dense_biased")
    y = g.node("Relu", [y], "dense_relu")
    scale, shift = _bn(t, "batch_normalization_10")
    y = g.affine(y, scale, shift, "batch_normalization_10", (-1,))
    g.node("Identity", [y], "embedding")
    logits = g.node("MatMul", [y, g.const("dense_1_w", t["dense_1/kernel"])], "dense_1")
    logits = g.node("Add", [logits, g.const("dense_1_b", t["dense_1/bias"])], "logits")
    g.node("Sigmoid", [logits], "tags")

    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["T", N_MELS]),
         helper.make_tensor_value_info("starts", TensorProto.INT64, ["P"])],
        [helper.make_tensor_value_info("tags", TensorProto.FLOAT, ["P", N_TAGS]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["P", EMBEDDING])],
        initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="moodsic-live", doc_string=doc)
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def read_checkpoint(prefix: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of the checkpoint at ``prefix`` (a folder for musicnn's own) that the graph uses."""
    return read_bundle(prefix, list(expected_shapes()))


def convert_musicnn_checkpoint(prefix: str | os.PathLike, *, name: str = "musicnn",
                               doc: str = "") -> onnx.ModelProto:
    """Read the checkpoint at ``prefix`` and build its ONNX model."""
    return build_musicnn(read_checkpoint(prefix), name=name, doc=doc)


def tag_baseline(t: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Each tag's logit over the music the model was trained on: mean and spread, from the weights.

    The embedding is the output of a batch normalisation (``batch_normalization_10``), so over
    the training data each of its units has mean ``beta`` and standard deviation ``|gamma|``
    (the moving statistics make this exact for the mean). The logits are linear in it:
    ``logit = W^T e + b``, so their training-set mean is ``W^T beta + b`` exactly, and their
    spread, taking the units as uncorrelated, ``sqrt(sum_j W_j^2 gamma_j^2)``. A tag's
    ``(logit - mean) / spread`` then says how much more (or less) a sound is like that tag
    than music in general, without any data of ours.
    """
    w = t["dense_1/kernel"].astype(np.float64)  # (200, 50)
    beta = t["batch_normalization_10/beta"].astype(np.float64)
    gamma = t["batch_normalization_10/gamma"].astype(np.float64)
    mean = beta @ w + t["dense_1/bias"].astype(np.float64)
    std = np.sqrt((gamma[:, None] ** 2 * w ** 2).sum(axis=0))
    return {"mean": [round(float(x), 6) for x in mean], "std": [round(float(x), 6) for x in std],
            "how": "training-set logit mean W^T beta + b and spread sqrt(sum W^2 gamma^2) of the last layer"}
