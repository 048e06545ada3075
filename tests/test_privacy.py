"""The README's privacy promise, checked on the real app under strace: no network socket at all
(ONNX Runtime's telemetry is off), nothing kept under ~/.cache/Microsoft, and no camera frame,
image or video written anywhere while the app runs.

Each command runs once (module fixtures), in a fresh HOME with its own XDG folders, on the real
models and a real (small) library, under ``strace -f -y`` with the network and file-creating system
calls traced; the tests then read the trace. The child's environment does *not* carry
``ORT_DISABLE_TELEMETRY=1`` from this test process (the window's run even gets ``=0``): the app
has to switch the telemetry off itself. Skipped, with the reason, where strace is missing or
ptrace is not allowed. To repeat one by hand:

    HOME=$(mktemp -d) strace -f -e trace=network -o net.txt moodsic-live run --headless --duration 15 --output none
    grep -E 'socket\\(AF_INET6?[,)]' net.txt; ls ~/.cache/Microsoft     # (with that HOME) both empty
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from conftest import DEMO, ROOT, write_config

RUN_SECONDS = 15
# Network calls, and every call that creates, opens for writing or names a file ("?" = where the
# architecture has it); -y prints the path behind each descriptor, -s keeps long paths whole.
TRACE = ("network,openat,?open,?creat,rename,renameat,renameat2,?link,linkat,?symlink,symlinkat,"
         "?mknod,mknodat")
STRACE = ["strace", "-f", "-y", "-s", "4096", "-e", f"trace={TRACE}"]

# What a frame dump could be named like: images, videos, NumPy arrays, raw pixel buffers.
FRAME_EXTENSIONS = {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".ppm", ".pgm", ".pbm", ".pnm", ".pfm",
                    ".webp", ".tif", ".tiff", ".gif", ".jp2", ".exr", ".hdr", ".avif", ".heic", ".mp4", ".m4v",
                    ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".y4m", ".yuv", ".rgb", ".bgr", ".raw",
                    ".npy", ".npz", ".pkl", ".pickle"}
# ... and what its first bytes could look like, whatever its name.
FRAME_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"P5\n", b"P6\n", b"RIFF", b"\x1aE\xdf\xa3", b"\x93NUMPY",
               b"II*\x00", b"MM\x00*", b"GIF8", b"YUV4MPEG")
FRAME_MAGIC_AT_4 = (b"ftyp",)  # MP4/MOV/HEIF

_SOCKET_INET = re.compile(r"\bsocket(?:pair)?\(AF_(?:INET6?|PACKET)\b|sa_family=AF_INET6?\b")
_OPEN = re.compile(r'^(?P<call>openat|open|creat)\((?:(?:AT_FDCWD|\d+)(?:<[^>]*>)?, )?"(?P<path>(?:[^"\\]|\\.)*)"'
                   r"(?:, (?P<flags>[A-Z_|0-9]+))?.*\)\s+= (?P<fd>\d+)(?:<(?P<real>[^>]*)>)?")
_NAMING = re.compile(r"^(?P<call>rename|renameat2?|link|linkat|symlink|symlinkat|mknod|mknodat)\((?P<args>.*)\)"
                     r"\s+= 0\b")
_ARG_PATH = re.compile(r'(?:(?P<dir>AT_FDCWD|\d+)(?:<(?P<dirpath>[^>]*)>)?, )?"(?P<path>(?:[^"\\]|\\.)*)"')
_WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"}


def _strace_problem() -> str | None:
    """Why strace cannot be used here, or None."""
    if shutil.which("strace") is None:
        return "strace is not installed (apt-get install strace; .ci/run installs it)"
    probe = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"strace cannot trace here (ptrace not allowed?): {probe.stderr.strip().splitlines()[-1:]}"
    return None


_NO_STRACE = _strace_problem()
pytestmark = pytest.mark.skipif(_NO_STRACE is not None, reason=str(_NO_STRACE))


def _joined(lines: list[str]) -> list[str]:
    """strace -f lines with each ``<unfinished ...>`` call joined to its ``<... resumed>`` end, pid dropped."""
    pending: dict[str, str] = {}
    out = []
    for line in lines:
        pid, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest[: -len("<unfinished ...>")].rstrip()
            continue
        resumed = re.match(r"^<\.\.\. \w+ resumed>\s?(.*)$", rest)
        if resumed:
            rest = pending.pop(pid, "") + resumed.group(1)
        out.append(rest)
    return out


def _unescape(path: str) -> str:
    return path.encode("latin-1", "backslashreplace").decode("unicode_escape")


def _resolve(path: str, directory: str | None, cwd: Path) -> Path:
    p = Path(_unescape(path))
    return p if p.is_absolute() else Path(directory or cwd) / p


@dataclass
class Trace:
    """One traced run of the app and what its trace says."""

    name: str
    returncode: int
    stdout: str
    stderr: str
    calls: list[str]
    cwd: Path
    inet_sockets: list[str] = field(default_factory=list)
    written: set[Path] = field(default_factory=set)  # files opened for writing, created or (re)named
    read: set[Path] = field(default_factory=set)     # every file opened at all

    def __post_init__(self):
        for call in self.calls:
            if _SOCKET_INET.search(call):
                self.inet_sockets.append(call)
            m = _OPEN.match(call)
            if m:
                flags = set((m["flags"] or "").split("|"))
                real = m["real"]
                path = Path(real) if real and real.startswith("/") else _resolve(m["path"], None, self.cwd)
                self.read.add(path)
                if "O_TMPFILE" in flags:   # an unnamed file: it only appears on disk through linkat (traced)
                    continue
                if m["call"] == "creat" or flags & _WRITE_FLAGS:
                    self.written.add(path)
                continue
            m = _NAMING.match(call)
            if m:
                args = list(_ARG_PATH.finditer(m["args"]))
                if args:  # the new name is the last path argument
                    last = args[-1]
                    self.written.add(_resolve(last["path"], last["dirpath"], self.cwd))


def _traced(name: str, argv: list[str], env: dict[str, str], cwd: Path, out: Path) -> Trace:
    log = out / f"{name}.strace"
    r = subprocess.run([*STRACE, "-o", str(log), *argv], capture_output=True, text=True, cwd=cwd, env=env,
                       timeout=RUN_SECONDS + 240)
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return Trace(name, r.returncode, r.stdout, r.stderr, _joined(lines), cwd)


@dataclass
class Sandbox:
    home: Path
    env: dict[str, str]
    config: Path
    allowed: list[Path]   # folders and files the app may write to (besides the system's own below)
    settings: Path
    out: Path


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, models_dir, small_library) -> Sandbox:
    """A fresh HOME with its own XDG folders, the real models and the suite's small library."""
    _, library_config = small_library
    base = tmp_path_factory.mktemp("privacy")
    home, out = base / "home", base / "traces"
    runtime = home / "run"
    for d in (home / ".config", home / ".local" / "share", home / ".cache", home / ".local" / "state", runtime, out):
        d.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    config = write_config(home / "moodsic.toml", library_config)   # libraries, caches, models; history beside it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "ORT_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local" / "share"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_STATE_HOME=str(home / ".local" / "state"),
               XDG_RUNTIME_DIR=str(runtime), TMPDIR=str(home / "tmp"))
    (home / "tmp").mkdir()
    feedback = home / "feedback.sqlite"
    allowed = [library_config.library.dir, library_config.paths.cache_dir,
               *(feedback.with_name(feedback.name + s) for s in ("", "-wal", "-shm", "-journal")),
               home / ".cache" / "matplotlib", home / ".config" / "matplotlib", home / ".cache" / "fontconfig",
               home / ".cache" / "mesa_shader_cache", home / ".cache" / "mesa_shader_cache_db",
               home / ".config" / "pulse", runtime]
    settings = home / "gui.ini"
    allowed += [settings, settings.with_name(settings.name + ".lock")]
    return Sandbox(home, env, config, [Path(p) for p in allowed], settings, out)


