"""Is a predicted variance honest? Expected vs observed squared error, by variance bin (pure)."""

from __future__ import annotations

import numpy as np


def calibration_table(pred_var: np.ndarray, sq_err: np.ndarray, bins: int = 5) -> list[dict]:
    """Bins of equal count by predicted variance: n, mean predicted variance, mean observed squared
    error, and their ratio (1.0 = calibrated; > 1 = over-confident)."""
    v, e = np.asarray(pred_var, np.float64).ravel(), np.asarray(sq_err, np.float64).ravel()
    order = np.argsort(v, kind="stable")
    rows = []
    for part in np.array_split(order, min(bins, max(len(v), 1))):
        if part.size == 0:
            continue
        pv, pe = float(v[part].mean()), float(e[part].mean())
        rows.append({"n": int(part.size), "predicted": pv, "observed": pe,
                     "ratio": pe / pv if pv > 0 else float("inf")})
    return rows


def calibration_summary(pred_var: np.ndarray, sq_err: np.ndarray, bins: int = 5) -> dict:
    """Overall ratio of mean squared error to mean predicted variance, the Gaussian negative
    log-likelihood per value (lower is better), and the table by bin."""
    v = np.maximum(np.asarray(pred_var, np.float64).ravel(), 1e-12)
    e = np.asarray(sq_err, np.float64).ravel()
    return {"ratio": float(e.mean() / v.mean()), "nll": float(0.5 * np.mean(np.log(2 * np.pi * v) + e / v)),
            "bins": calibration_table(v, e, bins)}


def calibration_markdown(report: dict[str, dict]) -> str:
    """``report``: {"valence": {"before": summary, "after": summary}, "arousal": {...}}."""
    lines = ["| dimension | bin | n | predicted var before | predicted var after | observed sq. error |",
             "|---|---|---|---|---|---|"]
    for dim, both in report.items():
        for i, (b, a) in enumerate(zip(both["before"]["bins"], both["after"]["bins"]), start=1):
            lines.append(f"| {dim} | {i} | {b['n']} | {b['predicted']:.4f} | {a['predicted']:.4f} | "
                         f"{b['observed']:.4f} |")
        lines.append(f"| {dim} | all | | ratio {both['before']['ratio']:.2f}, NLL {both['before']['nll']:.3f} | "
                     f"ratio {both['after']['ratio']:.2f}, NLL {both['after']['nll']:.3f} | |")
    return "\n".join(lines)
