"""``moodsic-live eval findingemo ROOT --split test``: the app's experts on FindingEmo's images.

Every image of the split (the training command's split: same seed, same strata) runs through the
real perceiver once; its scene expert, face expert (primary face, when one is found) and fused
estimate are each scored against the human labels: MAE in FindingEmo units (V on [-3, 3], A on
[0, 6]) and in reference units ([-1, 1]), their average, Pearson, Spearman rho and CCC per
dimension, next to a constant baseline (the training split's median label). Face-only scores are
on the images with a face, with the coverage beside them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError
from moodsic_live.evaluate.metrics import ccc, jsonable, mae, pearson, spearman
from moodsic_live.scales import from_reference
from moodsic_live.train.findingemo import SPLITS, FindingEmo, read_findingemo, split

DIMS = ("valence", "arousal")
SOURCES = ("scene", "face", "fused", "baseline")


def scores(truth: np.ndarray, pred: np.ndarray) -> dict:
    """Per dimension: MAE (reference and FindingEmo units), Pearson, Spearman, CCC; plus the mean MAE."""
    out: dict = {"n": int(len(truth))}
    for i, dim in enumerate(DIMS):
        t, p = truth[:, i], np.clip(pred[:, i], -1.0, 1.0)
        out[dim] = {"mae": mae(t, p),
                    "mae_findingemo": mae(from_reference(t, "findingemo", dim), from_reference(p, "findingemo", dim)),
                    "pearson": pearson(t, p), "spearman": spearman(t, p), "ccc": ccc(t, p)}
    out["mean_mae"] = float(np.mean([out[d]["mae"] for d in DIMS])) if len(truth) else None
    out["mean_mae_findingemo"] = float(np.mean([out[d]["mae_findingemo"] for d in DIMS])) if len(truth) else None
    return out


def evaluate_findingemo(root: Path, perceiver, split_name: str = "test", *, annotations: Path | None = None,
                        limit: int = 0, say: Callable[[str], None] = print, data: FindingEmo | None = None) -> dict:
    """``data``: the dataset already read from ``root`` (read here when None)."""
    from moodsic_live.capture.stills import image_frame

    if split_name not in SPLITS + ("all",):
        raise InputError(f"unknown split {split_name!r}: use {', '.join(SPLITS)} or all")
    data = data or read_findingemo(root, annotations)
    parts = split(data.items)
    items = list(data.items) if split_name == "all" else parts[split_name]
    if limit:
        items = items[:limit]
    baseline = np.median(data.labels(parts["train"]), axis=0)
    truth, scene, face, fused, has_face, unreadable = [], [], [], [], [], 0
    start = time.monotonic()
    for n, item in enumerate(items, start=1):
        try:
            p = perceiver.perceive(image_frame(data.path(item)))
        except InputError:
            unreadable += 1
            continue
        truth.append((item.valence, item.arousal))
        scene.append((p.scene.valence, p.scene.arousal) if p.scene else (np.nan, np.nan))
        face.append((p.face.estimate.valence, p.face.estimate.arousal) if p.face else (np.nan, np.nan))
        has_face.append(p.face is not None)
        fused.append((p.fused.valence, p.fused.arousal))
        if n % 100 == 0 or n == len(items):
            rate = n / max(time.monotonic() - start, 1e-6)
            say(f"{n}/{len(items)} images  {rate:.1f}/s  ETA {(len(items) - n) / rate / 60:.1f} min")
    if not truth:
        raise InputError(f"no image of the {split_name} split could be read under {root}")
    t = np.asarray(truth)
    faces = np.asarray(has_face)
    s, f, u = np.asarray(scene), np.asarray(face), np.asarray(fused)
    has_scene = np.isfinite(s).all(axis=1)
    report = {
        "root": str(root), "split": split_name, "images": len(items), "evaluated": len(truth),
        "unreadable": unreadable, "missing_in_dataset": data.missing,
        "face_coverage": float(faces.mean()),
        "baseline_median": {"valence": float(baseline[0]), "arousal": float(baseline[1])},
        "scene": scores(t[has_scene], s[has_scene]) if has_scene.any() else None,
        "face": scores(t[faces], f[faces]) if faces.any() else None,
        "fused": scores(t, u),
        "baseline": scores(t, np.tile(baseline, (len(t), 1))),
        "baseline_on_faces": scores(t[faces], np.tile(baseline, (int(faces.sum()), 1))) if faces.any() else None,
    }
    return jsonable(report)


def _cell(x, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def markdown(report: dict) -> str:
    lines = [f"FindingEmo {report['split']} split: {report['evaluated']} images "
             f"(face found in {100 * report['face_coverage']:.0f} %). MAE in FindingEmo units (V on [-3, 3], "
             "A on [0, 6]; reference units [-1, 1] are a third of these).", "",
             "| expert | n | V-MAE | A-MAE | mean MAE | V Pearson | A Pearson | V Spearman | A Spearman | V CCC | A CCC |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    names = {"scene": "scene only", "face": "face only (images with a face)", "fused": "fused",
             "baseline": "constant median (train)", "baseline_on_faces": "constant median, images with a face"}
    for key, label in names.items():
        r = report.get(key)
        if not r:
            continue
        v, a = r["valence"], r["arousal"]
        lines.append(f"| {label} | {r['n']} | {_cell(v['mae_findingemo'], '.2f')} | {_cell(a['mae_findingemo'], '.2f')} | "
                     f"{_cell(r['mean_mae_findingemo'], '.2f')} | {_cell(v['pearson'], '+.2f')} | "
                     f"{_cell(a['pearson'], '+.2f')} | {_cell(v['spearman'], '+.2f')} | {_cell(a['spearman'], '+.2f')} | "
                     f"{_cell(v['ccc'], '+.2f')} | {_cell(a['ccc'], '+.2f')} |")
    return "\n".join(lines)
