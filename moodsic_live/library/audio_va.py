"""From music-emotion features to valence and arousal: a documented linear model.

Each feature (see :mod:`moodsic_live.library.features`) is standardised, then

    valence = clip(b_v + w_v · z, -1, 1)        arousal = clip(b_a + w_a · z, -1, 1)

The **built-in** model's weights are not fitted to any dataset: their signs and relative sizes
follow the music-emotion literature (Gabrielsson & Lindström 2010's review; Eerola et al. 2009;
Schubert 2004; Yang & Chen 2012), and the standardisation uses typical values of produced music
(loudness around −18 dBFS, ±5 dB; centroid around 1.5 kHz; and so on):

* arousal rises with loudness, onset rate, spectral flux, tempo and brightness (centroid) —
  the strongest and best-replicated relations in the literature;
* valence rises with major mode, tonal clarity, and tempo and brightness a little, and falls
  with dissonance and noisiness (flatness).

``moodsic-live library calibrate --deam ROOT`` replaces it with ridge-regression weights fitted
on any library with human annotations (DEAM or the same layout), reporting held-out Pearson r
and RMSE per dimension; the calibrated model is saved as JSON and used for every later analysis.

**With the music tagger** (:mod:`moodsic_live.library.tagger`, the default), each step also
has the tags' valence and arousal and their trust ``w`` (:mod:`moodsic_live.library.tag_va`).
The built-in model combines the two estimates by inverse variance. Each source's error
variance, in units of the human ratings' variance, comes from how often its sign agrees with
human ratings on music the project does not have (the figures of issue 8: features 50 %
valence / 77 % arousal, tags 70 % / 80 %): a sign agreement ``q`` means a correlation
``rho = cos(pi (1 - q))`` (the bivariate-normal orthant probability), and an estimate with
correlation ``rho`` is the truth plus noise of variance ``(1 - rho^2) / rho^2``. The tags'
variance is divided by their trust, so weak tag evidence hands the step to the features:

    fused = (f / var_f + t / var_t) / (1 / var_f + 1 / var_t),   var_t = noise_t / w

A calibrated model with tags is linear in the 10 standardised features and the two tag
estimates, fitted (centred on this combination at full trust) by ``library calibrate``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moodsic_live.errors import ModelError
from moodsic_live.library.features import FEATURE_VERSION, FEATURES

_TYPICAL_MEAN = {"loudness": -18.0, "loudness_range": 3.0, "onset_rate": 2.5, "flux": 1.1, "tempo": 0.0,
                 "centroid": 0.6, "flatness": -28.0, "mode": 0.0, "key_clarity": 0.55, "dissonance": 0.24}
_TYPICAL_SCALE = {"loudness": 5.0, "loudness_range": 1.5, "onset_rate": 1.2, "flux": 0.3, "tempo": 0.3,
                  "centroid": 0.5, "flatness": 5.0, "mode": 0.12, "key_clarity": 0.12, "dissonance": 0.04}
_BUILTIN_AROUSAL = {"loudness": 0.12, "onset_rate": 0.08, "flux": 0.08, "tempo": 0.05, "centroid": 0.08,
                    "flatness": 0.02}
_BUILTIN_VALENCE = {"mode": 0.10, "key_clarity": 0.04, "dissonance": -0.04, "tempo": 0.03, "centroid": 0.02,
                    "loudness": 0.02, "flatness": -0.03}
TAG_INPUTS = ("tag_valence", "tag_arousal")
# Share of human-labelled clips whose sign each source gets right (issue 8's measurements).
SIGN_AGREEMENT = {"features": (0.50, 0.77), "tags": (0.70, 0.80)}  # (valence, arousal)
MIN_RHO = 0.1  # no source is treated as pure noise


def noise_variance(sign_agreement: float) -> float:
    """Noise variance (in units of the truth's variance) of an estimate whose sign agrees with the
    truth for a share ``sign_agreement`` of cases: rho = cos(pi (1 - q)), noise = (1 - rho^2) / rho^2."""
    rho = max(float(np.cos(np.pi * (1.0 - sign_agreement))), MIN_RHO)
    return (1.0 - rho ** 2) / rho ** 2


def fuse(features: np.ndarray, tags: np.ndarray, trust: np.ndarray, dim: int) -> np.ndarray:
    """Inverse-variance combination of the feature and tag estimates of dimension ``dim``
    (0 valence, 1 arousal); ``tags`` are the trust-shrunk tag values."""
    var_f = noise_variance(SIGN_AGREEMENT["features"][dim])
    var_t = noise_variance(SIGN_AGREEMENT["tags"][dim])
    w = np.clip(np.asarray(trust, np.float64), 0.0, 1.0)
    raw = np.asarray(tags, np.float64) / np.maximum(w, 1e-6)  # the tags' own estimate, unshrunk
    inv_t = w / var_t
    return (np.asarray(features, np.float64) / var_f + raw * inv_t) / (1.0 / var_f + inv_t)


@dataclass(frozen=True)
class AudioVAModel:
    """``fusion``: ``features`` (the 10 features only), ``inverse_variance`` (built-in: features
    and tags by inverse variance) or ``linear`` (calibrated on features and tags)."""

    mean: np.ndarray
    scale: np.ndarray
    valence_w: np.ndarray
    valence_b: float
    arousal_w: np.ndarray
    arousal_b: float
    origin: str = "built-in (literature weights)"
    metrics: dict = field(default_factory=dict)
    feature_version: int = FEATURE_VERSION
    fusion: str = "features"

    @property
    def uses_tags(self) -> bool:
        return self.fusion != "features"

    @property
    def inputs(self) -> tuple[str, ...]:
        return FEATURES + TAG_INPUTS if self.fusion == "linear" else FEATURES

    @classmethod
    def builtin(cls, tags: bool = False) -> AudioVAModel:
        def vec(d: dict[str, float], default: float = 0.0) -> np.ndarray:
            return np.array([d.get(f, default) for f in FEATURES], np.float64)
        return cls(mean=vec(_TYPICAL_MEAN), scale=vec(_TYPICAL_SCALE, 1.0), valence_w=vec(_BUILTIN_VALENCE),
                   valence_b=0.0, arousal_w=vec(_BUILTIN_AROUSAL), arousal_b=0.0,
                   origin="built-in (literature weights" + (", tags fused by inverse variance)" if tags else ")"),
                   fusion="inverse_variance" if tags else "features")

    def features_only(self) -> AudioVAModel:
        """This model without the tagger: itself, or the built-in features model."""
        return self if self.fusion == "features" else AudioVAModel.builtin()

    def predict(self, values: np.ndarray, tag_va: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Valence and arousal (reference space) for feature rows ``values`` (n, features) and,
        for a model that uses tags, the tags' (valence, arousal, trust_v, trust_a) rows."""
        values = np.asarray(values, np.float64)
        if self.uses_tags:
            if tag_va is None or len(tag_va) != len(values):
                raise ValueError(f"the {self.fusion} audio model needs tag estimates for every step")
            tag_va = np.asarray(tag_va, np.float64)
        if self.fusion == "linear":
            values = np.column_stack([values, tag_va[:, :2]])
        z = (values - self.mean) / self.scale
        v = self.valence_b + z @ self.valence_w
        a = self.arousal_b + z @ self.arousal_w
        if self.fusion == "inverse_variance":
            v = fuse(v, tag_va[:, 0], tag_va[:, 2], 0)
            a = fuse(a, tag_va[:, 1], tag_va[:, 3], 1)
        return (np.clip(v, -1.0, 1.0).astype(np.float32), np.clip(a, -1.0, 1.0).astype(np.float32))

    def fingerprint(self) -> str:
        """Changes whenever the model's numbers change (stored with analysed libraries)."""
        import hashlib

        h = hashlib.sha1()
        for arr in (self.mean, self.scale, self.valence_w, self.arousal_w):
            h.update(np.ascontiguousarray(arr, np.float64).tobytes())
        h.update(np.array([self.valence_b, self.arousal_b, self.feature_version], np.float64).tobytes())
        h.update(self.fusion.encode())
        return h.hexdigest()[:12]

    def to_dict(self) -> dict:
        return {"features": list(self.inputs), "feature_version": self.feature_version, "origin": self.origin,
                "fusion": self.fusion, "metrics": self.metrics, "mean": self.mean.tolist(),
                "scale": self.scale.tolist(),
                "valence": {"weights": self.valence_w.tolist(), "bias": self.valence_b},
                "arousal": {"weights": self.arousal_w.tolist(), "bias": self.arousal_b}}

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> AudioVAModel:
        path = Path(path)
        fix = "run `moodsic-live library calibrate --deam ROOT` again or remove library.audio_model"
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            fusion = d.get("fusion", "features")
            if fusion not in ("features", "inverse_variance", "linear"):
                raise ValueError(f"fusion {fusion!r}")
            inputs = FEATURES + TAG_INPUTS if fusion == "linear" else FEATURES
            if d["features"] != list(inputs) or d["feature_version"] != FEATURE_VERSION:
                raise ModelError(f"audio model {path} was fitted on other features; {fix}")
            arrays = [np.asarray(x, np.float64) for x in (d["mean"], d["scale"], d["valence"]["weights"],
                                                          d["arousal"]["weights"])]
            if any(a.shape != (len(inputs),) or not np.all(np.isfinite(a)) for a in arrays):
                raise ValueError("bad shapes")
            return cls(mean=arrays[0], scale=arrays[1], valence_w=arrays[2], valence_b=float(d["valence"]["bias"]),
                       arousal_w=arrays[3], arousal_b=float(d["arousal"]["bias"]), origin=str(d["origin"]),
                       metrics=dict(d.get("metrics", {})), fusion=fusion)
        except FileNotFoundError:
            raise ModelError(f"audio model {path} does not exist; {fix}") from None
        except ModelError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"audio model {path} is unreadable ({exc.__class__.__name__}); {fix}") from None


def load_audio_model(path: Path | None) -> AudioVAModel:
    return AudioVAModel.load(path) if path else AudioVAModel.builtin()
