"""The scene expert's regression head: embeddings -> valence, arousal, trained with torch, run as ONNX.

Head: L2-normalise the embedding, standardise it with the training split's mean/SD, then
``Dropout(p_in) -> Linear(D, H) -> ReLU -> Dropout(p) -> Linear(H, 2)`` (reference space).
Loss: MSE + ``ccc_weight`` x (1 - CCC), averaged over valence and arousal (MSE alone drifts to the
mean on a dataset where most labels sit near it; the CCC term rewards following the spread).
Adam with weight decay; the validation loss decides early stopping, and the best epoch's weights
are restored at the end.

Resumable: after every epoch the whole state (weights, optimiser, best so far, patience, history)
is saved atomically to ``STATE``; a run started on the same data and settings continues from there.
Each epoch's shuffling and dropout come from ``seed + epoch``, so an interrupted and resumed run
ends with the same weights as one that never stopped.

Export: the head becomes an ONNX graph of our own (onnx.helper) with MC dropout inside: the
embedding is repeated ``mc_samples`` times, dropout masks come from ``RandomUniformLike`` (a fresh
draw on every run), and the graph returns the samples' mean ``va`` [N, 2] and variance ``va_var``
[N, 2]: one call, all samples.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from moodsic_live.errors import InputError

OPSET = 17


@dataclass(frozen=True)
class HeadConfig:
    hidden: int = 256
    dropout_in: float = 0.1
    dropout: float = 0.3
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch: int = 64
    max_epochs: int = 200
    patience: int = 20
    ccc_weight: float = 0.5
    mc_samples: int = 16
    seed: int = 0


@dataclass
class HeadWeights:
    """Everything the ONNX head needs, as numpy arrays."""

    mean: np.ndarray   # [D] of the L2-normalised training embeddings
    std: np.ndarray    # [D]
    w1: np.ndarray     # [D, H]
    b1: np.ndarray     # [H]
    w2: np.ndarray     # [H, 2]
    b2: np.ndarray     # [2]
    dropout_in: float
    dropout: float


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def standardiser(train_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = l2_normalise(train_x)
    return z.mean(axis=0), np.maximum(z.std(axis=0), 1e-6)


def _torch():
    try:
        import torch
    except ImportError:
        raise InputError("training needs the training extra: pip install -e '.[train]' (torch)") from None
    return torch


def ccc_loss(pred, target):
    """1 - Lin's concordance correlation, mean over the two dimensions (torch tensors [N, 2])."""
    pm, tm = pred.mean(0), target.mean(0)
    pv, tv = pred.var(0, unbiased=False), target.var(0, unbiased=False)
    cov = ((pred - pm) * (target - tm)).mean(0)
    ccc = 2 * cov / (pv + tv + (pm - tm) ** 2 + 1e-8)
    return (1 - ccc).mean()


def _network(dim: int, cfg: HeadConfig):
    nn = _torch().nn
    return nn.Sequential(nn.Dropout(cfg.dropout_in), nn.Linear(dim, cfg.hidden), nn.ReLU(),
                         nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, 2))


def _save_atomic(torch, obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_head(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
               cfg: HeadConfig, state_path: Path, fingerprint: str,
               say: Callable[[str], None] = print,
               after_epoch: Callable[[int], None] | None = None) -> tuple[HeadWeights, list[dict]]:
    """Train (or resume training) and return the best epoch's weights and the per-epoch history."""
    torch = _torch()
    torch.manual_seed(cfg.seed)
    mean, std = standardiser(train_x)
    prep = lambda x: torch.from_numpy(((l2_normalise(x) - mean) / std).astype(np.float32))  # noqa: E731
    xt, yt = prep(train_x), torch.from_numpy(train_y.astype(np.float32))
    xv, yv = prep(val_x), torch.from_numpy(val_y.astype(np.float32))
    net = _network(train_x.shape[1], cfg)
    optim = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def loss_fn(pred, target):
        return torch.mean((pred - target) ** 2) + cfg.ccc_weight * ccc_loss(pred, target)

    key = {"fingerprint": fingerprint, "config": dataclasses.asdict(cfg), "dim": int(train_x.shape[1])}
    epoch, best_loss, best_state, bad, history = 0, float("inf"), None, 0, []
    if state_path.is_file():
        try:
            state = torch.load(state_path, weights_only=False)
        except Exception:  # a state file cut short: start again rather than fail
            state = None
        if state and state.get("key") == key:
            net.load_state_dict(state["model"])
            optim.load_state_dict(state["optim"])
            epoch, best_loss, best_state = state["epoch"], state["best_loss"], state["best_state"]
            bad, history = state["bad"], state["history"]
            say(f"resuming from {state_path} after epoch {epoch} (best validation loss {best_loss:.4f})")
        elif state:
            say(f"{state_path} belongs to other data or settings: starting afresh")
    while epoch < cfg.max_epochs and bad < cfg.patience:
        epoch += 1
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        torch.manual_seed(cfg.seed * 100003 + epoch)
        net.train()
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for s in range(0, len(xt), cfg.batch):
            idx = order[s:s + cfg.batch]
            if len(idx) < 2:
                continue
            optim.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            optim.step()
            total += float(loss.detach()) * len(idx)
        net.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(net(xv), yv))
        improved = val_loss < best_loss - 1e-5
        if improved:
            best_loss, bad = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
        history.append({"epoch": epoch, "train_loss": total / max(len(xt), 1), "val_loss": val_loss})
        _save_atomic(torch, {"key": key, "model": net.state_dict(), "optim": optim.state_dict(), "epoch": epoch,
                             "best_loss": best_loss, "best_state": best_state, "bad": bad, "history": history},
                     state_path)
        if epoch == 1 or epoch % 10 == 0 or improved:
            say(f"epoch {epoch}: train loss {history[-1]['train_loss']:.4f}  validation {val_loss:.4f}"
                + ("  (best)" if improved else f"  (no gain for {bad})"))
        if after_epoch is not None:
            after_epoch(epoch)
    if bad >= cfg.patience:
        say(f"early stop after epoch {epoch}: no gain on validation for {cfg.patience} epochs")
    net.load_state_dict(best_state)
    say(f"restored the best weights (validation loss {best_loss:.4f})")
    layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    as_np = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
    return HeadWeights(mean.astype(np.float32), std.astype(np.float32), as_np(layers[0].weight).T.copy(),
                       as_np(layers[0].bias), as_np(layers[1].weight).T.copy(), as_np(layers[1].bias),
                       cfg.dropout_in, cfg.dropout), history


