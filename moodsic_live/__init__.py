"""Moodsic Live: perceive -> stabilise -> match -> play."""

__version__ = "0.1.0"
