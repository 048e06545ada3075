"""The audio output: PortAudio stream (DeviceOutput), the player's control side, the paced file sink.

The real-time test plays through JACK's dummy driver, which consumes blocks at the wall clock's
pace like a sound card (unlike the ALSA null device, which runs faster than real time, or
PulseAudio's null sink, which runs slower): a session fixture starts
``jackd --no-realtime -d dummy -r 48000 -p 480`` unless a JACK server is already running, and the
test is skipped with the reason when jackd or PortAudio's JACK host API is missing. See
DEVELOPERS.md.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from moodsic_live.config import PlayConfig
from moodsic_live.play.jack import DummyJack
from moodsic_live.play.loader import PreparedBuffer
from moodsic_live.play.mixer import Mixer
from moodsic_live.play.output import AudioDeviceError, DeviceOutput, device_sample_rate
from moodsic_live.play.player import Player, device_or_silent, device_output, paced_file_output
from moodsic_live.play.steal import steal_jiffies, unexplained_underflows

SR = 48000
# libjack would otherwise try to start a JACK server of its own (with the user's ~/.jackdrc or
# ALSA) whenever PortAudio initialises without one running.
os.environ.setdefault("JACK_NO_START_SERVER", "1")


def tone(freq: float, seconds: float, sr: int, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def song(freq: float, seconds: float, sr: int, seed: int) -> np.ndarray:
    """A stereo tone with a little noise, so the mixer's output is never trivially periodic."""
    rng = np.random.default_rng(seed)
    x = tone(freq, seconds, sr) + (0.05 * rng.standard_normal(round(seconds * sr))).astype(np.float32)
    return np.column_stack([x, 0.8 * x]).astype(np.float32)


class Flags:
    """Stands in for sounddevice.CallbackFlags (the attributes the callback reads)."""

    def __init__(self, output_underflow: bool = False) -> None:
        self.output_underflow = output_underflow
        self.output_overflow = False
        self.priming_output = False

    def __bool__(self) -> bool:
        return self.output_underflow or self.output_overflow or self.priming_output


def app_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


# ---- JACK's dummy driver as a real-time device --------------------------------------------------

@pytest.fixture(scope="session")
def jack_device(tmp_path_factory):
    """The index (as text) of JACK's output device, with a dummy-driver server running for the session."""
    jack = DummyJack(tmp_path_factory.mktemp("jackd"))
    try:
        if jack.device is None:
            pytest.skip(jack.note)
        yield jack.device
    finally:
        jack.close()


