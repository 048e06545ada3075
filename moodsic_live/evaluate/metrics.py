"""Agreement measures (pure): MAE, Pearson r, Spearman rho, Lin's concordance correlation (CCC)."""

from __future__ import annotations

import math

import numpy as np


def _pair(truth, pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(truth, np.float64), np.asarray(pred, np.float64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"truth and prediction must be 1-D of one length, got {t.shape} and {p.shape}")
    keep = np.isfinite(t) & np.isfinite(p)
    return t[keep], p[keep]


def mae(truth, pred) -> float:
    t, p = _pair(truth, pred)
    return float(np.mean(np.abs(t - p))) if t.size else math.nan


def pearson(truth, pred) -> float:
    t, p = _pair(truth, pred)
    if t.size < 2 or np.std(t) == 0 or np.std(p) == 0:
        return math.nan
    return float(np.corrcoef(t, p)[0, 1])


def spearman(truth, pred) -> float:
    from scipy.stats import rankdata

    t, p = _pair(truth, pred)
    if t.size < 2:
        return math.nan
    return pearson(rankdata(t), rankdata(p))


def ccc(truth, pred) -> float:
    """Lin's concordance correlation: 2 cov / (var_t + var_p + (mean_t − mean_p)²); 1 only for p = t."""
    t, p = _pair(truth, pred)
    if t.size < 2:
        return math.nan
    cov = np.mean((t - t.mean()) * (p - p.mean()))
    denom = t.var() + p.var() + (t.mean() - p.mean()) ** 2
    return float(2 * cov / denom) if denom > 0 else math.nan


def confusion(truth: list[str], pred: list[str], labels: list[str]) -> np.ndarray:
    """Counts ``[i, j]`` of truth ``labels[i]`` predicted as ``labels[j]``."""
    index = {name: i for i, name in enumerate(labels)}
    out = np.zeros((len(labels), len(labels)), np.int64)
    for t, p in zip(truth, pred):
        out[index[t], index[p]] += 1
    return out


def jsonable(obj):
    """``obj`` with NaN/inf floats as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
