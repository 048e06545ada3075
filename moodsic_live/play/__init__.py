"""Play: decode segments ahead of time, mix them with crossfades, render to a device or a file."""
