"""``moodsic-live eval faces DIR --labels CSV``: the face expert against labelled face photos.

The CSV names each photo (``file``, relative to DIR) and its FER-style label (``emotion``: anger,
disgust, fear, happiness, sadness, surprise, neutral; common aliases such as "happy" are accepted).
Every photo runs through the real perceiver (detector + face expert). Reported: how many photos had a
face, class accuracy (overall and macro: the mean recall of the labels present), per-class recall, the
confusion matrix over the seven classes, and valence sign agreement — for labels with a clear sign
(happiness +; anger, disgust, fear, sadness −) the share whose estimated valence has that sign — with
the mean estimated valence per label.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError
from moodsic_live.evaluate.metrics import confusion
from moodsic_live.perceive.estimate import FER_LABELS

SIGN = {"happiness": 1, "anger": -1, "disgust": -1, "fear": -1, "sadness": -1}
ALIASES = {"happy": "happiness", "smiling": "happiness", "joy": "happiness", "sad": "sadness",
           "angry": "anger", "surprised": "surprise", "fearful": "fear", "disgusted": "disgust", "calm": "neutral"}


@dataclass(frozen=True)
class LabelledFace:
    path: Path
    label: str


def read_labels(csv_path: Path, root: Path) -> tuple[list[LabelledFace], list[str]]:
    """The labelled photos that exist, and one line per row skipped (missing image)."""
    try:
        rows = list(csv.DictReader(open(csv_path, encoding="utf-8", newline="")))
    except OSError as exc:
        raise InputError(f"labels {csv_path} cannot be read ({exc.strerror}); give the CSV with --labels") from None
    if not rows:
        raise InputError(f"labels {csv_path} has no rows; expected columns file,emotion")
    columns = set(rows[0])
    file_col = next((c for c in ("file", "path", "image") if c in columns), None)
    label_col = next((c for c in ("emotion", "label", "expression") if c in columns), None)
    if file_col is None or label_col is None:
        raise InputError(f"labels {csv_path}: columns {sorted(columns)}; expected file and emotion")
    items, skipped = [], []
    for n, row in enumerate(rows, start=2):
        label = row[label_col].strip().lower()
        label = ALIASES.get(label, label)
        if label not in FER_LABELS:
            raise InputError(f"labels {csv_path} line {n}: {row[label_col]!r} is not one of {', '.join(FER_LABELS)}")
        path = root / row[file_col]
        if not path.is_file():
            skipped.append(f"{path}: missing")
            continue
        items.append(LabelledFace(path, label))
    return items, skipped


def evaluate_faces(items: list[LabelledFace], perceiver) -> dict:
    from moodsic_live.capture.stills import image_frame

    truth, pred, valence, unreadable, no_face = [], [], [], 0, 0
    for item in items:
        try:
            p = perceiver.perceive(image_frame(item.path))
        except InputError:
            unreadable += 1
            continue
        if p.face is None or not p.face.probabilities:
            no_face += 1
            continue
        probs = p.face.probabilities
        truth.append(item.label)
        pred.append(max(probs, key=probs.get))
        valence.append(p.face.estimate.valence)
    matrix = confusion(truth, pred, list(FER_LABELS))
    present = [i for i, name in enumerate(FER_LABELS) if matrix[i].sum() > 0]
    recall = {FER_LABELS[i]: float(matrix[i, i] / matrix[i].sum()) for i in present}
    v = np.asarray(valence)
    labels = np.asarray(truth)
    signed = np.array([SIGN.get(t, 0) for t in truth])
    has_sign = signed != 0
    agreement = float(np.mean(np.sign(v[has_sign]) == signed[has_sign])) if has_sign.any() else None
    found = len(truth)
    return {
        "photos": len(items), "faces_found": found, "no_face": no_face, "unreadable": unreadable,
        "coverage": found / len(items) if items else None,
        "accuracy": float(np.trace(matrix) / found) if found else None,
        "macro_accuracy": float(np.mean(list(recall.values()))) if recall else None,
        "per_class": {name: {"n": int(matrix[FER_LABELS.index(name)].sum()), "recall": r} for name, r in recall.items()},
        "confusion": {"labels": list(FER_LABELS), "matrix": matrix.tolist()},
        "valence_sign_agreement": agreement,
        "mean_valence": {name: float(v[labels == name].mean()) for name in recall},
    }


def markdown(report: dict) -> str:
    def pct(x):
        return "–" if x is None else f"{100 * x:.1f} %"

    lines = [f"Faces found in {report['faces_found']} of {report['photos']} photos ({pct(report['coverage'])}); "
             f"accuracy {pct(report['accuracy'])}, macro {pct(report['macro_accuracy'])}, "
             f"valence sign agreement {pct(report['valence_sign_agreement'])}.", "",
             "| label | n | recall | mean valence |", "|---|---|---|---|"]
    for name, row in report["per_class"].items():
        lines.append(f"| {name} | {row['n']} | {pct(row['recall'])} | {report['mean_valence'][name]:+.2f} |")
    labels = report["confusion"]["labels"]
    lines += ["", "Confusion (rows: label, columns: predicted):", "",
              "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for name, row in zip(labels, report["confusion"]["matrix"]):
        if sum(row):
            lines.append(f"| {name} | " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)
