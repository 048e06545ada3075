"""``moodsic-live train scene``: a scene expert from FindingEmo and an exported image backbone.

1. Read FindingEmo (labels through the scales module), split 70/15/15 stratified (fixed seed).
2. Embed every image once with the backbone ONNX (cached, resumable shards).
3. Train the head (MSE + CCC, early stopping restoring the best epoch; resumable).
4. Calibrate the variance on the validation split: the head's MC-dropout variance, scaled and
   floored per dimension (:func:`moodsic_live.perceive.fusion.fit_variance_calibration`) so that it
   matches the real squared error there; before/after by variance bin, also on the test split.
5. Write ONE ONNX file, backbone + head (MC dropout inside, one call), and its expert manifest: the
   app loads it with ``--scene-model FILE.onnx`` through the expert contract, no code change.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from moodsic_live.errors import InputError, ModelError
from moodsic_live.evaluate.calibration import calibration_summary
from moodsic_live.evaluate.findingemo import scores
from moodsic_live.evaluate.metrics import jsonable
from moodsic_live.perceive.contract import FORMAT, InputSpec, write_manifest
from moodsic_live.perceive.fusion import fit_variance_calibration
from moodsic_live.perceive.runtime import InferenceRuntime
from moodsic_live.train.backbone import load_backbone_manifest
from moodsic_live.train.embeddings import EmbeddingCache
from moodsic_live.train.findingemo import read_findingemo, split
from moodsic_live.train.head import HeadConfig, head_graph, train_head

DIMS = ("valence", "arousal")


def _run_head(session, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    va, var = session.run(["va", "va_var"], {session.get_inputs()[0].name: x.astype(np.float32)})
    return va.astype(np.float64), var.astype(np.float64)


def _merge(backbone: onnx.ModelProto, head: onnx.ModelProto, output: str) -> onnx.ModelProto:
    from onnx import compose

    merged = compose.merge_models(backbone, head, io_map=[(output, head.graph.input[0].name)],
                                  doc_string="moodsic-live scene expert: backbone + head with MC dropout")
    onnx.checker.check_model(merged)
    return merged


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def train_scene(root: Path, backbone_path: Path, out: Path, cache_dir: Path, cfg: HeadConfig = HeadConfig(),
                *, annotations: Path | None = None, provider: str = "auto", restart: bool = False,
                say: Callable[[str], None] = print, after_epoch: Callable[[int], None] | None = None) -> dict:
    data = read_findingemo(root, annotations)
    say(f"FindingEmo: {len(data.items)} images with labels from {data.annotations_file.name}"
        + (f"; {data.missing} annotated images missing, skipped" if data.missing else "")
        + (f"; {data.unlabelled} rows without labels, skipped" if data.unlabelled else ""))
    bb = load_backbone_manifest(backbone_path)
    runtime = InferenceRuntime(provider)
    session = runtime.session(backbone_path, name="backbone")
    say(f"backbone {backbone_path.name}: {bb.kind}, {bb.dim}-d embedding, input {bb.size[0]}x{bb.size[1]}, "
        f"on {runtime.provider}")
    outs = {o.name: o.shape for o in session.get_outputs()}
    if bb.output_name not in outs:
        raise ModelError(f"backbone {backbone_path.name} has no output {bb.output_name!r} (outputs: "
                         f"{', '.join(outs)}); export it again with `moodsic-live models export-backbone`")
    last = outs[bb.output_name][-1]
    if isinstance(last, int) and last != bb.dim:
        raise ModelError(f"backbone {backbone_path.name} gives {last}-d embeddings but its manifest says {bb.dim}; "
                         "export it again with `moodsic-live models export-backbone`")
    spec = InputSpec(name=bb.input_name, size=tuple(bb.size), colour=bb.colour, layout="NCHW", scale=bb.scale,
                     mean=tuple(bb.mean), std=tuple(bb.std))

    parts = split(data.items)
    names = [a.image for a in data.items]
    emb = EmbeddingCache(cache_dir, bb.sha256).embeddings(root, names, session, spec, bb.output_name, say)
    if emb.shape[1] != bb.dim:
        raise ModelError(f"backbone {backbone_path.name} gave {emb.shape[1]}-d embeddings, its manifest says "
                         f"{bb.dim}; export it again with `moodsic-live models export-backbone`")
    row = {n: i for i, n in enumerate(names)}
    good = np.isfinite(emb).all(axis=1)
    unreadable = int((~good).sum())
    if unreadable:
        say(f"{unreadable} images could not be decoded: skipped")
    sets = {}
    for name, items in parts.items():
        idx = np.array([row[a.image] for a in items if good[row[a.image]]], np.int64)
        sets[name] = (emb[idx], data.labels([data.items[i] for i in idx]))
    sizes = {k: len(v[0]) for k, v in sets.items()}
    say(f"split (stratified, fixed seed): train {sizes['train']}, validation {sizes['val']}, test {sizes['test']}")
    if min(sizes.values()) < 2:
        raise InputError(f"too few usable images to train and check a head ({sizes}); FindingEmo has ~25,000")

    work = cache_dir / f"train-scene-{bb.sha256[:12]}"
    work.mkdir(parents=True, exist_ok=True)
    state = work / "head-state.pt"
    if restart:
        state.unlink(missing_ok=True)
    (tx, ty), (vx, vy), (sx, sy) = sets["train"], sets["val"], sets["test"]
    weights, history = train_head(tx, ty, vx, vy, cfg, state, data.fingerprint(), say, after_epoch)

    backbone_model = onnx.load(str(backbone_path))
    head = head_graph(weights, cfg.mc_samples, input_name="head_embedding", opset=_opset(backbone_model))
    head_session = runtime.session(head.SerializeToString(), name="head")
    va_val, var_val = _run_head(head_session, vx)
    calibration, report_cal = {}, {}
    va_test, var_test = _run_head(head_session, sx)
    for i, dim in enumerate(DIMS):
        err = (va_val[:, i] - vy[:, i]) ** 2
        scale, floor = fit_variance_calibration(var_val[:, i], err)
        calibration[dim] = [scale, floor]
        test_err = (va_test[:, i] - sy[:, i]) ** 2
        report_cal[dim] = {
            "scale": scale, "floor": floor,
            "validation": {"before": calibration_summary(var_val[:, i], err),
                           "after": calibration_summary(scale * var_val[:, i] + floor, err)},
            "test": {"before": calibration_summary(var_test[:, i], test_err),
                     "after": calibration_summary(scale * var_test[:, i] + floor, test_err)}}
        say(f"variance calibration, {dim}: x{scale:.3g} + {floor:.3g}; validation error/variance "
            f"{report_cal[dim]['validation']['before']['ratio']:.2f} -> {report_cal[dim]['validation']['after']['ratio']:.2f}, "
            f"test {report_cal[dim]['test']['before']['ratio']:.2f} -> {report_cal[dim]['test']['after']['ratio']:.2f}")

    baseline = np.median(ty, axis=0)
    results = {"model": scores(sy, va_test), "baseline_median": scores(sy, np.tile(baseline, (len(sy), 1)))}
    for dim in DIMS:
        m, b = results["model"][dim], results["baseline_median"][dim]
        say(f"test {dim}: MAE {m['mae_findingemo']:.3f} (FindingEmo units; median baseline {b['mae_findingemo']:.3f}), "
            f"Spearman {m['spearman']:+.3f}, CCC {m['ccc']:+.3f}")

    merged = _merge(backbone_model, head, bb.output_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        onnx.save(merged, str(tmp))
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {out} ({exc.strerror}); choose a writable path with --out") from None
    report = {"images": len(data.items), "missing": data.missing, "unreadable": unreadable, "split": sizes,
              "epochs": len(history), "best_epoch": int(np.argmin([h["val_loss"] for h in history]) + 1),
              "test": results, "calibration": report_cal, "baseline": baseline.tolist()}
    manifest = {
        "format": FORMAT, "name": out.stem, "expert": "scene",
        "input": {"name": bb.input_name, "layout": "NCHW", "size": list(bb.size), "colour": bb.colour,
                  "scale": bb.scale, "mean": list(bb.mean), "std": list(bb.std)},
        "outputs": {"valence_arousal": {"name": "va", "scale": "reference"}, "variance": {"name": "va_var"}},
        "mc_dropout_samples": 0,  # the graph draws its own samples: one call gives their mean and variance
        "variance_calibration": calibration,
        "source": f"trained on FindingEmo ({data.annotations_file.name}) with backbone {backbone_path.name} "
                  f"({bb.kind}, {bb.source})",
        "license": "FindingEmo annotations: non-commercial research use only (see the dataset's terms)",
        "build": {"backbone_sha256": bb.sha256, "data_fingerprint": data.fingerprint(),
                  "mc_dropout": {"samples": cfg.mc_samples, "in_graph": True},
                  "head": {k: getattr(cfg, k) for k in ("hidden", "dropout_in", "dropout", "ccc_weight", "seed")},
                  "report": report},
    }
    write_manifest(out.with_suffix(".json"), jsonable(manifest))
    say(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.with_suffix('.json').name}; "
        f"use it with --scene-model {out}")
    return report
