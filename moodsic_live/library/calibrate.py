"""Fit the audio → valence/arousal model on music with human annotations.

``moodsic-live library calibrate --deam ROOT`` reads any library in DEAM's layout, analyses
the songs that have audio and a dynamic annotation (features are cached), and fits one ridge
regression per dimension on the standardised features, one row per annotated 0.5 s step.
The regression is centred on the built-in literature model (it fits the *correction* to it),
so with few annotated songs the result stays close to the literature and with many it is
free to move wherever the annotations say.

With the music tagger (the default), each step also has the tags' valence and arousal
(:mod:`moodsic_live.library.tag_va`) and the regression fits the combination: 12 inputs, centred
on the built-in inverse-variance combination at full tag trust.

It reports honest numbers: a song-wise K-fold (no song is ever in both the fitting and the
scoring part, since steps of one song are strongly correlated) gives the held-out Pearson r
and RMSE of the calibrated model ("after"), next to the built-in model's on the same steps
("before"; with the tagger also the features-only built-in model's). The final model is then
fitted on all songs and saved (atomically) as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError
from moodsic_live.library import deam as deam_mod
from moodsic_live.library.analysis import analyse_files, sha1_file
from moodsic_live.library.audio_va import SIGN_AGREEMENT, AudioVAModel, noise_variance
from moodsic_live.library.model import SERIES_HZ

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


@dataclass(frozen=True)
class Scores:
    r: float
    rmse: float

    def text(self) -> str:
        return f"r {self.r:+.2f}  RMSE {self.rmse:.3f}"


def scores(truth: np.ndarray, pred: np.ndarray) -> Scores:
    r = float(np.corrcoef(truth, pred)[0, 1]) if np.std(pred) > 1e-9 and np.std(truth) > 1e-9 else 0.0
    return Scores(r=r, rmse=float(np.sqrt(np.mean((truth - pred) ** 2))))


@dataclass
class Dataset:
    x: np.ndarray       # (n, features)
    y: np.ndarray       # (n, 2) human valence, arousal
    groups: np.ndarray  # (n,) song index
    songs: list[str]
    tags: np.ndarray | None = None  # (n, 4) the tags' valence, arousal, trusts; None: features only


def annotated_steps(root: Path, cache_dir: Path, workers: int = 0, progress: bool = True,
                    va=None) -> Dataset:
    """Feature (and tag) rows at every human-annotated step of every song with audio under ``root``.
    ``va``: a :class:`moodsic_live.library.builder.AudioVA`; with its tagger, tags are analysed too."""
    from moodsic_live.library.tagger import tag_va

    tagging = va.tagging if va is not None else None
    rel = deam_mod.find_deam(root)
    songs = rel.with_both
    if len(songs) < 3:
        raise InputError(f"{root}: {len(songs)} songs have both audio and a dynamic annotation; calibration "
                         "needs at least 3 (DEAM layout: MEMD_audio/<id>.mp3 + valence.csv/arousal.csv)")
    results = analyse_files([(rel.audio[s], sha1_file(rel.audio[s])) for s in songs], cache_dir, workers,
                            progress=progress, tagging=tagging)
    xs, ts, ys, gs, used = [], [], [], [], []
    for song, res in zip(songs, results):
        if res.features is None or (tagging is not None and res.tags is None):
            continue
        series = rel.dynamic[song]
        idx = np.round(series.t * SERIES_HZ).astype(int)
        n = len(res.features.values) if tagging is None else min(len(res.features.values), len(res.tags))
        ok = idx < n
        if not ok.any():
            continue
        xs.append(res.features.values[idx[ok]])
        if tagging is not None:
            ts.append(tag_va(res.tags, va.meanings)[idx[ok]])
        ys.append(np.column_stack([series.valence[ok], series.arousal[ok]]))
        gs.append(np.full(int(ok.sum()), len(used)))
        used.append(song)
    if len(used) < 3:
        raise InputError(f"{root}: fewer than 3 annotated songs could be analysed")
    return Dataset(np.vstack(xs).astype(np.float64), np.vstack(ys).astype(np.float64), np.concatenate(gs), used,
                   np.vstack(ts).astype(np.float64) if ts else None)


def _prior(tags: bool) -> tuple[np.ndarray, np.ndarray, AudioVAModel]:
    """Weights (valence, arousal) of the built-in model over the model's inputs, and the model;
    with tags: the inverse-variance combination at full trust, which is linear."""
    base = AudioVAModel.builtin()
    if not tags:
        return base.valence_w, base.arousal_w, base
    out = []
    for dim, w in enumerate((base.valence_w, base.arousal_w)):
        inv_f = 1.0 / noise_variance(SIGN_AGREEMENT["features"][dim])
        inv_t = 1.0 / noise_variance(SIGN_AGREEMENT["tags"][dim])
        share = inv_t / (inv_f + inv_t)
        tag_w = np.zeros(2)
        tag_w[dim] = share
        out.append(np.concatenate([w * (1.0 - share), tag_w]))
    mean = np.concatenate([base.mean, np.zeros(2)])
    scale = np.concatenate([base.scale, np.ones(2)])
    prior = AudioVAModel(mean=mean, scale=scale, valence_w=out[0], valence_b=0.0, arousal_w=out[1],
                         arousal_b=0.0, fusion="linear")
    return out[0], out[1], prior


def _inputs(data: Dataset, rows=slice(None)) -> np.ndarray:
    return data.x[rows] if data.tags is None else np.column_stack([data.x[rows], data.tags[rows, :2]])


def _fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray, origin: str, metrics: dict,
         tags: bool = False) -> AudioVAModel:
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold

    wv0, wa0, prior = _prior(tags)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    folds = min(5, len(np.unique(groups)))
    cv = list(GroupKFold(n_splits=folds).split(z, groups=groups))
    fitted = []
    for dim, w0 in enumerate((wv0, wa0)):
        # The prior in this standardisation: ((x - m0) / s0) . w0 == b + z . w
        w_prior = w0 * scale / prior.scale
        b_prior = float(((mean - prior.mean) / prior.scale) @ w0)
        ridge = RidgeCV(alphas=ALPHAS, cv=cv).fit(z, y[:, dim] - (b_prior + z @ w_prior))
        fitted.append((w_prior + ridge.coef_, b_prior + float(ridge.intercept_)))
    (wv, bv), (wa, ba) = fitted
    return AudioVAModel(mean=mean, scale=scale, valence_w=wv, valence_b=bv, arousal_w=wa, arousal_b=ba,
                        origin=origin, metrics=metrics, fusion="linear" if tags else "features")


def predict_steps(model: AudioVAModel, data: Dataset, rows=slice(None)) -> tuple[np.ndarray, np.ndarray]:
    if model.fusion == "features":
        return model.predict(data.x[rows])
    return model.predict(data.x[rows], data.tags[rows])


def evaluate(data: Dataset, folds: int = 5) -> dict:
    """Song-wise K-fold held-out scores of the calibrated model ("after"), and the built-in
    model's ("before"; with tags also the features-only built-in model's)."""
    from sklearn.model_selection import GroupKFold

    tags = data.tags is not None
    k = min(folds, len(data.songs))
    pred = np.zeros_like(data.y)
    for train, test in GroupKFold(n_splits=k).split(data.x, groups=data.groups):
        model = _fit(_inputs(data, train), data.y[train], data.groups[train], "fold", {}, tags)
        pred[test, 0], pred[test, 1] = predict_steps(model, data, test)
    bv, ba = predict_steps(AudioVAModel.builtin(tags=tags), data)
    out = {"songs": len(data.songs), "steps": int(len(data.y)), "folds": k,
           "inputs": "10 features + musicnn tags" if tags else "10 features",
           "held_out": {"valence": scores(data.y[:, 0], pred[:, 0]).__dict__,
                        "arousal": scores(data.y[:, 1], pred[:, 1]).__dict__},
           "builtin": {"valence": scores(data.y[:, 0], bv).__dict__,
                       "arousal": scores(data.y[:, 1], ba).__dict__}}
    if tags:
        fv, fa = AudioVAModel.builtin().predict(data.x)
        out["features_builtin"] = {"valence": scores(data.y[:, 0], fv).__dict__,
                                   "arousal": scores(data.y[:, 1], fa).__dict__}
    return out


def calibrate(root: Path, cache_dir: Path, workers: int = 0, progress: bool = True, va=None) -> AudioVAModel:
    """Evaluate (held out), then fit on every annotated song. The metrics travel with the model."""
    data = annotated_steps(Path(root), cache_dir, workers, progress, va)
    metrics = evaluate(data)
    return _fit(_inputs(data), data.y, data.groups,
                f"calibrated on {len(data.songs)} annotated songs under {Path(root).resolve()}", metrics,
                data.tags is not None)