def _moodsic_live() -> list[str]:
    script = Path(sys.executable).with_name("moodsic-live")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "moodsic_live"]


@pytest.fixture(scope="module")
def headless(sandbox) -> Trace:
    """`moodsic-live run --headless` (the installed script) on the demo source for 15 s."""
    argv = [*_moodsic_live(), "run", "--headless", "--source", "demo", "--library", "songs", "--duration",
            str(RUN_SECONDS), "--output", "none", "--config", str(sandbox.config)]
    return _traced("headless", argv, sandbox.env, sandbox.home, sandbox.out)


@pytest.fixture(scope="module")
def window(sandbox) -> Trace:
    """The window (`python main.py gui`), offscreen, on the demo source for 15 s, with no screenshot asked for;
    its environment even says ORT_DISABLE_TELEMETRY=0."""
    argv = [sys.executable, str(ROOT / "main.py"), "gui", "--source", "demo", "--library", "songs", "--output",
            "none", "--config", str(sandbox.config), "--settings", str(sandbox.settings), "--quit-after",
            str(RUN_SECONDS)]
    env = dict(sandbox.env, QT_QPA_PLATFORM="offscreen", ORT_DISABLE_TELEMETRY="0")
    return _traced("window", argv, env, sandbox.home, sandbox.out)


@pytest.fixture(scope="module")
def perceived(sandbox) -> Trace:
    """`python -m moodsic_live perceive` of a real photo and a real video (written before tracing starts)."""
    import cv2

    photo = DEMO / "astronaut.jpg"
    image = cv2.resize(cv2.imread(str(photo)), (640, 480))
    video = sandbox.out / "astronaut.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    for k in range(30):
        writer.write(np.roll(image, 4 * k, axis=1))
    writer.release()
    argv = [sys.executable, "-m", "moodsic_live", "perceive", "--json", str(photo), str(video), "--fps", "5",
            "--config", str(sandbox.config)]
    return _traced("perceive", argv, sandbox.env, sandbox.home, sandbox.out)


