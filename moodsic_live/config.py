"""One typed configuration object: defaults, then the user's TOML file, then CLI flags.

The TOML file lives at ``<user config dir>/moodsic-live/config.toml`` (on Linux
``~/.config/moodsic-live/config.toml``) unless ``--config PATH`` names another. Its
tables mirror the dataclasses below, e.g.::

    [perceive]
    detector_range = "full"      # ambient camera: faces further than 2 m
    provider = "cpu"

    [paths]
    models_dir = "/opt/moodsic/onnx"

Unknown keys and wrong types are errors that name the key, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import platformdirs

from moodsic_live.errors import MoodsicError

APP = "moodsic-live"
_PACKAGE_DIR = Path(__file__).resolve().parent


def _default_models_dir() -> Path:
    """``onnx/`` of a source checkout when running from one, else the user data dir."""
    checkout = _PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "onnx").is_dir():
        return checkout / "onnx"
    return Path(platformdirs.user_data_dir(APP)) / "onnx"


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


@dataclass
class PathsConfig:
    models_dir: Path = field(default_factory=_default_models_dir)
    cache_dir: Path = field(default_factory=lambda: Path(platformdirs.user_cache_dir(APP)))
    # Likes and skips (SQLite), kept for learning from listeners; never leaves the machine.
    feedback: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir(APP)) / "feedback.sqlite")


@dataclass
class PerceiveConfig:
    provider: Literal["auto", "cpu", "cuda"] = "auto"
    face_enabled: bool = True
    scene_enabled: bool = True
    # Atmosphere only (shops, cafés): no face analysis at all; faces are still detected, only so
    # the preview can blur them. The mood comes from the scene expert alone.
    atmosphere_only: bool = False
    # BlazeFace short range: faces within ~2 m (desk webcam); full range: up to ~5 m.
    detector_range: Literal["short", "full"] = "short"
    min_face_confidence: float = 0.5
    max_faces: int = 8
    # Crop = the detector's box grown by this fraction in all (10 % per side), as the fer
    # library crops its FER2013 model's input.
    face_padding: float = 0.20
    # Test-time augmentations of the primary face (identity, mirror, shifts, zooms; 1..8),
    # run in one batched ONNX call.
    tta_samples: int = 8
    face_model: Path | None = None
    scene_model: Path | None = None
    video_fps: float = 5.0
    # Live: analyse at most this many frames a second (the newest one each time; 0 = as fast as the CPU
    # allows). The stabiliser's 4 s time constant needs no more than ~10, and on a 2-core machine the
    # rest of the CPU goes to the window's 30 fps preview and the audio.
    max_rate_hz: float = 10.0


@dataclass
class LibraryConfig:
    # Where built libraries live (one ``<name>.sqlite`` index each).
    dir: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir(APP)) / "libraries")
    # The library the app plays from; "" = the most recently built one, else the demo library.
    name: str = ""
    segment_seconds: float = 10.0
    segment_hop_seconds: float = 5.0      # 50 % overlap
    # Audio -> V/A model saved by `library calibrate` ("" = the built-in default model).
    audio_model: Path | None = None
    workers: int = 0                      # analysis processes; 0 = one per core
    # V/A from audio: "musicnn" = the music tagger fused with the hand-made features (needs
    # `models build`; falls back to features with a note when the taggers are missing);
    # "features" = the lightweight hand-made features only.
    music_model: Literal["musicnn", "features"] = "musicnn"


@dataclass
class WeightsConfig:
    """Hybrid score weights (see moodsic_live.match.hybrid); normalised to sum 1 when used."""

    fit: float = 0.6       # the moment: segment V/A near the target
    arc: float = 0.0       # the emotional flow: DTW similarity of arcs (videos)
    pref: float = 0.3      # the listener's learned preference for the track
    novelty: float = 0.1   # not played lately


@dataclass
class HybridConfig:
    """Weights per context: the live loop's modes and soundtracks for videos."""

    mirror: WeightsConfig = field(default_factory=WeightsConfig)
    regulate: WeightsConfig = field(default_factory=WeightsConfig)
    target: WeightsConfig = field(default_factory=WeightsConfig)
    video: WeightsConfig = field(default_factory=lambda: WeightsConfig(fit=0.35, arc=0.45, pref=0.15, novelty=0.05))
    learn: bool = True              # adapt the weights and track preferences from listeners' reactions
    safety_distance: float = 0.35   # exploration never offers a segment farther than this from the target


@dataclass
class TransitionWeights:
    """Weight of the transition (first-difference) term where the video moves from one quadrant
    of the V/A plane to another: joyful (V+ A+), tense (V- A+), sad (V- A-), calm (V+ A-)."""

    sad_to_joyful: float = 2.0
    sad_to_calm: float = 1.5
    tense_to_calm: float = 1.5
    tense_to_joyful: float = 1.5
    calm_to_joyful: float = 1.0
    calm_to_tense: float = 1.0
    calm_to_sad: float = 1.0
    joyful_to_sad: float = 1.5
    joyful_to_tense: float = 1.0
    joyful_to_calm: float = 1.0
    sad_to_tense: float = 1.0
    tense_to_sad: float = 1.0


