"""Local text-to-speech with flite (CMU Flite 2.2, Debian package `flite`), one sentence per synthesis.

`flite` is started by `agents.spawn` (vfork; the synthesis is another process; nothing blocks the event loop).
The text goes in through a file (`-f`), never on the command line, so no text can be read as an option
(a file also works whatever the event loop makes of a child's stdin: uvloop's is a socket). flite
cannot stream WAV into a pipe either (it rewrites the RIFF header in place and hangs on a pipe), so it
writes to a file too; both live in this provider's private temporary directory (mode 0700), the WAV is read
once the process ends: flite synthesises a whole utterance before it writes any of it anyway, and a
sentence takes ~10 ms (kal16) to ~80 ms (slt). The WAV is brought to a common loudness (`GAIN`), resampled
with a per-synthesis `media.resample.StreamResampler` (soxr) and yielded in chunks. Closing the stream, or cancelling its consumer, kills the process and removes the file.

Only the voices compiled into flite are accepted (`VOICES`): flite also loads a voice from any path or
URL given as `-voice`, and silently falls back to `kal` for a name it does not know.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from agents.spawn import Child
from media.resample import StreamResampler

from .base import ProviderError, SynthesisStream, TextToSpeech
from .espeak_tts import parse_wav_header

# The voices built into Debian's flite 2.2 (`flite -lv`): kal16 (diphone, 16 kHz), kal (diphone, 8 kHz),
# slt / rms / awb (clustergen, 16 kHz). awb_time only speaks times of day.
VOICES = frozenset({"kal16", "kal", "slt", "rms", "awb"})
# kal's diphones are recorded ~7 dB below the other voices and espeak-ng (active-speech RMS ~1,700 against
# 3,500–6,400 on bench/data/tts_sentences.txt, peak 13,469): doubled, it is as loud as the rest on a phone line.
GAIN = {"kal16": 2.0, "kal": 2.0}
# Speed 1.0 is duration_stretch 1.0 for every voice. flite's kal voices default to 1.1 (slower) on their own;
# `make bench-tts` heard kal16 better at 1.0 (round-trip WER 3.6 % against 6.0 % at 1.1, 249 words), and at
# 1.0 it keeps espeak-ng's pace (74 s against 76 s for the same sentences).
_MIN_STRETCH, _MAX_STRETCH = 0.5, 2.0
_CHUNK = 4096  # samples per yielded chunk at the source rate (256 ms at 16 kHz)
_TIMEOUT_S = 30.0  # one sentence takes milliseconds; a stuck process must not hold a call's turn


def speed_to_stretch(speed: float | None) -> float:
    """`voice_settings.speed` (0.5–2.0, 1.0 = normal) → flite's `duration_stretch` (larger is slower: 2.0
    takes twice as long as 1.0)."""
    if speed is None or speed <= 0:
        return 1.0
    return round(min(_MAX_STRETCH, max(_MIN_STRETCH, 1.0 / speed)), 3)


class FliteTTS(TextToSpeech):
    """`synthesize(text, voice, rate)`: `voice` is a flite `-voice` name from `VOICES` (`Voice.engine_voice`
    without its `flite:` prefix)."""

    def __init__(self, executable: str | None = None, *, max_concurrent: int = 8) -> None:
        self.executable = executable or shutil.which("flite") or "flite"
        self._slots = asyncio.Semaphore(max_concurrent)  # bounds processes when many calls speak at once
        self._dir: Path | None = None

    @property
    def available(self) -> bool:
        """The executable exists and can be run (checked without starting it)."""
        return shutil.which(self.executable) is not None

    def synthesize(self, text: str, voice: str, sample_rate: int, *, speed: float | None = None) -> SynthesisStream:
        return SynthesisStream(self._run(text, voice, sample_rate, speed_to_stretch(speed)), sample_rate)

    def _workdir(self) -> Path:
        if self._dir is None or not self._dir.is_dir():
            self._dir = Path(tempfile.mkdtemp(prefix="switchboard-flite-"))  # 0700
        return self._dir

    async def _run(self, text: str, voice: str, sample_rate: int, stretch: float) -> AsyncIterator[np.ndarray]:
        text = " ".join(text.split())
        if not text:
            return
        if voice not in VOICES:
            raise ProviderError(f"bad flite voice {voice!r} (one of {', '.join(sorted(VOICES))})",
                                retryable=False, reason="bad_voice", provider="flite")
        async with self._slots:
            stem = self._workdir() / uuid.uuid4().hex
            txt, out = stem.with_suffix(".txt"), stem.with_suffix(".wav")
            try:
                await asyncio.to_thread(txt.write_text, text + "\n", "utf-8")
                try:
                    proc = await Child.start([self.executable, "-voice", voice, "--setf",
                                              f"duration_stretch={stretch}", "-f", str(txt), "-o", str(out)], b"")
                except OSError as e:
                    raise ProviderError(f"cannot start flite: {e}", retryable=False, reason="not_installed",
                                        provider="flite") from e
                try:
                    wav = await self._synthesise(proc, out)
                finally:
                    await proc.kill()
            finally:
                for path in (txt, out):
                    with contextlib.suppress(OSError):
                        path.unlink()
        fmt = parse_wav_header(wav)
        if fmt is None:
            raise ProviderError("flite wrote a truncated WAV file", retryable=True, reason="bad_output",
                                provider="flite")
        rate, channels, offset = fmt
        if channels != 1:
            raise ProviderError("flite wrote non-mono audio", retryable=False, reason="bad_output", provider="flite")
        pcm = np.frombuffer(wav[offset : offset + ((len(wav) - offset) & ~1)], "<i2").astype(np.int16)
        gain = GAIN.get(voice, 1.0)
        if gain != 1.0:
            pcm = np.clip(pcm.astype(np.float32) * gain, -32768, 32767).astype(np.int16)
        resampler = StreamResampler(rate, sample_rate)
        for i in range(0, len(pcm), _CHUNK):
            block = resampler.process(pcm[i : i + _CHUNK])
            if len(block):
                yield block
        tail = resampler.flush()
        if len(tail):
            yield tail

    async def _synthesise(self, proc: Child, out: Path) -> bytes:
        """Wait for the process, return the WAV file's bytes."""
        try:
            err_bytes = await asyncio.wait_for(proc.stderr.read(), _TIMEOUT_S)
            rc = await asyncio.wait_for(proc.wait(), _TIMEOUT_S)
        except TimeoutError as e:
            raise ProviderError(f"flite took over {_TIMEOUT_S:.0f} s", retryable=True, reason="timeout",
                                provider="flite") from e
        err = err_bytes.decode(errors="replace").strip()
        try:
            wav = await asyncio.to_thread(out.read_bytes)
        except OSError:
            wav = b""
        if rc != 0 or len(wav) <= 44:
            raise ProviderError(f"flite failed ({rc}): {err or 'no audio'}", retryable=True,
                                reason="synthesis_failed", provider="flite")
        return wav

    async def aclose(self) -> None:
        if self._dir is not None:
            await asyncio.to_thread(shutil.rmtree, self._dir, True)
            self._dir = None
