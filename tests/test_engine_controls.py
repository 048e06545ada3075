"""The live engine's controls (what the window's buttons call): skip, like, pause/resume, volume, mode,
dwell, crossfade, experts on/off, atmosphere only; and the status the window draws.

One live run on a real photo seen by a (simulated) webcam, real models, real songs, silent real-time output.
"""

from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pytest

from moodsic_live.errors import MoodsicError
from test_engine import _wait_for


class _Webcam:
    """A webcam (the VideoLike protocol) showing a real photo at 15 fps."""

    def __init__(self, image: np.ndarray):
        self.image = image

    def isOpened(self) -> bool:
        return True

    def read(self):
        time.sleep(1 / 15)
        return True, self.image.copy()

    def get(self, prop_id: int) -> float:
        import cv2

        return 15.0 if prop_id == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        pass


@pytest.fixture()
def engine(small_library, tmp_path):
    from skimage import data

    from moodsic_live.capture.source import parse_source
    from moodsic_live.engine.live import LiveEngine
    from moodsic_live.feedback import FeedbackStore
    from moodsic_live.play.player import silent_output

    library, base = small_library
    config = copy.deepcopy(base)
    config.perceive.tta_samples = 2
    photo = np.ascontiguousarray(data.astronaut()[..., ::-1])   # a smiling face, public domain
    said: list[str] = []
    e = LiveEngine(config, library, parse_source("0"), silent_output(config.play), said.append,
                   opener=lambda spec: _Webcam(photo), feedback=FeedbackStore(tmp_path / "feedback.sqlite"))
    e.said = said
    e.start()
    yield e
    e.stop()