def _ran_onnx(trace: Trace, sandbox: Sandbox) -> None:
    """The run succeeded and ONNX Runtime really loaded the experts inside the traced process tree."""
    rc, models = trace.returncode, sorted(p.name for p in trace.read if p.suffix == ".onnx")
    assert rc == 0, f"{trace.name} failed: {trace.stderr[-2000:]}"
    assert models, f"{trace.name}: no .onnx model opened under strace"


@pytest.mark.parametrize("run", ["headless", "window", "perceived"])
def test_no_network_socket_is_opened(run, request, sandbox):
    """Not one AF_INET/AF_INET6 socket. With ONNX Runtime's telemetry on, 15 s of `run --headless` or of the
    window opened 6 of them (DNS lookups of mobile.events.data.microsoft.com). AF_UNIX (PortAudio, D-Bus) is local."""
    trace: Trace = request.getfixturevalue(run)
    _ran_onnx(trace, sandbox)
    sockets = trace.inet_sockets
    assert not sockets, f"{trace.name} opened network sockets:\n" + "\n".join(sockets[:10])


def test_onnxruntime_keeps_nothing_under_home_cache_microsoft(headless, window, perceived, sandbox):
    """ONNX Runtime's telemetry keeps a device id and an event queue in ~/.cache/Microsoft/DeveloperTools."""
    for trace in (headless, window, perceived):
        _ran_onnx(trace, sandbox)
    kept = [str(p) for p in (sandbox.home / ".cache" / "Microsoft", sandbox.home / "Microsoft") if p.exists()]
    kept += [str(p) for t in (headless, window, perceived) for p in t.written if "Microsoft" in p.parts]
    assert not kept, f"ONNX Runtime telemetry files: {kept}"


def _allowed(path: Path, allowed: list[Path]) -> bool:
    s = str(path)
    if s.startswith("/dev/shm/"):   # JACK's shared registry (libjack, via PortAudio); named semaphores
        return path.name.startswith(("jack", "sem.")) or path.parent.name.startswith("jack")
    if s.startswith(("/dev/", "/proc/", "/sys/")):
        return True
    if "__pycache__" in path.parts and re.search(r"\.(pyc|nbi|nbc)(\.\d+)?$", path.name):
        return True   # Python's and numba's compiled code
    return any(path == a or a in path.parents for a in allowed)


def _looks_like_a_frame(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head.startswith(FRAME_MAGIC) or head[4:8] in FRAME_MAGIC_AT_4


@pytest.mark.parametrize("run", ["headless", "perceived", "window"])
def test_no_frame_image_or_video_is_written(run, request, sandbox):
    """Every file the app creates or opens for writing is in an expected place (its listening history,
    settings, library and cache folders, matplotlib's font cache, /dev and /proc), none is named like an
    image, video or array, and none that is left starts like one."""
    trace: Trace = request.getfixturevalue(run)
    _ran_onnx(trace, sandbox)
    assert len(trace.written) > 0, f"{trace.name}: strace saw no file opened for writing (is the trace complete?)"
    named = sorted(str(p) for p in trace.written if p.suffix.lower() in FRAME_EXTENSIONS)
    assert not named, f"{trace.name} wrote image/video/array files: {named}"
    elsewhere = sorted(str(p) for p in trace.written if not _allowed(p, sandbox.allowed))
    assert not elsewhere, f"{trace.name} wrote outside the expected places: {elsewhere}"
    pictures = sorted(str(p) for p in trace.written if p.is_file() and _looks_like_a_frame(p))
    assert not pictures, f"{trace.name} left files that look like images or videos: {pictures}"


def test_the_trace_reader_sees_sockets_and_frame_writes(tmp_path):
    """The checks above can fail: a process that opens an AF_INET6 socket, writes a PNG under another name
    and renames it, and drops a raw buffer into an unexpected folder, is caught on all three counts."""
    code = ("import os, socket, cv2, numpy as np\n"
            "socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()\n"
            "cv2.imwrite('frame.tmp.png', np.zeros((8, 8, 3), np.uint8)); os.replace('frame.tmp.png', 'frame')\n"
            "np.zeros(16, np.uint8).tofile('dump.bin')\n")
    trace = _traced("control", [sys.executable, "-c", code], dict(os.environ), tmp_path, tmp_path)
    assert trace.returncode == 0, trace.stderr
    assert any("AF_INET6" in c for c in trace.inet_sockets)
    assert tmp_path / "frame.tmp.png" in trace.written and tmp_path / "frame" in trace.written
    assert _looks_like_a_frame(tmp_path / "frame")
    assert tmp_path / "dump.bin" in trace.written and not _allowed(tmp_path / "dump.bin", [tmp_path / "libraries"])
