"""The play step's core: loader (decode, seek, resample), mixer (crossfades, needs-next, stop) and file sink.

Audio fixtures are generated into ``tmp_path`` in real formats (WAV, FLAC, OGG/Vorbis) with soundfile.
"""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from moodsic_live.config import PlayConfig
from moodsic_live.play.loader import LoadFailure, Loader, PreparedBuffer, load_segment
from moodsic_live.play.mixer import CUT_S, FADE_IN_S, VOLUME_RAMP_S, Mixer
from moodsic_live.play.sink import FileSink, PlanEvent, render_plan, run_plan, schedule

SR = 48000
EPS = 1e-6   # float32 rounding of a product/sum of values <= 1


def tone(freq: float, seconds: float, sr: int = SR, amp: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def stereo(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x, x]).astype(np.float32)


def buffer(x: np.ndarray, song_id: str) -> PreparedBuffer:
    return PreparedBuffer.from_array(stereo(x) if x.ndim == 1 else x, SR, song_id)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


def max_step(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x, axis=0)).max())


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    """10 s stereo 1 kHz WAV and a 500 → 1500 Hz (switch at 5 s) stereo FLAC at 44.1 kHz; a 10 s mono
    440 Hz OGG/Vorbis at 22.05 kHz; random bytes named .mp3."""
    out = {}
    sr = 44100
    wav = np.column_stack([tone(1000, 10, sr, 0.5), tone(1000, 10, sr, 0.4, 0.7)])
    out["wav"] = tmp_path / "tone.wav"
    sf.write(out["wav"], wav, sr, subtype="PCM_16")
    t = np.arange(10 * sr) / sr
    sweep = np.where(t < 5.0, 0.5 * np.sin(2 * np.pi * 500 * t), 0.5 * np.sin(2 * np.pi * 1500 * t)).astype(np.float32)
    out["flac"] = tmp_path / "switch.flac"
    sf.write(out["flac"], stereo(sweep), sr, subtype="PCM_16")
    out["ogg"] = tmp_path / "mono.ogg"
    sf.write(out["ogg"], tone(440, 10, 22050, 0.5), 22050, format="OGG", subtype="VORBIS")
    out["bad"] = tmp_path / "corrupt.mp3"
    out["bad"].write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    return out


# ---- loader ----------------------------------------------------------------------------------

def test_loader_resamples_44k1_to_48k_with_right_length_and_pitch(files):
    buf = load_segment(files["wav"], SR)
    assert buf.frames == 480000 and buf.sample_rate == SR
    assert buf.audio.dtype == np.float32 and buf.audio.shape == (480000, 2)
    assert buf.audio.flags["C_CONTIGUOUS"] and not buf.audio.flags["WRITEABLE"]
    for ch in (0, 1):
        assert abs(peak_hz(buf.audio[:, ch], SR) - 1000.0) < 0.5
    rms = np.sqrt(np.mean(buf.audio[SR:-SR] ** 2, axis=0))
    assert np.allclose(rms, [0.5 / math.sqrt(2), 0.4 / math.sqrt(2)], rtol=0.01)   # stereo kept apart


def test_loader_makes_mono_ogg_stereo_at_the_output_rate(files):
    buf = load_segment(files["ogg"], SR, duration_s=8.0)
    assert buf.audio.shape == (8 * SR, 2)
    assert np.array_equal(buf.audio[:, 0], buf.audio[:, 1])
    assert abs(peak_hz(buf.audio[:, 0], SR) - 440.0) < 0.5
    whole = load_segment(files["ogg"], SR)
    assert abs(whole.frames - 10 * SR) <= 3


def test_loader_seeks_to_the_segment_start(files):
    buf = load_segment(files["flac"], SR, start_s=4.0, duration_s=2.0, song_id="switch")
    assert buf.frames == 2 * SR and buf.start_s == 4.0 and buf.song_id == "switch"
    x = buf.audio[:, 0]
    w = 2048
    assert abs(peak_hz(x[:int(0.95 * SR)], SR) - 500) < 2
    assert abs(peak_hz(x[int(1.05 * SR):], SR) - 1500) < 2
    # The switch lies 1.0 s into the segment: the last window before it is all 500 Hz, the first after all 1500.
    assert abs(peak_hz(x[SR - 50 - w:SR - 50], SR) - 500) < 30
    assert abs(peak_hz(x[SR + 50:SR + 50 + w], SR) - 1500) < 30
    late = load_segment(files["flac"], SR, start_s=7.5, duration_s=1.0)
    assert late.frames == SR and abs(peak_hz(late.audio[:, 0], SR) - 1500) < 2


