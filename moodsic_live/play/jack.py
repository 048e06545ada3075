"""JACK's dummy driver as a real-time audio device, for the real-time test and ``bench/engine.py``.

``jackd --no-realtime -d dummy -r 48000 -p 480`` consumes blocks at the wall clock's pace like a sound
card, on a machine without one (the ALSA null device runs faster than real time, PulseAudio's null sink
slower: neither can be timed against). :class:`DummyJack` starts that server unless one already runs
(then it only uses it and leaves it alone), re-initialises PortAudio so it sees the server, and finds
PortAudio's JACK output. :attr:`DummyJack.device` is that device (index as text) or None, and
:attr:`DummyJack.note` says what happened in one line.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

RATE, PERIOD = 48000, 480
JACKD = ["jackd", "--no-realtime", "-d", "dummy", "-r", str(RATE), "-p", str(PERIOD)]


def jack_running() -> bool:
    if shutil.which("jack_wait") is None:
        return False
    try:
        out = subprocess.run(["jack_wait", "-c"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "running"


class DummyJack:
    def __init__(self, log_dir: Path, start_timeout_s: float = 10.0) -> None:
        self.proc: subprocess.Popen | None = None
        self.device: str | None = None
        self.note = ""
        if shutil.which("jackd") is None:
            self.note = ("jackd is not installed (apt-get install --no-install-recommends jackd2): a real-time "
                         "device paced by the wall clock needs JACK's dummy driver")
            return
        if not jack_running():
            log = Path(log_dir) / "jackd.log"
            with open(log, "wb") as fh:
                self.proc = subprocess.Popen(JACKD, stdout=fh, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + start_timeout_s
            while not jack_running():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    self.note = f"jackd did not start: {log.read_text(errors='replace')[-300:]!r}"
                    return
                time.sleep(0.1)
        try:
            import sounddevice as sd
        except OSError as err:
            self.note = f"PortAudio is missing ({err}); apt-get install libportaudio2"
            self.close()
            return
        sd._terminate()       # PortAudio lists devices when it initialises: let it see the server
        sd._initialize()
        jack = [h for h in sd.query_hostapis() if "JACK" in h["name"]]
        if not jack or jack[0]["default_output_device"] < 0:
            self.note = ("this libportaudio2 has no JACK host API (or JACK has no output): "
                         f"{[h['name'] for h in sd.query_hostapis()]}")
            self.close()
            return
        self.device = str(jack[0]["default_output_device"])
        started = "started here" if self.proc is not None else "already running"
        self.note = f"JACK dummy driver ({started}; {RATE} Hz, {PERIOD}-frame periods), PortAudio device {self.device}"

    def close(self) -> None:
        """Stop the server if this object started it (PortAudio's JACK client is dropped first)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            import sounddevice as sd

            sd._terminate()
        except OSError:
            sd = None
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if sd is not None:
            sd._initialize()
