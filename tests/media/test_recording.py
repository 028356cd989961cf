"""Stereo recordings: incremental, readable at every moment, repaired after a crash."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from media.recording import RecordingWriter, StereoRecorder, repair, wav_header


def read(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2 and w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
        return data, w.getframerate()


def tone(n: int, value: int) -> np.ndarray:
    return np.full(n, value, np.int16)


@pytest.fixture
def writer() -> RecordingWriter:
    w = RecordingWriter()
    yield w
    w.stop()


def test_channels_interleave_and_silent_agent_is_padded(tmp_path: Path, writer: RecordingWriter) -> None:
    rec = StereoRecorder(tmp_path / "a.wav", 8000, writer=writer)
    for i in range(150):  # 3 s of 20 ms ticks; the agent speaks only in the second second
        rec.write(tone(160, 1000 + i), tone(160, -7) if 50 <= i < 100 else None)
    assert rec.close().result(5) == 150 * 160
    data, rate = read(tmp_path / "a.wav")
    assert rate == 8000 and len(data) == 150 * 160
    assert np.array_equal(data[:, 0], np.repeat(np.arange(1000, 1150), 160))
    agent = data[:, 1]
    assert not agent[: 50 * 160].any() and (agent[50 * 160 : 100 * 160] == -7).all()
    assert not agent[100 * 160 :].any()
    assert rec.duration == pytest.approx(3.0)


def test_channel_arriving_a_tick_late_is_not_shifted(tmp_path: Path, writer: RecordingWriter) -> None:
    rec = StereoRecorder(tmp_path / "b.wav", 16000, writer=writer)
    agent_pending = None
    for i in range(100):
        rec.write_caller(tone(320, i))
        if agent_pending is not None:
            rec.write_agent(agent_pending)  # the agent's frame for tick i-1 comes with tick i
        agent_pending = tone(320, -i)
    rec.write_agent(agent_pending)
    rec.close().result(5)
    data, _ = read(tmp_path / "b.wav")
    assert np.array_equal(data[:, 0], -data[:, 1])


def test_other_rates_are_resampled_per_channel(tmp_path: Path, writer: RecordingWriter) -> None:
    rec = StereoRecorder(tmp_path / "c.wav", 16000, writer=writer)
    t = np.arange(8000 * 2) / 8000
    sine8k = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    for i in range(0, len(sine8k), 160):
        rec.write(sine8k[i : i + 160], None, rate=8000)  # G.711 caller, 16 kHz recording
    rec.close().result(5)
    data, rate = read(tmp_path / "c.wav")
    assert rate == 16000 and abs(len(data) - 32000) <= 40
    spectrum = np.abs(np.fft.rfft(data[4000:20000, 0]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) < 2


def test_file_is_readable_while_recording(tmp_path: Path, writer: RecordingWriter) -> None:
    path = tmp_path / "live.wav"
    rec = StereoRecorder(path, 8000, flush_seconds=1.0, writer=writer)
    for _ in range(200):  # 4 s of ticks
        rec.write(tone(160, 5), tone(160, 6))
    # not closed: the writer thread has put whole seconds on disk, each time with a valid header
    deadline = time.monotonic() + 5
    frames = 0
    while True:
        try:
            with wave.open(str(path)) as w:
                frames = w.getnframes()
        except (FileNotFoundError, EOFError, wave.Error):
            pass  # the writer thread has not created it yet
        if frames >= 3 * 8000 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert frames == 3 * 8000  # 4 s written, the last second (minus hold-back) still buffered
    assert path.stat().st_size == 44 + frames * 4
    rec.close().result(5)
    data, _ = read(path)
    assert len(data) == 4 * 8000 and (data == [5, 6]).all()


async def test_aclose_and_write_after_close(tmp_path: Path, writer: RecordingWriter) -> None:
    rec = StereoRecorder(tmp_path / "d.wav", 8000, writer=writer)
    rec.write(tone(800, 1), tone(400, 2))
    assert await rec.aclose() == 800
    assert rec.close().result() == 800  # idempotent
    with pytest.raises(RuntimeError):
        rec.write(tone(160, 1))
    data, _ = read(tmp_path / "d.wav")
    assert (data[:400] == [1, 2]).all() and (data[400:] == [1, 0]).all()


def test_crash_leaves_a_readable_file_that_repair_completes(tmp_path: Path) -> None:
    """A real crash: a child process records 2.5 s and dies with os._exit mid-recording."""
    path = tmp_path / "crash.wav"
    code = textwrap.dedent(f"""
        import os, time, numpy as np
        from media.recording import StereoRecorder, default_writer
        rec = StereoRecorder({str(path)!r}, 8000)
        for i in range(125):
            rec.write(np.full(160, 3, np.int16), np.full(160, 4, np.int16))
        default_writer().stop()  # let the queued seconds reach the file, then die without closing
        os._exit(1)
    """)
    subprocess.run([sys.executable, "-c", code], check=False, cwd=Path(__file__).parents[2], timeout=60)
    data, _ = read(path)  # readable as is: two whole seconds
    assert len(data) == 2 * 8000 and (data == [3, 4]).all()
    # simulate the worst moment: data written, header not yet rewritten, plus a torn frame
    with open(path, "ab") as f:
        f.write(np.full(2 * 1000, 9, "<i2").tobytes() + b"\x01\x02\x03")
    info = repair(path)
    assert info.repaired and info.frames == 2 * 8000 + 1000 and info.channels == 2 and info.sample_rate == 8000
    data, _ = read(path)
    assert len(data) == 17000 and (data[-1000:] == 9).all()
    assert os.path.getsize(path) == 44 + 17000 * 4
    assert repair(path).repaired is False  # idempotent


def test_repair_rejects_what_it_cannot_fix(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(ValueError):
        repair(tmp_path / "empty.wav")
    (tmp_path / "torn.wav").write_bytes(wav_header(8000, 2, 0)[:30])
    with pytest.raises(ValueError):
        repair(tmp_path / "torn.wav")
    hdr = bytearray(wav_header(16000, 2, 0))
    struct.pack_into("<I", hdr, 4, 0xFFFFFFF0)  # streaming-style placeholder sizes
    struct.pack_into("<I", hdr, 40, 0xFFFFFFF0)
    (tmp_path / "ph.wav").write_bytes(bytes(hdr) + b"\0" * 400)
    assert repair(tmp_path / "ph.wav").frames == 100


def test_write_error_is_reported_not_raised_on_the_hot_path(tmp_path: Path, writer: RecordingWriter) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rec = StereoRecorder(blocker / "sub" / "x.wav", 8000, writer=writer)  # parent is a file
    for _ in range(100):
        rec.write(tone(160, 1), None)  # never raises
    with pytest.raises(OSError):
        rec.close().result(5)
    assert rec.error is not None