@pytest.mark.realtime
def test_sixty_seconds_of_crossfades_on_a_real_time_device(jack_device, tmp_path):
    """Real time, 60 s (the issue asks for it): four songs, a crossfade every 15 s, on JACK."""
    paths = []
    for i, (freq, sr, suffix) in enumerate([(220, 48000, ".wav"), (330, 44100, ".flac"), (440, 48000, ".flac"),
                                           (550, 44100, ".wav")]):
        path = tmp_path / f"song{i}{suffix}"
        sf.write(path, song(freq, 30.0, sr, seed=i), sr, subtype="PCM_16")
        paths.append(path)
    config = PlayConfig(crossfade_s=4.0, volume=0.8, fade_out_s=1.0, device=jack_device, block_frames=0)
    before = app_threads()
    player = Player(config, device_output(config))
    output = player.output
    assert isinstance(output, DeviceOutput)
    assert player.sample_rate == output.sample_rate == SR     # the output follows the device's rate

    seen: list[str] = []
    events = []
    cue_at = [0.0, 15.0, 30.0, 45.0]
    steal = [(time.perf_counter_ns(), steal_jiffies())]
    started = time.monotonic()
    try:
        while (now := time.monotonic() - started) < 60.0:
            while cue_at and now >= cue_at[0]:
                i = 4 - len(cue_at)
                player.cue(paths[i], f"song{i}", start_s=2.0, duration_s=25.0)
                cue_at.pop(0)
            events += player.poll(0.02)
            current = player.current_song_id
            if current is not None and (not seen or seen[-1] != current):
                seen.append(current)
            steal.append((time.perf_counter_ns(), steal_jiffies()))
        wall = time.monotonic() - started
        mixer_clock = player.mixer.clock
    finally:
        t = time.monotonic()
        clean = player.close()
        close_s = time.monotonic() - t
    time.sleep(0.05)
    steal.append((time.perf_counter_ns(), steal_jiffies()))
    stats = output.callback_stats
    unexplained = unexplained_underflows(stats.underflow_times_ns, steal)
    stolen = [v for _, v in steal if v is not None]
    stolen_s = (stolen[-1] - stolen[0]) / 100 if stolen else float("nan")

    block_ms = stats.block_s * 1e3
    p50, p99 = stats.percentile_ns(50) / 1e6, stats.percentile_ns(99) / 1e6
    print(f"\n{stats.callbacks} callbacks of {block_ms:.2f} ms ({stats.frames / stats.callbacks:.0f} frames) in "
          f"{wall:.1f} s; underflows {stats.underflows} ({len(unexplained)} with no hypervisor steal around them; "
          f"CPU stolen by the hypervisor during the run: {stolen_s:.2f} s), priming {stats.priming}, "
          f"errors {stats.errors}; "
          f"callback p50 {p50 * 1e3:.0f} us ({100 * stats.percentile_of_block(50):.2f} % of the block), "
          f"p99 {p99 * 1e3:.0f} us ({100 * stats.percentile_of_block(99):.2f} %), "
          f"max {stats.durations_ns.max() / 1e3:.0f} us; close {close_s * 1e3:.0f} ms; songs {seen}")

    assert [e.kind for e in events] == ["started"] * 4, events
    assert seen == ["song0", "song1", "song2", "song3"]
    assert output.underflows == player.underflows == stats.underflows
    assert stats.errors == 0
    assert close_s < 5.0                      # bounded even when the hypervisor stalls the machine
    assert not output.active
    assert app_threads() - before == set()
    if stolen_s > 0.05 * wall:
        # The hypervisor took more than 5 % of the CPU during the minute (one CI run: 22 s of 60):
        # the JACK dummy driver itself then falls behind real time, so timing results say nothing
        # about our callback. The functional checks above still ran.
        pytest.skip(f"real-time checks not meaningful: the hypervisor took {stolen_s:.1f} s of CPU in {wall:.0f} s "
                    f"({stats.underflows} underflows)")
    # Zero underflows, except those the machine itself explains: JACK reports every xrun of the
    # graph (a late driver wake-up too) as an underflow to every client, and on a VM whose
    # hypervisor takes CPU away (steal) even a C client (jack_simple_client) gets them. Where
    # /proc/stat has no steal figures, or none was stolen, this is a plain "no underflow at all".
    # On this shared 2-core CI VM a stray unexplained xrun still happens about once a run (steal is
    # sampled in 10 ms jiffies every ~20 ms, and not every host stall is accounted as steal), so at
    # most 2 in 6000 callbacks are tolerated here: a callback that blocked, allocated or read disk
    # would underflow far more often. On a quiet machine this is 0 (see DEVELOPERS.md).
    assert len(unexplained) <= 2, f"underflows at {unexplained} (perf_counter s) with no CPU steal around them"
    # paced by the wall clock: a device running faster or slower than real time would show here
    assert mixer_clock / SR == pytest.approx(wall, rel=0.05)
    assert stats.percentile_of_block(99) < 0.10
    # the 1 s fade-out completed within the 1 s close budget (one CI run under 61 s of steal: 1.9 s)
    assert clean and player.mixer.finished
    assert close_s < 1.0


# ---- no device --------------------------------------------------------------------------------------

def test_a_missing_device_is_one_line_naming_the_fix():
    config = PlayConfig(device="no such sound card 4242")
    mixer = Mixer(SR, 2, config)
    with pytest.raises(AudioDeviceError) as info:
        DeviceOutput(mixer, config, sample_rate=SR).open()
    message = str(info.value)
    print("\n" + message)
    assert "\n" not in message
    if "PortAudio library is missing" in message:    # no libportaudio2 on this machine
        assert "apt-get install libportaudio2" in message
    else:
        assert message.startswith("no audio output device")
        assert "no such sound card 4242" in message and "--device" in message and "--output FILE.wav" in message
    with pytest.raises(AudioDeviceError):
        device_sample_rate(config)
    with pytest.raises(AudioDeviceError):
        Player(config, device_output(config))


