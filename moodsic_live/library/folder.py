"""A folder of the user's own music: find the audio, read its tags.

Every file under the root is looked at once: audio (by extension) is returned for analysis,
anything else is counted and reported (cover art, playlists, text), never fatal.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from moodsic_live.errors import InputError
from moodsic_live.library.deam import SongInfo

# What libsndfile (bundled with the soundfile wheel) decodes.
AUDIO_EXTENSIONS = frozenset({".mp3", ".flac", ".ogg", ".oga", ".opus", ".wav", ".wave", ".aif", ".aiff",
                              ".aifc", ".au", ".caf", ".w64"})
_QUIET = frozenset({".ds_store", "thumbs.db", "desktop.ini"})


@dataclass
class FolderScan:
    root: Path
    audio: list[Path] = field(default_factory=list)
    other: list[Path] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "PATH: why" for entries that cannot be read


def scan_folder(root: Path) -> FolderScan:
    """All audio files under ``root`` (nested folders, sorted), and the other files seen."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder; give the folder that holds your music")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; give the folder that holds your music (or `demo`)")
    scan = FolderScan(root=root)
    for p in sorted(root.rglob("*")):
        if p.name.startswith("._") or p.name.lower() in _QUIET:
            continue
        if not p.is_file():
            why = _not_a_file(p)
            if why:
                scan.unreadable.append(f"{p}: {why}")
            continue
        (scan.audio if p.suffix.lower() in AUDIO_EXTENSIONS else scan.other).append(p)
    return scan


def _not_a_file(p: Path) -> str:
    """Why an entry that is not a regular file cannot be part of the library ("" when that is
    expected: a readable folder, or a non-audio name)."""
    try:
        st = p.stat()
    except OSError as exc:
        if p.suffix.lower() not in AUDIO_EXTENSIONS and not p.is_symlink():
            return ""
        return os_error_reason(p, exc)
    if stat.S_ISDIR(st.st_mode):
        try:
            with os.scandir(p):
                return ""
        except OSError as exc:
            return f"folder {os_error_reason(p, exc)}; its files are not in the library"
    if p.suffix.lower() not in AUDIO_EXTENSIONS:
        return ""
    kind = ("a named pipe" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
            else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a special file")
    return f"{kind}, not a regular file"


def os_error_reason(path: Path, exc: OSError) -> str:
    """What an OS error on a library file means, and what to do, in a few words."""
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return "not readable: permission denied (make it readable, e.g. `chmod a+r`)"
    if code == errno.ENOENT:
        if Path(path).is_symlink():
            return "a broken symbolic link (its target does not exist)"
        return "no longer there (removed or renamed during the build)"
    if code == errno.ELOOP:
        return "a symbolic link loop (the link points back at itself)"
    if code == errno.EISDIR:
        return "a folder, not an audio file"
    if code == errno.EIO:
        return "input/output error while reading it (a failing disk, card or network share?)"
    return f"not readable: {exc.strerror or exc.__class__.__name__}"


def read_tags(path: Path) -> SongInfo:
    """Title/artist/genre from the file's tags (ID3, Vorbis comments, ...), falling back to the
    file name for the title. Files whose tags cannot be parsed just get the fallback."""
    title = artist = genre = ""
    try:
        import mutagen

        tags = mutagen.File(str(path), easy=True)
        if tags is not None and tags.tags is not None:
            def first(key: str) -> str:
                value = tags.tags.get(key)
                return str(value[0]).strip() if value else ""
            title, artist, genre = first("title"), first("artist"), first("genre")
    except Exception:  # mutagen raises many kinds on odd files; tags are optional
        pass
    if not title:
        title = Path(path).stem.replace("_", " ")
    return SongInfo(title=title, artist=artist, genre=genre)
