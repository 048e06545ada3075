"""FindingEmo (Mertens et al., NeurIPS 2024 D&B): its annotation file, its image folders, and the split.

The real layout, as the ``findingemo-light`` package ships the annotations and its downloader saves
the images::

    ROOT/annotations_single.ann      CSV: index,user,image_path,tags,age,valence,arousal,emotion,
                                          dec_factors,ambiguity,datetime
    ROOT/Run_1/<query>/<image>.jpg   image_path is "/Run_1/<query>/<image>.jpg", relative to ROOT
    ROOT/Run_2/<query>/<image>.jpg

Valence is on [-3, 3] and arousal on [0, 6] (integers); every value is converted to the reference
space with :func:`moodsic_live.scales.to_reference` (the seed converted only |x| > 1 and so silently
corrupted V = -1, 0, 1 and A = 0, 1). Rows whose image is missing are counted and skipped.

The split is 70/15/15, stratified on valence x arousal bins, with a fixed seed: each stratum is
shuffled on its own and cut at 70 % and 85 %, so every split has the label distribution of the whole
and the same annotation file always gives the same split (the evaluation reuses it).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError, ScaleError
from moodsic_live.scales import to_reference

ANNOTATION_NAMES = ("annotations_single.ann", "annotations.ann", "annotations.csv")
REQUIRED = ("image_path", "valence", "arousal")
SPLITS = ("train", "val", "test")
FRACTIONS = (0.70, 0.15, 0.15)
SEED = 20240201  # fixed: the split is part of the benchmark


@dataclass(frozen=True)
class Annotation:
    image: str            # "Run_2/<query>/<name>.jpg", relative to ROOT
    valence: float        # reference space [-1, 1]
    arousal: float        # reference space [-1, 1]
    raw_valence: float    # FindingEmo units [-3, 3]
    raw_arousal: float    # FindingEmo units [0, 6]
    emotion: str = ""
    age: str = ""


@dataclass(frozen=True)
class FindingEmo:
    root: Path
    annotations_file: Path
    items: tuple[Annotation, ...]   # the rows whose image exists, sorted by image path
    missing: int                    # rows skipped: image not on disk
    unlabelled: int                 # rows skipped: empty valence or arousal

    def path(self, item: Annotation) -> Path:
        return self.root / item.image

    def labels(self, items: list[Annotation] | tuple[Annotation, ...] | None = None) -> np.ndarray:
        return np.array([[a.valence, a.arousal] for a in (self.items if items is None else items)], np.float64)

    def fingerprint(self) -> str:
        """Changes when the rows or their labels change (training state is only resumed on the same data)."""
        h = hashlib.sha256()
        for a in self.items:
            h.update(f"{a.image}\t{a.raw_valence}\t{a.raw_arousal}\n".encode())
        return h.hexdigest()[:16]


def find_annotations(root: Path, annotations: Path | None = None) -> Path:
    if annotations is not None:
        if not annotations.is_file():
            raise InputError(f"FindingEmo annotations {annotations} do not exist; give the .ann/.csv file "
                             "that lists image_path, valence, arousal")
        return annotations
    for name in ANNOTATION_NAMES:
        if (root / name).is_file():
            return root / name
    raise InputError(f"{root} has no FindingEmo annotation file ({', '.join(ANNOTATION_NAMES)}); put "
                     "annotations_single.ann (from the findingemo-light package) there or give --annotations FILE")


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a number") from None


def read_findingemo(root: Path, annotations: Path | None = None) -> FindingEmo:
    """Read FindingEmo's annotations under ``root`` (layout in the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"FindingEmo root {root} is not a folder; give the folder that holds Run_1/ and Run_2/")
    ann = find_annotations(root, annotations)
    if not any((root / run).is_dir() for run in ("Run_1", "Run_2")):
        raise InputError(f"{root} has no Run_1/ or Run_2/ image folder: FindingEmo's images live there "
                         "(download them with findingemo-light's download_data into this folder)")
    try:
        with open(ann, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            lacking = [c for c in REQUIRED if c not in columns]
            if lacking:
                raise InputError(f"{ann} is not a FindingEmo annotation file: no column(s) {', '.join(lacking)} "
                                 f"(found: {', '.join(columns) or 'nothing'})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"FindingEmo annotations {ann} cannot be read ({exc}); check the file") from None
    items: dict[str, Annotation] = {}
    missing = unlabelled = 0
    for line, row in enumerate(rows, start=2):
        image = (row.get("image_path") or "").strip().lstrip("/\\").replace("\\", "/")
        v_text, a_text = (row.get("valence") or "").strip(), (row.get("arousal") or "").strip()
        if not image:
            continue
        if not v_text or not a_text:
            unlabelled += 1
            continue
        where = f"{ann.name} line {line}"
        rv, ra = _number(v_text, where), _number(a_text, where)
        try:
            v = to_reference(rv, "findingemo", "valence")
            a = to_reference(ra, "findingemo", "arousal")
        except ScaleError as exc:
            raise InputError(f"{where}: {exc}") from None
        if not (root / image).is_file():
            missing += 1
            continue
        items[image] = Annotation(image, v, a, rv, ra, (row.get("emotion") or "").strip(),
                                  (row.get("age") or "").strip())
    if not items:
        raise InputError(f"none of the {len(rows)} annotated images of {ann.name} is under {root} "
                         f"({missing} missing); check the root folder")
    return FindingEmo(root, ann, tuple(items[k] for k in sorted(items)), missing, unlabelled)


def strata(labels: np.ndarray) -> np.ndarray:
    """A stratum per item: valence negative / neutral / positive x arousal low / middle / high
    (reference space; on FindingEmo's integer grid: V < 0, 0, > 0 and A 0-1, 2-3, 4-6)."""
    v = np.digitize(labels[:, 0], [-1e-9, 1e-9])
    a = np.digitize(labels[:, 1], [-0.5 + 1e-9, 1.0 / 6.0 + 1e-9])
    return v * 3 + a


def split(items: tuple[Annotation, ...] | list[Annotation], seed: int = SEED,
          fractions: tuple[float, float, float] = FRACTIONS) -> dict[str, list[Annotation]]:
    """70/15/15 (by default), stratified on V/A bins, reproducible for a seed whatever the row order."""
    ordered = sorted(items, key=lambda a: a.image)
    labels = np.array([[a.valence, a.arousal] for a in ordered], np.float64).reshape(-1, 2)
    groups = strata(labels)
    rng = np.random.default_rng(seed)
    cut1, cut2 = fractions[0], fractions[0] + fractions[1]
    out: dict[str, list[int]] = {name: [] for name in SPLITS}
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        idx = idx[rng.permutation(idx.size)]
        n = idx.size
        a, b = int(round(n * cut1)), int(round(n * cut2))
        out["train"] += idx[:a].tolist()
        out["val"] += idx[a:b].tolist()
        out["test"] += idx[b:].tolist()
    return {name: [ordered[i] for i in sorted(out[name])] for name in SPLITS}
