"""The music expert: musicnn's two taggers (ONNX) over a piece, one row of tags per 0.5 s step.

The input is musicnn's own front-end, with librosa: 16 kHz mono, a 96-band mel power
spectrogram (FFT 512, hop 256), rounded to float16 and compressed as ``log10(10000 x + 1)``
(see ``tools/musicnn_architecture.md``). Each 0.5 s step of the 2 Hz library series gets the
tags of the 3 s window (187 frames) centred on the middle of the step, shifted inside the
piece at its ends; a piece shorter than 3 s is padded with silence.

The network's convolutions run once over the whole piece and every window only pools its
frames (see :func:`moodsic_live.models.musicnn_onnx.build_musicnn`), so six overlapping
windows per 3 s cost about what musicnn's own non-overlapping patches cost. Long pieces go
through in chunks that overlap by more than the network's reach (73 frames), so chunking
changes nothing.

The models are built by ``moodsic-live models build``; this module only reads them and never
downloads anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodsic_live.errors import ModelError
from moodsic_live.library.model import SERIES_HZ
from moodsic_live.library.tag_va import TagMeaning, tags_to_va, top_tags

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH = 187                       # frames in musicnn's 3 s patch
REACH = 80                        # > the 73 frames a window's outputs can see beyond it
# Frames of windows per run (~33 s): bounds the memory of the convolution maps. Peak RSS of an
# analysis process tagging a 5-minute piece: 790 MB at 2048 frames, 1270 MB at 4096, 540 MB at
# 1024 (which costs ~8 % more CPU for the overlaps).
CHUNK_FRAMES = 2048
TAGGERS = ("music_musicnn_msd", "music_musicnn_mtt")
MUSIC_FORMAT = "moodsic-music-tagger/1"
TAGGER_VERSION = 1                # of this front-end and windowing: part of the tag cache key
FIX = "run `moodsic-live models build` (or use --music-model features)"
FIX_FORCE = "run `moodsic-live models build --force` (or use --music-model features)"


@dataclass(frozen=True)
class TagSeries:
    """Tag probabilities per 0.5 s step: ``probs[name]`` is (n_steps, 50) for each tagger."""

    probs: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.probs.values())))


def resample_for_tagger(decoded) -> np.ndarray:
    """A decoded file (:class:`moodsic_live.library.features.Decoded`) at 16 kHz, resampled as
    ``librosa.load(path, sr=16000)`` does in musicnn (soxr HQ): the same samples, bit for bit."""
    return decoded.at(SAMPLE_RATE, quality="HQ")


def log_mel(y: np.ndarray) -> np.ndarray:
    """musicnn's input for mono 16 kHz audio: (frames, 96) float32."""
    import librosa

    mel = librosa.feature.melspectrogram(y=np.asarray(y, np.float32), sr=SAMPLE_RATE, hop_length=HOP,
                                         n_fft=N_FFT, n_mels=N_MELS).T
    # musicnn rounds the power to float16 before the log; numpy 1.x then computes in float32.
    return np.log10(10000.0 * mel.astype(np.float16).astype(np.float32) + 1.0).astype(np.float32)


def window_starts(n_frames: int, n_steps: int) -> np.ndarray:
    """First frame of the 187-frame window centred on each 0.5 s step's middle, kept inside."""
    fps = SAMPLE_RATE / HOP
    centres = (np.arange(n_steps) + 0.5) / SERIES_HZ * fps
    starts = np.round(centres - PATCH / 2).astype(np.int64)
    return np.clip(starts, 0, max(n_frames - PATCH, 0))


def read_manifests(models_dir: Path) -> tuple[dict[str, TagMeaning], str]:
    """Each tagger's tag meanings, and a fingerprint of the model files (for caches)."""
    meanings: dict[str, TagMeaning] = {}
    fingerprint = ""
    for name in TAGGERS:
        path = Path(models_dir) / f"{name}.onnx"
        manifest = path.with_suffix(".json")
        if not path.is_file():
            raise ModelError(f"music tagger {path} is missing; {FIX}")
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            if data.get("format") != MUSIC_FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            tags = data["outputs"]["tags"]
            meanings[name] = TagMeaning.of(list(tags["labels"]), tags["baseline_logit"]["mean"])
            fingerprint += str(data["build"]["sha256"])[:6]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"music tagger manifest {manifest} is unusable ({exc}); {FIX_FORCE}") from None
    return meanings, fingerprint


