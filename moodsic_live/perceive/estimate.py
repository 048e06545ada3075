"""Estimates: valence/arousal with their variance, per expert and fused."""

from __future__ import annotations

from dataclasses import dataclass, field

# Russell & Mehrabian's seven FER2013 classes, in the model's output order.
FER_LABELS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")


@dataclass(frozen=True, slots=True)
class VA:
    """A point in the reference space ([-1, 1] each) with a variance per dimension."""

    valence: float
    arousal: float
    valence_var: float
    arousal_var: float

    def as_dict(self) -> dict[str, float]:
        return {"valence": round(self.valence, 4), "arousal": round(self.arousal, 4),
                "valence_var": round(self.valence_var, 4), "arousal_var": round(self.arousal_var, 4)}


@dataclass(frozen=True, slots=True)
class FaceBox:
    x: int
    y: int
    w: int
    h: int
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()  # pixels: right eye, left eye, nose, mouth, ears

    @property
    def area(self) -> int:
        return self.w * self.h

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2.0, self.y + self.h / 2.0


@dataclass(frozen=True, slots=True)
class FaceReading:
    box: FaceBox
    estimate: VA
    probabilities: dict[str, float] | None = None
    entropy: float | None = None  # of the class distribution, normalised to [0, 1]


@dataclass(frozen=True)
class Perception:
    """Everything perceive says about one frame."""

    t: float
    index: int
    fused: VA
    face: FaceReading | None  # the primary face
    faces: tuple[FaceReading, ...]  # every face in view, primary first
    scene: VA | None
    scene_features: dict[str, float] = field(default_factory=dict)
    provider: str = "CPU"
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Every detected face box, primary first: the boxes of ``faces``, or in atmosphere-only mode
    # (no face analysis) the boxes alone, so the preview can blur them.
    boxes: tuple[FaceBox, ...] = ()

    def to_json(self, path: str, video: bool) -> dict:
        """The CLI contract of ``moodsic-live perceive --json`` (other tools parse it)."""
        out: dict = {"path": path}
        if video:
            out["t"] = round(self.t, 3)
        out.update(self.fused.as_dict())
        out["faces"] = len(self.faces)
        if self.face is None:
            out["face"] = None
        else:
            f = self.face
            face = f.estimate.as_dict()
            face["probabilities"] = ({k: round(v, 4) for k, v in f.probabilities.items()}
                                     if f.probabilities is not None else None)
            face["box"] = [f.box.x, f.box.y, f.box.w, f.box.h]
            face["score"] = round(f.box.score, 4)
            out["face"] = face
        out["scene"] = self.scene.as_dict() if self.scene is not None else None
        out["provider"] = self.provider
        return out
