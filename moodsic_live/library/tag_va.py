"""Valence and arousal from music tags, by what the tags mean (no training on any clip).

musicnn (Pons & Serra 2019) gives 50 tag probabilities per 3 s window for its Million Song
Dataset model (genres, moods, eras, voices) and 50 for its MagnaTagATune model (instruments,
tempo, loudness, styles). Many tags say something about emotion: *happy*, *party*, *catchy*,
*dance*, *pop* are pleasant; *sad*, *metal*, *weird*, *experimental* less so; *fast*, *loud*,
*drums*, *techno*, *metal* are energetic; *slow*, *quiet*, *soft*, *ambient*, *mellow*, *chill*
calm. :data:`TAG_MEANINGS` gives each such tag a position in the valence/arousal reference space
(mood words after Russell 1980 and Warriner, Kuperman & Brysbaert 2013's ratings of the words;
genres and styles after Rentfrow & Gosling 2003 and Eerola 2011; tempo, loudness and timbre
words after Gabrielsson & Lindström 2010). Tags that say nothing about a dimension (eras,
voices, most instruments) have no position on it.

**Evidence, not raw probability.** Every tag has a background probability (*rock* is likely
for almost anything), so a plain probability-weighted mean of positions collapses to the
average position. A tag counts instead by how far its logit rises above what the model gives
music in general — its training-set mean logit, which :func:`moodsic_live.models.musicnn_onnx.
tag_baseline` reads off the network's last layer and the build writes into the manifest:

    e_t = max(0, logit_t − baseline_t)                     (nats of evidence for tag t)

For one dimension, over the tags that have a position x_t on it:

    E     = Σ e_t                                          (total evidence)
    mean  = Σ e_t x_t / E                                  (evidence-weighted position)
    w     = E / (E + E0)                                   (trust: 0 without evidence, → 1)
    value = w · mean                                       (shrunk toward neutral)

so one tag that stands out ("sad" far above usual) moves the estimate to its position and the
output spans the space, while music that stands out on no emotional tag stays near neutral.
``w`` travels with the value: :mod:`moodsic_live.library.audio_va` weighs the tags against the
hand-made features by inverse variance, and weak evidence means a large variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

E0 = 1.0  # nats of total evidence at which the tags and the neutral prior weigh equally

# tag (lower case): (valence, arousal); None = the tag says nothing about that dimension.
TAG_MEANINGS: dict[str, tuple[float | None, float | None]] = {
    # moods
    "happy": (0.8, 0.4), "sad": (-0.8, -0.4), "party": (0.7, 0.8), "catchy": (0.5, 0.3),
    "beautiful": (0.6, -0.3), "mellow": (0.3, -0.6), "chill": (0.3, -0.6), "chillout": (0.3, -0.6),
    "easy listening": (0.4, -0.4), "sexy": (0.4, 0.1), "weird": (-0.5, 0.2),
    # tempo, loudness, texture
    "fast": (None, 0.8), "slow": (None, -0.7), "loud": (None, 0.8), "quiet": (None, -0.8),
    "soft": (0.2, -0.7), "drums": (None, 0.5), "beat": (None, 0.5), "beats": (None, 0.5),
    "synth": (None, 0.3), "piano": (None, -0.3), "strings": (None, -0.3), "harp": (0.3, -0.5),
    "flute": (0.3, -0.3), "cello": (-0.3, -0.3), "choir": (None, -0.2), "choral": (None, -0.2),
    "harpsichord": (0.2, None), "sitar": (None, -0.2),
    # genres and styles
    "dance": (0.6, 0.7), "house": (0.4, 0.7), "techno": (0.1, 0.8), "electronic": (0.0, 0.5),
    "electronica": (0.1, 0.4), "electro": (0.2, 0.6), "pop": (0.4, 0.3), "indie pop": (0.4, 0.2),
    "funk": (0.5, 0.5), "soul": (0.3, 0.0), "rnb": (0.2, 0.0), "hip-hop": (0.0, 0.5),
    "country": (0.3, 0.0), "folk": (0.1, -0.3), "acoustic": (0.1, -0.4), "jazz": (0.2, -0.1),
    "blues": (-0.3, -0.1), "classical": (0.1, -0.3), "classic": (0.1, -0.3), "new age": (0.3, -0.7),
    "ambient": (0.1, -0.8), "rock": (0.0, 0.5), "classic rock": (0.1, 0.5), "alternative rock": (-0.1, 0.5),
    "indie rock": (0.0, 0.5), "hard rock": (-0.2, 0.8), "punk": (-0.2, 0.9), "metal": (-0.5, 0.9),
    "heavy metal": (-0.5, 0.9), "experimental": (-0.4, 0.0), "opera": (-0.1, 0.2),
}


@dataclass(frozen=True)
class TagMeaning:
    """One tagger's tags: names, baseline logits, and their valence/arousal positions (NaN: none)."""

    labels: tuple[str, ...]
    baseline: np.ndarray  # (tags,) training-set mean logit
    valence: np.ndarray   # (tags,) position or NaN
    arousal: np.ndarray

    @classmethod
    def of(cls, labels: list[str], baseline: list[float] | np.ndarray) -> TagMeaning:
        v = np.full(len(labels), np.nan)
        a = np.full(len(labels), np.nan)
        for i, name in enumerate(labels):
            pos = TAG_MEANINGS.get(name.strip().lower())
            if pos is not None:
                v[i] = np.nan if pos[0] is None else pos[0]
                a[i] = np.nan if pos[1] is None else pos[1]
        base = np.asarray(baseline, np.float64)
        if base.shape != (len(labels),):
            raise ValueError(f"baseline has {base.shape} values for {len(labels)} tags")
        return cls(tuple(labels), base, v, a)