def test_controls_change_the_running_engine(engine):
    e = engine
    assert _wait_for(lambda: e.status is not None and e.status.now is not None and e.status.perception
                     and e.status.t > 2.5, 20)             # the rates are measured over 2 s
    s = e.status
    assert e.latest_frame is not None and e.latest_frame.image.shape == (512, 512, 3)
    assert s.perception.faces and s.perception.boxes and s.fps_in > 5 and s.fps_analysed > 0.5
    assert s.now.duration_s == pytest.approx(60.0, abs=0.5) and s.up_next and s.mode == "mirror"
    assert all(-1.0 <= x <= 1.0 for x in s.now.segment_va + s.now.target_va)
    assert 0.0 <= s.detection_rate <= 1.0 and s.detection_rate > 0.5

    # like: an event with the song, where in it, the room's estimate and the mode, answering its play
    def actions():
        return [r for r in e.feedback.rows() if r.kind in ("liked", "skipped")]

    e.like()
    assert _wait_for(lambda: len(actions()) == 1, 2)
    like = actions()[0]
    assert like.kind == "liked" and like.track_id == s.now.track_id and like.mode == "mirror"
    assert like.valence is not None and abs(time.time() - like.at) < 5
    started = [r for r in e.feedback.rows() if r.kind == "started"]
    assert started[-1].track_id == like.track_id and like.recommendation == started[-1].id
    assert started[-1].context["duration_s"] == pytest.approx(60.0, abs=0.5)

    # skip: another song at once (dwell ignored), crossfading, recorded
    first = s.now.track_id
    e.skip()
    assert _wait_for(lambda: e.status.now.track_id != first, 1.0)
    assert _wait_for(lambda: e.status.crossfading, 3.0)
    assert [r.kind for r in actions()] == ["liked", "skipped"]
    assert actions()[1].track_id == first
    assert _wait_for(lambda: e.feedback.rows()[-1].kind == "started" and e.feedback.rows()[-1].track_id != first, 1.0)
    songs = e.status.songs

    # replay: the same song again from where its choice started, recorded as a replay of its play
    again = e.status.now
    before = len(e.feedback.rows())
    e.replay()
    assert _wait_for(lambda: [r.kind for r in e.feedback.rows()[before:]] == ["replayed"], 1.0)
    replayed = e.feedback.rows()[-1]
    assert replayed.track_id == again.track_id and replayed.recommendation == e.feedback.rows()[before - 1].id
    assert _wait_for(lambda: e.status.now.track_id == again.track_id and e.status.dwell_left >
                     e.config.match.dwell_seconds - 1.0, 1.0)                # the dwell starts again
    assert e.status.songs == songs

    # pause: the music holds where it is (mixer clock and dwell stand still); resume carries on
    e.pause()
    assert _wait_for(lambda: e.status.paused and e.player.mixer.paused, 1.0)
    time.sleep(0.3)                                    # the 50 ms ramp has ended: held
    clock, dwell = e.player.mixer.clock, e.status.dwell_left
    time.sleep(1.5)
    assert e.player.mixer.clock == clock and e.status.dwell_left == pytest.approx(dwell, abs=0.3)
    e.resume()
    assert _wait_for(lambda: not e.status.paused and e.player.mixer.clock > clock, 1.0)

    # volume, dwell, crossfade, mode: applied by the conductor within a tick
    e.set_volume(0.3)
    e.set_dwell(20)
    e.set_crossfade(1.5)
    e.set_mode("target", target=(-0.8, -0.8))
    assert _wait_for(lambda: e.status.mode == "target" and e.status.volume == 0.3, 1.0)
    assert e.config.match.dwell_seconds == 20 and e.config.play.crossfade_s == 1.5
    assert _wait_for(lambda: e.status.now.target_va[0] < -0.3 and e.status.now.target_va[1] < -0.3, 1.0)
    with pytest.raises(MoodsicError, match="dwell 40 s is outside 20..30"):
        e.set_dwell(40)
    with pytest.raises(MoodsicError, match="regulate_goal"):
        e.set_mode("regulate", goal="sleep")
    assert e.status.songs == songs                     # none of these switched the song

    # atmosphere only: faces still found (to blur them) but not read; face expert off: not even found
    generation = e.worker.generation
    e.set_perception(atmosphere_only=True)
    assert _wait_for(lambda: e.worker.generation == generation + 1, 10)
    assert _wait_for(lambda: e.status.perception.index > 0 and not e.status.perception.faces
                     and e.status.perception.boxes, 5)
    e.set_perception(atmosphere_only=False, face_enabled=False)
    assert _wait_for(lambda: e.worker.generation == generation + 2, 10)
    assert _wait_for(lambda: not e.status.perception.boxes and e.status.perception.scene is not None, 5)
    assert not e.worker.problem and e.worker.error is None

    t0 = time.monotonic()
    assert e.stop()
    assert time.monotonic() - t0 < 1.5
    assert not {t.name for t in threading.enumerate()} & {"capture", "perceive", "stabilise-match"}


def test_a_feedback_file_that_cannot_be_written_is_said_and_the_music_goes_on(engine, tmp_path):
    from moodsic_live.feedback import FeedbackStore

    e = engine
    assert _wait_for(lambda: e.status is not None and e.status.now is not None, 20)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    e.feedback = FeedbackStore(blocker / "feedback.sqlite")
    first = e.status.now.track_id
    e.skip()
    assert _wait_for(lambda: e.status.now.track_id != first, 1.0)     # the skip still happens
    assert _wait_for(lambda: "feedback file" in e.status.problem, 1.0)
    assert any("feedback file" in line and "paths.feedback" in line for line in e.said)


