"""Decode and resample song segments ahead of time, on a worker thread, never in the audio callback.

The audio callback (see :mod:`moodsic_live.play.mixer`) may only copy samples that already exist
at the output rate: decoding an mp3 or running a resampler takes milliseconds to seconds and
allocates, so it would make the device under-run. This module does that work in advance:

* :func:`load_segment` reads ``duration_s`` seconds of a song starting at ``start_s`` with
  libsndfile (through ``soundfile``: wav, flac, ogg/vorbis/opus, mp3, ...), seeking to the start
  frame so that a segment late in a long file costs no more than one at its start; converts it to
  stereo (mono is duplicated; more than two channels are down-mixed, see :func:`to_stereo`) and
  resamples it to the output rate with ``soxr``. A little audio around the segment ("pre-roll")
  is resampled with it and trimmed off, so the resampler's filter has real signal on both sides.
* :class:`Loader` runs :func:`load_segment` on one worker thread for requests
  ``(path, start_s, duration_s)`` and hands back immutable results tagged with the request id:
  a :class:`PreparedBuffer` (float32, C-contiguous, shape ``(frames, 2)``, read-only) or a
  :class:`LoadFailure` whose one-line ``message`` names the file. Decode errors never escape as
  exceptions; the control thread decides what to do (e.g. ask the matcher for another song).

Values that cross threads are frozen dataclasses; the audio array inside a prepared buffer is
marked read-only, so the mixer can keep references to it without copying.
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodsic_live.errors import InputError, one_line

# Input frames decoded before and after the segment and resampled with it (then trimmed), so the
# resampler's filter sees real audio at the edges instead of implied silence.
PREROLL_FRAMES = 2048
_SKIP_CHUNK = 1 << 16
# libsndfile error codes (SF_ERR_*) that say something useful about a file that exists.
_SNDFILE_REASONS = {1: "unrecognised format", 3: "malformed file", 4: "unsupported encoding"}


@dataclass(frozen=True, eq=False)
class PreparedBuffer:
    """Audio ready for the mixer: ``audio`` is float32, C-contiguous, ``(frames, channels)``, read-only,
    at ``sample_rate``; it holds the song ``song_id`` from ``start_s`` seconds on."""

    audio: np.ndarray
    sample_rate: int
    song_id: str = ""
    start_s: float = 0.0
    path: Path | None = None
    request_id: int = 0

    @property
    def frames(self) -> int:
        return int(self.audio.shape[0])

    @property
    def channels(self) -> int:
        return int(self.audio.shape[1])

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @classmethod
    def from_array(cls, audio: np.ndarray, sample_rate: int, song_id: str = "", start_s: float = 0.0,
                   request_id: int = 0) -> PreparedBuffer:
        """Wrap samples already at the output rate (``(frames,)`` mono is made stereo)."""
        data = np.asarray(audio, dtype=np.float32)
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[1] < 1:
            raise ValueError(f"audio must be (frames, channels), got shape {data.shape}")
        data = np.array(to_stereo(data), dtype=np.float32, order="C", copy=True)
        data.setflags(write=False)
        return cls(audio=data, sample_rate=int(sample_rate), song_id=song_id, start_s=float(start_s),
                   request_id=request_id)


@dataclass(frozen=True)
class LoadFailure:
    """A request that produced no audio; ``message`` is one line and names the file."""

    request_id: int
    path: Path
    message: str


LoadResult = PreparedBuffer | LoadFailure


@dataclass(frozen=True)
class LoadRequest:
    request_id: int
    path: Path
    start_s: float
    duration_s: float | None
    song_id: str


def to_stereo(data: np.ndarray) -> np.ndarray:
    """``(frames, channels)`` → ``(frames, 2)``.

    Mono is duplicated to both sides. With more than two channels, the first two are taken as
    left/right and every further channel (centre, surrounds, LFE: libsndfile does not report the
    layout reliably) is added to both sides at −3 dB; each side is then scaled so its coefficients
    sum to one, so the down-mix cannot clip where the source did not.
    """
    channels = data.shape[1]
    if channels == 2:
        return data
    if channels == 1:
        return np.repeat(data, 2, axis=1)
    matrix = np.zeros((channels, 2), dtype=np.float32)
    matrix[0, 0] = matrix[1, 1] = 1.0
    matrix[2:, :] = np.float32(math.sqrt(0.5))
    matrix /= matrix.sum(axis=0, keepdims=True)
    return (data @ matrix).astype(np.float32, copy=False)



def _failure_message(path: Path, err: BaseException) -> str:
    if isinstance(err, InputError):
        return one_line(str(err))
    if not path.is_file():
        return one_line(f"cannot read '{path}': no such file")
    code = getattr(err, "code", None)
    if getattr(err, "error_string", None) is not None:   # soundfile.LibsndfileError
        # libsndfile's own strings mislead here (a corrupt mp3 gives "File does not exist..."), so
        # the message is built from its error code; the file is known to exist at this point.
        reason = _SNDFILE_REASONS.get(code, "unrecognised format or corrupt data")
    else:
        reason = str(err) or type(err).__name__
    return one_line(f"cannot decode '{path}' as audio: {reason}")


def load_segment(path: str | Path, sample_rate: int, start_s: float = 0.0, duration_s: float | None = None, *,
                 song_id: str = "", request_id: int = 0, quality: str = "HQ") -> PreparedBuffer:
    """Decode ``duration_s`` seconds (``None``: to the end) of ``path`` from ``start_s`` on, as stereo
    float32 at ``sample_rate``. Raises :class:`InputError` (one line, naming the file) when the file
    cannot be read or the segment lies outside it."""
    import soundfile as sf
    import soxr

    path = Path(path)
    if start_s < 0 or (duration_s is not None and not duration_s > 0):
        raise InputError(f"'{path}': bad segment start {start_s} s / duration {duration_s} s")
    try:
        with sf.SoundFile(str(path)) as f:
            rate = int(f.samplerate)
            total = int(f.frames)
            start = int(round(start_s * rate))
            if start >= total:
                raise InputError(f"'{path}': segment start {start_s:.2f} s is past the end ({total / rate:.2f} s)")
            avail = total - start
            n = avail if duration_s is None else min(avail, math.ceil(duration_s * rate) + 1)
            resample = rate != sample_rate
            pre = min(start, PREROLL_FRAMES) if resample else 0
            post = min(avail - n, PREROLL_FRAMES) if resample else 0
            _seek(f, start - pre)
            data = f.read(pre + n + post, dtype="float32", always_2d=True)
    except InputError:
        raise
    except Exception as err:  # libsndfile, OS and format errors: one line naming the file
        raise InputError(_failure_message(path, err)) from err

    if data.shape[1] > 2:
        data = to_stereo(data)
    if resample:
        ratio = sample_rate / rate
        mixed = soxr.resample(data, rate, sample_rate, quality=quality)
        if mixed.ndim == 1:
            mixed = mixed[:, None]
        skip = int(round(pre * ratio))
        want = int(round(min(n, avail) * ratio))
        if duration_s is not None:
            want = min(want, int(round(duration_s * sample_rate)))
        data = mixed[skip:skip + want]
    elif duration_s is not None:
        data = data[:int(round(duration_s * sample_rate))]
    stereo = np.array(to_stereo(data), dtype=np.float32, order="C", copy=True)
    stereo.setflags(write=False)
    return PreparedBuffer(audio=stereo, sample_rate=int(sample_rate), song_id=song_id or str(path),
                          start_s=float(start_s), path=path, request_id=request_id)


def _seek(f, frame: int) -> None:
    """Seek to ``frame``; for streams libsndfile cannot seek, read and discard up to it."""
    if frame <= 0:
        return
    if f.seekable():
        f.seek(frame)
        return
    left = frame
    while left > 0:
        got = len(f.read(min(left, _SKIP_CHUNK), dtype="float32", always_2d=True))
        if got == 0:
            break
        left -= got


def prepare(request: LoadRequest, sample_rate: int, quality: str = "HQ") -> LoadResult:
    """Run one request; never raises for a bad file (returns a :class:`LoadFailure`)."""
    try:
        return load_segment(request.path, sample_rate, request.start_s, request.duration_s,
                            song_id=request.song_id, request_id=request.request_id, quality=quality)
    except Exception as err:
        return LoadFailure(request.request_id, request.path, _failure_message(request.path, err))


class Loader:
    """One worker thread that prepares segments for the mixer.

    Thread use: any control thread calls :meth:`request` (returns the request id at once),
    :meth:`wait`, :meth:`poll` and :meth:`close`; ``on_result`` (optional) is called on the worker
    thread with each result, so it must be quick (e.g. put it in a queue). The audio callback never
    touches the loader: the control thread hands prepared buffers to the mixer.
    """

    def __init__(self, sample_rate: int, *, quality: str = "HQ",
                 on_result: Callable[[LoadResult], None] | None = None, name: str = "moodsic-loader") -> None:
        self.sample_rate = int(sample_rate)
        self.quality = quality
        self._on_result = on_result
        self._requests: queue.Queue[LoadRequest | None] = queue.Queue()
        self._results: OrderedDict[int, LoadResult] = OrderedDict()
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def request(self, path: str | Path, start_s: float = 0.0, duration_s: float | None = None, *,
                song_id: str = "") -> int:
        """Queue a segment to prepare; returns its request id (results carry it)."""
        if self._closed:
            raise RuntimeError("loader is closed")
        if start_s < 0 or (duration_s is not None and not duration_s > 0):
            raise ValueError(f"bad segment: start {start_s} s, duration {duration_s} s")
        request_id = next(self._ids)
        self._requests.put(LoadRequest(request_id, Path(path), float(start_s),
                                       None if duration_s is None else float(duration_s), song_id))
        return request_id

    def wait(self, request_id: int, timeout: float | None = None) -> LoadResult:
        """Block until the result of ``request_id`` is ready and take it (other results stay)."""
        with self._cond:
            if not self._cond.wait_for(lambda: request_id in self._results, timeout):
                raise TimeoutError(f"load request {request_id} not ready after {timeout} s")
            return self._results.pop(request_id)

    def poll(self) -> list[LoadResult]:
        """Take every result that is ready, oldest first, without blocking."""
        with self._cond:
            ready = list(self._results.values())
            self._results.clear()
        return ready

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker after the request it is working on; queued requests are dropped."""
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                self._requests.get_nowait()
            except queue.Empty:
                break
        self._requests.put(None)
        self._thread.join(timeout)

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            result = prepare(request, self.sample_rate, self.quality)
            with self._cond:
                self._results[request.request_id] = result
                self._cond.notify_all()
            if self._on_result is not None:
                try:
                    self._on_result(result)
                except Exception:  # a broken callback must not kill the worker
                    pass