def evidence(probs: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Nats by which each tag's logit exceeds its baseline, 0 where below: (n, tags)."""
    p = np.clip(np.asarray(probs, np.float64), 1e-7, 1 - 1e-7)
    return np.maximum(np.log(p / (1 - p)) - baseline, 0.0)


def dimension(ev: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, trust w) of one dimension from evidence rows ``ev`` (n, tags)."""
    known = np.isfinite(positions)
    e, x = ev[:, known], positions[known]
    total = e.sum(axis=1)
    mean = (e @ x) / np.maximum(total, 1e-12)
    trust = total / (total + E0)
    return trust * mean, trust


def tags_to_va(tag_sets: list[tuple[np.ndarray, TagMeaning]]) -> np.ndarray:
    """Valence, arousal and their trusts, (n, 4), from one or more taggers' probabilities.

    The evidence of every tagger's tags is pooled before the weighted mean, so two models that
    agree add up and a tag both models know (pop, dance, metal...) counts twice only when both
    hear it.
    """
    evs = [evidence(p, m.baseline) for p, m in tag_sets]
    ev = np.concatenate(evs, axis=1)
    vpos = np.concatenate([m.valence for _, m in tag_sets])
    apos = np.concatenate([m.arousal for _, m in tag_sets])
    v, wv = dimension(ev, vpos)
    a, wa = dimension(ev, apos)
    return np.column_stack([v, a, wv, wa]).astype(np.float32)


def top_tags(tag_sets: list[tuple[np.ndarray, TagMeaning]], n: int = 3) -> list[str]:
    """The ``n`` tags a piece is most clearly like, over all its windows ("mellow, acoustic,
    female vocalists"): ranked by mean probability among the tags above their baseline on
    average, duplicates across taggers merged."""
    scored: dict[str, float] = {}
    for probs, meaning in tag_sets:
        probs = np.atleast_2d(np.asarray(probs, np.float64))
        mean_p = probs.mean(axis=0)
        above = evidence(probs, meaning.baseline).mean(axis=0) > 0.25
        for i in np.flatnonzero(above):
            name = meaning.labels[i].strip().lower()
            scored[name] = max(scored.get(name, 0.0), float(mean_p[i]))
    return [name for name, _ in sorted(scored.items(), key=lambda kv: -kv[1])[:n]]
