"""The engine: perceive → stabilise → match → play, live (threads) and offline (a video's soundtrack)."""
