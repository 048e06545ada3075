"""A folder of the user's own music: find the audio, read its tags.

Every file under the root is looked at once: audio (by extension) is returned for analysis,
anything else is counted and reported (cover art, playlists, text), never fatal.
"""

from __future__ import annotations

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


def scan_folder(root: Path) -> FolderScan:
    """All audio files under ``root`` (nested folders, sorted), and the other files seen."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder; give the folder that holds your music")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; give the folder that holds your music (or `demo`)")
    scan = FolderScan(root=root)
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.startswith("._") or p.name.lower() in _QUIET:
            continue
        (scan.audio if p.suffix.lower() in AUDIO_EXTENSIONS else scan.other).append(p)
    return scan


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