def test_the_live_loop_chooses_by_the_hybrid_score_and_learns_from_the_listener(engine):
    """Each song is chosen by the learner among the matcher's candidates: the choice (terms, weights, why) is
    kept as a `shown` event, the window gets "why this song", and an early skip is learned from at once
    (the next play starts), saved, forgotten by a reset and gone with the history."""
    from moodsic_live.engine.learning import STATE, Learning

    e = engine
    assert _wait_for(lambda: e.status is not None and e.status.now is not None, 20)
    first = e.status.now
    assert "fits the moment" in first.why and " % · " in first.why and first.why_detail.startswith("score ")
    shown = [r for r in e.feedback.rows() if r.kind == "shown"]
    assert shown and shown[-1].track_id == first.track_id and shown[-1].context["hybrid"] == "mirror"
    ctx = shown[-1].context
    assert len(ctx["terms"]) == 4 and set(ctx["weights"]) == {"fit", "arc", "pref", "novelty"}
    assert ctx["why"] == first.why_detail
    assert ctx["distance"] <= e.config.match.hybrid.safety_distance or not ctx["safe"]
    assert e.learning.learner.plays("mirror") == 0

    e.skip()                                                    # within the first 10 s: reward -1
    assert _wait_for(lambda: e.status.now.track_id != first.track_id, 1.0)
    assert _wait_for(lambda: e.learning.learner.plays("mirror") == 1, 1.0)
    assert e.learning.learner.preference([first.track_id])[0] < 0.5
    # saved (right after the update, on the conductor): what the next run starts from
    assert _wait_for(lambda: (e.feedback.load_state(STATE) or {}).get("learner", {}).get("contexts", {})
                     .get("mirror", {}).get("n") == 1, 1.0)
    assert Learning.open(e.config, e.feedback, read_only=True).learner.plays("mirror") == 1

    e.reset_learning()
    assert _wait_for(lambda: e.learning.learner.plays("mirror") == 0, 1.0)
    assert e.learning.learner.preference([first.track_id])[0] == 0.5
    assert _wait_for(lambda: Learning.open(e.config, e.feedback, read_only=True).learner.plays("mirror") == 0, 1.0)  # not relearned
    assert any("forgot what was learned" in line for line in e.said)

    e.delete_history()
    assert _wait_for(lambda: any("listening history deleted" in line for line in e.said), 1.0)
    assert not e.feedback.path.exists()
    second = e.status.now.track_id
    e.skip()                                                    # the history starts afresh
    assert _wait_for(lambda: e.status.now.track_id != second, 1.0)
    assert _wait_for(lambda: e.feedback.path.exists() and e.feedback.rows()[0].kind in ("skipped", "shown"), 1.0)


def test_soundtrack_previews_and_likes_are_plays_of_the_video_context(engine):
    """A preview heard to its end with a like during it is one play (+1), learned when it ends; a like
    without a preview is a shown + liked pair; an early stop is a skip (-1)."""
    from moodsic_live.engine.live import VideoSong

    e = engine
    assert _wait_for(lambda: e.status is not None and e.status.now is not None, 20)
    ctx = {"hybrid": "video", "terms": [0.5, 0.8, 0.5, 1.0], "weights": {"fit": 0.35, "arc": 0.45, "pref": 0.15,
                                                                         "novelty": 0.05}, "transition_weight": 1.0}
    a, b = (VideoSong(e.library.name, t.id, t.title, t.artist, 10.0, 30.0, ctx) for t in e.library.tracks[:2])
    learner = e.learning.learner

    def video():
        return [(r.kind, r.track_id, r.recommendation) for r in e.feedback.rows() if r.mode == "video"]

    e.soundtrack_preview("started", a, 0.0)
    e.like_soundtrack(a)
    assert _wait_for(lambda: len(video()) == 2, 1.0)
    assert learner.plays("video") == 0                         # the preview still plays
    e.soundtrack_preview("completed", a, 30.0)
    assert _wait_for(lambda: learner.plays("video") == 1, 1.0)
    rows = video()
    assert [k for k, _, _ in rows] == ["started", "liked", "completed"] and rows[1][2] == rows[2][2]
    assert learner.preference([a.track_id])[0] > 0.5

    e.like_soundtrack(b)                                      # liked from the list, never previewed
    assert _wait_for(lambda: learner.plays("video") == 2, 1.0)
    e.soundtrack_preview("started", b, 0.0)
    e.soundtrack_preview("skipped", b, 2.0)                   # stopped after 2 s: a strong no
    assert _wait_for(lambda: learner.plays("video") == 3, 1.0)
    assert [k for k, _, _ in video()][3:] == ["shown", "liked", "started", "skipped"]
    assert learner.transition_means()[1.0] != 0.0              # the transition weight used is credited
    with pytest.raises(ValueError):
        e.soundtrack_preview("paused", a, 0.0)