def head_graph(w: HeadWeights, samples: int, input_name: str = "embedding", opset: int = OPSET) -> onnx.ModelProto:
    """The head with ``samples`` MC-dropout draws as one ONNX model: ``input_name`` [N, D] -> va, va_var."""
    dim = w.w1.shape[0]
    inits = [numpy_helper.from_array(np.asarray(a, np.float32), name) for name, a in (
        ("head_mean", w.mean), ("head_std", w.std), ("head_w1", w.w1), ("head_b1", w.b1),
        ("head_w2", w.w2), ("head_b2", w.b2), ("head_eps", np.array(1e-12)))]
    inits += [numpy_helper.from_array(np.array([1, samples, 1], np.int64), "head_expand"),
              numpy_helper.from_array(np.array([1], np.int64), "head_axis1")]
    nodes = [
        helper.make_node("ReduceL2", [input_name], ["head_norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["head_norm", "head_eps"], ["head_norm_safe"]),
        helper.make_node("Div", [input_name, "head_norm_safe"], ["head_unit"]),
        helper.make_node("Sub", ["head_unit", "head_mean"], ["head_centred"]),
        helper.make_node("Div", ["head_centred", "head_std"], ["head_z"]),
        helper.make_node("Unsqueeze", ["head_z", "head_axis1"], ["head_z1"]),
        helper.make_node("Expand", ["head_z1", "head_expand"], ["head_rep"]),  # [N, samples, D]
    ]

    def dropout(x: str, p: float, tag: str) -> str:
        if p <= 0:
            return x
        inits.extend([numpy_helper.from_array(np.array(p, np.float32), f"head_p_{tag}"),
                      numpy_helper.from_array(np.array(1.0 / (1.0 - p), np.float32), f"head_keep_{tag}")])
        nodes.extend([
            helper.make_node("RandomUniformLike", [x], [f"head_u_{tag}"], dtype=TensorProto.FLOAT),
            helper.make_node("GreaterOrEqual", [f"head_u_{tag}", f"head_p_{tag}"], [f"head_keepmask_{tag}"]),
            helper.make_node("Cast", [f"head_keepmask_{tag}"], [f"head_mask_{tag}"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [x, f"head_mask_{tag}"], [f"head_dropped_{tag}"]),
            helper.make_node("Mul", [f"head_dropped_{tag}", f"head_keep_{tag}"], [f"head_out_{tag}"]),
        ])
        return f"head_out_{tag}"

    x = dropout("head_rep", w.dropout_in, "in")
    nodes += [helper.make_node("MatMul", [x, "head_w1"], ["head_h1"]),
              helper.make_node("Add", ["head_h1", "head_b1"], ["head_h1b"]),
              helper.make_node("Relu", ["head_h1b"], ["head_h"])]
    x = dropout("head_h", w.dropout, "hidden")
    nodes += [helper.make_node("MatMul", [x, "head_w2"], ["head_s0"]),
              helper.make_node("Add", ["head_s0", "head_b2"], ["head_samples"]),   # [N, samples, 2]
              helper.make_node("ReduceMean", ["head_samples"], ["va"], axes=[1], keepdims=0),
              helper.make_node("Unsqueeze", ["va", "head_axis1"], ["head_va1"]),
              helper.make_node("Sub", ["head_samples", "head_va1"], ["head_dev"]),
              helper.make_node("Mul", ["head_dev", "head_dev"], ["head_dev2"]),
              helper.make_node("ReduceMean", ["head_dev2"], ["va_var"], axes=[1], keepdims=0)]
    graph = helper.make_graph(
        nodes, "moodsic_scene_head",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", dim])],
        [helper.make_tensor_value_info("va", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("va_var", TensorProto.FLOAT, ["N", 2])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="moodsic-live")
    model.ir_version = 8
    if opset != OPSET:
        from onnx import version_converter
        model = version_converter.convert_version(model, opset)
    onnx.checker.check_model(model)
    return model


def numpy_head(w: HeadWeights, x: np.ndarray) -> np.ndarray:
    """The head without dropout (its expected output), for tests and checks."""
    z = (l2_normalise(x) - w.mean) / w.std
    return np.maximum(z @ w.w1 + w.b1, 0.0) @ w.w2 + w.b2
