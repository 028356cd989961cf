"""Local text-to-speech with espeak-ng, one sentence per synthesis.

`espeak-ng --stdout` is started by `agents.spawn` (vfork, not the event loop's fork: no stall; the synthesis itself
is another process). The text goes in on stdin, never on the command line, so no text can be read as an
option. Its 22.05 kHz WAV is parsed as it streams out and resampled with a per-synthesis
`media.resample.StreamResampler` (soxr); chunks are yielded as soon as espeak writes them (~15 ms process start, then
100x+ real time). Closing the stream, or cancelling its consumer, kills the process.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
from collections.abc import AsyncIterator

import numpy as np

from agents.spawn import Child
from media.resample import StreamResampler

from .base import ProviderError, SynthesisStream, TextToSpeech

DEFAULT_WPM = 175  # espeak-ng's default speaking rate (words per minute), = speed 1.0
_MIN_WPM, _MAX_WPM = 80, 450
_READ = 8192  # bytes per read (~186 ms of 22.05 kHz audio)


def speed_to_wpm(speed: float | None) -> int:
    """`voice_settings.speed` (0.5–2.0, 1.0 = normal) → espeak-ng `-s` words per minute."""
    if speed is None:
        return DEFAULT_WPM
    return int(min(_MAX_WPM, max(_MIN_WPM, round(DEFAULT_WPM * speed))))


def parse_wav_header(buf: bytes) -> tuple[int, int, int] | None:
    """(sample_rate, channels, offset of the PCM data) once `buf` holds the header; None if it needs more.
    espeak-ng streams with a placeholder data size, so the data chunk's size is ignored."""
    if len(buf) < 12:
        return None
    if buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
        raise ProviderError("espeak-ng did not write a WAV stream", retryable=False, reason="bad_output")
    pos, rate, channels = 12, 0, 0
    while True:
        if len(buf) < pos + 8:
            return None
        cid, size = buf[pos : pos + 4], struct.unpack("<I", buf[pos + 4 : pos + 8])[0]
        if cid == b"data":
            if not rate:
                raise ProviderError("WAV data before its fmt chunk", retryable=False, reason="bad_output")
            return rate, channels, pos + 8
        if len(buf) < pos + 8 + size:
            return None
        if cid == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", buf[pos + 8 : pos + 24])
            if fmt != 1 or bits != 16:
                raise ProviderError(f"unsupported WAV format {fmt}/{bits} bit", retryable=False,
                                    reason="bad_output")
        pos += 8 + size + (size & 1)


class EspeakTTS(TextToSpeech):
    """`synthesize(text, voice, rate)`: `voice` is an espeak-ng `-v` argument (`Voice.engine_voice`)."""

    def __init__(self, executable: str | None = None, *, max_concurrent: int = 8) -> None:
        self.executable = executable or shutil.which("espeak-ng") or "espeak-ng"
        self._slots = asyncio.Semaphore(max_concurrent)  # bounds processes when many calls speak at once

    def synthesize(self, text: str, voice: str, sample_rate: int, *, speed: float | None = None) -> SynthesisStream:
        return SynthesisStream(self._run(text, voice, sample_rate, speed_to_wpm(speed)), sample_rate)

    async def _run(self, text: str, voice: str, sample_rate: int, wpm: int) -> AsyncIterator[np.ndarray]:
        text = " ".join(text.split())  # one line: espeak reads stdin line by line
        if not text:
            return
        if not voice or voice.startswith("-") or any(c.isspace() for c in voice):
            raise ProviderError(f"bad espeak voice {voice!r}", retryable=False, reason="bad_voice", provider="espeak")
        async with self._slots:
            try:
                proc = await Child.start([self.executable, "--stdout", "-b", "1", "-v", voice, "-s", str(wpm)],
                                         text.encode() + b"\n")
            except OSError as e:
                raise ProviderError(f"cannot start espeak-ng: {e}", retryable=False, reason="not_installed",
                                    provider="espeak") from e
            try:
                async for chunk in self._read(proc, sample_rate):
                    yield chunk
            finally:
                await proc.kill()

    async def _read(self, proc: Child, sample_rate: int) -> AsyncIterator[np.ndarray]:
        header = b""
        fmt: tuple[int, int, int] | None = None
        resampler: StreamResampler | None = None
        odd = b""
        while True:
            data = await proc.stdout.read(_READ)
            if not data:
                break
            if fmt is None:
                header += data
                fmt = parse_wav_header(header)
                if fmt is None:
                    continue
                rate, channels, offset = fmt
                if channels != 1:
                    raise ProviderError("espeak-ng wrote non-mono audio", retryable=False, reason="bad_output")
                resampler = StreamResampler(rate, sample_rate)
                data, header = header[offset:], b""
            data, odd = odd + data, b""
            if len(data) & 1:
                data, odd = data[:-1], data[-1:]
            if data:
                assert resampler is not None
                out = resampler.process(np.frombuffer(data, "<i2").astype(np.int16))
                if len(out):
                    yield out
        err = (await proc.stderr.read()).decode(errors="replace").strip()
        rc = await proc.wait()
        if rc != 0 or fmt is None:
            missing = "voice" in err.lower() and "not exist" in err.lower()
            raise ProviderError(f"espeak-ng failed ({rc}): {err or 'no audio'}", retryable=not missing,
                                reason="bad_voice" if missing else "synthesis_failed", provider="espeak")
        assert resampler is not None
        tail = resampler.flush()
        if len(tail):
            yield tail
