"""Evaluation: the app's estimates against human labels (faces, scenes, videos, music)."""