def test_without_a_device_the_player_says_so_once_and_plays_silently(tmp_path):
    """No sound card: one line, then the same mix runs (songs start, crossfade, hand over) unheard."""
    config = PlayConfig(device="no such sound card 4242", crossfade_s=0.5, fade_out_s=0.2)
    said: list[str] = []
    factory = device_or_silent(config, said.append)
    assert len(said) == 1 and "\n" not in said[0] and "without sound" in said[0], said
    assert "silent" in factory.description
    paths = []
    for i, freq in enumerate((330, 550)):
        paths.append(tmp_path / f"s{i}.wav")
        sf.write(paths[-1], song(freq, 3.0, 44100, seed=i), 44100)
    before = app_threads()
    player = Player(config, factory)
    try:
        started = time.monotonic()
        player.cue(paths[0], "s0")
        events = []
        while not events and time.monotonic() - started < 5:
            events += player.poll(0.05)
        player.cue(paths[1], "s1", fade_s=0.5)
        while len(events) < 2 and time.monotonic() - started < 5:
            events += player.poll(0.05)
        time.sleep(0.8)                                           # past the crossfade
        wall = time.monotonic() - started
        assert [e.kind for e in events] == ["started", "started"]
        assert player.current_song_id == "s1"
        # paced by the wall clock, like a sound card (not as fast as possible)
        assert 0.5 * wall < player.mixer.clock / player.sample_rate <= wall + 0.2
    finally:
        player.close()
    assert app_threads() - before == set()


def test_missing_portaudio_says_how_to_install_it(monkeypatch):
    """``import sounddevice`` raises OSError when libportaudio2 is not installed."""
    import ctypes.util

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    config = PlayConfig()
    with pytest.raises(AudioDeviceError) as info:
        DeviceOutput(Mixer(SR, 2, config), config, sample_rate=SR).open()
    message = str(info.value)
    print("\n" + message)
    assert "\n" not in message and "apt-get install libportaudio2" in message and "--output FILE.wav" in message


# ---- the callback itself -------------------------------------------------------------------------------

def _scripted(mixer: Mixer) -> None:
    a = PreparedBuffer.from_array(song(440, 3.0, SR, 1), SR, "a")
    b = PreparedBuffer.from_array(song(660, 3.0, SR, 2), SR, "b")
    mixer.play_now(a, at_frame=0)
    mixer.crossfade_to(b, 0.5, at_frame=SR)
    mixer.set_volume(0.5, at_frame=2 * SR)
    mixer.stop(0.3, at_frame=round(2.5 * SR))


def test_the_callback_writes_exactly_what_render_writes():
    config = PlayConfig(crossfade_s=0.5, volume=0.9, fade_out_s=0.3)
    direct, through = Mixer(SR, 2, config), Mixer(SR, 2, config)
    _scripted(direct)
    _scripted(through)
    output = DeviceOutput(through, config, sample_rate=SR, ring_size=64)
    expect = np.zeros((480, 2), np.float32)
    outdata = np.full((480, 2), np.nan, np.float32)       # stands for PortAudio's buffer
    blocks = 3 * SR // 480
    for k in range(blocks):
        direct.render(expect)
        outdata.fill(np.nan)
        output.callback(outdata, 480, None, Flags(output_underflow=k in (10, 20)))
        assert np.array_equal(outdata, expect), f"block {k}"
    assert through.finished and direct.finished and through.clock == direct.clock
    stats = output.callback_stats
    assert stats.callbacks == blocks and stats.frames == blocks * 480 and stats.underflows == 2
    assert output.underflows == 2
    assert len(stats.durations_ns) == 64 and (stats.durations_ns > 0).all()    # the ring keeps the last 64
    assert stats.block_s == pytest.approx(0.01)


