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


@dataclass(frozen=True)
class AudioVAModel:
    mean: np.ndarray
    scale: np.ndarray
    valence_w: np.ndarray
    valence_b: float
    arousal_w: np.ndarray
    arousal_b: float
    origin: str = "built-in (literature weights)"
    metrics: dict = field(default_factory=dict)
    feature_version: int = FEATURE_VERSION

    @classmethod
    def builtin(cls) -> AudioVAModel:
        def vec(d: dict[str, float], default: float = 0.0) -> np.ndarray:
            return np.array([d.get(f, default) for f in FEATURES], np.float64)
        return cls(mean=vec(_TYPICAL_MEAN), scale=vec(_TYPICAL_SCALE, 1.0), valence_w=vec(_BUILTIN_VALENCE),
                   valence_b=0.0, arousal_w=vec(_BUILTIN_AROUSAL), arousal_b=0.0)

    def predict(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Valence and arousal (reference space) for feature rows ``values`` (n, features)."""
        z = (np.asarray(values, np.float64) - self.mean) / self.scale
        v = np.clip(self.valence_b + z @ self.valence_w, -1.0, 1.0)
        a = np.clip(self.arousal_b + z @ self.arousal_w, -1.0, 1.0)
        return v.astype(np.float32), a.astype(np.float32)

    def fingerprint(self) -> str:
        """Changes whenever the model's numbers change (stored with analysed libraries)."""
        import hashlib

        h = hashlib.sha1()
        for arr in (self.mean, self.scale, self.valence_w, self.arousal_w):
            h.update(np.ascontiguousarray(arr, np.float64).tobytes())
        h.update(np.array([self.valence_b, self.arousal_b, self.feature_version], np.float64).tobytes())
        return h.hexdigest()[:12]

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "feature_version": self.feature_version, "origin": self.origin,
                "metrics": self.metrics, "mean": self.mean.tolist(), "scale": self.scale.tolist(),
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
            if d["features"] != list(FEATURES) or d["feature_version"] != FEATURE_VERSION:
                raise ModelError(f"audio model {path} was fitted on other features; {fix}")
            arrays = [np.asarray(x, np.float64) for x in (d["mean"], d["scale"], d["valence"]["weights"],
                                                          d["arousal"]["weights"])]
            if any(a.shape != (len(FEATURES),) or not np.all(np.isfinite(a)) for a in arrays):
                raise ValueError("bad shapes")
            return cls(mean=arrays[0], scale=arrays[1], valence_w=arrays[2], valence_b=float(d["valence"]["bias"]),
                       arousal_w=arrays[3], arousal_b=float(d["arousal"]["bias"]), origin=str(d["origin"]),
                       metrics=dict(d.get("metrics", {})))
        except FileNotFoundError:
            raise ModelError(f"audio model {path} does not exist; {fix}") from None
        except ModelError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"audio model {path} is unreadable ({exc.__class__.__name__}); {fix}") from None


def load_audio_model(path: Path | None) -> AudioVAModel:
    return AudioVAModel.load(path) if path else AudioVAModel.builtin()