def test_loader_thread_tags_results_and_reports_bad_files_in_one_line(files):
    seen: list[int] = []
    with Loader(SR, on_result=lambda r: seen.append(r.request_id)) as loader:
        bad = loader.request(files["bad"], 0.0, 5.0)
        missing = loader.request(files["bad"].with_name("missing.flac"), 0.0, 5.0)
        past_end = loader.request(files["wav"], 30.0, 5.0)
        good = loader.request(files["wav"], 2.0, 3.0, song_id="tone")
        ok = loader.wait(good, timeout=30)
        assert isinstance(ok, PreparedBuffer) and ok.request_id == good and ok.frames == 3 * SR
        for rid, path in ((bad, files["bad"]), (missing, files["bad"].with_name("missing.flac")),
                          (past_end, files["wav"])):
            failure = loader.wait(rid, timeout=30)
            assert isinstance(failure, LoadFailure) and failure.request_id == rid
            assert "\n" not in failure.message and path.name in failure.message
            print(failure.message)
        assert loader.poll() == []
    assert seen == [bad, missing, past_end, good]


# ---- mixer: gains ----------------------------------------------------------------------------

def test_crossfade_is_equal_power_for_uncorrelated_noise():
    rng = np.random.default_rng(7)
    a, b = (rng.standard_normal((10 * SR, 2)).astype(np.float32) * 0.1 for _ in range(2))
    config = PlayConfig(crossfade_s=4.0, volume=1.0)
    out = render_plan([PlanEvent.play(0.0, buffer(a, "a")), PlanEvent.crossfade(2.0, buffer(b, "b"))],
                      SR, 8.0, block_frames=480, config=config)
    ref = float(np.mean(np.concatenate([a, b]) ** 2))
    win = int(0.05 * SR)
    seg = out[int(1.0 * SR):int(7.0 * SR)]
    power = np.mean(seg[: len(seg) // win * win].reshape(-1, win * 2) ** 2, axis=1)
    db = 10 * np.log10(power / ref)
    print(f"\nequal power: {len(db)} windows of 50 ms over the 4 s fade, level {db.min():+.3f} .. {db.max():+.3f} dB")
    assert np.abs(db).max() < 0.5
    # Mid-fade both songs sound at -3 dB each (sin = cos = 1/sqrt 2).
    mid = int(4.0 * SR)
    fit = np.linalg.lstsq(np.column_stack([a[mid:mid + win, 0], b[mid - 2 * SR:mid - 2 * SR + win, 0]]),
                          out[mid:mid + win, 0], rcond=None)[0]
    assert np.allclose(fit, [math.sqrt(0.5)] * 2, atol=0.01)


def test_no_step_at_fade_in_crossfade_cut_and_stop():
    """No click: at every switch the sample-to-sample difference stays within what the tones themselves
    produce. For an equal-power mix of two tones the slope bound is hypot(Da, Db) (their peaks can align
    at sin = cos), plus the change of the gains, amplitude × π/(2L) per sample."""
    amp = 0.5
    a, b = tone(440, 10, amp=amp), tone(660, 10, amp=amp, phase=1.3)
    da, db = max_step(a), max_step(b)
    xfade, cut = 4.0, round(CUT_S * SR)
    config = PlayConfig(crossfade_s=xfade, volume=1.0, fade_out_s=1.0)
    plan = [PlanEvent.play(0.0, buffer(a, "a")), PlanEvent.crossfade(2.0, buffer(b, "b")),
            PlanEvent.crossfade(7.0, buffer(a, "a2"), 0.0), PlanEvent.stop(8.0, 0.5)]
    out = render_plan(plan, SR, 9.0, block_frames=480, config=config)[:, 0]
    steps = np.abs(np.diff(out))

    fade_in = round(FADE_IN_S * SR)
    assert out[0] == 0.0
    assert steps[:fade_in + 10].max() <= da + amp * (math.pi / 2) / fade_in + EPS
    x0, x1 = 2 * SR, 6 * SR
    xfade_bound = math.hypot(da, db) + 2 * amp * (math.pi / 2) / (xfade * SR) + EPS
    assert steps[x0 - 10:x1 + 10].max() <= xfade_bound
    c0 = 7 * SR
    cut_bound = math.hypot(da, db) + 2 * amp * (math.pi / 2) / cut + EPS
    assert steps[c0 - 10:c0 + cut + 10].max() <= cut_bound
    splice = abs(float(a[0]) - float(b[c0 - x0 - 1]))   # what a cut without the 5 ms ramp would step
    assert splice > 5 * cut_bound
    s0, s1 = 8 * SR, int(8.5 * SR)
    assert steps[s0 - 10:s1 + 10].max() <= da + amp * (math.pi / 2) / (s1 - s0) + EPS
    assert np.all(out[s1:] == 0.0) and abs(out[s1 - 1]) <= amp * (math.pi / 2) / (s1 - s0) + EPS
    assert steps.max() <= cut_bound
    print(f"\nmax |step|: tones {da:.4f} / {db:.4f}, fade-in {steps[:fade_in].max():.4f}, "
          f"crossfade {steps[x0:x1].max():.4f} (bound {xfade_bound:.4f}), cut {steps[c0:c0 + cut].max():.4f} "
          f"(bound {cut_bound:.4f}, unramped splice {splice:.4f}), stop {steps[s0:s1].max():.4f}")


def test_volume_change_is_ramped_without_zipper():
    amp, vol0, vol1 = 0.5, 0.8, 0.2
    a = tone(440, 3, amp=amp)
    mixer = Mixer(SR, 2, PlayConfig(volume=vol0))
    at = SR
    schedule(mixer, [PlanEvent.play(0.0, buffer(a, "a")), PlanEvent.set_volume(1.0, vol1)])
    out = np.zeros((2 * SR, 2), np.float32)
    for i in range(0, len(out), 441):
        mixer.render(out[i:i + 441])
    ramp = round(VOLUME_RAMP_S * SR)
    x = out[:, 0]
    assert np.array_equal(x[at - 1000:at], a[at - 1000:at] * np.float32(vol0))
    assert np.array_equal(x[at + ramp:], a[at + ramp:2 * SR] * np.float32(vol1))
    bound = vol0 * max_step(a) + amp * (vol0 - vol1) * (math.pi / 2) / ramp + EPS
    assert max_step(x[at - 10:at + ramp + 10]) <= bound


def test_pause_holds_the_music_where_it_was_and_resume_carries_on_without_a_click():
    """Pause ramps the master to 0 and then freezes every voice: after a 2 s hold, the music continues
    from the sample where the ramp ended (not 2 s later), ramping back to the volume; a stop releases a hold."""
    vol = 0.8
    a = tone(440, 6, amp=0.5)
    mixer = Mixer(SR, 2, PlayConfig(volume=vol))
    mixer.play_now(buffer(a, "a"), fade_in_s=CUT_S)
    out = np.zeros((6 * SR, 2), np.float32)
    pos = 0

    def run(seconds: float) -> np.ndarray:
        nonlocal pos
        start = pos
        end = pos + round(seconds * SR)
        while pos < end:
            n = min(480, end - pos)
            mixer.render(out[pos:pos + n])
            pos += n
        return out[start:end, 0]

    run(1.0)
    mixer.pause()
    mixer.set_volume(0.5)                 # a volume change while paused waits for resume
    ramp_and_hold = run(2.0)
    ramp = round(VOLUME_RAMP_S * SR)
    assert mixer.paused
    assert np.all(ramp_and_hold[ramp + 480:] == 0.0)            # held: exact silence
    held_clock = mixer.clock
    run(0.5)
    assert mixer.clock == held_clock                            # the clock stands still
    mixer.resume()
    after = run(1.0)
    assert not mixer.paused
    # The voice moved 1 s, then through the pause ramp only, then 1 s after resume: not the 2.5 s held.
    assert mixer.current_position == 2 * SR + ramp
    steady = after[ramp + 480:]
    expected_peak = 0.5 * 0.5
    assert abs(np.abs(steady).max() - expected_peak) < 0.01      # back at the new volume (0.5)
    assert max_step(out[:pos]) <= 2 * math.pi * 440 / SR * 0.5 * vol + 1e-3   # no click anywhere
    mixer.pause()
    run(0.5)
    mixer.stop(0.2)
    run(0.5)
    assert mixer.finished


# ---- mixer: sample-exact, allocation-free ------------------------------------------------------

def test_callback_blocks_and_file_sink_are_bit_identical(files, tmp_path):
    a = load_segment(files["wav"], SR, 0.0, 8.0, song_id="wav")
    b = load_segment(files["flac"], SR, 3.0, 6.0, song_id="flac")
    c = load_segment(files["ogg"], SR, 1.0, 6.0, song_id="ogg")
    a2 = load_segment(files["wav"], SR, 3.0, 5.0, song_id="wav@3")
    plan = [PlanEvent.play(0.0, a), PlanEvent.set_volume(1.1, 0.5), PlanEvent.crossfade(1.2345, b, 2.0),
            PlanEvent.crossfade(2.5, c, 3.0), PlanEvent.crossfade(4.0001, a2, 0.0),
            PlanEvent.set_volume(4.5, 0.9), PlanEvent.stop(6.0, 0.7)]
    config = PlayConfig(crossfade_s=4.0, volume=0.8)
    duration = 7.0
    callback = render_plan(plan, SR, duration, block_frames=480, config=config)

    sink = FileSink(tmp_path / "mix.wav", SR, config, block_frames=4096).render(plan, duration)
    from_file, rate = sf.read(sink.path, dtype="float32", always_2d=True)
    assert rate == SR and from_file.shape == callback.shape

    mixer = Mixer(SR, 2, config)            # irregular blocks, some longer than max_block
    schedule(mixer, plan)
    ragged = np.zeros_like(callback)
    sizes, pos, i = (1, 7, 480, 1000, 33, 9000, 256), 0, 0
    while pos < len(ragged):
        n = sizes[i % len(sizes)]
        mixer.render(ragged[pos:pos + n])
        pos, i = pos + n, i + 1

    assert np.array_equal(callback, from_file)
    assert np.array_equal(callback, ragged)
    assert np.sqrt(np.mean(callback[: 6 * SR] ** 2)) > 0.05
    assert np.all(callback[int(6.7 * SR):] == 0.0) and mixer.finished


def test_render_allocates_nothing():
    rng = np.random.default_rng(3)
    a, b = (buffer(rng.standard_normal((20 * SR, 2)).astype(np.float32) * 0.1, s) for s in "ab")
    peaks = {}
    for block, calls in ((480, 150), (4096, 60)):    # stays inside the 12 s crossfade
        mixer = Mixer(SR, 2, PlayConfig(crossfade_s=12.0, fade_out_s=1.0), max_block=4096)
        out = np.zeros((block, 2), np.float32)
        mixer.play_now(a)
        mixer.render(out)
        mixer.crossfade_to(b)          # two voices with vector gains
        mixer.set_volume(0.3)          # a master ramp
        mixer.render(out)
        mixer.render(out)
        mixer.stop(30.0)               # a long master fade keeps the vector path busy
        for _ in range(20):
            mixer.render(out)
        tracemalloc.start()
        try:
            for _ in range(20):
                mixer.render(out)
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            for _ in range(calls):
                mixer.render(out)
            after, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(mixer.voices()) == 2 and not mixer.finished
        peaks[block] = peak - before
        print(f"\nrender x{calls}, {block}-frame blocks: traced growth {after - before} B, "
              f"transient peak {peak - before} B (one block of samples would be {block * 8} B)")
        assert after - before < 1024
        assert peak - before < 1024
    assert abs(peaks[4096] - peaks[480]) < 256        # the transient objects do not grow with the block


# ---- mixer: needs next -------------------------------------------------------------------------

def test_needs_next_is_raised_early_and_the_handover_never_goes_silent():
    config = PlayConfig(crossfade_s=4.0, volume=1.0, fade_out_s=1.0)
    mixer = Mixer(SR, 2, config)
    first, second = tone(440, 10), tone(550, 20)
    mixer.play_now(buffer(first, "first"))
    block = np.zeros((480, 2), np.float32)
    out = []
    while not mixer.needs_next:
        mixer.render(block)
        out.append(block.copy())
    left = len(first) - mixer.current_position
    print(f"\nneeds_next raised with {left / SR:.3f} s left (crossfade {config.crossfade_s} s)")
    assert mixer.needs_next_frames - 480 < left <= mixer.needs_next_frames
    assert left >= config.crossfade_s * SR
    mixer.crossfade_to(buffer(second, "second"))
    assert not mixer.needs_next                         # the answer is on its way
    for seconds in (4.5, 3.5):
        for _ in range(int(seconds * SR / 480)):
            mixer.render(block)
            out.append(block.copy())
        if seconds == 4.5:      # the crossfade is over; the new song has plenty left
            assert mixer.current_song_id == "second" and len(mixer.voices()) == 1 and not mixer.needs_next
    x = np.concatenate(out)[:, 0]
    win = int(0.05 * SR)
    rms = np.sqrt(np.mean(x[: len(x) // win * win].reshape(-1, win) ** 2, axis=1))
    assert len(rms) == int(11 * SR / win)
    assert rms[2:].min() > 0.9 * 0.5 / math.sqrt(2)                     # no gap, no dip


def test_short_song_raises_needs_next_at_once_and_fades_its_tail_when_nothing_comes():
    config = PlayConfig(crossfade_s=4.0, volume=1.0, fade_out_s=1.0)
    mixer = Mixer(SR, 2, config)
    amp = 0.5
    song = tone(440, 3, amp=amp)
    mixer.play_now(buffer(song, "short"))
    out = np.zeros((5 * SR, 2), np.float32)
    mixer.render(out[:480])
    assert mixer.needs_next and mixer.current_song_id == "short"
    for i in range(480, len(out), 480):
        mixer.render(out[i:i + 480])
    x = out[:, 0]
    tail = round(config.fade_out_s * SR)
    t0, end = len(song) - tail, len(song)
    assert np.array_equal(x[t0 - 1000:t0], song[t0 - 1000:t0])             # full level until the tail
    assert np.all(x[end:] == 0.0)                                            # silence after, exactly
    assert abs(x[end - 1]) <= amp * (math.pi / 2) / tail + EPS               # ...reached without a step
    assert max_step(x[t0 - 10:end + 10]) <= max_step(song) + amp * (math.pi / 2) / tail + EPS
    env = np.abs(x[t0:end]).reshape(-1, 480).max(axis=1)
    assert np.all(np.diff(env) <= 1e-6)
    assert mixer.needs_next and mixer.current_song_id is None and not mixer.finished


def test_stop_fades_to_exact_zeros_and_finishes():
    mixer = Mixer(SR, 2, PlayConfig(volume=0.8, fade_out_s=0.25))
    mixer.play_now(buffer(tone(440, 5), "a"))
    out = np.zeros((SR, 2), np.float32)
    mixer.render(out[:4800])
    mixer.stop()
    assert not mixer.finished
    for i in range(4800, SR, 480):
        mixer.render(out[i:i + 480])
    stop_end = 4800 + round(0.25 * SR)
    assert mixer.finished and not mixer.needs_next
    assert np.all(out[stop_end:] == 0.0) and np.any(out[stop_end - 480:stop_end] != 0.0)
    mixer.play_now(buffer(tone(440, 5), "late"))        # ignored once finished
    mixer.render(out[:480])
    assert np.all(out[:480] == 0.0) and mixer.finished


# ---- file sink -----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_file_sink_writes_exact_duration_faster_than_real_time(files, tmp_path, suffix):
    a = load_segment(files["wav"], SR, 0.0, 10.0, song_id="a")
    b = load_segment(files["flac"], SR, 2.0, 10.0, song_id="b")
    duration = 7.3001
    plan = [PlanEvent.play(0.0, a), PlanEvent.crossfade(3.0, b, 4.0), PlanEvent.stop(duration - 1.0)]
    report = FileSink(tmp_path / f"mix{suffix}", SR, PlayConfig()).render(plan, duration)
    info = sf.info(report.path)
    assert info.frames == round(duration * SR) == report.frames
    assert info.samplerate == SR and info.channels == 2
    assert 0.3 < report.peak < 1.0 and not report.clipped
    back, _ = sf.read(report.path, dtype="float32")
    expected = render_plan(plan, SR, duration, block_frames=480, config=PlayConfig())
    assert np.allclose(back, expected, atol=0 if suffix == ".wav" else 2 ** -22)
    print(f"\n{suffix}: {report.duration_s:.3f} s rendered in {report.wall_s * 1000:.1f} ms "
          f"= {report.speed:.0f}x real time")


def test_run_plan_hands_out_every_frame_once():
    blocks: list[int] = []
    mixer = Mixer(SR, 2, PlayConfig())
    run_plan(mixer, [PlanEvent.play(0.0, buffer(tone(440, 1), "a"))], 10_001, 480, lambda blk: blocks.append(len(blk)))
    assert sum(blocks) == 10_001 and max(blocks) == 480 and blocks[-1] == 10_001 % 480
    assert mixer.clock == 10_001