def tag_sets(series: TagSeries, meanings: dict[str, TagMeaning]) -> list[tuple[np.ndarray, TagMeaning]]:
    return [(series.probs[name], meanings[name]) for name in TAGGERS]


def tag_va(series: TagSeries, meanings: dict[str, TagMeaning]) -> np.ndarray:
    """(n, 4): valence, arousal and their trusts per step, from the tags' meanings."""
    return tags_to_va(tag_sets(series, meanings))


def describe(series: TagSeries, meanings: dict[str, TagMeaning], n: int = 3) -> list[str]:
    """A piece's top tags ("mellow, acoustic, female vocalists")."""
    return top_tags(tag_sets(series, meanings), n)


class MusicTagger:
    """Both musicnn taggers, with their tag names and baselines, on the CPU.

    Raises :class:`ModelError` (one line, with the fix) when a model is missing or unusable.
    """

    def __init__(self, models_dir: Path, threads: int = 1):
        import onnxruntime as ort

        from moodsic_live.privacy import disable_telemetry_events

        disable_telemetry_events(ort)
        self.meanings, self.fingerprint = read_manifests(models_dir)
        self.sessions = {}
        for name in TAGGERS:
            path = Path(models_dir) / f"{name}.onnx"
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            # No memory arena: an arena keeps the peak of the convolution maps of a run of
            # CHUNK_FRAMES (~300 MB per model) for the life of the worker. Without it a worker
            # analysing a 15-minute file peaks at 493 MB instead of 819 MB (one shared arena; 1.2 GB
            # with one each), a 2-hour file stays under 600 MB, for ~18 % more tagging CPU time and
            # the same outputs (bench/library.py --memory; docs/performance.md).
            opts.enable_cpu_mem_arena = False
            try:
                self.sessions[name] = ort.InferenceSession(str(path), sess_options=opts,
                                                           providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf classes
                raise ModelError(f"music tagger {path} cannot be loaded "
                                 f"({str(exc).splitlines()[0][:120]}); {FIX_FORCE}") from None

    def tag_mel(self, mel: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
        """Tag probabilities of the windows at ``starts`` of log-mel frames ``mel``."""
        if len(mel) < PATCH:  # shorter than 3 s: pad with silence (log10(1) = 0)
            mel = np.concatenate([mel, np.zeros((PATCH - len(mel), N_MELS), np.float32)])
        out = {name: np.zeros((len(starts), 50), np.float32) for name in self.sessions}
        a = 0
        while a < len(starts):  # starts are sorted: a chunk is a run of windows within CHUNK_FRAMES
            b = a + int(np.searchsorted(starts[a:], starts[a] + CHUNK_FRAMES - PATCH, side="right"))
            part = starts[a:b]
            lo = max(int(part[0]) - REACH, 0)
            hi = min(int(part[-1]) + PATCH + REACH, len(mel))
            feed = {"mel": np.ascontiguousarray(mel[lo:hi]), "starts": (part - lo).astype(np.int64)}
            for name, session in self.sessions.items():
                out[name][a:b] = session.run(["tags"], feed)[0]
            a = b
        return out

    def tag(self, y16k: np.ndarray, n_steps: int) -> TagSeries:
        """Tags of each 0.5 s step of mono 16 kHz audio."""
        mel = log_mel(y16k)
        return TagSeries(self.tag_mel(mel, window_starts(len(mel), n_steps)))

    def stream(self) -> TagStream:
        """A :class:`TagStream` of this tagger, for audio pushed a block at a time."""
        return TagStream(self)


def _log_mel_of_frames(samples: np.ndarray) -> np.ndarray:
    """:func:`log_mel` of the frames in ``samples`` (cut by a Framer: no centring padding)."""
    import librosa

    power = np.abs(librosa.stft(samples, n_fft=N_FFT, hop_length=HOP, center=False)) ** 2.0
    mel = librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS).T
    return np.log10(10000.0 * mel.astype(np.float16).astype(np.float32) + 1.0).astype(np.float32)


class TagStream:
    """:meth:`MusicTagger.tag` of audio that arrives a block at a time, in bounded memory: the
    log-mel frames are made as the samples come (the same frames as the whole signal's), and each
    run of windows goes to the models as soon as its frames are there, cut exactly as
    :meth:`MusicTagger.tag_mel` cuts the whole piece, so the models see the very same inputs.
    Only the frames the next runs need are kept (about CHUNK_FRAMES + 2 x REACH)."""

    def __init__(self, tagger: MusicTagger):
        from moodsic_live.library.features import Framer

        self.tagger = tagger
        self.received = 0                  # samples pushed so far
        self.framer = Framer(N_FFT, HOP, CHUNK_FRAMES)
        self.mel: list[np.ndarray] = []    # frames from self.offset on
        self.offset = 0                    # index of the first frame kept
        self.frames = 0                    # frames made so far
        self.a = 0                         # the next window (step) to run
        self.out: dict[str, list[np.ndarray]] = {name: [] for name in tagger.sessions}

    def push(self, y16k: np.ndarray, last: bool = False) -> None:
        """Add samples; windows are run once their frames and the next run's first window are
        known (the piece has at least as many steps as the samples so far make, less one)."""
        self.received += len(y16k)
        for _, samples in self.framer.push(y16k, last):
            block = _log_mel_of_frames(samples)
            self.mel.append(block)
            self.frames += len(block)
        if not last and self.mel:
            steps_known = max(int(np.floor(self.received / SAMPLE_RATE * SERIES_HZ)) - 1, 0)
            self._run(self._known_starts(steps_known), final=False)

    def _known_starts(self, steps: int) -> np.ndarray:
        """Starts of the windows that are final already: the step exists, and its window ends
        within the frames made (so the clipping at the piece's end cannot move it)."""
        fps = SAMPLE_RATE / HOP
        centres = (np.arange(steps) + 0.5) / SERIES_HZ * fps
        starts = np.maximum(np.round(centres - PATCH / 2).astype(np.int64), 0)
        return starts[:int(np.searchsorted(starts + PATCH, self.frames, side="right"))]

    def _run(self, starts: np.ndarray, final: bool) -> None:
        mel = np.concatenate(self.mel) if len(self.mel) > 1 else self.mel[0]
        self.mel = [mel]
        n_frames = self.offset + len(mel)
        if final and n_frames < PATCH:  # shorter than 3 s: pad with silence, as tag_mel does
            mel = np.concatenate([mel, np.zeros((PATCH - n_frames, N_MELS), np.float32)])
            n_frames = PATCH
        a = self.a
        while a < len(starts):  # the loop of tag_mel, over the frames kept
            b = a + int(np.searchsorted(starts[a:], starts[a] + CHUNK_FRAMES - PATCH, side="right"))
            if not final and b >= len(starts):
                break  # the run's last window is not known yet
            part = starts[a:b]
            lo = max(int(part[0]) - REACH, 0)
            hi = min(int(part[-1]) + PATCH + REACH, n_frames)
            if not final and hi > self.offset + len(mel):
                break
            feed = {"mel": np.ascontiguousarray(mel[lo - self.offset:hi - self.offset]),
                    "starts": (part - lo).astype(np.int64)}
            for name, session in self.tagger.sessions.items():
                self.out[name].append(session.run(["tags"], feed)[0])
            a = b
        self.a = a
        if a < len(starts):  # keep the frames from the next run's first frame on
            keep = max(int(starts[a]) - REACH, 0)
            if keep > self.offset:
                self.mel = [mel[keep - self.offset:].copy()]
                self.offset = keep

    def result(self, n_steps: int) -> TagSeries:
        """The tags of every step, once the last samples were pushed (``n_steps`` as for tag)."""
        self._run(window_starts(self.frames, n_steps), final=True)
        return TagSeries({name: np.concatenate(parts) if parts else np.zeros((0, 50), np.float32)
                          for name, parts in self.out.items()})

