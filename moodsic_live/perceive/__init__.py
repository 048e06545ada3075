"""Perceive: frames in, valence/arousal estimates with uncertainty out."""
