"""Stabilise: noisy per-frame valence/arousal estimates in, a calm, uncertainty-gated stream out."""
