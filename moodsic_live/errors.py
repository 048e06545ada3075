"""User-facing errors: one line that names the thing and the fix, never a traceback."""


class MoodsicError(Exception):
    """An error the user can act on. ``str(err)`` is the whole message."""


class InputError(MoodsicError):
    """A file, camera or stream given by the user cannot be used."""


class ModelError(MoodsicError):
    """A model is missing, corrupt, or does not match its manifest."""


class ScaleError(MoodsicError, ValueError):
    """A value lies outside the range of the emotion scale it claims to be on."""


class ProviderError(MoodsicError):
    """The requested inference provider (e.g. CUDA) cannot be used."""


def one_line(text: object) -> str:
    """``text`` (or an exception's message) on one line, whitespace collapsed; never empty."""
    return " ".join(str(text).split()) or "unknown error"