@dataclass
class ArcsConfig:
    """Emotional arcs and their DTW alignment (moodsic_live.match.arcs)."""

    rate_hz: float = 1.0             # common rate of video and track arcs
    smooth_s: float = 5.0            # moving-average window
    transition_weight: float = 1.0   # first-difference term beside the V/A term (0 = plain DTW)
    band_s: float = 20.0             # Sakoe-Chiba band: how far the alignment may run ahead of or behind real time
    max_stretch: float = 2.0         # subsequence search: local pacing between 1/x and x
    transitions: TransitionWeights = field(default_factory=TransitionWeights)


@dataclass
class MatchConfig:
    k: int = 20                           # nearest candidates considered
    recent_songs: int = 5                 # prefer songs not among the last N played
    recent_penalty: float = 0.25          # added distance for a recently played song
    dwell_seconds: float = 25.0           # minimum time on a choice (20..30)
    switch_margin: float = 0.12           # a candidate must be this much closer to switch
    ending_seconds: float = 6.0           # switch when less than this is left of the song
    cluster_prior: float = 0.05           # added distance outside the target's mood cluster
    tail_penalty: float = 0.3             # added distance for a segment with < dwell left of its song
    alignment: Literal["quantile", "linear", "none"] = "quantile"
    mode: Literal["mirror", "regulate", "target"] = "mirror"
    # regulate: the goal the target moves toward, in steps of regulate_step every dwell.
    regulate_goal: Literal["calm", "energise", "uplift"] = "calm"
    regulate_step: float = 0.15
    # target: the venue's chosen atmosphere and how far the room may nudge it (0..1).
    target_valence: float = 0.4
    target_arousal: float = 0.0
    target_nudge: float = 0.25
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    arcs: ArcsConfig = field(default_factory=ArcsConfig)


@dataclass
class StabiliseConfig:
    # EMA time constant (s): the weight of a new estimate is 1 - exp(-dt / tau) for the real time
    # dt since the previous one, so 5 Hz and 30 Hz input give the same smoothing.
    time_constant_s: float = 4.0
    # Uncertainty gate per dimension, on the fused variance: above gate_close the stable value
    # is held; it reopens only below gate_open (hysteresis), then glides back over glide_s.
    # Measured fused variances: a face in view 0.03-0.12, the scene alone (no face: a cafe's
    # ambient camera) 0.17-0.24, no information (the uniform prior) 1/3. The gate holds only
    # estimates near "no information", so a room without faces still moves the music.
    gate_close_var: float = 0.30
    gate_open_var: float = 0.26
    glide_s: float = 2.0


@dataclass
class PlayConfig:
    crossfade_s: float = 4.0              # equal-power crossfade between choices (0..12)
    volume: float = 0.8                   # master gain 0..1
    fade_out_s: float = 1.0               # master fade-out on stop
    device: str = ""                      # PortAudio output device name or index; "" = default
    block_frames: int = 0                 # frames per callback; 0 = let PortAudio choose
    preload_s: float = 40.0               # audio decoded ahead of the play position


@dataclass
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    perceive: PerceiveConfig = field(default_factory=PerceiveConfig)
    library: LibraryConfig = field(default_factory=LibraryConfig)
    match: MatchConfig = field(default_factory=MatchConfig)
    stabilise: StabiliseConfig = field(default_factory=StabiliseConfig)
    play: PlayConfig = field(default_factory=PlayConfig)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check/convert one TOML or CLI value against a dataclass field's type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except MoodsicError as exc:
                errors.append(str(exc))
        raise MoodsicError(errors[0] if errors else f"config {key}: bad value {value!r}")
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise MoodsicError(f"config {key}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if annotation is Path:
        if not isinstance(value, (str, Path)):
            raise MoodsicError(f"config {key}: expected a path, got {value!r}")
        return Path(value).expanduser()
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise MoodsicError(f"config {key}: expected true or false, got {value!r}")
    if annotation in (int, float):
        what = "a whole number" if annotation is int else "a number"
        allowed = (int, str) if annotation is int else (int, float, str)
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise MoodsicError(f"config {key}: expected {what}, got {value!r}")
        try:
            return annotation(value)
        except ValueError:
            raise MoodsicError(f"config {key}: expected {what}, got {value!r}") from None
    if annotation is str:
        if not isinstance(value, str):
            raise MoodsicError(f"config {key}: expected text, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {annotation!r} for {key}")


def _apply(obj: Any, data: dict[str, Any], prefix: str) -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise MoodsicError(f"config: unknown setting {dotted!r} (known: {', '.join(sorted(names))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise MoodsicError(f"config {dotted}: expected a table of settings")
            _apply(current, value, dotted + ".")
        else:
            setattr(obj, key, _coerce(value, hints[key], dotted))


def set_value(config: Config, dotted: str, value: Any) -> None:
    """Set one setting by its dotted name, e.g. ``perceive.detector_range``."""
    *parents, leaf = dotted.split(".")
    data: dict[str, Any] = {leaf: value}
    for parent in reversed(parents):
        data = {parent: data}
    _apply(config, data, "")


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file (if it exists), then ``overrides`` (dotted keys)."""
    config = Config()
    explicit = path is not None
    path = path or default_config_path()
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise MoodsicError(f"config file {path}: cannot be read ({exc.__class__.__name__})") from None
        except tomllib.TOMLDecodeError as exc:
            raise MoodsicError(f"config file {path}: not valid TOML ({exc}); fix or remove it") from None
        try:
            _apply(config, data, "")
        except MoodsicError as exc:
            raise MoodsicError(f"{path}: {exc}") from None
    elif explicit:
        raise MoodsicError(f"config file {path} does not exist; create it or drop --config")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_value(config, dotted, value)
    return config
