"""Discrete emotion classes as points (with spreads) in the valence/arousal plane.

Positions and spreads of the FER2013 classes are the pleasure and arousal means and
standard deviations of the corresponding emotion terms in
Russell, J. A. & Mehrabian, A. (1977). Evidence for a three-factor theory of emotions.
Journal of Research in Personality 11(3), 273-294 (rated on scales scaled to [-1, 1]).
"Neutral" is not a term there: it sits at the origin by definition, with a spread of 0.2.

From a class distribution ``p`` the estimate is the mixture's mean, and its variance is
the law of total variance: the published within-class spread plus the between-class
spread ``sum p_k (mu_k - mu)^2``, which is zero when one class has all the mass and grows
as the distribution's entropy spreads mass over distant classes.
"""

from __future__ import annotations

import numpy as np

from moodsic_live.perceive.estimate import FER_LABELS

# (valence, arousal) means and standard deviations, Russell & Mehrabian (1977).
FER_POSITIONS = {
    "anger": (-0.51, 0.59),
    "disgust": (-0.60, 0.35),
    "fear": (-0.64, 0.60),
    "happiness": (0.81, 0.61),
    "sadness": (-0.63, -0.27),
    "surprise": (0.40, 0.67),
    "neutral": (0.00, 0.00),
}
FER_SPREADS = {
    "anger": (0.20, 0.33),
    "disgust": (0.20, 0.41),
    "fear": (0.20, 0.32),
    "happiness": (0.21, 0.26),
    "sadness": (0.23, 0.34),
    "surprise": (0.30, 0.27),
    "neutral": (0.20, 0.20),
}


def fer_positions() -> np.ndarray:
    return np.array([FER_POSITIONS[k] for k in FER_LABELS], dtype=np.float64)


def fer_spreads() -> np.ndarray:
    return np.array([FER_SPREADS[k] for k in FER_LABELS], dtype=np.float64)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def class_va(probs: np.ndarray, positions: np.ndarray, spreads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [..., 2] and variance [..., 2] of the V/A mixture given class probabilities [..., K]."""
    p = probs / probs.sum(axis=-1, keepdims=True)
    mean = p @ positions
    second = p @ (positions**2 + spreads**2)
    var = np.maximum(second - mean**2, 0.0)
    return mean, var


def normalised_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of each distribution [..., K] divided by log K: 0 (certain) .. 1 (uniform)."""
    p = np.clip(probs / probs.sum(axis=-1, keepdims=True), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=-1) / np.log(p.shape[-1])