def _traced(call, calls: int = 1000) -> tuple[int, int]:
    """(lasting growth, transient peak) in bytes of ``calls`` calls, as tracemalloc sees them."""
    for _ in range(20):
        call()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(calls):
            call()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before, peak - before


def test_the_callback_allocates_nothing_that_lasts_or_grows():
    """The callback adds nothing measurable to what ``Mixer.render`` allocates (small transient
    objects: numpy views and scalars, perf_counter_ns's int), during a 12 s crossfade."""
    results = {}
    for how in ("render", "callback"):
        config = PlayConfig(crossfade_s=12.0, volume=0.8)
        mixer = Mixer(SR, 2, config)
        mixer.play_now(PreparedBuffer.from_array(song(440, 30.0, SR, 1), SR, "a"))
        mixer.crossfade_to(PreparedBuffer.from_array(song(660, 30.0, SR, 2), SR, "b"), at_frame=SR // 10)
        output = DeviceOutput(mixer, config, sample_rate=SR)
        outdata = np.zeros((480, 2), np.float32)
        flags = Flags()
        if how == "render":
            results[how] = _traced(lambda: mixer.render(outdata))
        else:
            results[how] = _traced(lambda: output.callback(outdata, 480, None, flags))
        assert len(mixer.voices()) == 2                 # measured while two voices sound
    print(f"\nx1000 (lasting growth, transient peak) in bytes: {results}; one block of samples: {480 * 8} B")
    growth, peak = results["callback"]
    assert growth < 1024 and peak < 480 * 8
    assert peak <= results["render"][1] + 256


# ---- the player's control side, on the paced file sink -------------------------------------------------

def test_a_song_that_fails_to_load_keeps_the_current_one_playing(tmp_path):
    good, other = tmp_path / "good.wav", tmp_path / "other.flac"
    sf.write(good, song(330, 10.0, SR, 3), SR, subtype="PCM_16")
    sf.write(other, song(495, 10.0, 44100, 4), 44100, subtype="PCM_16")
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    out = tmp_path / "live.wav"
    config = PlayConfig(crossfade_s=0.5, volume=1.0, fade_out_s=1.0, block_frames=480)
    before = app_threads()
    player = Player(config, paced_file_output(out, config, SR))

    def wait_for(kind: str, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in player.poll(0.02):
                if event.kind == kind:
                    return event
        raise AssertionError(f"no {kind!r} event within {timeout} s")

    try:
        player.cue(good, "good", duration_s=9.0)
        assert player.loading and not player.needs_next
        assert wait_for("started").song_id == "good"
        time.sleep(0.6)
        player.cue(broken, "broken")
        failed = wait_for("failed")
        print("\n" + failed.message)
        assert failed.song_id == "broken" and "broken.mp3" in failed.message and "\n" not in failed.message
        assert player.needs_next                           # the engine is asked for another choice at once
        assert player.current_song_id == "good"            # ... while the current song keeps playing
        player.cue(other, "other", start_s=1.0, duration_s=5.0)
        assert wait_for("started").song_id == "other"
        time.sleep(1.0)
        assert player.current_song_id == "other" and not player.needs_next
    finally:
        t = time.monotonic()
        clean = player.close()
        close_s = time.monotonic() - t
    assert clean and close_s < 1.0
    assert app_threads() - before == set()

    mix, rate = sf.read(out, dtype="float32")
    assert rate == SR and mix.shape[1] == 2
    rms = np.sqrt((mix[: len(mix) // 480 * 480].reshape(-1, 480, 2) ** 2).mean(axis=(1, 2)))
    sounding = np.flatnonzero(rms > 0.01)
    # from the first fade-in to the closing fade-out, not one 10 ms block is silent
    assert sounding[-1] - sounding[0] + 1 == len(sounding), "a gap in the music"
    assert (sounding[-1] - sounding[0]) * 480 / SR > 2.0
    assert np.abs(mix[-8:]).max() < 1e-3                   # ended by the fade (-60 dB), not cut
